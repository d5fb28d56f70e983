//! Certificates by SNI: each distribution presents its own certificate, unknown names get the
//! default one, and certificates are reloaded (on SIGHUP, when their files change) without
//! dropping connections; a certificate that does not load is refused and the old one kept.

use crate::support::*;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// A test certificate authority that signs the sites' certificates.
struct Authority {
    key: rcgen::KeyPair,
    cert: rcgen::Certificate,
}

impl Authority {
    fn new() -> Authority {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Authority { key, cert }
    }

    /// Writes a certificate for `names` (valid from `from` to `to`, as years) and its key
    /// as `{name}.pem` and `{name}-key.pem` in `dir`.
    fn issue(&self, dir: &Path, name: &str, names: &[&str], years: (i32, i32)) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.not_before = rcgen::date_time_ymd(years.0, 1, 1);
        params.not_after = rcgen::date_time_ymd(years.1, 1, 1);
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        // Written beside, then renamed over: a reader never sees half a file.
        for (file, text) in [
            (format!("{name}-key.pem"), key.serialize_pem()),
            (format!("{name}.pem"), cert.pem()),
        ] {
            let partial = dir.join(format!("{file}.partial"));
            std::fs::write(&partial, text).unwrap();
            std::fs::rename(partial, dir.join(file)).unwrap();
        }
    }
}

const VALID: (i32, i32) = (2020, 2099);

/// Accepts any certificate and keeps the leaf presented.
#[derive(Debug)]
struct Keep(Arc<Mutex<Option<Vec<u8>>>>);

impl rustls::client::danger::ServerCertVerifier for Keep {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        *self.0.lock().unwrap() = Some(end_entity.to_vec());
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS connection to `addr` asking for `name` (none: an IP address, no SNI), speaking
/// HTTP/1.1; and the leaf certificate it was shown.
async fn connect(
    addr: SocketAddr,
    name: Option<&str>,
) -> (tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Vec<u8>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let shown = Arc::new(Mutex::new(None));
    let config = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Keep(shown.clone())))
        .with_no_client_auth();
    let server_name = match name {
        Some(name) => ServerName::try_from(name.to_string()).unwrap(),
        None => ServerName::IpAddress(addr.ip().into()),
    };
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .unwrap();
    let leaf = shown.lock().unwrap().take().unwrap();
    (stream, leaf)
}

/// The DNS names of a certificate.
fn names(der: &[u8]) -> Vec<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(name) => Some(name.to_string()),
            _ => None,
        })
        .collect()
}

/// Sends one keep-alive request for `host` on `stream`: the status and body.
async fn exchange(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    host: &str,
    path: &str,
) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        assert!(n > 0, "the connection closed: {}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&received).to_string();
        let Some(end) = text.find("\r\n\r\n") else { continue };
        let head = text[..end].to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        if received.len() >= end + 4 + length {
            let status = text[9..12].parse().unwrap();
            return (status, text[end + 4..end + 4 + length].to_string());
        }
    }
}

async fn origin(name: &'static str) -> Origin {
    Origin::start(move |seen| Reply::ok(format!("{name} {}", seen.uri))).await
}

