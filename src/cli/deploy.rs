//! `edgehook deploy`: uploads code, publishes a version and moves an alias through the admin
//! API, then follows the deployment until it ends.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct DeployArgs {
    /// The function name (as in `[functions.NAME]`).
    function: String,
    /// New code for the function, uploaded as `$LATEST` and published as a version.
    #[arg(long)]
    code: Option<PathBuf>,
    /// An already published version to deploy (instead of `--code`).
    #[arg(long = "to-version")]
    to_version: Option<u32>,
    /// The alias to move.
    #[arg(long, default_value = "live")]
    alias: String,
    /// AllAtOnce, Canary10Percent5Minutes, Linear10PercentEvery1Minute, ... or a custom
    /// `canary:10:30s` / `linear:25:1m` (percent and interval).
    #[arg(long, default_value = "AllAtOnce")]
    strategy: String,
    /// Roll back when the new version's error rate exceeds this (0..1).
    #[arg(long = "alarm-error-rate")]
    alarm_error_rate: Option<f64>,
    /// Invocations needed before the alarm is judged.
    #[arg(long = "alarm-min-invocations", default_value_t = 20)]
    alarm_min_invocations: u64,
    /// A function that must succeed before any traffic moves.
    #[arg(long = "pre-traffic")]
    pre_traffic: Option<String>,
    /// The admin listener.
    #[arg(long, default_value = "http://127.0.0.1:9901")]
    admin: String,
    /// The admin token (default: $EDGEHOOK_ADMIN_TOKEN).
    #[arg(long)]
    token: Option<String>,
}

fn strategy_json(text: &str) -> Result<serde_json::Value, String> {
    let parts: Vec<&str> = text.split(':').collect();
    match parts.as_slice() {
        [name] => Ok(serde_json::Value::String(name.to_string())),
        [kind, percent, interval] => {
            let percent: f64 = percent
                .parse()
                .map_err(|_| format!("`{percent}` is not a percentage"))?;
            Ok(serde_json::json!({ "type": kind, "percent": percent, "interval": interval }))
        }
        _ => Err(format!("`{text}` is not a strategy name or kind:percent:interval")),
    }
}

struct Admin {
    base: String,
    token: String,
    client: admin_http::Client,
}

/// A tiny blocking HTTP/1.1 client over std sockets: the admin API is plain HTTP on a local
/// address, and this keeps an HTTP client library out of the binary.
mod admin_http {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    pub struct Client;

    pub struct Response {
        pub status: u16,
        pub body: String,
    }

    impl Client {
        pub fn send(&self, base: &str, method: &str, path: &str, token: &str, body: &[u8]) -> Result<Response, String> {
            let authority = base
                .strip_prefix("http://")
                .ok_or_else(|| format!("--admin `{base}` must be an http:// URL"))?
                .trim_end_matches('/');
            let mut stream =
                TcpStream::connect(authority).map_err(|e| format!("cannot reach the admin API at {base}: {e}"))?;
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .map_err(|e| e.to_string())?;
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream
                .write_all(head.as_bytes())
                .and_then(|_| stream.write_all(body))
                .map_err(|e| e.to_string())?;
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&raw);
            let (head, body) = text.split_once("\r\n\r\n").ok_or("the admin API sent no response")?;
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or("the admin API sent no status")?;
            Ok(Response {
                status,
                body: body.to_string(),
            })
        }
    }
}

impl Admin {
    fn call(&self, method: &str, path: &str, body: &[u8]) -> Result<serde_json::Value, String> {
        let response = self.client.send(&self.base, method, path, &self.token, body)?;
        let value: serde_json::Value =
            serde_json::from_str(response.body.trim()).unwrap_or(serde_json::Value::String(response.body.clone()));
        if response.status >= 400 {
            let message = value["error"]
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string);
            return Err(format!("{method} {path}: {} {message}", response.status));
        }
        Ok(value)
    }
}

pub fn deploy(args: DeployArgs) -> ExitCode {
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("edgehook deploy: {e}");
            ExitCode::from(2)
        }
    }
}

/// Ok(true) when the deployment succeeded, Ok(false) when it was rolled back or failed.
fn run(args: DeployArgs) -> Result<bool, String> {
    let token = args
        .token
        .clone()
        .or_else(|| std::env::var("EDGEHOOK_ADMIN_TOKEN").ok())
        .ok_or("no admin token: pass --token or set EDGEHOOK_ADMIN_TOKEN")?;
    let admin = Admin {
        base: args.admin.clone(),
        token,
        client: admin_http::Client,
    };
    let function = &args.function;
    let version = match (&args.code, args.to_version) {
        (Some(path), None) => {
            let source = std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
            admin.call("PUT", &format!("/functions/{function}/code"), &source)?;
            super::print_line(format_args!("uploaded {} as {function} $LATEST", path.display()));
            let published = admin.call("POST", &format!("/functions/{function}/versions"), b"")?;
            let version = published["version"].as_u64().ok_or("no version number in the answer")? as u32;
            super::print_line(format_args!("published {function} version {version}"));
            version
        }
        (None, Some(version)) => version,
        (Some(_), Some(_)) => return Err("give --code or --to-version, not both".into()),
        (None, None) => return Err("give --code (new code) or --to-version (a published version)".into()),
    };
    let mut request = serde_json::json!({ "version": version, "strategy": strategy_json(&args.strategy)? });
    if let Some(rate) = args.alarm_error_rate {
        request["alarm"] = serde_json::json!({ "error_rate": rate, "min_invocations": args.alarm_min_invocations });
    }
    if let Some(pre) = &args.pre_traffic {
        request["pre_traffic"] = serde_json::Value::String(pre.clone());
    }
    let alias = &args.alias;
    let started = admin.call(
        "POST",
        &format!("/functions/{function}/aliases/{alias}/deployments"),
        request.to_string().as_bytes(),
    )?;
    let id = started["id"]
        .as_str()
        .ok_or("no deployment id in the answer")?
        .to_string();
    super::print_line(format_args!(
        "deployment {id}: {function}:{alias} version {} -> {version}",
        started["from_version"]
    ));
    let mut last = String::new();
    loop {
        let status = admin.call(
            "GET",
            &format!("/functions/{function}/aliases/{alias}/deployments/{id}"),
            b"",
        )?;
        let line = format!(
            "{} weight {:.0}% invocations {} errors {}",
            status["state"].as_str().unwrap_or("?"),
            status["weight"].as_f64().unwrap_or(0.0) * 100.0,
            status["invocations"],
            status["errors"]
        );
        if line != last {
            super::print_line(format_args!("deployment {id}: {line}"));
            last = line;
        }
        match status["state"].as_str() {
            Some("InProgress") => std::thread::sleep(Duration::from_millis(250)),
            Some("Succeeded") => return Ok(true),
            _ => {
                super::print_line(format_args!(
                    "deployment {id}: {}",
                    status["reason"].as_str().unwrap_or("ended")
                ));
                return Ok(false);
            }
        }
    }
}
