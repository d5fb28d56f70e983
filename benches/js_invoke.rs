//! Cost of one viewer-request invocation end to end: build the event, send it to a warm
//! instance on a JS thread, run a handler that rewrites a header and the URI, get the result
//! back and validate it. Run with `cargo bench --bench js_invoke` (or `scripts/bench`).
//! `BENCH_CALLS` (default 20000) sets the number of timed calls per round (3 rounds).
//! `BENCH_PROFILE_CALLS=N` only makes N calls, for valgrind's callgrind (`profile_calls`);
//! `BENCH_PROFILE_FUNCTION=uri_only`, `cookie` or `page` picks one of the other handlers,
//! `BENCH_PROFILE_HEADERS=16` a browser's sixteen request headers instead of five.

use edgehook::edge::event::{headers_from_pairs, Cf, Event, EventConfig, Request};
use edgehook::edge::{EventType, Outcome, RequestOutcome};
use edgehook::js::{FunctionSpec, JsPool, PoolOptions};
use std::time::{Duration, Instant};

const HANDLER: &str = r#"
export const handler = async (event) => {
  const request = event.Records[0].cf.request;
  request.headers['x-variant'] = [{ key: 'X-Variant', value: 'b' }];
  request.uri = '/b' + request.uri;
  return request;
};
"#;

/// A function that leaves the headers alone: they are held back from its events.
const URI_ONLY: &str = r#"
export const handler = async (event) => {
  const request = event.Records[0].cf.request;
  request.uri = '/b' + request.uri;
  return request;
};
"#;

/// A function that reads one header (the cookie) and writes another: scenario 3's.
const COOKIE: &str = include_str!("side_by_side/functions/cookie-rewrite.mjs");

/// A function that generates its answer: scenario 5's page.
const PAGE: &str = include_str!("side_by_side/functions/page.mjs");

/// The event the proxy would build for a typical browser request.
fn build_event(n: u64) -> Event {
    build_event_with(n, &[])
}

/// The rest of the sixteen request headers a browser (Chrome) sends for a page.
const BROWSER_HEADERS: [(&str, &str); 11] = [
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    ("Cache-Control", "max-age=0"),
    ("Referer", "https://www.example.com/"),
    ("Sec-Ch-Ua", "\"Chromium\";v=\"126\", \"Not.A/Brand\";v=\"24\""),
    ("Sec-Ch-Ua-Mobile", "?0"),
    ("Sec-Ch-Ua-Platform", "\"Linux\""),
    ("Sec-Fetch-Dest", "document"),
    ("Sec-Fetch-Mode", "navigate"),
    ("Sec-Fetch-Site", "same-origin"),
    ("Sec-Fetch-User", "?1"),
    ("Upgrade-Insecure-Requests", "1"),
];

