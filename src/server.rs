//! Assembles a pingora server from a validated config: the proxy service (HTTP and HTTPS
//! listeners), the internal socket for directory origins, and the admin listener. Runs it until
//! SIGTERM or SIGINT, which both drain in-flight requests before exiting.

use crate::admin::api::AdminApi;
use crate::cache::CacheLayer;
use crate::certificates::{Certificates, RecordRequestedName};
use crate::config::DirOrigin;
use crate::config::StateBackend;
use crate::config::{Config, OriginKind};
use crate::deploy::store::{EtcdStore, LocalStore, NodeRecord, StateStore};
use crate::deploy::Deployments;
use crate::edge::geoip::GeoIp;
use crate::head_deadline::{HeadDeadline, HeadTimeout};
use crate::js::Failure;
use crate::js::FunctionSpec;
use crate::js::JsPool;
use crate::js::PoolOptions;
use crate::linger::{Lingering, Released, LINGER};
use crate::local_http::LocalApp;
use crate::logfile::{AccessLog, Destination};
use crate::metrics::Metrics;
use crate::origin::dir::DirServer;
use crate::origin::local::LocalOrigin;
use crate::origin::ResolveError;
use crate::origin::Upstreams;
use crate::proxy::ctx::InFlight;
use crate::proxy::{EdgeProxy, NodeState};
use crate::reload::Reloader;
use crate::service_ready::{Probe, ReadyWhenAccepting};
use crate::telemetry::Tracing;
use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::ExecutionPhase;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::listening::Service;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create the runtime directory: {0}")]
    RuntimeDir(std::io::Error),
    #[error("cannot set up TLS listener {address}: {message}")]
    Tls { address: String, message: String },
    #[error("{0}")]
    Functions(Failure),
    #[error("server.geoip_database: {0}")]
    GeoIp(String),
    #[error("deployment state: {0}")]
    Deploy(String),
    #[error("cannot start the control runtime: {0}")]
    Control(std::io::Error),
    #[error("{0}")]
    Resolver(ResolveError),
    #[error("cannot open the access log {path}: {error}")]
    AccessLog { path: String, error: std::io::Error },
    #[error("{0}")]
    Tracing(#[from] crate::telemetry::TracingError),
    #[error("TLS: {0}")]
    Certificates(String),
}

/// SIGTERM and SIGINT both mean "stop accepting, finish what is in flight, exit 0"; SIGQUIT
/// keeps pingora's meaning (hand the listening sockets to a new process, then drain).
struct DrainOnSignal;

#[async_trait]
impl ShutdownSignalWatch for DrainOnSignal {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
        ) else {
            tracing::error!("cannot install signal handlers; shutting down");
            return ShutdownSignal::FastShutdown;
        };
        let signal = tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: draining and exiting"); ShutdownSignal::GracefulTerminate }
            _ = int.recv() => { tracing::info!("SIGINT: draining and exiting"); ShutdownSignal::GracefulTerminate }
            _ = quit.recv() => { tracing::info!("SIGQUIT: handing sockets over, then draining"); ShutdownSignal::GracefulUpgrade }
        };
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        signal
    }
}

fn server_conf(config: &Config, runtime_dir: &std::path::Path) -> ServerConf {
    ServerConf {
        threads: config.server.threads,
        // One current-thread runtime per proxy thread: a request's task stays on the thread that
        // accepted it, which lets functions run on that thread (`js::inline`) and keeps each
        // thread's state out of the others' caches.
        work_stealing: false,
        // pingora drains by sleeping through its grace period before stopping the runtimes
        // (which drops unfinished tasks); `drain_then_exit` ends that sleep as soon as nothing
        // is in flight.
        grace_period_seconds: Some(config.server.shutdown_timeout.as_secs().max(1)),
        graceful_shutdown_timeout_seconds: Some(1),
        // Shared by the running process and its successor (`serve --upgrade`), so it lives in
        // the state directory rather than the per-process runtime directory.
        upgrade_sock: upgrade_socket(config).to_string_lossy().into_owned(),
        pid_file: runtime_dir.join("edgehook.pid").to_string_lossy().into_owned(),
        // Timeouts of a second or more (the origin timeouts) run on tokio's timer wheel rather
        // than pingora's shared timer tree: fewer instructions per proxied request (callgrind,
        // 105.0k -> 104.3k with the `dist` profile), and pingora's timer thread only starts if
        // a timeout under a second is configured.
        fast_timeout_to_tokio_threshold_seconds: Some(0),
        ..ServerConf::default()
    }
}

