//! W3C trace context through the proxy, and each request's spans exported to an OTLP/HTTP
//! collector (a loopback server that decodes what it receives).

use crate::support::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message;
use std::time::{Duration, Instant};

const VIEWER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const VIEWER_SPAN: &str = "00f067aa0ba902b7";

/// A viewer-request function that hands the origin the trace context it was shown.
const SHOW_TRACEPARENT: &str = r#"
export const handler = async (event) => {
  const request = event.Records[0].cf.request;
  request.headers['x-function-saw'] = [{ value: request.headers.traceparent[0].value }];
  return request;
};"#;

/// An origin-response function that leaves the response as it is.
const PASS_RESPONSE: &str = r#"
export const handler = async (event) => event.Records[0].cf.response;
"#;

/// A span as the collector received it, with the service that sent it.
#[derive(Debug, Clone)]
struct ExportedSpan {
    service: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    kind: SpanKind,
    error: bool,
    attributes: Vec<(String, String)>,
}

impl ExportedSpan {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// A loopback OTLP/HTTP collector.
struct Collector(Origin);

impl Collector {
    async fn start() -> Collector {
        Collector(Origin::start(|_| Reply::ok("").header("content-type", "application/x-protobuf")).await)
    }

    fn endpoint(&self) -> String {
        self.0.url()
    }

    /// Every span received so far.
    fn spans(&self) -> Vec<ExportedSpan> {
        let mut spans = Vec::new();
        for seen in self.0.requests() {
            assert_eq!(seen.method, "POST");
            assert_eq!(seen.uri, "/v1/traces", "OTLP's path is added to a bare endpoint");
            assert_eq!(seen.headers["content-type"], "application/x-protobuf");
            let export = ExportTraceServiceRequest::decode(&seen.body[..]).expect("an OTLP trace export");
            for resource_spans in export.resource_spans {
                let service = resource_spans
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|a| a.key == "service.name")
                    .map(|a| value_text(a.value.as_ref()))
                    .unwrap_or_default();
                for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                    spans.push(ExportedSpan {
                        service: service.clone(),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                        error: span.status.as_ref().is_some_and(|s| s.code == StatusCode::Error as i32),
                        attributes: span
                            .attributes
                            .iter()
                            .map(|a| (a.key.clone(), value_text(a.value.as_ref())))
                            .collect(),
                        name: span.name,
                    });
                }
            }
        }
        spans
    }

    /// Waits (up to 10 s) for `count` spans of `trace_id`.
    async fn wait_trace(&self, trace_id: &str, count: usize) -> Vec<ExportedSpan> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let spans: Vec<ExportedSpan> = self.spans().into_iter().filter(|s| s.trace_id == trace_id).collect();
            if spans.len() >= count {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "{} spans of trace {trace_id}, not {count}: {spans:#?}",
                spans.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn value_text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(n)) => n.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The fields of a `traceparent`: version, trace id, parent id, flags.
fn traceparent(value: &http::HeaderValue) -> [String; 4] {
    let fields: Vec<String> = value.to_str().unwrap().split('-').map(str::to_string).collect();
    assert_eq!(fields.len(), 4, "{value:?}");
    [
        fields[0].clone(),
        fields[1].clone(),
        fields[2].clone(),
        fields[3].clone(),
    ]
}

/// The viewer's `traceparent`: a sampled span of `VIEWER_TRACE`.
fn viewer_traceparent() -> String {
    format!("00-{VIEWER_TRACE}-{VIEWER_SPAN}-01")
}

/// GETs `url` with `headers`, reading the whole answer; its status and headers.
async fn get(url: String, headers: &[(&str, &str)]) -> (u16, http::HeaderMap) {
    let mut request = client().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let answer = (response.status().as_u16(), response.headers().clone());
    response.bytes().await.unwrap();
    answer
}

fn config(dir: &std::path::Path, origin: &Origin, tracing: &str) -> String {
    for (name, source) in [("show", SHOW_TRACEPARENT), ("pass", PASS_RESPONSE)] {
        std::fs::write(dir.join(format!("{name}.mjs")), source).unwrap();
    }
    format!(
        "{tracing}\n[origins.app]\nurl = \"{}\"\n[functions.show]\ncode = \"{dir}/show.mjs\"\n[functions.pass]\ncode = \"{dir}/pass.mjs\"\n[[behaviors]]\npath = \"/x/*\"\norigin = \"app\"\nviewer_request = \"show\"\norigin_response = \"pass\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n",
        origin.url(),
        dir = dir.display()
    )
}

/// Starts edgehook exporting quickly (every 100 ms), as a test can wait for.
async fn start(origin: &Origin, tracing: &str) -> Edgehook {
    let dir = tempfile::tempdir().unwrap();
    let rest = config(dir.path(), origin, tracing);
    let mut edge = Edgehook::spawn_with_env(dir, "", &rest, &[("OTEL_BSP_SCHEDULE_DELAY", "100")]);
    edge.wait_ready().await;
    edge
}

