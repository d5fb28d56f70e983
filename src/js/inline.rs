//! Functions run on the proxy's own threads. Each proxy thread keeps warm instances of the
//! functions it has served, and a call is a direct call on the request's thread, as workerd and
//! nginx + njs run scripts: no queue, no JS thread to wake, no way back (together a fifth of a
//! function request's CPU on the JS threads).
//!
//! The proxy's threads each run a current-thread tokio runtime (pingora's `work_stealing =
//! false`), so a request's task never leaves its thread. An instance (not `Send`) lives in its
//! thread's `HOME`; a request's task holds only an id, and a poll from another thread finds
//! nothing there and fails the call (no `unsafe` is needed for this).
//!
//! A call runs inline only when it cannot hold the thread up for long:
//! - the function's calls settle at once, within `budget` (an instance's first call, which
//!   compiles what later calls reuse, is not held against it, nor a single call over: the
//!   system may have preempted it): calls over it twice in a row, one that waits for
//!   a timer or a fetch, a timeout or memory exhaustion sends the function's calls to the JS
//!   threads for `POOLED_FOR` (then it is tried here again);
//! - this thread has a warm, idle instance of it: otherwise the JS threads take the call and an
//!   instance is built here afterwards, for a function whose build took under `BUILD_LIMIT` and
//!   while the pool holds fewer than `runtime.max_instances` and the thread has room in its
//!   engine's native-function table (`native_table`; a proxy thread, unlike a JS thread,
//!   cannot be replaced by a fresh one, so once it is spent its calls all go to the JS threads);
//! - no other call or build is waiting on this thread: an isolate entered across an await must
//!   stay on top of the thread's entered isolates (`entry`), so only one may wait at a time.
//!
//! Instances idle for `runtime.idle_timeout` are dropped.

use super::egress::Names;
use super::native_table;
use super::supervisor::Supervisor;
use super::warm::{self, Setup, Warm};
use super::worker::Answer;
use super::{Failure, FunctionSpec};
use crate::edge::event_json::EventJson;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// How long a function whose call held a proxy thread past the budget runs on the JS threads.
pub const POOLED_FOR: Duration = Duration::from_secs(30);

/// Calls in a row over the budget that send a function to the JS threads.
const OVER_BUDGET_CALLS: u32 = 2;

/// Calls within `runtime.idle_timeout` that earn a function an instance on a proxy thread that
/// has spent half its engine's native-function table (`native_table`): rarely called functions,
/// dropped when idle and built again at their next call, would spend the rest.
const OFTEN: u32 = 8;

/// Functions whose instance takes longer than this to build are not built on a proxy thread
/// (cold starts are 3-12 ms; a function loading an SDK takes seconds).
pub(super) const BUILD_LIMIT: Duration = Duration::from_millis(50);

/// What the pool tells the proxy's threads.
pub struct Inline {
    /// Tells this pool's instances from another's on one thread (tests run several pools).
    pool: u64,
    supervisor: Arc<Supervisor>,
    setup: Setup,
    budget: Duration,
}

/// What became of a call offered to this thread.
pub enum Started {
    Done(Answer),
    /// It waits on a timer or a fetch: await this, on this thread.
    Waiting(Waiting),
    /// The JS threads are to take it.
    Declined(EventJson),
}

type Key = (u64, Arc<str>);

type LocalFuture = Pin<Box<dyn Future<Output = Option<Answer>>>>;

/// The call or build still running across polls on this thread.
struct Pending {
    id: u64,
    future: LocalFuture,
}

/// One proxy thread's instances and what runs on them.
#[derive(Default)]
struct Home {
    warm: HashMap<Key, Warm>,
    building: HashSet<Key>,
    pending: Option<Pending>,
    /// Supervisor slots free on this thread, by pool.
    slots: HashMap<u64, Vec<usize>>,
    /// The resolver of functions' outbound requests, by pool (hickory runs its exchanges on
    /// the runtime that made it: this thread's).
    names: HashMap<u64, Names>,
    /// Pools with a sweeper task on this thread.
    swept: HashSet<u64>,
    /// This thread has no room left for another instance (said once).
    spent: bool,
    /// Calls that found no instance here, by function, counted since the time given.
    asked: HashMap<Key, (u32, Instant)>,
    next_id: u64,
}

