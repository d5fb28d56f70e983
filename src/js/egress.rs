//! A function's outbound requests (`fetch`, and `http`/`https` built on it): where they may go
//! (`config::Egress`), checked in Rust on every request and every redirect, by name and port
//! before resolution and by address after it; how many may be in flight; which certificates
//! their TLS trusts.
//!
//! deno_fetch sends the requests. Its request hook is a plain function, called while the
//! instance's script runs (`op_fetch` is synchronous), so the policy of the instance under way
//! is found in a thread-local that `entry::Runtime::enter` sets. Its resolver is given per
//! instance and holds the policy itself: resolution happens later, in a task of its own.

use crate::config::Egress as EgressConfig;
use crate::origin::Resolver as NameResolver;
use deno_core::{op2, CancelFuture, CancelHandle, OpState};
use deno_error::JsErrorBox;
use deno_fetch::dns::{Resolve, Resolving};
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;

/// One function's egress, shared by its instances on every thread.
#[derive(Debug)]
pub struct Egress {
    pub config: EgressConfig,
    /// Requests of the function in flight, at most `config.concurrency`.
    pub slots: Arc<tokio::sync::Semaphore>,
    roots: OnceLock<Result<rustls::RootCertStore, String>>,
}

impl Egress {
    pub fn new(config: EgressConfig) -> Egress {
        Egress {
            slots: Arc::new(tokio::sync::Semaphore::new(config.concurrency)),
            config,
            roots: OnceLock::new(),
        }
    }

    /// What a function without settings gets: no egress.
    pub fn none() -> Egress {
        Egress::new(EgressConfig::none("the function's egress setting"))
    }

    /// The system's trusted roots and the function's `ca_file`, read on first use.
    fn roots(&self) -> Result<&rustls::RootCertStore, JsErrorBox> {
        self.roots
            .get_or_init(|| {
                let mut store = rustls::RootCertStore::empty();
                for root in system_roots() {
                    // A system certificate rustls cannot use is skipped, as browsers do.
                    let _ = store.add(root.clone());
                }
                for der in &self.config.ca {
                    store
                        .add(rustls::pki_types::CertificateDer::from(der.clone()))
                        .map_err(|e| format!("ca_file: {e}"))?;
                }
                Ok(store)
            })
            .as_ref()
            .map_err(|message| JsErrorBox::type_error(message.clone()))
    }
}

/// The system's trusted certificates (`/etc/ssl/certs` and the like), read once per process.
fn system_roots() -> &'static [rustls::pki_types::CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<rustls::pki_types::CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| match rustls_native_certs::load_native_certs() {
        Ok(roots) => roots,
        Err(error) => {
            tracing::warn!(%error, "cannot read the system's trusted certificates; outbound TLS trusts only ca_file");
            Vec::new()
        }
    })
}

struct Roots(Arc<Egress>);

impl deno_tls::RootCertStoreProvider for Roots {
    fn get_or_try_init(&self) -> Result<&rustls::RootCertStore, JsErrorBox> {
        self.0.roots()
    }
}

thread_local! {
    /// The egress of the instance whose script runs on this thread (`entry::Runtime::enter`).
    static CURRENT: RefCell<Option<Arc<Egress>>> = const { RefCell::new(None) };
}

/// Makes `egress` the one requests are checked against until the guard drops.
pub fn enter(egress: Option<Arc<Egress>>) -> Entered {
    Entered {
        previous: CURRENT.with(|current| current.replace(egress)),
    }
}

pub struct Entered {
    previous: Option<Arc<Egress>>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|current| current.replace(previous));
    }
}

/// deno_fetch's hook on each request it is about to send (redirects included).
fn check_request(request: &mut http::Request<deno_fetch::ReqBody>) -> Result<(), JsErrorBox> {
    let url = url::Url::parse(&request.uri().to_string())
        .map_err(|e| JsErrorBox::type_error(format!("outbound request to {}: {e}", request.uri())))?;
    let host = url.host_str().unwrap_or_default();
    let Some(port) = url.port_or_known_default() else {
        return Err(JsErrorBox::type_error(format!("outbound request to {url}: no port")));
    };
    CURRENT.with(|current| match current.borrow().as_ref() {
        Some(egress) => egress
            .config
            .rules
            .check(host, port)
            .map_err(|refusal| JsErrorBox::type_error(refusal.to_string())),
        None => Err(JsErrorBox::type_error(format!(
            "outbound request to {host}:{port} refused: no function is running"
        ))),
    })
}

