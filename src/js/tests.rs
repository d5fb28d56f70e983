//! The runtime through its library API: handler forms, built-ins, limits, failures, sandbox.

use super::*;
use crate::edge::event::HeaderEntry;
use crate::edge::sample::{sample, SampleOptions};
use crate::edge::{EventType, RequestOutcome, ResponseOutcome};
use std::sync::Arc;

fn options() -> PoolOptions {
    PoolOptions {
        threads: 1,
        queue: 16,
        max_wait: Duration::from_millis(500),
        snapshot: true,
        name_servers: Vec::new(),
        // Tests run many pools side by side on a loaded machine: their JS threads keep the test
        // threads' priority (one test below checks the default).
        js_thread_nice: 0,
        ..PoolOptions::default()
    }
}

fn pool(specs: Vec<FunctionSpec>) -> JsPool {
    JsPool::start(specs, &options()).expect("pool starts")
}

fn viewer_request() -> Event {
    viewer_request_to("/start")
}

/// A sample viewer-request event for `uri`.
fn viewer_request_to(uri: &str) -> Event {
    sample(
        EventType::ViewerRequest,
        &SampleOptions {
            uri: Some(uri.into()),
            ..Default::default()
        },
    )
}

/// Runs `source` (as `file_name`) on a viewer-request event.
async fn run_file(file_name: &str, source: &str) -> Result<Outcome, InvokeError> {
    let pool = pool(vec![FunctionSpec::new("f", file_name, source)]);
    pool.invoke("f", &viewer_request()).await
}

async fn run(source: &str) -> Result<Outcome, InvokeError> {
    run_file("index.js", source).await
}

fn uri(outcome: Result<Outcome, InvokeError>) -> String {
    match outcome {
        Ok(Outcome::Request(RequestOutcome::Continue { request, .. })) => request.uri,
        other => panic!("a request was expected, got {other:?}"),
    }
}

fn header(outcome: &Outcome, name: &str) -> String {
    match outcome {
        Outcome::Request(RequestOutcome::Continue { request, .. }) => request.headers[name][0].value.clone(),
        Outcome::Request(RequestOutcome::Respond(g)) => g.headers[name][0].value.clone(),
        Outcome::Response(ResponseOutcome { response, .. }) => response.headers[name][0].value.clone(),
    }
}

fn failure(outcome: Result<Outcome, InvokeError>) -> InvokeError {
    outcome.expect_err("the invocation should fail")
}

const REWRITE: &str = "const r = event.Records[0].cf.request; r.uri = '/done'; return r;";

