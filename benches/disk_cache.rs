//! The disk tier beside nginx's proxy_cache and Varnish's file storage, on loopback: cache hits
//! on working sets larger than edgehook's memory tier (objects of 1 kB, 100 kB and 10 MB),
//! memory-tier hits with and without a disk tier under them, and the first hit after a restart
//! with 100,000 objects on disk. `scripts/bench` runs it (installing nginx, varnish and wrk); it
//! prints the table and writes `docs/benchmarks-disk.md`.
//!
//! Every contestant gets 2 worker threads (edgehook `threads = 2`, nginx `worker_processes 2`,
//! Varnish its default pools), caches everything its origin marks `max-age=86400`, and is
//! filled with the whole working set before it is measured. wrk (1 thread, 32 connections,
//! `BENCH_SECONDS`, default 5) asks for objects of the set at random, the contestants in turn,
//! `BENCH_ROUNDS` rounds (default 3); medians are reported. The origin (hyper, 2 threads) is
//! only asked during the fill.

#[allow(dead_code)]
#[path = "side_by_side/servers.rs"]
mod servers;

#[allow(dead_code)]
#[path = "side_by_side/load.rs"]
mod load;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use load::connect;
use servers::{build_profile, free_addr, repository, setting, wait_for, Running};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The host every request names: part of every contestant's cache key.
const HOST: &str = "bench.test";
/// edgehook's memory tier; every working set below is larger.
const EDGEHOOK_MEMORY: &str = "16MiB";
const LARGEST: usize = 10_000_000;

struct WorkingSet {
    name: &'static str,
    prefix: &'static str,
    size: usize,
    count: usize,
}

const SETS: [WorkingSet; 3] = [
    WorkingSet {
        name: "1 kB objects x 40,000 (40 MB)",
        prefix: "/s/",
        size: 1_000,
        count: 40_000,
    },
    WorkingSet {
        name: "100 kB objects x 1,000 (100 MB)",
        prefix: "/m/",
        size: 100_000,
        count: 1_000,
    },
    WorkingSet {
        name: "10 MB objects x 30 (300 MB)",
        prefix: "/l/",
        size: LARGEST,
        count: 30,
    },
];

/// A working set that fits edgehook's memory tier, for memory hits with and without a disk.
const HOT: WorkingSet = WorkingSet {
    name: "1 kB objects x 1,000 (1 MB)",
    prefix: "/h/",
    size: 1_000,
    count: 1_000,
};

fn body_size(path: &str) -> usize {
    SETS.iter()
        .chain([&HOT])
        .find(|set| path.starts_with(set.prefix))
        .map_or(1_000, |set| set.size)
}

/// The origin (2 threads): bodies of the size each path's set asks for, cacheable for a day.
fn start_origin() -> SocketAddr {
    let body = Bytes::from((0..LARGEST).map(|i| b'a' + (i % 26) as u8).collect::<Vec<u8>>());
    servers::serve_origin(
        2,
        std::sync::Arc::new(move |path: &str| {
            http::Response::builder()
                .header("content-type", "application/octet-stream")
                .header("cache-control", "max-age=86400")
                .body(Full::new(body.slice(..body_size(path))))
                .expect("response")
        }),
    )
}

fn edgehook_config(listen: SocketAddr, admin: SocketAddr, origin: SocketAddr, disk: Option<&Path>) -> String {
    // Without a disk tier objects are bounded by the memory tier (the default 8 MiB).
    let disk = disk.map_or(String::new(), |path| {
        format!(
            "max_object_size = \"32MiB\"\ndisk = {{ path = \"{}\", size = \"4GiB\" }}\n",
            path.display()
        )
    });
    format!(
        "[server]\nlisten = [\"{listen}\"]\nadmin = \"{admin}\"\nthreads = 2\n[runtime]\nthreads = 1\n\
         [log]\naccess_log = false\nlevel = \"warn\"\n\
         [cache]\nmemory = \"{EDGEHOOK_MEMORY}\"\n{disk}\
         [origins.app]\nurl = \"http://{origin}\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n"
    )
}

fn start_edgehook(dir: &Path, name: &str, config: &str, listen: SocketAddr) -> Running {
    servers::start_edgehook(dir, name, config, listen)
}