/// The resolver of a JS thread's outbound requests, or why it could not be made.
pub type Names = Result<Arc<NameResolver>, Arc<str>>;

/// Resolves names through the proxy's resolver and drops internal addresses the policy does
/// not list; when nothing is left, the request fails with the refusal.
#[derive(Debug)]
struct CheckedResolver {
    egress: Arc<Egress>,
    names: Names,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: hyper_util::client::legacy::connect::dns::Name) -> Resolving {
        let egress = self.egress.clone();
        let names = self.names.clone();
        Box::pin(async move {
            let name = name.as_str();
            let names = names.map_err(|error| std::io::Error::other(format!("resolving {name}: {error}")))?;
            let found = names
                .addresses(name, 0)
                .await
                .map_err(|e| std::io::Error::other(format!("resolving {name}: {e}")))?;
            let mut refusal = None;
            let allowed: Vec<SocketAddr> = found
                .iter()
                .filter(|address| match egress.config.rules.check_resolved(name, address.ip()) {
                    Ok(()) => true,
                    Err(refused) => {
                        refusal.get_or_insert(refused);
                        false
                    }
                })
                .copied()
                .collect();
            match (allowed.is_empty(), refusal) {
                (true, Some(refusal)) => Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    refusal.to_string(),
                )),
                _ => Ok(allowed.into_iter()),
            }
        })
    }
}

/// deno_fetch's options for an instance of a function with `egress`.
pub fn fetch_options(egress: Arc<Egress>, names: Names) -> deno_fetch::Options {
    deno_fetch::Options {
        // What Node.js 20's fetch sends.
        user_agent: "node".into(),
        root_cert_store_provider: Some(Arc::new(Roots(egress.clone()))),
        request_builder_hook: Some(check_request),
        resolver: deno_fetch::dns::Resolver::custom(Arc::new(CheckedResolver { egress, names })),
        ..Default::default()
    }
}

/// How one outbound call of an invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// A response with this status came back.
    Status(u16),
    /// The request failed: connection, TLS, DNS, a response over the size cap.
    Failed,
    /// The egress policy refused it; it never left.
    Refused,
    /// Still running when its invocation ended, and cancelled.
    Cancelled,
}

impl CallOutcome {
    /// The `status_class` label of `edgehook_function_egress_requests_total`.
    pub fn class(self) -> &'static str {
        match self {
            CallOutcome::Status(100..=199) => "1xx",
            CallOutcome::Status(200..=299) => "2xx",
            CallOutcome::Status(300..=399) => "3xx",
            CallOutcome::Status(400..=499) => "4xx",
            CallOutcome::Status(_) => "5xx",
            CallOutcome::Failed => "error",
            CallOutcome::Refused => "refused",
            CallOutcome::Cancelled => "cancelled",
        }
    }
}

/// One outbound call: to which host, how it ended, and how long it took until its response's
/// head arrived (or it failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundCall {
    pub host: String,
    pub outcome: CallOutcome,
    pub elapsed: Duration,
}

/// The outbound calls an invocation made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outbound {
    pub calls: Vec<OutboundCall>,
}

impl Outbound {
    /// Calls that went out (refused ones did not).
    pub fn sent(&self) -> impl Iterator<Item = &OutboundCall> {
        self.calls.iter().filter(|call| call.outcome != CallOutcome::Refused)
    }

    /// The time spent in calls that went out, summed.
    pub fn time(&self) -> Duration {
        self.sent().map(|call| call.elapsed).sum()
    }
}

/// An instance's outbound calls of the invocation under way (shared through its `OpState`).
type SharedLedger = Rc<RefCell<Ledger>>;

struct Ledger {
    /// Counts invocations: a slot granted after the invocation that asked for it ended is
    /// given back at once.
    generation: u64,
    /// Whether the invocation made a request (its script then has requests to abort).
    used: bool,
    next: u32,
    open: HashMap<u32, OpenCall>,
    done: Vec<OutboundCall>,
    /// Cancels requests still waiting for a slot when the invocation ends.
    cancel: Rc<CancelHandle>,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            generation: 0,
            used: false,
            next: 0,
            open: HashMap::new(),
            done: Vec::new(),
            cancel: Rc::new(CancelHandle::new()),
        }
    }
}

