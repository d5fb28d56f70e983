//! `edgehook invoke` (run a function file on an event, as users do before deploying) and
//! `edgehook event` (print a sample event to start from).

use crate::config::units::{parse_duration, parse_size};
use crate::edge::rules;
use crate::edge::sample::{sample, SampleOptions};
use crate::edge::{Event, EventType};
use crate::js::{FunctionSpec, JsPool, PoolOptions};
use crate::package::{self, CodeTree, Limits};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Exit code for usage and file errors.
const USAGE: u8 = 2;
/// Exit code for a function failure.
const FUNCTION_FAILED: u8 = 1;

#[derive(clap::Args)]
pub struct InvokeArgs {
    /// The function's code: a JavaScript file (.mjs ES module, .cjs CommonJS, .js either), or
    /// a deployment package (a directory or a .zip).
    file: PathBuf,
    /// The event JSON file, or `-` for standard input.
    #[arg(long)]
    event: String,
    /// The handler: the export of a single file (default `handler`), or Lambda's `file.export`
    /// in a package (default `index.handler`).
    #[arg(long)]
    handler: Option<String>,
    /// A layer (a directory or zip holding `nodejs/node_modules`), seen under /opt as on
    /// Lambda (repeatable, in order).
    #[arg(long = "layer", value_name = "DIR_OR_ZIP")]
    layers: Vec<PathBuf>,
    /// The event type (default: the event's `config.eventType`).
    #[arg(long = "event-type")]
    event_type: Option<String>,
    /// The function timeout, e.g. 5s.
    #[arg(long, default_value = "5s")]
    timeout: String,
    /// The heap limit, e.g. 128MiB.
    #[arg(long, default_value = "128MiB")]
    memory: String,
    /// An environment variable for `process.env`, as KEY=VALUE (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// A destination outbound requests may reach, as HOST:PORT (`api.example.com:443`,
    /// `*.amazonaws.com:443`, `127.0.0.1:9000`; repeatable). Default: none.
    #[arg(long = "egress", value_name = "HOST:PORT")]
    egress: Vec<String>,
    /// CA certificates (PEM) outbound TLS trusts besides the system's.
    #[arg(long = "ca-file", value_name = "PEM")]
    ca_file: Option<std::path::PathBuf>,
}

#[derive(clap::Args)]
pub struct EventArgs {
    /// viewer-request, origin-request, origin-response or viewer-response.
    event_type: String,
    #[arg(long)]
    uri: Option<String>,
    #[arg(long)]
    method: Option<String>,
    #[arg(long)]
    querystring: Option<String>,
    /// A request header, as "Name: value" (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    #[arg(long = "client-ip")]
    client_ip: Option<String>,
    /// The response status (response events).
    #[arg(long)]
    status: Option<u16>,
}

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("edgehook: {message}");
    ExitCode::from(USAGE)
}

fn parse_event_type(text: &str) -> Result<EventType, String> {
    EventType::parse(text).ok_or_else(|| {
        format!("unknown event type `{text}` (viewer-request, origin-request, origin-response, viewer-response)")
    })
}

fn read_event(source: &str) -> Result<String, String> {
    if source == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read the event from stdin: {e}"))?;
        Ok(text)
    } else {
        std::fs::read_to_string(source).map_err(|e| format!("cannot read the event file `{source}`: {e}"))
    }
}

/// Function console output goes to stderr, one line per call, without timestamps.
fn init_function_logging() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new("edgehook::function=trace,warn"))
        .try_init();
}

fn spec(args: &InvokeArgs) -> Result<FunctionSpec, String> {
    let read = |path: &PathBuf| {
        package::read(path, Limits::ORIGIN)
            .map(Arc::new)
            .map_err(|e| format!("`{}`: {e}", path.display()))
    };
    let package = read(&args.file)?;
    let layers = args.layers.iter().map(read).collect::<Result<Vec<_>, _>>()?;
    let single_file = package.paths().count() == 1;
    let handler = args
        .handler
        .clone()
        .unwrap_or_else(|| if single_file { "handler" } else { "index.handler" }.into());
    package.entry(&handler).map_err(|e| format!("--handler: {e}"))?;
    let name = args
        .file
        .file_stem()
        .map_or_else(|| "function".into(), |n| n.to_string_lossy().into_owned());
    let mut spec = FunctionSpec::packaged(&name, CodeTree::new(package, layers), &handler);
    spec.timeout = parse_duration(&args.timeout).map_err(|e| format!("--timeout: {e}"))?;
    if spec.timeout.is_zero() {
        return Err("--timeout must be more than 0".into());
    }
    spec.memory = parse_size(&args.memory).map_err(|e| format!("--memory: {e}"))?;
    if spec.memory < 8 << 20 {
        return Err("--memory must be at least 8MiB".into());
    }
    for pair in &args.env {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("--env `{pair}` is not KEY=VALUE"))?;
        spec.env.insert(key.to_string(), value.to_string());
    }
    let mut egress = crate::config::Egress::none("--egress");
    egress.rules = crate::config::EgressRules::parse(&args.egress, "--egress".into())
        .map_err(|problems| format!("--egress {}", problems.join("; ")))?;
    if let Some(ca_file) = &args.ca_file {
        egress.ca = crate::tls::load_certificates(ca_file).map_err(|e| format!("--ca-file: {e}"))?;
    }
    spec.egress = std::sync::Arc::new(crate::js::Egress::new(egress));
    Ok(spec)
}

