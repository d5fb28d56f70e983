//! The bridge between pingora's requests and responses and the Lambda@Edge event model: building
//! events from what the proxy holds, running the behavior's function (with its metrics and its
//! REPORT line), and applying a validated outcome back.

use super::ctx::{ErrorAnswer, RequestCtx};
use super::forward::HeaderSink;
use super::Edge;
use crate::config::{Association, HostHeader, HttpOrigin, Origin, OriginKind};
use crate::deploy::route::viewer_key;
use crate::edge::event::{self, Cf, Config, Event, HeaderEntry, Headers};
use crate::edge::result::{ChangedHeaders, Generated};
use crate::edge::ValidationError;
use crate::edge::{rules, EventType, Outcome};
use crate::js::{FailureClass, InvokeError};
use pingora::http::{IntoCaseHeaderName, RequestHeader, ResponseHeader};
use pingora::Result;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

/// Shown to functions as `config.distributionId`.
pub const DISTRIBUTION_ID: &str = "EDGEHOOK";

/// Header pairs as sent (original case where the parser kept it), without the headers
/// Lambda@Edge never shows to functions.
fn exposed_pairs<'a>(
    has_case: bool,
    cased: impl Iterator<Item = (&'a [u8], &'a http::HeaderValue)>,
    plain: impl Iterator<Item = (&'a http::HeaderName, &'a http::HeaderValue)>,
) -> Headers {
    let mut headers = Headers::new();
    let mut push = |name: &str, value: &http::HeaderValue| {
        if let Some((lower, entry)) = exposed(name, value) {
            headers.entry(lower).or_default().push(entry);
        }
    };
    if has_case {
        for (name, value) in cased {
            push(&String::from_utf8_lossy(name), value);
        }
    } else {
        for (name, value) in plain {
            push(name.as_str(), value);
        }
    }
    headers
}

/// A header as functions see it, under its lower-case name: `name` as sent is its key, and the
/// value is UTF-8 (ISO-8859-1 bytes are mapped one to one). None for a header Lambda@Edge never
/// shows them.
fn exposed(name: &str, value: &http::HeaderValue) -> Option<(String, HeaderEntry)> {
    let lower = name.to_ascii_lowercase();
    if rules::is_disallowed(&lower) {
        return None;
    }
    let value = match value.to_str() {
        Ok(text) => text.to_string(),
        Err(_) => value.as_bytes().iter().map(|&b| b as char).collect(),
    };
    Some((
        lower,
        HeaderEntry {
            key: Some(name.to_string()),
            value,
        },
    ))
}

/// The header map of an origin event, where the forwarding headers are set as the origin
/// receives them: each replacing the viewer's under its name, in the case pingora writes it
/// (lower case where the request keeps no case, as `exposed_pairs` shows it).
pub struct ForwardedEventHeaders<'a> {
    pub headers: &'a mut Headers,
    pub has_case: bool,
}

impl HeaderSink for ForwardedEventHeaders<'_> {
    fn set(&mut self, name: impl IntoCaseHeaderName, value: http::HeaderValue) -> Result<()> {
        let name = name.into_case_header_name();
        let cased = String::from_utf8_lossy(name.as_slice());
        let shown = if self.has_case {
            cased
        } else {
            std::borrow::Cow::Owned(cased.to_ascii_lowercase())
        };
        if let Some((lower, entry)) = exposed(&shown, &value) {
            self.headers.insert(lower, vec![entry]);
        }
        Ok(())
    }
}

/// The request as functions see it.
pub fn request_of(req: &RequestHeader, client_ip: &str) -> event::Request {
    let headers = exposed_pairs(
        req.has_case(),
        req.case_header_iter().map(|(n, v)| (n.as_slice(), v)),
        req.headers.iter(),
    );
    event::Request {
        client_ip: client_ip.to_string(),
        headers,
        method: req.method.as_str().to_string(),
        querystring: req.uri.query().unwrap_or("").to_string(),
        uri: req.uri.path().to_string(),
        body: None,
        origin: None,
    }
}

/// The response as functions see it.
pub fn response_of(resp: &ResponseHeader) -> event::Response {
    let headers = exposed_pairs(
        resp.has_case(),
        resp.case_header_iter().map(|(n, v)| (n.as_slice(), v)),
        resp.headers.iter(),
    );
    event::Response {
        status: resp.status.as_u16().to_string(),
        status_description: resp
            .get_reason_phrase()
            .or(resp.status.canonical_reason())
            .unwrap_or("")
            .to_string(),
        headers,
    }
}

