//! W3C trace context through the proxy (`traceparent`, `tracestate`) and the export of each
//! request's spans to an OTLP/HTTP collector, through OpenTelemetry's SDK.
//!
//! A request's span starts when its head has been read. It continues the viewer's trace when the
//! viewer sent a valid `traceparent` (whose sampled flag is followed), or starts a new one
//! sampled at `sample_ratio`. Functions see the request span's `traceparent`; the origin sees
//! the one of the fetch span. The spans of the hooks, the cache lookup and the origin fetch are
//! children of the request span.

use crate::config;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    Span as _, SpanBuilder, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use parking_lot::Mutex;
use std::time::{Duration, Instant, SystemTime};

pub const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
pub const TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");

#[derive(Debug, thiserror::Error)]
pub enum TracingError {
    #[error("[tracing] otlp_endpoint `{endpoint}`: {message}")]
    Exporter { endpoint: String, message: String },
}

/// This node's tracer: where request traces start.
pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    /// Whether spans go anywhere; without an exporter only the request's and the origin
    /// fetch's span ids are needed, for the headers.
    exporting: bool,
}

impl Tracing {
    pub fn start(config: &config::Tracing) -> Result<Tracing, TracingError> {
        let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio)));
        let resource = Resource::builder()
            .with_service_name(config.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let mut provider = SdkTracerProvider::builder()
            .with_sampler(sampler)
            .with_resource(resource);
        if let Some(otlp) = &config.otlp {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(ExportClient::new(otlp.timeout))
                .with_endpoint(otlp.endpoint.clone())
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_timeout(otlp.timeout)
                .with_headers(otlp.headers.iter().cloned().collect())
                .build()
                .map_err(|e| TracingError::Exporter {
                    endpoint: otlp.endpoint.clone(),
                    message: e.to_string(),
                })?;
            // The batch processor exports from a thread of its own: requests only queue spans,
            // and a full queue drops them rather than wait.
            provider = provider.with_span_processor(BatchSpanProcessor::builder(exporter).build());
        }
        let provider = provider.build();
        let tracer = provider.tracer("edgehook");
        Ok(Tracing {
            provider,
            tracer,
            exporting: config.otlp.is_some(),
        })
    }

    /// Starts the trace of a request whose head carries `headers`.
    pub fn begin(&self, headers: &http::HeaderMap) -> RequestTrace {
        let parent = TraceContextPropagator::new().extract(&HeaderReader(headers));
        let span = self.tracer.build_with_context(
            SpanBuilder::from_name("request")
                .with_kind(SpanKind::Server)
                .with_start_time(SystemTime::now()),
            &parent,
        );
        RequestTrace {
            tracer: self.tracer.clone(),
            exporting: self.exporting,
            request: Context::new().with_span(span),
            origin: None,
            origin_status: None,
            cache_lookup: None,
        }
    }

    /// Sends the spans still queued; bounded by the exporter's timeout.
    pub fn shutdown(&self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::debug!(%error, "tracer shutdown");
        }
    }
}

/// A request's trace, carried by its context.
pub struct RequestTrace {
    tracer: SdkTracer,
    exporting: bool,
    /// Holds the request span.
    request: Context,
    /// Holds the origin fetch span while it is open.
    origin: Option<Context>,
    /// The status of the origin's response, once its head arrived.
    origin_status: Option<u16>,
    /// When the cache lookup began, until it ends in a hit or a miss.
    cache_lookup: Option<SystemTime>,
}

/// The trace context headers for one span: `traceparent`, and `tracestate` when there is one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TraceHeaders(Vec<(http::HeaderName, String)>);

impl TraceHeaders {
    fn of(cx: &Context) -> TraceHeaders {
        let mut headers = TraceHeaders::default();
        TraceContextPropagator::new().inject_context(cx, &mut headers);
        headers
    }

    pub fn iter(&self) -> impl Iterator<Item = (&http::HeaderName, &str)> {
        self.0.iter().map(|(name, value)| (name, value.as_str()))
    }
}

impl Injector for TraceHeaders {
    fn set(&mut self, key: &str, value: String) {
        // The propagator writes an empty `tracestate` for a trace without one; W3C's is left out.
        if value.is_empty() {
            return;
        }
        if let Ok(name) = http::HeaderName::from_bytes(key.as_bytes()) {
            self.0.push((name, value));
        }
    }
}

/// Lets the propagator read a request head.
struct HeaderReader<'a>(&'a http::HeaderMap);

impl Extractor for HeaderReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// How a span ended.
pub enum SpanEnd<'a> {
    Ok,
    Error(&'a str),
}

impl RequestTrace {
    /// The request span's headers, which functions and the origin (when it is not fetched
    /// under a span of its own) see.
    pub fn request_headers(&self) -> TraceHeaders {
        TraceHeaders::of(&self.request)
    }

