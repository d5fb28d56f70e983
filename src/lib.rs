//! edgehook: a caching reverse proxy on pingora that runs Lambda@Edge-style functions.
pub mod config;
pub mod tls;
pub mod cache;
pub mod local_http;
pub mod origin;
pub mod admin;
pub mod proxy;
pub mod server;
pub mod cli;
