//! Origin host names: looked up through the configured name servers (or the system's), each
//! answer kept for its TTL in a bounded cache, and every address tried in order until one
//! accepts the connection.

use crate::support::*;
use ::edgehook::origin::resolve::{Resolver, CACHE_SIZE};
use std::net::SocketAddr;
use std::time::Duration;

fn ips(addresses: &[SocketAddr]) -> Vec<String> {
    addresses.iter().map(|a| a.to_string()).collect()
}

#[tokio::test]
async fn every_address_of_a_name_is_returned_in_the_name_servers_order() {
    let server = NameServer::start().await;
    server.set("origin.test", &[[127, 0, 0, 7], [127, 0, 0, 3], [127, 0, 0, 5]], 60);
    let resolver = Resolver::with_name_servers(&[server.address], CACHE_SIZE).expect("resolver");
    let found = resolver.addresses("origin.test", 8080).await.expect("resolved");
    assert_eq!(ips(&found), ["127.0.0.7:8080", "127.0.0.3:8080", "127.0.0.5:8080"]);
}

#[tokio::test]
async fn an_answer_is_kept_for_its_ttl_and_asked_again_after_it() {
    let server = NameServer::start().await;
    server.set("short.test", &[[127, 0, 0, 1]], 1);
    let resolver = Resolver::with_name_servers(&[server.address], CACHE_SIZE).expect("resolver");
    let first = resolver.addresses("short.test", 80).await.expect("resolved");
    server.set("short.test", &[[127, 0, 0, 2]], 1);
    let cached = resolver.addresses("short.test", 80).await.expect("resolved");
    assert_eq!(
        (ips(&first), ips(&cached)),
        (vec!["127.0.0.1:80".into()], vec!["127.0.0.1:80".into()])
    );
    assert_eq!(server.queries_for("short.test"), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let renewed = resolver.addresses("short.test", 80).await.expect("resolved");
    assert_eq!(ips(&renewed), ["127.0.0.2:80"]);
    assert_eq!(server.queries_for("short.test"), 2);
}

#[tokio::test]
async fn the_cache_keeps_at_most_its_size_in_answers() {
    let server = NameServer::start().await;
    let names: Vec<String> = (0..40).map(|i| format!("n{i}.test")).collect();
    for name in &names {
        server.set(name, &[[127, 0, 0, 1]], 3600);
    }
    let resolver = Resolver::with_name_servers(&[server.address], 4).expect("resolver");
    for round in 0..2 {
        for name in &names {
            resolver.addresses(name, 80).await.expect("resolved");
        }
        let asked: usize = names.iter().map(|name| server.queries_for(name)).sum();
        if round == 0 {
            assert_eq!(asked, 40);
        } else {
            // Every answer is valid for an hour: only the cache's bound made it ask again.
            assert!(asked >= 40 + 36, "asked {asked} times for 40 names with 4 answers kept");
        }
    }
}

#[tokio::test]
async fn unknown_names_and_ip_literals() {
    let server = NameServer::start().await;
    let resolver = Resolver::with_name_servers(&[server.address], CACHE_SIZE).expect("resolver");
    assert!(resolver.addresses("missing.test", 80).await.is_err());
    let literal = resolver.addresses("::1", 443).await.expect("literal");
    assert_eq!(ips(&literal), ["[::1]:443"]);
    assert_eq!(server.queries_for("::1"), 0);
}

/// An origin named `app.test` whose first address refuses connections (nothing listens on
/// 127.0.0.3) and whose second is the origin.
async fn edge_with_two_addresses(origin: &Origin, server: &NameServer, behaviors: &str) -> Edgehook {
    server.set("app.test", &[[127, 0, 0, 3], [127, 0, 0, 1]], 60);
    Edgehook::start_with(
        &format!("resolver = [\"{}\"]", server.address),
        &format!(
            "[origins.app]\nurl = \"http://app.test:{}\"\n{behaviors}[[behaviors]]\npath = \"*\"\norigin = \"app\"\ncache = false\n",
            origin.addr.port()
        ),
    )
    .await
}

#[tokio::test]
async fn a_request_reaches_the_origin_at_its_next_address_when_the_first_refuses() {
    let origin = Origin::start(|_| Reply::ok("from the origin")).await;
    let server = NameServer::start().await;
    let edge = edge_with_two_addresses(&origin, &server, "").await;
    for _ in 0..3 {
        let response = client().get(edge.url("/page")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "from the origin");
    }
    assert_eq!(server.queries_for("app.test"), 1, "the answer is cached for its TTL");
}

#[tokio::test]
async fn a_request_with_a_body_read_for_a_function_also_tries_every_address() {
    let origin = Origin::start(|seen| Reply::ok(format!("origin got {} bytes", seen.body.len()))).await;
    let server = NameServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("body.mjs");
    std::fs::write(&code, "export const handler = async (e) => e.Records[0].cf.request;").unwrap();
    let behaviors = format!(
        "[functions.body]\ncode = \"{}\"\n[[behaviors]]\npath = \"/form\"\norigin = \"app\"\ncache = false\nviewer_request = {{ function = \"body\", include_body = true }}\n",
        code.display()
    );
    let edge = edge_with_two_addresses(&origin, &server, &behaviors).await;
    let response = client().post(edge.url("/form")).body("a=1&b=2").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "origin got 7 bytes");
}

#[tokio::test]
async fn an_origin_name_no_name_server_knows_is_a_502() {
    let origin = Origin::start(|_| Reply::ok("unreachable")).await;
    let server = NameServer::start().await;
    let edge = Edgehook::start_with(
        &format!("resolver = [\"{}\"]", server.address),
        &format!(
            "[origins.app]\nurl = \"http://missing.test:{}\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n",
            origin.addr.port()
        ),
    )
    .await;
    let response = client().get(edge.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(origin.total(), 0);
    let second = client().get(edge.url("/")).send().await.unwrap();
    assert_eq!(second.status(), 502, "and edgehook keeps serving");
}
