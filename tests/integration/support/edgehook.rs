//! Runs the real `edgehook` binary on loopback ephemeral ports with a generated config.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A loopback address for edgehook to listen on. Not one of the kernel's ephemeral ports: a port
/// found free by `bind(0)` and let go could be handed to another test's `bind(0)` before
/// edgehook takes it, and a test would then talk to another test's edgehook. Ports below the
/// ephemeral range are taken by nothing but this function, which hands each out once per run.
pub fn free_addr() -> SocketAddr {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    const FIRST: usize = 20_000;
    let ephemeral_start: usize = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768);
    if ephemeral_start <= FIRST + 1_000 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        return listener.local_addr().expect("local address");
    }
    let span = ephemeral_start - FIRST;
    // Another run of the tests at the same time starts elsewhere in the range.
    let offset = std::process::id() as usize * 997;
    loop {
        let port = FIRST + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let address = SocketAddr::from(([127, 0, 0, 1], port as u16));
        if TcpListener::bind(address).is_ok() {
            return address;
        }
    }
}

pub struct Edgehook {
    child: Option<Child>,
    pub http: SocketAddr,
    pub admin: SocketAddr,
    pub tls: SocketAddr,
    /// Holds the config and log; removed when the test ends.
    _dir: tempfile::TempDir,
    pub log: PathBuf,
}

/// Writes a config: a `[server]` table on fresh ports (plus `server_extra` lines) followed by
/// `rest`, in which `{tls}` stands for a free TLS address and `{dir}` for the temp directory.
pub fn write_config(
    dir: &std::path::Path,
    http: SocketAddr,
    admin: SocketAddr,
    tls: SocketAddr,
    server_extra: &str,
    rest: &str,
) -> PathBuf {
    let rest = rest
        .replace("{tls}", &tls.to_string())
        .replace("{dir}", &dir.display().to_string());
    // The state directory defaults to one in the working directory, which every test shares:
    // one test's uploaded code would be another's `$LATEST`.
    let state = if rest.contains("[deploy]") {
        String::new()
    } else {
        format!("[deploy]\nstate_dir = \"{}\"\n", dir.join("state").display())
    };
    let config = format!(
        "[server]\nlisten = [\"{http}\"]\nadmin = \"{admin}\"\nadmin_token = \"{ADMIN_TOKEN}\"\nthreads = 2\nshutdown_timeout = \"10s\"\n{server_extra}\n{state}{rest}"
    );
    let path = dir.join("edgehook.toml");
    std::fs::write(&path, config).expect("write config");
    path
}

impl Edgehook {
    pub async fn start(rest: &str) -> Edgehook {
        Self::start_with("", rest).await
    }

