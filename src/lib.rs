//! edgehook: a caching reverse proxy on pingora that runs Lambda@Edge-style functions.
pub mod admin;
pub mod cache;
pub mod certificates;
pub mod cli;
pub mod config;
pub mod deploy;
pub mod edge;
pub mod head_deadline;
pub mod js;
pub mod linger;
pub mod local_http;
pub mod logfile;
pub mod metrics;
pub mod origin;
pub mod package;
pub mod proxy;
pub mod reload;
pub mod server;
pub mod service_ready;
pub mod signals;
pub mod telemetry;
pub mod tls;

/// The process allocator, for the binary, the benchmarks and the tests alike. A proxied request
/// makes a few hundred small allocations (header maps, names, values, futures); glibc's malloc
/// spent about 28,000 instructions per plain proxied request on them, mimalloc about 8,000
/// (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
