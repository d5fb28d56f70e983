//! The four hooks, one module each, and the bridge between pingora's requests and responses
//! and the Lambda@Edge event model: `event` builds events from what the proxy holds, `invoke_*`
//! run the behavior's function (with its metrics and its REPORT line) and hand back the outcome
//! of the event's kind, `apply` writes a validated outcome back.
//!
//! viewer request   before the cache   `viewer_request`
//! origin request   on misses          `origin_request`
//! origin response  before caching     `origin_response`
//! viewer response  on the way out     `viewer_response`

mod apply;
mod events;
mod origin_request;
mod origin_response;
mod viewer_request;
mod viewer_response;

pub use apply::{apply_headers, apply_request, apply_response, generated_response, take_body_replacement};
pub use events::ForwardedEventHeaders;
pub use events::{chosen_origin, custom_headers, event, event_body, origin_block, request_of, response_of};

use super::NodeState;
use crate::config::Association;
use crate::deploy::route::viewer_key;
use crate::edge::event::{self, Event};
use crate::edge::ValidationError;
use crate::edge::{Outcome, RequestOutcome, ResponseOutcome};
use crate::js::{CallOutcome, FailureClass, InvokeError, Outbound};
use crate::metrics::Metrics;
use crate::proxy::ctx::{ErrorAnswer, RequestCtx};
use crate::telemetry::{RequestTrace, SpanEnd};
use opentelemetry::KeyValue;
use std::time::Instant;

/// Runs the function of `association` on a request event: what it decided.
pub async fn invoke_request(
    node: &NodeState,
    association: &Association,
    event: &Event,
    trace: Option<&RequestTrace>,
) -> Result<RequestOutcome, InvokeError> {
    match invoke(node, association, event, trace).await? {
        Outcome::Request(outcome) => Ok(outcome),
        Outcome::Response(_) => Err(wrong_event_type(association, event)),
    }
}

/// The request of a response event, handed back for the hooks after it, and what the event's
/// function made of its response: the response it was given and the one it returned.
pub type ResponseEventResult = (event::Request, Result<(event::Response, ResponseOutcome), InvokeError>);

/// Runs the function of `association` on a response event.
pub async fn invoke_response(
    node: &NodeState,
    association: &Association,
    event: Event,
    trace: Option<&RequestTrace>,
) -> ResponseEventResult {
    let outcome = match invoke(node, association, &event, trace).await {
        Ok(Outcome::Response(outcome)) => Ok(outcome),
        Ok(Outcome::Request(_)) => Err(wrong_event_type(association, &event)),
        Err(error) => Err(error),
    };
    let request_id = event.cf().config.request_id.clone();
    let cf = event.into_cf();
    let result = match (outcome, cf.response) {
        (Ok(outcome), Some(response)) => Ok((response, outcome)),
        (Err(error), _) => Err(error),
        (Ok(_), None) => Err(InvokeError::validation(
            ValidationError("internal: a response event without its response".into()),
            &association.function,
            &request_id,
        )),
    };
    (cf.request, result)
}

/// Validation decides a result's kind by the event's type, so this is edgehook's own fault.
fn wrong_event_type(association: &Association, event: &Event) -> InvokeError {
    InvokeError::validation(
        ValidationError(format!(
            "internal: the result was not validated as one of a {} event",
            event.event_type().as_str()
        )),
        &association.function,
        &event.cf().config.request_id,
    )
}

