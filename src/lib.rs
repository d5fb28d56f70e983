//! edgehook: a caching reverse proxy on pingora that runs Lambda@Edge-style functions.
pub mod config;
pub mod tls;
pub mod cache;