#[tokio::test]
async fn a_viewers_trace_runs_through_functions_and_the_origin_and_its_spans_are_linked() {
    let collector = Collector::start().await;
    let origin = Origin::start(|_| Reply::ok("hello").header("cache-control", "max-age=60")).await;
    let edge = start(
        &origin,
        &format!(
            "[tracing]\notlp_endpoint = \"{}\"\nservice_name = \"edge-test\"",
            collector.endpoint()
        ),
    )
    .await;
    let (status, headers) = get(
        edge.url("/x/page"),
        &[("traceparent", &viewer_traceparent()), ("tracestate", "vendor=opaque")],
    )
    .await;
    assert_eq!(status, 200);
    let request_id = headers["x-request-id"].to_str().unwrap();

    // The origin is called under a span of edgehook's in the viewer's trace, with its state.
    let seen = origin.last();
    let [version, trace_id, origin_parent, flags] = traceparent(&seen.headers["traceparent"]);
    assert_eq!(
        (version.as_str(), trace_id.as_str(), flags.as_str()),
        ("00", VIEWER_TRACE, "01")
    );
    assert_ne!(origin_parent, VIEWER_SPAN);
    assert_eq!(seen.headers["tracestate"], "vendor=opaque");
    // The function saw the request span's context: same trace, another span.
    let [_, function_trace, function_parent, _] = traceparent(&seen.headers["x-function-saw"]);
    assert_eq!(function_trace, VIEWER_TRACE);
    assert_ne!(function_parent, origin_parent);

    let spans = collector.wait_trace(VIEWER_TRACE, 5).await;
    let named = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} span in {spans:#?}"))
    };
    let request = named("GET /x/*");
    assert_eq!(request.service, "edge-test");
    assert_eq!(request.kind, SpanKind::Server);
    assert_eq!(request.span_id, function_parent, "functions see the request span");
    assert_eq!(
        request.parent_span_id, VIEWER_SPAN,
        "the request continues the viewer's span"
    );
    assert_eq!(request.attribute("http.response.status_code"), Some("200"));
    assert_eq!(request.attribute("http.route"), Some("/x/*"));
    assert_eq!(request.attribute("edgehook.request_id"), Some(request_id));
    assert_eq!(request.attribute("edgehook.cache"), Some("miss"));
    assert!(!request.error);

    let hook = named("viewer-request");
    assert_eq!(hook.parent_span_id, request.span_id);
    assert_eq!(hook.attribute("faas.invoked_name"), Some("show"));
    assert_eq!(hook.attribute("edgehook.outcome"), Some("ok"));
    let origin_response = named("origin-response");
    assert_eq!(origin_response.parent_span_id, request.span_id);
    assert_eq!(origin_response.attribute("faas.invoked_name"), Some("pass"));

    let lookup = named("cache lookup");
    assert_eq!(lookup.parent_span_id, request.span_id);
    assert_eq!(lookup.attribute("edgehook.cache.result"), Some("miss"));

    let fetch = named("origin fetch");
    assert_eq!(fetch.kind, SpanKind::Client);
    assert_eq!(fetch.parent_span_id, request.span_id);
    assert_eq!(
        fetch.span_id, origin_parent,
        "the origin is called under the fetch span"
    );
    assert_eq!(fetch.attribute("edgehook.origin"), Some("app"));
    assert_eq!(fetch.attribute("http.response.status_code"), Some("200"));
    assert!(!fetch.error);

    // A hit without a traceparent: a trace of its own, and no fetch.
    let (_, hit) = get(edge.url("/x/page"), &[]).await;
    assert_eq!(hit["x-cache"], "Hit from edgehook");
    let hit_id = hit["x-request-id"].to_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let hit_request = loop {
        let found = collector
            .spans()
            .into_iter()
            .find(|s| s.attribute("edgehook.request_id") == Some(hit_id));
        if let Some(span) = found {
            break span;
        }
        assert!(Instant::now() < deadline, "the hit's request span was not exported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(hit_request.trace_id, VIEWER_TRACE);
    assert_eq!(hit_request.parent_span_id, "", "a new trace's request span is its root");
    let hit_spans = collector.wait_trace(&hit_request.trace_id, 3).await;
    let names: Vec<&str> = hit_spans.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"cache lookup") && names.contains(&"viewer-request"),
        "{names:?}"
    );
    assert!(!names.contains(&"origin fetch"), "{names:?}");
    let lookup = hit_spans.iter().find(|s| s.name == "cache lookup").unwrap();
    assert_eq!(lookup.attribute("edgehook.cache.result"), Some("hit"));
}

