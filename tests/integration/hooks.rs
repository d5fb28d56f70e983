//! Functions at viewer request and viewer response, end to end through the proxy.

use crate::support::*;
use std::time::Duration;

/// A config with functions from `functions` (name, source) and one default behavior.
fn config(origin: &Origin, dir: &std::path::Path, functions: &[(&str, &str)], behavior: &str, runtime: &str) -> String {
    let mut text = format!(
        "[runtime]\nthreads = 2\n{runtime}\n[origins.app]\nurl = \"{}\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n{behavior}\n",
        origin.url()
    );
    for (name, source) in functions {
        let file = dir.join(format!("{name}.mjs"));
        std::fs::write(&file, source).unwrap();
        text.push_str(&format!("[functions.{name}]\ncode = \"{}\"\n", file.display()));
    }
    text
}

/// Adds a setting line (`timeout = "1s"`) to function `name` of a config made by `config`.
fn with_setting(config: String, name: &str, line: &str) -> String {
    let code_line = format!("{name}.mjs\"\n");
    assert!(config.contains(&code_line), "no function {name} in the config");
    config.replace(&code_line, &format!("{code_line}{line}\n"))
}

async fn start(origin: &Origin, functions: &[(&str, &str)], behavior: &str) -> Edgehook {
    start_with_runtime(origin, functions, behavior, "").await
}

async fn start_with_runtime(origin: &Origin, functions: &[(&str, &str)], behavior: &str, runtime: &str) -> Edgehook {
    let dir = tempfile::tempdir().unwrap();
    let rest = config(origin, dir.path(), functions, behavior, runtime);
    Edgehook::start_in(dir, "", &rest).await
}

const REWRITE: &str = r#"
export const handler = async (event) => {
  const request = event.Records[0].cf.request;
  if (request.uri.startsWith('/old/')) request.uri = '/new/' + request.uri.slice(5);
  request.headers['x-request-id-seen'] = [{ value: event.Records[0].cf.config.requestId }];
  request.headers['x-event'] = [{ value: event.Records[0].cf.config.eventType }];
  return request;
};"#;

#[tokio::test]
async fn viewer_request_changes_decide_the_cache_key_and_what_the_origin_sees() {
    let origin =
        Origin::start(|seen| Reply::ok(format!("origin saw {}", seen.uri)).header("cache-control", "max-age=60")).await;
    let edge = start(&origin, &[("rewrite", REWRITE)], "viewer_request = \"rewrite\"").await;
    let c = client();
    let first = c.get(edge.url("/old/page")).send().await.unwrap();
    let request_id = first.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(first.headers()["x-cache"], "Miss from edgehook");
    assert_eq!(first.text().await.unwrap(), "origin saw /new/page");
    let seen = origin.last();
    assert_eq!(seen.headers["x-event"], "viewer-request");
    assert_eq!(
        seen.headers["x-request-id-seen"],
        request_id.as_str(),
        "config.requestId is the request id"
    );
    // Another viewer URI rewritten to the same path is a hit: the key follows the rewrite.
    let second = c.get(edge.url("/new/page")).send().await.unwrap();
    assert_eq!(second.headers()["x-cache"], "Hit from edgehook");
    assert_eq!(origin.count("/new/page"), 1);
    // The function ran for every request, hit or miss.
    let metrics = c
        .get(edge.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("edgehook_function_invocations_total{event_type=\"viewer-request\",function=\"rewrite\"} 2"),
        "{metrics}"
    );
    edge.wait_log("REPORT").await;
    let log = edge.wait_log(&request_id).await;
    assert!(
        log.lines().any(|l| l.contains("REPORT") && l.contains(&request_id)),
        "{log}"
    );
}

const ANSWER: &str = r#"
export const handler = async (event) => {
  const request = event.Records[0].cf.request;
  if (request.uri === '/login') {
    return { status: '302', statusDescription: 'Found', headers: { location: [{ value: 'https://example.com/signin' }], 'cache-control': [{ value: 'max-age=600' }] } };
  }
  if (request.uri === '/page') return { status: 200, headers: { 'content-type': [{ value: 'text/html' }] }, body: '<h1>generated</h1>' };
  return request;
};"#;

