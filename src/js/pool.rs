//! The pool: JS threads fed by one bounded queue, a concurrency limit per function, and the
//! supervisor; with `inline`, calls run on the caller's own thread when they may (`inline`)
//! and the JS threads take the rest. Any JS thread can take any job: it builds the instance a
//! job needs if it has none.

use super::engine;
use super::inline::{Inline, Started};
use super::supervisor::{Supervisor, ThreadHealth};
use super::warm::{Census, Setup};
use super::worker::{Answer, Control, Job, Ready, Successor, Taken, Worker};
use super::{Failure, FunctionSpec};
use crate::edge::event_json::EventJson;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};

/// How long past its timeout (and the longest wait for a thread) a caller waits for a call
/// whose script has not stopped yet.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// How far below the proxy's threads a JS thread runs by default (`runtime.js_thread_nice`).
/// The JS threads take the slow calls (functions past their inline budget, or waiting on timers
/// and fetches); where one burns CPU on a core a proxy thread wants, the kernel gives that core
/// to the proxy thread about ten times in eleven at +10, so plain requests keep their latency
/// (docs/performance.md). A core nobody else wants still runs a JS thread at full speed.
pub const JS_THREAD_NICE: i32 = 10;

/// Lowers the calling thread's priority by `nice` (Linux: a nice value per thread).
fn yield_to_proxy_threads(nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid, getpriority and setpriority take no pointers; with PRIO_PROCESS and a
        // thread id, Linux reads and sets that one thread's nice value.
        let failed = unsafe {
            let thread = libc::gettid() as libc::id_t;
            let now = libc::getpriority(libc::PRIO_PROCESS, thread);
            libc::setpriority(libc::PRIO_PROCESS, thread, (now + nice).min(19)) != 0
        };
        if failed {
            tracing::warn!(error = %std::io::Error::last_os_error(), "a JS thread runs at the proxy's priority");
        }
    }
}

#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// JS threads (default: one per core).
    pub threads: usize,
    /// Jobs that may wait for a free thread.
    pub queue: usize,
    /// How long a call may wait for a concurrency slot or queue space before it is throttled.
    pub max_wait: Duration,
    /// Start instances from the process's engine snapshot (made once, when the first instance
    /// that wants it is built, in about a quarter of a second; each instance then starts about
    /// three times faster). One-shot commands that build a single instance leave it off.
    pub snapshot: bool,
    /// Name servers functions' outbound requests ask (empty: the system's).
    pub name_servers: Vec<std::net::SocketAddr>,
    /// Run calls on the caller's thread when it has a current-thread runtime (the proxy's
    /// threads) and the function's calls are quick (`inline`).
    pub inline: bool,
    /// How long an inline call may hold its thread before its function goes to the JS threads.
    pub inline_budget: Duration,
    /// How far below the calling threads the JS threads run: a nice value added to the
    /// process's (`yield_to_proxy_threads`).
    pub js_thread_nice: i32,
    /// How long an instance may sit unused before it is dropped.
    pub idle_timeout: Duration,
    /// Instances alive at once, on the JS threads and the callers' threads together (each JS
    /// thread may go one over, to run the call in hand).
    pub max_instances: usize,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            queue: 1024,
            max_wait: Duration::from_millis(100),
            snapshot: true,
            name_servers: Vec::new(),
            inline: false,
            inline_budget: Duration::from_millis(1),
            js_thread_nice: JS_THREAD_NICE,
            idle_timeout: Duration::from_secs(300),
            max_instances: 1024,
        }
    }
}

struct Registered {
    spec: Arc<FunctionSpec>,
    slots: Arc<Semaphore>,
}

impl Registered {
    /// `spec` with a fresh concurrency limit.
    fn new(spec: Arc<FunctionSpec>) -> Registered {
        let slots = Arc::new(Semaphore::new(spec.concurrency.max(1)));
        Registered { spec, slots }
    }
}

