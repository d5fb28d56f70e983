//! Failures become proper answers with `X-Cache: Error from edgehook`, never dropped connections.

use crate::support::*;
use std::time::Duration;

fn assert_error(response: &reqwest::Response, status: u16) {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["x-cache"], "Error from edgehook");
    assert_eq!(response.headers()["x-request-id"].len(), 32);
}

#[tokio::test]
async fn refused_origin_is_502() {
    let closed = free_addr();
    let rest = format!("[origins.app]\nurl = \"http://{closed}\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n");
    let edge = Edgehook::start(&rest).await;
    let response = client().get(edge.url("/")).send().await.unwrap();
    assert_error(&response, 502);
    // The proxy keeps serving.
    assert_error(&client().get(edge.url("/again")).send().await.unwrap(), 502);
}

#[tokio::test]
async fn unresolvable_origin_is_502() {
    let rest = "[origins.app]\nurl = \"http://no-such-host.invalid\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n";
    let edge = Edgehook::start(rest).await;
    assert_error(&client().get(edge.url("/")).send().await.unwrap(), 502);
}

/// The origin answers after 3 s; the proxy must give up after `read_timeout` with a 504.
async fn assert_slow_origin_times_out(read_timeout: &str) {
    let origin = Origin::start(|_| Reply::ok("late").delay(Duration::from_secs(3))).await;
    let rest = format!(
        "[origins.app]\nurl = \"{}\"\nread_timeout = \"{read_timeout}\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n",
        origin.url()
    );
    let edge = Edgehook::start(&rest).await;
    let started = std::time::Instant::now();
    let response = client().get(edge.url("/slow")).send().await.unwrap();
    assert_error(&response, 504);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the timeout fired before the origin answered"
    );
}

#[tokio::test]
async fn slow_origin_is_504() {
    // Under a second: pingora's own shared timers.
    assert_slow_origin_times_out("300ms").await;
}

#[tokio::test]
async fn slow_origin_is_504_with_a_timeout_of_seconds() {
    // A second or more: tokio's timers (server.rs, `fast_timeout_to_tokio_threshold_seconds`).
    assert_slow_origin_times_out("1s").await;
}

#[tokio::test]
async fn https_origin_with_untrusted_certificate_is_502() {
    let (cert, key) = self_signed();
    let origin = Origin::start_tls(tls_acceptor(&cert, &key), |_| Reply::ok("secret")).await;
    let rest = format!(
        "[origins.app]\nurl = \"https://127.0.0.1:{}\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n",
        origin.addr.port()
    );
    let edge = Edgehook::start(&rest).await;
    assert_error(&client().get(edge.url("/")).send().await.unwrap(), 502);
    assert_eq!(
        origin.total(),
        0,
        "no request reached an origin whose certificate failed verification"
    );
}

#[tokio::test]
async fn oversized_headers_are_431_and_long_uris_414() {
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let rest = format!(
        "[origins.app]\nurl = \"{}\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n",
        origin.url()
    );
    let edge = Edgehook::start_with("max_request_header_size = \"8KiB\"\nmax_uri_length = 1024", &rest).await;
    let big = "v".repeat(10_000);
    let response = client().get(edge.url("/")).header("x-big", big).send().await.unwrap();
    assert_error(&response, 431);
    let long = format!("/{}", "p".repeat(2000));
    assert_error(&client().get(edge.url(&long)).send().await.unwrap(), 414);
    assert_eq!(origin.total(), 0);
    assert_eq!(client().get(edge.url("/ok")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn malformed_requests_are_400() {
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let rest = format!(
        "[origins.app]\nurl = \"{}\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n",
        origin.url()
    );
    let edge = Edgehook::start(&rest).await;
    let no_host = raw_request(edge.http, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert!(no_host.starts_with("HTTP/1.1 400"), "{no_host}");
    assert!(
        no_host.to_ascii_lowercase().contains("x-cache: error from edgehook"),
        "{no_host}"
    );
    let garbage = raw_request(edge.http, b"GARBAGE\r\n\r\n").await;
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    let bad_header = raw_request(edge.http, b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n").await;
    assert!(bad_header.starts_with("HTTP/1.1 400"), "{bad_header}");
    assert_eq!(origin.total(), 0);
    assert_eq!(client().get(edge.url("/ok")).send().await.unwrap().status(), 200);
}
