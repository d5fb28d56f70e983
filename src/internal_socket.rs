//! The service of edgehook's internal Unix socket (directory origins, generated responses,
//! forwarded origin requests), reported ready to pingora only once the socket accepts
//! connections. The proxy service depends on it, so no listener of the proxy answers before the
//! socket its directory origins go through exists: pingora starts every service on its own
//! runtime, and a request in the first milliseconds used to find no socket and get a 502.

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::server::{ListenFds, RuntimeOpts, ShutdownWatch};
use pingora::services::listening::Service;
use pingora::services::{ServiceReadyNotifier, ServiceWithDependents};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long the proxy waits for the socket before it starts anyway (then with a warning: its
/// directory origins fail until the socket comes up, its HTTP origins work).
const READY_WAIT: Duration = Duration::from_secs(10);
/// The pause between two tries to connect while the socket is not there yet.
const RETRY_EVERY: Duration = Duration::from_millis(1);

pub struct ReadyWhenAccepting<A> {
    inner: Service<A>,
    socket: PathBuf,
}

impl<A> ReadyWhenAccepting<A> {
    /// `inner` must listen on `socket`.
    pub fn new(inner: Service<A>, socket: PathBuf) -> Self {
        ReadyWhenAccepting { inner, socket }
    }
}

/// Resolves once `socket` accepts a connection, or `within` has passed (false).
async fn accepting(socket: PathBuf, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        // A connection that sends nothing is closed by the local app without an answer.
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
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
        let socket = self.socket.clone();
        tokio::spawn(async move {
            if !accepting(socket.clone(), READY_WAIT).await {
                tracing::warn!(
                    socket = %socket.display(),
                    "the internal socket is not accepting yet; the proxy starts without it"
                );
            }
            ready.notify_ready();
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
        assert!(!accepting(socket.clone(), Duration::from_millis(30)).await);
        let waiting = tokio::spawn(accepting(socket.clone(), Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "nothing listens yet");
        let _listener = tokio::net::UnixListener::bind(&socket).unwrap();
        assert!(waiting.await.unwrap());
    }
}
