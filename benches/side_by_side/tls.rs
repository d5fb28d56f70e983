//! TLS load: a new connection per request, with full or resumed handshakes (a client of our
//! own: wrk never resumes a session), and HTTP/2 over TLS with h2load.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

/// A self-signed ECDSA P-256 certificate for `localhost`, written as `cert.pem` and `key.pem`
/// in `dir`: the certificate file, the key file, and the certificate for clients to trust.
pub struct Certificate {
    pub cert: PathBuf,
    pub key: PathBuf,
    der: rustls::pki_types::CertificateDer<'static>,
}

pub fn certificate(dir: &Path) -> Certificate {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).expect("write cert.pem");
    std::fs::write(&key, made.key_pair.serialize_pem()).expect("write key.pem");
    Certificate {
        cert,
        key,
        der: made.cert.der().clone(),
    }
}

/// How handshakes went: connections per second, and the share that resumed a session.
#[derive(Debug, Clone, Copy)]
pub struct Handshakes {
    pub per_second: f64,
    pub resumed: f64,
}

/// 32 connections at a time from one thread (like wrk -t1 -c32), each a TLS 1.3 handshake,
/// one `GET path` with `Connection: close`, and the answer read to its end, for `seconds`.
/// With `resume`, the client keeps the server's session tickets and offers them.
pub fn handshakes(addr: SocketAddr, path: &str, certificate: &Certificate, resume: bool, seconds: u64) -> Handshakes {
    const CONNECTIONS: usize = 32;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate.der.clone()).expect("trust the certificate");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let end = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for _ in 0..CONNECTIONS {
            let (connector, request) = (connector.clone(), request.clone());
            tasks.push(tokio::spawn(async move {
                let (mut done, mut resumed) = (0u64, 0u64);
                let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
                let mut answer = Vec::with_capacity(1024);
                while Instant::now() < end {
                    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
                    tcp.set_nodelay(true).expect("nodelay");
                    let mut tls = connector.connect(name.clone(), tcp).await.expect("TLS handshake");
                    if tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                        resumed += 1;
                    }
                    tls.write_all(request.as_bytes()).await.expect("request");
                    answer.clear();
                    // The server closes after its answer; a missing close_notify is not an error
                    // of the answer.
                    let _ = tls.read_to_end(&mut answer).await;
                    assert!(
                        answer.starts_with(b"HTTP/1.1 200"),
                        "a TLS request was answered {:?}",
                        String::from_utf8_lossy(&answer[..answer.len().min(80)])
                    );
                    done += 1;
                }
                (done, resumed)
            }));
        }
        let (mut done, mut resumed) = (0u64, 0u64);
        for task in tasks {
            let (d, r) = task.await.expect("connection task");
            done += d;
            resumed += r;
        }
        Handshakes {
            per_second: done as f64 / seconds as f64,
            resumed: resumed as f64 / done.max(1) as f64,
        }
    })
}

/// h2load, 1 thread, 32 connections of 10 concurrent streams each, for `seconds`: requests per
/// second. Panics when a request failed.
pub fn h2load(url: &str, seconds: u64) -> f64 {
    let out = Command::new("h2load")
        .args(["-t1", "-c32", "-m10", "-D", &seconds.to_string(), url])
        .output()
        .expect("h2load is installed (scripts/bench installs nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    let counts = text
        .lines()
        .find(|l| l.starts_with("requests:"))
        .unwrap_or_else(|| panic!("no request counts in h2load output:\n{text}"));
    assert!(
        counts.contains(" 0 failed, 0 errored"),
        "h2load saw failures on {url}:\n{text}"
    );
    let status = text
        .lines()
        .find(|l| l.starts_with("status codes:"))
        .unwrap_or_default();
    assert!(
        status.contains(" 0 3xx, 0 4xx, 0 5xx"),
        "h2load saw answers other than 2xx on {url}:\n{text}"
    );
    text.lines()
        .find_map(|l| l.strip_prefix("finished in "))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|v| v.strip_suffix(" req/s"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no req/s in h2load output:\n{text}"))
}