/// The include-body view of a request body: base64, cut at the event's limit (40 KB viewer,
/// 1 MB origin) with `inputTruncated`.
pub fn event_body(body: &[u8], kind: EventType) -> event::Body {
    use base64::Engine as _;
    let limit = kind.size_limit();
    let shown = &body[..body.len().min(limit)];
    event::Body {
        input_truncated: body.len() > limit,
        action: "read-only".into(),
        encoding: "base64".into(),
        data: base64::engine::general_purpose::STANDARD.encode(shown),
    }
}

/// The event envelope for `kind`.
pub fn event(kind: EventType, ctx: &RequestCtx, request: event::Request, response: Option<event::Response>) -> Event {
    // Made from the request and response pingora parsed (`exposed_pairs`).
    Event::checked(Cf {
        config: Config {
            distribution_domain_name: ctx.viewer.host.clone(),
            distribution_id: DISTRIBUTION_ID.into(),
            event_type: kind,
            request_id: ctx.request_id.clone(),
        },
        request,
        response,
    })
}

fn header_value(value: &str) -> Result<http::HeaderValue> {
    http::HeaderValue::from_str(value)
        .map_err(|e| pingora::Error::because(pingora::ErrorType::InternalError, "a function header value", e))
}

/// A header block a function's header changes can be applied to (the request or the response
/// pingora holds).
pub trait HeaderBlock {
    fn remove(&mut self, name: &str);
    fn append(&mut self, name: String, value: http::HeaderValue) -> Result<()>;
}

impl HeaderBlock for RequestHeader {
    fn remove(&mut self, name: &str) {
        self.remove_header(name);
    }
    fn append(&mut self, name: String, value: http::HeaderValue) -> Result<()> {
        self.append_header(name, value).map(|_| ())
    }
}

impl HeaderBlock for ResponseHeader {
    fn remove(&mut self, name: &str) {
        self.remove_header(name);
    }
    fn append(&mut self, name: String, value: http::HeaderValue) -> Result<()> {
        self.append_header(name, value).map(|_| ())
    }
}

/// Applies header changes: names the function removed go, names it changed are replaced, in
/// the function's order and case. Headers hidden from functions are left alone. Only the names
/// that may differ (`changed`) are compared.
pub fn apply_headers(
    block: &mut impl HeaderBlock,
    before: &Headers,
    after: &Headers,
    changed: &ChangedHeaders,
) -> Result<()> {
    match changed {
        ChangedHeaders::Any => {
            for name in before.keys() {
                if !after.contains_key(name) {
                    block.remove(name);
                }
            }
            for name in after.keys() {
                replace_header(block, before, after, name)?;
            }
        }
        ChangedHeaders::Only(names) => {
            for name in names {
                replace_header(block, before, after, name)?;
            }
        }
    }
    Ok(())
}

/// Header `name` as `after` has it (or gone), unless it is as it was.
fn replace_header(block: &mut impl HeaderBlock, before: &Headers, after: &Headers, name: &str) -> Result<()> {
    let entries = after.get(name);
    if before.get(name) == entries {
        return Ok(());
    }
    block.remove(name);
    for entry in entries.into_iter().flatten() {
        let key = entry.key.clone().unwrap_or_else(|| event::title_case(name));
        block.append(key, header_value(&entry.value)?)?;
    }
    Ok(())
}

/// Applies a validated request outcome to the request the proxy holds.
pub fn apply_request(
    req: &mut RequestHeader,
    before: &event::Request,
    after: &event::Request,
    changed: &ChangedHeaders,
) -> Result<()> {
    if before.uri != after.uri || before.querystring != after.querystring {
        let target = if after.querystring.is_empty() {
            after.uri.clone()
        } else {
            format!("{}?{}", after.uri, after.querystring)
        };
        let uri = http::Uri::builder()
            .path_and_query(target)
            .build()
            .map_err(|e| pingora::Error::because(pingora::ErrorType::InternalError, "a function's URI", e))?;
        req.set_uri(uri);
    }
    apply_headers(req, &before.headers, &after.headers, changed)
}

/// A function failure in a response phase, where no answer can be written yet: logged, recorded
/// on the request, and raised so that `fail_to_proxy` answers with the failure's status.
/// A request function's result, taken apart: its body replacement (include_body) goes to the
/// context, the request keeps no body.
pub fn take_body_replacement(ctx: &mut RequestCtx, changed: &mut event::Request, body: Option<Vec<u8>>) {
    if let Some(body) = body {
        ctx.bodies.request_replacement = Some(body.into());
    }
    changed.body = None;
}

/// A request event's function answered with a response that has no status.
pub fn response_without_status(association: &Association, ctx: &RequestCtx) -> InvokeError {
    InvokeError::validation(
        ValidationError("a request event returned a response without a status".into()),
        &association.function,
        &ctx.request_id,
    )
}

