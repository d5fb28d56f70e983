//! The command line: `edgehook serve`, `check`, `invoke`, `event`, `deploy` and `fleet`.

mod admin_client;
mod deploy;
mod fleet;
mod invoke;

use crate::config::{self, LogFormat};
use crate::js;
use crate::js::FunctionSpec;
use crate::js::JsPool;
use crate::js::PoolOptions;
use crate::server;
use crate::server::ServeError;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "edgehook",
    version,
    propagate_version = true,
    about = "A caching edge proxy that runs Lambda@Edge-style functions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the configuration until SIGTERM or SIGINT (both drain in-flight requests).
    Serve {
        /// The configuration file.
        #[arg(long, short, default_value = "config/edgehook.toml")]
        config: PathBuf,
        /// Take over the listening sockets of a running edgehook (send it SIGQUIT once this one
        /// has started): a binary upgrade without refusing a connection.
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate a configuration: exit 0 when valid, or print every problem and exit 2.
    Check {
        /// The configuration file.
        #[arg(long, short, default_value = "config/edgehook.toml")]
        config: PathBuf,
    },
    /// Run a function on an event: prints the validated result (or the error) as JSON.
    /// Exit 0 on success, 1 when the function fails, 2 on usage or file errors.
    Invoke(invoke::InvokeArgs),
    /// Print a sample Lambda@Edge event of a type.
    Event(invoke::EventArgs),
    /// Deploy a function version to an alias through the admin API and follow the deployment:
    /// exit 0 when it succeeds, 1 when it is rolled back or fails, 2 on usage errors.
    Deploy(deploy::DeployArgs),
    /// List the nodes sharing the state store of a node, with the state revision each has
    /// applied, when each was last in contact and the function versions each serves.
    Fleet(fleet::FleetArgs),
}

/// Exit code for an invalid configuration.
const INVALID_CONFIG: u8 = 2;

/// Sets up the diagnostic log: stderr, or `log.file` (reopened on SIGUSR1). An error is a log
/// file that cannot be opened.
fn init_logging(log: &config::Log) -> Result<(), String> {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(&log.level));
    let writer = match &log.file {
        Some(path) => tracing_subscriber::fmt::writer::BoxMakeWriter::new(
            crate::logfile::diagnostic_log(path).map_err(|e| format!("log.file {}: {e}", path.display()))?,
        ),
        None => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
    };
    let colour = log.file.is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(colour);
    let installed = match log.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if let Err(e) = installed {
        eprintln!("edgehook: logging was already set up: {e}");
    }
    Ok(())
}

fn warnings(config: &config::Config) -> Vec<String> {
    let mut out = Vec::new();
    if let config::AdminToken::MissingEnv(name) = &config.server.admin_token {
        out.push(format!(
            "server.admin_token: environment variable {name} is not set; mutating admin calls will be refused"
        ));
    }
    for (wildcard_site, wildcard, exact_site, exact) in config.distributions.shadowed() {
        out.push(format!(
            "distributions.{wildcard_site}.domains: `{wildcard}` also covers `{exact}`, a domain of distribution `{exact_site}`, which serves it (an exact name wins over a wildcard)"
        ));
    }
    out.extend(unserved_certificate_names(config));
    out
}

/// Names certificates hold that no distribution serves: a request for one gets that
/// certificate, then a 404 (or another site, through the default distribution).
fn unserved_certificate_names(config: &config::Config) -> Vec<String> {
    let distributions = &config.distributions;
    let mut certificates: Vec<(String, &config::CertificateFiles)> = distributions
        .iter()
        .filter_map(|d| {
            d.tls
                .as_ref()
                .map(|files| (format!("distributions.{}.tls", d.name), files))
        })
        .collect();
    // With a fallback, every name is served by someone.
    if distributions.fallback().is_none() {
        if let Some(files) = config.server.tls.as_ref().and_then(|t| t.default_certificate.as_ref()) {
            certificates.push(("server.tls.cert".into(), files));
        }
    }
    let mut out = Vec::new();
    for (key, files) in certificates {
        let Ok(certificate) = crate::tls::Certificate::load(&files.cert, &files.key, std::time::SystemTime::now())
        else {
            continue; // validation reported it
        };
        for name in certificate.names.iter().filter(|n| distributions.matching(n).is_none()) {
            out.push(format!(
                "{key}: `{}` also names `{name}`, which no distribution serves",
                files.cert.display()
            ));
        }
    }
    out
}

/// Loads each function on its own JS thread, as `serve` would: every function that fails to
/// load (syntax error, missing handler, unavailable module, top-level throw) is reported.
fn load_functions(config: &config::Config) -> Vec<String> {
    let options = PoolOptions {
        threads: 1,
        queue: 1,
        max_wait: std::time::Duration::from_secs(1),
        // One instance: building the engine snapshot would cost more than it saves.
        snapshot: false,
        name_servers: Vec::new(),
        ..PoolOptions::default()
    };
    config
        .functions
        .iter()
        .filter_map(|(name, function)| {
            JsPool::start(vec![FunctionSpec::from(function)], &options)
                .err()
                .map(|failure| format!("`functions.{name}.code` {failure}"))
        })
        .collect()
}

pub fn main() -> ExitCode {
    // SAFETY: nothing else runs yet: no thread has been started, nothing reads the environment.
    unsafe { js::set_engine_switches() };
    let cli = Cli::parse();
    match cli.command {
        Command::Invoke(args) => invoke::invoke(args),
        Command::Event(args) => invoke::event(args),
        Command::Deploy(args) => deploy::deploy(args),
        Command::Fleet(args) => fleet::fleet(args),
        Command::Check { config: path } => match config::load(&path) {
            Ok(config) => {
                for warning in warnings(&config) {
                    eprintln!("warning: {warning}");
                }
                let failures = load_functions(&config);
                if !failures.is_empty() {
                    for failure in &failures {
                        eprintln!("{}: {failure}", path.display());
                    }
                    eprintln!("{}: {} problem(s)", path.display(), failures.len());
                    return ExitCode::from(INVALID_CONFIG);
                }
                let named = config.distributions.iter().filter(|d| !d.is_implicit()).count();
                let distributions = match named {
                    0 => String::new(),
                    n => format!("{n} distributions, "),
                };
                print_line(format_args!(
                    "{}: valid ({distributions}{} origins, {} behaviors)",
                    path.display(),
                    config.origins.len(),
                    config.behaviors().count()
                ));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                eprintln!("{}: {} problem(s)", path.display(), e.problem_count());
                ExitCode::from(INVALID_CONFIG)
            }
        },
        Command::Serve { config: path, upgrade } => {
            let config = match config::load(&path) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("{e}");
                    eprintln!("{}: not serving an invalid configuration", path.display());
                    return ExitCode::from(INVALID_CONFIG);
                }
            };
            if let Err(e) = init_logging(&config.log) {
                eprintln!("{}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            for warning in warnings(&config) {
                tracing::warn!("{warning}");
            }
            match server::serve(config, &path, upgrade) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e @ (ServeError::Functions(_) | ServeError::Deploy(_))) => {
                    tracing::error!("{e}");
                    eprintln!("{}: {e}", path.display());
                    ExitCode::from(INVALID_CONFIG)
                }
                Err(e) => {
                    tracing::error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Prints a line on stdout. A reader that stopped early (`| head`) has what it wanted: not
/// worth the panic of `println!`.
pub(crate) fn print_line(line: impl std::fmt::Display) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}