impl Drop for Home {
    fn drop(&mut self) {
        // The thread is ending: the engine's own thread-locals may be gone already, so the
        // instances are abandoned rather than torn down.
        for (_, warm) in self.warm.drain() {
            std::mem::forget(warm);
        }
        if let Some(pending) = self.pending.take() {
            std::mem::forget(pending);
        }
    }
}

thread_local! {
    static HOME: RefCell<Home> = RefCell::new(Home::default());
}

/// Whether the caller runs on a current-thread runtime, where a task stays on its thread.
fn on_thread_of_its_own() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread)
}

impl Inline {
    pub fn new(supervisor: Arc<Supervisor>, setup: Setup, budget: Duration) -> Inline {
        static POOLS: AtomicU64 = AtomicU64::new(1);
        Inline {
            pool: POOLS.fetch_add(1, Ordering::Relaxed),
            supervisor,
            setup,
            budget,
        }
    }

    /// Runs the call here if it may (see the module's documentation): polls it once with the
    /// caller's context.
    pub fn start(
        self: &Arc<Self>,
        cx: &mut Context<'_>,
        spec: &Arc<FunctionSpec>,
        event: EventJson,
        list_headers: bool,
        request_id: &str,
    ) -> Started {
        if !on_thread_of_its_own() || spec.placement.pooled() {
            return Started::Declined(event);
        }
        let key: Key = (self.pool, spec.key.clone());
        let (found, stale) = HOME.with(|home| {
            let mut home = home.borrow_mut();
            if home.pending.is_some() {
                return (None, None);
            }
            match home.warm.remove(&key) {
                Some(warm) if warm.revision == spec.revision => (Some(warm), None),
                other => (None, other),
            }
        });
        drop(stale);
        let Some(mut warm) = found else {
            self.build_later(spec, key);
            return Started::Declined(event);
        };
        let inline = self.clone();
        let called = spec.clone();
        let request_id = request_id.to_string();
        let call = async move {
            let started = Instant::now();
            let spec = called;
            let slot = inline.slot();
            let ran = warm::run(
                &mut warm,
                &inline.supervisor,
                slot,
                &spec,
                &event,
                &request_id,
                list_headers,
            )
            .await;
            inline.free_slot(slot);
            // An instance's first call compiles and sets up what later calls reuse, and a
            // call may be preempted by the system: only calls over the budget twice in a row
            // count against the function.
            let took = started.elapsed();
            if took > inline.budget && warm.calls > 1 {
                warm.over_budget += 1;
                if warm.over_budget >= OVER_BUDGET_CALLS {
                    inline.pool_function(&spec, took);
                }
            } else {
                warm.over_budget = 0;
            }
            if ran.replace {
                tracing::warn!(
                    function = &*spec.name,
                    "dropping the instance after a timeout or memory exhaustion; calls go to the JS threads for a while"
                );
                drop(warm);
            } else {
                let replaced = HOME.with(|home| home.borrow_mut().warm.insert(key, warm));
                drop(replaced);
            }
            Some(ran.answer)
        };
        let mut call: LocalFuture = Box::pin(call);
        match call.as_mut().poll(cx) {
            Poll::Ready(answer) => Started::Done(answer.unwrap_or_else(|| Answer::failed(Failure::Unavailable))),
            Poll::Pending => {
                // It waits on a timer or a fetch, and holds this thread's inline calls meanwhile.
                spec.placement.pool_for(POOLED_FOR);
                Started::Waiting(self.keep_pending(call))
            }
        }
    }

