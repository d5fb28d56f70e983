//! How fast a change reaches a fleet: three edgehook nodes sharing one etcd (Debian's
//! etcd-server) on loopback. Measures, over `BENCH_ROUNDS` (default 30) rounds each: the time
//! from an alias move through one node to every node serving the new version (polled on each
//! node), and the time a purge through one node takes until every node has applied it (the
//! purge's own answer, which waits for them). Prints the figures and writes
//! docs/benchmarks-fleet.md. Run with `cargo bench --bench fleet` (or `--profile dist`).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-token";

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(address: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(address).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_etcd(dir: &Path) -> (Running, String) {
    let (client, peer) = (free_addr(), free_addr());
    let client_url = format!("http://{client}");
    let peer_url = format!("http://{peer}");
    let child = Command::new("etcd")
        .args(["--name", "bench", "--data-dir"])
        .arg(dir.join("etcd"))
        .args([
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
        ])
        .args([
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
        ])
        .args(["--initial-cluster", &format!("bench={peer_url}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd (Debian's etcd-server; scripts/setup installs it)");
    wait_port(client, "etcd");
    (Running(child), client_url)
}

struct Node {
    _process: Running,
    http: SocketAddr,
    admin: SocketAddr,
}

fn start_node(dir: &Path, index: usize, etcd: &str, origin: SocketAddr) -> Node {
    let dir = dir.join(format!("node-{index}"));
    std::fs::create_dir_all(&dir).expect("node directory");
    let (http, admin) = (free_addr(), free_addr());
    std::fs::write(dir.join("f.mjs"), answering("config")).expect("function");
    let config = format!(
        "[server]\nlisten = [\"{http}\"]\nadmin = \"{admin}\"\nadmin_token = \"{TOKEN}\"\nthreads = 1\n\
         [runtime]\nthreads = 1\n\
         [deploy]\nstate_dir = \"{dir}/state\"\nstore = \"etcd\"\n[deploy.etcd]\nendpoints = [\"{etcd}\"]\nnode = \"edge-{index}\"\n\
         [origins.app]\nurl = \"http://{origin}\"\n\
         [[behaviors]]\npath = \"/cached/*\"\norigin = \"app\"\n\
         [[behaviors]]\npath = \"*\"\norigin = \"app\"\ncache = false\nviewer_request = \"f:live\"\n\
         [functions.f]\ncode = \"{dir}/f.mjs\"\n",
        dir = dir.display()
    );
    let path = dir.join("edgehook.toml");
    std::fs::write(&path, config).expect("config");
    let child = Command::new(env!("CARGO_BIN_EXE_edgehook"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .env("TMPDIR", &dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("edgehook.log")).expect("log"))
        .spawn()
        .expect("edgehook");
    wait_port(admin, "edgehook");
    Node {
        _process: Running(child),
        http,
        admin,
    }
}

fn answering(name: &str) -> String {
    format!("export const handler = async () => ({{ status: '200', body: '{name}' }});")
}

/// A keep-alive origin answering every request with a cacheable body.
async fn origin() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    let response = hyper::Response::builder()
                        .header("cache-control", "max-age=3600")
                        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"cached")))
                        .expect("a response");
                    Ok::<_, std::convert::Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

async fn admin(
    client: &reqwest::Client,
    node: &Node,
    method: reqwest::Method,
    path: &str,
    body: &str,
) -> serde_json::Value {
    let response = client
        .request(method, format!("http://{}{path}", node.admin))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(body.to_string())
        .send()
        .await
        .expect("admin call");
    let status = response.status();
    let text = response.text().await.expect("an answer");
    let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert!(status.is_success(), "{path}: {status} {value}");
    value
}

async fn serves(client: &reqwest::Client, node: &Node) -> String {
    client
        .get(format!("http://{}/", node.http))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(mut samples: Vec<f64>) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    (
        percentile(&samples, 0.5),
        percentile(&samples, 0.9),
        samples[samples.len() - 1],
    )
}

fn main() {
    if Command::new("etcd").arg("--version").output().is_err() {
        eprintln!("fleet bench: no etcd server; install Debian's etcd-server (scripts/setup does)");
        return;
    }
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let (_etcd, etcd) = start_etcd(dir.path());
    let origin = runtime.block_on(origin());
    // The first node seeds versions 1 and 2 and the alias before the others start.
    let client = reqwest::Client::new();
    let mut nodes = Vec::new();
    let (moves, purges, applied) = runtime.block_on(async {
        nodes.push(start_node_seeded(&client, dir.path(), &etcd, origin).await);
        for index in 1..3 {
            nodes.push(start_node(dir.path(), index, &etcd, origin));
        }
        let mut moves = Vec::new();
        for round in 0..rounds {
            let version = 1 + round % 2;
            let expected = if version == 1 { "one" } else { "two" };
            let through = &nodes[round % 3];
            let started = Instant::now();
            admin(
                &client,
                through,
                reqwest::Method::PUT,
                "/functions/f/aliases/live",
                &format!("{{\"version\": {version}}}"),
            )
            .await;
            let mut pending: Vec<&Node> = nodes.iter().collect();
            while !pending.is_empty() {
                let mut still = Vec::new();
                for node in pending {
                    if serves(&client, node).await != expected {
                        still.push(node);
                    }
                }
                pending = still;
            }
            moves.push(started.elapsed().as_secs_f64() * 1e3);
        }
        let (mut purges, mut applied) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            for node in &nodes {
                client
                    .get(format!("http://{}/cached/x", node.http))
                    .send()
                    .await
                    .expect("fill");
            }
            let started = Instant::now();
            let answer = admin(
                &client,
                &nodes[round % 3],
                reqwest::Method::POST,
                "/cache/purge",
                r#"{"paths": ["/cached/*"], "wait": "10s"}"#,
            )
            .await;
            purges.push(started.elapsed().as_secs_f64() * 1e3);
            assert_eq!(answer["status"], "Completed", "{answer}");
            let requested = answer["requested_ms"].as_u64().unwrap_or(0);
            let last = answer["applied"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(_, a)| a["applied_ms"].as_u64())
                .max()
                .unwrap_or(requested);
            applied.push(last.saturating_sub(requested) as f64);
        }
        (moves, purges, applied)
    });
    let (move_p50, move_p90, move_max) = summary(moves);
    let (purge_p50, purge_p90, purge_max) = summary(purges);
    let (applied_p50, applied_p90, applied_max) = summary(applied);
    let table = format!(
        "| what | median | p90 | max |\n|---|---:|---:|---:|\n\
         | alias moved through one node -> all three serve the new version | {move_p50:.1} ms | {move_p90:.1} ms | {move_max:.1} ms |\n\
         | purge through one node -> its answer (all three applied it) | {purge_p50:.1} ms | {purge_p90:.1} ms | {purge_max:.1} ms |\n\
         | purge recorded -> the last node applied it (node clocks) | {applied_p50:.0} ms | {applied_p90:.0} ms | {applied_max:.0} ms |\n"
    );
    println!("{table}");
    let etcd_version = Command::new("etcd")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default();
    let report = format!(
        "# Benchmarks: how fast a change reaches a fleet\n\n\
         Written by `cargo bench --bench fleet` (`benches/fleet.rs`) on {}. Do not edit: rerun it.\n\n\
         Three edgehook nodes (1 proxy thread, 1 JS thread each) and one etcd member ({etcd_version}) on one \
         {}-core machine, loopback; {rounds} rounds each, the change made through each node in turn. \
         An alias move is timed from the admin call to the moment every node answers with the new version \
         (polled one request after another); a purge from its admin call to its answer, which waits until \
         every node has applied it.\n\n{table}",
        httpdate::fmt_http_date(std::time::SystemTime::now()),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    );
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks-fleet.md");
    std::fs::write(&out, report).expect("write the report");
    eprintln!("wrote {}", out.display());
}

