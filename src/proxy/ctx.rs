//! Per-request state carried through pingora's phases.

use crate::config::Behavior;
use std::sync::Arc;
use std::time::Instant;

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
}

impl RequestCtx {
    pub fn new() -> Self {
        RequestCtx {
            request_id: super::request_id::next(),
            started: Instant::now(),
            behavior: None,
            viewer_tls: false,
            origin_started: None,
            error_answer: false,
        }
    }

    pub fn origin_name(&self) -> &str {
        self.behavior.as_ref().map_or("-", |b| b.origin.name.as_str())
    }

    pub fn behavior_label(&self) -> &str {
        self.behavior.as_ref().map_or("-", |b| b.pattern.as_str())
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}
