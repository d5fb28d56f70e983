//! Entering an instance's isolate before using it.
//!
//! A JS thread holds one isolate per function. The QuickJS engine behind deno_core's V8 API
//! keeps the thread's *current* isolate and context in thread-locals, and many of its calls use
//! them instead of the isolate they are given: `Global::new` takes its reference through the
//! current context, a context's or a promise's isolate is the current one, deno_core's callbacks
//! build their scopes from it. A handle scope makes its isolate current, but an isolate's
//! `exit` (which rusty_v8 itself calls around every `Exception::error`) makes current the top of
//! the thread's stack of entered isolates: the one built last, since an isolate is entered when
//! built. So an instance that made an error from Rust (a failed dynamic `import()`, say) while
//! another isolate sat on top of the stack went on with the other isolate current: its handles
//! were taken and released through the wrong engine (a panic, then a corrupt heap).
//!
//! The rule that holds it: an isolate is entered for as long as it is used, and entered when it
//! is dropped (its drop exits it once, and disposing it takes every entry of it off the stack).
//! Nested enters and exits then always leave it on top.

use super::egress::{self, Egress};
use deno_core::JsRuntime;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// A runtime that is entered whenever it is used and when it is dropped.
pub struct Runtime {
    runtime: ManuallyDrop<JsRuntime>,
    /// Whose policy outbound requests made while it runs are checked against.
    egress: Option<Arc<Egress>>,
}

impl Runtime {
    /// Takes a runtime just built (its isolate is on top of the stack of entered isolates).
    pub fn new(runtime: JsRuntime, egress: Option<Arc<Egress>>) -> Runtime {
        Runtime {
            runtime: ManuallyDrop::new(runtime),
            egress,
        }
    }

    /// The runtime, its isolate entered until the guard is dropped.
    pub fn enter(&mut self) -> Entered<'_> {
        // SAFETY: the isolate is alive (owned here) and used only on this thread; the guard
        // exits it exactly once, after every use made through the guard.
        unsafe { self.runtime.v8_isolate().enter() };
        Entered {
            _egress: egress::enter(self.egress.clone()),
            runtime: &mut self.runtime,
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A panic may have left the engine in the middle of something: it is abandoned, not
            // torn down (see `Worker::run`).
            return;
        }
        // SAFETY: the isolate is alive until the `drop` below, which exits it once (rusty_v8
        // asserts that it is current) and disposes it; disposing removes the entry made here and
        // the one made when it was built. Nothing uses the runtime after.
        unsafe {
            self.runtime.v8_isolate().enter();
            ManuallyDrop::drop(&mut self.runtime);
        }
    }
}

/// A runtime whose isolate is entered (see `Runtime::enter`).
pub struct Entered<'a> {
    runtime: &'a mut JsRuntime,
    _egress: egress::Entered,
}

impl Deref for Entered<'_> {
    type Target = JsRuntime;
    fn deref(&self) -> &JsRuntime {
        self.runtime
    }
}

impl DerefMut for Entered<'_> {
    fn deref_mut(&mut self) -> &mut JsRuntime {
        self.runtime
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        // SAFETY: entered in `Runtime::enter`; the engine exits the last entry of this isolate.
        unsafe { self.runtime.v8_isolate().exit() };
    }
}
