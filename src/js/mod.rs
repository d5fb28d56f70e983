//! The JavaScript function runtime. A call runs on the caller's own thread when its function
//! is quick and that thread has an idle instance of it (`inline`); otherwise a pool of JS
//! threads takes it from a bounded queue (`pool`, `worker`). Instances are built where they are
//! needed, dropped when idle and bounded in number (`warm`); a supervisor stops scripts at their
//! timeout and has a JS thread whose script will not stop replaced (`supervisor`). `invoke` runs
//! an event and validates the result against the Lambda@Edge contract (`crate::edge`).
//!
//! ```text
//!  proxy thread (current-thread runtime)
//!  invoke(fn, event) --concurrency slot--> this thread's idle instance[fn]? --> run it here
//!        |                                     | no (or fn is slow)          ^ terminate at deadline
//!        |                                     v                             | supervisor thread
//!        |                              [bounded queue] --> JS thread k: instance[fn].invoke(event)
//!        +------------- oneshot reply (result JSON) <--------------------------+
//! ```

mod egress;
mod engine;
mod entry;
mod inline;
#[cfg(test)]
mod inline_tests;
mod instance;
mod keys;
mod marked;
mod module;
mod native_table;
mod ops;
mod pool;
pub mod resolve;
mod supervisor;
mod warm;
mod web;
#[cfg(test)]
mod web_tests;
mod worker;
mod zlib;

pub use egress::{CallOutcome, Egress, Outbound, OutboundCall};
pub(crate) use engine::set_engine_switches;
pub use module::ModuleKind;
pub use pool::{JsPool, PoolOptions};
pub use supervisor::ThreadHealth;

use crate::config::Function;
use crate::edge::event_json::EventJson;
use crate::edge::{self, Event, Outcome};
use crate::package::{CodeTree, Package};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Everything needed to run one function.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// The function's name (what `context.functionName` shows).
    pub name: Arc<str>,
    /// What the pool knows this code by: the name for `$LATEST`, `name:N` for version N.
    pub key: Arc<str>,
    /// The function's package (at `/var/task`) and layers (at `/opt`).
    pub code: CodeTree,
    /// Lambda's `file.export` (`index.handler`, `dist/app.handler`): the module, a path in the
    /// package without its extension, and the name it exports. A package of one file is that
    /// module whatever the file part says (`handler` alone names the export).
    pub handler: String,
    pub timeout: Duration,
    /// Heap limit in bytes.
    pub memory: usize,
    pub env: BTreeMap<String, String>,
    /// Maximum simultaneous invocations.
    pub concurrency: usize,
    pub version: String,
    /// Distinguishes successive code of one name (a new `$LATEST`); instances of an older
    /// revision are replaced. Assigned by `JsPool::register`.
    pub revision: u64,
    /// Whether the function lately read held-back headers one at a time (shared by its
    /// instances on every JS thread and the callers building its events).
    pub index_hint: Arc<IndexHint>,
    /// Where its outbound requests may go (shared by its instances).
    pub egress: Arc<Egress>,
    /// Whether its instances get the web platform (its code names one of its globals:
    /// `web::names_web_api`).
    pub web: bool,
    /// Whether its calls may run on the proxy's threads (`inline`), learnt from its calls and
    /// builds (shared by every thread).
    pub placement: Arc<Placement>,
}

/// Whether a function's events should carry the index of their held-back header map
/// (`edge::event_json::HeldBack::index`), which lets an instance parse the one header a function
/// reads. Building it costs every event a little; a function that reads no header one at a
/// time (none, or all of them) does without. Set for the next `INDEX_AFTER_READ` events of
/// the function each time one of its results says it read a header (or would have: without
/// the index the whole map is parsed instead).
#[derive(Debug, Default)]
pub struct IndexHint(std::sync::atomic::AtomicU32);

const INDEX_AFTER_READ: u32 = 64;

impl IndexHint {
    pub fn wanted(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed) > 0
    }

    /// A result read headers one at a time.
    pub fn read(&self) {
        self.0.store(INDEX_AFTER_READ, std::sync::atomic::Ordering::Relaxed);
    }

    /// A result that came with the index did not use it. (Several threads may count down at
    /// once; a count off by one is no matter.)
    pub fn unused(&self) {
        let left = self.0.load(std::sync::atomic::Ordering::Relaxed);
        self.0
            .store(left.saturating_sub(1), std::sync::atomic::Ordering::Relaxed);
    }
}