/// Tells systemd (a `Type=notify` unit, which sets `NOTIFY_SOCKET`) that edgehook serves; a
/// no-op elsewhere.
fn tell_systemd_ready() {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "cannot tell systemd that edgehook is ready");
    }
}

/// The deployment state store the config names, open (for etcd: connected, the state loaded
/// and followed on `control`).
fn open_store(config: &Config, control: &tokio::runtime::Runtime) -> Result<Arc<dyn StateStore>, ServeError> {
    let deploy_error = |e: crate::deploy::store::StoreError| ServeError::Deploy(e.to_string());
    match &config.store {
        StateBackend::Local => Ok(Arc::new(
            LocalStore::open_as(&config.state_dir, &config.node).map_err(deploy_error)?,
        )),
        StateBackend::Etcd(settings) => {
            let me = NodeRecord {
                name: config.node.clone(),
                admin: config.server.admin.map(|a| a.to_string()),
                listen: config.server.listen.iter().map(|a| a.to_string()).collect(),
                ..NodeRecord::default()
            };
            let store = control
                .block_on(EtcdStore::connect(settings, &config.state_dir, me))
                .map_err(deploy_error)?;
            tracing::info!(
                endpoints = ?settings.endpoints,
                prefix = settings.prefix,
                node = config.node,
                revision = store.revision(),
                "following the fleet state in etcd"
            );
            Ok(store)
        }
    }
}

