//! One JS thread: a current-thread tokio runtime keeping warm instances of the functions it has
//! run. The first thread builds every function before the pool serves (so a broken function is
//! reported at start and every function's build time is known); the others build an instance
//! when a call first needs it. A thread runs jobs from the shared queue one at a time, replaces
//! an instance after a timeout or memory exhaustion, builds new code when told
//! (`Control::Warm`) or when a job brings a newer revision, and drops instances left idle.
//! A thread that has built as many instances as the engine lets one thread build
//! (`native_table`) hands its place to a fresh thread, with what it had left to load.

use super::egress::{Names, Outbound};
use super::native_table;
use super::supervisor::Supervisor;
use super::warm::{self, Setup, Warm};
use super::{Failure, FunctionSpec};
use crate::edge::event_json::EventJson;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long an idle JS thread polls for the next job before parking.
const SPIN: Duration = Duration::from_micros(50);

/// What a JS thread answers a call with: the handler's result, and the outbound calls the
/// invocation made.
#[derive(Debug)]
pub struct Answer {
    pub result: Result<String, Failure>,
    pub outbound: Outbound,
}

impl Answer {
    pub fn failed(failure: Failure) -> Answer {
        Answer {
            result: Err(failure),
            outbound: Outbound::default(),
        }
    }
}

pub struct Job {
    pub function: Arc<FunctionSpec>,
    pub event: EventJson,
    /// `edge::result::headers_listable` of the event: headers returned as given are listed by
    /// name instead of written out.
    pub list_headers: bool,
    pub request_id: String,
    pub reply: oneshot::Sender<Answer>,
    /// When a JS thread took the job (`Taken::at`), for a caller whose call does not come back.
    pub taken: Arc<Taken>,
}

/// When a job was taken by a JS thread, measured from the moment it was made.
pub struct Taken {
    made: Instant,
    /// Nanoseconds after `made`, plus one; zero while no thread has it.
    after: AtomicU64,
}

impl Taken {
    pub fn new() -> Taken {
        Taken {
            made: Instant::now(),
            after: AtomicU64::new(0),
        }
    }

    fn mark(&self) {
        let after = self.made.elapsed().as_nanos().min(u64::MAX as u128 - 1) as u64;
        self.after.store(after + 1, Ordering::Release);
    }

    pub fn at(&self) -> Option<Instant> {
        match self.after.load(Ordering::Acquire) {
            0 => None,
            after => Some(self.made + std::time::Duration::from_nanos(after - 1)),
        }
    }
}

/// Where a JS thread says that it has loaded its functions (or could not).
pub type Ready = std::sync::mpsc::Sender<Result<(), Failure>>;

/// Starts a fresh JS thread on slot `index` that loads `functions`, tells `ready`, then serves.
pub type Successor = Arc<dyn Fn(usize, Vec<Arc<FunctionSpec>>, Ready) -> std::io::Result<()> + Send + Sync>;

/// What a thread leaving for a fresh one hands over: the functions it had yet to load, and
/// who waits for them.
struct Handover {
    functions: Vec<Arc<FunctionSpec>>,
    ready: Ready,
}

/// Messages for one particular JS thread.
pub enum Control {
    /// Build (or rebuild) the instance of this function now.
    Warm(Arc<FunctionSpec>),
}

/// This thread's warm instances by function key.
#[derive(Default)]
struct Instances(HashMap<Arc<str>, Warm>);

impl Drop for Instances {
    fn drop(&mut self) {
        // A panic may have left an engine in the middle of something: dropping it could touch
        // inconsistent state. They are abandoned with the thread (see `Worker::run`).
        if std::thread::panicking() {
            for (_, warm) in self.0.drain() {
                std::mem::forget(warm);
            }
        }
    }
}

impl Instances {
    /// Drops the instances idle for `idle` or more; returns how many.
    fn sweep(&mut self, idle: Duration) -> usize {
        let before = self.0.len();
        self.0.retain(|_, warm| warm.used.elapsed() < idle);
        before - self.0.len()
    }

    /// Drops the instance used longest ago, other than `keep`'s.
    fn evict_one(&mut self, keep: &str) -> bool {
        let oldest = self
            .0
            .iter()
            .filter(|(key, _)| &***key != keep)
            .min_by_key(|(_, warm)| warm.used)
            .map(|(key, _)| key.clone());
        oldest.is_some_and(|key| self.0.remove(&key).is_some())
    }
}

/// The call a JS thread is working on: answered with `Failure::Crashed` if the thread panics.
struct InFlight {
    reply: oneshot::Sender<Answer>,
    function: Arc<str>,
    request_id: String,
}