    fn pool_function(&self, spec: &FunctionSpec, took: Duration) {
        spec.placement.pool_for(POOLED_FOR);
        tracing::info!(
            function = &*spec.name,
            took_ms = took.as_secs_f64() * 1e3,
            budget_ms = self.budget.as_secs_f64() * 1e3,
            "a call held a proxy thread past runtime.inline_budget; the function's calls go to the JS threads for a while"
        );
    }

    fn keep_pending(&self, future: LocalFuture) -> Waiting {
        let id = HOME.with(|home| {
            let mut home = home.borrow_mut();
            home.next_id += 1;
            let id = home.next_id;
            home.pending = Some(Pending { id, future });
            id
        });
        Waiting {
            id,
            thread: std::thread::current().id(),
            finished: false,
        }
    }

    /// A supervisor slot for one script on this thread.
    fn slot(&self) -> usize {
        let free = HOME.with(|home| home.borrow_mut().slots.entry(self.pool).or_default().pop());
        free.unwrap_or_else(|| self.supervisor.inline_slot())
    }

    fn free_slot(&self, slot: usize) {
        HOME.with(|home| home.borrow_mut().slots.entry(self.pool).or_default().push(slot));
    }

    fn names(&self) -> Names {
        HOME.with(|home| {
            home.borrow_mut()
                .names
                .entry(self.pool)
                .or_insert_with(|| self.setup.names())
                .clone()
        })
    }

    /// Builds an instance of `spec` on this thread in a task of its own (the call that found
    /// none goes to the JS threads), if the function builds quickly and the bound allows.
    fn build_later(self: &Arc<Self>, spec: &Arc<FunctionSpec>, key: Key) {
        if spec.placement.build_time().is_none_or(|took| took > BUILD_LIMIT) || self.setup.census.full() {
            return;
        }
        if !native_table::room_for(1) {
            if !HOME.with(|home| std::mem::replace(&mut home.borrow_mut().spent, true)) {
                tracing::warn!("a proxy thread has built as many instances as the engine allows one thread; its function calls go to the JS threads from now on");
            }
            return;
        }
        if native_table::past_half() && !self.asked_often(&key) {
            return;
        }
        if !HOME.with(|home| home.borrow_mut().building.insert(key.clone())) {
            return;
        }
        self.sweep_here();
        let inline = self.clone();
        let spec = spec.clone();
        tokio::spawn(async move {
            let started = std::future::poll_fn(|cx| Poll::Ready(inline.start_build(cx, &spec, key.clone()))).await;
            if let Some(waiting) = started {
                waiting.await;
            }
        });
    }

    /// Counts a call of `key` that found no instance here; whether `OFTEN` have come within
    /// the idle timeout.
    fn asked_often(&self, key: &Key) -> bool {
        HOME.with(|home| {
            let mut home = home.borrow_mut();
            let now = Instant::now();
            let idle = self.setup.idle;
            // Bounded by the functions asked for within the idle timeout.
            if home.asked.len() >= 256 {
                home.asked.retain(|_, (_, since)| now.duration_since(*since) <= idle);
            }
            let asked = home.asked.entry(key.clone()).or_insert((0, now));
            if now.duration_since(asked.1) > idle {
                *asked = (0, now);
            }
            asked.0 += 1;
            let often = asked.0 >= OFTEN;
            if often {
                home.asked.remove(key);
            }
            often
        })
    }