#[tokio::test(flavor = "multi_thread")]
async fn every_handler_form_works() {
    let forms = [
        ("index.mjs", format!("export async function handler(event, context) {{ {REWRITE} }}")),
        ("index.mjs", format!("export const handler = async (event) => {{ {REWRITE} }};")),
        ("index.js", format!("export function handler(event) {{ {REWRITE} }}")),
        ("index.cjs", format!("exports.handler = async (event, context) => {{ {REWRITE} }};")),
        ("index.js", format!("module.exports.handler = async function (event) {{ {REWRITE} }};")),
        ("index.js", format!("module.exports = {{ handler: (event) => Promise.resolve().then(() => {{ {REWRITE} }}) }};")),
        ("index.js", "exports.handler = (event, context, callback) => { const r = event.Records[0].cf.request; r.uri = '/done'; callback(null, r); };".to_string()),
        ("index.js", "exports.handler = (event, context, callback) => { setTimeout(() => { const r = event.Records[0].cf.request; r.uri = '/done'; callback(null, r); }, 5); };".to_string()),
        ("index.js", format!("function handler(event) {{ {REWRITE} }}\nmodule.exports = {{ handler }};")),
    ];
    for (file, source) in forms {
        assert_eq!(uri(run_file(file, &source).await), "/done", "{file}: {source}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lambda_style_handler_names_and_custom_exports() {
    let mut spec = FunctionSpec::new(
        "f",
        "app.mjs",
        &format!("export const main = async (event) => {{ {REWRITE} }};"),
    );
    spec.handler = "app.main".into();
    let pool = pool(vec![spec]);
    assert_eq!(uri(pool.invoke("f", &viewer_request()).await), "/done");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_handler_is_a_load_error() {
    let error = JsPool::start(
        vec![FunctionSpec::new("f", "index.mjs", "export const other = 1;")],
        &options(),
    )
    .err()
    .unwrap();
    assert!(
        error
            .to_string()
            .contains("does not export a handler named `handler` (it exports: other)"),
        "{error}"
    );
    let error = JsPool::start(
        vec![FunctionSpec::new("f", "index.mjs", "export const handler = (;")],
        &options(),
    )
    .err()
    .unwrap();
    assert!(error.to_string().contains("failed to load"), "{error}");
    let error = JsPool::start(
        vec![FunctionSpec::new(
            "f",
            "index.js",
            "const dns = require('dns');\nexports.handler = () => {};",
        )],
        &options(),
    )
    .err()
    .unwrap();
    assert!(error.to_string().contains("module not available: 'dns'"), "{error}");
    let error = JsPool::start(
        vec![FunctionSpec::new(
            "f",
            "index.mjs",
            "import dns from 'dns';\nexport const handler = () => {};",
        )],
        &options(),
    )
    .err()
    .unwrap();
    assert!(error.to_string().contains("module not available: 'dns'"), "{error}");
    let error = JsPool::start(
        vec![FunctionSpec::new(
            "f",
            "index.mjs",
            "throw new RangeError('boom at load');",
        )],
        &options(),
    )
    .err()
    .unwrap();
    assert!(error.to_string().contains("RangeError: boom at load"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn context_fields() {
    let source = r#"
export const handler = async (event, context) => {
  const r = event.Records[0].cf.request;
  const remaining = context.getRemainingTimeInMillis();
  r.headers['x-context'] = [{ value: [context.functionName, context.functionVersion, context.awsRequestId,
    context.memoryLimitInMB, context.invokedFunctionArn, typeof context.callbackWaitsForEmptyEventLoop,
    remaining > 0 && remaining <= 5000].join('|') }];
  return r;
};"#;
    let outcome = run_file("index.mjs", source).await.unwrap();
    let value = header(&outcome, "x-context");
    let parts: Vec<&str> = value.split('|').collect();
    assert_eq!(parts[0], "f");
    assert_eq!(parts[1], "$LATEST");
    assert_eq!(parts[2], viewer_request().cf().config.request_id);
    assert_eq!(parts[3], "128");
    assert!(parts[4].starts_with("arn:aws:lambda:") && parts[4].ends_with(":function:f:$LATEST"));
    assert_eq!(parts[5], "boolean");
    assert_eq!(parts[6], "true");
}

/// A handler that cannot reach its context is called without one (`reachesContext` in the
/// bootstrap); every handler that can still gets it, however its parameters are written.
#[tokio::test(flavor = "multi_thread")]
async fn a_handler_that_can_reach_its_context_gets_it() {
    let reaches = [
        "async (event, context) => answer(event, context)",
        "async function (event) { return answer(event, arguments[1]); }",
        "function (event) { return answer(event, eval('argu' + 'ments')[1]); }",
        "async (event, context = null) => answer(event, context)",
        "async (...args) => answer(args[0], args[1])",
        "function (event /* , context */) { return answer(event, arguments[1]); }",
        "async ({ Records }, context) => answer({ Records }, context)",
        "(function (event) { return answer(event, arguments[1]); }).bind(null)",
        "async function named(event) { const f = () => arguments[1]; return answer(event, f()); }",
    ];
    for handler in reaches {
        let source = format!(
            "const answer = (event, context) => {{ const r = event.Records[0].cf.request; \
             r.uri = '/' + (context ? context.functionName : 'none'); return r; }};\n\
             export const handler = {handler};"
        );
        let pool = pool(vec![FunctionSpec::new("f", "index.mjs", &source)]);
        for _ in 0..2 {
            assert_eq!(uri(pool.invoke("f", &viewer_request()).await), "/f", "{handler}");
        }
    }
    // One plain parameter, no `arguments`: the context is out of reach, and the handler runs
    // as before.
    for handler in [
        "async (event) => answer(event)",
        "async event => answer(event)",
        "function (event) { return answer(event); }",
        "async function handler(event) { return answer(event); }",
    ] {
        let source = format!(
            "const answer = (event) => {{ const r = event.Records[0].cf.request; r.uri = '/ran'; return r; }};\n\
             export const handler = {handler};"
        );
        let pool = pool(vec![FunctionSpec::new("f", "index.mjs", &source)]);
        assert_eq!(uri(pool.invoke("f", &viewer_request()).await), "/ran", "{handler}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn module_globals_persist_between_invocations() {
    let source = "let count = 0;\nexport const handler = async (event) => { const r = event.Records[0].cf.request; r.uri = '/' + (++count); return r; };";
    let pool = pool(vec![FunctionSpec::new("f", "index.mjs", source)]);
    for expected in ["/1", "/2", "/3"] {
        assert_eq!(uri(pool.invoke("f", &viewer_request()).await), expected);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_is_process_env_only() {
    let mut spec = FunctionSpec::new(
        "f",
        "index.mjs",
        "export const handler = async (e) => { const r = e.Records[0].cf.request; r.uri = '/' + process.env.GREETING + '/' + Object.keys(process.env).join(','); return r; };",
    );
    spec.env.insert("GREETING".into(), "hello".into());
    let pool = pool(vec![spec]);
    assert_eq!(uri(pool.invoke("f", &viewer_request()).await), "/hello/GREETING");
}

#[tokio::test(flavor = "multi_thread")]
async fn builtins() {
    let source = r#"
const qs = require('querystring');
const crypto = require('crypto');
const { URL: NodeURL, URLSearchParams: NodeParams } = require('url');
exports.handler = async (event) => {
  const r = event.Records[0].cf.request;
  const checks = {
    qsParse: JSON.stringify(qs.parse('a=1&b=x%20y&a=2&c=d+e')),
    qsStringify: qs.stringify({ a: [1, 2], b: 'x y', c: 'é' }),
    qsEscape: qs.escape('a b&c') + '|' + qs.unescape('a%20b%zz'),
    md5: crypto.createHash('md5').update('abc').digest('hex'),
    sha1: crypto.createHash('sha1').update('a').update('bc').digest('hex'),
    sha256b64: crypto.createHash('sha256').update('abc').digest('base64'),
    sha512url: crypto.createHash('sha512').update(Buffer.from('abc')).digest('base64url').length,
    hmac: crypto.createHmac('sha256', 'Jefe').update('what do ya want for nothing?').digest('hex'),
    hmacBuffer: crypto.createHmac('sha1', Buffer.from('key')).update('data').digest() instanceof Buffer,
    random: crypto.randomBytes(16).length + '/' + (crypto.randomBytes(8).toString('hex') !== crypto.randomBytes(8).toString('hex')),
    uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(crypto.randomUUID()),
    safeEqual: crypto.timingSafeEqual(Buffer.from('abc'), Buffer.from('abc')) + '/' + crypto.timingSafeEqual(Buffer.from('abc'), Buffer.from('abd')),
    safeEqualLength: (() => { try { crypto.timingSafeEqual(Buffer.from('a'), Buffer.from('ab')); return 'no'; } catch (e) { return e.name; } })(),
    url: (() => { const u = new URL('https://user:pw@Example.com:8443/a/b?x=1&y=2#frag'); return [u.protocol, u.username, u.host, u.hostname, u.port, u.pathname, u.search, u.hash, u.origin, u.searchParams.get('y')].join(' '); })(),
    urlRelative: new URL('../c?d=1', 'https://example.com/a/b').href,
    urlEdit: (() => { const u = new URL('https://example.com/p?a=1'); u.searchParams.append('b', 'x y'); u.pathname = '/q'; return u.toString(); })(),
    urlInvalid: (() => { try { new URL('not a url'); return 'parsed'; } catch (e) { return e.name; } })(),
    nodeUrl: NodeURL === URL && NodeParams === URLSearchParams,
    params: new URLSearchParams('a=1&b=2&a=3').getAll('a').join(',') + '|' + new URLSearchParams({ x: 'a b', y: '&' }).toString(),
    text: new TextDecoder().decode(new TextEncoder().encode('héllo ✓ 😀')),
    base64: btoa('hello') + '|' + atob('aGVsbG8='),
    buffer: Buffer.from('héllo', 'utf8').toString('base64') + '|' + Buffer.from('68656c6c6f', 'hex').toString('utf8') + '|' + Buffer.from('aGVsbG8', 'base64').toString() + '|' + Buffer.from('hi').toString('hex'),
    bufferUrl: Buffer.from('-_8', 'base64url').toString('hex'),
    bufferMisc: Buffer.concat([Buffer.from('a'), Buffer.from('b')]).toString() + Buffer.isBuffer(Buffer.alloc(1)) + Buffer.byteLength('é'),
    timers: typeof setTimeout + typeof clearTimeout,
  };
  await new Promise((resolve) => setTimeout(resolve, 5));
  let cleared = true;
  const t = setTimeout(() => { cleared = false; }, 1);
  clearTimeout(t);
  await new Promise((resolve) => setTimeout(resolve, 10));
  checks.cleared = cleared;
  r.headers['x-checks'] = [{ value: Buffer.from(JSON.stringify(checks)).toString('base64') }];
  return r;
};"#;
    let outcome = run(source).await.unwrap();
    let encoded = header(&outcome, "x-checks");
    let json = String::from_utf8(crate::js::ops::base64_decode_lenient(&encoded)).unwrap();
    let checks: serde_json::Value = serde_json::from_str(&json).unwrap();
    let expect = |name: &str, value: serde_json::Value| assert_eq!(checks[name], value, "{name}: {checks:#}");
    expect(
        "qsParse",
        serde_json::json!("{\"a\":[\"1\",\"2\"],\"b\":\"x y\",\"c\":\"d e\"}"),
    );
    expect("qsStringify", serde_json::json!("a=1&a=2&b=x%20y&c=%C3%A9"));
    expect("qsEscape", serde_json::json!("a%20b%26c|a%20b%zz"));
    expect("md5", serde_json::json!("900150983cd24fb0d6963f7d28e17f72"));
    expect("sha1", serde_json::json!("a9993e364706816aba3e25717850c26c9cd0d89d"));
    expect(
        "sha256b64",
        serde_json::json!("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="),
    );
    expect("sha512url", serde_json::json!(86));
    expect(
        "hmac",
        serde_json::json!("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    );
    expect("hmacBuffer", serde_json::json!(true));
    expect("random", serde_json::json!("16/true"));
    expect("uuid", serde_json::json!(true));
    expect("safeEqual", serde_json::json!("true/false"));
    expect("safeEqualLength", serde_json::json!("RangeError"));
    expect(
        "url",
        serde_json::json!(
            "https: user example.com:8443 example.com 8443 /a/b ?x=1&y=2 #frag https://example.com:8443 2"
        ),
    );
    expect("urlRelative", serde_json::json!("https://example.com/c?d=1"));
    expect("urlEdit", serde_json::json!("https://example.com/q?a=1&b=x+y"));
    expect("urlInvalid", serde_json::json!("TypeError"));
    expect("nodeUrl", serde_json::json!(true));
    expect("params", serde_json::json!("1,3|x=a+b&y=%26"));
    expect("text", serde_json::json!("héllo ✓ 😀"));
    expect("base64", serde_json::json!("aGVsbG8=|hello"));
    expect("buffer", serde_json::json!("aMOpbGxv|hello|hello|6869"));
    expect("bufferUrl", serde_json::json!("fbff"));
    expect("bufferMisc", serde_json::json!("abtrue2"));
    expect("timers", serde_json::json!("functionfunction"));
    expect("cleared", serde_json::json!(true));
}

#[tokio::test(flavor = "multi_thread")]
async fn esm_imports_of_builtins() {
    let source = r#"
import crypto from 'node:crypto';
import { createHash } from 'crypto';
import qs from 'querystring';
export const handler = async (event) => {
  const r = event.Records[0].cf.request;
  r.uri = '/' + createHash('sha1').update('a').digest('hex').slice(0, 6) + '/' + (crypto.createHash === createHash) + '/' + qs.stringify({ a: 1 });
  return r;
};"#;
    assert_eq!(uri(run_file("index.mjs", source).await), "/86f7e4/true/a=1");
}

#[tokio::test(flavor = "multi_thread")]
async fn console_output_goes_to_tracing() {
    // The op needs a log context; a function that logs must still answer.
    let source = "export const handler = async (e) => { console.log('hello %s', 'world', { a: 1 }); console.error(new Error('shown')); console.warn('w'); return e.Records[0].cf.request; };";
    assert_eq!(uri(run_file("index.mjs", source).await), "/start");
}

#[tokio::test(flavor = "multi_thread")]
async fn execution_errors() {
    let cases = [
        (
            "export const handler = async () => { throw new TypeError('bad thing'); };",
            "TypeError",
            "bad thing",
        ),
        (
            "export const handler = () => Promise.reject(new Error('rejected'));",
            "Error",
            "rejected",
        ),
        (
            "exports.handler = (e, c, callback) => callback(new Error('via callback'));",
            "Error",
            "via callback",
        ),
        (
            "exports.handler = (e, c, callback) => callback('a string error');",
            "string",
            "a string error",
        ),
        ("export const handler = () => { null.x; };", "TypeError", ""),
    ];
    for (source, error_type, message) in cases {
        let error = failure(run(source).await);
        assert_eq!(error.class, FailureClass::Execution, "{source}");
        assert_eq!(error.class.status(), 503);
        assert_eq!(error.error_type, error_type, "{source}");
        assert!(error.message.contains(message), "{source}: {error}");
        assert!(
            error.to_string().contains("LambdaExecutionError in function `f`"),
            "{error}"
        );
        assert!(
            error.to_string().contains(&viewer_request().cf().config.request_id),
            "{error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_results_are_validation_errors() {
    let cases = [
        ("export const handler = async () => 'text';", "must be an object type"),
        ("export const handler = async () => undefined;", "returned no result"),
        ("export const handler = async (e) => { const r = e.Records[0].cf.request; r.headers.host = [{ value: 'evil' }]; return r; };", "read-only header: Host"),
        ("export const handler = async () => { const o = {}; o.self = o; return o; };", "invalid JSON"),
        ("export const handler = async () => ({ status: 200n });", "invalid JSON"),
        ("exports.handler = (e, c, callback) => { /* never calls back */ };", "neither resolved nor called its callback"),
        ("export const handler = () => new Promise(() => {});", "neither resolved nor called its callback"),
        ("export const handler = async () => ({ status: '200', body: 'x'.repeat(50000) });", "40960-byte limit"),
    ];
    for (source, message) in cases {
        let error = failure(run_file("index.js", source).await);
        assert_eq!(error.class, FailureClass::Validation, "{source}: {error}");
        assert_eq!(error.class.status(), 502);
        assert!(error.message.contains(message), "{source}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_responses_pass_through() {
    let source = "export const handler = async () => ({ status: '302', statusDescription: 'Found', headers: { location: [{ key: 'Location', value: 'https://example.com/login' }] } });";
    let Ok(Outcome::Request(RequestOutcome::Respond(generated))) = run_file("index.mjs", source).await else {
        panic!("generated expected")
    };
    assert_eq!(generated.status, 302);
    assert_eq!(
        generated.headers["location"],
        vec![HeaderEntry {
            key: Some("Location".into()),
            value: "https://example.com/login".into()
        }]
    );
}

/// Long body strings travel after the result's JSON instead of in it; every character must
/// arrive as written, and objects the body cannot be taken off go the JSON way.
#[tokio::test(flavor = "multi_thread")]
async fn bodies_arrive_exactly_as_written() {
    // JavaScript source of the body: quotes, a backslash, control characters, a NUL, accents and
    // a character outside the BMP.
    let body = r#"<p class=\"x\">quotes \" and \\ backslashes, a\nnew line, a tab\t, a NUL \u0000 inside, \u00e9t\u00e9 \ud83d\ude00</p>"#;
    let cases = [
        r#"return { status: '200', body: BODY };"#,
        r#"return { status: '200', body: BODY.repeat(300) };"#,
        r#"return { status: '200', body: 'short \u0000 one' };"#,
        r#"return Object.freeze({ status: '200', body: BODY });"#,
        r#"const o = { status: '200' }; Object.defineProperty(o, 'body', { get: () => BODY, enumerable: true }); return o;"#,
        r#"return { status: '200', body: btoa(BODY.slice(0, 40).replace(/[^\x00-\x7f]/g, '?')), bodyEncoding: 'base64' };"#,
        r#"return { status: '200', body: 'lower case body, long enough', toJSON() { return { status: this.status, body: this.body.toUpperCase() }; } };"#,
    ];
    let specs = cases
        .iter()
        .enumerate()
        .map(|(i, body_code)| {
            let source =
                format!("const BODY = \"{body}\";\nexport const handler = async (event) => {{ {body_code} }};");
            FunctionSpec::new(&format!("f{i}"), "index.mjs", &source)
        })
        .collect();
    let pool = pool(specs);
    let event = viewer_request();
    let expected_body = "<p class=\"x\">quotes \" and \\ backslashes, a\nnew line, a tab\t, a NUL \u{0} inside, \u{e9}t\u{e9} \u{1f600}</p>";
    let ascii: String = expected_body
        .chars()
        .take(40)
        .map(|c| if c.is_ascii() { c } else { '?' })
        .collect();
    let expected = [
        expected_body.to_string(),
        expected_body.repeat(300),
        "short \u{0} one".to_string(),
        expected_body.to_string(),
        expected_body.to_string(),
        ascii,
        "LOWER CASE BODY, LONG ENOUGH".to_string(),
    ];
    for (i, want) in expected.iter().enumerate() {
        match pool.invoke(&format!("f{i}"), &event).await {
            Ok(Outcome::Request(RequestOutcome::Respond(g))) => {
                assert_eq!(String::from_utf8(g.body).unwrap(), *want, "{}", cases[i])
            }
            other => panic!("{}: {other:?}", cases[i]),
        }
    }
    let raw = pool
        .invoke_json("f0", EventJson::whole(event.to_json()), true, "raw")
        .await
        .unwrap();
    assert!(raw.starts_with(r#"{"status":"200"}"#) && raw.contains('\0'), "{raw}");
    let raw = pool
        .invoke_json("f3", EventJson::whole(event.to_json()), true, "raw")
        .await
        .unwrap();
    assert!(!raw.contains('\0'), "a frozen result is written out whole: {raw}");

    // An origin-response function replacing the body.
    let source = "export const handler = async (e) => { const res = e.Records[0].cf.response; res.body = 'replaced body '.repeat(10); return res; };";
    let single = self::pool(vec![FunctionSpec::new("f", "index.mjs", source)]);
    let event = sample(EventType::OriginResponse, &SampleOptions::default());
    let Ok(Outcome::Response(ResponseOutcome { body, response, .. })) = single.invoke("f", &event).await else {
        panic!("a response")
    };
    assert_eq!(body.as_deref(), Some("replaced body ".repeat(10).as_bytes()));
    assert_eq!(response.headers, event.cf().response.as_ref().unwrap().headers);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_loop_is_stopped_and_the_instance_replaced() {
    let source = "let calls = 0;\nexport const handler = async (e) => { calls++; if (e.Records[0].cf.request.uri === '/loop') { while (true) {} } const r = e.Records[0].cf.request; r.uri = '/calls/' + calls; return r; };";
    let mut spec = FunctionSpec::new("f", "index.mjs", source);
    spec.timeout = Duration::from_millis(200);
    let pool = pool(vec![spec]);
    let looping = viewer_request_to("/loop");
    let started = std::time::Instant::now();
    let error = pool.invoke("f", &looping).await.unwrap_err();
    assert_eq!(error.class, FailureClass::Execution);
    assert_eq!(error.error_type, "Runtime.Timeout");
    assert!(started.elapsed() < Duration::from_secs(3), "stopped near its timeout");
    // The next call gets a fresh instance (its globals start over) and succeeds.
    assert_eq!(uri(pool.invoke("f", &viewer_request()).await), "/calls/1");
}

#[tokio::test(flavor = "multi_thread")]
async fn atomics_wait_cannot_hold_the_thread_past_the_timeout() {
    // Nothing can notify an instance's wait, and the engine cannot stop a script inside one.
    let source = "export const handler = async (e) => { const r = e.Records[0].cf.request; const cell = new Int32Array(new SharedArrayBuffer(4)); const started = Date.now();\n\
        if (r.uri === '/forever') Atomics.wait(cell, 0, 0);\n\
        if (r.uri === '/long') Atomics.wait(cell, 0, 0, 60000);\n\
        if (r.uri === '/loop') for (;;) Atomics.wait(cell, 0, 0, 50);\n\
        const answers = [Atomics.wait(cell, 0, 1), Atomics.wait(cell, 0, 1, Infinity), Atomics.wait(cell, 0, 0, 30), Atomics.wait(cell, 0, 0, 0)];\n\
        r.uri = '/' + answers.join('/') + '/' + (Date.now() - started >= 30); return r; };";
    let mut spec = FunctionSpec::new("f", "index.mjs", source);
    spec.timeout = Duration::from_millis(600);
    let pool = pool(vec![spec]);
    // Waits that end within the time left behave as on Node.js.
    assert_eq!(
        uri(pool.invoke("f", &viewer_request()).await),
        "/not-equal/not-equal/timed-out/timed-out/true"
    );
    // Endless and longer waits throw at once.
    for path in ["/forever", "/long"] {
        let started = std::time::Instant::now();
        let waiting = viewer_request_to(path);
        let call = tokio::time::timeout(Duration::from_secs(5), pool.invoke("f", &waiting));
        let error = call.await.expect("the wait blocked for 5 s").unwrap_err();
        assert_eq!(error.class, FailureClass::Execution, "{error}");
        assert!(error.message.contains("Atomics.wait"), "{error}");
        assert!(started.elapsed() < Duration::from_millis(500), "{path} threw at once");
    }
    // Short waits in an endless loop end with the invocation's time.
    let started = std::time::Instant::now();
    let error = pool.invoke("f", &viewer_request_to("/loop")).await.unwrap_err();
    assert_eq!(error.class, FailureClass::Execution, "{error}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(
        uri(pool.invoke("f", &viewer_request()).await),
        "/not-equal/not-equal/timed-out/timed-out/true",
        "the thread serves the next call"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_script_that_cannot_be_stopped_in_time_loses_its_thread_not_the_pool() {
    // Each turn of the loop is one long native call (a search through 16 MiB), and QuickJS looks
    // for a stop only every 10,000 calls and loop turns: the script runs on for seconds after
    // its 200 ms timeout.
    let source = "export const handler = async (e) => { const r = e.Records[0].cf.request; if (r.uri === '/search') { const text = 'x'.repeat(16 << 20); let found = 0; for (let i = 0; i < 100; i++) found += text.indexOf('y' + i); r.uri = '/found' + found; } return r; };";
    let mut spec = FunctionSpec::new("f", "index.mjs", source);
    spec.timeout = Duration::from_millis(200);
    let other = FunctionSpec::new(
        "g",
        "index.mjs",
        "export const handler = async (e) => e.Records[0].cf.request;",
    );
    let pool = pool(vec![spec, other]); // one JS thread
    let search = viewer_request_to("/search");
    let started = std::time::Instant::now();
    let error = pool.invoke("f", &search).await.unwrap_err();
    let answered = started.elapsed();
    assert_eq!(error.error_type, "Runtime.Timeout", "{error}");
    // The timeout, the wait for a thread (500 ms in these tests) and the 1 s grace.
    assert!(answered < Duration::from_millis(2500), "answered after {answered:?}");
    // The thread is still searching; a replacement took its place (half a second after the
    // stop) and serves both functions.
    let health = pool.health();
    assert_eq!(
        (health.replaced, health.stuck),
        (1, 1),
        "one thread replaced, still running"
    );
    for function in ["f", "g"] {
        let next = pool.invoke(function, &viewer_request()).await;
        assert_eq!(uri(next), "/start", "{function} after {:?}", started.elapsed());
    }
    assert_eq!(pool.health().problem(), None, "one thread may be replaced");
    // The replacement gets stuck too: with as many replaced threads as threads, its capacity is
    // lost, and the runtime says so until a loop ends.
    let error = pool.invoke("f", &search).await.unwrap_err();
    assert_eq!(error.error_type, "Runtime.Timeout", "{error}");
    let waited = std::time::Instant::now();
    while pool.health().unreplaced == 0 {
        assert!(waited.elapsed() < Duration::from_secs(10), "{:?}", pool.health());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let problem = pool.health().problem().expect("lost capacity is a problem");
    assert!(problem.contains("could not be replaced"), "{problem}");
    // The stuck threads exit once their loops end; the capacity comes back.
    while pool.health().stuck > 0 || pool.health().unreplaced > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the stuck threads never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pool.health().problem(), None);
    assert!(
        started.elapsed() > answered + Duration::from_millis(500),
        "the script ran on after its caller was answered ({:?})",
        started.elapsed()
    );
    assert_eq!(uri(pool.invoke("f", &viewer_request()).await), "/start");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_that_waited_for_its_thread_still_gets_its_whole_time() {
    // One thread; each call takes 1.9 s of its 2 s. The second waits 1.9 s in the queue (longer
    // than `max_wait` and the grace together), then runs its 1.9 s: it must not be given up on.
    let source = "export const handler = (e) => new Promise((resolve) => setTimeout(() => resolve(e.Records[0].cf.request), 1900));";
    let mut spec = FunctionSpec::new("f", "index.mjs", source);
    spec.timeout = Duration::from_secs(2);
    let pool = Arc::new(pool(vec![spec]));
    let first = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.invoke("f", &viewer_request()).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    let second = pool.invoke("f", &viewer_request()).await;
    assert_eq!(uri(second), "/start", "after {:?}", started.elapsed());
    assert!(
        started.elapsed() > Duration::from_millis(3500),
        "it waited for the first call"
    );
    assert_eq!(uri(first.await.unwrap()), "/start");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_async_wait_past_the_timeout_is_stopped() {
    let mut spec = FunctionSpec::new(
        "f",
        "index.mjs",
        "export const handler = () => new Promise((resolve) => setTimeout(resolve, 60000));",
    );
    spec.timeout = Duration::from_millis(100);
    let pool = pool(vec![spec]);
    let error = pool.invoke("f", &viewer_request()).await.unwrap_err();
    assert_eq!(error.error_type, "Runtime.Timeout");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_bomb_is_contained() {
    let source = "export const handler = async (e) => { if (e.Records[0].cf.request.uri === '/bomb') { const a = []; while (true) { a.push('x'.repeat(1024) + a.length); } } return e.Records[0].cf.request; };";
    let mut spec = FunctionSpec::new("f", "index.mjs", source);
    spec.memory = 16 << 20;
    spec.timeout = Duration::from_secs(10);
    let pool = pool(vec![
        spec,
        FunctionSpec::new(
            "g",
            "index.mjs",
            "export const handler = async (e) => e.Records[0].cf.request;",
        ),
    ]);
    let bomb = viewer_request_to("/bomb");
    let error = pool.invoke("f", &bomb).await.unwrap_err();
    assert_eq!(error.class, FailureClass::Execution, "{error}");
    assert!(
        error.error_type == "Runtime.OutOfMemory" || error.message.contains("memory"),
        "{error:?}"
    );
    assert_eq!(
        uri(pool.invoke("f", &viewer_request()).await),
        "/start",
        "a fresh instance serves the next call"
    );
    assert_eq!(
        uri(pool.invoke("g", &viewer_request()).await),
        "/start",
        "other functions are unaffected"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn functions_never_share_globals() {
    let a = FunctionSpec::new(
        "a",
        "a.mjs",
        "globalThis.shared = 'from a'; Object.prototype.polluted = 'yes'; Array.prototype.push = () => 0; JSON.stringify = () => '\"hijacked\"';\nexport const handler = async (e) => e.Records[0].cf.request;",
    );
    let b = FunctionSpec::new(
        "b",
        "b.mjs",
        "export const handler = async (e) => { const r = e.Records[0].cf.request; r.uri = '/' + typeof globalThis.shared + '/' + ({}).polluted + '/' + [1].push(2); return r; };",
    );
    let pool = pool(vec![a, b]);
    assert_eq!(
        uri(pool.invoke("a", &viewer_request()).await),
        "/start",
        "tampering with its own JSON does not break edgehook's"
    );
    assert_eq!(uri(pool.invoke("b", &viewer_request()).await), "/undefined/undefined/2");
}

/// Instances restored from the engine snapshot and instances that ran the bootstrap themselves
/// behave alike, and restored ones do not share the snapshot's random state.
#[tokio::test(flavor = "multi_thread")]
async fn instances_from_the_snapshot_have_their_own_state() {
    let code = "let calls = 0;\nexport const handler = async (e) => { const r = e.Records[0].cf.request; calls++; r.uri = '/' + Math.random() + '/' + Buffer.from('aGk=', 'base64').toString() + '/' + calls + '/' + typeof Deno; return r; };";
    for snapshot in [true, false] {
        let pool = JsPool::start(
            vec![
                FunctionSpec::new("a", "a.mjs", code),
                FunctionSpec::new("b", "b.mjs", code),
            ],
            &PoolOptions { snapshot, ..options() },
        )
        .expect("pool starts");
        let a = uri(pool.invoke("a", &viewer_request()).await);
        let b = uri(pool.invoke("b", &viewer_request()).await);
        let a2 = uri(pool.invoke("a", &viewer_request()).await);
        let parts = |u: &str| u.split('/').skip(1).map(str::to_string).collect::<Vec<_>>();
        let (a, b, a2) = (parts(&a), parts(&b), parts(&a2));
        assert_eq!(a[1..], ["hi", "1", "undefined"], "snapshot: {snapshot}");
        assert_eq!(b[1..], ["hi", "1", "undefined"], "snapshot: {snapshot}");
        assert_eq!(a2[1..], ["hi", "2", "undefined"], "snapshot: {snapshot}");
        assert_ne!(
            a[0], b[0],
            "each instance has its own Math.random (snapshot: {snapshot})"
        );
        assert_ne!(a[0], a2[0]);
    }
}

/// `count` functions `f0`, `f1`, ... answering with their own name; with the web platform
/// (`Headers`) when `web`.
fn named_functions(count: usize, web: bool) -> Vec<FunctionSpec> {
    let body = if web {
        "r.uri = new Headers({ n: '/' + NAME }).get('n');"
    } else {
        "r.uri = '/' + NAME;"
    };
    (0..count)
        .map(|i| {
            let code = format!("const NAME = 'f{i}';\nexports.handler = async (event) => {{ const r = event.Records[0].cf.request; {body} return r; }};");
            FunctionSpec::new(&format!("f{i}"), "index.js", &code)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn more_functions_than_one_thread_can_build_all_load_and_run() {
    // One thread of this engine can build about 127 instances, or 61 with the web platform,
    // in its whole life: the JS thread hands over to a fresh one as it runs out.
    for (count, web) in [(300, false), (130, true)] {
        let pool = JsPool::start(named_functions(count, web), &options()).expect("pool starts");
        for i in (0..count).rev() {
            assert_eq!(
                uri(pool.invoke(&format!("f{i}"), &viewer_request()).await),
                format!("/f{i}"),
                "web: {web}"
            );
        }
    }
}

/// A thread's nice value, from /proc (field 19 of its stat line).
#[cfg(target_os = "linux")]
fn nice_of(stat: &str) -> i32 {
    let after_name = &stat[stat.rfind(')').expect("a stat line") + 2..];
    after_name
        .split(' ')
        .nth(16)
        .expect("a nice field")
        .parse()
        .expect("a number")
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread")]
async fn js_threads_run_below_the_proxy_threads_priority() {
    let options = PoolOptions {
        js_thread_nice: pool::JS_THREAD_NICE,
        ..options()
    };
    let pool = JsPool::start(
        vec![FunctionSpec::new(
            "f",
            "index.js",
            "exports.handler = async (e) => e.Records[0].cf.request;",
        )],
        &options,
    )
    .expect("pool starts");
    pool.invoke("f", &viewer_request()).await.expect("a call");
    let ours = nice_of(&std::fs::read_to_string("/proc/thread-self/stat").expect("our stat"));
    let lowered = (ours + pool::JS_THREAD_NICE).min(19);
    // The other tests' pools keep the test threads' priority: a JS thread this far down is
    // this pool's. A thread just started may not have lowered itself yet.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut js_threads = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").expect("our threads").flatten() {
            let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let Some(index) = name.trim().strip_prefix("edgehook-js-") else {
                continue;
            };
            if !index.chars().all(|c| c.is_ascii_digit()) {
                continue; // the supervisor must stop scripts on time: it keeps its priority
            }
            if let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) {
                js_threads.push((name.trim().to_string(), nice_of(&stat)));
            }
        }
        if js_threads.iter().any(|(_, nice)| *nice == lowered) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no JS thread at nice {lowered}: {js_threads:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_js_thread_builds_new_code_for_ever() {
    let pool = pool(vec![FunctionSpec::new(
        "f",
        "index.js",
        "exports.handler = async (e) => e.Records[0].cf.request;",
    )]);
    for round in 0..300 {
        let code = format!("exports.handler = async (event) => {{ const r = event.Records[0].cf.request; r.uri = new Headers({{ n: '/{round}' }}).get('n'); return r; }};");
        pool.register(FunctionSpec::new("f", "index.js", &code));
        assert_eq!(uri(pool.invoke("f", &viewer_request()).await), format!("/{round}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sandbox_has_no_way_out() {
    let probe = r#"
export const handler = async (event) => {
  const r = event.Records[0].cf.request;
  const found = {};
  found.deno = typeof Deno;
  found.bootstrap = typeof __bootstrap;
  found.internals = typeof __edgehookBind;
  found.fetch = typeof fetch;
  // The one engine global left (`__v8xTemporalTimeZone`) is checked by
  // the_globals_a_function_finds_are_exactly_the_documented_ones.
  found.denoGlobals = Object.getOwnPropertyNames(globalThis).filter((n) => /deno|^op_|bootstrap|__edgehook|^__/i.test(n) && !n.startsWith('__v8x')).join(',');
  try { await globalThis.__v8x_import_source('file:///etc/passwd'); found.source = 'loaded'; } catch (e) { found.source = String(e.message || e); }
  found.symbols = Object.getOwnPropertySymbols(globalThis).map(String).join(',');
  try { require('fs').readFileSync('/etc/passwd'); found.fs = 'read'; } catch (e) { found.fs = e.message; }
  try { require('child_process').execSync('id'); found.cp = 'ran'; } catch (e) { found.cp = e.message; }
  try { await import('file:///etc/passwd'); found.file = 'loaded'; } catch (e) { found.file = String(e.message || e); }
  try { await import('ext:core/ops'); found.ext = 'loaded'; } catch (e) { found.ext = String(e.message || e); }
  try { await import('https://example.com/x.js'); found.net = 'loaded'; } catch (e) { found.net = String(e.message || e); }
  try { found.ctor = typeof (function () { return this; }).constructor('return Deno')(); } catch (e) { found.ctor = 'threw'; }
  found.env = JSON.stringify(process.env);
  let walked = 0, leaks = [];
  const seen = new Set();
  const walk = (o, depth, path) => {
    if (o === null || (typeof o !== 'object' && typeof o !== 'function') || seen.has(o) || depth > 3) return;
    seen.add(o);
    let names = [];
    try { names = Reflect.ownKeys(o); } catch { return; }
    for (const k of names) {
      walked++;
      const name = String(k);
      // Deno's web classes carry two registered symbols, harmless: an inspect hook that calls
      // the inspect function it is given, and the marker structuredClone reads off a Blob.
      const known = name === 'Symbol(Deno.privateCustomInspect)' || name === 'Symbol(Deno.core.hostObject)';
      if (/^op_|Deno|__bootstrap|__edgehook/.test(name) && !known) leaks.push(path + '.' + name);
      let v; try { v = o[k]; } catch { continue; }
      walk(v, depth + 1, path + '.' + name);
    }
  };
  walk(globalThis, 0, 'globalThis');
  found.walked = walked > 100;
  found.leaks = leaks.join(',');
  r.headers['x-found'] = [{ value: Buffer.from(JSON.stringify(found)).toString('base64') }];
  return r;
};"#;
    let outcome = run_file("index.mjs", probe).await.unwrap();
    let json = String::from_utf8(crate::js::ops::base64_decode_lenient(&header(&outcome, "x-found"))).unwrap();
    let found: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(found["deno"], "undefined", "{found:#}");
    assert_eq!(found["bootstrap"], "undefined");
    assert_eq!(found["internals"], "undefined");
    // fetch is there; where it may go is the egress policy's (web_tests.rs). The walk below reads
    // every global, so it loads all of the web platform's scripts too.
    assert_eq!(found["fetch"], "function");
    assert_eq!(found["denoGlobals"], "", "{found:#}");
    assert_ne!(found["source"], "loaded", "{found:#}");
    assert_eq!(found["leaks"], "", "{found:#}");
    assert_eq!(found["walked"], true);
    assert!(
        found["fs"] == "ENOENT: no such file or directory, open '/etc/passwd'",
        "{found:#}"
    );
    assert_eq!(
        found["cp"], "child_process.execSync is not available to edgehook functions: functions cannot start processes",
        "{found:#}"
    );
    assert_eq!(
        found["file"], "Cannot find module '/etc/passwd' imported from /var/task/index.mjs",
        "{found:#}"
    );
    assert!(
        found["ext"].as_str().unwrap().contains("not available") || found["ext"].as_str().unwrap().contains("ext:"),
        "{found:#}"
    );
    assert_ne!(found["ext"], "loaded");
    assert!(
        found["net"].as_str().unwrap().contains("module not available"),
        "{found:#}"
    );
    assert_eq!(found["ctor"], "threw", "{found:#}");
    assert_eq!(found["env"], "{}", "no host environment leaks into process.env");
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_beyond_concurrency() {
    let mut spec = FunctionSpec::new("slow", "index.mjs", "export const handler = (e) => new Promise((resolve) => setTimeout(() => resolve(e.Records[0].cf.request), 300));");
    spec.concurrency = 1;
    let pool = Arc::new(
        JsPool::start(
            vec![spec],
            &PoolOptions {
                threads: 2,
                queue: 16,
                max_wait: Duration::from_millis(50),
                snapshot: true,
                name_servers: Vec::new(),
                ..PoolOptions::default()
            },
        )
        .unwrap(),
    );
    let first = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.invoke("slow", &viewer_request()).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = pool.invoke("slow", &viewer_request()).await.unwrap_err();
    assert_eq!(second.class, FailureClass::LimitExceeded);
    assert_eq!(second.class.status(), 503);
    assert!(second.message.contains("throttled"));
    assert!(first.await.unwrap().is_ok());
}

/// Headers a function returns exactly as given travel back by name, not as JSON; every way of
/// changing the header map it was given must still show in the outcome.
#[tokio::test(flavor = "multi_thread")]
async fn headers_returned_as_given_or_changed() {
    use crate::edge::event::Headers;
    type Change = fn(&mut Headers);
    let cases: Vec<(&str, Change)> = vec![
        ("", |_| {}),
        ("h['user-agent'][0].value = 'changed';", |h| {
            h.get_mut("user-agent").unwrap()[0].value = "changed".into()
        }),
        ("h['user-agent'][0].key = 'USER-AGENT';", |h| {
            h.get_mut("user-agent").unwrap()[0].key = Some("USER-AGENT".into())
        }),
        ("delete h['user-agent'][0].key;", |_| {}),
        ("h['user-agent'][0] = { key: 'User-Agent', value: 'other' };", |h| {
            h.get_mut("user-agent").unwrap()[0].value = "other".into()
        }),
        ("h['user-agent'].push({ key: 'User-Agent', value: 'second' });", |h| {
            h.get_mut("user-agent").unwrap().push(HeaderEntry {
                key: Some("User-Agent".into()),
                value: "second".into(),
            })
        }),
        ("h['user-agent'].pop();", |h| {
            h.remove("user-agent");
        }),
        (
            "h['user-agent'] = [{ key: 'User-Agent', value: h['user-agent'][0].value }];",
            |_| {},
        ),
        ("delete h['user-agent'];", |h| {
            h.remove("user-agent");
        }),
        ("h['x-new'] = [{ key: 'X-New', value: '1' }];", |h| {
            h.insert(
                "x-new".into(),
                vec![HeaderEntry {
                    key: Some("X-New".into()),
                    value: "1".into(),
                }],
            );
        }),
        ("Object.freeze(h);", |_| {}),
        ("Object.freeze(h); Object.freeze(h['accept']);", |_| {}),
        ("r.headers = { ...h };", |_| {}),
        ("return { ...r };", |_| {}),
        (
            "r.headers = JSON.parse(JSON.stringify(h)); r.headers.accept[0].value = 'text/plain';",
            |h| h.get_mut("accept").unwrap()[0].value = "text/plain".into(),
        ),
        (
            "h.toJSON = function () { const { toJSON, ...rest } = this; return { ...rest, 'x-json': [{ key: 'X-Json', value: String(rest.accept[0].value) }] }; };",
            |h| {
                h.insert(
                    "x-json".into(),
                    vec![HeaderEntry {
                        key: Some("X-Json".into()),
                        value: "*/*".into(),
                    }],
                );
            },
        ),
    ];
    let specs = cases
        .iter()
        .enumerate()
        .map(|(i, (body, _))| {
            let source = format!(
                "export const handler = async (event) => {{ const r = event.Records[0].cf.request; const h = r.headers; {body} return r; }};"
            );
            FunctionSpec::new(&format!("f{i}"), "index.mjs", &source)
        })
        .collect();
    let pool = pool(specs);
    let event = viewer_request();
    assert_eq!(event.cf().request.headers.len(), 3, "host, user-agent, accept");
    for (i, (body, change)) in cases.iter().enumerate() {
        let mut expected = event.cf().request.headers.clone();
        change(&mut expected);
        match pool.invoke(&format!("f{i}"), &event).await {
            Ok(Outcome::Request(RequestOutcome::Continue { request, .. })) => {
                assert_eq!(request.headers, expected, "{body}")
            }
            other => panic!("{body}: {other:?}"),
        }
    }

    // Look-alikes of the given headers are refused as they would be written out.
    let refused = [
        (
            "h.accept = { length: 1, 0: { key: 'Accept', value: '*/*' } };",
            "must be an array",
        ),
        ("h.accept = [null];", "each entry must be an object"),
        ("h.accept = ['*/*'];", "each entry must be an object"),
    ];
    for (body, message) in refused {
        let source = format!(
            "export const handler = async (event) => {{ const r = event.Records[0].cf.request; const h = r.headers; {body} return r; }};"
        );
        let single = self::pool(vec![FunctionSpec::new("f", "index.mjs", &source)]);
        let error = single.invoke("f", &event).await.expect_err(body);
        assert!(error.message.contains(message), "{body}: {}", error.message);
    }

    // The unchanged headers were really left out of the JSON (so this test covers that path).
    let raw = pool
        .invoke_json("f1", EventJson::whole(event.to_json()), true, "raw")
        .await
        .unwrap();
    let (kept, json) = raw
        .strip_prefix('K')
        .and_then(|r| r.split_once('\n'))
        .expect("a kept-headers list");
    assert_eq!(kept, "accept,host");
    assert!(json.contains("changed") && !json.contains("cloudfront.net"), "{json}");
    let raw = pool
        .invoke_json("f1", EventJson::whole(event.to_json()), false, "raw")
        .await
        .unwrap();
    assert!(raw.starts_with('{') && raw.contains("cloudfront.net"), "{raw}");
}

/// A function that keeps the request it returned sees its headers intact afterwards, and a
/// response event keeps the response headers it did not touch.
#[tokio::test(flavor = "multi_thread")]
async fn kept_headers_stay_on_the_objects_the_function_holds() {
    let source = "let last = null;
      export const handler = async (event) => {
        const r = event.Records[0].cf.request;
        if (last) r.headers['x-last'] = [{ key: 'X-Last', value: String(Object.keys(last.headers)) + '|' + last.headers['user-agent'][0].value }];
        last = r;
        return r;
      };";
    let pool = pool(vec![FunctionSpec::new("f", "index.mjs", source)]);
    let event = viewer_request();
    pool.invoke("f", &event).await.unwrap();
    let outcome = pool.invoke("f", &event).await.unwrap();
    assert_eq!(header(&outcome, "x-last"), "accept,host,user-agent|curl/8.5.0");

    let source = "export const handler = async (e) => { const res = e.Records[0].cf.response; res.headers['x-frame-options'] = [{ key: 'X-Frame-Options', value: 'DENY' }]; return res; };";
    let pool = self::pool(vec![FunctionSpec::new("f", "index.mjs", source)]);
    let event = sample(EventType::ViewerResponse, &SampleOptions::default());
    let Ok(Outcome::Response(ResponseOutcome { response, .. })) = pool.invoke("f", &event).await else {
        panic!("a response")
    };
    let mut expected = event.cf().response.as_ref().unwrap().headers.clone();
    expected.insert(
        "x-frame-options".into(),
        vec![HeaderEntry {
            key: Some("X-Frame-Options".into()),
            value: "DENY".into(),
        }],
    );
    assert_eq!(response.headers, expected);
}

/// After a result that is not the given object the next call writes all headers out (no
/// record of them is made); once the function returns the given object again, it lists them.
#[tokio::test(flavor = "multi_thread")]
async fn the_header_record_follows_what_the_function_returns() {
    let source = "let n = 0;
      export const handler = async (event) => {
        const r = event.Records[0].cf.request;
        n += 1;
        if (n === 2) return { status: '200', body: 'generated' };
        r.headers.accept[0].value = 'call ' + n;
        return r;
      };";
    let pool = pool(vec![FunctionSpec::new("f", "index.mjs", source)]);
    let event = viewer_request();
    let mut raw = Vec::new();
    for _ in 0..4 {
        raw.push(
            pool.invoke_json("f", EventJson::whole(event.to_json()), true, "r")
                .await
                .unwrap(),
        );
    }
    assert!(raw[0].starts_with("Khost,user-agent\n"), "{}", raw[0]);
    assert!(raw[1].contains("generated"), "{}", raw[1]);
    assert!(
        raw[2].starts_with('{') && raw[2].contains("call 3") && raw[2].contains("curl/8.5.0"),
        "{}",
        raw[2]
    );
    assert!(
        raw[3].starts_with("Khost,user-agent\n") && raw[3].contains("call 4"),
        "{}",
        raw[3]
    );
    for call in 5..7 {
        let Ok(Outcome::Request(RequestOutcome::Continue { request, .. })) = pool.invoke("f", &event).await else {
            panic!("a request")
        };
        let mut expected = event.cf().request.headers.clone();
        expected.get_mut("accept").unwrap()[0].value = format!("call {call}");
        assert_eq!(request.headers, expected);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn response_events() {
    let source = "export const handler = async (e) => { const res = e.Records[0].cf.response; res.headers['strict-transport-security'] = [{ value: 'max-age=63072000' }]; return res; };";
    let pool = pool(vec![FunctionSpec::new("f", "index.mjs", source)]);
    let event = sample(EventType::ViewerResponse, &SampleOptions::default());
    let outcome = pool.invoke("f", &event).await.unwrap();
    assert_eq!(header(&outcome, "strict-transport-security"), "max-age=63072000");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_allocations_and_recursion_are_contained() {
    let source = r#"
export const handler = async (e) => {
  const uri = e.Records[0].cf.request.uri;
  if (uri === '/huge-result') return { status: '200', body: 'x'.repeat(8 * 1024 * 1024) };
  if (uri === '/many-headers') {
    const r = e.Records[0].cf.request;
    for (let i = 0; i < 20000; i++) r.headers['x-h' + i] = [{ value: 'v'.repeat(100) }];
    return r;
  }
  if (uri === '/buffer') return { status: '200', body: Buffer.alloc(256 * 1024 * 1024).toString('hex') };
  if (uri === '/recursion') { const f = (n) => f(n + 1) + 1; return f(0); }
  return e.Records[0].cf.request;
};"#;
    let mut spec = FunctionSpec::new("f", "index.mjs", source);
    spec.memory = 64 << 20;
    // Generous: an 8 MB result takes a while in a debug build next to the other tests.
    spec.timeout = Duration::from_secs(30);
    let pool = pool(vec![spec]);
    let huge = pool.invoke("f", &viewer_request_to("/huge-result")).await.unwrap_err();
    assert_eq!(huge.class, FailureClass::Validation, "{huge}");
    assert!(huge.message.contains("limit"), "{huge}");
    let many = pool.invoke("f", &viewer_request_to("/many-headers")).await.unwrap_err();
    assert!(many.message.contains("20480-byte limit"), "{many}");
    let buffer = pool.invoke("f", &viewer_request_to("/buffer")).await.unwrap_err();
    assert_eq!(buffer.class, FailureClass::Execution, "{buffer}");
    let recursion = pool.invoke("f", &viewer_request_to("/recursion")).await.unwrap_err();
    assert_eq!(recursion.class, FailureClass::Execution, "{recursion}");
    assert!(
        recursion.message.to_lowercase().contains("stack")
            || recursion.error_type == "InternalError"
            || recursion.error_type == "RangeError",
        "{recursion:?}"
    );
    assert_eq!(
        uri(pool.invoke("f", &viewer_request_to("/fine")).await),
        "/fine",
        "the function still serves"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn callback_waits_for_the_event_loop_unless_told_not_to() {
    let source = r#"
exports.handler = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = event.Records[0].cf.request.uri === '/wait';
  setTimeout(() => {}, 300);
  callback(null, event.Records[0].cf.request);
};"#;
    let pool = pool(vec![FunctionSpec::new("f", "index.js", source)]);
    let started = std::time::Instant::now();
    assert_eq!(uri(pool.invoke("f", &viewer_request_to("/wait")).await), "/wait");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "waited for the timer: {:?}",
        started.elapsed()
    );
    let started = std::time::Instant::now();
    assert_eq!(uri(pool.invoke("f", &viewer_request_to("/nowait")).await), "/nowait");
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "answered at once: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn code_is_replaced_without_failing_a_call() {
    let version = |n: u32| {
        FunctionSpec::new(
            "f",
            "index.mjs",
            &format!("export const handler = async (e) => {{ const r = e.Records[0].cf.request; r.uri = '/v{n}'; return r; }};"),
        )
    };
    let pool = Arc::new(
        JsPool::start(
            vec![version(1)],
            &PoolOptions {
                threads: 2,
                queue: 64,
                max_wait: Duration::from_secs(2),
                snapshot: true,
                name_servers: Vec::new(),
                ..PoolOptions::default()
            },
        )
        .unwrap(),
    );
    assert_eq!(uri(pool.invoke("f", &viewer_request()).await), "/v1");
    // Keep calling while the code changes twice; every call succeeds with one of the versions.
    let caller = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..300 {
                seen.push(uri(pool.invoke("f", &viewer_request()).await));
            }
            seen
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    pool.register(version(2));
    tokio::time::sleep(Duration::from_millis(100)).await;
    pool.register(version(3));
    let seen = caller.await.unwrap();
    assert!(
        seen.iter().all(|u| ["/v1", "/v2", "/v3"].contains(&u.as_str())),
        "{seen:?}"
    );
    // Warmed on every thread: from now on only the newest code answers.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..20 {
        assert_eq!(uri(pool.invoke("f", &viewer_request()).await), "/v3");
    }
    // A new function can be added too.
    pool.register(FunctionSpec::new(
        "g",
        "g.mjs",
        "export const handler = async (e) => e.Records[0].cf.request;",
    ));
    assert!(pool.has_function("g"));
    assert_eq!(uri(pool.invoke("g", &viewer_request()).await), "/start");
}

/// Replacing one function's code disposes its engine while engines built after it live on (the
/// order that broke the QuickJS shim for idle spare engines; clean under valgrind's memcheck).
#[tokio::test(flavor = "multi_thread")]
async fn redeploying_one_function_keeps_the_others() {
    let f = |name: &str, tag: &str| {
        FunctionSpec::new(name, "index.mjs", &format!("export const handler = async (e) => {{ const r = e.Records[0].cf.request; r.uri = '/{tag}'; return r; }};"))
    };
    let pool = pool(vec![f("a", "a1"), f("b", "b1")]);
    assert_eq!(uri(pool.invoke("a", &viewer_request()).await), "/a1");
    pool.register(f("a", "a2"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(uri(pool.invoke("b", &viewer_request()).await), "/b1");
    assert_eq!(uri(pool.invoke("a", &viewer_request()).await), "/a2");
    pool.register(f("b", "b2"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(uri(pool.invoke("a", &viewer_request()).await), "/a2");
    assert_eq!(uri(pool.invoke("b", &viewer_request()).await), "/b2");
}

/// The result text of `function` given `event` (headers listable).
async fn run_held(pool: &JsPool, function: &str, event: EventJson) -> String {
    pool.invoke_json(function, event, true, "r").await.unwrap()
}

/// A function that does not read the returned object's headers gets them held back (`K*`: all
/// kept as given but those in the map it returns); whatever it does with them, the outcome is
/// the one of the whole event.
#[tokio::test(flavor = "multi_thread")]
async fn held_back_headers_give_the_outcome_of_the_whole_event() {
    // Request events: left alone,
    let request_held = [
        "",
        "r.uri = '/b' + r.uri;",
        "Object.freeze(r);",
        // headers written only,
        "r.headers['x-a'] = [{ key: 'X-A', value: '1' }];",
        "r.headers['x-keys'] = [{ value: Object.keys(r).join() }];",
        "const copy = Object.create(r); copy.headers = {}; r.headers['x-own'] = [{ value: String(Object.keys(copy.headers).length) }];",
        "r.headers['user-agent'] = [{ key: 'User-Agent', value: 'mine' }];",
        "const h = r.headers; h['x-a'] = [{ value: '1' }]; h['x-b'] = [{ value: '2' }]; h['x-a'] = [{ value: '3' }];",
        "r.headers['Host'] = [{ value: 'upper.example' }];",
        "r.headers['x-a'] = [{ key: 'X-A', value: '1' }]; r.headers['connection'] = [{ value: 'close' }];",
        "r.headers['host'] = [{ value: 'other.example' }];",
        "r.headers['user-agent'] = []; r.headers['x-empty'] = [];",
        "Object.freeze(r); r.headers['x-a'] = [{ value: '1' }];",
        // one header read at a time (each parsed alone): still held back.
        "Object.freeze(r); r.headers['user-agent'][0].value = 'frozen';",
        "r.headers = r.headers; r.headers.accept[0].value = 'text/plain';",
        "r.headers['x-a'] = [{ value: '1' }]; r.headers['x-in'] = [{ value: String('host' in r.headers) }];",
        "const n = r.headers['user-agent'][0].value.length; r.uri = '/' + n;",
        "r.headers['x-missing'] = [{ value: String(r.headers['x-nope']) + String('x-nope' in r.headers) }];",
        "r.headers['user-agent'][0].value = 'changed';",
        "r.headers.accept.push({ key: 'Accept', value: 'text/plain' });",
        "r.headers['user-agent'].pop();",
        "r.headers['x-has'] = [{ value: String(r.headers.hasOwnProperty('host')) + String(r.headers.hasOwnProperty('x-nope')) }];",
        "Object.getOwnPropertyDescriptor(r.headers, 'host').value[0].value = 'h.example';",
        "const h = r.headers; h.host = [{ value: 'new.example' }]; h['x-host'] = [{ value: h.host[0].value }];",
        "String.prototype.indexOf = () => -1; String.prototype.slice = () => '0'; r.headers['x-ua'] = [{ value: r.headers['user-agent'][0].value }];",
    ];
    // Replaced, listed, deleted from, frozen, defined on, re-prototyped, spread, written through
    // an inheriting object, referenced twice in the result: the whole map parsed.
    let request_parsed = [
        "r.headers = { 'x-only': [{ key: 'X-Only', value: '1' }] };",
        "delete r.headers;",
        "let threw = false; Object.freeze(r); try { r.headers = {}; } catch { threw = true; } if (threw) return { status: '403', body: 'threw' };",
        "r.headers['x-json'] = [{ value: JSON.parse(JSON.stringify(event)).Records[0].cf.request.headers.host[0].value }];",
        "return { ...r, uri: '/spread' };",
        "return JSON.parse(JSON.stringify(r));",
        "r.headers = undefined;",
        "r.headers['x-a'] = [{ value: '1' }]; r.headers['x-order'] = [{ value: Object.keys(r.headers).join() }];",
        "r.headers['user-agent'] = [{ value: 'mine' }]; r.headers['x-order'] = [{ value: Object.keys(r.headers).join() }];",
        "r.headers['x-a'] = [{ value: '1' }]; delete r.headers['x-a'];",
        "delete r.headers['user-agent'];",
        "r.headers['user-agent'] = undefined;",
        "r.headers['x-a'] = { key: 'X-A', value: '1' };",
        "r.headers['__proto__'] = [{ value: 'x' }]; r.headers['constructor'] = [{ value: 'y' }];",
        "Object.freeze(r.headers); try { r.headers['x-a'] = [{ value: '1' }]; } catch { r.uri = '/threw'; }",
        "Object.defineProperty(r.headers, 'x-d', { value: [{ value: '1' }], enumerable: true });",
        "Object.setPrototypeOf(r.headers, null); r.headers['x-a'] = [{ value: '1' }];",
        "r.headers['x-a'] = [{ value: '1' }]; r.copy = r.headers;",
        "const h = r.headers; h['x-a'] = [{ value: '1' }]; r.headers = { 'x-b': [{ value: '2' }] };",
        "const o = Object.create(r.headers); o['x-a'] = [{ value: '1' }]; r.headers['x-n'] = [{ value: String(Object.keys(r.headers).length) }];",
        "r.headers = { ...r.headers, 'x-s': [{ value: '1' }] };",
        "r.headers['x-a'] = [{ value: '1' }]; r.headers['x-json'] = [{ value: JSON.stringify(r.headers) }];",
        "Object.defineProperty(Object.prototype, 'user-agent', { set(v) { this['x-polluted'] = v; }, configurable: true }); r.headers['user-agent'] = [{ value: 'mine' }]; delete Object.prototype['user-agent'];",
        "r.headers['x-ua'] = [{ value: r.headers['user-agent'][0].value }]; r.headers['x-order'] = [{ value: Object.keys(r.headers).join() }];",
        "const a = r.headers.accept; r.headers['x-same'] = [{ value: String(Object.keys(r.headers).length > 0 && r.headers.accept === a) }];",
        "const ua = r.headers['user-agent']; delete r.headers['user-agent']; r.headers['x-ua'] = ua;",
    ];
    let response_held = [
        "",
        "res.status = '404';",
        "res.headers['x-copy'] = [{ value: String((res.headers['content-type'] || [{ value: 'none' }])[0].value) }];",
        "res.headers['x-frame-options'] = [{ key: 'X-Frame-Options', value: 'DENY' }];",
        "res.headers['x-request'] = [{ value: e.Records[0].cf.request.headers.host[0].value }];",
        "res.headers['strict-transport-security'] = [{ value: 'max-age=63072000' }]; res.headers['content-type'] = [{ value: 'text/plain' }];",
        "res.headers['transfer-encoding'] = [{ value: 'chunked' }];",
    ];
    let response_parsed = [
        "res.headers['x-names'] = [{ value: Object.keys(res.headers).join() }];",
        "for (const name in res.headers) res.headers[name][0].value += ';x';",
    ];
    let held_cases = request_held.iter().chain(&response_held).copied().collect::<Vec<_>>();
    let request_cases = request_held.iter().chain(&request_parsed);
    let response_cases = response_held.iter().chain(&response_parsed);
    let request_event = viewer_request();
    let response_event = sample(EventType::ViewerResponse, &SampleOptions::default());
    let cases = request_cases
        .map(|body| {
            let source = format!(
                "export const handler = async (event) => {{ const r = event.Records[0].cf.request; {body} return r; }};"
            );
            (body, source, &request_event)
        })
        .chain(response_cases.map(|body| {
            let source = format!(
                "export const handler = async (e) => {{ const res = e.Records[0].cf.response; {body} return res; }};"
            );
            (body, source, &response_event)
        }));
    for (body, source, event) in cases {
        // Instances of the same code: one gets the map held back with its index, one without
        // (a header read parses the whole map), one the whole event.
        let pool = pool(vec![
            FunctionSpec::new("held", "index.mjs", &source),
            FunctionSpec::new("unindexed", "index.mjs", &source),
            FunctionSpec::new("whole", "index.mjs", &source),
        ]);
        let held = run_held(&pool, "held", EventJson::new(event, true)).await;
        let unindexed = run_held(&pool, "unindexed", EventJson::new(event, false)).await;
        let whole = run_held(&pool, "whole", EventJson::whole(event.to_json())).await;
        assert!(!whole.starts_with("K*"), "{body}: {whole}");
        assert_eq!(held.starts_with("K*\n"), held_cases.contains(body), "{body}: {held}");
        if body.is_empty() || body.starts_with("r.uri") || body.starts_with("res.status") {
            assert!(held.contains("\"headers\":{}"), "{body}: {held}");
        }
        assert!(
            !unindexed.starts_with("K*\n") || held.starts_with("K*\n"),
            "{body}: {unindexed}"
        );
        // As the event is, and as if the proxy had made it (kept headers taken as they are).
        let checked = Event::checked(event.cf().clone());
        for event in [event, &checked] {
            let outcome = |result: &str| crate::edge::validate(event, result).map(|o| o.checked_changes(event));
            assert_eq!(outcome(&held), outcome(&whole), "{body}");
            assert_eq!(outcome(&unindexed), outcome(&whole), "{body}");
        }
    }
}

/// The part of an event functions seldom read (the request in response events, the origin block
/// in origin-request events) is held back until read; whatever the function does with it, the
/// outcome is the one of the whole event, and an origin block never read is left out of the
/// result.
#[tokio::test(flavor = "multi_thread")]
async fn a_held_back_part_gives_the_outcome_of_the_whole_event() {
    let origin_cases = [
        "",
        "r.uri = '/b';",
        "Object.freeze(r);",
        "r.origin.custom.domainName = 'other.example';",
        "r.origin = { custom: { ...r.origin.custom, port: 8443 } };",
        "r.origin = r.origin;",
        "delete r.origin;",
        "r.headers['x-o'] = [{ value: r.origin.custom.domainName }];",
        "Object.freeze(r); r.headers['x-o'] = [{ value: r.origin.custom.domainName + r.origin.custom.port }];",
        "r.headers['x-keys'] = [{ value: Object.keys(r).join() }];",
        "r.headers['x-json'] = [{ value: String(JSON.stringify(r).length) }];",
        "return { ...r, uri: '/spread' };",
        "return { ...r, origin: undefined };",
        "Object.defineProperty(r, 'origin', { value: null, enumerable: true });",
        "const o = Object.create(r); o.origin = 1; r.headers['x-o'] = [{ value: String(r.origin.custom.port) }];",
        "r.copy = r.origin;",
        "r.origin.custom.port = 'eighty';",
    ];
    let response_cases = [
        "",
        "res.status = '404';",
        "res.headers['x-uri'] = [{ value: e.Records[0].cf.request.uri }];",
        "e.Records[0].cf.request.uri = '/changed';",
        "res.headers['x-json'] = [{ value: String(JSON.stringify(e).length) }];",
        "Object.freeze(e.Records[0].cf); res.headers['x-uri'] = [{ value: e.Records[0].cf.request.uri }];",
        "e.Records[0].cf.request = null; res.headers['x-r'] = [{ value: String(e.Records[0].cf.request) }];",
        "res.headers['x-keys'] = [{ value: Object.keys(e.Records[0].cf).join() }];",
        "return { ...res, request: e.Records[0].cf.request };",
    ];
    let origin_event = sample(EventType::OriginRequest, &SampleOptions::default());
    assert!(origin_event.cf().request.origin.is_some());
    let cases = origin_cases
        .iter()
        .map(|body| {
            let source = format!(
                "export const handler = async (event) => {{ const r = event.Records[0].cf.request; {body} return r; }};"
            );
            (*body, source, origin_event.clone())
        })
        .chain(
            [EventType::OriginResponse, EventType::ViewerResponse]
                .into_iter()
                .flat_map(|kind| {
                    response_cases.iter().map(move |body| {
                        let source = format!(
                            "export const handler = async (e) => {{ const res = e.Records[0].cf.response; {body} return res; }};"
                        );
                        (*body, source, sample(kind, &SampleOptions::default()))
                    })
                }),
        );
    for (body, source, event) in cases {
        let pool = pool(vec![
            FunctionSpec::new("held", "index.mjs", &source),
            FunctionSpec::new("whole", "index.mjs", &source),
        ]);
        let json = EventJson::new(&event, true);
        assert!(json.part.is_some(), "{body}");
        let held = run_held(&pool, "held", json).await;
        let whole = run_held(&pool, "whole", EventJson::whole(event.to_json())).await;
        if event.cf().response.is_none()
            && (body.is_empty() || body.starts_with("r.uri") || body.starts_with("Object.freeze(r);\""))
        {
            assert!(
                !held.contains("\"origin\"") && whole.contains("\"origin\""),
                "{body}: {held}"
            );
        }
        assert_eq!(
            crate::edge::validate(&event, &held),
            crate::edge::validate(&event, &whole),
            "{body}"
        );
    }
}

/// After an event whose held-back part the function read, the next events come whole, and
/// after a while the part is held back again; an event kept and read later has its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_function_that_reads_the_part_gets_whole_events() {
    let source = "let kept = null;
      export const handler = async (e) => {
        const cf = e.Records[0].cf;
        const held = typeof Object.getOwnPropertyDescriptor(cf, 'request').get === 'function';
        const earlier = kept === null ? '' : kept.Records[0].cf.request.uri;
        kept ??= e;
        cf.response.headers['x-held'] = [{ value: String(held) }];
        cf.response.headers['x-uri'] = [{ value: cf.request.uri + '|' + earlier }];
        return cf.response;
      };";
    let pool_of = pool;
    let pool = pool_of(vec![FunctionSpec::new("f", "index.mjs", source)]);
    let event = |n: usize| {
        let mut event = sample(EventType::ViewerResponse, &SampleOptions::default());
        event.cf_mut().request.uri = format!("/{n}");
        event
    };
    let mut seen = Vec::new();
    for n in 0..67 {
        let outcome = pool.invoke("f", &event(n)).await.unwrap();
        seen.push((header(&outcome, "x-held"), header(&outcome, "x-uri")));
    }
    assert_eq!(seen[0], ("true".to_string(), "/0|".to_string()));
    assert!(seen[1..65].iter().all(|(held, _)| held == "false"), "{seen:?}");
    assert_eq!(seen[65].0, "true");
    assert_eq!(seen[66].0, "false");
    // The first event, kept: read in every later invocation, its own request.
    assert!(
        seen[1..]
            .iter()
            .enumerate()
            .all(|(i, (_, uri))| *uri == format!("/{}|/0", i + 1)),
        "{seen:?}"
    );

    // An event kept with its part never read during its invocation: parsed when read later.
    let source = "let kept = null;
      export const handler = async (e) => {
        const res = e.Records[0].cf.response;
        if (kept === null) kept = e;
        else res.headers['x-kept'] = [{ value: kept.Records[0].cf.request.uri + '|' + (kept.Records[0].cf.request === kept.Records[0].cf.request) }];
        return res;
      };";
    let pool = pool_of(vec![FunctionSpec::new("g", "index.mjs", source)]);
    pool.invoke("g", &event(1)).await.unwrap();
    let outcome = pool.invoke("g", &event(2)).await.unwrap();
    assert_eq!(header(&outcome, "x-kept"), "/1|true");
}

/// Headers read one at a time from a map with characters beyond ASCII (whose index would count
/// bytes where the engine counts UTF-16 units): the event comes without the index, the map is
/// parsed whole, the outcome is the whole event's.
#[tokio::test(flavor = "multi_thread")]
async fn a_header_read_from_a_map_beyond_ascii_is_the_events() {
    let source = "export const handler = async (event) => {
        const r = event.Records[0].cf.request;
        r.headers['x-agent'] = [{ value: r.headers['user-agent'][0].value + '|' + r.headers['a-name'][0].value }];
        return r;
      };";
    let pool = pool(vec![
        FunctionSpec::new("held", "index.mjs", source),
        FunctionSpec::new("whole", "index.mjs", source),
    ]);
    let event = sample(
        EventType::ViewerRequest,
        &SampleOptions {
            headers: vec![
                ("A-Name".into(), "Zo\u{eb} \u{1f600}".into()),
                ("User-Agent".into(), "agent".into()),
            ],
            ..Default::default()
        },
    );
    let held = run_held(&pool, "held", EventJson::new(&event, true)).await;
    let whole = run_held(&pool, "whole", EventJson::whole(event.to_json())).await;
    let Ok(Outcome::Request(RequestOutcome::Continue { request, .. })) = crate::edge::validate(&event, &held) else {
        panic!("{held}")
    };
    assert_eq!(request.headers["x-agent"][0].value, "agent|Zo\u{eb} \u{1f600}");
    assert_eq!(
        crate::edge::validate(&event, &held),
        crate::edge::validate(&event, &whole)
    );
}

/// A function that reads headers one at a time gets the index of the held-back map with its
/// events (after a first event without it, whose map it parsed whole), for as long as it
/// keeps reading them one at a time and 64 events after.
#[tokio::test(flavor = "multi_thread")]
async fn a_function_that_reads_one_header_gets_the_index() {
    let source = "export const handler = async (event) => {
        const r = event.Records[0].cf.request;
        if (r.uri === '/read') r.headers['x-agent'] = [{ value: r.headers['user-agent'][0].value }];
        return r;
      };";
    let pool = pool(vec![FunctionSpec::new("f", "index.mjs", source)]);
    let event = |uri: &str| {
        let mut event = viewer_request();
        event.cf_mut().request.uri = uri.into();
        event
    };
    let call = |uri: &'static str| {
        let pool = &pool;
        async move {
            let event = event(uri);
            let text = pool
                .invoke_with("f", |spec| EventJson::new(&event, spec.index_hint.wanted()), true, "r")
                .await
                .unwrap();
            assert!(crate::edge::validate(&event, &text).is_ok(), "{text}");
            text.starts_with("K*\n")
        }
    };
    // Read without the index (the whole map parsed), then with it (the one header parsed).
    assert!(!call("/read").await);
    assert!(call("/read").await);
    // Events that do not read keep the index for 64 more, then come without it.
    for _ in 0..64 {
        assert!(call("/other").await);
    }
    assert!(!call("/read").await);
    assert!(call("/read").await);
}

/// After an event whose held-back headers the function read, the next events come whole (no
/// accessor to pay for), and after a while the map is held back again.
#[tokio::test(flavor = "multi_thread")]
async fn a_function_that_reads_the_headers_gets_whole_events() {
    let source = "export const handler = async (event) => {
        const r = event.Records[0].cf.request;
        const held = typeof Object.getOwnPropertyDescriptor(r, 'headers').get === 'function';
        r.headers['x-held'] = [{ value: String(held) + (Object.keys(r.headers).length ? '' : '?') }];
        return r;
      };";
    let pool = pool(vec![FunctionSpec::new("f", "index.mjs", source)]);
    let event = viewer_request();
    let mut held = Vec::new();
    for _ in 0..67 {
        held.push(header(&pool.invoke("f", &event).await.unwrap(), "x-held"));
    }
    assert_eq!(held[0], "true");
    assert!(held[1..65].iter().all(|h| h == "false"), "{held:?}");
    assert_eq!(held[65], "true");
    assert_eq!(held[66], "false");
}

/// An event a function keeps keeps its own headers, held back or not, read later or never.
#[tokio::test(flavor = "multi_thread")]
async fn a_kept_event_keeps_its_own_held_back_headers() {
    let source = "let first = null, second = null, secondHeld = false, n = 0;
      export const handler = async (event) => {
        const r = event.Records[0].cf.request;
        n += 1;
        if (n === 1) {
          first = r;
          r.headers['x-first'] = [{ value: 'written' }];
        }
        if (n === 2) {
          second = r;
          secondHeld = typeof Object.getOwnPropertyDescriptor(r, 'headers').get === 'function';
          first.headers['x-later'] = [{ value: 'written later' }];
          r.uri = '/' + first.headers['user-agent'][0].value + '/' + (first.headers === first.headers) + '/' + Object.keys(first.headers).join();
        }
        if (n === 3) {
          first.headers = { 'x-set': [{ value: '1' }] };
          // An event kept with its map held back and never touched: parsed when read now.
          r.uri = '/' + Object.keys(first.headers).join() + '/' + secondHeld + '/' + second.headers['user-agent'][0].value + '/' + (second.headers === second.headers);
        }
        return r;
      };";
    let pool = pool(vec![FunctionSpec::new("f", "index.mjs", source)]);
    let with_agent = |agent: &str| {
        sample(
            EventType::ViewerRequest,
            &SampleOptions {
                headers: vec![("User-Agent".into(), agent.into())],
                ..Default::default()
            },
        )
    };
    let first = pool
        .invoke_json("f", EventJson::new(&with_agent("first"), true), true, "1")
        .await
        .unwrap();
    assert!(first.starts_with("K*\n"), "{first}");
    let second = pool.invoke("f", &with_agent("second")).await.unwrap();
    let Outcome::Request(RequestOutcome::Continue { request, .. }) = second else {
        panic!("a request")
    };
    // The kept map: the event's headers, then those written during its invocation and after.
    assert!(
        request.uri.starts_with("/first/true/") && request.uri.ends_with(",user-agent,x-first,x-later"),
        "{}",
        request.uri
    );
    assert_eq!(request.headers["user-agent"][0].value, "second");
    let third = pool.invoke("f", &with_agent("third")).await.unwrap();
    let Outcome::Request(RequestOutcome::Continue { request, .. }) = third else {
        panic!("a request")
    };
    assert_eq!(request.uri, "/x-set/true/second/true");
}

/// A JS thread holds one isolate per function; what one function does must never reach another's
/// isolate. A failed dynamic `import()` makes an error from Rust, which used to leave the isolate
/// built last current while the importer went on: its handles were taken and released through
/// the other engine (a panic, then a corrupt heap and a crash).
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_dynamic_import_is_caught_whichever_isolate_was_built_last() {
    let importer = FunctionSpec::new(
        "importer",
        "importer.mjs",
        "export const handler = async (e) => { const r = e.Records[0].cf.request; try { await import('node:dns'); r.uri = '/loaded'; } catch (err) { r.uri = '/caught/' + err.message.includes('module not available'); } return r; };",
    );
    let other = |answer: &str| {
        FunctionSpec::new(
            "other",
            "other.mjs",
            &format!("export const handler = async (e) => {{ const r = e.Records[0].cf.request; r.uri = '/{answer}'; return r; }};"),
        )
    };
    // One JS thread: `other` is built after `importer`, then rebuilt after it again.
    let pool = pool(vec![importer, other("first")]);
    for answer in ["first", "second"] {
        if answer == "second" {
            pool.register(other(answer));
        }
        for round in 0..3 {
            assert_eq!(
                uri(pool.invoke("importer", &viewer_request()).await),
                "/caught/true",
                "{answer} code, round {round}"
            );
            assert_eq!(
                uri(pool.invoke("other", &viewer_request()).await),
                format!("/{answer}"),
                "{answer} code, round {round}"
            );
        }
    }
    assert_eq!(pool.health().problem(), None);
    assert_eq!((pool.health().replaced, pool.health().crashed), (0, 0));
}

/// Runs `script` in Node.js 20; returns what it printed.
pub(super) fn node_script(script: &str) -> String {
    let out = std::process::Command::new("node")
        .arg("-e")
        .arg(script)
        .output()
        .expect("Node.js (`node`, installed by scripts/setup) runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs `probe` (source defining `async function probe()`, which returns a JSON value) in
/// Node.js 20 and in an edgehook function; returns both answers (Node's first).
pub(super) async fn in_node_and_here(probe: &str) -> (serde_json::Value, serde_json::Value) {
    let node = std::process::Command::new("node")
        .arg("-e")
        .arg(format!(
            // The interval keeps Node's event loop alive while the probe waits on what does not
            // (an Atomics.waitAsync timeout, say).
            "{probe}\nconst alive = setInterval(() => {{}}, 1000);\nprobe().then((r) => {{ clearInterval(alive); console.log(JSON.stringify(r)); }}, (e) => {{ console.error(e); process.exit(1); }});"
        ))
        .output()
        .expect("Node.js (`node`, installed by scripts/setup) runs");
    assert!(node.status.success(), "node: {}", String::from_utf8_lossy(&node.stderr));
    let node: serde_json::Value = serde_json::from_slice(&node.stdout).expect("node printed JSON");
    let source = format!(
        "{probe}\nexport const handler = async (e) => {{ const r = e.Records[0].cf.request; r.headers['x-probe'] = [{{ value: Buffer.from(JSON.stringify(await probe())).toString('base64') }}]; return r; }};"
    );
    let outcome = run_file("index.mjs", &source).await.expect("the probe runs");
    let json = crate::js::ops::base64_decode_lenient(&header(&outcome, "x-probe"));
    (node, serde_json::from_slice(&json).expect("the probe returned JSON"))
}

#[tokio::test(flavor = "multi_thread")]
async fn atomics_wait_async_and_notify_behave_as_on_node() {
    let probe = r#"
async function probe() {
  const out = [];
  const attempt = (f) => { try { return f(); } catch (e) { return e.constructor.name; } };
  const cell = new Int32Array(new SharedArrayBuffer(16));
  const big = new BigInt64Array(new SharedArrayBuffer(16));
  out.push(attempt(() => Atomics.waitAsync(cell, 0, 1)));
  out.push(attempt(() => Atomics.waitAsync(cell, 0, 0, 0)));
  out.push(attempt(() => Atomics.waitAsync(cell, 0, 0, -5)));
  out.push(attempt(() => Atomics.waitAsync(new Int32Array(4), 0, 0)));
  out.push(attempt(() => Atomics.waitAsync(new Uint8Array(new SharedArrayBuffer(4)), 0, 0)));
  out.push(attempt(() => Atomics.waitAsync(cell, 99, 0)));
  out.push(attempt(() => Atomics.waitAsync(big, 0, 0)));
  const first = Atomics.waitAsync(cell, 1, 0);
  const timed = Atomics.waitAsync(cell, 1, 0, 10);
  const third = Atomics.waitAsync(cell, 1, '0');
  out.push(first.async, typeof first.value.then);
  out.push(Atomics.notify(cell, 1, 1), await first.value, await timed.value);
  out.push(Atomics.notify(cell, 1), await third.value, Atomics.notify(cell, 1), Atomics.notify(cell, 2, 0));
  out.push(Atomics.notify(new Int32Array(4), 0));
  out.push(attempt(() => Atomics.notify(new Uint8Array(4), 0)));
  out.push(attempt(() => Atomics.notify(cell, 4)));
  const wide = Atomics.waitAsync(big, 1, 0n);
  out.push(Atomics.notify(big, 1, 5), await wide.value);
  out.push(Atomics.waitAsync.length, Atomics.notify.length);
  return out;
}"#;
    let (node, here) = in_node_and_here(probe).await;
    assert_eq!(here, node);
}

/// Values a handler may throw, reject with or call back with that cannot be read (a proxy whose
/// traps throw, getters that throw): the call fails at once as an execution error, reported as
/// Lambda's runtime reports such an error, and its JS thread serves the next call.
#[tokio::test(flavor = "multi_thread")]
async fn an_error_nobody_can_read_fails_the_call_and_frees_the_thread() {
    let proxy = "new Proxy({}, { getPrototypeOf() { throw new Error('trap'); } })";
    let getters = "Object.create(Error.prototype, { message: { get() { throw new Error('getter'); } } })";
    let forms = [
        format!("export const handler = async () => {{ throw {proxy}; }};"),
        format!("export const handler = () => {{ throw {proxy}; }};"),
        format!("export const handler = (e, c, callback) => {{ callback({proxy}); }};"),
        format!("export const handler = (e, c, callback) => {{ throw {proxy}; }};"),
        format!("export const handler = () => Promise.reject({proxy});"),
        format!("export const handler = () => new Promise((_, reject) => setTimeout(() => reject({proxy}), 1));"),
        format!("export const handler = async () => {{ await new Promise((r) => setTimeout(r, 1)); throw {proxy}; }};"),
        format!("export const handler = async () => {{ throw {getters}; }};"),
        format!("export const handler = (e, c, callback) => {{ setTimeout(() => callback({getters}), 1); }};"),
    ];
    for form in forms {
        let mut thrower = FunctionSpec::new("thrower", "thrower.mjs", &form);
        thrower.timeout = Duration::from_millis(500);
        let other = FunctionSpec::new(
            "other",
            "other.mjs",
            "export const handler = async (e) => e.Records[0].cf.request;",
        );
        // One JS thread for both, the thrower built first.
        let pool = pool(vec![thrower, other]);
        let started = std::time::Instant::now();
        let error = pool.invoke("thrower", &viewer_request()).await.unwrap_err();
        assert_eq!(error.class, FailureClass::Execution, "{form}: {error}");
        assert_eq!(error.error_type, "handled", "{form}: {error}");
        assert!(error.message.contains("problem while retrieving"), "{form}: {error}");
        // A wedged thread answers only after the timeout and the grace (1.5 s).
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{form}: answered after {:?}",
            started.elapsed()
        );
        assert_eq!(uri(pool.invoke("other", &viewer_request()).await), "/start", "{form}");
        assert_eq!((pool.health().replaced, pool.health().crashed), (0, 0), "{form}");
    }
}

/// What a function finds on its global object after the bootstrap, exactly: a new global (an
/// engine upgrade's) fails here until someone decides what to do with it. docs/sandbox.md says
/// what each one is and why it stays.
#[tokio::test(flavor = "multi_thread")]
async fn the_globals_a_function_finds_are_exactly_the_documented_ones() {
    let probe = r#"
export const handler = async (e) => {
  const r = e.Records[0].cf.request;
  const isNative = (f) => { try { return Function.prototype.toString.call(f).includes('[native code]'); } catch { return false; } };
  const natives = new Set();
  const seen = new Set();
  const walk = (o, depth) => {
    if (o === null || (typeof o !== 'object' && typeof o !== 'function') || seen.has(o) || depth > 6) return;
    seen.add(o);
    if (typeof o === 'function' && isNative(o)) { try { natives.add(String(o.name)); } catch {} }
    try { walk(Object.getPrototypeOf(o), depth + 1); } catch {}
    let keys = [];
    try { keys = Reflect.ownKeys(o); } catch { return; }
    for (const k of keys) {
      let d; try { d = Object.getOwnPropertyDescriptor(o, k); } catch { continue; }
      if (!d) continue;
      for (const v of [d.value, d.get, d.set]) walk(v, depth + 1);
    }
  };
  walk(globalThis, 0);
  const found = {
    globals: Reflect.ownKeys(globalThis).map(String).sort(),
    engineNatives: [...natives].filter((n) => /^__v8x|^gc$|^ShadowRealm$|^wait$|^markDynamicImport/.test(n)).sort(),
    natives: natives.size,
  };
  let shadow; try { new ShadowRealm(); shadow = 'made'; } catch (err) { shadow = err.name; }
  found.shadowRealm = shadow;
  r.headers['x-found'] = [{ value: Buffer.from(JSON.stringify(found)).toString('base64') }];
  return r;
};"#;
    // Without the web platform (the probe names none of its globals), then with it.
    for web in [false, true] {
        let source = if web {
            format!("{probe}\n// uses fetch")
        } else {
            probe.to_string()
        };
        let outcome = run_file("index.mjs", &source).await.unwrap();
        let json = crate::js::ops::base64_decode_lenient(&header(&outcome, "x-found"));
        let found: serde_json::Value = serde_json::from_slice(&json).unwrap();
        check_globals(&found, web);
    }
}

fn check_globals(found: &serde_json::Value, web: bool) {
    let mut expected = vec![
        // ECMAScript, as QuickJS-ng has it (a few beyond Node.js 20: Iterator, Float16Array,
        // DisposableStack, AsyncDisposableStack, SuppressedError, Temporal; and its own
        // InternalError, which it throws for a stack overflow).
        "AggregateError",
        "Array",
        "ArrayBuffer",
        "AsyncDisposableStack",
        "Atomics",
        "BigInt",
        "BigInt64Array",
        "BigUint64Array",
        "Boolean",
        "DataView",
        "Date",
        "DisposableStack",
        "Error",
        "EvalError",
        "FinalizationRegistry",
        "Float16Array",
        "Float32Array",
        "Float64Array",
        "Function",
        "Infinity",
        "Int16Array",
        "Int32Array",
        "Int8Array",
        "InternalError",
        "Intl",
        "Iterator",
        "JSON",
        "Map",
        "Math",
        "NaN",
        "Number",
        "Object",
        "Promise",
        "Proxy",
        "RangeError",
        "ReferenceError",
        "Reflect",
        "RegExp",
        "Set",
        "SharedArrayBuffer",
        "String",
        "SuppressedError",
        "Symbol",
        "SyntaxError",
        "Temporal",
        "TypeError",
        "URIError",
        "Uint16Array",
        "Uint32Array",
        "Uint8Array",
        "Uint8ClampedArray",
        "WeakMap",
        "WeakRef",
        "WeakSet",
        "decodeURI",
        "decodeURIComponent",
        "encodeURI",
        "encodeURIComponent",
        "escape",
        "eval",
        "globalThis",
        "isFinite",
        "isNaN",
        "parseFloat",
        "parseInt",
        "undefined",
        "unescape",
        // The engine's web and host additions.
        "DOMException",
        "performance",
        "queueMicrotask",
        "__v8xTemporalTimeZone",
        "Symbol(@@Temporal__CreateSlots)",
        "Symbol(@@Temporal__GetSlots)",
        // edgehook's built-ins.
        "Symbol(edgehook.require)",
        "Buffer",
        "TextDecoder",
        "TextEncoder",
        "URL",
        "URLSearchParams",
        "atob",
        "btoa",
        "clearImmediate",
        "clearInterval",
        "clearTimeout",
        "console",
        "crypto",
        "global",
        "process",
        "require",
        "setImmediate",
        "setInterval",
        "setTimeout",
        "navigator",
    ];
    // The web platform, as Node.js 20 has it (from Deno's extensions, loaded on first use).
    let web_platform = [
        "AbortController",
        "AbortSignal",
        "Blob",
        "ByteLengthQueuingStrategy",
        "CompressionStream",
        "CountQueuingStrategy",
        "Crypto",
        "CryptoKey",
        "CustomEvent",
        "DecompressionStream",
        "Event",
        "EventTarget",
        "File",
        "FormData",
        "Headers",
        "MessageEvent",
        "Performance",
        "PerformanceEntry",
        "PerformanceMark",
        "PerformanceMeasure",
        "ReadableByteStreamController",
        "ReadableStream",
        "ReadableStreamBYOBReader",
        "ReadableStreamBYOBRequest",
        "ReadableStreamDefaultController",
        "ReadableStreamDefaultReader",
        "Request",
        "Response",
        "SubtleCrypto",
        "TextDecoderStream",
        "TextEncoderStream",
        "TransformStream",
        "TransformStreamDefaultController",
        "WritableStream",
        "WritableStreamDefaultController",
        "WritableStreamDefaultWriter",
        "fetch",
        "structuredClone",
    ];
    if web {
        expected.extend(web_platform);
    }
    expected.sort_unstable();
    assert_eq!(found["globals"], serde_json::json!(expected), "web: {web}\n{found:#}");
    // The one engine native left: a pure function of a time and a zone name, which the engine's
    // Intl.DateTimeFormat reads from the global object when it formats.
    assert_eq!(
        found["engineNatives"],
        serde_json::json!(["__v8xTemporalTimeZone"]),
        "{found:#}"
    );
    assert!(
        found["natives"].as_u64().unwrap() > 300,
        "the walk reached the built-ins: {found:#}"
    );
    assert_eq!(found["shadowRealm"], "ReferenceError");
}

/// The request id that makes a JS thread panic while it runs the call (`Worker::run_job`).
pub(super) const PANIC_ON_PURPOSE: &str = "panic-on-purpose";

/// A panic on a JS thread (a bug of edgehook's or of the engine's) fails its call as Lambda fails
/// a call whose runtime died; a new thread takes the place of the one that panicked, with fresh
/// instances of every function. More panics than threads make the runtime report a problem.
#[tokio::test(flavor = "multi_thread")]
async fn a_panic_on_a_js_thread_fails_its_call_and_a_new_thread_serves() {
    let counting = "let calls = 0;\nexport const handler = async (e) => { const r = e.Records[0].cf.request; r.uri = '/calls/' + ++calls; return r; };";
    let pool = pool(vec![
        FunctionSpec::new("f", "f.mjs", counting),
        FunctionSpec::new("g", "g.mjs", counting),
    ]);
    assert_eq!(uri(pool.invoke("f", &viewer_request()).await), "/calls/1");
    let event = || crate::edge::event_json::EventJson::new(&viewer_request(), false);
    for crash in 1..=2u64 {
        let failure = pool
            .invoke_json("f", event(), false, PANIC_ON_PURPOSE)
            .await
            .unwrap_err();
        assert_eq!(failure, Failure::Crashed);
        let error = InvokeError::new(failure, "f", PANIC_ON_PURPOSE);
        assert_eq!(
            (error.class, error.error_type.as_str()),
            (FailureClass::Execution, "Runtime.ExitError")
        );
        // The new thread built both functions afresh (their globals start over).
        assert_eq!(
            uri(pool.invoke("f", &viewer_request()).await),
            "/calls/1",
            "after crash {crash}"
        );
        assert_eq!(
            uri(pool.invoke("g", &viewer_request()).await),
            "/calls/1",
            "after crash {crash}"
        );
        let health = pool.health();
        assert_eq!((health.crashed, health.replaced, health.stuck), (crash, 0, 0));
    }
    // Two panics on one thread: more than there are threads.
    let problem = pool.health().problem().expect("a problem is reported");
    assert!(problem.contains("2 JS threads panicked"), "{problem}");
}

/// A module whose top-level code throws a value nobody can read fails to load with a load error
/// (deno_core turns such an exception into text through the bootstrap, not through the engine,
/// whose conversion fails: it used to panic the JS thread).
#[tokio::test(flavor = "multi_thread")]
async fn a_module_that_throws_an_unreadable_value_fails_to_load() {
    let traps = "const traps = () => new Proxy({}, new Proxy({}, { get() { return () => { throw traps(); }; } }));";
    for (file, source) in [
        ("esm.mjs", format!("{traps}\nthrow traps();\nexport const handler = () => {{}};")),
        ("cjs.cjs", format!("{traps}\nthrow traps();\nexports.handler = () => {{}};")),
        ("esm_symbol.mjs", "throw Symbol('s');\nexport const handler = () => {};".to_string()),
        ("esm_getters.mjs", format!("{traps}\nthrow Object.create(Error.prototype, {{ message: {{ get() {{ throw traps(); }} }}, name: {{ get() {{ throw traps(); }} }} }});\nexport const handler = () => {{}};")),
    ] {
        let error = JsPool::start(vec![FunctionSpec::new("f", file, &source)], &options()).err().unwrap();
        let Failure::Load(message) = &error else { panic!("{file}: {error:?}") };
        assert!(message.contains("failed to load"), "{file}: {message}");
    }
}

#[test]
fn a_configured_function_becomes_a_spec_with_its_settings() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.mjs"), "export const handler = async (e) => e;").unwrap();
    let text = format!(
        "[origins.app]\nurl = \"http://127.0.0.1:9000\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n[functions.rewrite]\ncode = \"{}/f.mjs\"\ntimeout = \"1s\"\nmemory = \"64MiB\"\nconcurrency = 5\nenv = {{ STAGE = \"prod\" }}\n",
        dir.path().display()
    );
    let config = crate::config::parse(&text, "test.toml", std::path::Path::new(".")).unwrap();
    let spec = FunctionSpec::from(&config.functions["rewrite"]);
    assert_eq!((&*spec.name, spec.entry().unwrap().as_str()), ("rewrite", "f.mjs"));
    assert_eq!(
        (spec.timeout, spec.memory, spec.concurrency),
        (Duration::from_secs(1), 64 << 20, 5)
    );
    assert_eq!(spec.env["STAGE"], "prod");
}

#[tokio::test(flavor = "multi_thread")]
async fn path_behaves_as_on_node() {
    let probe = r#"
async function probe() {
  const path = require('path');
  const posix = require('node:path/posix');
  return [
    path.join('/var/task', '..', 'a', './b/', 'c.json'),
    path.join(''), path.normalize('a//b/../c/.'), path.resolve('/a/b', './c', '../d'),
    path.resolve('rel') === path.join(process.cwd(), 'rel'), path.relative('/a/b/c', '/a/d'), path.dirname('/a/b/c.txt'),
    path.basename('/a/b/c.txt', '.txt'), path.extname('archive.tar.gz'), path.extname('.env'),
    path.isAbsolute('/x'), path.isAbsolute('x'), path.parse('/home/u/file.txt'),
    path.format({ dir: '/x', name: 'y', ext: '.z' }), path.sep, path.delimiter,
    posix.join('a', 'b'), path.posix === path,
  ];
}"#;
    let (node, here) = in_node_and_here(probe).await;
    assert_eq!(here, node);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_behave_as_on_node() {
    let probe = r#"
async function probe() {
  const EventEmitter = require('events');
  const { once } = require('node:events');
  const out = [];
  const e = new EventEmitter();
  e.on('x', (a, b) => out.push(['on', a, b]));
  e.once('x', (a) => out.push(['once', a]));
  e.prependListener('x', () => out.push('first'));
  out.push(e.emit('x', 1, 2), e.emit('x', 3), e.emit('none'), e.listenerCount('x'));
  out.push(e.eventNames(), EventEmitter.defaultMaxListeners, e.getMaxListeners());
  try { e.emit('error', new Error('boom')); } catch (err) { out.push(['thrown', err.message]); }
  const later = once(e, 'ready');
  e.emit('ready', 'go', 42);
  out.push(await later);
  e.removeAllListeners('x');
  out.push(e.listenerCount('x'), EventEmitter === EventEmitter.EventEmitter);
  class Sub extends EventEmitter {}
  const s = new Sub();
  s.on('newListener', (name) => out.push(['new', name]));
  s.on('y', () => {});
  out.push(s instanceof EventEmitter);
  return out;
}"#;
    let (node, here) = in_node_and_here(probe).await;
    assert_eq!(here, node);
}

#[tokio::test(flavor = "multi_thread")]
async fn string_decoder_behaves_as_on_node() {
    let probe = r#"
async function probe() {
  const { StringDecoder } = require('string_decoder');
  const euro = Buffer.from('€ and 😀');
  const out = [];
  for (const encoding of ['utf8', 'utf16le', 'base64', 'hex', 'latin1']) {
    const bytes = Buffer.from('€ and 😀', encoding === 'utf8' ? 'utf8' : 'utf8');
    const d = new StringDecoder(encoding);
    const parts = [];
    for (let i = 0; i < bytes.length; i += 3) parts.push(d.write(bytes.subarray(i, i + 3)));
    parts.push(d.end());
    out.push([encoding, parts]);
  }
  const d = new StringDecoder('utf8');
  out.push(d.write(euro.subarray(0, 1)), d.write(euro.subarray(1, 2)), d.end(euro.subarray(2, 3)));
  out.push(new StringDecoder().encoding, new StringDecoder('UCS2').encoding);
  return out;
}"#;
    let (node, here) = in_node_and_here(probe).await;
    assert_eq!(here, node);
}

#[tokio::test(flavor = "multi_thread")]
async fn buffer_behaves_as_on_node() {
    let probe = r#"
async function probe() {
  const { Buffer: B } = require('buffer');
  const attempt = (f) => { try { return f(); } catch (e) { return [e.name, e.code, e.message]; } };
  const hex = (b) => b.toString('hex');
  const out = [B === Buffer];
  // The most-copied basic-auth function: new Buffer(string) and new Buffer(string, 'base64').
  out.push(new Buffer('user:pass').toString('base64'), new Buffer('dXNlcjpwYXNz', 'base64').toString());
  out.push(Buffer('abc').toString('hex'), hex(Buffer(3)), hex(new Buffer([1, 2, 300])));
  out.push(Buffer.isBuffer(Buffer('x')), Buffer('x') instanceof Buffer, Buffer('x') instanceof Uint8Array);
  out.push(Buffer.from('hi').constructor === Buffer, hex(Buffer.from('abcdef').map((b) => b + 1)));
  const b = Buffer.alloc(16);
  out.push(b.writeUInt32BE(0xdeadbeef, 0), b.writeInt16LE(-2, 4), b.writeUInt8(255, 6), b.writeInt8(-1, 7));
  out.push(b.writeDoubleLE(1.5, 8), hex(b));
  out.push(b.readUInt32BE(0), b.readUInt32LE(0), b.readInt32BE(0), b.readUInt16BE(4), b.readInt16LE(4));
  out.push(b.readUint8(6), b.readInt8(7), b.readDoubleLE(8), b.readFloatBE(0));
  out.push(String(b.readBigUInt64BE(8)), String(b.readBigInt64LE(0)));
  out.push(b.writeBigInt64BE(-5n, 8), hex(b.subarray(8)), b.writeFloatLE(0.25, 0), b.readFloatLE(0));
  out.push(b.writeUIntBE(0x123456, 0, 3), b.readUIntBE(0, 3), b.readUIntLE(0, 3), b.writeIntLE(-300, 3, 2), b.readIntLE(3, 2));
  out.push(b.writeUIntLE(2 ** 40 + 7, 0, 6), b.readUIntLE(0, 6), b.readIntBE(0, 6));
  out.push(attempt(() => b.readUInt32BE(13)), attempt(() => b.readUInt8(1.5)), attempt(() => b.readUInt8('1')));
  out.push(attempt(() => b.writeUInt8(256, 0)), attempt(() => b.writeInt32LE(2 ** 31, 0)));
  out.push(attempt(() => b.writeUInt32LE(2 ** 40, 0)), attempt(() => b.writeUIntLE(2 ** 48, 0, 6)));
  out.push(attempt(() => b.writeBigUInt64LE(-1n, 0)), attempt(() => b.writeBigInt64LE(2n ** 63n, 0)));
  out.push(attempt(() => b.writeBigInt64LE(1, 0)), attempt(() => Buffer.alloc(2).readUInt32LE(0)));
  const target = Buffer.alloc(6, 0);
  out.push(Buffer.from('abcdef').copy(target, 2, 1, 3), hex(target), Buffer.from('xyz').copy(target, 4), hex(target));
  return out;
}"#;
    let (node, here) = in_node_and_here(probe).await;
    assert_eq!(here, node);
}

#[tokio::test(flavor = "multi_thread")]
async fn packaged_node_modules_import_with_their_named_exports() {
    let source = r#"
import EventEmitter, { once } from 'node:events';
import { join, basename } from 'path';
import posix from 'path/posix';
import { StringDecoder } from 'string_decoder';
import { promisify } from 'node:util';
export const handler = async (e) => {
  const r = e.Records[0].cf.request;
  const emitter = new EventEmitter();
  setTimeout(() => emitter.emit('done', new StringDecoder('utf8').write(Buffer.from('ok'))), 0);
  const [word] = await once(emitter, 'done');
  const later = await promisify((cb) => setTimeout(() => cb(null, 'util'), 0))();
  r.uri = join('/', basename('/x/y.html'), word, posix.sep === '/' ? 'posix' : 'no', later);
  return r;
};"#;
    assert_eq!(uri(run_file("index.mjs", source).await), "/y.html/ok/posix/util");
}

/// Bundles keep `require`s of Node modules on paths never taken: those modules load, and only
/// a call tells the function it cannot have them. An http or https request the egress policy
/// refuses fails as Node's fail without a network: an `error` event (which the function may
/// handle); options Node refuses are thrown at once. A function that reached `https` by a
/// computed name has no outbound requests at all, and is told why.
#[tokio::test(flavor = "multi_thread")]
async fn modules_that_cannot_be_honoured_load_and_throw_when_called() {
    let source = r#"
const https = require('https');
const { spawn } = require('node:child_process');
class Keeper extends https.Agent {}
exports.handler = async (e) => {
  const r = e.Records[0].cf.request;
  if (r.uri === '/handled') {
    const failed = await new Promise((resolve) =>
      https.get('https://example.com/x', { agent: new Keeper({ keepAlive: true }) }, () => resolve('answered')).on('error', resolve));
    r.uri = '/handled/' + failed.code;
    return r;
  }
  if (r.uri === '/bad-header') https.request({ host: 'example.com', headers: { 'x-api-key': undefined } });
  if (r.uri === '/call') https.request({ host: 'example.com' }).end();
  if (r.uri === '/spawn') spawn('ls');
  r.uri = '/loaded/' + typeof Keeper + '/' + typeof https.get + '/' + Object.prototype.toString.call(process).replace(' ', '-');
  return r;
};"#;
    let pool = pool(vec![FunctionSpec::new("f", "index.js", source)]);
    let mut event = viewer_request();
    assert_eq!(
        uri(pool.invoke("f", &event).await),
        "/loaded/function/function/[object-process]"
    );
    event.cf_mut().request.uri = "/handled".into();
    assert_eq!(
        uri(pool.invoke("f", &event).await),
        "/handled/ERR_EDGEHOOK_EGRESS_REFUSED"
    );
    event.cf_mut().request.uri = "/bad-header".into();
    let refused = pool.invoke("f", &event).await.unwrap_err().to_string();
    assert!(
        refused.contains(r#"Invalid value "undefined" for header "x-api-key""#),
        "{refused}"
    );
    // A request nobody waits for ends with its invocation, before its refusal arrives.
    event.cf_mut().request.uri = "/call".into();
    assert_eq!(
        uri(pool.invoke("f", &event).await),
        "/loaded/function/function/[object-process]"
    );
    let computed = r#"
const https = require(['ht', 'tps'].join(''));
exports.handler = async (e) => {
  const failed = await new Promise((resolve) => https.get({ host: 'example.com' }, () => resolve('answered')).on('error', resolve));
  const r = e.Records[0].cf.request;
  r.uri = '/' + failed.code + '/' + failed.message.includes('reached it by a computed name');
  return r;
};"#;
    assert_eq!(
        uri(run_file("index.js", computed).await),
        "/ERR_EDGEHOOK_UNAVAILABLE/true"
    );
    event.cf_mut().request.uri = "/spawn".into();
    let spawned = pool.invoke("f", &event).await.unwrap_err().to_string();
    assert!(spawned.contains("child_process.spawn is not available"), "{spawned}");

    let esm = "import { request } from 'node:http';\nimport vm from 'vm';\nexport const handler = async (e) => { const r = e.Records[0].cf.request; r.uri = '/' + typeof request + '/' + typeof vm.runInNewContext; return r; };";
    assert_eq!(uri(run_file("index.mjs", esm).await), "/function/function");
}

/// One missing module stops a function's load; its error names every one its code mentions.
#[tokio::test(flavor = "multi_thread")]
async fn a_load_error_names_every_missing_module() {
    let cjs = "const zlib = require('readline');\nconst dns = require(\"node:dns\");\nconst AWS = require('aws-sdk');\nconst again = require('readline');\nconst mine = require('./local');\nconst path = require('path');\nexports.handler = async (e) => e.Records[0].cf.request;";
    let load = |file: &str, source: &str| {
        let spec = FunctionSpec::new("f", file, source);
        JsPool::start(vec![spec], &options())
            .err()
            .expect("the load fails")
            .to_string()
    };
    let error = load("index.js", cjs);
    assert!(
        error.contains("modules not available: 'readline', 'node:dns', 'aws-sdk' ("),
        "{error}"
    );
    let esm = "import { lookup } from 'dns';\nimport zlib from 'node:readline';\nimport { join } from 'path';\nexport const handler = async (e) => e.Records[0].cf.request;";
    let error = load("index.mjs", esm);
    assert!(
        error.contains("modules not available: 'dns', 'node:readline' ("),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn url_legacy_api_behaves_as_on_node() {
    let probe = r#"
async function probe() {
  const url = require('url');
  const plain = (o) => JSON.parse(JSON.stringify(o));
  return [
    plain(url.parse('https://user:pw@Example.COM:8443/a/b/../c?x=1&y=%20z#frag')),
    plain(url.parse('/path/page.html?utm=1&utm=2&q=a+b', true).query),
    plain(url.parse('/only/a/path')),
    plain(url.parse('//cdn.example.com/x.js', false, true)),
    url.format({ protocol: 'https', hostname: 'example.com', pathname: '/a b', query: { q: 'x y', n: 1 } }),
    url.format(url.parse('http://example.com:80/x?y=1')),
    url.resolve('/one/two/three', 'four'), url.resolve('http://example.com/', '/one'),
    url.resolve('http://example.com/one', '../two'),
    typeof url.URL, new url.URL('https://example.com/p?q=1').searchParams.get('q'),
  ];
}"#;
    let (node, here) = in_node_and_here(probe).await;
    assert_eq!(here, node);
}

#[tokio::test(flavor = "multi_thread")]
async fn crypto_random_int_behaves_as_on_node() {
    let probe = r#"
async function probe() {
  const { randomInt } = require('crypto');
  const attempt = (f) => { try { return f(); } catch (e) { return [e.name, e.code, e.message]; } };
  const draws = Array.from({ length: 2000 }, () => randomInt(3, 9));
  const seen = [...new Set(draws)].sort();
  const single = Array.from({ length: 200 }, () => randomInt(2)).every((n) => n === 0 || n === 1);
  const later = await new Promise((resolve) => randomInt(10, (err, n) => resolve([err, n >= 0 && n < 10])));
  return [seen, single, later, randomInt(-5, -4),
    attempt(() => randomInt(5, 5)), attempt(() => randomInt(0, 2 ** 48 + 1)),
    attempt(() => randomInt('7')), attempt(() => randomInt(1.5)), attempt(() => randomInt(0, Infinity))];
}"#;
    let (node, here) = in_node_and_here(probe).await;
    assert_eq!(here, node);
}

#[tokio::test(flavor = "multi_thread")]
async fn util_behaves_as_on_node() {
    let probe = r#"
async function probe() {
  const util = require('util');
  const out = [];
  out.push(util.format('%s=%d (%i) %j %%', 'n', 42.5, 42.5, { a: [1, 'x'] }), util.format('a', 1, 'b'));
  out.push(util.inspect({ a: 1, b: 'two', c: [1, 2, { d: null }], e: undefined }), util.inspect('str'));
  out.push(util.format('%s %s %s %d %i %f', 5n, -0, [1, 2], '0x10', '42.9px', '1.5e1'), util.format('%c%s', 'css', 'x', { y: 1 }, 'z'));
  out.push(util.format({ a: 1 }, 'b'), util.format('%s', { toString() { return 'custom'; } }), util.format('%o', 'str'));
  out.push(util.inspect(null), util.inspect(/x/g));
  function Base() {}
  Base.prototype.hello = function () { return 'hello'; };
  function Derived() { Base.call(this); }
  util.inherits(Derived, Base);
  out.push(new Derived().hello(), Derived.super_ === Base);
  const legacy = (x, cb) => setTimeout(() => (x < 0 ? cb(new Error('negative')) : cb(null, x * 2)), 0);
  const modern = util.promisify(legacy);
  out.push(await modern(21), await modern(-1).catch((e) => e.message));
  const back = util.callbackify(async (x) => x + 1);
  out.push(await new Promise((resolve) => back(1, (err, v) => resolve([err, v]))));
  out.push(util.types.isPromise(Promise.resolve()), util.types.isDate(new Date()), util.types.isRegExp(/x/), util.isArray([]));
  out.push(typeof util.deprecate(() => 1, 'old'), typeof util.TextEncoder, util.inspect({ nested: { deeper: { deepest: { gone: 1 } } } }));
  out.push(util.inspect(new Map([[1, { a: [1, 2, { b: 3 }] }]])), util.inspect(new Set([1, 'a'])), util.inspect(10n), util.inspect(new Date(0)));
  out.push(util.inspect([1, , 3]), util.inspect(Buffer.from('ab')), util.inspect(Buffer.alloc(60, 1)), util.inspect(Buffer.alloc(0)), util.inspect(Symbol('s')), util.inspect(function foo() {}), util.inspect(class A {}));
  out.push(util.inspect(-0), util.inspect(Object.create(null)), util.inspect(new Uint8Array(3)), util.inspect(new Error('boom')).split('\n')[0]);
  out.push(util.inspect({ a: 'x'.repeat(100), b: [1, 2, 3] }, { depth: 0 }), util.inspect('x', { colors: true }), util.format('%o', [1, { a: 2 }]));
  out.push(util.inspect(Array.from({ length: 120 }, (_, i) => i)).length, util.inspect({ s: new Set([[1, 2]]), m: new Map([['k', new Map()]]) }, { depth: 4 }));
  return out;
}"#;
    let (node, here) = in_node_and_here(probe).await;
    assert_eq!(here, node);
}

#[tokio::test(flavor = "multi_thread")]
async fn os_timers_and_tty_behave_as_on_node() {
    let probe = r#"
async function probe() {
  const os = require('os');
  const timers = require('node:timers');
  const { setTimeout: sleep, setImmediate: soon } = require('timers/promises');
  const tty = require('tty');
  const kinds = Object.fromEntries(
    ['EOL', 'platform', 'type', 'arch', 'endianness', 'tmpdir', 'homedir', 'hostname', 'release', 'uptime', 'loadavg',
     'totalmem', 'freemem', 'cpus', 'networkInterfaces', 'userInfo'].map((k) => [k, typeof os[k]]));
  const order = [];
  await new Promise((resolve) => {
    timers.setTimeout(() => order.push('timeout'), 1);
    const cleared = timers.setTimeout(() => order.push('cleared'), 0);
    timers.clearTimeout(cleared);
    timers.setTimeout(resolve, 20);
  });
  return [kinds, os.EOL, os.platform(), os.type(), os.endianness(), os.tmpdir(), Array.isArray(os.loadavg()),
    typeof os.userInfo().username, order, await sleep(5, 'slept'), await soon('soon'), tty.isatty(1)];
}"#;
    let (node, here) = in_node_and_here(probe).await;
    assert_eq!(here, node);
}

/// Writes `files` (path, content) under `dir`.
fn write_tree(dir: &std::path::Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
}

/// The minimal viewer-request event the Node driver gets (the one `viewer_request()` makes).
const NODE_EVENT: &str = r#"{"Records":[{"cf":{"config":{"distributionDomainName":"d111111abcdef8.cloudfront.net","distributionId":"EDFDVBD6EXAMPLE","eventType":"viewer-request","requestId":"id"},"request":{"clientIp":"203.0.113.178","headers":{"host":[{"key":"Host","value":"example.org"}]},"method":"GET","querystring":"","uri":"/"}}}]}"#;

/// Runs the package in `dir` (handler `handler`, layers in `layers`, each a directory holding
/// `nodejs/node_modules`) in Node.js 20 through tests/node/lambda-edge.mjs and in edgehook;
/// returns the JSON each put in the `x-probe` header (Node's first).
async fn package_in_node_and_here(
    dir: &std::path::Path,
    handler: &str,
    layers: &[&std::path::Path],
) -> (serde_json::Value, serde_json::Value) {
    let event = dir.join("..").join("event.json");
    std::fs::write(&event, NODE_EVENT).unwrap();
    let node_path: Vec<String> = layers
        .iter()
        .map(|l| l.join("nodejs/node_modules").display().to_string())
        .collect();
    let node = std::process::Command::new("node")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node/lambda-edge.mjs"))
        .arg(dir)
        .arg(handler)
        .arg(&event)
        .env("NODE_PATH", node_path.join(":"))
        .output()
        .expect("Node.js (`node`, installed by scripts/setup) runs");
    let answer: serde_json::Value = serde_json::from_slice(&node.stdout).unwrap_or_else(|_| {
        panic!(
            "node: {} {}",
            String::from_utf8_lossy(&node.stdout),
            String::from_utf8_lossy(&node.stderr)
        )
    });
    let probe = |value: &str| -> serde_json::Value {
        serde_json::from_slice(&crate::js::ops::base64_decode_lenient(value)).expect("the probe returned JSON")
    };
    let node = probe(
        answer["result"]["headers"]["x-probe"][0]["value"]
            .as_str()
            .unwrap_or_else(|| panic!("node answered {answer}")),
    );
    let limits = crate::package::Limits::ORIGIN;
    let package = std::sync::Arc::new(crate::package::Package::from_dir(dir, limits).unwrap());
    let layers = layers
        .iter()
        .map(|l| std::sync::Arc::new(crate::package::Package::from_dir(l, limits).unwrap()))
        .collect();
    let spec = FunctionSpec::packaged("f", crate::package::CodeTree::new(package, layers), handler);
    let pool = pool(vec![spec]);
    let outcome = pool.invoke("f", &viewer_request()).await.expect("the package runs");
    (node, probe(&header(&outcome, "x-probe")))
}

/// A deployment package as Lambda runs one: ES modules importing CommonJS (named exports as
/// Node finds them), `exports` conditions, `main`, nested `node_modules`, JSON modules,
/// `createRequire`, `import.meta`, `__dirname`, files read with `fs`, a writable `/tmp`, a
/// layer's `nodejs/node_modules`, and Node's errors; compared with Node.js 20 running it.
#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_package_loads_and_reads_its_files_as_on_node() {
    let root = tempfile::tempdir().unwrap();
    let (task, layer) = (root.path().join("task"), root.path().join("layer"));
    write_tree(
        &task,
        &[
            ("index.mjs", include_str!("../../tests/data/package/index.mjs")),
            ("lib/helper.cjs", "const path = require('path');\nexports.where = __dirname;\nexports.filename = __filename;\nmodule.exports.base = path.basename(__filename);\nObject.defineProperty(exports, 'defined', { enumerable: true, value: 1 });\n"),
            ("lib/later.mjs", "export const later = 'later';\n"),
            ("lib/index.js", "module.exports = 'a directory';\n"),
            ("data/config.json", "{\"redirects\": {\"/old\": \"/new\"}}\n"),
            ("data/text.txt", "hello from a data file\n"),
            ("node_modules/dual/package.json", r#"{"name": "dual", "exports": {".": {"import": "./esm.mjs", "require": "./cjs.cjs"}}}"#),
            ("node_modules/dual/esm.mjs", "export const kind = 'esm';\nexport default 'dual as ESM';\n"),
            ("node_modules/dual/cjs.cjs", "module.exports = { kind: 'cjs' };\n"),
            ("node_modules/legacy/package.json", r#"{"main": "lib/main"}"#),
            ("node_modules/legacy/lib/main.js", "const inner = require('inner');\nmodule.exports = { legacy: true, inner, dir: __dirname };\n"),
            ("node_modules/legacy/node_modules/inner/index.js", "module.exports = 'the nested inner';\n"),
        ],
    );
    write_tree(
        &layer,
        &[(
            "nodejs/node_modules/layered/index.js",
            "module.exports = { fromLayer: true, dir: __dirname };\n",
        )],
    );
    let (node, here) = package_in_node_and_here(&task, "index.handler", &[&layer]).await;
    assert_eq!(here, node);
    // What the comparison covers, so an empty probe cannot pass.
    assert_eq!(here["json"], "/new", "{here:#}");
    assert_eq!(here["layered"][0], true, "{here:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_behaves_as_on_node() {
    let probe = r#"
async function probe() {
  const { Readable, Writable, Transform, PassThrough, Duplex, pipeline, finished } = require('stream');
  const { pipeline: pipelinePromise } = require('stream/promises');
  const { EventEmitter } = require('events');
  const out = {};
  out.classes = [new PassThrough() instanceof EventEmitter, new PassThrough() instanceof Duplex, new Transform() instanceof Duplex, typeof Readable.from];
  const upper = () => new Transform({ transform(chunk, encoding, done) { done(null, chunk.toString().toUpperCase()); } });
  const chunks = [];
  const sink = new Writable({ write(chunk, encoding, done) { chunks.push(chunk.toString()); done(); } });
  await pipelinePromise(Readable.from(['a', 'b', 'c']), upper(), sink);
  out.piped = chunks;
  out.collected = await new Promise((resolve, reject) => {
    const parts = [];
    const source = new Readable({ read() {} });
    source.on('data', (d) => parts.push(Buffer.isBuffer(d) ? 'buffer:' + d.toString() : d));
    source.on('end', () => resolve(parts));
    source.on('error', reject);
    source.push('one');
    source.push(Buffer.from('two'));
    source.push(null);
  });
  out.objectMode = [];
  for await (const item of Readable.from([{ n: 1 }, { n: 2 }])) out.objectMode.push(item.n);
  out.callbackPipeline = await new Promise((resolve) => {
    pipeline(Readable.from(['x']), new Writable({ write(c, e, done) { done(new Error('sink failed')); } }), (error) => resolve([error.message]));
  });
  out.finished = await new Promise((resolve) => {
    const p = new PassThrough();
    finished(p, (error) => resolve(error ? error.code : 'done'));
    p.resume();
    p.end('x');
  });
  out.destroyed = await new Promise((resolve) => {
    const r = new Readable({ read() {} });
    r.on('error', (e) => resolve([e.message, r.destroyed]));
    r.destroy(new Error('gone'));
  });
  const w = new Writable({ write(c, e, done) { done(); } });
  w.end();
  out.writeAfterEnd = await new Promise((resolve) => { w.on('error', (e) => resolve(e.code)); w.write('late'); });
  out.highWaterMark = [new Readable().readableHighWaterMark, new Writable().writableHighWaterMark, new Readable({ objectMode: true }).readableHighWaterMark];
  return out;
}"#;
    let (node, here) = in_node_and_here(probe).await;
    assert_eq!(here, node);
}

#[tokio::test(flavor = "multi_thread")]
async fn assert_behaves_as_on_node() {
    let probe = r#"
async function probe() {
  const assert = require('assert');
  const strict = require('assert/strict');
  const failure = (f) => { try { f(); return 'passed'; } catch (e) { return [e.name, e.code, e.operator, e.generatedMessage, e instanceof assert.AssertionError]; } };
  const out = {};
  // (Node's message for a falsy `assert.ok` quotes the call's source; the package's does not.)
  out.ok = [failure(() => assert(true)), failure(() => assert.ok(0)).slice(0, 3), failure(() => assert(false, 'mine'))];
  out.equal = [failure(() => assert.equal(1, '1')), failure(() => assert.strictEqual(1, '1')), failure(() => assert.notStrictEqual(1, 2))];
  out.deep = [
    failure(() => assert.deepEqual({ a: [1, 2] }, { a: [1, '2'] })),
    failure(() => assert.deepStrictEqual({ a: [1, 2] }, { a: [1, '2'] })),
    failure(() => assert.deepStrictEqual(new Map([[1, { x: 1 }]]), new Map([[1, { x: 1 }]]))),
    failure(() => assert.deepStrictEqual(new Set([1]), new Set([2]))),
    failure(() => assert.deepStrictEqual(Buffer.from('a'), Buffer.from('a'))),
    failure(() => strict.deepEqual([1], ['1'])),
  ];
  out.throws = [
    failure(() => assert.throws(() => { throw new TypeError('bad'); }, TypeError)),
    failure(() => assert.throws(() => {})),
    failure(() => assert.throws(() => { throw new Error('text'); }, /text/)),
    failure(() => assert.doesNotThrow(() => { throw new Error('x'); })),
  ];
  out.rejects = await assert.rejects(Promise.reject(new Error('no')), /no/).then(() => 'passed');
  out.match = [failure(() => assert.match('abc', /b/)), failure(() => assert.match('abc', /z/))];
  out.fail = failure(() => assert.fail('boom'));
  out.ifError = [failure(() => assert.ifError(null)), failure(() => assert.ifError(new Error('e')))];
  // (Node 20 adds the values' diff after a custom message; the package gives the message alone.)
  out.message = (() => { try { assert.strictEqual(1, 2, 'custom message'); } catch (e) { return e.message.split('\n')[0]; } })();
  out.same = strict === assert.strict;
  return out;
}"#;
    let (node, here) = in_node_and_here(probe).await;
    assert_eq!(here, node);
}

/// zlib: each side inflates the other's output to the same bytes (Node's own zlib writes other
/// bytes than any other at the same level), gzip headers match, and the forms and errors are
/// Node's.
#[tokio::test(flavor = "multi_thread")]
async fn zlib_interoperates_with_node() {
    const TEXT: &str =
        "const text = Array.from({ length: 300 }, (_, i) => `line ${i}: edgehook compresses like Node`).join('\\n');";
    let from_node = node_script(&format!(
        "const zlib = require('zlib'); {TEXT} console.log(JSON.stringify(Object.fromEntries(['gzip', 'deflate', 'deflateRaw', 'brotliCompress'].map((m) => [m, zlib[m + 'Sync'](text).toString('base64')]))))"
    ));
    let probe = format!(
        r#"
const NODE = {from_node};
{TEXT}
async function probe() {{
  const zlib = require('zlib');
  const {{ promisify }} = require('util');
  const out = {{}};
  out.inflated = [
    zlib.gunzipSync(Buffer.from(NODE.gzip, 'base64')).toString() === text,
    zlib.inflateSync(Buffer.from(NODE.deflate, 'base64')).toString() === text,
    zlib.inflateRawSync(Buffer.from(NODE.deflateRaw, 'base64')).toString() === text,
    zlib.brotliDecompressSync(Buffer.from(NODE.brotliCompress, 'base64')).toString() === text,
    zlib.unzipSync(Buffer.from(NODE.gzip, 'base64')).length,
  ];
  out.gzipHeader = zlib.gzipSync('x').subarray(0, 10).toString('hex');
  out.roundTrips = ['deflate', 'gzip', 'deflateRaw', 'brotliCompress'].map((m) => {{
    const back = {{ deflate: 'inflate', gzip: 'gunzip', deflateRaw: 'inflateRaw', brotliCompress: 'brotliDecompress' }}[m];
    return zlib[back + 'Sync'](zlib[m + 'Sync'](text, m === 'brotliCompress' ? {{}} : {{ level: 9 }})).toString() === text;
  }});
  out.callback = await new Promise((resolve) => zlib.gzip(text, (error, packed) => resolve([error, zlib.gunzipSync(packed).length])));
  out.promisified = (await promisify(zlib.inflate)(zlib.deflateSync('abc'))).toString();
  out.stream = await new Promise((resolve, reject) => {{
    const parts = [];
    const gunzip = zlib.createGunzip();
    gunzip.on('data', (d) => parts.push(d));
    gunzip.on('end', () => resolve(Buffer.concat(parts).toString() === text));
    gunzip.on('error', reject);
    const gzip = zlib.createGzip();
    gzip.pipe(gunzip);
    gzip.write(text.slice(0, 100));
    gzip.end(text.slice(100));
  }});
  const failure = (f) => {{ try {{ f(); return 'no error'; }} catch (e) {{ return [e.name, e.code, e.errno ?? null, e.message]; }} }};
  const deflated = zlib.deflateSync(text);
  out.errors = [
    failure(() => zlib.inflateSync(Buffer.from('not zlib at all'))),
    failure(() => zlib.gunzipSync(Buffer.from('not gzip at all'))),
    failure(() => zlib.inflateSync(deflated.subarray(0, 20))),
    failure(() => zlib.inflateSync(deflated, {{ maxOutputLength: 10 }}))[1],
    failure(() => zlib.deflateSync(42))[1],
    failure(() => zlib.deflateSync('x', {{ level: 12 }}))[1],
  ];
  out.ours = Object.fromEntries(['gzip', 'deflate', 'deflateRaw', 'brotliCompress'].map((m) => [m, zlib[m + 'Sync'](text).toString('base64')]));
  return out;
}}"#
    );
    let (mut node, mut here) = in_node_and_here(&probe).await;
    let ours = here["ours"].take();
    node["ours"].take();
    assert_eq!(here, node);
    assert_eq!(here["inflated"][0], true, "{here:#}");
    // Node inflates edgehook's output to the text.
    let checked = node_script(&format!(
        "const zlib = require('zlib'); {TEXT} const ours = {ours}; console.log([zlib.gunzipSync(Buffer.from(ours.gzip, 'base64')), zlib.inflateSync(Buffer.from(ours.deflate, 'base64')), zlib.inflateRawSync(Buffer.from(ours.deflateRaw, 'base64')), zlib.brotliDecompressSync(Buffer.from(ours.brotliCompress, 'base64'))].every((b) => b.toString() === text))"
    ));
    assert_eq!(checked.trim(), "true");
}

/// Keys and signatures: keys Node made, in every format, read here as Node reads them;
/// Node's signatures verify here, edgehook's verify in Node (RSA PKCS#1 v1.5 and Ed25519
/// signatures are the same bytes); PBKDF2 and scrypt give Node's bytes.
#[tokio::test(flavor = "multi_thread")]
async fn keys_and_signatures_interoperate_with_node() {
    let made = node_script(
        r#"
const crypto = require('crypto');
const pairs = {
  rsa: crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }),
  p256: crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  p384: crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }),
  ed25519: crypto.generateKeyPairSync('ed25519'),
};
const keys = {};
const data = Buffer.from('header.payload');
for (const [name, { publicKey, privateKey }] of Object.entries(pairs)) {
  const digest = name === 'ed25519' ? null : name === 'p384' ? 'sha384' : 'sha256';
  keys[name] = {
    spki: publicKey.export({ format: 'pem', type: 'spki' }),
    spkiDer: publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
    jwk: publicKey.export({ format: 'jwk' }),
    pkcs8: privateKey.export({ format: 'pem', type: 'pkcs8' }),
    privateJwk: privateKey.export({ format: 'jwk' }),
    other: name === 'rsa' ? privateKey.export({ format: 'pem', type: 'pkcs1' }) : name.startsWith('p') ? privateKey.export({ format: 'pem', type: 'sec1' }) : null,
    signature: crypto.sign(digest, data, privateKey).toString('base64'),
    p1363: name.startsWith('p') ? crypto.sign(digest, data, { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64') : null,
    pss: name === 'rsa' ? crypto.sign('sha256', data, { key: privateKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: crypto.constants.RSA_PSS_SALTLEN_DIGEST }).toString('base64') : null,
  };
}
console.log(JSON.stringify(keys));
"#,
    );
    let probe = format!(
        r#"
const KEYS = {made};
async function probe() {{
  const crypto = require('crypto');
  const data = Buffer.from('header.payload');
  const out = {{}};
  const failure = (f) => {{ try {{ f(); return 'no error'; }} catch (e) {{ return [e.name, e.code]; }} }};
  for (const [name, k] of Object.entries(KEYS)) {{
    const digest = name === 'ed25519' ? null : name === 'p384' ? 'sha384' : 'sha256';
    const publicKey = crypto.createPublicKey(k.spki);
    const privateKey = crypto.createPrivateKey(k.pkcs8);
    const details = publicKey.asymmetricKeyDetails;
    if (details.publicExponent !== undefined) details.publicExponent = String(details.publicExponent);
    const forms = [
      crypto.createPublicKey({{ key: Buffer.from(k.spkiDer, 'base64'), format: 'der', type: 'spki' }}),
      crypto.createPublicKey({{ key: k.jwk, format: 'jwk' }}),
      crypto.createPublicKey(k.pkcs8),
      crypto.createPublicKey(privateKey),
      crypto.createPrivateKey({{ key: k.privateJwk, format: 'jwk' }}),
    ];
    if (k.other) forms.push(crypto.createPrivateKey(k.other));
    const verify = (sig, options = {{}}) => crypto.verify(digest, data, {{ key: publicKey, ...options }}, Buffer.from(sig, 'base64'));
    out[name] = {{
      type: [publicKey.type, privateKey.type, publicKey.asymmetricKeyType, privateKey.asymmetricKeyType, details],
      sameKey: forms.map((f) => (f.type === 'public' ? f : crypto.createPublicKey(f)).equals(publicKey)),
      spki: publicKey.export({{ format: 'pem', type: 'spki' }}) === k.spki,
      jwk: JSON.stringify(publicKey.export({{ format: 'jwk' }})),
      pkcs8: privateKey.export({{ format: 'pem', type: 'pkcs8' }}) === k.pkcs8,
      verifiesNode: verify(k.signature),
      tampered: crypto.verify(digest, Buffer.from('other'), publicKey, Buffer.from(k.signature, 'base64')),
      p1363: k.p1363 ? verify(k.p1363, {{ dsaEncoding: 'ieee-p1363' }}) : null,
      pss: k.pss ? verify(k.pss, {{ padding: crypto.constants.RSA_PKCS1_PSS_PADDING }}) : null,
      streaming: digest ? crypto.createVerify(digest).update('header.').update('payload').verify(k.spki, k.signature, 'base64') : null,
      deterministic: name === 'rsa' || name === 'ed25519' ? crypto.sign(digest, data, privateKey).toString('base64') === k.signature : null,
      signWithPublic: failure(() => crypto.sign(digest, data, publicKey)),
    }};
  }}
  out.garbage = failure(() => crypto.createPublicKey('not a key'));
  out.pbkdf2 = crypto.pbkdf2Sync('password', 'salt', 1000, 32, 'sha256').toString('hex');
  out.pbkdf2Callback = await new Promise((resolve) => crypto.pbkdf2('password', 'salt', 2, 20, 'sha1', (e, key) => resolve(key.toString('hex'))));
  out.scrypt = crypto.scryptSync('password', 'salt', 32, {{ N: 1024 }}).toString('hex');
  out.hmacWithKeyObject = crypto.createHmac('sha256', crypto.createSecretKey(Buffer.from('key'))).update('x').digest('hex');
  out.ours = Object.fromEntries(Object.entries(KEYS).map(([name, k]) => {{
    const digest = name === 'ed25519' ? null : name === 'p384' ? 'sha384' : 'sha256';
    return [name, digest ? crypto.createSign(digest).update(data).sign(k.pkcs8, 'base64') : crypto.sign(null, data, k.pkcs8).toString('base64')];
  }}));
  // Last: Node's OpenSSL keeps this failure queued and a later signature would report it.
  out.scryptLimit = failure(() => crypto.scryptSync('p', 's', 32, {{ N: 1 << 20 }}));
  return out;
}}"#
    );
    let (mut node, mut here) = in_node_and_here(&probe).await;
    let ours = here["ours"].take();
    node["ours"].take();
    assert_eq!(here, node);
    assert_eq!(here["rsa"]["verifiesNode"], true, "{here:#}");
    // Node verifies edgehook's signatures.
    let checked = node_script(&format!(
        "const crypto = require('crypto'); const KEYS = {made}; const ours = {ours}; const data = Buffer.from('header.payload'); console.log(Object.entries(KEYS).every(([name, k]) => crypto.verify(name === 'ed25519' ? null : name === 'p384' ? 'sha384' : 'sha256', data, k.spki, Buffer.from(ours[name], 'base64'))))"
    ));
    assert_eq!(checked.trim(), "true");
}

/// The outcome Node.js 20 gives a single-file function through tests/node/lambda-edge.mjs
/// (Lambda's runtime rules), on the minimal viewer-request event.
fn node_outcome(file_name: &str, source: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(file_name);
    std::fs::write(&file, source).unwrap();
    let event = dir.path().join("event.json");
    std::fs::write(&event, NODE_EVENT).unwrap();
    let node = std::process::Command::new("node")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node/lambda-edge.mjs"))
        .arg(&file)
        .arg("index.handler")
        .arg(&event)
        .output()
        .expect("Node.js (`node`, installed by scripts/setup) runs");
    serde_json::from_slice(&node.stdout).unwrap_or_else(|_| panic!("node: {}", String::from_utf8_lossy(&node.stderr)))
}

/// An exception no code catches (thrown in a microtask, `process.nextTick` or a timer) and a
/// rejection no code handles fail the invocation under way, as Lambda's Node.js runtime fails
/// it; the instance goes on serving. Compared with Node.js 20.
#[tokio::test(flavor = "multi_thread")]
async fn uncaught_exceptions_and_unhandled_rejections_fail_the_invocation_as_on_node() {
    let cases = [
        "exports.handler = async (e) => { queueMicrotask(() => { throw new RangeError('in a microtask'); }); return e.Records[0].cf.request; };",
        "exports.handler = (e, context, callback) => { process.nextTick(() => { throw new TypeError('in a tick'); }); };",
        "exports.handler = (e, context, callback) => { setTimeout(() => { throw new SyntaxError('in a timer'); }, 1); };",
        "exports.handler = async (e) => { Promise.reject(new Error('never handled')); await new Promise((r) => setTimeout(r, 5)); return e.Records[0].cf.request; };",
        // Node reports a rejection after the turn in which the result was given: too late.
        "exports.handler = async (e) => { Promise.reject(new Error('at once')); return e.Records[0].cf.request; };",
        // Handled rejections are not uncaught: the handler's own, and one caught a moment later.
        "exports.handler = async (e) => { const p = Promise.reject(new Error('caught')); await null; await p.catch(() => {}); throw new EvalError('its own'); };",
    ];
    for source in cases {
        let node = node_outcome("index.js", source);
        let node = match node["error"]["errorType"].as_str() {
            Some(kind) => format!("{kind}: {}", node["error"]["errorMessage"].as_str().unwrap_or_default()),
            None => format!("request {}", node["result"]["uri"].as_str().unwrap_or_default()),
        };
        let pool = pool(vec![FunctionSpec::new("f", "index.js", source)]);
        let here = match pool.invoke("f", &viewer_request_to("/")).await {
            Err(error) => format!("{}: {}", error.error_type, error.message),
            Ok(Outcome::Request(RequestOutcome::Continue { request, .. })) => format!("request {}", request.uri),
            Ok(other) => format!("{other:?}"),
        };
        assert_eq!(here, node, "{source}");
    }
    // The instance stays: the next call answers (a fresh one would be no proof).
    let source = "let calls = 0;\nexports.handler = async (e) => { calls += 1; const r = e.Records[0].cf.request; if (calls === 1) { queueMicrotask(() => { throw new Error('first'); }); } else { await new Promise((done) => setTimeout(done, 1)); r.uri = '/call/' + calls; } return r; };";
    let pool = pool(vec![FunctionSpec::new("f", "index.js", source)]);
    assert_eq!(pool.invoke("f", &viewer_request()).await.unwrap_err().message, "first");
    assert_eq!(uri(pool.invoke("f", &viewer_request()).await), "/call/2");
}

/// `util.isDeepStrictEqual` answers as Node 20's does, case by case.
#[tokio::test(flavor = "multi_thread")]
async fn is_deep_strict_equal_answers_as_node() {
    let source = r#"
const { isDeepStrictEqual } = require('node:util');
exports.handler = async (e) => {
  const r = e.Records[0].cf.request;
  const cycle = { a: 1 }; cycle.self = cycle;
  const cycle2 = { a: 1 }; cycle2.self = cycle2;
  const pairs = [
    [{ a: [1, 2, { b: 3 }] }, { a: [1, 2, { b: 3 }] }], [{ a: 1 }, { a: '1' }], [1, '1'], [NaN, NaN], [0, -0],
    [[1, 2], [2, 1]], [new Map([[1, { x: 1 }]]), new Map([[1, { x: 1 }]])], [new Set([1, 2]), new Set([2, 1])],
    [new Date(5), new Date(5)], [new Date(5), new Date(6)], [/a/g, /a/g], [/a/g, /a/i], [Buffer.from('ab'), Buffer.from('ab')],
    [new Uint8Array([1]), Buffer.from([1])], [Object.create(null), {}], [{ a: undefined }, {}], [[1, , 3], [1, undefined, 3]],
    [cycle, cycle2], [new Error('x'), new Error('x')], [Symbol.for('s'), Symbol.for('s')], [{ [Symbol.for('k')]: 1 }, {}],
    [new Number(1), new Number(1)], [new String('a'), 'a'], [[1, 2, 3], { 0: 1, 1: 2, 2: 3, length: 3 }],
  ];
  r.headers['x-probe'] = [{ value: Buffer.from(JSON.stringify(pairs.map(([a, b]) => isDeepStrictEqual(a, b)))).toString('base64') }];
  return r;
};"#;
    let node = node_outcome("index.js", source);
    let node = node["result"]["headers"]["x-probe"][0]["value"]
        .as_str()
        .unwrap_or_else(|| panic!("node: {node}"))
        .to_string();
    let here = header(&run_file("index.js", source).await.unwrap(), "x-probe");
    let decode = |text: &str| String::from_utf8(crate::js::ops::base64_decode_lenient(text)).unwrap();
    assert_eq!(decode(&here), decode(&node));
}
