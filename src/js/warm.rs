//! Warm instances, as the JS threads (`worker`) and the proxy's threads (`inline`) keep them:
//! building one under the supervisor's watch, running a call under it, and counting the
//! instances alive against `runtime.max_instances`.

use super::egress::Names;
use super::engine;
use super::instance::Instance;
use super::supervisor::{Disarmed, Supervisor};
use super::worker::Answer;
use super::{Failure, FunctionSpec};
use crate::edge::event_json::EventJson;
use crate::origin::Resolver as NameResolver;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What every thread keeping instances of a pool is made with (JS threads and proxy threads).
#[derive(Clone)]
pub struct Setup {
    /// Whether instances start from the process's engine snapshot.
    pub snapshot: bool,
    /// Name servers of functions' outbound requests (empty: the system's).
    pub name_servers: Vec<std::net::SocketAddr>,
    /// The pool's instances, and their bound.
    pub census: Arc<Census>,
    /// How long an instance may sit unused before it is dropped.
    pub idle: Duration,
}

impl Setup {
    /// A resolver for outbound requests, to be made on the thread that uses it (hickory runs
    /// its exchanges on the runtime that made it).
    pub fn names(&self) -> Names {
        let made = if self.name_servers.is_empty() {
            NameResolver::from_system()
        } else {
            NameResolver::with_name_servers(&self.name_servers, crate::origin::CACHE_SIZE)
        };
        made.map(Arc::new).map_err(|error| {
            tracing::warn!(%error, "functions' outbound requests cannot resolve names");
            Arc::from(error.to_string())
        })
    }

    /// How often instances are looked at for idleness: a quarter of the idle time, within 1 s
    /// and a minute.
    pub fn sweep_period(&self) -> Duration {
        (self.idle / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
    }
}

/// How long a function's top-level code may run when an instance is built: Lambda's init
/// phase limit, 10 s whatever the function's timeout (loading the AWS SDK takes seconds).
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The instances alive in one pool (on its JS threads and on the proxy's threads), and how
/// many there may be.
#[derive(Debug)]
pub struct Census {
    live: AtomicUsize,
    max: usize,
}

impl Census {
    pub fn new(max: usize) -> Arc<Census> {
        Arc::new(Census {
            live: AtomicUsize::new(0),
            max: max.max(1),
        })
    }

    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Whether the bound is reached.
    pub fn full(&self) -> bool {
        self.live() >= self.max
    }
}

/// One instance counted in its census while it lives.
struct Counted(Arc<Census>);

impl Counted {
    fn new(census: &Arc<Census>) -> Counted {
        census.live.fetch_add(1, Ordering::Relaxed);
        Counted(census.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A warm instance of one revision of a function.
pub struct Warm {
    pub revision: u64,
    pub instance: Instance,
    /// When it last finished a call (or was built).
    pub used: Instant,
    /// Calls it has run.
    pub calls: u64,
    /// Its calls in a row that held a proxy thread past the inline budget (`inline`).
    pub over_budget: u32,
    _counted: Counted,
}

/// A supervisor slot armed for one script, disarmed when dropped (a call abandoned half-way
/// must not leave its deadline armed).
pub struct Watch<'a> {
    supervisor: &'a Supervisor,
    slot: usize,
    seq: Option<u64>,
}

impl<'a> Watch<'a> {
    pub fn new(supervisor: &'a Supervisor, slot: usize) -> Watch<'a> {
        Watch {
            supervisor,
            slot,
            seq: None,
        }
    }

    pub fn arm(&mut self, deadline: Instant, handle: deno_core::v8::IsolateHandle) -> u64 {
        let seq = self.supervisor.arm(self.slot, deadline, handle);
        self.seq = Some(seq);
        seq
    }

    /// Stops the watch; says whether the supervisor stopped the script.
    pub fn disarm(&mut self) -> Option<Disarmed> {
        self.seq.take().map(|seq| self.supervisor.disarm(self.slot, seq))
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        self.disarm();
    }
}

/// Builds an instance of `spec` on this thread, its top-level code watched from supervisor
/// slot `slot`; notes how long the build took in the function's `Placement`. Also returns what
/// the slot's disarm said (a retired JS thread must exit).
pub async fn build(
    spec: &Arc<FunctionSpec>,
    setup: &Setup,
    names: Names,
    supervisor: &Supervisor,
    slot: usize,
) -> (Result<Warm, Failure>, Option<Disarmed>) {
    let snapshot = if setup.snapshot {
        engine::startup_snapshot(spec.web)
    } else {
        None
    };
    // Timed after the process's snapshot, which the first build makes.
    let started = Instant::now();
    super::native_table::spend(spec.web);
    let mut watch = Watch::new(supervisor, slot);
    let limit = spec.timeout.max(INIT_TIMEOUT);
    let result = Instance::new(spec.clone(), snapshot, names, |handle| {
        watch.arm(Instant::now() + limit, handle)
    })
    .await;
    let disarmed = watch.disarm();
    let stopped = disarmed.is_some_and(|d| d.stopped);
    let result = match result {
        Err(Failure::Load(message)) if stopped => Err(Failure::Load(format!(
            "{message} (its top-level code ran past {} s)",
            limit.as_secs()
        ))),
        other => other,
    };
    let took = started.elapsed();
    if result.is_ok() {
        spec.placement.built_in(took);
    }
    tracing::debug!(
        function = &*spec.name,
        slot,
        elapsed_ms = took.as_secs_f64() * 1e3,
        "instance ready"
    );
    let warm = result.map(|instance| Warm {
        revision: spec.revision,
        instance,
        used: Instant::now(),
        calls: 0,
        over_budget: 0,
        _counted: Counted::new(&setup.census),
    });
    (warm, disarmed)
}

/// What one call left behind.
pub struct Ran {
    pub answer: Answer,
    /// The instance is not to be trusted again (stopped, timed out, out of memory).
    pub replace: bool,
    pub disarmed: Option<Disarmed>,
}

/// Runs one event through `warm`, stopped by the supervisor (slot `slot`) at the function's
/// timeout.
pub async fn run(
    warm: &mut Warm,
    supervisor: &Supervisor,
    slot: usize,
    spec: &FunctionSpec,
    event: &EventJson,
    request_id: &str,
    list_headers: bool,
) -> Ran {
    let instance = &mut warm.instance;
    let deadline = Instant::now() + spec.timeout;
    let mut watch = Watch::new(supervisor, slot);
    watch.arm(deadline, instance.isolate_handle());
    let (mut result, outbound) = instance.invoke(event, request_id, deadline, list_headers).await;
    let disarmed = watch.disarm();
    let stopped = disarmed.is_some_and(|d| d.stopped);
    // A stopped, timed-out or exhausted instance is not trusted again.
    let replace = stopped
        || instance.out_of_memory()
        || matches!(
            result,
            Err(Failure::Timeout | Failure::Terminated | Failure::OutOfMemory)
        );
    if stopped {
        // Whatever the script produced, it was still running at its deadline.
        instance.cancel_termination();
    }
    if stopped || matches!(result, Err(Failure::Terminated)) {
        result = Err(if instance.out_of_memory() {
            Failure::OutOfMemory
        } else {
            Failure::Timeout
        });
    }
    warm.used = Instant::now();
    warm.calls += 1;
    Ran {
        answer: Answer { result, outbound },
        replace,
        disarmed,
    }
}
