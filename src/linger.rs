//! Open connections get a moment when the proxy's listeners close.
//!
//! Once a service's accept loops end (at the upgrade hand-over, 5 s after SIGQUIT, or at once on
//! SIGTERM and SIGINT), pingora calls the app's cleanup, and its HTTP proxy then closes every
//! connection waiting for a request. Among them: a connection accepted in the listeners' last
//! instant whose client has not written its request yet, and a keep-alive connection whose next
//! request is already on its way. Their clients saw the connection closed instead of an answer
//! (the upgrade test caught one such request in about 440, on a loaded machine). `Lingering`
//! holds that cleanup back while connections are open, for at most a moment: a request that
//! arrives meanwhile is served, with `Connection: close` as pingora answers every request once
//! shutdown began; connections still idle after it are closed. nginx likewise answers the first
//! request of a connection it accepted before a graceful stop.

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long open connections may still bring a request after the listeners closed.
pub const LINGER: Duration = Duration::from_secs(1);

/// A listening app whose connections outlive its listeners by up to `linger`.
pub struct Lingering<A> {
    app: Arc<A>,
    linger: Duration,
    open: OpenConnections,
    released: Released,
}

impl<A> Lingering<A> {
    pub fn new(app: A, linger: Duration, released: Released) -> Self {
        Lingering {
            app: Arc::new(app),
            linger,
            open: OpenConnections::default(),
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

/// The connections the app holds, so that a stop with none open does not linger.
#[derive(Default)]
struct OpenConnections {
    count: AtomicUsize,
    /// Notified when the count falls to zero; a notification nobody waits for is kept for the
    /// next waiter, so one between reading the count and waiting is not missed.
    none_left: tokio::sync::Notify,
}

impl OpenConnections {
    fn enter(&self) -> OpenConnection<'_> {
        self.count.fetch_add(1, Ordering::AcqRel);
        OpenConnection(self)
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Resolves once no connection is open, or at `deadline`.
    async fn closed_or(&self, deadline: tokio::time::Instant) {
        while self.count() > 0 {
            if tokio::time::timeout_at(deadline, self.none_left.notified())
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

struct OpenConnection<'a>(&'a OpenConnections);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.none_left.notify_one();
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Lingering<A> {
    async fn process_new(self: &Arc<Self>, session: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let _open = self.open.enter();
        self.app.process_new(session, shutdown).await
    }

    async fn cleanup(&self) {
        tracing::info!(
            open_connections = self.open.count(),
            linger_ms = self.linger.as_millis() as u64,
            "listeners closed: open connections may still bring a request"
        );
        self.open.closed_or(tokio::time::Instant::now() + self.linger).await;
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

    fn lingering(linger: Duration) -> (Lingering<CleanedAt>, Released) {
        let released = Released::default();
        (Lingering::new(CleanedAt::default(), linger, released.clone()), released)
    }

    /// Far longer than any test waits: a cleanup that ends ended for another reason.
    const FOREVER: Duration = Duration::from_secs(600);

    #[tokio::test]
    async fn an_open_connection_holds_the_cleanup_back_until_the_linger_ends() {
        let (lingering, released) = lingering(Duration::from_millis(200));
        let _open = lingering.open.enter();
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
        tokio::time::timeout(Duration::from_secs(10), cleanup)
            .await
            .expect("the linger ends with the connection still open");
        let cleaned_at = lingering.app.0.lock().expect("the app cleaned up");
        assert!(cleaned_at - started >= Duration::from_millis(200));
        assert!(released.is_set());
    }

    #[tokio::test]
    async fn the_cleanup_goes_on_once_the_last_connection_closes() {
        let (lingering, released) = lingering(FOREVER);
        let first = lingering.open.enter();
        let second = lingering.open.enter();
        let cleanup = lingering.cleanup();
        tokio::pin!(cleanup);
        drop(first);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut cleanup)
                .await
                .is_err(),
            "one connection is still open"
        );
        drop(second);
        tokio::time::timeout(Duration::from_secs(10), cleanup)
            .await
            .expect("no connection left to wait for");
        assert!(lingering.app.0.lock().is_some());
        assert!(released.is_set());
    }

    #[tokio::test]
    async fn with_no_connection_open_the_cleanup_does_not_linger() {
        let (lingering, released) = lingering(FOREVER);
        drop(lingering.open.enter());
        tokio::time::timeout(Duration::from_secs(10), lingering.cleanup())
            .await
            .expect("nothing to wait for");
        assert!(released.is_set());
    }
}