/// What the JS threads are made from, kept to make a replacement for a stuck one.
struct Crew {
    jobs: async_channel::Receiver<Job>,
    /// The control channel of every JS thread (a thread that exited leaves a closed one).
    controls: Mutex<Vec<async_channel::Sender<Control>>>,
    functions: RwLock<HashMap<String, Registered>>,
    supervisor: Arc<Supervisor>,
    setup: Setup,
    /// Starts a thread of this crew (given to each thread, for its successor).
    successor: Successor,
    /// The nice value its threads add to the process's.
    nice: i32,
}

impl Crew {
    /// Starts a JS thread on supervisor slot `index` that loads `functions`, then serves.
    fn spawn(&self, index: usize, functions: Vec<Arc<FunctionSpec>>, ready: Ready) -> std::io::Result<()> {
        let (control_tx, control) = async_channel::unbounded();
        {
            let mut controls = self.controls.lock();
            controls.retain(|c| !c.is_closed());
            controls.push(control_tx);
        }
        let nice = self.nice;
        let worker = Worker::new(
            index,
            functions,
            self.jobs.clone(),
            control,
            self.supervisor.clone(),
            self.setup.clone(),
            self.successor.clone(),
        );
        std::thread::Builder::new()
            .name(format!("edgehook-js-{index}"))
            .spawn(move || {
                yield_to_proxy_threads(nice);
                worker.run(ready)
            })
            .map(|_| ())
    }

    /// Starts a thread in place of one whose script would not stop (or that panicked); it
    /// builds instances as calls need them.
    fn replace(&self, index: usize) {
        let (ready, _) = std::sync::mpsc::channel();
        if let Err(e) = self.spawn(index, Vec::new(), ready) {
            tracing::error!(error = %e, "cannot start a replacement JS thread");
        }
    }
}

pub struct JsPool {
    jobs: async_channel::Sender<Job>,
    crew: Arc<Crew>,
    inline: Option<Arc<Inline>>,
    next_revision: AtomicU64,
    max_wait: Duration,
}

