//! edgehook: a caching reverse proxy on pingora that runs Lambda@Edge-style functions.
pub mod admin;
pub mod cache;
pub mod cli;
pub mod config;
pub mod deploy;
pub mod edge;
pub mod js;
pub mod local_http;
pub mod origin;
pub mod proxy;
pub mod reload;
pub mod server;
pub mod tls;