/// Three sites: `www` and `shop` with certificates of their own (shop's with a wildcard),
/// `blog` without (the default certificate, for `default.test`, answers for it).
fn three_sites(
    dir: &Path,
    authority: &Authority,
    www: &Origin,
    shop: &Origin,
    blog: &Origin,
    tls_extra: &str,
) -> String {
    authority.issue(dir, "www", &["www.example.test"], VALID);
    authority.issue(dir, "shop", &["shop.example.test", "*.shop.example.test"], VALID);
    authority.issue(dir, "default", &["default.test"], VALID);
    std::fs::write(dir.join("ca.pem"), authority.cert.pem()).unwrap();
    format!(
        r#"[server.tls]
listen = ["{{tls}}"]
cert = "{{dir}}/default.pem"
key = "{{dir}}/default-key.pem"
{tls_extra}
[origins.www]
url = "{}"
[origins.shop]
url = "{}"
[origins.blog]
url = "{}"
[distributions.www]
domains = ["www.example.test"]
tls = {{ cert = "{{dir}}/www.pem", key = "{{dir}}/www-key.pem" }}
[[distributions.www.behaviors]]
path = "*"
origin = "www"
[distributions.shop]
domains = ["shop.example.test", "*.shop.example.test"]
tls = {{ cert = "{{dir}}/shop.pem", key = "{{dir}}/shop-key.pem" }}
[[distributions.shop.behaviors]]
path = "*"
origin = "shop"
[distributions.blog]
domains = ["blog.test"]
[[distributions.blog.behaviors]]
path = "*"
origin = "blog"
"#,
        www.url(),
        shop.url(),
        blog.url()
    )
}

struct Sites {
    edge: Edgehook,
    authority: Authority,
    dir: std::path::PathBuf,
    _origins: [Origin; 3],
}

async fn start(tls_extra: &str) -> Sites {
    let authority = Authority::new();
    let origins = [origin("www").await, origin("shop").await, origin("blog").await];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let rest = three_sites(&path, &authority, &origins[0], &origins[1], &origins[2], tls_extra);
    let edge = Edgehook::start_in(dir, "", &rest).await;
    Sites {
        edge,
        authority,
        dir: path,
        _origins: origins,
    }
}