fn print_json(value: &serde_json::Value) {
    super::print_line(serde_json::to_string_pretty(value).unwrap_or_default());
}

pub fn invoke(args: InvokeArgs) -> ExitCode {
    let spec = match spec(&args) {
        Ok(spec) => spec,
        Err(e) => return usage(e),
    };
    let text = match read_event(&args.event) {
        Ok(text) => text,
        Err(e) => return usage(e),
    };
    let mut event = match Event::from_json(&text) {
        Ok(event) => event,
        Err(e) => return usage(e),
    };
    if let Some(kind) = &args.event_type {
        let kind = match parse_event_type(kind) {
            Ok(kind) => kind,
            Err(e) => return usage(e),
        };
        event.cf_mut().config.event_type = kind;
        if let Err(e) = Event::from_json(&event.to_json()) {
            return usage(format!("the event does not fit --event-type {kind}: {e}"));
        }
    }
    init_function_logging();
    let name = spec.name.to_string();
    let options = PoolOptions {
        threads: 1,
        queue: 1,
        max_wait: Duration::from_secs(1),
        // One instance: building the engine snapshot would cost more than it saves.
        snapshot: false,
        name_servers: Vec::new(),
        ..PoolOptions::default()
    };
    let pool = match JsPool::start(vec![spec], &options) {
        Ok(pool) => pool,
        Err(failure) => {
            print_json(&serde_json::json!({ "errorType": "Runtime.LoadError", "errorMessage": failure.to_string() }));
            return ExitCode::from(FUNCTION_FAILED);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return usage(format!("cannot start a runtime: {e}")),
    };
    let (result, outbound) = runtime.block_on(pool.invoke_reported(&name, &event));
    for call in &outbound.calls {
        eprintln!(
            "edgehook: outbound call to {}: {} ({:.1} ms)",
            call.host,
            match call.outcome {
                crate::js::CallOutcome::Status(status) => status.to_string(),
                other => other.class().to_string(),
            },
            call.elapsed.as_secs_f64() * 1e3
        );
    }
    match result {
        Ok(outcome) => {
            print_json(&outcome.to_json());
            ExitCode::SUCCESS
        }
        Err(error) => {
            print_json(&serde_json::json!({
                "errorType": error.error_type,
                "errorMessage": error.message,
                "failure": error.class.name(),
                "status": error.class.status(),
            }));
            ExitCode::from(FUNCTION_FAILED)
        }
    }
}

pub fn event(args: EventArgs) -> ExitCode {
    let kind = match parse_event_type(&args.event_type) {
        Ok(kind) => kind,
        Err(e) => return usage(e),
    };
    let mut headers = Vec::new();
    for header in &args.headers {
        match header.split_once(':') {
            Some((name, value)) if rules::is_token(name.trim()) => {
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
            _ => return usage(format!("--header `{header}` is not \"Name: value\"")),
        }
    }
    if let Some(status) = args.status {
        if !(100..=599).contains(&status) {
            return usage(format!("--status {status} is not an HTTP status"));
        }
        if kind.is_request() {
            return usage(format!("--status applies to response events, not {kind}"));
        }
    }
    if let Some(uri) = &args.uri {
        if !uri.starts_with('/') || uri.contains(['?', '#', ' ']) {
            return usage(format!(
                "--uri `{uri}` must be a path starting with `/` (use --querystring for the query)"
            ));
        }
    }
    let options = SampleOptions {
        uri: args.uri,
        method: args.method.map(|m| m.to_ascii_uppercase()),
        querystring: args.querystring.map(|q| q.trim_start_matches('?').to_string()),
        headers,
        client_ip: args.client_ip,
        status: args.status,
        request_id: None,
    };
    print_json(&serde_json::to_value(sample(kind, &options)).unwrap_or_default());
    ExitCode::SUCCESS
}
