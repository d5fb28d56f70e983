//! A corpus of hostile functions run against the real binary: many functions share each JS
//! thread, and the corpus runs again after a reload rebuilt every instance (so the isolates on
//! a thread are interleaved differently). Every call gets the answer its function deserves; the
//! functions beside it keep working; afterwards the process is alive, `/healthz` is ok, no JS
//! thread is stuck or crashed and the idle process uses no CPU.

use crate::support::*;
use std::time::Duration;

/// What a hostile call must get.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// The function passes the request on: the origin answers 200.
    Origin,
    /// 503 `LambdaExecutionError`.
    Execution,
    /// 502 `LambdaValidationError`.
    Validation,
    /// Either function error: the result may fail while it is read (an execution error) or
    /// when it is checked (a validation error), as on Lambda.
    Failure,
}

/// A proxy whose every trap throws another such proxy.
const TRAPS: &str = "const traps = () => new Proxy({}, new Proxy({}, { get() { return () => { throw traps(); }; } }));";

/// (name, module source, what its call gets)
fn corpus() -> Vec<(&'static str, String, Expect)> {
    let pass = "return event.Records[0].cf.request;";
    let handler = |body: &str| format!("{TRAPS}\nexport const handler = async (event) => {{ {body} }};");
    let callback = |body: &str| format!("{TRAPS}\nexport const handler = (event, context, callback) => {{ {body} }};");
    use Expect::*;
    vec![
        // Dynamic imports, failing and succeeding.
        ("import_failed", handler(&format!("try {{ await import('node:dns'); }} catch {{}} {pass}")), Origin),
        ("import_odd", handler(&format!("for (const s of ['', './x.js', 'data:text/javascript,export default 1', 'file:///etc/passwd', 'ext:core/ops', 'node:child_process']) {{ try {{ await import(s); }} catch {{}} }} {pass}")), Origin),
        ("import_builtin", handler(&format!("const c = await import('node:crypto'); if (typeof c.createHash !== 'function') throw new Error('no crypto'); {pass}")), Origin),
        ("import_uncaught", handler("await import('node:dns');"), Execution),
        // Throwing every kind of value.
        ("throw_proxy", handler("throw new Proxy({}, { getPrototypeOf() { throw new Error('x'); } });"), Execution),
        ("throw_all_traps", handler("throw traps();"), Execution),
        ("throw_getters", handler("throw Object.create(Error.prototype, { message: { get() { throw traps(); } }, stack: { get() { throw traps(); } }, name: { get() { throw traps(); } }, constructor: { get() { throw traps(); } } });"), Execution),
        ("throw_symbol", handler("throw Symbol('s');"), Execution),
        ("throw_frozen", handler("throw Object.freeze(Object.assign(new Error('frozen'), { extra: 1 }));"), Execution),
        ("throw_revoked", handler("const { proxy, revoke } = Proxy.revocable({}, {}); revoke(); throw proxy;"), Execution),
        ("throw_bigint", handler("throw 10n ** 100n;"), Execution),
        ("throw_null", handler("throw null;"), Execution),
        ("throw_undefined", handler("throw undefined;"), Execution),
        ("throw_to_primitive", handler("throw { [Symbol.toPrimitive]() { throw traps(); }, toString() { throw traps(); } };"), Execution),
        ("reject_proxy", handler("return Promise.reject(traps());"), Execution),
        ("callback_proxy", callback("callback(traps());"), Execution),
        ("callback_context_trap", callback("Object.defineProperty(context, 'callbackWaitsForEmptyEventLoop', { get() { throw traps(); } }); callback(null, event.Records[0].cf.request);"), Execution),
        ("prepare_stack_trace", handler("Error.prepareStackTrace = () => { throw traps(); }; Error.captureStackTrace(traps()); throw new Error('x');"), Execution),
        ("prepare_stack_trace_proxy", handler("Error.prepareStackTrace = () => traps(); throw new Error('x');"), Execution),
        ("stack_overflow", handler("const down = (n) => down(n + 1) + 1; down(0);"), Execution),
        // Results that cannot be read or written.
        ("result_proxy", handler("return traps();"), Failure),
        ("result_then_trap", handler("return { get then() { throw traps(); } };"), Failure),
        ("result_getter", handler("const r = event.Records[0].cf.request; Object.defineProperty(r, 'uri', { get() { throw traps(); }, enumerable: true }); return r;"), Failure),
        ("result_headers_proxy", handler("const r = event.Records[0].cf.request; r.headers = new Proxy(r.headers, { ownKeys() { throw traps(); }, get() { throw traps(); } }); return r;"), Failure),
        ("result_header_list_proxy", handler("const r = event.Records[0].cf.request; r.headers.host = new Proxy(r.headers.host, { get() { throw traps(); } }); return r;"), Failure),
        ("result_entry_getter", handler("const r = event.Records[0].cf.request; Object.defineProperty(r.headers.host[0], 'value', { get() { throw traps(); }, enumerable: true }); return r;"), Failure),
        ("result_to_json_throws", handler("return { toJSON() { throw traps(); } };"), Validation),
        ("result_to_json_recurses", handler("const o = {}; o.toJSON = () => ({ inner: o }); return o;"), Validation),
        ("result_cyclic", handler("const r = event.Records[0].cf.request; r.self = r; return r;"), Validation),
        ("result_huge", handler("const r = event.Records[0].cf.request; r.uri = '/' + 'x'.repeat(1 << 20); return r;"), Validation),
        ("result_polluted", handler("Object.prototype.status = '200'; Object.prototype.uri = '/polluted'; Array.prototype.push = () => 0; return {};"), Validation),
        // Reaching past the sandbox's guards.
        ("wait_forever", handler("const wait = globalThis.__v8x_snapshot_intrinsics?.find?.((f) => f && f.name === 'wait') ?? Atomics.wait; wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);"), Execution),
        ("shadow_realm", handler("new ShadowRealm().evaluate('Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)');"), Execution),
        ("foreground_tasks", handler("for (;;) __v8xPostForegroundTask();"), Execution),
        ("waiter_registry", handler("for (let id = 0; id < 1000; id++) __v8xAtomicsCancelWaiter(id);"), Execution),
        ("endless_loop", handler("for (;;) {}"), Execution),
        ("memory_bomb", handler("const a = []; for (;;) a.push('x'.repeat(1 << 16) + a.length);"), Execution),
        // Noise that must not fail the call.
        ("unhandled_rejection", handler(&format!("Promise.reject(traps()); {pass}")), Origin),
        ("console_traps", handler(&format!("console.log(traps(), Symbol('s'), 10n); console.error(traps()); {pass}")), Origin),
    ]
}

