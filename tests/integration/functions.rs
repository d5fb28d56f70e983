//! `edgehook invoke`, `edgehook event`, and functions in `check` and `serve`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn edgehook(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgehook"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run edgehook");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().unwrap()
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(&output.stdout)))
}

struct Files(tempfile::TempDir);

impl Files {
    fn new() -> Files {
        Files(tempfile::tempdir().unwrap())
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }
}

fn sample_event(kind: &str, extra: &[&str]) -> String {
    let mut args = vec!["event", kind];
    args.extend_from_slice(extra);
    let out = edgehook(&args, None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `edgehook invoke` of `source` on a sample viewer-request event, both written to `files`.
fn invoke_on_viewer_request(files: &Files, source: &str) -> Command {
    let function = files.write("f.mjs", source);
    let event = files.write("event.json", &sample_event("viewer-request", &[]));
    let mut command = Command::new(env!("CARGO_BIN_EXE_edgehook"));
    command.args(["invoke", &function, "--event", &event]);
    command
}

#[test]
fn event_prints_well_formed_samples() {
    let event = sample_event(
        "viewer-request",
        &[
            "--uri",
            "/a/b",
            "--method",
            "post",
            "--querystring",
            "?x=1",
            "--header",
            "Cookie: a=b",
            "--client-ip",
            "192.0.2.9",
        ],
    );
    let value: serde_json::Value = serde_json::from_str(&event).unwrap();
    let cf = &value["Records"][0]["cf"];
    assert_eq!(cf["config"]["eventType"], "viewer-request");
    assert_eq!(cf["request"]["uri"], "/a/b");
    assert_eq!(cf["request"]["method"], "POST");
    assert_eq!(cf["request"]["querystring"], "x=1");
    assert_eq!(cf["request"]["clientIp"], "192.0.2.9");
    assert_eq!(cf["request"]["headers"]["cookie"][0]["value"], "a=b");
    assert!(cf.get("response").is_none());
    let response: serde_json::Value =
        serde_json::from_str(&sample_event("origin-response", &["--status", "404"])).unwrap();
    assert_eq!(response["Records"][0]["cf"]["response"]["status"], "404");
    assert!(response["Records"][0]["cf"]["request"]["origin"]["custom"].is_object());
    for bad in [
        vec!["event", "sideways"],
        vec!["event", "viewer-request", "--header", "no colon"],
        vec!["event", "viewer-request", "--status", "200"],
    ] {
        let out = edgehook(&bad, None);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn invoke_prints_the_validated_result_and_console_output() {
    let files = Files::new();
    let function = files.write(
        "rewrite.mjs",
        "export const handler = async (event, context) => {\n  console.log('rewriting for', context.functionName, process.env.STAGE);\n  const r = event.Records[0].cf.request;\n  r.uri = '/v2' + r.uri;\n  r.headers['x-stage'] = [{ value: process.env.STAGE }];\n  return r;\n};\n",
    );
    let event = files.write("event.json", &sample_event("viewer-request", &["--uri", "/page"]));
    let out = edgehook(&["invoke", &function, "--event", &event, "--env", "STAGE=prod"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let result = json(&out);
    assert_eq!(result["uri"], "/v2/page");
    assert_eq!(
        result["headers"]["x-stage"][0],
        serde_json::json!({"key": "X-Stage", "value": "prod"})
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rewriting for rewrite prod"), "{stderr}");

    // The event from stdin, and a handler under another name.
    let other = files.write(
        "other.js",
        "exports.main = (e, c, cb) => cb(null, { status: '302', headers: { location: [{ value: '/login' }] } });",
    );
    let text = std::fs::read_to_string(&event).unwrap();
    let out = edgehook(&["invoke", &other, "--event", "-", "--handler", "main"], Some(&text));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let generated = json(&out);
    assert_eq!(generated["status"], "302");
    assert_eq!(generated["headers"]["location"][0]["key"], "Location");
}

#[test]
fn process_stdout_and_stderr_writes_go_to_the_log() {
    let files = Files::new();
    let function = files.write(
        "streams.js",
        "exports.handler = async (e) => { process.stdout.write('to stdout\\n'); process.stderr.write(Buffer.from('to stderr')); const r = e.Records[0].cf.request; r.uri = '/' + process.stdout.isTTY + '/' + process.stderr.fd; return r; };",
    );
    let event = files.write("event.json", &sample_event("viewer-request", &["--uri", "/page"]));
    let out = edgehook(&["invoke", &function, "--event", &event], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json(&out)["uri"], "/false/2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("to stdout") && stderr.contains("to stderr"), "{stderr}");
}

#[test]
fn console_output_is_bounded_per_invocation() {
    // 4 MiB of console output; an invocation may write 256 KiB of it.
    let files = Files::new();
    let out = invoke_on_viewer_request(
        &files,
        "export const handler = async (e) => { const line = 'x'.repeat(1024); for (let i = 0; i < 4096; i++) console.log(line); return e.Records[0].cf.request; };",
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "the function still answers");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let written = stderr.bytes().filter(|&b| b == b'x').count();
    assert!(
        ((256 << 10) - 1024..=256 << 10).contains(&written),
        "{written} bytes of console output written"
    );
    assert!(stderr.contains("console output of this invocation passed 256 KiB; the rest is dropped"));
}

#[test]
fn invoke_output_to_a_closed_pipe_is_no_panic() {
    // `edgehook invoke ... | head -1`: the reader is gone before the result is written.
    let files = Files::new();
    let mut child = invoke_on_viewer_request(&files, "export const handler = async (e) => e.Records[0].cf.request;")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn functions_have_no_webassembly() {
    // The engine's WebAssembly memories escape the function's memory limit; edgehook leaves it
    // out itself (the tests' own switch for it is removed from this run).
    let files = Files::new();
    let out = invoke_on_viewer_request(
        &files,
        "export const handler = async (e) => { const r = e.Records[0].cf.request; r.uri = '/' + typeof WebAssembly + '/' + typeof globalThis.WebAssembly; return r; };",
    )
    .env_remove("QJS_NO_WASM")
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json(&out)["uri"], "/undefined/undefined");
}

#[test]
fn functions_leave_no_compiled_code_on_disk() {
    // The engine would write each compiled source under the user's cache directory; edgehook
    // turns that off itself (the tests' own switch for it is removed from this run).
    let files = Files::new();
    let home = tempfile::tempdir().unwrap();
    let out = invoke_on_viewer_request(&files, "export const handler = async (e) => e.Records[0].cf.request;")
        .env("HOME", home.path())
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .env_remove("V82JSC_NO_BC_CACHE")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let left: Vec<_> = walk(home.path());
    assert!(left.is_empty(), "files left behind: {left:?}");
}

/// Every file under `dir`, recursively.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}

#[test]
fn invoke_reports_function_failures_as_json_and_exits_1() {
    let files = Files::new();
    let event = files.write("event.json", &sample_event("viewer-request", &[]));
    let cases = [
        ("throws.js", "exports.handler = async () => { throw new TypeError('broken'); };", "TypeError", "LambdaExecutionError"),
        ("host.mjs", "export const handler = async (e) => { const r = e.Records[0].cf.request; r.headers.host = [{ value: 'x' }]; return r; };", "LambdaValidationError", "LambdaValidationError"),
        ("loop.mjs", "export const handler = async () => { while (true) {} };", "Runtime.Timeout", "LambdaExecutionError"),
        ("syntax.mjs", "export const handler = async () => {", "Runtime.LoadError", ""),
    ];
    for (name, source, error_type, failure) in cases {
        let function = files.write(name, source);
        let out = edgehook(&["invoke", &function, "--event", &event, "--timeout", "300ms"], None);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let error = json(&out);
        assert_eq!(error["errorType"], error_type, "{name}: {error}");
        assert!(
            error["errorMessage"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}: {error}"
        );
        if !failure.is_empty() {
            assert_eq!(error["failure"], failure, "{name}");
        }
    }
}

#[test]
fn invoke_usage_errors_exit_2() {
    let files = Files::new();
    let function = files.write("f.mjs", "export const handler = async (e) => e.Records[0].cf.request;");
    let event = files.write("event.json", &sample_event("viewer-request", &[]));
    let not_json = files.write("bad.json", "{ not json");
    let cases: Vec<Vec<&str>> = vec![
        vec!["invoke", "/nonexistent.js", "--event", &event],
        vec!["invoke", &function, "--event", "/nonexistent.json"],
        vec!["invoke", &function, "--event", &not_json],
        vec!["invoke", &function, "--event", &event, "--event-type", "sideways"],
        vec![
            "invoke",
            &function,
            "--event",
            &event,
            "--event-type",
            "viewer-response",
        ],
        vec!["invoke", &function, "--event", &event, "--timeout", "soon"],
        vec!["invoke", &function, "--event", &event, "--env", "NOEQUALS"],
        vec!["invoke", &function],
    ];
    for args in cases {
        let out = edgehook(&args, None);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn invoke_takes_the_event_type_from_the_event_or_the_flag() {
    let files = Files::new();
    let function = files.write(
        "type.mjs",
        "export const handler = async (e) => { const r = e.Records[0].cf.request; r.uri = '/' + e.Records[0].cf.config.eventType; return r; };",
    );
    let event = files.write("event.json", &sample_event("origin-request", &[]));
    let out = edgehook(&["invoke", &function, "--event", &event], None);
    assert_eq!(json(&out)["uri"], "/origin-request");
    let viewer = files.write("viewer.json", &sample_event("viewer-request", &[]));
    let out = edgehook(
        &[
            "invoke",
            &function,
            "--event",
            &viewer,
            "--event-type",
            "origin-request",
        ],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json(&out)["uri"], "/origin-request");
}

#[test]
fn check_and_serve_refuse_functions_that_do_not_load() {
    let files = Files::new();
    files.write(
        "good.mjs",
        "export const handler = async (e) => e.Records[0].cf.request;",
    );
    files.write("broken.mjs", "export const handler = async (e) => {");
    files.write("nohandler.cjs", "exports.other = () => {};");
    let config = files.write(
        "edgehook.toml",
        &format!(
            "[origins.app]\nurl = \"http://127.0.0.1:9\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n\
             [functions.good]\ncode = \"{d}/good.mjs\"\n[functions.broken]\ncode = \"{d}/broken.mjs\"\n\
             [functions.nohandler]\ncode = \"{d}/nohandler.cjs\"\n",
            d = files.0.path().display()
        ),
    );
    let out = edgehook(&["check", "--config", &config], None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`functions.broken.code`") && stderr.contains("failed to load"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`functions.nohandler.code`") && stderr.contains("does not export a handler named `handler`"),
        "{stderr}"
    );
    assert!(!stderr.contains("functions.good"), "{stderr}");
    assert!(stderr.contains("2 problem(s)"), "{stderr}");
    let out = edgehook(&["serve", "--config", &config], None);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("failed to load"));
}

#[tokio::test]
async fn serve_warms_its_functions_before_serving() {
    let files = Files::new();
    files.write("f.mjs", "export const handler = async (e) => e.Records[0].cf.request;");
    let rest = format!(
        "[origins.app]\nurl = \"http://127.0.0.1:9\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n[runtime]\nthreads = 2\n[functions.f]\ncode = \"{}/f.mjs\"\n",
        files.0.path().display()
    );
    let edge = crate::support::Edgehook::start(&rest).await;
    edge.wait_log("functions loaded").await;
}

#[test]
fn the_security_headers_example_runs() {
    let files = Files::new();
    let event = files.write("event.json", &sample_event("viewer-response", &[]));
    let out = edgehook(
        &[
            "invoke",
            "examples/security-headers/viewer-response.mjs",
            "--event",
            &event,
        ],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let response = json(&out);
    assert_eq!(response["status"], "200");
    assert_eq!(response["headers"]["x-frame-options"][0]["value"], "DENY");
    assert!(response["headers"]["strict-transport-security"][0]["value"]
        .as_str()
        .unwrap()
        .starts_with("max-age="));
}
