//! Load: wrk at a fixed connection count (peak throughput and its latency), and an open-loop
//! client at a fixed request rate (latency at a given load).

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

/// What one wrk run measured.
#[derive(Debug, Clone, Copy)]
pub struct Peak {
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// wrk, 1 thread, 32 connections, with the given extra request headers. Panics (the bench
/// stops) when any answer was not 2xx/3xx or a socket failed: a fast error is not a result.
pub fn wrk(url: &str, headers: &[String], seconds: u64) -> Peak {
    wrk_script(url, headers, None, seconds)
}

/// `wrk`, with a Lua `script` that makes the requests (`wrk -s`).
pub fn wrk_script(url: &str, headers: &[String], script: Option<&std::path::Path>, seconds: u64) -> Peak {
    let mut command = Command::new("wrk");
    command.args(["-t1", "-c32", &format!("-d{seconds}s"), "--latency"]);
    for header in headers {
        command.args(["-H", header]);
    }
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let out = command
        .arg(url)
        .output()
        .expect("wrk is installed (scripts/bench installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "wrk saw errors on {url}:\n{text}"
    );
    let value = |prefix: &str| -> Option<&str> {
        text.lines()
            .find_map(|l| l.trim_start().strip_prefix(prefix))
            .map(str::trim)
    };
    let requests_per_second = value("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"));
    let percentile = |p: &str| {
        value(p)
            .and_then(milliseconds)
            .unwrap_or_else(|| panic!("no {p} latency in wrk output:\n{text}"))
    };
    Peak {
        requests_per_second,
        p50_ms: percentile("50%"),
        p99_ms: percentile("99%"),
    }
}

/// wrk's durations ("812.00us", "1.20ms", "2.01s") in milliseconds.
fn milliseconds(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e3)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

/// What a fixed-rate run measured.
#[derive(Debug, Clone, Copy)]
pub struct AtRate {
    pub achieved_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Sends `rate` requests per second over 32 keep-alive connections for `seconds`, each
/// connection on its own schedule (connection i sends request k at (k * 32 + i) / rate), from
/// one thread like wrk -t1. Latency runs from sending a request to the end of its body. The
/// schedule is paced by tokio's 1 ms timer, so requests leave in small bursts each millisecond;
/// every contestant sees the same pattern.
pub fn fixed_rate(addr: SocketAddr, path: &str, headers: &[String], rate: f64, seconds: u64) -> AtRate {
    const CONNECTIONS: usize = 32;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let headers = header_pairs(headers);
    runtime.block_on(async {
        let start = tokio::time::Instant::now() + Duration::from_millis(100);
        let end = start + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for connection in 0..CONNECTIONS {
            let path = path.to_string();
            let headers = headers.clone();
            tasks.push(tokio::spawn(async move {
                let mut sender = connect(addr).await;
                let mut latencies = Vec::new();
                for k in 0u64.. {
                    let at =
                        start + Duration::from_secs_f64((k * CONNECTIONS as u64 + connection as u64) as f64 / rate);
                    if at >= end {
                        break;
                    }
                    tokio::time::sleep_until(at).await;
                    // Servers close keep-alive connections after a number of requests (nginx:
                    // 1000); open a new one as wrk does.
                    if sender.ready().await.is_err() {
                        sender = connect(addr).await;
                    }
                    let request = request(addr, &path, &headers);
                    let sent = Instant::now();
                    let response = sender.send_request(request).await.expect("response");
                    assert!(
                        response.status().as_u16() < 400,
                        "{path} answered {} at a fixed rate",
                        response.status()
                    );
                    response.into_body().collect().await.expect("body");
                    latencies.push(sent.elapsed());
                }
                latencies
            }));
        }
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.expect("connection task"));
        }
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        AtRate {
            achieved_per_second: latencies.len() as f64 / seconds as f64,
            p50_ms: at(0.50).as_secs_f64() * 1e3,
            p99_ms: at(0.99).as_secs_f64() * 1e3,
        }
    })
}

/// One answer, read whole: for checking that both proxies do the same work before timing them.
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

pub fn get(addr: SocketAddr, path: &str, headers: &[String]) -> Answer {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut sender = connect(addr).await;
        let response = sender
            .send_request(request(addr, path, &header_pairs(headers)))
            .await
            .expect("response");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    })
}

/// "Name: value" lines as pairs.
fn header_pairs(headers: &[String]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|h| h.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect()
}

/// A GET of `path` with `headers`; `Host` is the address unless `headers` name one.
fn request(addr: SocketAddr, path: &str, headers: &[(String, String)]) -> http::Request<Empty<Bytes>> {
    let mut request = http::Request::get(path);
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
        request = request.header(http::header::HOST, addr.to_string());
    }
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    request.body(Empty::<Bytes>::new()).expect("request")
}

/// A keep-alive HTTP/1.1 connection; its driver runs on the current runtime.
pub async fn connect(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender
}

/// The median of each figure of `runs`.
pub fn median(runs: &[Peak]) -> Peak {
    let median = |f: fn(&Peak) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(f).collect();
        values.sort_by(|a, b| a.total_cmp(b));
        values[values.len() / 2]
    };
    Peak {
        requests_per_second: median(|p| p.requests_per_second),
        p50_ms: median(|p| p.p50_ms),
        p99_ms: median(|p| p.p99_ms),
    }
}
