//! Signals that ask for something again and again (SIGHUP: reload; SIGUSR1: reopen the logs),
//! each watched from a thread of its own, apart from the proxy's runtimes.

use tokio::signal::unix::SignalKind;

/// Runs `action` on every `signal`, on a thread named `thread`. Returns false (after logging
/// why) when the signal cannot be watched.
pub fn on_every(signal: SignalKind, thread: &str, mut action: impl FnMut() + Send + 'static) -> bool {
    let started = std::thread::Builder::new().name(thread.into()).spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        runtime.block_on(async move {
            let Ok(mut signals) = tokio::signal::unix::signal(signal) else {
                return;
            };
            while signals.recv().await.is_some() {
                action();
            }
        });
    });
    if let Err(e) = &started {
        tracing::warn!(error = %e, thread, "cannot watch a signal");
    }
    started.is_ok()
}
