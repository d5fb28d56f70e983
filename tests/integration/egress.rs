//! Functions calling out (`fetch`) through the proxy, against services on loopback: where they
//! may go, and what the operator's egress settings bound.

use crate::support::*;
use std::time::{Duration, Instant};

/// A proxy whose every request runs viewer-request function `f` (`source`), with `settings`
/// lines in its `[functions.f]` table; the origin behind it is never reached (`f` answers).
async fn edge_with(source: &str, settings: &str) -> Edgehook {
    let dir = tempfile::tempdir().expect("temp dir");
    let code = dir.path().join("f.mjs");
    std::fs::write(&code, source).expect("write the function");
    let rest = format!(
        "[origins.app]\nurl = \"http://127.0.0.1:9\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\nviewer_request = \"f\"\n\
         [functions.f]\ncode = \"{}\"\n{settings}\n",
        code.display()
    );
    Edgehook::start_in(dir, "", &rest).await
}

/// A function that fetches the URL in the request's query string (`?url=...`) and answers with
/// the status and body it got, or the error (and its cause).
const FETCH_THE_QUERY: &str = r#"
export const handler = async (event) => {
  const url = decodeURIComponent(event.Records[0].cf.request.querystring.slice('url='.length));
  try {
    const response = await fetch(url);
    return { status: '200', body: `${response.status} ${await response.text()}` };
  } catch (e) {
    return { status: '200', body: `${e.name}: ${e.message}${e.cause ? ' / ' + e.cause.message : ''}` };
  }
};"#;

/// The body the proxy answers a GET of `path` with.
async fn body_at(edge: &Edgehook, path: &str) -> String {
    client()
        .get(edge.url(path))
        .send()
        .await
        .expect("the proxy answers")
        .text()
        .await
        .expect("a body")
}

async fn fetched(edge: &Edgehook, url: &str) -> String {
    let query: String = url::form_urlencoded::byte_serialize(url.as_bytes()).collect();
    body_at(edge, &format!("/?url={query}")).await
}

