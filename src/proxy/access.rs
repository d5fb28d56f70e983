//! The access log line and the request metrics, written once per request in `logging`.

use super::ctx::{RequestCtx, Route};
use super::respond;
use super::NodeState;
use crate::origin::status_for;
use pingora::proxy::Session;
use pingora::Error;

pub fn record(node: &NodeState, session: &mut Session, error: Option<&Error>, ctx: &RequestCtx) {
    let status = session
        .response_written()
        .map_or_else(|| error.map_or(0, status_for), |r| r.status.as_u16());
    let cache = if ctx.error_answer.is_some() {
        "error"
    } else {
        respond::cache_result(session.cache.phase())
    };
    // CloudFront's x-edge-detailed-result-type for answers functions produced.
    let generated = matches!(ctx.route, Route::Generated(_));
    let detail = match (ctx.function_failure(), generated, session.cache.phase()) {
        (Some(class), _, _) => class.name(),
        (None, true, pingora::cache::CachePhase::Miss) => "MissGeneratedResponse",
        _ => "-",
    };
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    };
    let metrics = &node.metrics;
    metrics.requests.with_label_values(&[class, ctx.behavior_label()]).inc();
    metrics.cache.with_label_values(&[cache]).inc();
    let bytes_out = session.as_ref().body_bytes_sent();
    metrics.bytes_out.inc_by(bytes_out as u64);
    metrics.bytes_in.inc_by(session.as_ref().body_bytes_read() as u64);
    if !ctx.config.log.access_log {
        return;
    }
    let req = session.req_header();
    tracing::info!(
        target: "edgehook::access",
        request_id = %ctx.request_id,
        method = %req.method,
        uri = %req.uri,
        status,
        bytes = bytes_out,
        duration_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
        cache,
        detail,
        behavior = ctx.behavior_label(),
        origin = ctx.origin_name(),
        error = error.map(|e| e.to_string()),
        "request"
    );
}