pub struct Worker {
    index: usize,
    functions: Vec<Arc<FunctionSpec>>,
    jobs: async_channel::Receiver<Job>,
    control: async_channel::Receiver<Control>,
    supervisor: Arc<Supervisor>,
    setup: Setup,
    successor: Successor,
    /// The resolver of this thread's instances, made on first use.
    names: std::cell::OnceCell<Names>,
    /// Set when the supervisor replaced this thread (its script ran on past its stop): it
    /// finishes what it has in hand and exits.
    retired: std::cell::Cell<bool>,
    /// The call being run, until it is answered.
    in_flight: std::cell::RefCell<Option<InFlight>>,
}

impl Worker {
    /// A worker for supervisor slot `index`, to load `functions` and then serve `jobs`.
    pub fn new(
        index: usize,
        functions: Vec<Arc<FunctionSpec>>,
        jobs: async_channel::Receiver<Job>,
        control: async_channel::Receiver<Control>,
        supervisor: Arc<Supervisor>,
        setup: Setup,
        successor: Successor,
    ) -> Worker {
        Worker {
            index,
            functions,
            jobs,
            control,
            supervisor,
            setup,
            successor,
            names: Default::default(),
            retired: Default::default(),
            in_flight: Default::default(),
        }
    }

    /// Runs on its own thread until the queue closes. `ready` receives the outcome of loading.
    ///
    /// A panic (a bug of edgehook's or of the engine's) is caught here: the call in hand is
    /// answered `Failure::Crashed`, the thread's instances are abandoned (not dropped: the engine
    /// may be in the middle of something) and a new thread takes this one's place, building
    /// every function afresh.
    pub fn run(self, ready: Ready) {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = ready.send(Err(Failure::Load(format!("cannot start a JS thread runtime: {e}"))));
                return;
            }
        };
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(self.serve(ready))));
        match served {
            Ok(None) => {}
            Ok(Some(handover)) => self.hand_over(handover),
            Err(panic) => self.panicked(panic, runtime),
        }
    }

    /// Starts this thread's successor, its own instances dropped already.
    fn hand_over(&self, handover: Handover) {
        tracing::info!(
            worker = self.index,
            left_to_load = handover.functions.len(),
            "a JS thread has built as many instances as the engine allows one thread; a fresh thread takes its place"
        );
        let ready = handover.ready.clone();
        if let Err(e) = (self.successor)(self.index, handover.functions, handover.ready) {
            let failure = Failure::Load(format!("cannot start a JS thread: {e}"));
            if ready.send(Err(failure)).is_err() {
                tracing::error!(worker = self.index, error = %e, "cannot start a JS thread in place of a spent one");
            }
        }
    }

    fn panicked(&self, panic: Box<dyn std::any::Any + Send>, runtime: tokio::runtime::Runtime) {
        let panic = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        match self.in_flight.take() {
            Some(call) => {
                tracing::error!(
                    function = &*call.function,
                    request_id = %call.request_id,
                    worker = self.index,
                    panic,
                    "a JS thread panicked; the call fails and a new thread takes its place"
                );
                let _ = call.reply.send(Answer::failed(Failure::Crashed));
            }
            None => tracing::error!(
                worker = self.index,
                panic,
                "a JS thread panicked; a new thread takes its place"
            ),
        }
        // Its tasks may hold the abandoned engines' handles.
        std::mem::forget(runtime);
        self.supervisor.crashed(self.index);
    }

    async fn build(&self, instances: &mut Instances, spec: &Arc<FunctionSpec>) -> Result<Warm, Failure> {
        // The bound on instances: this thread gives up the one it used longest ago.
        if self.setup.census.full() && instances.evict_one(&spec.key) {
            tracing::debug!(
                worker = self.index,
                "dropped an instance to stay within runtime.max_instances"
            );
        }
        let (built, disarmed) = warm::build(spec, &self.setup, self.names(), &self.supervisor, self.index).await;
        if disarmed.is_some_and(|d| d.retired) {
            self.retired.set(true);
        }
        built
    }

    /// The resolver of outbound requests, made on this thread.
    fn names(&self) -> Names {
        self.names.get_or_init(|| self.setup.names()).clone()
    }

    /// The next job. A job often follows right after the last reply, so the thread spins for a
    /// few microseconds before parking: parking and being woken cost more than the spin.
    async fn next_job(&self) -> Option<Job> {
        let spin_until = Instant::now() + SPIN;
        loop {
            match self.jobs.try_recv() {
                Ok(job) => return Some(job),
                Err(async_channel::TryRecvError::Closed) => return None,
                Err(async_channel::TryRecvError::Empty) if Instant::now() < spin_until => std::hint::spin_loop(),
                Err(async_channel::TryRecvError::Empty) => return self.jobs.recv().await.ok(),
            }
        }
    }

    /// Loads this thread's functions, then serves until the pool closes (`None`) or the thread
    /// has spent its native-function table (`Some`: the successor takes over).
    async fn serve(&self, ready: Ready) -> Option<Handover> {
        let mut instances = Instances::default();
        for (loaded, spec) in self.functions.iter().enumerate() {
            if !native_table::room_for(1) {
                let functions = self.functions[loaded..].to_vec();
                return Some(Handover { functions, ready });
            }
            if let Err(failure) = self.ensure(&mut instances, spec).await {
                if let Err(unheard) = ready.send(Err(failure)) {
                    let failure = unheard.0.err().map(|f| f.to_string()).unwrap_or_default();
                    tracing::error!(
                        worker = self.index,
                        error = failure,
                        "a JS thread cannot load its functions"
                    );
                }
                return None;
            }
        }
        if ready.send(Ok(())).is_err() {
            // Nobody waits for a replacement: it says itself that it serves.
            tracing::info!(worker = self.index, "JS thread serving (in place of another)");
        }
        drop(ready);

        let mut sweep = tokio::time::interval(self.setup.sweep_period());
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.retired.get() {
                tracing::warn!(
                    worker = self.index,
                    "a replaced JS thread's script ended; the thread exits"
                );
                return None;
            }
            // A job may build twice (its function's new code, then a replacement after a
            // timeout): a thread without room for that leaves before taking one. This thread
            // said it was ready already: nobody waits for its successor.
            if !native_table::room_for(2) {
                return Some(Handover {
                    functions: Vec::new(),
                    ready: std::sync::mpsc::channel().0,
                });
            }
            let job = tokio::select! {
                biased;
                _ = sweep.tick() => {
                    let dropped = instances.sweep(self.setup.idle);
                    if dropped > 0 {
                        tracing::debug!(worker = self.index, dropped, "dropped idle instances");
                    }
                    continue;
                }
                control = self.control.recv() => match control {
                    // A function was registered or replaced: warm it before traffic needs it.
                    Ok(Control::Warm(spec)) => {
                        if let Err(failure) = self.ensure(&mut instances, &spec).await {
                            tracing::warn!(function = &*spec.name, error = %failure, "cannot warm the new code");
                        }
                        continue;
                    }
                    // The pool is gone (it closes both channels together).
                    Err(_) => return None,
                },
                job = self.next_job() => match job {
                    Some(job) => job,
                    None => return None,
                },
            };
            self.run_job(&mut instances, job).await;
        }
    }

    /// The warm instance for `spec`, built (or rebuilt, for new code) when needed. An instance
    /// of older code is dropped here, between invocations, so it always finishes its last one.
    async fn ensure<'a>(
        &self,
        instances: &'a mut Instances,
        spec: &Arc<FunctionSpec>,
    ) -> Result<&'a mut Warm, Failure> {
        let current = instances
            .0
            .get(&spec.key)
            .is_some_and(|warm| warm.revision == spec.revision);
        if !current {
            instances.0.remove(&spec.key);
            let warm = self.build(instances, spec).await?;
            instances.0.insert(spec.key.clone(), warm);
        }
        instances
            .0
            .get_mut(&spec.key)
            .ok_or_else(|| Failure::Load("the instance vanished".into()))
    }

    /// Answers the call in flight.
    fn answer(&self, answer: Answer) {
        if let Some(call) = self.in_flight.take() {
            let _ = call.reply.send(answer);
        }
    }

    async fn run_job(&self, instances: &mut Instances, job: Job) {
        let name = job.function.key.clone();
        if job.reply.is_closed() {
            // Its caller stopped waiting (it answered the viewer already, or the viewer left).
            tracing::debug!(function = &*name, request_id = %job.request_id, "skipping a call nobody waits for");
            return;
        }
        job.taken.mark();
        self.in_flight.replace(Some(InFlight {
            reply: job.reply,
            function: name.clone(),
            request_id: job.request_id.clone(),
        }));
        let warm = match self.ensure(instances, &job.function).await {
            Ok(warm) => warm,
            Err(failure) => {
                self.answer(Answer::failed(failure));
                return;
            }
        };
        // Fault injection for the tests of what a panic leaves behind.
        #[cfg(test)]
        if job.request_id == super::tests::PANIC_ON_PURPOSE {
            panic!("a panic on purpose");
        }
        let ran = warm::run(
            warm,
            &self.supervisor,
            self.index,
            &job.function,
            &job.event,
            &job.request_id,
            job.list_headers,
        )
        .await;
        if ran.disarmed.is_some_and(|d| d.retired) {
            self.retired.set(true);
        }
        let replace = ran.replace;
        self.answer(ran.answer);
        // A retired thread builds nothing more: it exits, its instances with it.
        if replace && !self.retired.get() {
            tracing::warn!(
                function = &*name,
                worker = self.index,
                "replacing the instance after a timeout or memory exhaustion"
            );
            instances.0.remove(&name);
            if let Err(failure) = self.ensure(instances, &job.function).await {
                tracing::error!(function = &*name, error = %failure, "cannot rebuild the instance");
            }
        }
    }
}
