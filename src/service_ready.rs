//! Services reported ready to pingora only once their listener accepts connections, so that a
//! service depending on one starts after it really serves. pingora starts every service on its
//! own runtime and reports a listening service ready before its sockets are bound: a request in
//! the first milliseconds used to find no internal socket and get a 502, and `/healthz` could
//! answer before the proxy listened. The order now: the internal socket (directory origins,
//! generated responses, forwarded origin requests), then the proxy, then the admin listener.

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::server::{ListenFds, RuntimeOpts, ShutdownWatch};
use pingora::services::listening::Service;
use pingora::services::{ServiceReadyNotifier, ServiceWithDependents};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a dependent service waits before it starts anyway (then with a warning).
const READY_WAIT: Duration = Duration::from_secs(10);
/// The pause between two tries to connect while nothing listens yet.
const RETRY_EVERY: Duration = Duration::from_millis(1);

/// Where a service is tried.
#[derive(Debug, Clone)]
pub enum Probe {
    Unix(PathBuf),
    /// A TCP listen address; a wildcard one is tried on loopback.
    Tcp(SocketAddr),
}

impl Probe {
    async fn connects(&self) -> bool {
        match self {
            Probe::Unix(path) => tokio::net::UnixStream::connect(path).await.is_ok(),
            Probe::Tcp(address) => {
                let mut address = *address;
                if address.ip().is_unspecified() {
                    address.set_ip(match address.ip() {
                        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
                    });
                }
                tokio::net::TcpStream::connect(address).await.is_ok()
            }
        }
    }
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Probe::Unix(path) => write!(f, "{}", path.display()),
            Probe::Tcp(address) => write!(f, "{address}"),
        }
    }
}

pub struct ReadyWhenAccepting<A> {
    inner: Service<A>,
    probe: Probe,
    /// Run once the service accepts.
    on_ready: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl<A> ReadyWhenAccepting<A> {
    /// `inner` must listen where `probe` tries.
    pub fn new(inner: Service<A>, probe: Probe) -> Self {
        ReadyWhenAccepting {
            inner,
            probe,
            on_ready: None,
        }
    }

    /// Runs `action` once the service accepts (or has been waited for long enough).
    pub fn on_ready(mut self, action: impl FnOnce() + Send + Sync + 'static) -> Self {
        self.on_ready = Some(Box::new(action));
        self
    }
}

/// Resolves once `probe` connects, or `within` has passed (false). The connection sends
/// nothing; the service closes it without an answer.
async fn accepting(probe: &Probe, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if probe.connects().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServiceWithDependents for ReadyWhenAccepting<A> {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
        ready: ServiceReadyNotifier,
    ) {
        let probe = self.probe.clone();
        let name = pingora::services::Service::name(&self.inner).to_string();
        let on_ready = self.on_ready.take();
        tokio::spawn(async move {
            if !accepting(&probe, READY_WAIT).await {
                tracing::warn!(
                    service = name,
                    address = %probe,
                    "not accepting yet; the services that depend on it start without it"
                );
            }
            ready.notify_ready();
            if let Some(action) = on_ready {
                action();
            }
        });
        pingora::services::Service::start_service(&mut self.inner, fds, shutdown, listeners_per_fd).await
    }

    fn name(&self) -> &str {
        pingora::services::Service::name(&self.inner)
    }

    fn threads(&self) -> Option<usize> {
        pingora::services::Service::threads(&self.inner)
    }

    fn runtime_opts_override(&self, global: &RuntimeOpts) -> Option<RuntimeOpts> {
        pingora::services::Service::runtime_opts_override(&self.inner, global)
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        pingora::services::Service::listen_addresses(&self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepting_waits_for_a_listener_and_gives_up_after_its_time() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("s.sock");
        let probe = Probe::Unix(socket.clone());
        assert!(!accepting(&probe, Duration::from_millis(30)).await);
        let waiting = tokio::spawn(async move { accepting(&probe, Duration::from_secs(10)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "nothing listens yet");
        let _listener = tokio::net::UnixListener::bind(&socket).unwrap();
        assert!(waiting.await.unwrap());
    }

    #[tokio::test]
    async fn a_wildcard_address_is_tried_on_loopback() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let wildcard = Probe::Tcp(SocketAddr::from(([0, 0, 0, 0], port)));
        assert!(accepting(&wildcard, Duration::from_secs(5)).await);
        drop(listener);
        assert!(!accepting(&wildcard, Duration::from_millis(20)).await);
    }
}