    pub async fn start_with(server_extra: &str, rest: &str) -> Edgehook {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, server_extra, rest).await
    }

    /// Starts with files the test already put in `dir`.
    pub async fn start_in(dir: tempfile::TempDir, server_extra: &str, rest: &str) -> Edgehook {
        let mut edgehook = Self::spawn_in(dir, server_extra, rest);
        edgehook.wait_ready().await;
        edgehook
    }

    /// Starts the process and returns at once, before its listeners are up.
    pub fn spawn_in(dir: tempfile::TempDir, server_extra: &str, rest: &str) -> Edgehook {
        Self::spawn_with_env(dir, server_extra, rest, &[])
    }

    /// `spawn_in`, with these environment variables set for the process.
    pub fn spawn_with_env(dir: tempfile::TempDir, server_extra: &str, rest: &str, env: &[(&str, &str)]) -> Edgehook {
        let (http, admin, tls) = (free_addr(), free_addr(), free_addr());
        let config = write_config(dir.path(), http, admin, tls, server_extra, rest);
        let log = dir.path().join("edgehook.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        // The access log (stdout) and the diagnostic log (stderr) in one file, as a terminal
        // shows them.
        let access_log = log_file.try_clone().expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_edgehook"))
            .args(["serve", "--config"])
            .arg(&config)
            .env_remove("RUST_LOG")
            // The process's runtime directory (its internal socket) goes in the test's temp
            // directory: a process killed at the test's end does not remove its own.
            .env("TMPDIR", dir.path())
            .envs(env.iter().copied())
            .stdout(access_log)
            .stderr(log_file)
            .spawn()
            .expect("start edgehook");
        Edgehook {
            child: Some(child),
            http,
            admin,
            tls,
            _dir: dir,
            log,
        }
    }

    /// The first connection `address` (one of its listeners) accepts, tried again and again
    /// from the moment the process starts (up to 20 s).
    pub async fn first_connection(&mut self, address: SocketAddr) -> tokio::net::TcpStream {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("edgehook exited early ({status}):\n{}", self.log_text());
            }
            if let Ok(stream) = tokio::net::TcpStream::connect(address).await {
                // A connect to an ephemeral port nobody listens on can pick that same port as
                // its own and connect to itself (`free_addr` avoids those ports; kept safe).
                if stream.local_addr().ok() != stream.peer_addr().ok() {
                    return stream;
                }
            }
            assert!(
                Instant::now() < deadline,
                "edgehook did not start:\n{}",
                self.log_text()
            );
            // Not a timer: tokio's timers have a resolution of 1 ms, longer than the window looked for.
            tokio::task::yield_now().await;
        }
    }

    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("edgehook exited early ({status}):\n{}", self.log_text());
            }
            let admin_up = TcpStream::connect(self.admin).is_ok();
            let http_up = TcpStream::connect(self.http).is_ok();
            if admin_up && http_up {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "edgehook did not start:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// `POST /reload` with the admin token.
    pub async fn reload(&self) -> reqwest::Response {
        client()
            .post(self.admin_url("/reload"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("the admin listener answers")
    }

    /// The admin listener's `/metrics` page.
    pub async fn metrics_page(&self) -> String {
        client()
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .expect("the admin listener answers")
            .text()
            .await
            .expect("a metrics page")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (up to 5 s) until the log contains `needle`: log lines are written after the
    /// response has gone out.
    pub async fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.log_text();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "`{needle}` never appeared in the log:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).expect("running")
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid with a valid signal number has no memory effects.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Edgehook {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An admin API call (with the admin token when `token`): the status and the JSON answer (or
/// the text, when it is not JSON).
pub async fn admin(
    edge: &Edgehook,
    method: reqwest::Method,
    path: &str,
    body: &str,
    token: bool,
) -> (u16, serde_json::Value) {
    let mut request = client().request(method, edge.admin_url(path)).body(body.to_string());
    if token {
        request = request.header("authorization", format!("Bearer {ADMIN_TOKEN}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// Sends raw bytes and returns everything the server answers until it closes (or 5 s pass).
pub async fn raw_request(addr: SocketAddr, request: &[u8]) -> String {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    raw_exchange(stream, request).await
}

/// `raw_request` on a connection already made.
pub async fn raw_exchange(mut stream: tokio::net::TcpStream, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request).await.expect("send");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Config lines for a proxy in front of `origin_url` alone, every path, cache off.
pub fn uncached_proxy_to(origin_url: &str) -> String {
    format!("[origins.app]\nurl = \"{origin_url}\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\ncache = false\n")
}

/// Code as the state store keeps a function version: `source` as `f.mjs`, handler `handler`.
pub fn stored_code(source: &str) -> ::edgehook::deploy::store::FunctionCode {
    ::edgehook::deploy::store::FunctionCode {
        package: std::sync::Arc::new(::edgehook::package::Package::single("f.mjs", source)),
        layers: Vec::new(),
        handler: "handler".into(),
        timeout_ms: 5000,
        memory: 64 << 20,
        env: Default::default(),
    }
}

/// A GET through `client()`, its body read whole.
pub async fn get_text(url: &str) -> String {
    client()
        .get(url)
        .send()
        .await
        .expect("an answer")
        .text()
        .await
        .expect("a body")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// A self-signed certificate for `localhost`/127.0.0.1: (cert PEM, key PEM).
pub fn self_signed() -> (String, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).expect("generate certificate");
    (cert.cert.pem(), cert.key_pair.serialize_pem())
}

/// A rustls acceptor for a PEM certificate and key.
pub fn tls_acceptor(cert_pem: &str, key_pem: &str) -> tokio_rustls::TlsAcceptor {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
}
