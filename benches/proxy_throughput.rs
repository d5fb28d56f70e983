//! Baseline throughput of edgehook on loopback: proxied (cache off) and cache hit, measured
//! with wrk against the release binary, beside the origin alone and a bare pingora proxy
//! (`benches/pingora_baseline.rs`, run as a child process of this bench, 2 threads like edgehook). Run with `scripts/bench`
//! (installs wrk) or `cargo bench --bench proxy_throughput`.
//!
//! Settings: wrk 1 thread, 32 connections, `BENCH_SECONDS` (default 5) per run, scenarios
//! alternated `BENCH_ROUNDS` times (default 3); the median is reported.

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "pingora_baseline.rs"]
mod pingora_baseline;

/// Set in the child process that serves the bare pingora proxy: "LISTEN ORIGIN".
const BASELINE_ENV: &str = "EDGEHOOK_BENCH_PINGORA_BASELINE";

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("ephemeral port")
}

/// An origin answering every request with a short body, on its own single thread.
fn start_origin() -> SocketAddr {
    let addr = free_addr();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr).await.expect("bind origin");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let service = service_fn(|_req| async {
                        let response = http::Response::builder()
                            .header("content-type", "text/plain")
                            .header("cache-control", "max-age=3600")
                            .body(Full::new(Bytes::from_static(b"hello from the origin\n")))
                            .expect("response");
                        Ok::<_, std::convert::Infallible>(response)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    addr
}

fn wait_for(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{addr} never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Requests per second reported by wrk.
fn wrk(url: &str, seconds: u64) -> f64 {
    let out = Command::new("wrk")
        .args(["-t1", "-c32", &format!("-d{seconds}s"), "--latency", url])
        .output()
        .expect("wrk is installed (scripts/bench installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("Non-2xx"), "wrk saw errors:\n{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Ok(spec) = std::env::var(BASELINE_ENV) {
        let (listen, origin) = spec.split_once(' ').expect("LISTEN ORIGIN");
        pingora_baseline::serve(listen, origin, 2);
    }
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let origin = start_origin();
    wait_for(origin);

    let dir = tempfile::tempdir().expect("temp dir");
    let (http, admin) = (free_addr(), free_addr());
    let config = format!(
        "[server]\nlisten = [\"{http}\"]\nadmin = \"{admin}\"\nthreads = 2\n[log]\naccess_log = false\nlevel = \"warn\"\n\
         [origins.app]\nurl = \"http://{origin}\"\n\
         [[behaviors]]\npath = \"/proxied/*\"\norigin = \"app\"\ncache = false\n\
         [[behaviors]]\npath = \"*\"\norigin = \"app\"\n"
    );
    let config_path = dir.path().join("bench.toml");
    std::fs::write(&config_path, config).expect("write config");
    let mut edgehook = Command::new(env!("CARGO_BIN_EXE_edgehook"))
        .args(["serve", "--config"])
        .arg(&config_path)
        .stderr(Stdio::null())
        .spawn()
        .expect("start edgehook");
    wait_for(http);
    let baseline = free_addr();
    let mut bare_pingora = Command::new(std::env::current_exe().expect("own path"))
        .env(BASELINE_ENV, format!("{baseline} {origin}"))
        .stderr(Stdio::null())
        .spawn()
        .expect("start the bare pingora proxy");
    wait_for(baseline);

    let scenarios = [
        ("origin alone", format!("http://{origin}/")),
        ("bare pingora proxy", format!("http://{baseline}/x")),
        ("edgehook proxy, cache off", format!("http://{http}/proxied/x")),
        ("edgehook cache hit", format!("http://{http}/cached/x")),
    ];
    // Warm the cache and the connection pools.
    for (_, url) in &scenarios {
        wrk(url, 1);
    }
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); scenarios.len()];
    for _ in 0..rounds {
        for (i, (_, url)) in scenarios.iter().enumerate() {
            results[i].push(wrk(url, seconds));
        }
    }
    for child in [&mut edgehook, &mut bare_pingora] {
        let _ = child.kill();
        let _ = child.wait();
    }

    println!("wrk -t1 -c32, {seconds}s x {rounds} rounds (alternating), median requests/s:");
    let origin_rps = median(results[0].clone());
    let (bare, proxied) = (median(results[1].clone()), median(results[2].clone()));
    for ((name, _), runs) in scenarios.iter().zip(results) {
        let m = median(runs.clone());
        println!(
            "  {name:<28} {m:>10.0} req/s  ({:.2} x origin)  runs: {runs:.0?}",
            m / origin_rps
        );
    }
    println!("  edgehook proxy / bare pingora proxy: {:.2}", proxied / bare);
}
