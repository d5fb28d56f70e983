//! Per-request state carried through pingora's phases.

use crate::config::Behavior;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Counts requests in progress; shutdown waits for it to reach zero.
#[derive(Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    fn enter(&self) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.0.clone())
    }
}

/// Held by a request's context for its whole life.
pub struct InFlightGuard(Arc<AtomicUsize>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct RequestCtx {
    pub request_id: String,
    pub started: Instant,
    /// The behavior chosen for the request path (None only for requests refused before matching).
    pub behavior: Option<Arc<Behavior>>,
    /// Whether the viewer connected over TLS.
    pub viewer_tls: bool,
    /// When the origin was chosen, to measure its response time.
    pub origin_started: Option<Instant>,
    /// Set when edgehook itself produced an error answer.
    pub error_answer: bool,
    /// The viewer's Host, shown to functions as `config.distributionDomainName`.
    pub viewer_host: String,
    /// The viewer's address as functions see it (`clientIp`).
    pub client_ip: String,
    /// The viewer request after the viewer-request function, as viewer-response events show it.
    pub viewer_request: Option<crate::edge::event::Request>,
    /// The class of a function failure being answered.
    pub function_error: Option<crate::js::FailureClass>,
    _in_flight: InFlightGuard,
}

impl RequestCtx {
    pub fn new(in_flight: &InFlight) -> Self {
        RequestCtx {
            request_id: super::request_id::next(),
            started: Instant::now(),
            behavior: None,
            viewer_tls: false,
            origin_started: None,
            error_answer: false,
            viewer_host: String::new(),
            client_ip: String::new(),
            viewer_request: None,
            function_error: None,
            _in_flight: in_flight.enter(),
        }
    }

    pub fn origin_name(&self) -> &str {
        self.behavior.as_ref().map_or("-", |b| b.origin.name.as_str())
    }

    pub fn behavior_label(&self) -> &str {
        self.behavior.as_ref().map_or("-", |b| b.pattern.as_str())
    }
}