/// What a function's calls and builds have shown about running it on the proxy's threads
/// (`inline`).
#[derive(Debug, Default)]
pub struct Placement {
    /// Until when (milliseconds after `process_start`) its calls go to the JS threads: a call
    /// of it held a proxy thread too long, waited on a timer or a fetch, or failed.
    pooled_until: std::sync::atomic::AtomicU64,
    /// How long its last build took, in microseconds plus one (zero: never built).
    build_micros: std::sync::atomic::AtomicU64,
    /// Times it was sent to the JS threads: each doubles the time it stays there.
    strikes: std::sync::atomic::AtomicU32,
}

/// The instant `Placement`'s times count from.
fn process_start() -> std::time::Instant {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *START.get_or_init(std::time::Instant::now)
}

impl Placement {
    fn now_ms() -> u64 {
        process_start().elapsed().as_millis() as u64
    }

    /// Whether its calls go to the JS threads now.
    pub fn pooled(&self) -> bool {
        let until = self.pooled_until.load(std::sync::atomic::Ordering::Relaxed);
        until != 0 && Placement::now_ms() < until
    }

    /// Sends its calls to the JS threads for `period`, doubled for each time it was sent
    /// before (up to an hour): a function that keeps holding threads up stops being tried.
    pub fn pool_for(&self, period: Duration) {
        let strikes = self.strikes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let period = period
            .saturating_mul(1 << strikes.min(7))
            .min(Duration::from_secs(3600));
        let until = Placement::now_ms() + period.as_millis() as u64;
        self.pooled_until
            .store(until.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    pub fn built_in(&self, took: Duration) {
        let micros = took.as_micros().min(u64::MAX as u128 - 1) as u64;
        self.build_micros
            .store(micros + 1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How long its last build took, if it was built.
    pub fn build_time(&self) -> Option<Duration> {
        match self.build_micros.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            micros => Some(Duration::from_micros(micros - 1)),
        }
    }
}

impl FunctionSpec {
    /// A function of one source file with the documented defaults: handler `handler`, 5 s,
    /// 128 MiB, no env.
    pub fn new(name: &str, file_name: &str, source: &str) -> FunctionSpec {
        let file_name = file_name.rsplit('/').next().unwrap_or(file_name);
        let package = Arc::new(Package::single(file_name, source));
        FunctionSpec::packaged(name, CodeTree::new(package, Vec::new()), "handler")
    }

    /// A function whose code is `code`, with the documented defaults.
    pub fn packaged(name: &str, code: CodeTree, handler: &str) -> FunctionSpec {
        FunctionSpec {
            name: name.into(),
            key: name.into(),
            handler: handler.into(),
            timeout: Duration::from_secs(5),
            memory: 128 << 20,
            env: BTreeMap::new(),
            concurrency: 1000,
            version: "$LATEST".into(),
            revision: 0,
            index_hint: Default::default(),
            placement: Default::default(),
            egress: Arc::new(Egress::none()),
            web: web::names_web_api(&code),
            code,
        }
    }
}

impl FunctionSpec {
    /// The export the handler names.
    pub fn export(&self) -> &str {
        self.handler.rsplit('.').next().unwrap_or(&self.handler)
    }

    /// The module the handler names, as a path in the package (`Package::entry`).
    pub fn entry(&self) -> Result<String, String> {
        self.code.task.entry(&self.handler)
    }

    /// What error messages call the function's code: its entry module, or the handler.
    pub fn code_name(&self) -> String {
        self.entry().unwrap_or_else(|_| self.handler.clone())
    }
}

impl From<&Function> for FunctionSpec {
    fn from(function: &Function) -> FunctionSpec {
        let code = function.code_tree();
        FunctionSpec {
            name: function.name.as_str().into(),
            key: function.name.as_str().into(),
            handler: function.handler.clone(),
            timeout: function.timeout,
            memory: function.memory,
            env: function.env.clone(),
            concurrency: function.concurrency,
            version: "$LATEST".into(),
            revision: 0,
            index_hint: Default::default(),
            placement: Default::default(),
            egress: Arc::new(Egress::new(function.egress.clone())),
            web: web::names_web_api(&code),
            code,
        }
    }
}

/// How an invocation failed, before classification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("{error_type}: {message}")]
    Exception {
        error_type: String,
        message: String,
        stack: Option<String>,
    },
    #[error("the function did not finish within its timeout")]
    Timeout,
    /// The supervisor stopped the script (reported as `Timeout` once the worker knows why).
    #[error("execution terminated")]
    Terminated,
    #[error("the function exceeded its memory limit")]
    OutOfMemory,
    #[error("the function returned no result: it neither resolved nor called its callback")]
    NoResult,
    #[error("{0}")]
    InvalidResult(String),
    #[error("{0}")]
    Load(String),
    #[error("{0}")]
    Throttled(String),
    #[error("the function runtime is shutting down")]
    Unavailable,
    /// The JS thread running the call panicked (see `worker::Worker::run`).
    #[error("the function's JS thread failed (an internal error); a new thread is taking its place")]
    Crashed,
}

/// The three failure classes of Lambda@Edge (spec 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// 503 `LambdaExecutionError`: threw, rejected, called back with an error, timed out, ran
    /// out of memory, or could not be loaded.
    Execution,
    /// 502 `LambdaValidationError`: the result broke the contract.
    Validation,
    /// 503 `LambdaLimitExceeded`: throttled.
    LimitExceeded,
}

impl FailureClass {
    pub fn name(self) -> &'static str {
        match self {
            FailureClass::Execution => "LambdaExecutionError",
            FailureClass::Validation => "LambdaValidationError",
            FailureClass::LimitExceeded => "LambdaLimitExceeded",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            FailureClass::Validation => 502,
            FailureClass::Execution | FailureClass::LimitExceeded => 503,
        }
    }
}

