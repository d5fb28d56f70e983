//! Open connections get a moment when the proxy's listeners close.
//!
//! Once a service's accept loops end (at the upgrade hand-over, 5 s after SIGQUIT, or at once on
//! SIGTERM and SIGINT), pingora calls the app's cleanup, and its HTTP proxy then closes every
//! connection waiting for a request. Among them: a connection accepted in the listeners' last
//! instant whose client has not written its request yet, and a keep-alive connection whose next
//! request is already on its way. Their clients saw the connection closed instead of an answer
//! (the upgrade test caught one such request in about 440, on a loaded machine). `Lingering`
//! holds that cleanup back for a moment: a request that arrives meanwhile is served, with
//! `Connection: close` as pingora answers every request once shutdown began; connections still
//! idle after it are closed. nginx likewise answers the first request of a connection it
//! accepted before a graceful stop.
//!
//! It lingers the whole moment even when no connection seems open: a connection accepted in the
//! listeners' last instant may not have reached the app yet (its task not yet run, or its TLS
//! handshake under way), and counting connections in the app could not tell it from none. A stop
//! therefore takes a second more than its drain, an idle proxy's too.

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long open connections may still bring a request after the listeners closed.
pub const LINGER: Duration = Duration::from_secs(1);

/// A listening app whose connections outlive its listeners by `linger`.
pub struct Lingering<A> {
    app: Arc<A>,
    linger: Duration,
    released: Released,
}

impl<A> Lingering<A> {
    pub fn new(app: A, linger: Duration, released: Released) -> Self {
        Lingering {
            app: Arc::new(app),
            linger,
            released,
        }
    }
}

/// Set once the lingering ended and the app closed its idle connections: from then on, a request
/// in flight can only be one already counted, so the drain watcher may wait for none.
#[derive(Clone, Default)]
pub struct Released(Arc<AtomicBool>);

impl Released {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Lingering<A> {
    async fn process_new(self: &Arc<Self>, session: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        self.app.process_new(session, shutdown).await
    }

    async fn cleanup(&self) {
        tracing::info!(
            linger_ms = self.linger.as_millis() as u64,
            "listeners closed: open connections may still bring a request"
        );
        tokio::time::sleep(self.linger).await;
        self.app.cleanup().await;
        self.released.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An app that only notes when it was asked to clean up.
    #[derive(Default)]
    struct CleanedAt(parking_lot::Mutex<Option<Instant>>);

    #[async_trait]
    impl ServerApp for CleanedAt {
        async fn process_new(self: &Arc<Self>, _session: Stream, _shutdown: &ShutdownWatch) -> Option<Stream> {
            None
        }

        async fn cleanup(&self) {
            *self.0.lock() = Some(Instant::now());
        }
    }

    #[tokio::test]
    async fn the_app_cleans_up_after_the_linger_then_it_is_released() {
        let released = Released::default();
        let lingering = Lingering::new(CleanedAt::default(), Duration::from_millis(200), released.clone());
        let started = Instant::now();
        let cleanup = lingering.cleanup();
        tokio::pin!(cleanup);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut cleanup)
                .await
                .is_err(),
            "still lingering"
        );
        assert!(
            lingering.app.0.lock().is_none(),
            "the app kept its connections meanwhile"
        );
        assert!(!released.is_set());
        cleanup.await;
        let cleaned_at = lingering.app.0.lock().expect("the app cleaned up");
        assert!(cleaned_at - started >= Duration::from_millis(200));
        assert!(released.is_set());
    }
}
