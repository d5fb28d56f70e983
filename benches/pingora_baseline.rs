//! The bare pingora 0.9 proxy that edgehook's plain-proxy throughput is held against: a
//! `ProxyHttp` with nothing but `upstream_peer`, work stealing on, the given worker threads.
//! `benches/side_by_side/` runs it beside edgehook and nginx in the same measurement run; to run it
//! alone: `cargo bench --bench pingora_baseline -- LISTEN ORIGIN [THREADS]`, e.g.
//! `cargo bench --bench pingora_baseline -- 127.0.0.1:8081 127.0.0.1:9000 2`.

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

/// Forwards every request to one plain-HTTP origin, as pingora's own examples do.
struct BareProxy {
    origin: String,
}

#[async_trait]
impl ProxyHttp for BareProxy {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin.as_str(), false, String::new())))
    }
}

/// Serves the bare proxy on `listen` until the process is killed; never returns.
pub fn serve(listen: &str, origin: &str, threads: usize) -> ! {
    let conf = ServerConf {
        threads,
        work_stealing: true,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(
        &server.configuration,
        BareProxy {
            origin: origin.to_string(),
        },
    );
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run_forever()
}

#[allow(dead_code)] // unused where side_by_side includes this file as a module
fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let (Some(listen), Some(origin)) = (args.first(), args.get(1)) else {
        eprintln!("usage: cargo bench --bench pingora_baseline -- LISTEN ORIGIN [THREADS]");
        std::process::exit(2);
    };
    let threads = args.get(2).and_then(|t| t.parse().ok()).unwrap_or(2);
    serve(listen, origin, threads)
}
