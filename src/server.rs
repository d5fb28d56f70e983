//! Assembles a pingora server from a validated config: the proxy service (HTTP and HTTPS
//! listeners), the internal socket for directory origins, and the admin listener. Runs it until
//! SIGTERM or SIGINT, which both drain in-flight requests before exiting.

use crate::admin::api::AdminApi;
use crate::admin::metrics::Metrics;
use crate::cache::CacheLayer;
use crate::config::{Config, OriginKind};
use crate::local_http::LocalApp;
use crate::origin::dir::DirServer;
use crate::origin::Upstreams;
use crate::proxy::{Edge, EdgeProxy};
use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::listening::Service;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create the runtime directory: {0}")]
    RuntimeDir(std::io::Error),
    #[error("cannot set up TLS listener {address}: {message}")]
    Tls { address: String, message: String },
}

/// SIGTERM and SIGINT both mean "stop accepting, finish what is in flight, exit 0"; SIGQUIT
/// keeps pingora's meaning (hand the listening sockets to a new process, then drain).
struct DrainOnSignal;

#[async_trait]
impl ShutdownSignalWatch for DrainOnSignal {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) =
            (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::quit()))
        else {
            tracing::error!("cannot install signal handlers; shutting down");
            return ShutdownSignal::FastShutdown;
        };
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: draining and exiting"); ShutdownSignal::GracefulTerminate }
            _ = int.recv() => { tracing::info!("SIGINT: draining and exiting"); ShutdownSignal::GracefulTerminate }
            _ = quit.recv() => { tracing::info!("SIGQUIT: handing sockets over, then draining"); ShutdownSignal::GracefulUpgrade }
        }
    }
}

fn server_conf(config: &Config, runtime_dir: &std::path::Path) -> ServerConf {
    let mut conf = ServerConf::default();
    conf.threads = config.server.threads;
    conf.work_stealing = true;
    conf.grace_period_seconds = Some(config.server.grace_period.as_secs());
    conf.graceful_shutdown_timeout_seconds = Some(config.server.shutdown_timeout.as_secs().max(1));
    conf.upgrade_sock = runtime_dir.join("upgrade.sock").to_string_lossy().into_owned();
    conf.pid_file = runtime_dir.join("edgehook.pid").to_string_lossy().into_owned();
    conf
}

/// Serves `config` until a shutdown signal; returns once in-flight requests are done.
pub fn serve(config: Config) -> Result<(), ServeError> {
    let config = Arc::new(config);
    // A private directory for the internal socket (0700, removed on exit).
    let runtime_dir = tempfile::Builder::new().prefix("edgehook-").tempdir().map_err(ServeError::RuntimeDir)?;
    let local_socket = runtime_dir.path().join("origins.sock");

    let mut server = Server::new_with_opt_and_conf(None, server_conf(&config, runtime_dir.path()));
    server.bootstrap();

    let metrics = Arc::new(Metrics::new());
    let edge = Arc::new(Edge {
        config: config.clone(),
        cache: CacheLayer::new(&config.cache),
        upstreams: Upstreams::new(local_socket.clone(), &config.origins),
        metrics: metrics.clone(),
    });

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        EdgeProxy { edge: edge.clone() },
        "edgehook proxy",
    );
    for address in &config.server.listen {
        proxy.add_tcp(&address.to_string());
    }
    if let Some(tls) = &config.server.tls {
        for address in &tls.listen {
            let tls_error = |message: String| ServeError::Tls { address: address.to_string(), message };
            let mut settings = TlsSettings::intermediate(&tls.cert.to_string_lossy(), &tls.key.to_string_lossy())
                .map_err(|e| tls_error(e.to_string()))?;
            if tls.h2 {
                settings.enable_h2();
            }
            proxy.add_tls_with_settings(&address.to_string(), None, settings);
        }
    }
    server.add_service(proxy);

    let dir_origins = config
        .origins
        .values()
        .filter_map(|o| match &o.kind {
            OriginKind::Dir(dir) => Some((o.name.clone(), dir.clone())),
            OriginKind::Http(_) => None,
        })
        .collect::<std::collections::HashMap<_, _>>();
    if !dir_origins.is_empty() {
        let mut dir_service = Service::new("directory origins".into(), LocalApp(DirServer::new(dir_origins)));
        dir_service.add_uds(&local_socket.to_string_lossy(), None);
        dir_service.threads = Some(1);
        server.add_service(dir_service);
    }

    if let Some(admin) = config.server.admin {
        let api = AdminApi { token: config.server.admin_token.clone(), metrics, edge };
        let mut admin_service = Service::new("admin".into(), LocalApp(api));
        admin_service.add_tcp(&admin.to_string());
        admin_service.threads = Some(1);
        server.add_service(admin_service);
    }

    tracing::info!(
        listen = ?config.server.listen,
        tls = ?config.server.tls.as_ref().map(|t| &t.listen),
        admin = ?config.server.admin,
        threads = config.server.threads,
        "edgehook serving"
    );
    server.run(RunArgs { shutdown_signal: Box::new(DrainOnSignal) });
    tracing::info!("edgehook stopped");
    drop(runtime_dir);
    Ok(())
}
