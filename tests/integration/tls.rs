//! HTTPS: the TLS listener (rustls, HTTP/2 by ALPN) and HTTPS origins with verification.

use crate::support::*;

#[tokio::test]
async fn tls_listener_speaks_http2_and_http1() {
    let (cert, key) = self_signed();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), &key).unwrap();
    let origin = Origin::start(|_| Reply::ok("over tls").header("cache-control", "max-age=60")).await;
    let rest = format!(
        "[server.tls]\nlisten = [\"{{tls}}\"]\ncert = \"{{dir}}/cert.pem\"\nkey = \"{{dir}}/key.pem\"\n[origins.app]\nurl = \"{}\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n",
        origin.url()
    );
    let edge = Edgehook::start_in(dir, "", &rest).await;
    let root = reqwest::Certificate::from_pem(cert.as_bytes()).unwrap();
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(root.clone())
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/secure", edge.tls.port());
    let response = h2.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.headers()["x-cache"], "Miss from edgehook");
    assert_eq!(response.text().await.unwrap(), "over tls");
    assert_eq!(origin.last().headers["x-forwarded-proto"], "https");
    let again = h2.get(&url).send().await.unwrap();
    assert_eq!(again.headers()["x-cache"], "Hit from edgehook");

    let h1 = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(root)
        .http1_only()
        .build()
        .unwrap();
    let response = h1.get(&url).send().await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_11);
    assert_eq!(response.text().await.unwrap(), "over tls");
}

#[tokio::test]
async fn https_origin_trusted_by_ca_file() {
    let (cert, key) = self_signed();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("origin-ca.pem"), &cert).unwrap();
    let origin = Origin::start_tls(tls_acceptor(&cert, &key), |_| Reply::ok("verified origin")).await;
    let rest = format!(
        "[origins.app]\nurl = \"https://127.0.0.1:{}\"\nca_file = \"{{dir}}/origin-ca.pem\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n",
        origin.addr.port()
    );
    let edge = Edgehook::start_in(dir, "", &rest).await;
    let response = client().get(edge.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "verified origin");
    assert_eq!(
        origin.last().headers["host"],
        format!("127.0.0.1:{}", origin.addr.port()).as_str()
    );
}