fn start_nginx(dir: &Path, listen: SocketAddr, origin: SocketAddr) -> Running {
    let config = format!(
        "{user}\nworker_processes 2;\ndaemon off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  client_body_temp_path {dir}/client_body;\n  proxy_temp_path {dir}/proxy;\n\
         fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
         upstream origin {{ server {origin}; keepalive 64; }}\n  proxy_http_version 1.1;\n  proxy_set_header Connection \"\";\n\
         proxy_cache_path {dir}/cache levels=1:2 keys_zone=disk:64m max_size=4g inactive=7d use_temp_path=off;\n\
         server {{\n    listen {listen};\n    location / {{\n      proxy_pass http://origin;\n      proxy_cache disk;\n    }}\n  }}\n}}\n",
        user = servers::nginx_user_line(),
        dir = dir.display(),
    );
    servers::start_nginx(dir, &config, listen)
}

/// Varnish with its file storage (`-s file`), backend the origin, its built-in VCL.
fn start_varnish(dir: &Path, listen: SocketAddr, origin: SocketAddr) -> Running {
    let storage = format!("file,{},4G", dir.join("storage.bin").display());
    servers::start_varnish(dir, listen, origin, &storage)
}

/// Asks for every path once (16 connections at a time), each answered 200 with its full body.
fn fill(addr: SocketAddr, paths: Vec<String>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let queue = std::sync::Arc::new(std::sync::Mutex::new(paths));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let queue = queue.clone();
            tasks.push(tokio::spawn(async move {
                let mut sender = connect(addr).await;
                loop {
                    let Some(path) = queue.lock().expect("queue").pop() else {
                        break;
                    };
                    if sender.ready().await.is_err() {
                        sender = connect(addr).await;
                    }
                    let (status, _, length) = send(&mut sender, &path).await;
                    assert_eq!(status, 200, "{path}");
                    assert_eq!(length, body_size(&path), "{path}");
                }
            }));
        }
        for task in tasks {
            task.await.expect("fill task");
        }
    });
}

/// One GET: status, `X-Cache`, body length.
async fn send(sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>, path: &str) -> (u16, String, usize) {
    let request = http::Request::get(path)
        .header(http::header::HOST, HOST)
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let status = response.status().as_u16();
    let x_cache = response
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response.into_body().collect().await.expect("body").to_bytes();
    (status, x_cache, body.len())
}

fn get(addr: SocketAddr, path: &str) -> (u16, String, usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut sender = connect(addr).await;
        send(&mut sender, path).await
    })
}

fn paths(set: &WorkingSet) -> Vec<String> {
    (1..=set.count).map(|i| format!("{}{i}", set.prefix)).collect()
}

#[derive(Clone, Copy)]
struct Peak {
    requests_per_second: f64,
    megabytes_per_second: f64,
    p99_ms: f64,
}

/// wrk asking for random objects of `set`.
fn wrk(dir: &Path, addr: SocketAddr, set: &WorkingSet, seconds: u64) -> Peak {
    let script = dir.join(format!("random{}.lua", set.prefix.trim_matches('/')));
    std::fs::write(
        &script,
        format!(
            "math.randomseed(os.time())\nrequest = function()\n  return wrk.format(\"GET\", \"{}\" .. math.random({}))\nend\n",
            set.prefix, set.count
        ),
    )
    .expect("wrk script");
    let peak = load::wrk_script(
        &format!("http://{addr}/"),
        &[format!("Host: {HOST}")],
        Some(&script),
        seconds,
    );
    Peak {
        requests_per_second: peak.requests_per_second,
        megabytes_per_second: peak.requests_per_second * set.size as f64 / 1e6,
        p99_ms: peak.p99_ms,
    }
}

fn median(mut runs: Vec<Peak>) -> Peak {
    runs.sort_by(|a, b| a.requests_per_second.total_cmp(&b.requests_per_second));
    runs[runs.len() / 2]
}

fn metric(admin: SocketAddr, name: &str) -> f64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let text = runtime.block_on(async {
        let mut sender = connect(admin).await;
        let request = http::Request::get("/metrics")
            .header(http::header::HOST, admin.to_string())
            .body(Empty::<Bytes>::new())
            .expect("request");
        let response = sender.send_request(request).await.expect("metrics");
        let body = response.into_body().collect().await.expect("body").to_bytes();
        String::from_utf8_lossy(&body).into_owned()
    });
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