const MARK: &str = r#"
export const handler = async (event) => {
  const response = event.Records[0].cf.response;
  response.headers['x-viewer-response'] = [{ value: event.Records[0].cf.config.requestId }];
  return response;
};"#;

#[tokio::test]
async fn generated_viewer_responses_skip_cache_origin_and_viewer_response() {
    let origin = Origin::start(|_| Reply::ok("from origin").header("cache-control", "max-age=60")).await;
    let edge = start(
        &origin,
        &[("answer", ANSWER), ("mark", MARK)],
        "viewer_request = \"answer\"\nviewer_response = \"mark\"",
    )
    .await;
    let c = client();
    for _ in 0..2 {
        let login = c.get(edge.url("/login")).send().await.unwrap();
        assert_eq!(login.status(), 302);
        assert_eq!(login.headers()["location"], "https://example.com/signin");
        assert_eq!(login.headers()["x-cache"], "LambdaGeneratedResponse from edgehook");
        assert!(
            !login.headers().contains_key("x-viewer-response"),
            "viewer-response does not run"
        );
    }
    let page = c.get(edge.url("/page")).send().await.unwrap();
    assert_eq!(page.headers()["content-type"], "text/html");
    assert_eq!(page.headers()["content-length"], "18");
    assert_eq!(page.text().await.unwrap(), "<h1>generated</h1>");
    assert_eq!(origin.total(), 0, "no origin call for generated responses");
    // A normal request goes through, and viewer-response runs on it.
    let normal = c.get(edge.url("/other")).send().await.unwrap();
    assert_eq!(normal.headers()["x-viewer-response"], normal.headers()["x-request-id"]);
    assert_eq!(origin.total(), 1);
}