/// Serves `config` (read from `path`, which reloads read again) until a shutdown signal;
/// returns once in-flight requests are done.
pub fn serve(config: Config, path: &std::path::Path, upgrade: bool) -> Result<(), ServeError> {
    let config = Arc::new(config);
    // A private directory for the internal socket (0700, removed on exit).
    let runtime_dir = tempfile::Builder::new()
        .prefix("edgehook-")
        .tempdir()
        .map_err(ServeError::RuntimeDir)?;
    let local_socket = runtime_dir.path().join("origins.sock");

    let options = pingora::server::configuration::Opt {
        upgrade,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(options), server_conf(&config, runtime_dir.path()));
    server.bootstrap();

    // The control plane (the state store, deployments, purges) runs on a thread of its own,
    // apart from the proxy's.
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("edgehook-control")
        .enable_all()
        .build()
        .map_err(ServeError::Control)?;
    let store = open_store(&config, &control)?;
    let functions = start_functions(&config)?;
    let metrics = Arc::new(Metrics::new());
    let deploy = match &functions {
        Some(pool) => Some(
            Deployments::start(
                &config,
                pool.clone(),
                store.clone(),
                control.handle().clone(),
                metrics.clone(),
            )
            .map_err(|e| ServeError::Deploy(e.to_string()))?,
        ),
        None => None,
    };
    let dirs = Arc::new(arc_swap::ArcSwap::from_pointee(DirServer::new(dir_origins_of(&config))));
    let upstreams = Upstreams::new(local_socket.clone(), &config, None).map_err(ServeError::Resolver)?;
    let destination = config
        .log
        .access_file
        .clone()
        .map_or(Destination::Stdout, Destination::File);
    let access_log = AccessLog::start(destination.clone()).map_err(|error| ServeError::AccessLog {
        path: destination.to_string(),
        error,
    })?;
    let node = Arc::new(NodeState {
        config: arc_swap::ArcSwap::new(config.clone()),
        cache: CacheLayer::new(&config.cache),
        upstreams: arc_swap::ArcSwap::from_pointee(upstreams),
        metrics: metrics.clone(),
        in_flight: InFlight::default(),
        functions,
        generated: Default::default(),
        forwards: Default::default(),
        dirs,
        deploy,
        store: store.clone(),
        geoip: match &config.server.geoip_database {
            // Validation opened it already; a file changed since then is reported here.
            Some(path) => Some(GeoIp::open(path).map_err(ServeError::GeoIp)?),
            None => None,
        },
        access_log: Arc::new(access_log),
        tracing: config.tracing.as_ref().map(Tracing::start).transpose()?,
        certificates: match &config.server.tls {
            Some(_) => Some(Certificates::start(&config, metrics.clone()).map_err(ServeError::Certificates)?),
            None => None,
        },
    });
    crate::logfile::reopen_on_sigusr1(node.access_log.clone());

    control.spawn(crate::admin::fleet::follow_purges(node.clone()));

    // Request heads must arrive within `server.request_header_timeout` (read at each request).
    let head_timeout: HeadTimeout = {
        let node = node.clone();
        Arc::new(move || node.config.load().server.request_header_timeout)
    };
    // Connections open when the listeners close still get LINGER to bring a request.
    let released = Released::default();
    let mut proxy = Service::new(
        "edgehook proxy".into(),
        Lingering::new(
            HeadDeadline::new(
                pingora::proxy::http_proxy(&server.configuration, EdgeProxy { node: node.clone() }),
                head_timeout.clone(),
            ),
            LINGER,
            released.clone(),
        ),
    );
    for address in &config.server.listen {
        proxy.add_tcp(&address.to_string());
    }
    if let (Some(tls), Some(certificates)) = (&config.server.tls, &node.certificates) {
        for address in &tls.listen {
            let mut settings =
                TlsSettings::with_callbacks(Box::new(RecordRequestedName)).map_err(|e| ServeError::Tls {
                    address: address.to_string(),
                    message: e.to_string(),
                })?;
            settings.set_cert_resolver(certificates.clone());
            if tls.h2 {
                settings.enable_h2();
            }
            proxy.add_tls_with_settings(&address.to_string(), None, settings);
        }
        if !tls.check_interval.is_zero() {
            certificates.watch(tls.check_interval);
        }
    }
    // Tried on its first plain listener (a TLS one would log the probe's empty handshake as an
    // error): the admin listener (`/healthz`) waits for it.
    let proxy = match config.server.listen.first().copied() {
        Some(address) => {
            server.add_service(ReadyWhenAccepting::new(proxy, Probe::Tcp(address)).on_ready(tell_systemd_ready))
        }
        None => {
            tell_systemd_ready();
            server.add_service(proxy)
        }
    };

    // Always there: origin-request functions may generate responses even without directories.
    let local = LocalOrigin {
        dirs: node.dirs.clone(),
        generated: node.generated.clone(),
        forwards: node.forwards.clone(),
        connector: Arc::new(pingora::connectors::http::Connector::new(None)),
    };
    let mut local_service = Service::new("local origin".into(), LocalApp(local));
    local_service.add_uds(&local_socket.to_string_lossy(), None);
    local_service.threads = Some(1);
    let local_service = server.add_service(ReadyWhenAccepting::new(
        local_service,
        Probe::Unix(local_socket.clone()),
    ));
    proxy.add_dependency(&local_service);

    let reloader = Arc::new(Reloader {
        path: path.to_path_buf(),
        node: node.clone(),
        local_socket: local_socket.clone(),
        running: parking_lot::Mutex::new(()),
    });
    reloader.watch_sighup();
    let node_in_flight = node.in_flight.clone();
    let flush_traces = {
        let node = node.clone();
        // The spans of the last requests, before the process exits.
        move || {
            if let Some(tracing) = &node.tracing {
                tracing.shutdown();
            }
        }
    };
    if let Some(admin) = config.server.admin {
        let history = Arc::new(crate::admin::history::History::default());
        control.spawn(history.clone().run(node.clone()));
        let api = AdminApi {
            token: config.server.admin_token.clone(),
            metrics,
            node,
            reloader,
            history,
        };
        let mut admin_service = Service::new("admin".into(), HeadDeadline::new(LocalApp(api), head_timeout));
        admin_service.add_tcp(&admin.to_string());
        admin_service.threads = Some(1);
        let admin_service = server.add_service(admin_service);
        admin_service.add_dependency(&proxy);
    }

    tracing::info!(
        listen = ?config.server.listen,
        tls = ?config.server.tls.as_ref().map(|t| &t.listen),
        admin = ?config.server.admin,
        threads = config.server.threads,
        "edgehook serving"
    );
    let leave_fleet = {
        let (store, control) = (store.clone(), control.handle().clone());
        let flush_traces = flush_traces.clone();
        move || {
            leave(&control, store.as_ref());
            flush_traces();
        }
    };
    drain_then_exit(
        server.watch_execution_phase(),
        released,
        node_in_flight,
        runtime_dir.path().to_path_buf(),
        leave_fleet,
    );
    server.run(RunArgs {
        shutdown_signal: Box::new(DrainOnSignal),
    });
    leave(control.handle(), store.as_ref());
    flush_traces();
    control.shutdown_timeout(std::time::Duration::from_secs(1));
    tracing::info!("edgehook stopped");
    drop(runtime_dir);
    Ok(())
}