/// `build_event` with `extra` headers.
fn build_event_with(n: u64, extra: &[(&str, &str)]) -> Event {
    let mut headers = headers_from_pairs([
        ("Host", "www.example.com"),
        (
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
        ),
        (
            "Accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("Accept-Language", "en-US,en;q=0.9"),
        ("Cookie", "session=abc123; variant=b"),
    ]);
    headers.extend(headers_from_pairs(extra.iter().copied()));
    Event::new(Cf {
        config: EventConfig {
            distribution_domain_name: "edgehook.local".into(),
            distribution_id: "EDGEHOOK".into(),
            event_type: EventType::ViewerRequest,
            request_id: format!("bench-{n}"),
        },
        request: Request {
            client_ip: "203.0.113.178".into(),
            headers,
            method: "GET".into(),
            querystring: "a=1".into(),
            uri: "/index.html".into(),
            body: None,
            origin: None,
        },
        response: None,
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Some(calls) = std::env::var("BENCH_PROFILE_CALLS").ok().and_then(|v| v.parse().ok()) {
        profile_calls(calls);
        return;
    }
    let calls_for_rust: u64 = 20_000;
    {
        // The Rust side alone (event build, JSON out, JSON in, validation) for comparison.
        let event = build_event(0);
        let mut changed = event.cf().request.clone();
        changed.uri = "/b/index.html".into();
        let result_json = serde_json::to_string(&changed).expect("json");
        let started = Instant::now();
        for n in 0..calls_for_rust {
            let event = build_event(n);
            let text = event.to_json();
            std::hint::black_box(&text);
            std::hint::black_box(edgehook::edge::validate(&event, &result_json).expect("valid"));
        }
        println!(
            "Rust side alone (event build, to JSON, result parse, validation): {:.1} us/call",
            started.elapsed().as_secs_f64() * 1e6 / calls_for_rust as f64
        );
    }
    let calls: u64 = std::env::var("BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let started = Instant::now();
    let pool = JsPool::start(
        vec![FunctionSpec::new("rewrite", "rewrite.mjs", HANDLER)],
        &PoolOptions {
            threads: 1,
            queue: 64,
            max_wait: Duration::from_secs(1),
            snapshot: true,
            name_servers: Vec::new(),
            ..PoolOptions::default()
        },
    )
    .expect("the function loads");
    let cold = started.elapsed();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        for n in 0..1000 {
            pool.invoke("rewrite", &build_event(n)).await.expect("warm-up call");
        }
        let mut per_call = Vec::new();
        for _round in 0..3 {
            let round = Instant::now();
            for n in 0..calls {
                match pool.invoke("rewrite", &build_event(n)).await {
                    Ok(Outcome::Request(RequestOutcome::Continue { request, .. })) => assert_eq!(request.uri, "/b/index.html"),
                    other => panic!("unexpected outcome {other:?}"),
                }
            }
            per_call.push(round.elapsed().as_secs_f64() * 1e6 / calls as f64);
        }
        per_call.sort_by(|a, b| a.total_cmp(b));
        let loaded = loaded_rounds(&pool, "rewrite", calls).await;
        println!("first pool start (the process's engine snapshot, a JS thread, one instance): {:.1} ms", cold.as_secs_f64() * 1e3);
        println!(
            "viewer-request invocation end to end, one at a time: median {:.1} us/call over 3 rounds of {calls} (rounds: {:.1?})",
            per_call[1], per_call
        );
        println!("viewer-request invocation end to end, 16 in flight, 1 JS thread: median {:.1} us/call (rounds: {:.1?})", loaded[1], loaded);
    });
    drop(pool);
    let two = JsPool::start(
        vec![
            FunctionSpec::new("rewrite", "rewrite.mjs", HANDLER),
            FunctionSpec::new("uri_only", "uri-only.mjs", URI_ONLY),
        ],
        &PoolOptions {
            threads: 2,
            queue: 64,
            max_wait: Duration::from_secs(1),
            snapshot: true,
            name_servers: Vec::new(),
            ..PoolOptions::default()
        },
    )
    .expect("the function loads");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let loaded = loaded_rounds(&two, "rewrite", calls).await;
        println!(
            "viewer-request invocation end to end, 16 in flight, 2 JS threads: median {:.1} us/call (rounds: {:.1?})",
            loaded[1], loaded
        );
        let loaded = loaded_rounds(&two, "uri_only", calls).await;
        println!(
            "... a URI rewrite that does not read the headers (held back), 16 in flight, 2 JS threads: median {:.1} us/call (rounds: {:.1?})",
            loaded[1], loaded
        );
    });
    drop(two);
    cold_start_and_memory();
}

/// Resident memory of this process in bytes (Linux).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("resident pages");
    // SAFETY: sysconf only reads a constant of the running system.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

