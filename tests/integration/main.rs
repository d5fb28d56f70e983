//! Integration tests: the real `edgehook` binary against real origins, over loopback sockets.
//! One test crate with modules keeps the build to a single binary.

#![allow(clippy::unwrap_used)]

mod support;

mod admin;
mod caching;
mod cli;
mod console;
mod corpus;
mod debian;
mod deploy;
mod directory;
mod disk_cache;
mod distributions;
mod dns;
mod egress;
mod errors;
mod examples;
mod fleet;
mod functions;
mod hooks;
mod hostile;
mod http_clients;
mod layout;
mod lifecycle;
mod logs;
mod monitoring;
mod packages;
mod proxying;
mod ranges;
mod reload;
mod slow_clients;
mod sni;
mod tls;
mod tracing;