pub fn response_phase_failure(ctx: &mut RequestCtx, error: &InvokeError) -> Box<pingora::Error> {
    tracing::warn!(target: "edgehook::function", request_id = %ctx.request_id, "{error}");
    ctx.error_answer = Some(ErrorAnswer::Function(error.class));
    pingora::Error::explain(pingora::ErrorType::HTTPStatus(error.class.status()), error.to_string())
}

/// Applies a validated response outcome (status, description, headers) to a response header.
pub fn apply_response(
    resp: &mut ResponseHeader,
    before: &event::Response,
    after: &event::Response,
    status: u16,
    changed: &ChangedHeaders,
) -> Result<()> {
    if status != resp.status.as_u16() {
        resp.set_status(status)?;
    }
    if after.status_description != before.status_description {
        resp.set_reason_phrase(Some(&after.status_description))?;
    }
    apply_headers(resp, &before.headers, &after.headers, changed)
}

/// A generated response as a header (with Content-Length) and its body.
pub fn generated_response(generated: &Generated) -> Result<ResponseHeader> {
    let mut header = ResponseHeader::build(generated.status, Some(generated.headers.len() + 2))?;
    if let Some(description) = &generated.status_description {
        header.set_reason_phrase(Some(description))?;
    }
    for (name, entries) in &generated.headers {
        for entry in entries {
            let key = entry.key.clone().unwrap_or_else(|| event::title_case(name));
            header.append_header(key, header_value(&entry.value)?)?;
        }
    }
    header.insert_header(http::header::CONTENT_LENGTH, generated.body.len())?;
    Ok(header)
}

/// The origin block that origin events show for a configured origin: HTTP origins are custom
/// origins, directory origins are S3-style origins named after the origin.
pub fn origin_block(origin: &Origin) -> event::Origin {
    match &origin.kind {
        OriginKind::Http(http) => event::Origin::Custom(event::CustomOrigin {
            custom_headers: Headers::new(),
            domain_name: http.host.clone(),
            keepalive_timeout: http.idle_timeout.as_secs().clamp(1, 120) as u32,
            path: http.base_path.clone(),
            port: u32::from(http.port),
            protocol: if http.tls { "https" } else { "http" }.into(),
            read_timeout: http.read_timeout.as_secs().clamp(1, 120) as u32,
            ssl_protocols: vec!["TLSv1.2".into()],
        }),
        OriginKind::Dir(_) => event::Origin::S3(event::S3Origin {
            auth_method: "none".into(),
            custom_headers: Headers::new(),
            domain_name: origin.name.to_ascii_lowercase(),
            path: String::new(),
            region: None,
        }),
    }
}

/// The origin an origin-request function chose. A custom origin becomes an HTTP(S) origin of
/// its own (the function's Host header goes with it, as in CloudFront's examples); an S3 origin
/// must name one of the configured directory origins.
pub fn chosen_origin(
    origins: &std::collections::BTreeMap<String, Arc<Origin>>,
    chosen: &event::Origin,
) -> std::result::Result<Arc<Origin>, String> {
    match chosen {
        event::Origin::Custom(custom) => Ok(Arc::new(Origin {
            name: custom.domain_name.clone(),
            kind: OriginKind::Http(HttpOrigin {
                tls: custom.protocol == "https",
                host: custom.domain_name.clone(),
                port: u16::try_from(custom.port).unwrap_or(443),
                base_path: custom.path.clone(),
                connect_timeout: Duration::from_secs(10),
                read_timeout: Duration::from_secs(u64::from(custom.read_timeout)),
                write_timeout: Duration::from_secs(u64::from(custom.read_timeout)),
                idle_timeout: Duration::from_secs(u64::from(custom.keepalive_timeout)),
                verify_cert: true,
                ca: None,
                host_header: HostHeader::Viewer,
            }),
        })),
        event::Origin::S3(s3) => origins
            .values()
            .find(|o| matches!(o.kind, OriginKind::Dir(_)) && o.name.eq_ignore_ascii_case(&s3.domain_name))
            .cloned()
            .ok_or_else(|| {
                format!(
                    "the function chose S3 origin `{}`, which is not a directory origin of this edgehook",
                    s3.domain_name
                )
            }),
    }
}

/// The custom headers of an origin block.
pub fn custom_headers(origin: &event::Origin) -> &Headers {
    match origin {
        event::Origin::Custom(c) => &c.custom_headers,
        event::Origin::S3(s) => &s.custom_headers,
    }
}

