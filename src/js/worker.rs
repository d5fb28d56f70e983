//! One JS thread: a current-thread tokio runtime owning one instance of every function. It
//! builds them all before taking work (so no request pays a cold start), then runs jobs from the
//! shared queue one at a time, replaces an instance after a timeout or memory exhaustion, and
//! builds new code when told (`Control::Warm`) or when a job brings a newer revision.

use super::egress::{Names, Outbound};
use super::engine;
use super::instance::Instance;
use super::supervisor::Supervisor;
use super::{Failure, FunctionSpec};
use crate::edge::event_json::EventJson;
use crate::origin::Resolver as NameResolver;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

/// How long a function's top-level code may run when an instance is built: Lambda's init
/// phase limit, 10 s whatever the function's timeout (loading the AWS SDK takes seconds).
const INIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long an idle JS thread polls for the next job before parking.
const SPIN: std::time::Duration = std::time::Duration::from_micros(50);

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

/// Messages for one particular JS thread.
pub enum Control {
    /// Build (or rebuild) the instance of this function now.
    Warm(Arc<FunctionSpec>),
}

/// This thread's instances by function name, with the code revision each was built from.
#[derive(Default)]
struct Instances(HashMap<Arc<str>, (u64, Instance)>);

impl Drop for Instances {
    fn drop(&mut self) {
        // A panic may have left an engine in the middle of something: dropping it could touch
        // inconsistent state. They are abandoned with the thread (see `Worker::run`).
        if std::thread::panicking() {
            for (_, (_, instance)) in self.0.drain() {
                std::mem::forget(instance);
            }
        }
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
    /// Whether instances start from the process's engine snapshot.
    snapshot: bool,
    /// Name servers of functions' outbound requests (empty: the system's).
    name_servers: Vec<std::net::SocketAddr>,
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
        snapshot: bool,
        name_servers: Vec<std::net::SocketAddr>,
    ) -> Worker {
        Worker {
            index,
            functions,
            jobs,
            control,
            supervisor,
            snapshot,
            name_servers,
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
    pub fn run(self, ready: std::sync::mpsc::Sender<Result<(), Failure>>) {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = ready.send(Err(Failure::Load(format!("cannot start a JS thread runtime: {e}"))));
                return;
            }
        };
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(self.serve(ready))));
        if let Err(panic) = served {
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
    }

    async fn build(&self, spec: &Arc<FunctionSpec>) -> Result<Instance, Failure> {
        let started = Instant::now();
        let mut seq = None;
        let snapshot = if self.snapshot {
            engine::startup_snapshot(spec.web)
        } else {
            None
        };
        let result = Instance::new(spec.clone(), snapshot, self.names(), |handle| {
            let armed = self
                .supervisor
                .arm(self.index, Instant::now() + spec.timeout.max(INIT_TIMEOUT), handle);
            seq = Some(armed);
            armed
        })
        .await;
        let stopped = seq.is_some_and(|seq| self.disarm(seq));
        let result = match result {
            Err(Failure::Load(message)) if stopped => Err(Failure::Load(format!(
                "{message} (its top-level code ran past {} s)",
                spec.timeout.max(INIT_TIMEOUT).as_secs()
            ))),
            other => other,
        };
        tracing::debug!(
            function = &*spec.name,
            worker = self.index,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "instance ready"
        );
        result
    }

    /// The resolver of outbound requests, made on this thread (hickory runs its exchanges on
    /// the runtime that made it).
    fn names(&self) -> Names {
        self.names
            .get_or_init(|| {
                let made = if self.name_servers.is_empty() {
                    NameResolver::from_system()
                } else {
                    NameResolver::with_name_servers(&self.name_servers, crate::origin::CACHE_SIZE)
                };
                made.map(Arc::new).map_err(|error| {
                    tracing::warn!(%error, "functions' outbound requests cannot resolve names");
                    Arc::from(error.to_string())
                })
            })
            .clone()
    }

    /// Stops the supervisor's watch; true when it stopped the script. Notes a retirement.
    fn disarm(&self, seq: u64) -> bool {
        let disarmed = self.supervisor.disarm(self.index, seq);
        if disarmed.retired {
            self.retired.set(true);
        }
        disarmed.stopped
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

    async fn serve(&self, ready: std::sync::mpsc::Sender<Result<(), Failure>>) {
        let mut instances = Instances::default();
        for spec in &self.functions {
            if let Err(failure) = self.ensure(&mut instances, spec).await {
                if let Err(unheard) = ready.send(Err(failure)) {
                    let failure = unheard.0.err().map(|f| f.to_string()).unwrap_or_default();
                    tracing::error!(
                        worker = self.index,
                        error = failure,
                        "a JS thread cannot load its functions"
                    );
                }
                return;
            }
        }
        if ready.send(Ok(())).is_err() {
            // Nobody waits for a replacement: it says itself that it serves.
            tracing::info!(worker = self.index, "JS thread serving (in place of a stuck one)");
        }
        drop(ready);

        loop {
            if self.retired.get() {
                tracing::warn!(
                    worker = self.index,
                    "a replaced JS thread's script ended; the thread exits"
                );
                return;
            }
            let job = tokio::select! {
                biased;
                control = self.control.recv() => match control {
                    // A function was registered or replaced: warm it before traffic needs it.
                    Ok(Control::Warm(spec)) => {
                        if let Err(failure) = self.ensure(&mut instances, &spec).await {
                            tracing::warn!(function = &*spec.name, error = %failure, "cannot warm the new code");
                        }
                        continue;
                    }
                    // The pool is gone (it closes both channels together).
                    Err(_) => return,
                },
                job = self.next_job() => match job {
                    Some(job) => job,
                    None => return,
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
    ) -> Result<&'a mut Instance, Failure> {
        let current = instances
            .0
            .get(&spec.key)
            .is_some_and(|(revision, _)| *revision == spec.revision);
        if !current {
            instances.0.remove(&spec.key);
            let instance = self.build(spec).await?;
            instances.0.insert(spec.key.clone(), (spec.revision, instance));
        }
        instances
            .0
            .get_mut(&spec.key)
            .map(|(_, instance)| instance)
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
        let instance = match self.ensure(instances, &job.function).await {
            Ok(instance) => instance,
            Err(failure) => {
                self.answer(Answer::failed(failure));
                return;
            }
        };
        let deadline = Instant::now() + job.function.timeout;
        let seq = self.supervisor.arm(self.index, deadline, instance.isolate_handle());
        // Fault injection for the tests of what a panic leaves behind.
        #[cfg(test)]
        if job.request_id == super::tests::PANIC_ON_PURPOSE {
            panic!("a panic on purpose");
        }
        let (mut result, outbound) = instance
            .invoke(&job.event, &job.request_id, deadline, job.list_headers)
            .await;
        let stopped = self.disarm(seq);
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
        self.answer(Answer { result, outbound });
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