/// Tells the fleet this node is gone (its registration removed at once rather than when its
/// lease runs out, so purges stop waiting for it); bounded, for a store that is away.
fn leave(control: &tokio::runtime::Handle, store: &dyn StateStore) {
    control.block_on(async {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), store.leave()).await;
    });
}

/// Once pingora has stopped the listeners and entered its grace period, and the proxy's open
/// connections have had their moment to bring a request (`released`), waits until no request is
/// in flight (and stays so briefly, to let a request just read register), leaves the fleet,
/// then exits 0. If requests outlast `shutdown_timeout`, pingora's own grace period ends first
/// and it stops the runtimes.
fn drain_then_exit(
    mut phases: tokio::sync::broadcast::Receiver<ExecutionPhase>,
    released: Released,
    in_flight: InFlight,
    runtime_dir: std::path::PathBuf,
    leave_fleet: impl FnOnce() + Send + 'static,
) {
    let spawned = std::thread::Builder::new().name("drain".into()).spawn(move || {
        loop {
            match phases.blocking_recv() {
                Ok(ExecutionPhase::ShutdownGracePeriod) => break,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
        while !released.is_set() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let mut idle_checks = 0;
        while idle_checks < 3 {
            idle_checks = if in_flight.count() == 0 { idle_checks + 1 } else { 0 };
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        leave_fleet();
        tracing::info!("edgehook stopped: no request in flight");
        let _ = std::fs::remove_dir_all(&runtime_dir);
        std::process::exit(0);
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no drain watcher; shutdown waits the whole shutdown_timeout");
    }
}

/// Loads every configured function on the JS threads before serving, so a broken function is
/// reported at start-up and no request pays a cold start. The threads are plain OS threads:
/// edgehook does not daemonize, so nothing forks them away.
fn start_functions(config: &Config) -> Result<Option<Arc<JsPool>>, ServeError> {
    // Started even without functions, so that a reload can add some.
    let specs = config.functions.values().map(FunctionSpec::from).collect();
    let options = PoolOptions {
        threads: config.runtime.threads,
        queue: config.runtime.queue,
        max_wait: config.runtime.max_wait,
        snapshot: true,
        name_servers: config.server.resolver.clone(),
        inline: config.runtime.inline,
        inline_budget: config.runtime.inline_budget,
        js_thread_nice: config.runtime.js_thread_nice,
        idle_timeout: config.runtime.idle_timeout,
        max_instances: config.runtime.max_instances,
    };
    let started = std::time::Instant::now();
    let pool = JsPool::start(specs, &options).map_err(ServeError::Functions)?;
    tracing::info!(
        functions = config.functions.len(),
        threads = options.threads,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "functions loaded"
    );
    Ok(Some(Arc::new(pool)))
}

/// The directory origins of a config, by name.
fn dir_origins_of(config: &Config) -> std::collections::HashMap<String, DirOrigin> {
    config
        .origins
        .values()
        .filter_map(|o| match &o.kind {
            OriginKind::Dir(dir) => Some((o.name.clone(), dir.clone())),
            OriginKind::Http(_) => None,
        })
        .collect()
}

/// Where a running edgehook hands its listening sockets to its successor.
fn upgrade_socket(config: &Config) -> std::path::PathBuf {
    let _ = std::fs::create_dir_all(&config.state_dir);
    config.state_dir.join("upgrade.sock")
}