/// Runs the function of `association` on `event`, with metrics and one REPORT log line.
pub async fn invoke(edge: &Edge, association: &Association, event: &Event) -> Result<Outcome, InvokeError> {
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
    let resolved = edge.deploy.as_ref().map(|d| d.resolve(function, &viewer));
    let result = match (&edge.functions, resolved) {
        (Some(pool), Some(Ok(key))) => {
            let result = pool.invoke(&key, event).await;
            if let Some(deploy) = &edge.deploy {
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
        (Some(pool), None) => pool.invoke(function, event).await,
        (None, _) => Err(InvokeError {
            class: FailureClass::Execution,
            error_type: "Runtime.Unavailable".into(),
            message: "no functions are loaded".into(),
            function: function.to_string(),
            request_id: request_id.clone(),
        }),
    };
    let elapsed = started.elapsed();
    let metrics = &edge.metrics;
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
    tracing::info!(
        target: "edgehook::function",
        request_id = %request_id,
        function,
        event_type = kind.as_str(),
        duration_ms = elapsed.as_secs_f64() * 1e3,
        outcome,
        error = result.as_ref().err().map(|e| e.to_string()),
        "REPORT"
    );
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/a?x=1", None).unwrap();
        req.append_header("Host", "example.com").unwrap();
        req.append_header("Cookie", "a=1").unwrap();
        req.append_header("Connection", "keep-alive").unwrap();
        req.append_header("X-Forwarded-Proto", "https").unwrap();
        req
    }

    #[test]
    fn events_hide_disallowed_headers_and_keep_case() {
        let seen = request_of(&request(), "192.0.2.1");
        assert_eq!(seen.uri, "/a");
        assert_eq!(seen.querystring, "x=1");
        assert_eq!(seen.client_ip, "192.0.2.1");
        assert_eq!(seen.headers["host"][0].key.as_deref(), Some("Host"));
        assert!(!seen.headers.contains_key("connection"));
        assert!(!seen.headers.contains_key("x-forwarded-proto"));
    }

    /// `before` without its cookie and with an X-Variant header.
    fn varied(before: &event::Request) -> event::Request {
        let mut after = before.clone();
        after.headers.remove("cookie");
        after.headers.insert(
            "x-variant".into(),
            vec![HeaderEntry {
                key: Some("X-Variant".into()),
                value: "b".into(),
            }],
        );
        after
    }

    #[test]
    fn outcomes_apply_to_the_request() {
        let mut req = request();
        let before = request_of(&req, "192.0.2.1");
        let mut after = varied(&before);
        after.uri = "/b".into();
        after.querystring = String::new();
        apply_request(&mut req, &before, &after, &ChangedHeaders::Any).unwrap();
        assert_eq!(req.uri.to_string(), "/b");
        assert!(req.headers.get("cookie").is_none());
        assert_eq!(req.headers["x-variant"], "b");
        assert_eq!(req.headers["connection"], "keep-alive", "hidden headers stay");
        assert_eq!(req.headers["host"], "example.com");
    }

    /// With the changed names given, only those are compared and applied: a header left out of
    /// them stays as the proxy holds it.
    #[test]
    fn only_the_changed_headers_apply() {
        let mut req = request();
        let before = request_of(&req, "192.0.2.1");
        let mut after = varied(&before);
        after.headers.get_mut("host").unwrap()[0].value = "other.example".into();
        let changed = ChangedHeaders::Only(vec!["cookie".into(), "x-variant".into()]);
        apply_request(&mut req, &before, &after, &changed).unwrap();
        assert!(req.headers.get("cookie").is_none());
        assert_eq!(req.headers["x-variant"], "b");
        assert_eq!(req.headers["host"], "example.com", "not named as changed");
        apply_request(&mut req, &before, &after, &ChangedHeaders::Any).unwrap();
        assert_eq!(req.headers["host"], "other.example");
    }

    #[test]
    fn outcomes_apply_to_the_response() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("Content-Type", "text/html").unwrap();
        resp.append_header("Set-Cookie", "a=1").unwrap();
        let before = response_of(&resp);
        assert_eq!(before.status_description, "OK");
        let mut after = before.clone();
        after.headers.insert(
            "set-cookie".into(),
            vec![
                HeaderEntry {
                    key: Some("Set-Cookie".into()),
                    value: "a=1".into(),
                },
                HeaderEntry {
                    key: Some("Set-Cookie".into()),
                    value: "b=2".into(),
                },
            ],
        );
        apply_response(&mut resp, &before, &after, 404, &ChangedHeaders::Any).unwrap();
        assert_eq!(resp.status.as_u16(), 404);
        assert_eq!(resp.headers.get_all("set-cookie").iter().count(), 2);
        assert_eq!(resp.headers["content-type"], "text/html");
    }
}