    /// Whether the request's spans go anywhere: exported and sampled. Callers describe spans
    /// (attributes, names) only then: that work is for the collector alone.
    pub fn recording(&self) -> bool {
        self.exporting && self.request.span().span_context().is_sampled()
    }

    /// Starts the origin fetch span (once: retries on the origin's other addresses are part
    /// of the same fetch), started at `at`, described by `attributes` when it is recorded.
    pub fn start_origin_fetch(&mut self, at: SystemTime, attributes: impl FnOnce() -> Vec<KeyValue>) {
        if self.origin.is_some() {
            return;
        }
        let attributes = if self.recording() { attributes() } else { Vec::new() };
        let builder = SpanBuilder::from_name("origin fetch")
            .with_kind(SpanKind::Client)
            .with_start_time(at)
            .with_attributes(attributes);
        let span = self.tracer.build_with_context(builder, &self.request);
        self.origin = Some(self.request.with_span(span));
    }

    /// The origin fetch span's headers, for the request the origin receives.
    pub fn origin_headers(&self) -> Option<TraceHeaders> {
        self.origin.as_ref().map(TraceHeaders::of)
    }

    /// The origin's response head arrived with `status`.
    pub fn origin_answered(&mut self, status: u16) {
        self.origin_status = Some(status);
    }

    /// Ends the origin fetch span, if open: its response is all there (or none is coming).
    /// A client span fails on 4xx and 5xx, as OpenTelemetry's HTTP conventions have it.
    pub fn end_origin_fetch(&mut self) {
        self.close_origin_fetch(None);
    }

    fn close_origin_fetch(&mut self, failure: Option<&str>) {
        let Some(cx) = self.origin.take() else { return };
        let attributes = self
            .origin_status
            .map(|status| KeyValue::new("http.response.status_code", i64::from(status)))
            .into_iter()
            .collect();
        let end = match (failure, self.origin_status) {
            (Some(message), _) => SpanEnd::Error(message),
            (None, Some(status)) if status >= 400 => SpanEnd::Error(""),
            (None, Some(_)) => SpanEnd::Ok,
            (None, None) => SpanEnd::Error("the origin did not answer"),
        };
        finish(&cx, None, attributes, end);
    }

    pub fn start_cache_lookup(&mut self) {
        if self.recording() {
            self.cache_lookup = Some(SystemTime::now());
        }
    }

    /// Ends the cache lookup span with its result (`hit`, `stale`, `miss`).
    pub fn end_cache_lookup(&mut self, result: &'static str) {
        if let Some(start) = self.cache_lookup.take() {
            self.record(
                "cache lookup",
                start,
                SystemTime::now(),
                vec![KeyValue::new("edgehook.cache.result", result)],
                SpanEnd::Ok,
            );
        }
    }

    /// Records a finished child of the request span: a hook's invocation, which began
    /// `took` before now.
    pub fn record_done(&self, name: &'static str, took: Duration, attributes: Vec<KeyValue>, end: SpanEnd<'_>) {
        let now = SystemTime::now();
        self.record(name, now.checked_sub(took).unwrap_or(now), now, attributes, end);
    }

    fn record(
        &self,
        name: &'static str,
        start: SystemTime,
        end_at: SystemTime,
        attributes: Vec<KeyValue>,
        end: SpanEnd<'_>,
    ) {
        if !self.recording() {
            return;
        }
        let builder = SpanBuilder::from_name(name)
            .with_kind(SpanKind::Internal)
            .with_start_time(start)
            .with_attributes(attributes);
        let mut span = self.tracer.build_with_context(builder, &self.request);
        if let SpanEnd::Error(message) = end {
            span.set_status(Status::error(message.to_string()));
        }
        span.end_with_timestamp(end_at);
    }

    /// Ends the request span, named and described by `describe` when it is recorded, and the
    /// origin fetch span if it is still open (a response without a body to filter, or a fetch
    /// that failed with `origin_failure`).
    pub fn finish(
        mut self,
        describe: impl FnOnce() -> (String, Vec<KeyValue>),
        end: SpanEnd<'_>,
        origin_failure: Option<&str>,
    ) {
        self.close_origin_fetch(origin_failure);
        let (name, attributes) = if self.recording() {
            let (name, attributes) = describe();
            (Some(name), attributes)
        } else {
            (None, Vec::new())
        };
        finish(&self.request, name, attributes, end);
    }
}

fn finish(cx: &Context, name: Option<String>, attributes: Vec<KeyValue>, end: SpanEnd<'_>) {
    let span = cx.span();
    if let Some(name) = name {
        span.update_name(name);
    }
    span.set_attributes(attributes);
    if let SpanEnd::Error(message) = end {
        span.set_status(Status::error(message.to_string()));
    }
    span.end();
}

