//! Clients that send slowly cannot hold connections for ever: a request head must arrive within
//! `server.request_header_timeout`, a body read whole for a function within
//! `server.request_body_timeout`.

use crate::support::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A function that reads the request body (include_body) and passes the request on.
const READS_BODY: &str = "export const handler = async (event) => event.Records[0].cf.request;";

async fn start(origin: &Origin) -> Edgehook {
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("body.mjs");
    std::fs::write(&code, READS_BODY).unwrap();
    let rest = format!(
        "[origins.app]\nurl = \"{}\"\n[[behaviors]]\npath = \"/form/*\"\norigin = \"app\"\ncache = false\nviewer_request = {{ function = \"body\", include_body = true }}\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\ncache = false\n[functions.body]\ncode = \"{}\"\n",
        origin.url(),
        code.display()
    );
    Edgehook::start_in(
        dir,
        "request_header_timeout = \"1s\"\nrequest_body_timeout = \"1s\"",
        &rest,
    )
    .await
}

/// Sends `parts` one by one, `pause` apart (stopping early if edgehook closes), then reads what
/// edgehook answers until it closes the connection (at most 10 s).
async fn trickle(stream: &mut TcpStream, parts: &[&[u8]], pause: Duration) -> String {
    for part in parts {
        if stream.write_all(part).await.is_err() {
            break;
        }
        tokio::time::sleep(pause).await;
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "edgehook kept the connection open");
    String::from_utf8_lossy(&answer).into_owned()
}

/// Reads one response with a Content-Length body from a kept-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed before a whole answer: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn a_request_head_trickled_past_its_timeout_gets_408_and_the_connection_closes() {
    let origin = Origin::start(|_| Reply::ok("ok")).await;
    let edge = start(&origin).await;
    let mut stream = TcpStream::connect(edge.http).await.unwrap();
    let started = Instant::now();
    // A header line every 300 ms: each read comes in time, the head never completes.
    let lines: Vec<&[u8]> = std::iter::once(&b"GET / HTTP/1.1\r\nHost: a\r\n"[..])
        .chain(std::iter::repeat_n(&b"X-Slow: 1\r\n"[..], 20))
        .collect();
    let answer = trickle(&mut stream, &lines, Duration::from_millis(300)).await;
    assert!(answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{answer}");
    assert!(answer.contains("X-Cache: Error from edgehook"), "{answer}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "cut off after {took:?}"
    );
    assert_eq!(origin.total(), 0, "nothing reached the origin");
    // The proxy serves everyone else.
    let response = client().get(edge.url("/")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_without_an_answer() {
    let origin = Origin::start(|_| Reply::ok("ok")).await;
    let edge = start(&origin).await;
    let mut stream = TcpStream::connect(edge.http).await.unwrap();
    let started = Instant::now();
    let answer = trickle(&mut stream, &[], Duration::ZERO).await;
    assert_eq!(answer, "");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
}

#[tokio::test]
async fn a_kept_alive_connection_may_idle_but_its_next_head_is_bounded_too() {
    let origin = Origin::start(|_| Reply::ok("ok")).await;
    let edge = start(&origin).await;
    let mut stream = TcpStream::connect(edge.http).await.unwrap();
    let request = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
    stream.write_all(request).await.unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
    // Idle longer than the head timeout: a kept-alive connection waits for its next request.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stream.write_all(request).await.unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
    // A head split over reads that comes whole in time is served.
    let answer = {
        stream.write_all(b"GET /b HTTP/1.1\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        stream.write_all(b"Host: a\r\n\r\n").await.unwrap();
        read_response(&mut stream).await
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(origin.count("/b"), 1);
    // The next head trickles: 408 within the bound.
    let answer = trickle(
        &mut stream,
        &[
            b"GET /c HTTP/1.1\r\n",
            b"X-Slow: 1\r\n",
            b"X-Slow: 1\r\n",
            b"X-Slow: 1\r\n",
            b"X-Slow: 1\r\n",
            b"X-Slow: 1\r\n",
        ],
        Duration::from_millis(300),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(origin.count("/c"), 0);
}

#[tokio::test]
async fn a_body_trickled_to_a_function_that_reads_it_is_cut_off() {
    let origin = Origin::start(|seen| Reply::ok(format!("{} bytes", seen.body.len()))).await;
    let edge = start(&origin).await;
    // In time: read whole, through the function, to the origin.
    let response = client()
        .post(edge.url("/form/a"))
        .body("name=value")
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "10 bytes");
    // A byte every 300 ms of 100.
    let mut stream = TcpStream::connect(edge.http).await.unwrap();
    let started = Instant::now();
    let mut parts: Vec<&[u8]> = vec![b"POST /form/b HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n"];
    parts.extend(std::iter::repeat_n(&b"x"[..], 20));
    let answer = trickle(&mut stream, &parts, Duration::from_millis(300)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("x-request-id"), "a request had begun: {answer}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "cut off after {took:?}");
    assert_eq!(origin.count("/form/b"), 0);
}