/// Runs the function of `association` on `event`, with metrics, one REPORT log line and a span
/// in the request's trace.
async fn invoke(
    node: &NodeState,
    association: &Association,
    event: &Event,
    trace: Option<&RequestTrace>,
) -> Result<Outcome, InvokeError> {
    let kind = event.event_type();
    let request_id = &event.cf().config.request_id;
    let function = association.function.as_str();
    let started = Instant::now();
    let request = &event.cf().request;
    let user_agent = request
        .headers
        .get("user-agent")
        .and_then(|h| h.first())
        .map_or("", |h| h.value.as_str());
    let viewer = viewer_key(&request.client_ip, user_agent);
    let resolved = node.deploy.as_ref().map(|d| d.resolve(function, &viewer));
    let mut outbound = Outbound::default();
    let result = match (&node.functions, resolved) {
        (Some(pool), Some(Ok(key))) => {
            let result;
            (result, outbound) = pool.invoke_reported(&key, event).await;
            if let Some(deploy) = &node.deploy {
                let failed = result.as_ref().is_err_and(|e| e.class != FailureClass::LimitExceeded);
                deploy.record(&key, failed);
            }
            result
        }
        (_, Some(Err(error))) => Err(InvokeError {
            class: FailureClass::Execution,
            error_type: "Runtime.Unavailable".into(),
            message: error.to_string(),
            function: function.to_string(),
            request_id: request_id.clone(),
        }),
        (Some(pool), None) => {
            let result;
            (result, outbound) = pool.invoke_reported(function, event).await;
            result
        }
        (None, _) => Err(InvokeError {
            class: FailureClass::Execution,
            error_type: "Runtime.Unavailable".into(),
            message: "no functions are loaded".into(),
            function: function.to_string(),
            request_id: request_id.clone(),
        }),
    };
    let elapsed = started.elapsed();
    let metrics = &node.metrics;
    metrics
        .function_invocations
        .with_label_values(&[function, kind.as_str()])
        .inc();
    metrics
        .function_duration
        .with_label_values(&[function, kind.as_str()])
        .observe(elapsed.as_secs_f64());
    let outcome = match &result {
        Ok(_) => "ok",
        Err(error) => {
            metrics
                .function_errors
                .with_label_values(&[function, kind.as_str(), error.class.name()])
                .inc();
            if error.class == FailureClass::LimitExceeded {
                metrics.function_throttles.with_label_values(&[function]).inc();
            }
            error.class.name()
        }
    };
    record_outbound(metrics, function, &outbound);
    if let Some(trace) = trace.filter(|t| t.recording()) {
        let mut attributes = vec![
            KeyValue::new("faas.invoked_name", function.to_string()),
            KeyValue::new("edgehook.outcome", outcome),
        ];
        if let Ok(Outcome::Request(RequestOutcome::Respond(_))) = &result {
            attributes.push(KeyValue::new("edgehook.generated", true));
        }
        let message = result.as_ref().err().map(|e| e.to_string());
        let end = message.as_deref().map_or(SpanEnd::Ok, SpanEnd::Error);
        trace.record_done(kind.as_str(), elapsed, attributes, end);
    }
    tracing::info!(
        target: "edgehook::function",
        request_id = %request_id,
        function,
        event_type = kind.as_str(),
        duration_ms = elapsed.as_secs_f64() * 1e3,
        outbound_calls = outbound.sent().count(),
        outbound_ms = outbound.time().as_secs_f64() * 1e3,
        outcome,
        error = result.as_ref().err().map(|e| e.to_string()),
        "REPORT"
    );
    result
}

/// Counts an invocation's outbound calls: those that went out by host and status class, with
/// their time; refused ones apart.
fn record_outbound(metrics: &Metrics, function: &str, outbound: &Outbound) {
    for call in &outbound.calls {
        if call.outcome == CallOutcome::Refused {
            metrics.egress_refused.with_label_values(&[function, &call.host]).inc();
            continue;
        }
        metrics
            .egress_requests
            .with_label_values(&[function, &call.host, call.outcome.class()])
            .inc();
        metrics
            .egress_seconds
            .with_label_values(&[function])
            .observe(call.elapsed.as_secs_f64());
    }
}

/// A function failure in a response phase, where no answer can be written yet: logged, recorded
/// on the request, and raised so that `fail_to_proxy` answers with the failure's status.
pub fn response_phase_failure(ctx: &mut RequestCtx, error: &InvokeError) -> Box<pingora::Error> {
    tracing::warn!(target: "edgehook::function", request_id = %ctx.request_id, "{error}");
    ctx.error_answer = Some(ErrorAnswer::Function(error.class));
    pingora::Error::explain(pingora::ErrorType::HTTPStatus(error.class.status()), error.to_string())
}

#[cfg(test)]
mod tests;