/// Sends OTLP exports with the HTTP client edgehook already has (ureq over rustls): the
/// exporter's own clients would bring a second HTTP and TLS stack. Failures are logged at most
/// once a minute, so a collector that is down does not flood the log.
#[derive(Debug)]
struct ExportClient {
    agent: ureq::Agent,
    last_warning: Mutex<Option<Instant>>,
}

const EXPORT_WARNING_INTERVAL: Duration = Duration::from_secs(60);
/// An OTLP answer is a small protobuf (partial success, at most); anything larger is cut.
const MAX_EXPORT_ANSWER: u64 = 1 << 20;

impl ExportClient {
    fn new(timeout: Duration) -> ExportClient {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        ExportClient {
            agent,
            last_warning: Mutex::new(None),
        }
    }

    fn warn(&self, uri: &http::Uri, problem: &str) {
        let mut last = self.last_warning.lock();
        if last.is_none_or(|at| at.elapsed() >= EXPORT_WARNING_INTERVAL) {
            *last = Some(Instant::now());
            tracing::warn!(collector = %uri, "spans not exported: {problem}");
        }
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ExportClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        // The batch processor runs exports on its own thread: blocking here holds no request.
        let uri = request.uri().clone();
        let (parts, body) = request.into_parts();
        let request = http::Request::from_parts(parts, body.to_vec());
        let mut response = match self.agent.run(request) {
            Ok(response) => response,
            Err(error) => {
                self.warn(&uri, &error.to_string());
                return Err(Box::new(error));
            }
        };
        let status = response.status();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_EXPORT_ANSWER)
            .read_to_vec()
            .unwrap_or_default();
        if !status.is_success() {
            self.warn(&uri, &format!("the collector answered {status}"));
        }
        let mut answer = http::Response::new(bytes::Bytes::from(body));
        *answer.status_mut() = status;
        *answer.headers_mut() = response.headers().clone();
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracing(sample_ratio: f64) -> Tracing {
        Tracing::start(&config::Tracing {
            service_name: "edgehook".into(),
            sample_ratio,
            otlp: None,
        })
        .expect("a tracer without an exporter")
    }

    fn traceparent(headers: &TraceHeaders) -> String {
        headers
            .iter()
            .find(|(name, _)| **name == TRACEPARENT)
            .map(|(_, value)| value.to_string())
            .expect("a traceparent")
    }

    fn fields(traceparent: &str) -> Vec<String> {
        traceparent.split('-').map(str::to_string).collect()
    }

    #[test]
    fn a_viewers_trace_is_continued_with_its_state_and_sampled_flag() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        headers.insert(TRACESTATE, "vendor=opaque".parse().unwrap());
        let trace = tracing(0.0).begin(&headers);
        let sent = trace.request_headers();
        let ours = fields(&traceparent(&sent));
        assert_eq!(ours[0], "00");
        assert_eq!(ours[1], "4bf92f3577b34da6a3ce929d0e0e4736", "same trace");
        assert_ne!(ours[2], "00f067aa0ba902b7", "a span of edgehook's own");
        assert_eq!(ours[3], "01", "the viewer's sampling decision wins over the ratio");
        assert!(sent
            .iter()
            .any(|(name, value)| *name == TRACESTATE && value == "vendor=opaque"));
    }

    #[test]
    fn an_invalid_traceparent_starts_a_new_trace_and_drops_its_state() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            TRACEPARENT,
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        headers.insert(TRACESTATE, "vendor=opaque".parse().unwrap());
        let sent = tracing(1.0).begin(&headers).request_headers();
        let ours = fields(&traceparent(&sent));
        assert_ne!(ours[1], "00000000000000000000000000000000");
        assert_eq!(ours[3], "01", "sampled at ratio 1");
        assert!(!sent.iter().any(|(name, _)| *name == TRACESTATE));
    }

    #[test]
    fn new_traces_follow_the_sample_ratio() {
        let sent = tracing(0.0).begin(&http::HeaderMap::new()).request_headers();
        assert_eq!(fields(&traceparent(&sent))[3], "00");
    }

    #[test]
    fn the_origin_fetch_is_a_child_span_in_the_same_trace() {
        let mut trace = tracing(1.0).begin(&http::HeaderMap::new());
        assert_eq!(trace.origin_headers(), None);
        trace.start_origin_fetch(SystemTime::now(), Vec::new);
        let request = fields(&traceparent(&trace.request_headers()));
        let origin = fields(&traceparent(&trace.origin_headers().unwrap()));
        assert_eq!(request[1], origin[1]);
        assert_ne!(request[2], origin[2]);
        // A retry on the origin's next address is the same fetch.
        trace.start_origin_fetch(SystemTime::now(), Vec::new);
        assert_eq!(fields(&traceparent(&trace.origin_headers().unwrap()))[2], origin[2]);
    }
}
