//! SIGTERM/SIGINT draining in-flight requests before a clean exit.

use crate::support::*;
use std::time::Duration;

async fn drains_on(signal: i32) {
    let origin = Origin::start(|_| Reply::ok("finished").delay(Duration::from_millis(1500))).await;
    let rest = uncached_proxy_to(&origin.url());
    let mut edge = Edgehook::start(&rest).await;
    let url = edge.url("/slow");
    let in_flight = tokio::spawn(async move { client().get(url).send().await.map(|r| r.status().as_u16()) });
    // Let the request reach the origin, then ask edgehook to stop.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while origin.total() == 0 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    edge.signal(signal);
    let status = in_flight.await.unwrap().expect("the in-flight request completes");
    assert_eq!(status, 200);
    let code = tokio::task::spawn_blocking(move || {
        let code = edge.wait_exit(Duration::from_secs(15));
        (code, edge)
    })
    .await
    .unwrap();
    assert_eq!(code.0, Some(0), "exit status; log:\n{}", code.1.log_text());
    assert!(
        std::net::TcpStream::connect(code.1.http).is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn sigterm_drains_and_exits_0() {
    drains_on(libc::SIGTERM).await;
}

#[tokio::test]
async fn sigint_drains_and_exits_0() {
    drains_on(libc::SIGINT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_process_takes_over_the_listening_sockets() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let origin = Origin::start(|_| Reply::ok("fine")).await;
    let state = tempfile::tempdir().unwrap();
    let rest = format!(
        "[deploy]\nstate_dir = \"{}\"\n{}",
        state.path().display(),
        uncached_proxy_to(&origin.url())
    );
    let mut old = Edgehook::start(&rest).await;
    let config_path = old.log.parent().unwrap().join("edgehook.toml");
    let url = old.url("/");
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, url) = (stop.clone(), url.clone());
        tokio::spawn(async move {
            // A new connection for every request: each one tests the listening socket.
            let c = reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let (mut sent, mut failures) = (0, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let outcome = match c.get(&url).send().await {
                    Ok(r) if r.status() == 200 => None,
                    Ok(r) => Some(format!("status {}", r.status())),
                    Err(e) => Some(format!("{e:?}")),
                };
                sent += 1;
                failures.extend(outcome);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (sent, failures)
        })
    };
    let new_log = std::fs::File::create(state.path().join("new.log")).unwrap();
    let mut new = std::process::Command::new(env!("CARGO_BIN_EXE_edgehook"))
        .args(["serve", "--upgrade", "--config"])
        .arg(&config_path)
        .env("TMPDIR", state.path())
        .stderr(new_log)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    old.signal(libc::SIGQUIT);
    let code = tokio::task::spawn_blocking(move || (old.wait_exit(Duration::from_secs(30)), old))
        .await
        .unwrap();
    assert_eq!(
        code.0,
        Some(0),
        "the old process drains and exits 0:\n{}",
        code.1.log_text()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (sent, failures) = load.await.unwrap();
    let served_after = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(&url)
        .send()
        .await
        .map(|r| r.status().as_u16());
    let _ = new.kill();
    let _ = new.wait();
    let new_log = std::fs::read_to_string(state.path().join("new.log")).unwrap_or_default();
    assert_eq!(served_after.ok(), Some(200), "the new process serves:\n{new_log}");
    assert!(sent > 100, "{sent}");
    assert_eq!(
        failures.len(),
        0,
        "{} of {sent} requests failed during the upgrade: {failures:?}\n{new_log}",
        failures.len()
    );
}

/// Connections open when the listeners close still get an answer to a request on its way: one
/// accepted but not yet used, and a keep-alive one between two requests. Each answer says
/// `Connection: close`, and the process exits 0 once they are done.
#[tokio::test]
async fn open_connections_are_answered_after_the_listeners_close() {
    use tokio::io::AsyncWriteExt;
    let origin = Origin::start(|_| Reply::ok("fine")).await;
    let rest = uncached_proxy_to(&origin.url());
    let mut edge = Edgehook::start(&rest).await;
    // One accept loop takes connections in the order they came: once `kept` is answered,
    // `fresh`, opened before it, has been accepted too.
    let fresh = tokio::net::TcpStream::connect(edge.http).await.unwrap();
    let mut kept = tokio::net::TcpStream::connect(edge.http).await.unwrap();
    kept.write_all(b"GET /first HTTP/1.1\r\nHost: edge\r\n\r\n")
        .await
        .unwrap();
    let first = read_answer(&mut kept).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    edge.signal(libc::SIGTERM);
    edge.wait_log("listeners closed").await;
    for (name, stream) in [("fresh", fresh), ("kept", kept)] {
        let answer = raw_exchange(stream, b"GET /later HTTP/1.1\r\nHost: edge\r\n\r\n").await;
        let lower = answer.to_ascii_lowercase();
        assert!(
            lower.starts_with("http/1.1 200") && lower.ends_with("fine"),
            "{name}: {answer:?}\n{}",
            edge.log_text()
        );
        assert!(lower.contains("connection: close"), "{name}: {answer}");
    }
    let code = tokio::task::spawn_blocking(move || (edge.wait_exit(Duration::from_secs(15)), edge))
        .await
        .unwrap();
    assert_eq!(code.0, Some(0), "exit status; log:\n{}", code.1.log_text());
}

/// One answer read off a keep-alive connection: the head, then `Content-Length` bytes of body.
async fn read_answer(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    let read = async {
        loop {
            let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .and_then(|value| value.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if answer.len() >= end + 4 + length {
                    return;
                }
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    String::from_utf8_lossy(&answer).into_owned()
}