/// The value of the metric line starting with `prefix` (name and labels), or 0.
fn metric(page: &str, prefix: &str) -> f64 {
    page.lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_function_reaches_what_egress_allows_and_nothing_else() {
    let service = Origin::start(|_| Reply::ok("from the service")).await;
    let other = Origin::start(|_| Reply::ok("must not be reached")).await;
    let port = service.addr.port();
    let edge = edge_with(FETCH_THE_QUERY, &format!("egress = [\"127.0.0.1:{port}\"]")).await;

    assert_eq!(
        fetched(&edge, &format!("{}/a", service.url())).await,
        "200 from the service"
    );
    assert_eq!(
        fetched(&edge, &format!("{}/b", other.url())).await,
        format!(
            "TypeError: outbound request to 127.0.0.1:{} refused: [functions.f] egress does not allow it (an internal address must be listed as itself)",
            other.addr.port()
        )
    );
    // A name is checked again once resolved: `localhost` is allowed by nothing here, and
    // resolving it cannot smuggle a request to 127.0.0.1 either.
    let by_name = fetched(&edge, &format!("http://localhost:{port}/c")).await;
    assert!(
        by_name.contains(&format!("outbound request to localhost:{port} refused")),
        "{by_name}"
    );
    assert_eq!(other.total(), 0, "the refused service saw nothing");
    assert_eq!(service.total(), 1);

    let page = edge.metrics_page().await;
    assert_eq!(
        metric(
            &page,
            r#"edgehook_function_egress_requests_total{function="f",host="127.0.0.1",status_class="2xx"}"#
        ),
        1.0,
        "{page}"
    );
    assert_eq!(
        metric(
            &page,
            r#"edgehook_function_egress_refused_total{function="f",host="127.0.0.1"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &page,
            r#"edgehook_function_egress_refused_total{function="f",host="localhost"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(&page, r#"edgehook_function_egress_seconds_count{function="f"}"#),
        1.0
    );
    let log = edge.wait_log("outbound_calls=1").await;
    assert!(
        log.contains("outbound_calls=0"),
        "refused calls are not outbound calls: {log}"
    );
}

#[tokio::test]
async fn a_name_resolving_to_an_internal_address_needs_that_address_allowed() {
    let service = Origin::start(|_| Reply::ok("internal service")).await;
    let port = service.addr.port();
    let name_only = edge_with(FETCH_THE_QUERY, &format!("egress = [\"localhost:{port}\"]")).await;
    let refused = fetched(&name_only, &format!("http://localhost:{port}/")).await;
    assert!(
        refused.starts_with("TypeError: fetch failed")
            && refused.contains("outbound request to localhost refused: it resolves to 127.0.0.1")
            && refused.contains("[functions.f] egress does not list 127.0.0.1 itself"),
        "{refused}"
    );
    assert_eq!(service.total(), 0);
    let both = edge_with(
        FETCH_THE_QUERY,
        &format!("egress = [\"localhost:{port}\", \"127.0.0.1:{port}\"]"),
    )
    .await;
    assert_eq!(
        fetched(&both, &format!("http://localhost:{port}/")).await,
        "200 internal service"
    );
}

#[tokio::test]
async fn a_slow_service_is_bounded_by_the_function_timeout_and_its_own_signal() {
    let service = answering_late("late", "/slow", Duration::from_secs(30)).await;
    let port = service.addr.port();
    let source = r#"
export const handler = async (event) => {
  const { uri } = event.Records[0].cf.request;
  const base = `http://127.0.0.1:${process.env.PORT}`;
  if (uri === '/own-timeout') {
    try {
      await fetch(`${base}/slow`, { signal: AbortSignal.timeout(200) });
      return { status: '200', body: 'no timeout' };
    } catch (e) {
      return { status: '200', body: e.name };
    }
  }
  const response = await fetch(`${base}${uri}`);
  return { status: '200', body: await response.text() };
};"#;
    let settings = format!("egress = [\"127.0.0.1:{port}\"]\ntimeout = \"1s\"\nenv = {{ PORT = \"{port}\" }}");
    let edge = edge_with(source, &settings).await;
    let c = client();

    let started = Instant::now();
    let own = c.get(edge.url("/own-timeout")).send().await.expect("an answer");
    assert_eq!(own.text().await.expect("a body"), "TimeoutError");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "AbortSignal.timeout(200) took {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let timed_out = c.get(edge.url("/slow")).send().await.expect("an answer");
    assert_eq!(timed_out.status(), 503, "a function timeout is the function's failure");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    // The instance that timed out is replaced, and its request goes with it.
    wait_until(|| service.abandoned() == 2, "both slow requests were given up").await;
    let after = c.get(edge.url("/fast")).send().await.expect("an answer");
    assert_eq!(after.text().await.expect("a body"), "late", "the function works on");
}

#[tokio::test]
async fn response_bodies_larger_than_egress_max_response_fail() {
    let service = Origin::start(|seen| match seen.uri.as_str() {
        "/declared" => Reply::ok(vec![b'a'; 2000]),
        "/streamed" => Reply::streamed(vec![vec![b'b'; 600]; 4], Duration::from_millis(10)),
        _ => Reply::ok(vec![b'c'; 1000]),
    })
    .await;
    let port = service.addr.port();
    let edge = edge_with(
        FETCH_THE_QUERY,
        &format!("egress = [\"127.0.0.1:{port}\"]\negress_max_response = \"1KiB\""),
    )
    .await;
    let base = service.url();
    let within = fetched(&edge, &format!("{base}/within")).await;
    assert_eq!(within, format!("200 {}", "c".repeat(1000)));
    let too_large =
        "TypeError: the response from 127.0.0.1 is larger than the function's egress_max_response (1024 bytes)";
    assert_eq!(
        fetched(&edge, &format!("{base}/declared")).await,
        too_large,
        "told by its content-length"
    );
    assert_eq!(
        fetched(&edge, &format!("{base}/streamed")).await,
        too_large,
        "counted as it arrives"
    );
}

#[tokio::test]
async fn a_streaming_body_is_read_as_it_arrives() {
    let pieces: Vec<Vec<u8>> = ["one ", "two ", "three"]
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
    let service = Origin::start(move |_| Reply::streamed(pieces.clone(), Duration::from_millis(150))).await;
    let port = service.addr.port();
    let source = r#"
export const handler = async () => {
  const response = await fetch(`http://127.0.0.1:${process.env.PORT}/`);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const reads = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    reads.push(decoder.decode(value));
  }
  return { status: '200', body: JSON.stringify(reads) };
};"#;
    let edge = edge_with(
        source,
        &format!("egress = [\"127.0.0.1:{port}\"]\nenv = {{ PORT = \"{port}\" }}"),
    )
    .await;
    let body = body_at(&edge, "/").await;
    let reads: Vec<String> = serde_json::from_str(&body).expect("the reads as JSON");
    assert_eq!(reads.concat(), "one two three");
    assert_eq!(reads.len(), 3, "each piece read as it came, 150 ms apart: {reads:?}");
}

#[tokio::test]
async fn tls_is_verified_against_the_system_roots_or_the_function_ca_file() {
    let (ca_pem, cert_pem, key_pem) = private_ca_and_leaf();
    let service = Origin::start_tls(tls_acceptor(&cert_pem, &key_pem), |_| Reply::ok("over TLS")).await;
    let port = service.addr.port();
    let url = format!("https://localhost:{port}/");
    let allow = format!("egress = [\"localhost:{port}\", \"127.0.0.1:{port}\"]");

    let untrusted = edge_with(FETCH_THE_QUERY, &allow).await;
    let failure = fetched(&untrusted, &url).await;
    assert!(
        failure.starts_with("TypeError: fetch failed") && failure.contains("UnknownIssuer"),
        "a certificate from an unknown authority is refused: {failure}"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("write the CA");
    let trusting = edge_with(
        FETCH_THE_QUERY,
        &format!("{allow}\nca_file = \"{}\"", ca_file.display()),
    )
    .await;
    assert_eq!(fetched(&trusting, &url).await, "200 over TLS");
}

#[tokio::test]
async fn a_request_still_running_when_the_handler_returns_is_cancelled() {
    let service = answering_late("answered", "/hang", Duration::from_secs(60)).await;
    let port = service.addr.port();
    let source = r#"
export const handler = async (event) => {
  const base = `http://127.0.0.1:${process.env.PORT}`;
  if (event.Records[0].cf.request.uri === '/leave') {
    fetch(`${base}/hang`).then(() => console.log('never'), (e) => console.log('never either', e));
    // Long enough for the request to reach the service.
    await new Promise((resolve) => setTimeout(resolve, 200));
    return { status: '200', body: 'left it running' };
  }
  const response = await fetch(`${base}/fine`);
  return { status: '200', body: await response.text() };
};"#;
    // One slot: the next call goes out only if the abandoned request gave its slot back.
    let settings = format!("egress = [\"127.0.0.1:{port}\"]\negress_concurrency = 1\nenv = {{ PORT = \"{port}\" }}");
    let edge = edge_with(source, &settings).await;
    let c = client();
    let left = c.get(edge.url("/leave")).send().await.expect("an answer");
    assert_eq!(left.text().await.expect("a body"), "left it running");
    assert_eq!(service.count("/hang"), 1, "the request went out");
    wait_until(|| service.abandoned() == 1, "the request left running was cancelled").await;
    for _ in 0..3 {
        let next = c.get(edge.url("/next")).send().await.expect("an answer");
        assert_eq!(next.text().await.expect("a body"), "answered");
    }
    let page = edge.metrics_page().await;
    assert_eq!(
        metric(
            &page,
            r#"edgehook_function_egress_requests_total{function="f",host="127.0.0.1",status_class="cancelled"}"#
        ),
        1.0,
        "{page}"
    );
    assert!(
        !edge.log_text().contains("never"),
        "its promise never settles, as in a frozen sandbox"
    );
}

#[tokio::test]
async fn concurrent_requests_of_a_function_are_bounded_by_egress_concurrency() {
    let service = Origin::start(|_| Reply::ok("ok").delay(Duration::from_millis(200))).await;
    let port = service.addr.port();
    let source = r#"
export const handler = async () => {
  const base = `http://127.0.0.1:${process.env.PORT}`;
  const bodies = await Promise.all([1, 2, 3, 4, 5, 6].map((n) => fetch(`${base}/${n}`).then((r) => r.text())));
  return { status: '200', body: bodies.join(',') };
};"#;
    let settings = format!("egress = [\"127.0.0.1:{port}\"]\negress_concurrency = 2\nenv = {{ PORT = \"{port}\" }}");
    let edge = edge_with(source, &settings).await;
    let started = Instant::now();
    let body = body_at(&edge, "/").await;
    assert_eq!(body, "ok,ok,ok,ok,ok,ok");
    assert_eq!(service.total(), 6);
    assert_eq!(
        service.peak_concurrency(),
        2,
        "two at a time ({} connections, {:?})",
        service.connections(),
        started.elapsed()
    );
    assert!(
        started.elapsed() >= Duration::from_millis(550),
        "three rounds of 200 ms: {:?}",
        started.elapsed()
    );
    let log = edge.wait_log("outbound_calls=6").await;
    assert!(log.contains("REPORT"), "{log}");
}

/// A service answering `body` to every request, after `delay` to those for `slow_path`.
async fn answering_late(body: &'static str, slow_path: &'static str, delay: Duration) -> Origin {
    Origin::start(move |seen| {
        let reply = Reply::ok(body);
        if seen.uri == slow_path {
            reply.delay(delay)
        } else {
            reply
        }
    })
    .await
}

/// A CA and a certificate it signed for `localhost` and 127.0.0.1: (CA PEM, cert PEM, key PEM).
fn private_ca_and_leaf() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca_params = CertificateParams::new(Vec::new()).expect("CA parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("a CA certificate");
    let leaf_key = KeyPair::generate().expect("a key");
    let leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("leaf parameters")
        .signed_by(&leaf_key, &ca, &ca_key)
        .expect("a certificate");
    (ca.pem(), leaf.pem(), leaf_key.serialize_pem())
}

async fn wait_until(done: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "not within 5 s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