#[tokio::test]
async fn viewer_response_runs_on_hits_and_misses_but_not_on_errors_and_is_not_cached() {
    let origin = Origin::start(|seen| match seen.uri.as_str() {
        "/missing" => Reply::ok("no").status(404),
        _ => Reply::ok("x").header("cache-control", "max-age=60"),
    })
    .await;
    let edge = start(&origin, &[("mark", MARK)], "viewer_response = \"mark\"").await;
    let c = client();
    let miss = c.get(edge.url("/p")).send().await.unwrap();
    assert_eq!(miss.headers()["x-cache"], "Miss from edgehook");
    assert_eq!(miss.headers()["x-viewer-response"], miss.headers()["x-request-id"]);
    let hit = c.get(edge.url("/p")).send().await.unwrap();
    assert_eq!(hit.headers()["x-cache"], "Hit from edgehook");
    assert_eq!(
        hit.headers()["x-viewer-response"],
        hit.headers()["x-request-id"],
        "ran again on the hit with this request's id; the miss's change was not cached"
    );
    assert_eq!(hit.headers().get_all("x-viewer-response").iter().count(), 1);
    let missing = c.get(edge.url("/missing")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(!missing.headers().contains_key("x-viewer-response"), "not run for 4xx");
}

#[tokio::test]
async fn function_failures_answer_with_their_class_and_the_proxy_keeps_serving() {
    let functions = [
        ("throws", "export const handler = async () => { throw new Error('boom'); };"),
        ("invalid", "export const handler = async (e) => { const r = e.Records[0].cf.request; r.headers.host = [{ value: 'evil' }]; return r; };"),
        ("slow", "export const handler = (e) => new Promise((resolve) => setTimeout(() => resolve(e.Records[0].cf.request), 500));"),
        ("vrthrows", "export const handler = async () => { throw new TypeError('bad response'); };"),
    ];
    let origin = Origin::start(|_| Reply::ok("fine").header("cache-control", "no-store")).await;
    let dir = tempfile::tempdir().unwrap();
    let mut rest = config(&origin, dir.path(), &functions, "", "max_wait = \"20ms\"");
    // One behavior per function; the default has none.
    let behaviors = "[[behaviors]]\npath = \"/throws\"\norigin = \"app\"\nviewer_request = \"throws\"\n\
        [[behaviors]]\npath = \"/invalid\"\norigin = \"app\"\nviewer_request = \"invalid\"\n\
        [[behaviors]]\npath = \"/slow\"\norigin = \"app\"\nviewer_request = \"slow\"\n\
        [[behaviors]]\npath = \"/vr\"\norigin = \"app\"\nviewer_response = \"vrthrows\"\n";
    rest = rest.replace(
        "[[behaviors]]\npath = \"*\"",
        &format!("{behaviors}[[behaviors]]\npath = \"*\""),
    );
    rest = with_setting(rest, "slow", "concurrency = 1");
    let edge = Edgehook::start_in(dir, "", &rest).await;
    let c = client();
    let check = |response: reqwest::Response, status: u16, class: &str| {
        assert_eq!(response.status(), status, "{class}");
        assert_eq!(response.headers()["x-cache"], format!("{class} from edgehook").as_str());
        assert_eq!(response.headers()["x-request-id"].len(), 32);
    };
    check(
        c.get(edge.url("/throws")).send().await.unwrap(),
        503,
        "LambdaExecutionError",
    );
    check(
        c.get(edge.url("/invalid")).send().await.unwrap(),
        502,
        "LambdaValidationError",
    );
    check(
        c.get(edge.url("/vr")).send().await.unwrap(),
        503,
        "LambdaExecutionError",
    );
    // `slow` allows one invocation at a time.
    let first = {
        let (c, url) = (c.clone(), edge.url("/slow"));
        tokio::spawn(async move { c.get(url).send().await.unwrap().status().as_u16() })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    check(
        c.get(edge.url("/slow")).send().await.unwrap(),
        503,
        "LambdaLimitExceeded",
    );
    assert_eq!(first.await.unwrap(), 200);
    assert_eq!(
        c.get(edge.url("/ok")).send().await.unwrap().status(),
        200,
        "the proxy keeps serving"
    );
    let log = edge.wait_log("LambdaValidationError in function `invalid`").await;
    assert!(log.contains("read-only header: Host"), "the log names the rule broken");
    let metrics = c
        .get(edge.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("edgehook_function_throttles_total{function=\"slow\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("class=\"LambdaValidationError\",event_type=\"viewer-request\",function=\"invalid\"} 1"),
        "{metrics}"
    );
}

/// The most memory the process has held so far (`VmHWM`), in KiB.
fn peak_resident_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Edgehook on `threads` JS threads with one viewer-request function (name, source) and a
/// setting line for it, in front of an origin that answers 200 and lets nothing be cached.
async fn start_hostile(function: (&str, &str), setting: &str, threads: usize) -> (Origin, Edgehook) {
    let origin = Origin::start(|_| Reply::ok("fine").header("cache-control", "no-store")).await;
    let dir = tempfile::tempdir().unwrap();
    let (name, _) = function;
    let rest = config(
        &origin,
        dir.path(),
        &[function],
        &format!("viewer_request = \"{name}\""),
        "",
    )
    .replace("[runtime]\nthreads = 2\n", &format!("[runtime]\nthreads = {threads}\n"));
    assert!(rest.contains(&format!("[runtime]\nthreads = {threads}\n")));
    let rest = with_setting(rest, name, setting);
    let edge = Edgehook::start_in(dir, "", &rest).await;
    (origin, edge)
}

#[tokio::test]
async fn a_function_allocating_large_blocks_is_held_at_its_memory_limit() {
    // 192 blocks of 16 MiB (3 GiB), each written so that it is resident, against a 32 MiB limit.
    // The engine notices a termination only every few thousand operations, well after the next
    // block: each block past the limit must be refused, not granted more room.
    const HOARD: &str = "export const handler = async (e) => { const r = e.Records[0].cf.request; if (r.uri === '/hoard') { const kept = []; for (let i = 0; i < 192; i++) { const block = new Uint8Array(16 << 20); block.fill(1); kept.push(block); } r.uri = '/kept-' + kept.length; } return r; };";
    let (origin, edge) = start_hostile(("hoard", HOARD), "memory = \"32MiB\"", 2).await;
    let c = client();
    let before = peak_resident_kib(edge.pid());
    let response = c.get(edge.url("/hoard")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["x-cache"], "LambdaExecutionError from edgehook");
    let grown = peak_resident_kib(edge.pid()).saturating_sub(before);
    assert!(
        grown < 512 << 10,
        "the process grew by {grown} KiB for a 32 MiB function"
    );
    assert_eq!(origin.total(), 0);
    let next = c.get(edge.url("/next")).send().await.unwrap();
    assert_eq!(next.status(), 200, "a fresh instance serves the next request");
    assert_eq!(origin.last().uri, "/next");
}

#[tokio::test]
async fn a_script_that_ignores_its_stop_costs_its_thread_not_the_service() {
    // One JS thread. Each turn is one long native call (a search through 16 MiB); the engine
    // looks for a stop only every 10,000 calls and loop turns, so the script runs on for
    // seconds past its 200 ms timeout.
    const SEARCH: &str = "export const handler = async (e) => { const r = e.Records[0].cf.request; if (r.uri === '/search') { const text = 'x'.repeat(16 << 20); let found = 0; for (let i = 0; i < 100; i++) found += text.indexOf('y' + i); r.uri = '/found' + found; } return r; };";
    let (_origin, edge) = start_hostile(("search", SEARCH), "timeout = \"200ms\"", 1).await;
    let c = client();
    let started = std::time::Instant::now();
    let stuck = c.get(edge.url("/search")).send().await.unwrap();
    assert_eq!(stuck.status(), 503);
    assert_eq!(stuck.headers()["x-cache"], "LambdaExecutionError from edgehook");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "answered after {:?}",
        started.elapsed()
    );
    // Its thread is replaced: the next requests are served while the search goes on.
    for _ in 0..3 {
        let next = c.get(edge.url("/next")).send().await.unwrap();
        assert_eq!(next.status(), 200, "after {:?}", started.elapsed());
    }
    assert_eq!(metric(&edge, "edgehook_js_threads_replaced_total").await, 1);
    assert_eq!(metric(&edge, "edgehook_js_threads_stuck").await, 1);
    edge.wait_log("a script runs on past its stop; its JS thread is replaced")
        .await;
    // The replaced thread exits when the search ends.
    while metric(&edge, "edgehook_js_threads_stuck").await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the replaced thread never ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(c.get(edge.url("/last")).send().await.unwrap().status(), 200);
}

async fn metric(edge: &Edgehook, line_start: &str) -> u64 {
    edge.metrics_page()
        .await
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

const ORIGIN_REQUEST: &str = r#"
export const handler = async (event) => {
  const request = event.Records[0].cf.request;
  const origin = request.origin.custom;
  request.headers['x-origin-request'] = [{ value: origin.domainName + ':' + origin.port + ' ' + event.Records[0].cf.config.eventType }];
  if (request.uri === '/generated') {
    return { status: '200', headers: { 'content-type': [{ value: 'text/plain' }], 'cache-control': [{ value: 'max-age=300' }] }, body: 'made at the edge' };
  }
  if (request.uri.startsWith('/elsewhere/')) {
    const port = Number(request.querystring.split('=')[1]);
    request.origin = { custom: { domainName: 'localhost', port, protocol: 'http', path: '/base', readTimeout: 5, keepaliveTimeout: 5, sslProtocols: ['TLSv1.2'], customHeaders: { 'x-origin-secret': [{ value: 's3cret' }] } } };
    request.headers['host'] = [{ key: 'Host', value: 'other.example' }];
    request.uri = request.uri.slice('/elsewhere'.length);
  }
  return request;
};"#;

#[tokio::test]
async fn origin_request_runs_on_misses_only_and_its_changes_reach_the_origin() {
    let origin =
        Origin::start(|seen| Reply::ok(format!("main saw {}", seen.uri)).header("cache-control", "max-age=60")).await;
    let other =
        Origin::start(|seen| Reply::ok(format!("other saw {}", seen.uri)).header("cache-control", "max-age=60")).await;
    let edge = start(&origin, &[("pick", ORIGIN_REQUEST)], "origin_request = \"pick\"").await;
    let c = client();
    assert_eq!(
        c.get(edge.url("/p")).send().await.unwrap().text().await.unwrap(),
        "main saw /p"
    );
    let seen = origin.last();
    assert_eq!(
        seen.headers["x-origin-request"],
        format!("127.0.0.1:{} origin-request", origin.addr.port()).as_str()
    );
    let hit = c.get(edge.url("/p")).send().await.unwrap();
    assert_eq!(hit.headers()["x-cache"], "Hit from edgehook");
    let runs = metric(
        &edge,
        "edgehook_function_invocations_total{event_type=\"origin-request\",function=\"pick\"}",
    )
    .await;
    assert_eq!(runs, 1, "not run on the hit");

    // A new origin chosen by the function really is used, with its path, Host and custom header.
    let moved = c
        .get(edge.url(&format!("/elsewhere/item?port={}", other.addr.port())))
        .send()
        .await
        .unwrap();
    assert_eq!(
        moved.text().await.unwrap(),
        "other saw /base/item?port=".to_string() + &other.addr.port().to_string()
    );
    let seen = other.last();
    assert_eq!(seen.headers["host"], "other.example");
    assert_eq!(seen.headers["x-origin-secret"], "s3cret");
    assert_eq!(origin.count("/elsewhere/item"), 0);
}

#[tokio::test]
async fn origin_request_answers_are_cached_and_skip_origin_response() {
    let origin = Origin::start(|_| Reply::ok("origin")).await;
    let mark = "export const handler = async (e) => { const r = e.Records[0].cf.response; r.headers['x-origin-response'] = [{ value: 'ran' }]; return r; };";
    let edge = start(
        &origin,
        &[("pick", ORIGIN_REQUEST), ("mark", mark)],
        "origin_request = \"pick\"\norigin_response = \"mark\"",
    )
    .await;
    let c = client();
    let first = c.get(edge.url("/generated")).send().await.unwrap();
    let first_request_id = first.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-cache"], "Miss from edgehook");
    assert!(
        !first.headers().contains_key("x-origin-response"),
        "origin-response is skipped"
    );
    assert_eq!(first.text().await.unwrap(), "made at the edge");
    let second = c.get(edge.url("/generated")).send().await.unwrap();
    assert_eq!(second.headers()["x-cache"], "Hit from edgehook");
    assert_eq!(second.text().await.unwrap(), "made at the edge");
    assert_eq!(origin.total(), 0, "no origin was asked");
    let runs = metric(
        &edge,
        "edgehook_function_invocations_total{event_type=\"origin-request\",function=\"pick\"}",
    )
    .await;
    assert_eq!(
        runs, 1,
        "the cached answer is served without running the function again"
    );
    let log = edge.wait_log("MissGeneratedResponse").await;
    assert!(
        log.lines()
            .any(|l| l.contains("MissGeneratedResponse") && l.contains(&first_request_id)),
        "the access log marks the first answer as generated: {log}"
    );
}

const FIX_ERRORS: &str = r#"
export const handler = async (event) => {
  const response = event.Records[0].cf.response;
  if (Number(response.status) >= 500) {
    return { status: 200, statusDescription: 'OK', headers: { ...response.headers, 'cache-control': [{ value: 'max-age=60' }], 'content-type': [{ value: 'text/plain' }] }, body: 'fallback page' };
  }
  response.headers['x-origin-response'] = [{ value: response.status }];
  return response;
};"#;

#[tokio::test]
async fn origin_response_runs_for_every_status_and_its_changes_are_cached() {
    let origin = Origin::start(|seen| match seen.uri.as_str() {
        "/broken" => Reply::ok("internal error").status(500),
        "/gone" => Reply::ok("nope").status(404),
        _ => Reply::ok("fine").header("cache-control", "max-age=60"),
    })
    .await;
    let edge = start(&origin, &[("fix", FIX_ERRORS)], "origin_response = \"fix\"").await;
    let c = client();
    for expected_cache in ["Miss from edgehook", "Hit from edgehook"] {
        let fixed = c.get(edge.url("/broken")).send().await.unwrap();
        assert_eq!(fixed.status(), 200);
        assert_eq!(fixed.headers()["x-cache"], expected_cache);
        assert_eq!(fixed.text().await.unwrap(), "fallback page");
    }
    assert_eq!(origin.count("/broken"), 1, "the replacement was cached");
    let gone = c.get(edge.url("/gone")).send().await.unwrap();
    assert_eq!(gone.status(), 404);
    assert_eq!(gone.headers()["x-origin-response"], "404", "runs for 4xx too");
    let fine = c.get(edge.url("/fine")).send().await.unwrap();
    assert_eq!(fine.headers()["x-origin-response"], "200");
    let again = c.get(edge.url("/fine")).send().await.unwrap();
    assert_eq!(again.headers()["x-cache"], "Hit from edgehook");
    assert_eq!(
        again.headers()["x-origin-response"],
        "200",
        "the change is in the cached copy"
    );
    let runs = metric(
        &edge,
        "edgehook_function_invocations_total{event_type=\"origin-response\",function=\"fix\"}",
    )
    .await;
    assert_eq!(runs, 3, "not run on hits");
}

#[tokio::test]
async fn origin_function_failures_answer_with_their_class() {
    let origin = Origin::start(|_| Reply::ok("fine")).await;
    let functions = [
        (
            "orthrows",
            "export const handler = async () => { throw new Error('no'); };",
        ),
        (
            "orbad",
            "export const handler = async (e) => { const r = e.Records[0].cf.response; r.status = 999; return r; };",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut rest = config(&origin, dir.path(), &functions, "", "");
    rest = rest.replace(
        "[[behaviors]]\npath = \"*\"",
        "[[behaviors]]\npath = \"/a\"\norigin = \"app\"\norigin_request = \"orthrows\"\n[[behaviors]]\npath = \"/b\"\norigin = \"app\"\norigin_response = \"orbad\"\n[[behaviors]]\npath = \"*\"",
    );
    let edge = Edgehook::start_in(dir, "", &rest).await;
    let c = client();
    let a = c.get(edge.url("/a")).send().await.unwrap();
    assert_eq!(a.status(), 503);
    assert_eq!(a.headers()["x-cache"], "LambdaExecutionError from edgehook");
    assert_eq!(origin.count("/a"), 0);
    let b = c.get(edge.url("/b")).send().await.unwrap();
    assert_eq!(b.status(), 502);
    assert_eq!(b.headers()["x-cache"], "LambdaValidationError from edgehook");
    assert_eq!(c.get(edge.url("/other")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn cloudfront_viewer_headers_reach_origin_events_only() {
    let viewer = r#"export const handler = async (e) => { const r = e.Records[0].cf.request;
      r.headers['x-viewer-saw'] = [{ value: r.headers['cloudfront-is-desktop-viewer'] ? 'present' : 'absent' }]; return r; };"#;
    let origin_fn = r#"export const handler = async (e) => { const r = e.Records[0].cf.request; const h = (n) => r.headers[n]?.[0]?.value;
      r.headers['x-origin-saw'] = [{ value: [h('cloudfront-is-desktop-viewer'), h('cloudfront-is-mobile-viewer'), h('cloudfront-viewer-country'), h('cloudfront-forwarded-proto'), h('cloudfront-viewer-address') ? 'address' : 'none'].join(',') }];
      return r; };"#;
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let dir = tempfile::tempdir().unwrap();
    let rest = config(
        &origin,
        dir.path(),
        &[("viewer", viewer), ("originfn", origin_fn)],
        "viewer_request = \"viewer\"\norigin_request = \"originfn\"\ncache = false",
        "",
    );
    let edge = Edgehook::start_in(dir, "viewer_country_header = \"x-geo-country\"", &rest).await;
    client()
        .get(edge.url("/"))
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64)")
        .header("x-geo-country", "fr")
        .header("cloudfront-is-mobile-viewer", "true")
        .send()
        .await
        .unwrap();
    let seen = origin.last();
    assert_eq!(seen.headers["x-viewer-saw"], "absent", "added after viewer-request");
    assert_eq!(
        seen.headers["x-origin-saw"], "true,false,FR,http,address",
        "the viewer's own value is replaced"
    );
    assert_eq!(seen.headers["cloudfront-is-mobile-viewer"], "false");
}

const READ_BODY: &str = r#"
export const handler = async (event) => {
  const request = event.Records[0].cf.request;
  const body = request.body;
  if (!body) { request.headers['x-body'] = [{ value: 'none' }]; return request; }
  const text = Buffer.from(body.data, 'base64').toString('utf8');
  request.headers['x-body'] = [{ value: `${event.Records[0].cf.config.eventType} ${body.encoding} ${body.inputTruncated} ${text.length} ${text.slice(0, 12)}` }];
  if (text.startsWith('replace-text')) {
    request.body = { action: 'replace', encoding: 'text', data: 'the new body' };
  } else if (text.startsWith('replace-b64')) {
    request.body = { action: 'replace', encoding: 'base64', data: Buffer.from('binary body').toString('base64') };
  }
  return request;
};"#;

#[tokio::test]
async fn include_body_at_viewer_request() {
    let origin = Origin::start(|seen| Reply::ok(format!("origin got {} bytes", seen.body.len()))).await;
    let edge = start(
        &origin,
        &[("body", READ_BODY)],
        "viewer_request = { function = \"body\", include_body = true }",
    )
    .await;
    let c = client();
    let small = c.post(edge.url("/form")).body("name1=a&name2=b").send().await.unwrap();
    assert_eq!(small.text().await.unwrap(), "origin got 15 bytes");
    let seen = origin.last();
    assert_eq!(seen.headers["x-body"], "viewer-request base64 false 15 name1=a&name");
    assert_eq!(
        seen.body, b"name1=a&name2=b",
        "read-only: the original body goes through"
    );

    let big = "x".repeat(50 * 1024);
    let response = c.post(edge.url("/upload")).body(big.clone()).send().await.unwrap();
    assert_eq!(
        response.text().await.unwrap(),
        format!("origin got {} bytes", big.len()),
        "in full"
    );
    assert_eq!(
        origin.last().headers["x-body"],
        "viewer-request base64 true 40960 xxxxxxxxxxxx",
        "truncated at 40 KB"
    );

    let replaced = c.post(edge.url("/r")).body("replace-text please").send().await.unwrap();
    assert_eq!(replaced.text().await.unwrap(), "origin got 12 bytes");
    assert_eq!(origin.last().body, b"the new body");
    assert_eq!(origin.last().headers["content-length"], "12");

    let get = c.get(edge.url("/plain")).send().await.unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(origin.last().headers["x-body"], "none", "no body key without a body");
}

#[tokio::test]
async fn include_body_at_origin_request() {
    let origin = Origin::start(|seen| Reply::ok(format!("origin got {} bytes", seen.body.len()))).await;
    let edge = start(
        &origin,
        &[("body", READ_BODY)],
        "origin_request = { function = \"body\", include_body = true }\ncache = false",
    )
    .await;
    let c = client();
    let big = "y".repeat(1024 * 1024 + 512);
    let response = c.post(edge.url("/upload")).body(big.clone()).send().await.unwrap();
    assert_eq!(
        response.text().await.unwrap(),
        format!("origin got {} bytes", big.len())
    );
    assert_eq!(
        origin.last().headers["x-body"],
        "origin-request base64 true 1048576 yyyyyyyyyyyy",
        "truncated at 1 MB"
    );
    let replaced = c.post(edge.url("/r")).body("replace-b64").send().await.unwrap();
    assert_eq!(replaced.text().await.unwrap(), "origin got 11 bytes");
    assert_eq!(origin.last().body, b"binary body");
    // Refused from the declared length, before any of the body is read.
    let request = format!(
        "POST /huge HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        17 << 20
    );
    let answer = raw_request(edge.http, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn viewer_country_from_a_maxmind_database() {
    let origin_fn = r#"export const handler = async (e) => { const r = e.Records[0].cf.request;
      r.headers['x-country-seen'] = [{ value: r.headers['cloudfront-viewer-country']?.[0]?.value ?? 'none' }]; return r; };"#;
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let dir = tempfile::tempdir().unwrap();
    let rest = config(
        &origin,
        dir.path(),
        &[("geo", origin_fn)],
        "origin_request = \"geo\"\ncache = false",
        "",
    );
    let server = format!(
        "geoip_database = \"{}/tests/data/country-test.mmdb\"\nviewer_country_header = \"x-geo-country\"",
        env!("CARGO_MANIFEST_DIR")
    );
    let edge = Edgehook::start_in(dir, &server, &rest).await;
    client().get(edge.url("/")).send().await.unwrap();
    assert_eq!(
        origin.last().headers["x-country-seen"],
        "FR",
        "127.0.0.1 is FR in the test database"
    );
    client()
        .get(edge.url("/"))
        .header("x-geo-country", "nz")
        .send()
        .await
        .unwrap();
    assert_eq!(origin.last().headers["x-country-seen"], "NZ", "the trusted header wins");
}

/// Written as AWS's own samples are: Title-Case map keys, and an entry copied under another
/// header with its `key` (the developer guide's "override a response header").
const AWS_STYLE_HEADERS: &str = r#"
export const handler = async (event) => {
  const response = event.Records[0].cf.response;
  const headers = response.headers;
  headers['Strict-Transport-Security'] = [{ key: 'Strict-Transport-Security', value: 'max-age=63072000' }];
  headers['X-Frame-Options'] = [{ key: 'X-Frame-Options', value: 'DENY' }];
  if (headers['x-amz-meta-last-modified']) {
    headers['last-modified'] = headers['x-amz-meta-last-modified'];
  }
  return response;
};"#;

#[tokio::test]
async fn header_maps_written_as_aws_samples_write_them_are_accepted() {
    let origin = Origin::start(|_| {
        Reply::ok("page")
            .header("cache-control", "no-store")
            .header("x-amz-meta-last-modified", "Thu, 01 Jan 2026 00:00:00 GMT")
    })
    .await;
    let edge = start(
        &origin,
        &[("aws", AWS_STYLE_HEADERS)],
        "origin_response = \"aws\"\nviewer_response = \"aws\"",
    )
    .await;
    let response = client().get(edge.url("/page")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["last-modified"], "Thu, 01 Jan 2026 00:00:00 GMT");
    assert_eq!(headers["x-frame-options"], "DENY");
    let sts: Vec<_> = headers.get_all("strict-transport-security").iter().collect();
    assert_eq!(sts.len(), 2, "one from each hook, as AWS sends both: {sts:?}");
}

#[tokio::test]
async fn instances_left_idle_are_dropped_and_built_again_when_needed() {
    const QUICK: &str = "export const handler = async (e) => e.Records[0].cf.request;";
    let origin = Origin::start(|_| Reply::ok("fine").header("cache-control", "no-store")).await;
    let dir = tempfile::tempdir().unwrap();
    let rest = config(
        &origin,
        dir.path(),
        &[("quick", QUICK)],
        "viewer_request = \"quick\"",
        "",
    )
    .replace(
        "[runtime]\nthreads = 2\n",
        "[runtime]\nthreads = 2\nidle_timeout = \"1s\"\n",
    );
    assert!(rest.contains("idle_timeout"));
    let edge = Edgehook::start_in(dir, "", &rest).await;
    let c = client();
    for _ in 0..20 {
        assert_eq!(c.get(edge.url("/x")).send().await.unwrap().status(), 200);
    }
    assert!(metric(&edge, "edgehook_js_instances").await >= 1);
    // Sweeps come every second at the most often.
    let started = std::time::Instant::now();
    while metric(&edge, "edgehook_js_instances").await > 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "instances kept while idle");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(c.get(edge.url("/y")).send().await.unwrap().status(), 200);
    assert!(metric(&edge, "edgehook_js_instances").await >= 1);
}