struct Restart {
    objects: usize,
    fill_seconds: f64,
    listening_ms: f64,
    first_hit_ms: f64,
    indexed_ms: f64,
}

/// 100,000 objects of 1 kB on disk, edgehook stopped and started again on the same addresses:
/// how long until it answers, until the first hit, and until the scan has indexed them all.
fn restart(dir: &Path, origin: SocketAddr) -> Restart {
    const OBJECTS: usize = 100_000;
    let disk = dir.join("restart-disk");
    let (listen, admin) = (free_addr(), free_addr());
    let config = edgehook_config(listen, admin, origin, Some(&disk));
    let set = WorkingSet {
        name: "restart",
        prefix: "/r/",
        size: 1_000,
        count: OBJECTS,
    };
    let filled = Instant::now();
    {
        let _edgehook = start_edgehook(dir, "restart.toml", &config, listen);
        fill(listen, paths(&set));
    }
    let fill_seconds = filled.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut command = Command::new(env!("CARGO_BIN_EXE_edgehook"));
    command
        .args(["serve", "--config"])
        .arg(dir.join("restart.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _edgehook = Running::spawn(&mut command, "edgehook");
    wait_for(listen);
    let listening_ms = started.elapsed().as_secs_f64() * 1e3;
    let (status, x_cache, _) = get(listen, "/r/77777");
    assert!(
        status == 200 && x_cache.starts_with("Hit"),
        "first request after restart: {status} {x_cache}"
    );
    let first_hit_ms = started.elapsed().as_secs_f64() * 1e3;
    let deadline = Instant::now() + Duration::from_secs(300);
    while (metric(admin, "edgehook_cache_objects{tier=\"disk\"}") as usize) < OBJECTS {
        assert!(Instant::now() < deadline, "the scan never indexed {OBJECTS} objects");
        std::thread::sleep(Duration::from_millis(20));
    }
    Restart {
        objects: OBJECTS,
        fill_seconds,
        listening_ms,
        first_hit_ms,
        indexed_ms: started.elapsed().as_secs_f64() * 1e3,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let seconds = setting("BENCH_SECONDS", 5);
    let rounds = setting("BENCH_ROUNDS", 3).max(1) as usize;
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let origin = start_origin();

    let (edgehook_addr, edgehook_admin) = (free_addr(), free_addr());
    let edgehook = start_edgehook(
        dir,
        "edgehook.toml",
        &edgehook_config(edgehook_addr, edgehook_admin, origin, Some(&dir.join("edgehook-disk"))),
        edgehook_addr,
    );
    let nginx_addr = free_addr();
    let nginx = start_nginx(&dir.join("nginx"), nginx_addr, origin);
    let varnish_addr = free_addr();
    let varnish = start_varnish(&dir.join("varnish"), varnish_addr, origin);
    let contestants = [
        ("edgehook (memory + disk tier)", edgehook_addr),
        ("nginx proxy_cache", nginx_addr),
        ("Varnish -s file", varnish_addr),
    ];

    let mut rows: Vec<(&WorkingSet, Vec<Peak>, f64)> = Vec::new();
    for set in &SETS {
        for (name, addr) in contestants {
            eprintln!("disk_cache: filling {name} with {}", set.name);
            fill(addr, paths(set));
        }
        let disk_hits_before = metric(edgehook_admin, "edgehook_cache_disk_hits_total");
        let lookups_before = metric(edgehook_admin, "edgehook_cache_lookups_total{result=\"hit\"}");
        let mut runs: Vec<Vec<Peak>> = vec![Vec::new(); contestants.len()];
        for _ in 0..rounds {
            for (i, (_, addr)) in contestants.iter().enumerate() {
                runs[i].push(wrk(dir, *addr, set, seconds));
            }
        }
        let hits = metric(edgehook_admin, "edgehook_cache_lookups_total{result=\"hit\"}") - lookups_before;
        let from_disk = (metric(edgehook_admin, "edgehook_cache_disk_hits_total") - disk_hits_before) / hits.max(1.0);
        rows.push((set, runs.into_iter().map(median).collect(), from_disk));
    }
    drop((edgehook, nginx, varnish));

    // Memory-tier hits, the same binary with and without a disk tier under the memory tier.
    let (memory_only, memory_only_admin) = (free_addr(), free_addr());
    let (over_disk, over_disk_admin) = (free_addr(), free_addr());
    let memory_tiers = [
        start_edgehook(
            dir,
            "memory-only.toml",
            &edgehook_config(memory_only, memory_only_admin, origin, None),
            memory_only,
        ),
        start_edgehook(
            dir,
            "over-disk.toml",
            &edgehook_config(over_disk, over_disk_admin, origin, Some(&dir.join("hot-disk"))),
            over_disk,
        ),
    ];
    for addr in [memory_only, over_disk] {
        fill(addr, paths(&HOT));
    }
    let mut hot: Vec<Vec<Peak>> = vec![Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (i, addr) in [memory_only, over_disk].into_iter().enumerate() {
            hot[i].push(wrk(dir, addr, &HOT, seconds));
        }
    }
    assert_eq!(
        metric(over_disk_admin, "edgehook_cache_disk_hits_total"),
        0.0,
        "the hot set is served from memory"
    );
    drop(memory_tiers);
    let hot: Vec<Peak> = hot.into_iter().map(median).collect();

    let restart = restart(dir, origin);
    let report = report(&contestants.map(|c| c.0), &rows, &hot, &restart, seconds, rounds);
    print!("{report}");
    std::fs::write(repository().join("docs/benchmarks-disk.md"), report).expect("write docs/benchmarks-disk.md");
}

fn report(
    contestants: &[&str; 3],
    rows: &[(&WorkingSet, Vec<Peak>, f64)],
    hot: &[Peak],
    restart: &Restart,
    seconds: u64,
    rounds: usize,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Benchmarks: the disk tier\n\nGenerated by `cargo bench --profile {profile} --bench disk_cache` (`scripts/bench` runs it with `dist`):\n\
         {} cores, loopback, wrk 1 thread x 32 connections asking for random objects of the working set,\n\
         {seconds} s per run, {rounds} rounds alternating the contestants, medians. Each contestant has 2\n\
         worker threads and was filled with the whole set first; edgehook's memory tier is {EDGEHOOK_MEMORY},\n\
         smaller than every set, over a disk tier of 4 GiB (objects over 8 MiB live on disk only).\n\
         The files sit in the page cache on all sides: this measures each cache's own cost, not the disk's.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        profile = build_profile()
    );
    let _ = writeln!(
        out,
        "| working set | {} | {} | {} | edgehook / nginx | edgehook / Varnish | edgehook hits from disk |",
        contestants[0], contestants[1], contestants[2]
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    for (set, peaks, from_disk) in rows {
        let cell = |p: &Peak| {
            format!(
                "{:.0} req/s, {:.0} MB/s, p99 {:.1} ms",
                p.requests_per_second, p.megabytes_per_second, p.p99_ms
            )
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.0}% |",
            set.name,
            cell(&peaks[0]),
            cell(&peaks[1]),
            cell(&peaks[2]),
            peaks[0].requests_per_second / peaks[1].requests_per_second,
            peaks[0].requests_per_second / peaks[2].requests_per_second,
            from_disk * 100.0
        );
    }
    let _ = writeln!(
        out,
        "\nMemory-tier hits ({}, all in memory), the same binary:\n\n\
         | edgehook, memory tier alone | edgehook, memory tier over a disk tier | ratio |\n|---:|---:|---:|\n\
         | {:.0} req/s | {:.0} req/s | {:.2} |\n",
        HOT.name,
        hot[0].requests_per_second,
        hot[1].requests_per_second,
        hot[1].requests_per_second / hot[0].requests_per_second
    );
    let _ = writeln!(
        out,
        "After a restart with {} objects of 1 kB on disk (filled in {:.0} s), counted from the new\n\
         process's start: listening after {:.0} ms, first hit (no origin request) after {:.0} ms,\n\
         every object indexed by the background scan after {:.0} ms.",
        restart.objects, restart.fill_seconds, restart.listening_ms, restart.first_hit_ms, restart.indexed_ms
    );
    out
}