/// Node 0, started after seeding f's versions 1 ("one") and 2 ("two") and alias `live` -> 1
/// through a node that has only `f` itself (the alias does not exist yet).
async fn start_node_seeded(client: &reqwest::Client, dir: &Path, etcd: &str, origin: SocketAddr) -> Node {
    let seed_dir = dir.join("seed");
    std::fs::create_dir_all(&seed_dir).expect("seed directory");
    let admin_address = free_addr();
    std::fs::write(seed_dir.join("f.mjs"), answering("config")).expect("function");
    let config = format!(
        "[server]\nlisten = [\"{}\"]\nadmin = \"{admin_address}\"\nadmin_token = \"{TOKEN}\"\nthreads = 1\n[runtime]\nthreads = 1\n\
         [deploy]\nstate_dir = \"{d}/state\"\nstore = \"etcd\"\n[deploy.etcd]\nendpoints = [\"{etcd}\"]\nnode = \"seed\"\n\
         [origins.app]\nurl = \"http://{origin}\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\nviewer_request = \"f\"\n\
         [functions.f]\ncode = \"{d}/f.mjs\"\n",
        free_addr(),
        d = seed_dir.display()
    );
    std::fs::write(seed_dir.join("edgehook.toml"), config).expect("config");
    let seeder = Running(
        Command::new(env!("CARGO_BIN_EXE_edgehook"))
            .args(["serve", "--config"])
            .arg(seed_dir.join("edgehook.toml"))
            .env("TMPDIR", &seed_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("edgehook"),
    );
    wait_port(admin_address, "the seeding node");
    let seed = Node {
        _process: seeder,
        http: free_addr(),
        admin: admin_address,
    };
    for name in ["one", "two"] {
        admin(
            client,
            &seed,
            reqwest::Method::PUT,
            "/functions/f/code",
            &answering(name),
        )
        .await;
        admin(client, &seed, reqwest::Method::POST, "/functions/f/versions", "").await;
    }
    admin(
        client,
        &seed,
        reqwest::Method::PUT,
        "/functions/f/aliases/live",
        r#"{"version": 1}"#,
    )
    .await;
    // A clean stop, so that it leaves the fleet at once (purges would wait for it otherwise).
    let mut seeder = seed._process;
    // SAFETY: kill(2) on our own child's pid with SIGTERM has no memory effects.
    unsafe {
        libc::kill(seeder.0.id() as i32, libc::SIGTERM);
    }
    let _ = seeder.0.wait();
    start_node(dir, 0, etcd, origin)
}
