//! The compatibility corpus: real public Lambda@Edge functions (tests/corpus/cases.json names
//! each by repository, commit and path, with the event it is given) run under Node.js 20
//! through tests/node/lambda-edge.mjs and under `edgehook invoke`; their outcomes must agree.
//! The functions' code is not in this repository: tests/corpus/README.md says how to bring it
//! to tests/corpus/sources/. Where it is absent, the test says it was skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    repo: String,
    commit: String,
    handler: String,
    /// The events it is given, one run each.
    events: Vec<EventSpec>,
    #[serde(default)]
    env: Vec<String>,
    /// npm packages given to it as a layer (tests/corpus/sources/<name>.layer).
    #[serde(default)]
    layer_npm: Vec<String>,
    /// Headers whose values are random (a nonce, a PKCE challenge), compared by presence.
    #[serde(default)]
    random: Vec<String>,
    /// Why the outcomes still differ, for a case that is known to.
    #[serde(default)]
    differs: Option<String>,
}

#[derive(serde::Deserialize)]
struct EventSpec {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    querystring: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: Vec<String>,
    #[serde(default)]
    status: Option<String>,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn edgehook() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edgehook"))
}

fn event_json(spec: &EventSpec) -> String {
    let mut command = edgehook();
    command.args(["event", &spec.kind]);
    for (flag, value) in [
        ("--uri", &spec.uri),
        ("--querystring", &spec.querystring),
        ("--method", &spec.method),
        ("--status", &spec.status),
    ] {
        if let Some(value) = value {
            command.args([flag, value]);
        }
    }
    for header in &spec.headers {
        command.args(["--header", header]);
    }
    let out = command.output().expect("edgehook event runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// An outcome as Lambda@Edge would act on it: `error`, or the request or response with header
/// names lowercased, values in order, statuses as strings and bodies decoded.
fn normalized_for(case: &Case, value: &serde_json::Value) -> serde_json::Value {
    let mut outcome = normalized(value);
    // Dates made from the clock (a cookie's Expires) differ between the two runs.
    let date = regex_lite::Regex::new(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT").unwrap();
    if let Some(headers) = outcome.get_mut("headers").and_then(|h| h.as_object_mut()) {
        for value in headers
            .values_mut()
            .flat_map(|values| values.as_array_mut().into_iter().flatten())
        {
            if let Some(text) = value.as_str() {
                *value = serde_json::json!(date.replace_all(text, "<date>"));
            }
        }
    }
    for name in &case.random {
        if let Some(values) = outcome["headers"].get_mut(name.as_str()) {
            *values = serde_json::json!("<random>");
        }
    }
    outcome
}

fn normalized(value: &serde_json::Value) -> serde_json::Value {
    if let Some(kind) = error_kind(value) {
        return serde_json::json!(format!("error {kind}"));
    }
    let object = value.get("result").unwrap_or(value);
    if object.is_null() {
        return serde_json::json!("no result");
    }
    let mut headers = std::collections::BTreeMap::<String, Vec<String>>::new();
    if let Some(map) = object["headers"].as_object() {
        for (name, entries) in map {
            for entry in entries.as_array().into_iter().flatten() {
                headers
                    .entry(name.to_ascii_lowercase())
                    .or_default()
                    .push(entry["value"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    let body = match (&object["body"], object["bodyEncoding"].as_str()) {
        (serde_json::Value::String(text), Some("base64")) => {
            use base64::Engine as _;
            String::from_utf8_lossy(
                &base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .unwrap_or_default(),
            )
            .into_owned()
        }
        (serde_json::Value::String(text), _) => text.clone(),
        (serde_json::Value::Object(body), _) => body["data"].as_str().unwrap_or_default().to_string(),
        _ => String::new(),
    };
    if object.get("status").is_some() {
        let status = match &object["status"] {
            serde_json::Value::Number(n) => n.to_string(),
            other => other.as_str().unwrap_or_default().to_string(),
        };
        serde_json::json!({ "status": status, "headers": headers, "body": body })
    } else {
        serde_json::json!({
            "uri": object["uri"], "querystring": object["querystring"].as_str().unwrap_or(""),
            "method": object["method"], "headers": headers, "origin": object.get("origin"),
        })
    }
}

/// The kind of error an outcome is, if it is one: the class of the error the function threw
/// (`ReferenceError`), or the failure Lambda@Edge reports (`LambdaValidationError`). A load
/// failure counts as the error that stopped the load; messages are not compared, as Node's and
/// edgehook's wording differ (`Cannot find module` against `module not available`).
fn error_kind(value: &serde_json::Value) -> Option<String> {
    // Node's driver writes {"error": {errorType, errorMessage}}, or crashes ({"error": stderr}).
    let error = match value.get("error") {
        Some(serde_json::Value::String(_)) => return Some("(crashed)".into()),
        Some(error) => error,
        None if value.get("errorType").is_some() => value,
        None => return None,
    };
    let kind = error["errorType"].as_str().unwrap_or("Error");
    let message = error["errorMessage"].as_str().unwrap_or("");
    if kind != "Runtime.LoadError" {
        return Some(kind.to_string());
    }
    let cause = message
        .split_once("failed to load: ")
        .map_or(message, |(_, cause)| cause);
    match cause.split_once(": ") {
        Some((name, _)) if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()) => {
            Some(name.to_string())
        }
        _ => Some(cause.to_string()),
    }
}

/// An outcome in a few words: `error`, `request /uri`, `response 302`.
fn summary(outcome: &serde_json::Value) -> String {
    match outcome {
        serde_json::Value::String(text) => text.clone(),
        _ if outcome.get("status").is_some() => format!("response {}", outcome["status"].as_str().unwrap_or("")),
        _ => format!("request {}", outcome["uri"].as_str().unwrap_or("")),
    }
}

fn run_case(case: &Case, spec: &EventSpec, code: &Path, work: &Path) -> (serde_json::Value, serde_json::Value) {
    let event = work.join(format!("{}.json", case.name));
    std::fs::write(&event, event_json(spec)).unwrap();
    let layer = code.with_extension("layer");
    let mut node = Command::new("node");
    node.arg(corpus_dir().join("../node/lambda-edge.mjs"))
        .arg(code)
        .arg(&case.handler)
        .arg(&event);
    if !case.layer_npm.is_empty() {
        node.env("NODE_PATH", layer.join("nodejs/node_modules"));
    }
    for pair in &case.env {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        node.env(key, value);
    }
    let node = node.output().expect("node runs");
    let node: serde_json::Value = serde_json::from_slice(&node.stdout)
        .unwrap_or_else(|_| serde_json::json!({ "error": String::from_utf8_lossy(&node.stderr).into_owned() }));
    let mut here = edgehook();
    here.arg("invoke")
        .arg(code)
        .args(["--handler", &case.handler])
        .arg("--event")
        .arg(&event);
    if !case.layer_npm.is_empty() {
        here.arg("--layer").arg(&layer);
    }
    for pair in &case.env {
        here.args(["--env", pair]);
    }
    let here = here.output().expect("edgehook invoke runs");
    let here: serde_json::Value = serde_json::from_slice(&here.stdout)
        .unwrap_or_else(|_| serde_json::json!({ "error": String::from_utf8_lossy(&here.stderr).into_owned() }));
    (node, here)
}

#[test]
fn real_lambda_edge_functions_give_the_outcomes_they_give_on_node() {
    let cases: Vec<Case> =
        serde_json::from_str(&std::fs::read_to_string(corpus_dir().join("cases.json")).unwrap()).unwrap();
    assert!(cases.len() >= 30, "the corpus names {} cases", cases.len());
    let sources = corpus_dir().join("sources");
    let present: Vec<&Case> = cases
        .iter()
        .filter(|c| {
            sources.join(&c.name).is_dir()
                && (c.layer_npm.is_empty() || sources.join(format!("{}.layer", c.name)).is_dir())
        })
        .collect();
    if present.is_empty() {
        eprintln!(
            "corpus: skipped, no case's code is in {} (tests/corpus/README.md)",
            sources.display()
        );
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for case in &present {
        let runs: Vec<(serde_json::Value, serde_json::Value)> = case
            .events
            .iter()
            .map(|spec| run_case(case, spec, &sources.join(&case.name), work.path()))
            .collect();
        let same = runs
            .iter()
            .all(|(node, here)| normalized_for(case, node) == normalized_for(case, here));
        let (node, here) = runs
            .iter()
            .find(|(node, here)| normalized_for(case, node) != normalized_for(case, here))
            .or(runs.first())
            .cloned()
            .unwrap_or_default();
        let verdict = match (&case.differs, same) {
            (None, true) => "same",
            (Some(_), false) => "differs (known)",
            (None, false) => {
                failures.push(format!(
                    "{} ({}@{}): node {node} / edgehook {here}",
                    case.name,
                    case.repo,
                    &case.commit[..8.min(case.commit.len())]
                ));
                "DIFFERS"
            }
            (Some(_), true) => {
                failures.push(format!(
                    "{}: marked as differing but now the same; remove `differs`",
                    case.name
                ));
                "same (marked as differing)"
            }
        };
        let outcomes: Vec<String> = runs.iter().map(|(_, here)| summary(&normalized(here))).collect();
        eprintln!("corpus: {:<32} {verdict:<8} {}", case.name, outcomes.join(", "));
    }
    eprintln!("corpus: {} of {} cases present", present.len(), cases.len());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
