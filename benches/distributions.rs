//! Routing by host among many distributions: cache hits through one distribution against the
//! same hits through 1,000 distributions holding 10,000 domain names. `scripts/bench` runs it
//! (installing wrk); it prints the table and writes `docs/benchmarks-distributions.md`.
//!
//! Both configurations serve the same 1,000 hosts (`h0.bench.test` to `h999.bench.test`) from
//! the same origin, each host's object cached (filled before measuring). With one distribution,
//! `*.bench.test` covers them all (a wildcard lookup); with 1,000, each host is an exact name
//! of its own distribution, which also holds 8 more exact names and a wildcard. wrk (1 thread,
//! 32 connections, `BENCH_SECONDS`, default 5) asks for a random host each time, the two in
//! turn for `BENCH_ROUNDS` rounds (default 5); medians are reported with the range of the runs,
//! which shows how far apart two runs of the same configuration fall.

#[allow(dead_code)]
#[path = "side_by_side/servers.rs"]
mod servers;

#[allow(dead_code)]
#[path = "side_by_side/load.rs"]
mod load;

use bytes::Bytes;
use http_body_util::Full;
use load::Peak;
use servers::{
    build_profile, free_addr, repository, resident_with_children, serve_origin, setting, start_edgehook, Running,
};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

const HOSTS: usize = 1_000;
const DISTRIBUTIONS: usize = 1_000;
const NAMES_PER_DISTRIBUTION: usize = 10;

fn host(i: usize) -> String {
    format!("h{i}.bench.test")
}

fn server(listen: SocketAddr) -> String {
    format!("[server]\nlisten = [\"{listen}\"]\nthreads = 2\n[log]\naccess_log = false\n")
}

fn origin_block(origin: SocketAddr) -> String {
    format!("[origins.app]\nurl = \"http://{origin}\"\n")
}

fn one_distribution(listen: SocketAddr, origin: SocketAddr) -> String {
    format!(
        "{}{}[distributions.site]\ndomains = [\"*.bench.test\"]\n[[distributions.site.behaviors]]\npath = \"*\"\norigin = \"app\"\n",
        server(listen),
        origin_block(origin)
    )
}

fn many_distributions(listen: SocketAddr, origin: SocketAddr) -> String {
    let mut text = server(listen) + &origin_block(origin);
    for i in 0..DISTRIBUTIONS {
        let mut domains = vec![host(i), format!("*.h{i}.bench.test")];
        domains.extend((0..NAMES_PER_DISTRIBUTION - 2).map(|k| format!("a{k}-h{i}.bench.test")));
        let quoted: Vec<String> = domains.iter().map(|d| format!("\"{d}\"")).collect();
        let _ = write!(
            text,
            "[distributions.site{i}]\ndomains = [{}]\n[[distributions.site{i}.behaviors]]\npath = \"*\"\norigin = \"app\"\n",
            quoted.join(", ")
        );
    }
    text
}

fn fill(addr: SocketAddr) {
    for i in 0..HOSTS {
        let answer = load::get(addr, "/x", &[format!("Host: {}", host(i))]);
        assert_eq!(answer.status, 200, "{} answered {}", host(i), answer.status);
    }
    let again = load::get(addr, "/x", &[format!("Host: {}", host(HOSTS / 2))]);
    assert_eq!(
        again.headers.get("x-cache").and_then(|v| v.to_str().ok()),
        Some("Hit from edgehook")
    );
}

fn wrk(dir: &Path, addr: SocketAddr, seconds: u64) -> Peak {
    let script = dir.join("hosts.lua");
    std::fs::write(
        &script,
        format!(
            "math.randomseed(os.time())\nrequest = function()\n  return wrk.format(\"GET\", \"/x\", {{ Host = \"h\" .. math.random(0, {}) .. \".bench.test\" }})\nend\n",
            HOSTS - 1
        ),
    )
    .expect("wrk script");
    load::wrk_script(&format!("http://{addr}/"), &[], Some(&script), seconds)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let seconds = setting("BENCH_SECONDS", 5);
    let rounds = setting("BENCH_ROUNDS", 5).max(1) as usize;
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let origin = serve_origin(
        2,
        std::sync::Arc::new(|_: &str| {
            http::Response::builder()
                .header("cache-control", "max-age=86400")
                .body(Full::new(Bytes::from_static(b"hello from the origin\n")))
                .expect("response")
        }),
    );
    let (one, many) = (free_addr(), free_addr());
    let contestants: [(&str, SocketAddr, Running); 2] = [
        (
            "1 distribution, 1 wildcard",
            one,
            start_edgehook(dir, "one.toml", &one_distribution(one, origin), one),
        ),
        (
            "1,000 distributions, 10,000 names",
            many,
            start_edgehook(dir, "many.toml", &many_distributions(many, origin), many),
        ),
    ];
    for (name, addr, _) in &contestants {
        eprintln!("distributions: filling {name}");
        fill(*addr);
    }
    let mut runs: Vec<Vec<Peak>> = vec![Vec::new(); contestants.len()];
    for _ in 0..rounds {
        for (i, (_, addr, _)) in contestants.iter().enumerate() {
            runs[i].push(wrk(dir, *addr, seconds));
        }
    }
    let resident: Vec<u64> = contestants
        .iter()
        .map(|(_, _, r)| resident_with_children(r.pid()))
        .collect();
    let peaks: Vec<Peak> = runs.iter().map(|r| load::median(r)).collect();
    let ranges: Vec<(f64, f64)> = runs
        .iter()
        .map(|r| {
            let rates = r.iter().map(|p| p.requests_per_second);
            (rates.clone().fold(f64::MAX, f64::min), rates.fold(0.0, f64::max))
        })
        .collect();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Benchmarks: routing among distributions\n\nGenerated by `cargo bench --profile {profile} --bench distributions` (`scripts/bench` runs it with `dist`):\n\
         {cores} cores, loopback, edgehook with 2 threads, cache hits for {HOSTS} hosts (each its own object, filled\n\
         first), wrk 1 thread x 32 connections asking for a random host, {seconds} s per run, {rounds} rounds\n\
         alternating the two, medians.\n",
        cores = std::thread::available_parallelism().map_or(0, |n| n.get()),
        profile = build_profile()
    );
    let _ = writeln!(
        out,
        "| configuration | requests/s (median) | runs ranged | p50 ms | p99 ms | resident memory |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for (i, (name, _, _)) in contestants.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {name} | {:.0} | {:.0} to {:.0} | {:.2} | {:.2} | {:.1} MiB |",
            peaks[i].requests_per_second,
            ranges[i].0,
            ranges[i].1,
            peaks[i].p50_ms,
            peaks[i].p99_ms,
            resident[i] as f64 / (1 << 20) as f64
        );
    }
    let spread = |(low, high): (f64, f64)| (high - low) / high;
    let _ = writeln!(
        out,
        "\n1,000 distributions against 1: {:.2} x the requests per second (medians); the runs of one\n\
         configuration differed by up to {:.0}% among themselves.",
        peaks[1].requests_per_second / peaks[0].requests_per_second,
        100.0 * spread(ranges[0]).max(spread(ranges[1]))
    );
    print!("{out}");
    std::fs::write(repository().join("docs/benchmarks-distributions.md"), out)
        .expect("write docs/benchmarks-distributions.md");
}
