//! `edgehook deploy`: uploads code, publishes a version and moves an alias through the admin
//! API, then follows the deployment until it ends.

use super::admin_client::{Admin, CONNECT_TIMEOUT};
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
    /// The handler of the new code (Lambda's `file.export`; default: the function's current one).
    #[arg(long)]
    handler: Option<String>,
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
    let admin = Admin::new(&args.admin, token, CONNECT_TIMEOUT)?;
    let function = &args.function;
    let version = match (&args.code, args.to_version) {
        (Some(path), None) => {
            // A single source file goes as it is (its name decides its module kind); a directory
            // or zip goes as a zip, which the node checks against its limits.
            let package = crate::package::read(path, crate::package::Limits::ORIGIN)
                .map_err(|e| format!("`{}`: {e}", path.display()))?;
            // (A source file becomes a package of one file under its own name.)
            let own_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let single =
                path.is_file() && package.paths().count() == 1 && package.paths().next() == own_name.as_deref();
            let mut query = Vec::new();
            let body = if single {
                let name = package.paths().next().unwrap_or("index.js").to_string();
                query.push(format!(
                    "file={}",
                    percent_encoding::utf8_percent_encode(&name, percent_encoding::NON_ALPHANUMERIC)
                ));
                package.file(&name).map(|c| c.to_vec()).unwrap_or_default()
            } else {
                package.to_zip()
            };
            if let Some(handler) = &args.handler {
                query.push(format!(
                    "handler={}",
                    percent_encoding::utf8_percent_encode(handler, percent_encoding::NON_ALPHANUMERIC)
                ));
            }
            let query = if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            };
            admin.call("PUT", &format!("/functions/{function}/code{query}"), &body)?;
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

#[cfg(test)]
mod admin_client_tests {
    use super::*;
    use std::io::{Read, Write};

    /// An admin API on loopback that answers one call with `answer` (raw HTTP) and returns
    /// what it was sent.
    fn answering(answer: &'static str) -> (String, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let served = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("a call");
            let mut request = Vec::new();
            let mut chunk = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut chunk).expect("read");
                request.extend_from_slice(&chunk[..n]);
            }
            stream.write_all(answer.as_bytes()).expect("answer");
            String::from_utf8_lossy(&request).into_owned()
        });
        (base, served)
    }

    #[test]
    fn a_chunked_answer_is_read_whole() {
        let (base, served) = answering(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"ver\r\n9\r\nsion\":3}\n\r\n0\r\n\r\n",
        );
        let admin = Admin::new(&base, "secret".into(), CONNECT_TIMEOUT).expect("an admin URL");
        let answer = admin.call("GET", "/functions/f", b"").expect("the call succeeds");
        assert_eq!(answer, serde_json::json!({ "version": 3 }));
        let request = served.join().expect("served");
        assert!(request.starts_with("GET /functions/f HTTP/1.1\r\n"), "{request}");
        assert!(
            request.to_ascii_lowercase().contains("authorization: bearer secret"),
            "{request}"
        );
    }

    #[test]
    fn an_error_answer_gives_the_admin_apis_message() {
        let (base, _served) = answering(
            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 28\r\nConnection: close\r\n\r\n{\"error\":\"no such function\"}",
        );
        let admin = Admin::new(&base, "secret".into(), CONNECT_TIMEOUT).expect("an admin URL");
        let error = admin.call("POST", "/functions/f/versions", b"{}").expect_err("a 404");
        assert_eq!(error, "POST /functions/f/versions: 404 no such function");
    }

    #[test]
    fn an_admin_api_that_never_takes_the_connection_is_given_up_on() {
        // A listener whose accept queue (one connection) is full and never emptied: the
        // kernel drops the next connection's handshake, so the connect hangs.
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let _guard = runtime.enter();
        socket.bind("127.0.0.1:0".parse().expect("address")).expect("bind");
        let listener = socket.listen(0).expect("listen");
        let address = listener.local_addr().expect("address");
        let fillers: Vec<_> = (0..4)
            .filter_map(|_| std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)).ok())
            .collect();
        assert!(!fillers.is_empty(), "the queue took connections");
        let admin = Admin::new(
            &format!("http://{address}"),
            "secret".into(),
            Duration::from_millis(300),
        )
        .expect("an admin URL");
        let started = std::time::Instant::now();
        let error = admin.call("GET", "/healthz", b"").expect_err("no connection");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "gave up after {:?}",
            started.elapsed()
        );
        assert!(
            error.contains("cannot reach the admin API") && error.contains("timeout: connect"),
            "{error}"
        );
        // ureq's timer may fire a hair before the 300 ms are up.
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "it waited for the connection ({:?}): {error}",
            started.elapsed()
        );
    }

    #[test]
    fn only_http_urls_are_admin_urls() {
        assert!(Admin::new("ftp://x", String::new(), CONNECT_TIMEOUT).is_err());
        assert!(Admin::new("127.0.0.1:9901", String::new(), CONNECT_TIMEOUT).is_err());
    }
}
