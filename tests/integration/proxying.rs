//! Forwarding to HTTP origins: headers, request ids, connection reuse, query policy, base path.

use crate::support::*;

fn config(origin: &Origin, behavior_extra: &str) -> String {
    format!(
        "[cache]\nmemory = \"16MiB\"\n[origins.app]\nurl = \"{}/base\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n{behavior_extra}\n",
        origin.url()
    )
}

#[tokio::test]
async fn forwards_with_the_usual_headers_and_a_request_id() {
    let origin = Origin::start(|_| Reply::ok("hello").header("cache-control", "no-store")).await;
    let edge = Edgehook::start(&config(&origin, "")).await;
    let response = client()
        .get(edge.url("/page?x=1"))
        .header("x-forwarded-for", "192.0.2.7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(request_id.len(), 32);
    assert_eq!(response.headers()["via"], "1.1 edgehook");
    assert_eq!(response.text().await.unwrap(), "hello");

    let seen = origin.last();
    assert_eq!(seen.uri, "/base/page?x=1");
    assert_eq!(seen.headers["host"], origin.addr.to_string());
    assert_eq!(seen.headers["x-forwarded-for"], "192.0.2.7, 127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["via"], "1.1 edgehook");
    assert_eq!(
        seen.headers["x-request-id"],
        request_id.as_str(),
        "the origin sees the same request id"
    );
    edge.wait_log(&request_id).await;

    let second = client().get(edge.url("/page")).send().await.unwrap();
    assert_ne!(second.headers()["x-request-id"].to_str().unwrap(), request_id);
}

#[tokio::test]
async fn origin_connections_are_reused() {
    let origin = Origin::start(|_| Reply::ok("x").header("cache-control", "no-store")).await;
    let edge = Edgehook::start(&config(&origin, "")).await;
    let client = client();
    // Each response read to its end, so the client keeps its one connection to the proxy (a
    // client that drops responses unread opens new ones, served by other proxy threads).
    for i in 0..20 {
        let r = client.get(edge.url(&format!("/n{i}"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "x");
    }
    assert_eq!(origin.total(), 20);
    assert!(
        origin.connections() <= 2,
        "20 sequential requests used {} origin connections",
        origin.connections()
    );
}

#[tokio::test]
async fn viewer_host_is_forwarded_when_configured() {
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let rest = format!(
        "[origins.app]\nurl = \"{}\"\nhost_header = \"viewer\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\ncache = false\n",
        origin.url()
    );
    let edge = Edgehook::start(&rest).await;
    client()
        .get(edge.url("/"))
        .header("host", "www.example.test")
        .send()
        .await
        .unwrap();
    assert_eq!(origin.last().headers["host"], "www.example.test");
}

#[tokio::test]
async fn query_policy_decides_what_the_origin_sees() {
    let origin = Origin::start(|_| Reply::ok("x").header("cache-control", "no-store")).await;
    let rest = format!(
        "[origins.app]\nurl = \"{url}\"\n[[behaviors]]\npath = \"/none/*\"\norigin = \"app\"\ncache_key = {{ query = \"none\" }}\n[[behaviors]]\npath = \"/some/*\"\norigin = \"app\"\ncache_key = {{ query = [\"keep\"] }}\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n",
        url = origin.url()
    );
    let edge = Edgehook::start(&rest).await;
    client().get(edge.url("/none/a?x=1&keep=2")).send().await.unwrap();
    assert_eq!(origin.last().uri, "/none/a");
    client().get(edge.url("/some/a?x=1&keep=2")).send().await.unwrap();
    assert_eq!(origin.last().uri, "/some/a?keep=2");
    client().get(edge.url("/all?x=1&keep=2")).send().await.unwrap();
    assert_eq!(origin.last().uri, "/all?x=1&keep=2");
}

#[tokio::test]
async fn request_bodies_reach_the_origin() {
    let origin = Origin::start(|seen| Reply::ok(format!("got {} bytes", seen.body.len()))).await;
    let edge = Edgehook::start(&config(&origin, "")).await;
    let body = vec![b'a'; 100_000];
    let response = client().post(edge.url("/upload")).body(body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-cache"], "Miss from edgehook");
    assert_eq!(response.text().await.unwrap(), "got 100000 bytes");
    assert_eq!(origin.last().method, "POST");
}

#[tokio::test]
async fn hop_by_hop_headers_stay_on_their_hop() {
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let edge = Edgehook::start(&config(&origin, "cache = false")).await;
    let answer = raw_request(
        edge.http,
        b"GET /hop HTTP/1.1\r\nHost: test\r\nConnection: close, x-private-hop\r\nx-private-hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic eDp5\r\nx-end-to-end: kept\r\n\r\n",
    ).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}\n{}", edge.log_text());
    let seen = origin.last();
    for hop in ["x-private-hop", "keep-alive", "proxy-authorization"] {
        assert!(!seen.headers.contains_key(hop), "{hop} reached the origin");
    }
    assert_eq!(seen.headers["x-end-to-end"], "kept");
}