/// A well-behaved function beside the hostile ones.
const BENIGN: &str = "export const handler = async (event) => { const r = event.Records[0].cf.request; r.headers['x-benign'] = [{ value: 'yes' }]; return r; };";

fn config(dir: &std::path::Path, origin: &Origin) -> String {
    let mut text = format!(
        "[runtime]\nthreads = 2\n[origins.app]\nurl = \"{}\"\n[[behaviors]]\npath = \"/benign\"\norigin = \"app\"\ncache = false\nviewer_request = \"benign\"\n[functions.benign]\ncode = \"{}/benign.mjs\"\n",
        origin.url(),
        dir.display()
    );
    std::fs::write(dir.join("benign.mjs"), BENIGN).unwrap();
    for (name, source, _) in corpus() {
        std::fs::write(dir.join(format!("{name}.mjs")), source).unwrap();
        text.push_str(&format!(
            "[[behaviors]]\npath = \"/{name}\"\norigin = \"app\"\ncache = false\nviewer_request = \"{name}\"\n[functions.{name}]\ncode = \"{}/{name}.mjs\"\ntimeout = \"1s\"\nmemory = \"64MiB\"\n",
            dir.display()
        ));
    }
    // The last behavior must match everything.
    text.push_str("[[behaviors]]\npath = \"*\"\norigin = \"app\"\ncache = false\n");
    text
}

