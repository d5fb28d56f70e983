//! The servers of the side-by-side run: the origin (nginx's `return 200`), Varnish, edgehook (the binary cargo
//! built with this bench, same profile: `dist` under scripts/bench), nginx (Debian's, with njs)
//! and the bare pingora proxy (this bench binary again, as a child process). Every one listens on
//! an ephemeral loopback port and stops when dropped.

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set in the child process that serves the bare pingora proxy: "LISTEN ORIGIN".
pub const BASELINE_ENV: &str = "EDGEHOOK_BENCH_PINGORA_BASELINE";

pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("ephemeral port")
}

pub fn wait_for(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{addr} never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The origin: nginx's `return 200` with a short cacheable body for every path, on workers of
/// its own, so that it is not what caps the proxies in front of it (the bench reports its rate).
pub fn start_origin(dir: &Path, workers: usize) -> (Running, SocketAddr) {
    let listen = free_addr();
    let config = format!(
        "{user}\nworker_processes {workers};\ndaemon off;\npid {dir}/nginx.pid;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  default_type text/plain;\n  keepalive_requests 1000000;\n\
           client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir}; uwsgi_temp_path {dir}; scgi_temp_path {dir};\n\
           server {{\n    listen {listen};\n    location / {{\n      add_header cache-control \"max-age=3600\" always;\n\
               return 200 \"hello from the origin\\n\";\n    }}\n  }}\n}}\n",
        user = nginx_user_line(),
        dir = dir.display(),
    );
    (start_nginx(dir, &config, listen), listen)
}

/// Varnish in front of `origin` with its built-in VCL (which caches what the origin marks
/// cacheable), storing in `storage` (`malloc,256M`, `file,PATH,4G`), its shared log off.
pub fn start_varnish(dir: &Path, listen: SocketAddr, origin: SocketAddr, storage: &str) -> Running {
    std::fs::create_dir_all(dir).expect("varnish dir");
    let mut command = Command::new("varnishd");
    command
        .args(["-F", "-j", "none", "-a", &listen.to_string(), "-b", &origin.to_string()])
        .arg("-n")
        .arg(dir.join("work"))
        .args(["-s", storage])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let running = Running::spawn(&mut command, "varnishd (scripts/bench installs varnish)");
    wait_for(listen);
    running
}

/// What an origin answers to a request for a path.
#[allow(dead_code)] // used by benches/disk_cache.rs, which shares this module
pub type Respond = std::sync::Arc<dyn Fn(&str) -> http::Response<Full<Bytes>> + Send + Sync>;

/// An HTTP/1.1 origin on loopback answering every request with `respond(path)`, on `threads`
/// threads of its own (one: a current-thread runtime).
#[allow(dead_code)] // used by benches/disk_cache.rs, which shares this module
pub fn serve_origin(threads: usize, respond: Respond) -> SocketAddr {
    let addr = free_addr();
    std::thread::spawn(move || {
        let runtime = if threads <= 1 {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()
        }
        .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr).await.expect("bind origin");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let respond = respond.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                        let response = respond(request.uri().path());
                        async move { Ok::<_, std::convert::Infallible>(response) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    wait_for(addr);
    addr
}

/// A server process, stopped on drop: SIGTERM first (nginx's master takes its workers down with
/// it; a SIGKILLed master would leave them serving), SIGKILL if it lingers.
pub struct Running {
    child: Child,
}

impl Running {
    pub fn spawn(command: &mut Command, what: &str) -> Running {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Running { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // SAFETY: kill only sends a signal to our own child, identified by its pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fills `@NAME@` placeholders of a template.
pub fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut text = template.to_string();
    for (name, value) in values {
        text = text.replace(&format!("@{name}@"), value);
    }
    let unfilled = text
        .split('@')
        .skip(1)
        .step_by(2)
        .find(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
    assert!(
        unfilled.is_none(),
        "placeholder @{}@ left unfilled",
        unfilled.unwrap_or_default()
    );
    text
}

/// edgehook serving `config` (written into `dir`); returns once it listens on `listen`.
pub fn start_edgehook(dir: &Path, name: &str, config: &str, listen: SocketAddr) -> Running {
    let path = dir.join(name);
    std::fs::write(&path, config).expect("write edgehook config");
    let running = Running::spawn(
        Command::new(env!("CARGO_BIN_EXE_edgehook"))
            .args(["serve", "--config"])
            .arg(&path),
        "edgehook",
    );
    wait_for(listen);
    running
}

/// nginx with `config` as its whole configuration, its files in `dir`.
pub fn start_nginx(dir: &Path, config: &str, listen: SocketAddr) -> Running {
    std::fs::create_dir_all(dir).expect("nginx dir");
    let path = dir.join("nginx.conf");
    std::fs::write(&path, config).expect("write nginx config");
    // Its prefix, error log and configuration all in `dir`.
    let nginx = || {
        let mut command = Command::new("nginx");
        command
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&path);
        command
    };
    let check = nginx()
        .arg("-t")
        .output()
        .expect("nginx is installed (scripts/bench installs it)");
    assert!(
        check.status.success(),
        "nginx refuses the bench configuration:\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let running = Running::spawn(&mut nginx(), "nginx");
    wait_for(listen);
    running
}

/// The `user` line nginx needs: run as root, its workers would otherwise switch to `nobody` and
/// could not write the cache in our private temporary directory.
pub fn nginx_user_line() -> String {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        "user root;".to_string()
    } else {
        String::new()
    }
}

/// The bare pingora proxy (benches/pingora_baseline.rs), served by this bench binary in a child.
pub fn start_bare_pingora(origin: SocketAddr) -> (Running, SocketAddr) {
    let listen = free_addr();
    let running = Running::spawn(
        Command::new(std::env::current_exe().expect("own path")).env(BASELINE_ENV, format!("{listen} {origin}")),
        "the bare pingora proxy",
    );
    wait_for(listen);
    (running, listen)
}

/// Resident memory of a process and its children (nginx's workers), in bytes.
pub fn resident_with_children(pid: u32) -> u64 {
    let mut total = resident(pid);
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if parent_of(child) == Some(pid) {
                total += resident(child);
            }
        }
    }
    total
}

fn resident(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The repository's root (for the bench's own files and the examples).
pub fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A whole-number setting from the environment (`BENCH_SECONDS`, `BENCH_ROUNDS`), else `default`.
pub fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The profile this bench (and the edgehook binary beside it) was built with: `bench` builds
/// land in `target/release`, `--profile dist` ones in `target/dist`.
pub fn build_profile() -> String {
    let binary = Path::new(env!("CARGO_BIN_EXE_edgehook"));
    match binary
        .parent()
        .and_then(|dir| dir.file_name())
        .and_then(|name| name.to_str())
    {
        Some("release") => "bench".to_string(),
        Some(name) => name.to_string(),
        None => "unknown".to_string(),
    }
}
