//! The admin listener: health, metrics, purge with its token.

use crate::support::*;

fn config(origin: &Origin) -> String {
    format!(
        "[origins.app]\nurl = \"{}\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n",
        origin.url()
    )
}

#[tokio::test]
async fn healthz_and_metrics() {
    let origin = Origin::start(|seen| {
        if seen.uri == "/boom" {
            Reply::ok("x").status(500)
        } else {
            Reply::ok("x").header("cache-control", "max-age=60")
        }
    })
    .await;
    let edge = Edgehook::start(&config(&origin)).await;
    let c = client();
    let health = c.get(edge.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap().trim(), r#"{"status":"ok"}"#);
    c.get(edge.url("/m")).send().await.unwrap();
    c.get(edge.url("/m")).send().await.unwrap();
    c.get(edge.url("/boom")).send().await.unwrap();
    // Request metrics are counted when a request is logged, just after its response went out.
    let expected = [
        "edgehook_requests_total{behavior=\"*\",distribution=\"-\",status_class=\"2xx\"} 2",
        "edgehook_requests_total{behavior=\"*\",distribution=\"-\",status_class=\"5xx\"} 1",
        "edgehook_cache_lookups_total{result=\"hit\"} 1",
        "edgehook_cache_lookups_total{result=\"miss\"} 2",
        "edgehook_origin_response_seconds_count{origin=\"app\"} 2",
        "edgehook_sent_bytes_total 3",
        "edgehook_received_bytes_total 0",
        // The 200 and the 500 (cached for error_ttl, as CloudFront does).
        "edgehook_cache_objects{tier=\"memory\"} 2",
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let metrics = edge.metrics_page().await;
        let missing: Vec<&str> = expected.iter().copied().filter(|e| !metrics.contains(e)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "missing {missing:?} in:\n{metrics}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(c.get(edge.admin_url("/nope")).send().await.unwrap().status(), 404);
    assert_eq!(c.delete(edge.admin_url("/healthz")).send().await.unwrap().status(), 405);
}

/// `/healthz` answers only once the proxy accepts (the admin listener starts after it): a health
/// check that passes means requests are taken.
#[tokio::test]
async fn healthz_answers_only_once_the_proxy_listens() {
    let origin = Origin::start(|_| Reply::ok("x")).await;
    for start in 0..16 {
        let mut edge = Edgehook::spawn_in(tempfile::tempdir().unwrap(), "", &config(&origin));
        let stream = edge.first_connection(edge.admin).await;
        let answer = raw_exchange(
            stream,
            b"GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "start {start}: {answer}");
        let proxy = tokio::net::TcpStream::connect(edge.http).await;
        assert!(
            proxy.is_ok(),
            "start {start}: /healthz answered, the proxy refused: {proxy:?}"
        );
    }
}

#[tokio::test]
async fn purge_needs_the_token_and_removes_exact_and_prefix_paths() {
    let origin = Origin::start(|seen| Reply::ok(seen.uri.clone()).header("cache-control", "max-age=600")).await;
    let edge = Edgehook::start(&config(&origin)).await;
    let c = client();
    for path in ["/exact", "/img/a.png", "/img/b.png", "/keep"] {
        c.get(edge.url(path)).send().await.unwrap();
        c.get(edge.url(path)).send().await.unwrap();
        assert_eq!(origin.count(path), 1);
    }
    let purge = |body: &'static str, token: Option<&'static str>| {
        let mut request = c.post(edge.admin_url("/cache/purge")).body(body);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request.send()
    };
    assert_eq!(purge(r#"{"paths":["/exact"]}"#, None).await.unwrap().status(), 401);
    assert_eq!(
        purge(r#"{"paths":["/exact"]}"#, Some("wrong")).await.unwrap().status(),
        401
    );
    let bad = purge(r#"{"paths": "not a list"}"#, Some(ADMIN_TOKEN)).await.unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("expected"));
    assert_eq!(
        purge(r#"{"paths":["no-slash"]}"#, Some(ADMIN_TOKEN))
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(purge("not json", Some(ADMIN_TOKEN)).await.unwrap().status(), 400);

    let ok = purge(r#"{"paths":["/exact","/img/*"]}"#, Some(ADMIN_TOKEN))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let answer: serde_json::Value = serde_json::from_str(&ok.text().await.unwrap()).unwrap();
    assert_eq!(answer["purged"], 3);
    for path in ["/exact", "/img/a.png", "/img/b.png", "/keep"] {
        let r = c.get(edge.url(path)).send().await.unwrap();
        let expected = if path == "/keep" {
            "Hit from edgehook"
        } else {
            "Miss from edgehook"
        };
        assert_eq!(r.headers()["x-cache"], expected, "{path}");
    }
    edge.wait_log("cache purge").await;
}

#[tokio::test]
async fn mutating_calls_are_refused_without_a_configured_token() {
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let dir = tempfile::tempdir().unwrap();
    let (http, admin, tls) = (free_addr(), free_addr(), free_addr());
    let path = write_config(dir.path(), http, admin, tls, "", &config(&origin));
    // Drop the admin_token line.
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&format!("admin_token = \"{ADMIN_TOKEN}\"\n"), "");
    std::fs::write(&path, text).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_edgehook"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("TMPDIR", dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://{admin}/cache/purge");
    let mut status = None;
    for _ in 0..200 {
        if let Ok(r) = client()
            .post(&url)
            .header("authorization", "Bearer anything")
            .body(r#"{"paths":["/"]}"#)
            .send()
            .await
        {
            status = Some(r.status().as_u16());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, Some(403));
}