/// A classified invocation failure whose message names the function, the rule broken and the
/// request id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} in function `{function}` (request {request_id}): {message}", .class.name())]
pub struct InvokeError {
    pub class: FailureClass,
    /// The error type as Lambda reports it (`TypeError`, `Runtime.Timeout`, ...).
    pub error_type: String,
    pub message: String,
    pub function: String,
    pub request_id: String,
}

impl InvokeError {
    fn new(failure: Failure, function: &str, request_id: &str) -> InvokeError {
        let (class, error_type, message) = match failure {
            Failure::Exception {
                error_type, message, ..
            } => (FailureClass::Execution, error_type, message),
            Failure::Timeout | Failure::Terminated => (
                FailureClass::Execution,
                "Runtime.Timeout".into(),
                Failure::Timeout.to_string(),
            ),
            Failure::OutOfMemory => (
                FailureClass::Execution,
                "Runtime.OutOfMemory".into(),
                Failure::OutOfMemory.to_string(),
            ),
            Failure::Load(message) => (FailureClass::Execution, "Runtime.LoadError".into(), message),
            Failure::Unavailable => (
                FailureClass::Execution,
                "Runtime.Unavailable".into(),
                Failure::Unavailable.to_string(),
            ),
            // What Lambda reports for a runtime process that died.
            Failure::Crashed => (
                FailureClass::Execution,
                "Runtime.ExitError".into(),
                Failure::Crashed.to_string(),
            ),
            Failure::NoResult => (
                FailureClass::Validation,
                "LambdaValidationError".into(),
                Failure::NoResult.to_string(),
            ),
            Failure::InvalidResult(message) => (FailureClass::Validation, "LambdaValidationError".into(), message),
            Failure::Throttled(message) => (FailureClass::LimitExceeded, "LambdaLimitExceeded".into(), message),
        };
        InvokeError {
            class,
            error_type,
            message,
            function: function.to_string(),
            request_id: request_id.to_string(),
        }
    }

    pub fn validation(error: edge::ValidationError, function: &str, request_id: &str) -> InvokeError {
        InvokeError::new(Failure::InvalidResult(error.0), function, request_id)
    }
}

impl JsPool {
    /// Runs `event` through `function` and validates the result against the event.
    pub async fn invoke(&self, function: &str, event: &Event) -> Result<Outcome, InvokeError> {
        self.invoke_reported(function, event).await.0
    }

    /// `invoke`, also giving the outbound calls the invocation made.
    pub async fn invoke_reported(&self, function: &str, event: &Event) -> (Result<Outcome, InvokeError>, Outbound) {
        let request_id = event.cf().config.request_id.clone();
        let answer = self
            .invoke_answer(
                function,
                |spec| EventJson::new(event, spec.index_hint.wanted()),
                edge::result::headers_listable(event),
                &request_id,
            )
            .await;
        let result = answer
            .result
            .map_err(|failure| InvokeError::new(failure, function, &request_id))
            .and_then(|json| {
                edge::validate(event, &json).map_err(|e| InvokeError::validation(e, function, &request_id))
            });
        (result, answer.outbound)
    }
}

#[cfg(test)]
mod tests;
