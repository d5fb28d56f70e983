//! What a function's `fetch` adds to the latency of calling a service: one GET to a keep-alive
//! HTTP/1.1 service on loopback made from a function (a viewer-request invocation that awaits
//! `fetch` and its body), against the same invocation without the call and against the same GET
//! made from Rust with hyper's pooled client. Run with `cargo bench --bench egress`;
//! `BENCH_CALLS` (default 2000) sets the calls per round (3 rounds, medians reported).

use bytes::Bytes;
use edgehook::config::{Egress as EgressConfig, EgressRules};
use edgehook::edge::sample::{sample, SampleOptions};
use edgehook::edge::{EventType, Outcome, RequestOutcome};
use edgehook::js::{Egress, FunctionSpec, JsPool, PoolOptions};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A keep-alive HTTP/1.1 service on loopback answering every request with a short body.
async fn service() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

/// A function allowed to reach 127.0.0.1:`port`.
fn function(name: &str, source: &str, port: u16) -> FunctionSpec {
    let mut spec = FunctionSpec::new(name, "index.mjs", source);
    let mut egress = EgressConfig::none("[functions.bench] egress");
    egress.rules =
        EgressRules::parse(&[format!("127.0.0.1:{port}")], "[functions.bench] egress".into()).expect("a rule");
    spec.egress = Arc::new(Egress::new(egress));
    spec
}

/// Median microseconds per call of `call` over three rounds of `calls`.
async fn median_us<F: std::future::Future<Output = ()>>(calls: u64, mut call: impl FnMut() -> F) -> (f64, Vec<f64>) {
    for _ in 0..calls / 10 {
        call().await;
    }
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        for _ in 0..calls {
            call().await;
        }
        rounds.push(started.elapsed().as_secs_f64() * 1e6 / calls as f64);
    }
    let mut sorted = rounds.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    (sorted[1], rounds)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let calls: u64 = std::env::var("BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let port = runtime.block_on(service());
    let url = format!("http://127.0.0.1:{port}/");

    let client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri: hyper::Uri = url.parse().expect("a URI");
    let (rust, rust_rounds) = runtime.block_on(median_us(calls, || {
        let request = client.get(uri.clone());
        async move {
            let response = request.await.expect("an answer");
            let body = response.into_body().collect().await.expect("a body").to_bytes();
            assert_eq!(&body[..], b"ok");
        }
    }));

    let fetching = format!(
        "export const handler = async () => {{ const r = await fetch('{url}'); return {{ status: '200', body: await r.text() }}; }};"
    );
    // The same kind of instance (its code names fetch), answering without the call.
    let answering = "// fetch is named: this instance has the web platform as the other's\nexport const handler = async () => ({ status: '200', body: 'ok' });";
    let pool = JsPool::start(
        vec![
            function("fetching", &fetching, port),
            function("answering", answering, port),
        ],
        &PoolOptions {
            threads: 1,
            queue: 64,
            max_wait: Duration::from_secs(1),
            snapshot: true,
            name_servers: Vec::new(),
            ..PoolOptions::default()
        },
    )
    .expect("the functions load");
    let event = sample(EventType::ViewerRequest, &SampleOptions::default());
    let invoke = |name: &'static str| {
        let (pool, event) = (&pool, &event);
        move || async move {
            match pool.invoke(name, event).await {
                Ok(Outcome::Request(RequestOutcome::Respond(answer))) => assert_eq!(answer.body, b"ok"),
                other => panic!("unexpected outcome {other:?}"),
            }
        }
    };
    let (with_fetch, fetch_rounds) = runtime.block_on(median_us(calls, invoke("fetching")));
    let (without, without_rounds) = runtime.block_on(median_us(calls, invoke("answering")));
    println!(
        "GET to a loopback service from Rust (hyper's pooled client): median {rust:.1} us (rounds: {rust_rounds:.1?})"
    );
    println!("viewer-request invocation that fetches the same URL and reads the body: median {with_fetch:.1} us (rounds: {fetch_rounds:.1?})");
    println!("the same invocation without the fetch: median {without:.1} us (rounds: {without_rounds:.1?})");
    println!(
        "one fetch adds {:.1} us to an invocation; {:.1} us more than the same GET from Rust",
        with_fetch - without,
        with_fetch - without - rust
    );
}