/// A call that holds one of its function's slots: until its response body is read, or the
/// invocation ends.
struct OpenCall {
    host: String,
    started: Instant,
    recorded: bool,
    _slot: OwnedSemaphorePermit,
}

impl Ledger {
    /// Records how call `id` ended (once), and frees its slot with `release`.
    fn end(&mut self, id: u32, outcome: CallOutcome, release: bool) {
        let Some(call) = self.open.get_mut(&id) else { return };
        if !call.recorded {
            call.recorded = true;
            self.done.push(OutboundCall {
                host: call.host.clone(),
                outcome,
                elapsed: call.started.elapsed(),
            });
        }
        if release {
            self.open.remove(&id);
        }
    }
}

/// Whether the invocation under way made requests (the script's part of ending them, aborting
/// those still running, is then due).
pub fn made_requests(state: &OpState) -> bool {
    state
        .try_borrow::<SharedLedger>()
        .is_some_and(|ledger| ledger.borrow().used)
}

/// Ends the invocation's outbound calls: those still running are recorded as cancelled and
/// their slots freed, those waiting for a slot stop waiting. Returns what the invocation did.
pub fn finish_invocation(state: &OpState) -> Outbound {
    let Some(ledger) = state.try_borrow::<SharedLedger>() else {
        return Outbound::default();
    };
    let mut ledger = ledger.borrow_mut();
    if !ledger.used {
        return Outbound::default();
    }
    ledger.cancel.cancel();
    ledger.cancel = Rc::new(CancelHandle::new());
    ledger.generation += 1;
    ledger.used = false;
    let mut calls = std::mem::take(&mut ledger.done);
    for (_, call) in ledger.open.drain() {
        if !call.recorded {
            calls.push(OutboundCall {
                host: call.host,
                outcome: CallOutcome::Cancelled,
                elapsed: call.started.elapsed(),
            });
        }
    }
    Outbound { calls }
}

/// Takes one of the function's slots for an outbound call to `host` (waiting while all are in
/// use) and returns the call's id for `op_edgehook_egress_end`.
#[op2]
fn op_edgehook_egress_begin(
    state: &mut OpState,
    #[string] host: String,
) -> impl Future<Output = Result<u32, JsErrorBox>> + use<> {
    let slots = state.borrow::<Arc<Egress>>().slots.clone();
    let ledger = state.borrow::<SharedLedger>().clone();
    let (generation, cancel) = {
        let mut ledger = ledger.borrow_mut();
        ledger.used = true;
        (ledger.generation, ledger.cancel.clone())
    };
    async move {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => slots
                .acquire_owned()
                .or_cancel(cancel)
                .await
                .map_err(|_| JsErrorBox::generic("the invocation ended while the request waited for a slot"))?
                .map_err(|_| JsErrorBox::generic("outbound requests are closed"))?,
        };
        let mut ledger = ledger.borrow_mut();
        if ledger.generation != generation {
            return Err(JsErrorBox::generic(
                "the invocation ended while the request waited for a slot",
            ));
        }
        ledger.next = ledger.next.wrapping_add(1);
        let id = ledger.next;
        ledger.open.insert(
            id,
            OpenCall {
                host,
                started: Instant::now(),
                recorded: false,
                _slot: slot,
            },
        );
        Ok(id)
    }
}

/// Records how call `id` ended: `code` is the response's status, 0 for a failure, -1 for a
/// refusal; `release` frees its slot (its response body is read, or there is none).
#[op2(fast)]
fn op_edgehook_egress_end(state: &mut OpState, id: u32, code: i32, release: bool) {
    let outcome = match code {
        -1 => CallOutcome::Refused,
        100..=599 => CallOutcome::Status(code as u16),
        _ => CallOutcome::Failed,
    };
    state.borrow::<SharedLedger>().borrow_mut().end(id, outcome, release);
}

/// The function's cap on a response body, in bytes.
#[op2(fast)]
#[number]
fn op_edgehook_egress_max_response(state: &mut OpState) -> u64 {
    state.borrow::<Arc<Egress>>().config.max_response as u64
}

deno_core::extension!(
    edgehook_egress,
    ops = [op_edgehook_egress_begin, op_edgehook_egress_end, op_edgehook_egress_max_response],
    options = { egress: Arc<Egress> },
    state = |state, options| {
        state.put(options.egress);
        state.put::<SharedLedger>(Rc::default());
    },
);