/// Calls every function of the corpus, each followed by the benign one.
async fn run_corpus(edge: &Edgehook, round: &str) {
    let c = client();
    for (name, _, expect) in corpus() {
        let response = c.get(edge.url(&format!("/{name}"))).send().await;
        let response = response.unwrap_or_else(|e| panic!("{round} {name}: no answer: {e}\n{}", edge.log_text()));
        let status = response.status().as_u16();
        let x_cache = response
            .headers()
            .get("x-cache")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let execution = (503, "LambdaExecutionError from edgehook".to_string());
        let validation = (502, "LambdaValidationError from edgehook".to_string());
        let got = (status, x_cache.clone());
        let body = response.text().await.unwrap_or_default();
        let fine = match expect {
            Expect::Origin => status == 200 && body == "origin",
            Expect::Execution => got == execution,
            Expect::Validation => got == validation,
            Expect::Failure => got == execution || got == validation,
        };
        assert!(
            fine,
            "{round} {name}: expected {expect:?}, got {status} {x_cache}: {body}\n{}",
            edge.log_text()
                .lines()
                .filter(|l| l.contains(name))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let benign = c.get(edge.url("/benign")).send().await.unwrap();
        assert_eq!(benign.status(), 200, "{round}: the benign function after {name}");
    }
}

/// CPU time (user + system) the process used so far, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

async fn metric(edge: &Edgehook, name: &str) -> f64 {
    let page = edge.metrics_page().await;
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{page}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_functions_harm_nothing_but_their_own_calls() {
    let origin = Origin::start(|_| Reply::ok("origin")).await;
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_path_buf();
    let rest = config(&base, &origin);
    let edge = Edgehook::start_in(dir, "", &rest).await;
    run_corpus(&edge, "first round").await;

    // Every function's code changes: the reload rebuilds each instance on each thread, in a
    // new order.
    for (name, source, _) in corpus().into_iter().rev() {
        std::fs::write(base.join(format!("{name}.mjs")), format!("{source}\n// reloaded")).unwrap();
    }
    let reloaded = edge.reload().await;
    assert_eq!(reloaded.status(), 200, "{}", reloaded.text().await.unwrap());
    run_corpus(&edge, "after the reload").await;

    // Code that fails to load, with a value nobody can read, is refused; the rest keeps serving.
    std::fs::write(
        base.join("benign.mjs"),
        format!("{TRAPS}\nthrow traps();\nexport const handler = () => {{}};"),
    )
    .unwrap();
    let refused = edge.reload().await;
    assert_eq!(refused.status(), 400);
    let refusal = refused.text().await.unwrap();
    assert!(
        refusal.contains("`benign`") && refusal.contains("failed to load"),
        "{refusal}"
    );
    let benign = client().get(edge.url("/benign")).send().await.unwrap();
    assert_eq!(benign.status(), 200);

    let health = client().get(edge.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "{}", health.text().await.unwrap());
    assert_eq!(metric(&edge, "edgehook_js_threads_stuck").await, 0.0);
    assert_eq!(metric(&edge, "edgehook_js_threads_crashed_total").await, 0.0);

    // Idle, the process uses no CPU (a wedged thread would use a whole core).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_ticks(edge.pid());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_ticks(edge.pid()) - before;
    assert!(used <= 10, "{used} ticks of CPU in 2 s of idling");
    let log = edge.log_text();
    assert!(
        !log.contains("panicked"),
        "no thread panicked, not even one checking code:\n{log}"
    );
}

/// While a script that ignores its stop holds a JS thread that could not be replaced,
/// `/healthz` answers 503 with the reason (an orchestrator then replaces the process); once
/// the script ends, 200 again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_js_capacity_makes_the_process_unhealthy_until_it_comes_back() {
    // Each turn is one long native call (a search through 16 MiB); QuickJS looks for a stop only
    // between them, so the script runs seconds past its timeout.
    let search = "export const handler = async (event) => { const text = 'x'.repeat(16 << 20); let found = 0; for (let i = 0; i < 100; i++) found += text.indexOf('y' + i); return event.Records[0].cf.request; };";
    let origin = Origin::start(|_| Reply::ok("origin")).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("search.mjs"), search).unwrap();
    let rest = format!(
        "[runtime]\nthreads = 1\n[origins.app]\nurl = \"{}\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\ncache = false\nviewer_request = \"search\"\n[functions.search]\ncode = \"{}/search.mjs\"\ntimeout = \"200ms\"\n",
        origin.url(),
        dir.path().display()
    );
    let edge = Edgehook::start_in(dir, "", &rest).await;
    let c = client();
    let health = || async { c.get(edge.admin_url("/healthz")).send().await.unwrap() };
    assert_eq!(health().await.status(), 200);
    // The first stuck thread is replaced; the replacement gets stuck too, and with one JS
    // thread, one replacement is all there may be.
    for _ in 0..2 {
        let response = c.get(edge.url("/")).send().await.unwrap();
        assert_eq!(response.status(), 503);
    }
    let started = std::time::Instant::now();
    let unhealthy = loop {
        let response = health().await;
        if response.status() == 503 {
            break response.text().await.unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never reported unhealthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        unhealthy.contains("\"status\":\"unhealthy\"") && unhealthy.contains("could not be replaced"),
        "{unhealthy}"
    );
    while health().await.status() != 200 || metric(&edge, "edgehook_js_threads_stuck").await > 0.0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the stuck scripts never ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = c.get(edge.url("/")).send().await.unwrap();
    assert_eq!(
        response.status(),
        503,
        "the function still times out, on a thread of its own"
    );
}