impl JsPool {
    /// Starts the threads; the first loads every function (the others build instances as calls
    /// need them). Returns once it has, or with the first load failure.
    pub fn start(functions: Vec<FunctionSpec>, options: &PoolOptions) -> Result<JsPool, Failure> {
        let threads = options.threads.max(1);
        // As many stuck threads may be replaced at once as there are threads.
        let supervisor = Supervisor::start(threads, threads)
            .map_err(|e| Failure::Load(format!("cannot start the supervisor: {e}")))?;
        let specs: Vec<Arc<FunctionSpec>> = functions.into_iter().map(Arc::new).collect();
        engine::init();
        let (jobs, receiver) = async_channel::bounded(options.queue.max(1));
        let setup = Setup {
            snapshot: options.snapshot,
            name_servers: options.name_servers.clone(),
            census: Census::new(options.max_instances),
            idle: options.idle_timeout,
        };
        let crew = Arc::new_cyclic(|crew: &std::sync::Weak<Crew>| Crew {
            successor: {
                let crew = crew.clone();
                Arc::new(move |index, functions, ready| match crew.upgrade() {
                    Some(crew) => crew.spawn(index, functions, ready),
                    None => Ok(()),
                })
            },
            jobs: receiver,
            controls: Mutex::new(Vec::with_capacity(threads)),
            functions: RwLock::new(
                specs
                    .iter()
                    .map(|spec| (spec.key.to_string(), Registered::new(spec.clone())))
                    .collect(),
            ),
            supervisor: supervisor.clone(),
            nice: options.js_thread_nice,
            setup: setup.clone(),
        });
        let inline = options
            .inline
            .then(|| Arc::new(Inline::new(supervisor.clone(), setup, options.inline_budget)));
        let pool = JsPool {
            jobs,
            crew: crew.clone(),
            inline,
            next_revision: AtomicU64::new(1),
            max_wait: options.max_wait,
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        for index in 0..threads {
            let functions = if index == 0 { specs.clone() } else { Vec::new() };
            crew.spawn(index, functions, ready_tx.clone())
                .map_err(|e| Failure::Load(format!("cannot start a JS thread: {e}")))?;
        }
        drop(ready_tx);
        for _ in 0..threads {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(failure)) => return Err(failure),
                Err(_) => return Err(Failure::Load("a JS thread stopped while loading".into())),
            }
        }
        let weak = Arc::downgrade(&crew);
        supervisor.on_stuck(Box::new(move |index| {
            if let Some(crew) = weak.upgrade() {
                crew.replace(index);
            }
        }));
        Ok(pool)
    }

    /// How the JS threads fare.
    pub fn health(&self) -> ThreadHealth {
        self.crew.supervisor.health()
    }

    /// Instances alive, on the JS threads and the proxy's threads.
    pub fn instances(&self) -> usize {
        self.crew.setup.census.live()
    }

    /// The spec registered under `key` (for tests).
    #[cfg(test)]
    pub fn crew_spec(&self, key: &str) -> Option<Arc<FunctionSpec>> {
        self.crew.functions.read().get(key).map(|r| r.spec.clone())
    }

    pub fn has_function(&self, name: &str) -> bool {
        self.crew.functions.read().contains_key(name)
    }

    /// The keys of the functions registered (`fn`, `fn:3`), sorted.
    pub fn function_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.crew.functions.read().keys().cloned().collect();
        keys.sort();
        keys
    }

    /// Adds a function, or replaces the code of one, without stopping anything: a JS thread is
    /// told to build the new code right away (which also measures its build for `inline`);
    /// calls already running finish on the old code; the next calls use the new. The caller
    /// has checked that the code loads.
    pub fn register(&self, mut spec: FunctionSpec) {
        spec.revision = self.next_revision.fetch_add(1, Ordering::Relaxed);
        spec.placement = Default::default();
        let spec = Arc::new(spec);
        self.crew
            .functions
            .write()
            .insert(spec.key.to_string(), Registered::new(spec.clone()));
        let controls = self.crew.controls.lock();
        if let Some(control) = controls.iter().find(|c| !c.is_closed()) {
            let _ = control.try_send(Control::Warm(spec.clone()));
        }
    }

    /// Runs `event` through `function`; returns the handler's result as JSON text, preceded by
    /// the names of the headers it kept as given when `list_headers` is set (see
    /// `Instance::invoke`).
    pub async fn invoke_json(
        &self,
        function: &str,
        event: EventJson,
        list_headers: bool,
        request_id: &str,
    ) -> Result<String, Failure> {
        self.invoke_with(function, |_| event, list_headers, request_id).await
    }

    /// `invoke_json` with the event's JSON made once the function is found (`event` sees its
    /// spec).
    pub async fn invoke_with(
        &self,
        function: &str,
        event: impl FnOnce(&FunctionSpec) -> EventJson,
        list_headers: bool,
        request_id: &str,
    ) -> Result<String, Failure> {
        self.invoke_answer(function, event, list_headers, request_id)
            .await
            .result
    }

    /// `invoke_with`, also giving the outbound calls the invocation made.
    pub async fn invoke_answer(
        &self,
        function: &str,
        event: impl FnOnce(&FunctionSpec) -> EventJson,
        list_headers: bool,
        request_id: &str,
    ) -> Answer {
        match self.call(function, event, list_headers, request_id).await {
            Ok(answer) => answer,
            Err(failure) => Answer::failed(failure),
        }
    }

    async fn call(
        &self,
        function: &str,
        event: impl FnOnce(&FunctionSpec) -> EventJson,
        list_headers: bool,
        request_id: &str,
    ) -> Result<Answer, Failure> {
        let (spec, slots) = self
            .crew
            .functions
            .read()
            .get(function)
            .map(|r| (r.spec.clone(), r.slots.clone()))
            .ok_or_else(|| Failure::Load(format!("no function named `{function}` is loaded")))?;
        let answer = self.place(spec.clone(), slots, event, list_headers, request_id).await;
        // A function that timed out or ran out of memory (here or on a JS thread, where its
        // caller may stop waiting long before the script ends) does not run on a proxy
        // thread for a while: it would hold that thread as long.
        let failure = match &answer {
            Ok(answer) => answer.result.as_ref().err(),
            Err(failure) => Some(failure),
        };
        if matches!(failure, Some(Failure::Timeout | Failure::OutOfMemory)) {
            spec.placement.pool_for(super::inline::POOLED_FOR);
        }
        answer
    }

    /// Runs the call on this thread or hands it to the JS threads.
    async fn place(
        &self,
        spec: Arc<FunctionSpec>,
        slots: Arc<Semaphore>,
        event: impl FnOnce(&FunctionSpec) -> EventJson,
        list_headers: bool,
        request_id: &str,
    ) -> Result<Answer, Failure> {
        let throttled = || {
            Failure::Throttled(format!(
                "The Lambda function associated with the CloudFront distribution was throttled (concurrency {})",
                spec.concurrency
            ))
        };
        let _slot = tokio::time::timeout(self.max_wait, slots.acquire_owned())
            .await
            .map_err(|_| throttled())?
            .map_err(|_| Failure::Unavailable)?;
        let mut event = Some(event(&spec));
        if let Some(inline) = &self.inline {
            let started = std::future::poll_fn(|cx| match event.take() {
                Some(offered) => Poll::Ready(Some(inline.start(cx, &spec, offered, list_headers, request_id))),
                None => Poll::Ready(None),
            })
            .await;
            match started {
                Some(Started::Done(answer)) => return Ok(answer),
                Some(Started::Waiting(waiting)) => return Ok(waiting.await),
                Some(Started::Declined(declined)) => event = Some(declined),
                None => {}
            }
        }
        let event = event.ok_or(Failure::Unavailable)?;
        let (reply, mut answer) = oneshot::channel();
        let taken = Arc::new(Taken::new());
        let job = Job {
            function: spec.clone(),
            event,
            list_headers,
            request_id: request_id.to_string(),
            reply,
            taken: taken.clone(),
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(async_channel::TrySendError::Full(job)) => {
                tokio::time::timeout(self.max_wait, self.jobs.send(job))
                    .await
                    .map_err(|_| throttled())?
                    .map_err(|_| Failure::Unavailable)?;
            }
            Err(async_channel::TrySendError::Closed(_)) => return Err(Failure::Unavailable),
        }
        // A script is stopped at its deadline, but QuickJS looks for the stop only every 10,000
        // calls and loop turns: a loop of a few long native calls (searches through a large
        // string, say) keeps its JS thread long after. The caller waits for it until
        // `STOP_GRACE` after the deadline; a call no thread took by then is throttled.
        let mut until = tokio::time::Instant::now() + self.max_wait + spec.timeout + STOP_GRACE;
        loop {
            match tokio::time::timeout_at(until, &mut answer).await {
                Ok(answer) => return answer.map_err(|_| Failure::Unavailable),
                Err(_) => match taken.at() {
                    None => return Err(throttled()),
                    Some(at) => {
                        let stop = tokio::time::Instant::from_std(at + spec.timeout + STOP_GRACE);
                        if stop <= until {
                            return Err(Failure::Timeout);
                        }
                        // Taken late, after a wait in the queue: its own time is not up yet.
                        until = stop;
                    }
                },
            }
        }
    }
}

impl Drop for JsPool {
    fn drop(&mut self) {
        self.jobs.close();
        for control in self.crew.controls.lock().iter() {
            control.close();
        }
        self.crew.supervisor.stop();
    }
}