/// Waits (up to 10 s) until a new connection asking for `name` is shown a certificate other
/// than `old`; returns it.
async fn wait_new_certificate(addr: SocketAddr, name: &str, old: &[u8]) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, leaf) = connect(addr, Some(name)).await;
        if leaf != old {
            return leaf;
        }
        assert!(Instant::now() < deadline, "{name} still shows its old certificate");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn each_site_presents_its_own_certificate_and_others_the_default_one() {
    let sites = start("").await;
    let addr = sites.edge.tls;
    let shown = |name: Option<&'static str>| async move { names(&connect(addr, name).await.1) };
    assert_eq!(shown(Some("www.example.test")).await, ["www.example.test"]);
    assert_eq!(
        shown(Some("shop.example.test")).await,
        ["shop.example.test", "*.shop.example.test"]
    );
    assert_eq!(
        shown(Some("eu.shop.example.test")).await,
        ["shop.example.test", "*.shop.example.test"]
    );
    assert_eq!(
        shown(Some("blog.test")).await,
        ["default.test"],
        "no certificate of its own"
    );
    assert_eq!(shown(Some("unknown.test")).await, ["default.test"]);
    assert_eq!(shown(None).await, ["default.test"], "no SNI");

    // A browser-like client, verifying against the authority, reaches each site over HTTP/2.
    let root = reqwest::Certificate::from_pem(&std::fs::read(sites.dir.join("ca.pem")).unwrap()).unwrap();
    let browser = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(root)
        .resolve("www.example.test", addr)
        .resolve("eu.shop.example.test", addr)
        .build()
        .unwrap();
    for (host, body) in [("www.example.test", "www /x"), ("eu.shop.example.test", "shop /x")] {
        let response = browser
            .get(format!("https://{host}:{}/x", addr.port()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.text().await.unwrap(), body);
    }

    let page = sites.edge.metrics_page().await;
    let expiry = (time::Date::from_calendar_date(2099, time::Month::January, 1)
        .unwrap()
        .midnight()
        .assume_utc())
    .unix_timestamp();
    for series in [
        format!(r#"edgehook_tls_certificate_expiry_seconds{{distribution="www",domain="www.example.test"}} {expiry}"#),
        format!(
            r#"edgehook_tls_certificate_expiry_seconds{{distribution="shop",domain="*.shop.example.test"}} {expiry}"#
        ),
        format!(r#"edgehook_tls_certificate_expiry_seconds{{distribution="-",domain="default.test"}} {expiry}"#),
    ] {
        assert!(page.contains(&series), "{series} not in\n{page}");
    }
}

#[tokio::test]
async fn a_connection_made_for_one_site_does_not_carry_anothers_requests() {
    let sites = start("").await;
    let (mut stream, _) = connect(sites.edge.tls, Some("www.example.test")).await;
    assert_eq!(
        exchange(&mut stream, "www.example.test", "/a").await,
        (200, "www /a".into())
    );
    let (status, body) = exchange(&mut stream, "shop.example.test", "/a").await;
    assert_eq!(status, 421);
    assert!(body.contains("made for `www.example.test`"), "{body}");
    // A name no site claims leaves the Host to decide.
    let (mut stream, _) = connect(sites.edge.tls, Some("unknown.test")).await;
    assert_eq!(exchange(&mut stream, "blog.test", "/a").await, (200, "blog /a".into()));
}

#[tokio::test]
async fn certificates_follow_their_files_and_a_bad_one_is_refused_without_dropping_connections() {
    let sites = start("check_interval = \"200ms\"").await;
    let addr = sites.edge.tls;
    let (mut open, first) = connect(addr, Some("www.example.test")).await;
    assert_eq!(exchange(&mut open, "www.example.test", "/a").await.0, 200);

    sites.authority.issue(&sites.dir, "www", &["www.example.test"], VALID);
    let second = wait_new_certificate(addr, "www.example.test", &first).await;
    assert_eq!(names(&second), ["www.example.test"]);
    assert_eq!(
        exchange(&mut open, "www.example.test", "/b").await,
        (200, "www /b".into()),
        "the open connection goes on"
    );

    // Expired, then for another name: each refused, the second certificate kept.
    sites
        .authority
        .issue(&sites.dir, "www", &["www.example.test"], (2020, 2021));
    sites.edge.wait_log("expired on").await;
    sites.authority.issue(&sites.dir, "www", &["other.test"], VALID);
    sites.edge.wait_log("does not cover `www.example.test`").await;
    assert_eq!(connect(addr, Some("www.example.test")).await.1, second);
    assert_eq!(exchange(&mut open, "www.example.test", "/c").await.0, 200);
}

#[tokio::test]
async fn sighup_reloads_certificates_and_adds_sites_with_theirs() {
    // Files are not checked: only a reload reads them.
    let sites = start("check_interval = \"0s\"").await;
    let addr = sites.edge.tls;
    let (mut open, first) = connect(addr, Some("shop.example.test")).await;
    sites
        .authority
        .issue(&sites.dir, "shop", &["shop.example.test", "*.shop.example.test"], VALID);
    sites.authority.issue(&sites.dir, "news", &["news.test"], VALID);
    let news = origin("news").await;
    let config = sites.dir.join("edgehook.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let dir = sites.dir.display();
    std::fs::write(
        &config,
        format!(
            "{text}[origins.news]\nurl = \"{}\"\n[distributions.news]\ndomains = [\"news.test\"]\ntls = {{ cert = \"{dir}/news.pem\", key = \"{dir}/news-key.pem\" }}\n[[distributions.news.behaviors]]\npath = \"*\"\norigin = \"news\"\n",
            news.url()
        ),
    )
    .unwrap();
    sites.edge.signal(libc::SIGHUP);
    let renewed = wait_new_certificate(addr, "shop.example.test", &first).await;
    assert_eq!(names(&renewed), ["shop.example.test", "*.shop.example.test"]);
    assert_eq!(names(&connect(addr, Some("news.test")).await.1), ["news.test"]);
    let (mut stream, _) = connect(addr, Some("news.test")).await;
    assert_eq!(exchange(&mut stream, "news.test", "/n").await, (200, "news /n".into()));
    assert_eq!(
        exchange(&mut open, "shop.example.test", "/s").await,
        (200, "shop /s".into())
    );
}