    fn start_build(self: &Arc<Self>, cx: &mut Context<'_>, spec: &Arc<FunctionSpec>, key: Key) -> Option<Waiting> {
        // Another call waits on this thread, or the bound was reached since: a later call asks
        // again.
        let busy = HOME.with(|home| home.borrow().pending.is_some());
        if busy || self.setup.census.full() {
            HOME.with(|home| home.borrow_mut().building.remove(&key));
            return None;
        }
        let inline = self.clone();
        let spec = spec.clone();
        let build = async move {
            let slot = inline.slot();
            let (built, _) = warm::build(&spec, &inline.setup, inline.names(), &inline.supervisor, slot).await;
            inline.free_slot(slot);
            let replaced = HOME.with(|home| {
                let mut home = home.borrow_mut();
                home.building.remove(&key);
                match built {
                    Ok(warm) => home.warm.insert(key, warm),
                    Err(failure) => {
                        tracing::warn!(function = &*spec.name, error = %failure, "cannot build an instance on a proxy thread");
                        None
                    }
                }
            });
            drop(replaced);
            None
        };
        let mut build: LocalFuture = Box::pin(build);
        match build.as_mut().poll(cx) {
            Poll::Ready(_) => None,
            Poll::Pending => Some(self.keep_pending(build)),
        }
    }

    /// Starts this thread's sweeper of this pool's idle instances, if it has none: a task that
    /// ends when the thread holds none of them (an idle proxy has no timer firing) or the pool
    /// is gone.
    fn sweep_here(self: &Arc<Self>) {
        if !HOME.with(|home| home.borrow_mut().swept.insert(self.pool)) {
            return;
        }
        let pool = self.pool;
        let weak = Arc::downgrade(self);
        let period = self.setup.sweep_period();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let inline = weak.upgrade();
                let idle = inline.as_ref().map(|inline| inline.setup.idle);
                let (dropped, left) = HOME.with(|home| {
                    let mut home = home.borrow_mut();
                    let mut dropped = Vec::new();
                    let stale: Vec<Key> = home
                        .warm
                        .iter()
                        .filter(|((of, _), warm)| *of == pool && idle.is_none_or(|idle| warm.used.elapsed() >= idle))
                        .map(|(key, _)| key.clone())
                        .collect();
                    for key in stale {
                        dropped.extend(home.warm.remove(&key));
                    }
                    let left =
                        home.warm.keys().any(|(of, _)| *of == pool) || home.building.iter().any(|(of, _)| *of == pool);
                    if !left {
                        home.swept.remove(&pool);
                    }
                    (dropped, left)
                });
                if !dropped.is_empty() {
                    tracing::debug!(dropped = dropped.len(), "dropped idle instances on a proxy thread");
                }
                drop(dropped);
                if !left {
                    return;
                }
            }
        });
    }
}

/// A call or build waiting on the thread that started it; polled only there.
pub struct Waiting {
    id: u64,
    thread: ThreadId,
    finished: bool,
}

impl Waiting {
    fn take(&self) -> Option<Pending> {
        // `try_with`: a task dropped as its thread ends may find `HOME` gone.
        HOME.try_with(|home| {
            let mut home = home.borrow_mut();
            match &home.pending {
                Some(pending) if pending.id == self.id => home.pending.take(),
                _ => None,
            }
        })
        .ok()
        .flatten()
    }
}

impl Future for Waiting {
    type Output = Answer;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        if self.finished {
            return Poll::Ready(Answer::failed(Failure::Unavailable));
        }
        let here = std::thread::current().id() == self.thread;
        let Some(mut pending) = here.then(|| self.take()).flatten() else {
            self.finished = true;
            return Poll::Ready(Answer::failed(Failure::Unavailable));
        };
        // Polled outside the borrow of `HOME`: the call puts its instance back there.
        match pending.future.as_mut().poll(cx) {
            Poll::Ready(answer) => {
                self.finished = true;
                Poll::Ready(answer.unwrap_or_else(|| Answer::failed(Failure::Unavailable)))
            }
            Poll::Pending => {
                HOME.with(|home| home.borrow_mut().pending = Some(pending));
                Poll::Pending
            }
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        // A caller that stops waiting (its viewer left) ends the call: its instance goes with it.
        if !self.finished && std::thread::current().id() == self.thread {
            drop(self.take());
        }
    }
}

/// This pool's warm instances on this thread (for tests).
#[cfg(test)]
pub fn warm_here() -> usize {
    HOME.with(|home| home.borrow().warm.len())
}
