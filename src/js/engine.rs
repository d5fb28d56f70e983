//! Process-wide engine set-up: where the engine's randomness comes from, and the state every
//! instance starts from (deno_core's own JavaScript and edgehook's bootstrap, evaluated once per
//! process and kept as an engine snapshot; an instance restored from it skips compiling and
//! running both, most of a cold start).

use deno_core::{JsRuntimeForSnapshot, RuntimeOptions};
use std::sync::{Once, OnceLock};

pub const BOOTSTRAP: &str = include_str!("runtime/bootstrap.js");

/// Runs before the first engine starts. `Math.random` then draws from the operating system's
/// generator in every instance, so no two instances (restored from one snapshot or created in
/// the same instant) replay the same sequence.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // Outbound TLS (deno_fetch) builds its configs with rustls's process-wide provider,
        // which must be chosen once both ring (ours, pingora's) and aws-lc-rs (deno's) are in.
        // An error means one was installed already, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // The engine's flags are set once per process by the first runtime: set them for
        // serving here, or a snapshot runtime made first would set its own (a fixed random
        // seed for every isolate).
        deno_core::JsRuntime::init_platform(None);
        deno_core::v8::V8::set_entropy_source(|buffer: &mut [u8]| {
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), buffer);
            true
        });
    });
}

/// Two things the QuickJS engine's Rust layer does unless told otherwise, both turned off here
/// through its environment switches (`.cargo/config.toml` sets them for the tests and
/// benchmarks, which use the library; the bootstrap removes `WebAssembly` in any case):
/// - `V82JSC_NO_BC_CACHE`: it writes the bytecode of every script and module it compiles to
///   `$XDG_CACHE_HOME/v8x/quickjs-bytecode` (or `~/.cache/...`), one file per source, never
///   removed, and on a later compile of the same source (found by a 64-bit hash) runs what it
///   finds there. A proxy must neither fill its user's home with every function version ever
///   deployed nor execute bytecode from a directory others may write to; the cache saves about
///   8 ms of a process's start (`edgehook invoke`: 61 against 69 ms, median of five) and
///   nothing per instance.
/// - `QJS_NO_WASM`: it gives every instance a `WebAssembly` whose instances' memories are not
///   counted against the function's `memory`: a 64 MiB function held 4 GiB with 64 instances of
///   a module declaring 64 MiB, and more would take the proxy down. Not installing it also
///   saves 3% of each instance's cold start (callgrind: 33.2 -> 32.1 million instructions).
///
/// # Safety
/// Sets environment variables: call it before any other thread exists.
pub unsafe fn set_engine_switches() {
    // SAFETY: the caller guarantees no other thread reads or writes the environment now.
    unsafe {
        std::env::set_var("V82JSC_NO_BC_CACHE", "1");
        std::env::set_var("QJS_NO_WASM", "1");
    }
}

/// The process's snapshot for instances with the web platform (`web`) or without, built on
/// first use; `None` when this engine cannot make one here (instances then run the bootstrap
/// themselves).
pub fn startup_snapshot(web: bool) -> Option<&'static [u8]> {
    static SNAPSHOTS: [OnceLock<Option<&'static [u8]>>; 2] = [OnceLock::new(), OnceLock::new()];
    *SNAPSHOTS[usize::from(web)].get_or_init(|| {
        if !cfg!(feature = "quickjs") {
            // V8 only makes snapshots in a process that has not run an isolate yet (deno
            // makes them at build time); keep the slower per-instance bootstrap there.
            return None;
        }
        let started = std::time::Instant::now();
        match build(web) {
            Ok(bytes) => {
                tracing::info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    bytes = bytes.len(),
                    web,
                    "engine snapshot made; instances start from it"
                );
                Some(Box::leak(bytes))
            }
            Err(error) => {
                tracing::warn!(%error, web, "no engine snapshot; instances will run the bootstrap themselves");
                None
            }
        }
    })
}

fn build(web: bool) -> Result<Box<[u8]>, String> {
    super::native_table::spend(web);
    let mut runtime = JsRuntimeForSnapshot::try_new(RuntimeOptions {
        extensions: super::web::snapshot_extensions(web).map_err(|e| e.to_string())?,
        ..Default::default()
    })
    .map_err(|e| e.to_string())?;
    runtime
        .execute_script("edgehook:bootstrap", BOOTSTRAP)
        .map_err(|e| e.to_string())?;
    Ok(runtime.snapshot())
}

#[cfg(test)]
mod tests {
    /// The snapshot is made (a failure would only log a warning and leave every instance
    /// starting three times slower), and it is made once.
    #[cfg(feature = "quickjs")]
    #[test]
    fn the_snapshot_is_made_once() {
        super::init();
        for web in [false, true] {
            let first = super::startup_snapshot(web).expect("the engine snapshot is made");
            assert!(!first.is_empty());
            let again = super::startup_snapshot(web).expect("still there");
            assert!(std::ptr::eq(first, again));
        }
    }
}