#[tokio::test]
async fn a_failed_origin_fetch_and_a_5xx_answer_are_errors_in_the_trace() {
    let collector = Collector::start().await;
    let origin = Origin::start(|_| Reply::ok("")).await;
    let dead = free_addr();
    let dir = tempfile::tempdir().unwrap();
    let rest = format!(
        "[tracing]\notlp_endpoint = \"{}\"\n[origins.app]\nurl = \"{}\"\n[origins.dead]\nurl = \"http://{dead}\"\n[[behaviors]]\npath = \"/dead/*\"\norigin = \"dead\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n",
        collector.endpoint(),
        origin.url()
    );
    let mut edge = Edgehook::spawn_with_env(dir, "", &rest, &[("OTEL_BSP_SCHEDULE_DELAY", "100")]);
    edge.wait_ready().await;
    let (status, _) = get(edge.url("/dead/page"), &[("traceparent", &viewer_traceparent())]).await;
    assert_eq!(status, 502);
    let spans = collector.wait_trace(VIEWER_TRACE, 3).await;
    let request = spans.iter().find(|s| s.kind == SpanKind::Server).unwrap();
    assert!(request.error, "a 502 fails the request span");
    assert_eq!(request.attribute("http.response.status_code"), Some("502"));
    let fetch = spans.iter().find(|s| s.name == "origin fetch").unwrap();
    assert!(fetch.error, "a refused connection fails the fetch span");
    assert_eq!(fetch.attribute("http.response.status_code"), None);
}

#[tokio::test]
async fn unsampled_traces_are_propagated_but_not_exported() {
    let collector = Collector::start().await;
    let origin = Origin::start(|_| Reply::ok("hello")).await;
    let edge = start(
        &origin,
        &format!(
            "[tracing]\notlp_endpoint = \"{}\"\nsample_ratio = 0",
            collector.endpoint()
        ),
    )
    .await;
    // A new trace at ratio 0: not sampled, and said so to the origin.
    get(edge.url("/first"), &[]).await;
    let [_, unsampled_trace, _, flags] = traceparent(&origin.last().headers["traceparent"]);
    assert_eq!(flags, "00");
    // The viewer's decision wins over the ratio.
    get(edge.url("/second"), &[("traceparent", &viewer_traceparent())]).await;
    assert_eq!(traceparent(&origin.last().headers["traceparent"])[3], "01");
    collector.wait_trace(VIEWER_TRACE, 3).await;
    // Spans are exported in the order they end: the first request's would have come first.
    assert!(
        collector.spans().iter().all(|s| s.trace_id != unsampled_trace),
        "an unsampled trace was exported"
    );
}

#[tokio::test]
async fn trace_context_alone_needs_no_collector_and_without_tracing_headers_pass_untouched() {
    let origin = Origin::start(|_| Reply::ok("hello")).await;
    let viewer = viewer_traceparent();

    let propagating = start(&origin, "[tracing]").await;
    get(propagating.url("/plain"), &[]).await;
    let [version, trace_id, _, flags] = traceparent(&origin.last().headers["traceparent"]);
    assert_eq!((version.as_str(), flags.as_str()), ("00", "01"));
    assert_eq!(trace_id.len(), 32);
    assert_ne!(trace_id, "0".repeat(32));
    // A malformed traceparent starts a new trace, and its tracestate goes with it.
    get(
        propagating.url("/malformed"),
        &[("traceparent", "00-not-a-trace-01"), ("tracestate", "vendor=opaque")],
    )
    .await;
    let seen = origin.last();
    assert_eq!(traceparent(&seen.headers["traceparent"])[1].len(), 32);
    assert!(!seen.headers.contains_key("tracestate"));

    let plain = start(&origin, "").await;
    get(plain.url("/plain"), &[]).await;
    assert!(
        !origin.last().headers.contains_key("traceparent"),
        "no trace context is made up"
    );
    get(plain.url("/viewers"), &[("traceparent", &viewer)]).await;
    assert_eq!(origin.last().headers["traceparent"], viewer.as_str());
}

// Two threads: the collector answers while the test waits for the process to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_still_queued_are_sent_when_edgehook_stops() {
    let collector = Collector::start().await;
    let origin = Origin::start(|_| Reply::ok("hello")).await;
    let dir = tempfile::tempdir().unwrap();
    let rest = config(
        dir.path(),
        &origin,
        &format!("[tracing]\notlp_endpoint = \"{}\"", collector.endpoint()),
    );
    // Exports every minute: only the flush at exit sends these spans in time.
    let mut edge = Edgehook::spawn_with_env(dir, "", &rest, &[("OTEL_BSP_SCHEDULE_DELAY", "60000")]);
    edge.wait_ready().await;
    get(edge.url("/plain"), &[("traceparent", &viewer_traceparent())]).await;
    assert!(collector.spans().is_empty());
    edge.signal(libc::SIGTERM);
    assert_eq!(edge.wait_exit(Duration::from_secs(15)), Some(0));
    let names: Vec<String> = collector.spans().into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"GET *".to_string()), "{names:?}\n{}", edge.log_text());
}

#[tokio::test]
async fn a_collector_that_is_down_costs_requests_nothing_and_is_logged() {
    let origin = Origin::start(|_| Reply::ok("hello")).await;
    let down = free_addr();
    let edge = start(&origin, &format!("[tracing]\notlp_endpoint = \"http://{down}\"")).await;
    for _ in 0..5 {
        assert_eq!(get(edge.url("/plain"), &[]).await.0, 200);
    }
    edge.wait_log("spans not exported").await;
}