/// A function's first instance: the time to build 100 distinct functions' instances on one JS
/// thread (each call to `start` builds them one after another), the resident memory they add,
/// and the time from registering a new function (a deploy) to its first answer.
fn cold_start_and_memory() {
    const FUNCTIONS: usize = 100;
    let specs = |prefix: &str| -> Vec<FunctionSpec> {
        (0..FUNCTIONS)
            .map(|i| {
                let code = HANDLER.replace("'b'", &format!("'{prefix}{i}'"));
                FunctionSpec::new(&format!("{prefix}{i}"), &format!("{prefix}{i}.mjs"), &code)
            })
            .collect()
    };
    let options = PoolOptions {
        threads: 1,
        queue: 64,
        max_wait: Duration::from_secs(1),
        snapshot: true,
        name_servers: Vec::new(),
        ..PoolOptions::default()
    };
    // A first pool so one-time engine and allocator growth is not counted as the functions'.
    drop(JsPool::start(specs("warmup"), &options).expect("functions load"));
    let before = resident_bytes();
    let started = Instant::now();
    let pool = JsPool::start(specs("f"), &options).expect("functions load");
    let build = started.elapsed();
    let added = resident_bytes().saturating_sub(before);
    println!(
        "cold start: {FUNCTIONS} instances built in {:.1} ms, {:.2} ms per function",
        build.as_secs_f64() * 1e3,
        build.as_secs_f64() * 1e3 / FUNCTIONS as f64
    );
    println!(
        "warm instance memory: {:.2} MiB per function ({:.1} MiB resident for {FUNCTIONS})",
        added as f64 / FUNCTIONS as f64 / 1048576.0,
        added as f64 / 1048576.0
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut firsts = Vec::new();
        for i in 0..20 {
            let name = format!("deployed{i}");
            let code = HANDLER.replace("'b'", &format!("'{name}'"));
            let started = Instant::now();
            pool.register(FunctionSpec::new(&name, &format!("{name}.mjs"), &code));
            pool.invoke(&name, &build_event(0)).await.expect("first call");
            firsts.push(started.elapsed().as_secs_f64() * 1e3);
        }
        firsts.sort_by(|a, b| a.total_cmp(b));
        println!(
            "cold start after a deploy (register to first answer): median {:.2} ms, max {:.2} ms over 20",
            firsts[10], firsts[19]
        );
    });
}

/// Under load the queue is never empty: a JS thread goes from call to call without sleeping,
/// which is what a busy proxy sees. 16 calls in flight from one task; microseconds per call.
async fn loaded_rounds(pool: &JsPool, function: &str, calls: u64) -> Vec<f64> {
    let mut loaded = Vec::new();
    {
        for _round in 0..3 {
            let round = Instant::now();
            let mut in_flight = futures::stream::FuturesUnordered::new();
            let mut sent = 0u64;
            let mut done = 0u64;
            while done < calls {
                while sent < calls && in_flight.len() < 16 {
                    let event = build_event(sent);
                    in_flight.push(async move { pool.invoke(function, &event).await });
                    sent += 1;
                }
                if let Some(result) = futures::StreamExt::next(&mut in_flight).await {
                    assert!(matches!(result, Ok(Outcome::Request(RequestOutcome::Continue { .. }))));
                    done += 1;
                }
            }
            loaded.push(round.elapsed().as_secs_f64() * 1e6 / calls as f64);
        }
    }
    loaded.sort_by(|a, b| a.total_cmp(b));
    loaded
}

/// For instruction counts: `calls` invocations of the benchmark's handler one after another on
/// one JS thread, nothing else timed or printed. Run under valgrind's callgrind with two counts
/// (say 1000 and 3000): the difference of the totals over the difference of the counts is one
/// call, both threads, start-up excluded (docs/performance.md).
fn profile_calls(calls: u64) {
    let function = std::env::var("BENCH_PROFILE_FUNCTION").unwrap_or_else(|_| "rewrite".into());
    let extra: &[(&str, &str)] = match std::env::var("BENCH_PROFILE_HEADERS").as_deref() {
        Ok("16") => &BROWSER_HEADERS,
        _ => &[],
    };
    let pool = JsPool::start(
        vec![
            FunctionSpec::new("rewrite", "rewrite.mjs", HANDLER),
            FunctionSpec::new("uri_only", "uri-only.mjs", URI_ONLY),
            FunctionSpec::new("cookie", "cookie.mjs", COOKIE),
            FunctionSpec::new("page", "page.mjs", PAGE),
        ],
        &PoolOptions {
            threads: 1,
            queue: 64,
            max_wait: Duration::from_secs(10),
            snapshot: true,
            name_servers: Vec::new(),
            ..PoolOptions::default()
        },
    )
    .expect("the functions load");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        for n in 0..calls {
            let outcome = pool.invoke(&function, &build_event_with(n, extra)).await;
            let expected = if function == "page" {
                matches!(outcome, Ok(Outcome::Request(RequestOutcome::Respond(_))))
            } else {
                matches!(outcome, Ok(Outcome::Request(RequestOutcome::Continue { .. })))
            };
            assert!(expected, "{outcome:?}");
        }
    });
}
