//! The access log line and the request metrics, written once per request in `logging`.

use super::access_format::{self, AccessRecord, Tls};
use super::ctx::{RequestCtx, Route};
use super::respond;
use super::NodeState;
use crate::js::FailureClass;
use crate::origin::status_for;
use crate::telemetry::{RequestTrace, SpanEnd};
use opentelemetry::KeyValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType};
use std::time::SystemTime;

/// What a request was answered: its status (0: none was written) and how the cache served it.
#[derive(Debug, Clone, Copy)]
pub struct Answered {
    pub status: u16,
    pub cache: &'static str,
}

/// Counts the request in the metrics and writes its access log line.
pub fn record(node: &NodeState, session: &mut Session, error: Option<&Error>, ctx: &RequestCtx) -> Answered {
    let status = session
        .response_written()
        .map_or_else(|| error.map_or(0, status_for), |r| r.status.as_u16());
    let cache = if ctx.error_answer.is_some() {
        "error"
    } else {
        respond::cache_result(session.cache.phase())
    };
    let metrics = &node.metrics;
    metrics
        .requests
        .with_label_values(&[status_class(status), ctx.distribution_label(), ctx.behavior_label()])
        .inc();
    metrics.cache.with_label_values(&[cache]).inc();
    let bytes_out = session.as_ref().body_bytes_sent() as u64;
    let bytes_in = session.as_ref().body_bytes_read() as u64;
    metrics.bytes_out.inc_by(bytes_out);
    metrics.bytes_in.inc_by(bytes_in);
    if let (Some(error), Some(_), false) = (error, ctx.origin_started, ctx.origin_answered) {
        metrics
            .origin_errors
            .with_label_values(&[ctx.origin_name(), OriginFailure::of(error).label()])
            .inc();
    }
    let answered = Answered { status, cache };
    let log = &ctx.config.log;
    if !log.access_log {
        return answered;
    }
    let req = session.req_header();
    let response = session.response_written();
    let (result_type, detailed_result_type) = result_types(ctx, cache, status, error);
    let header = |name: http::header::HeaderName| req.headers.get(name).and_then(|v| v.to_str().ok());
    let response_header =
        |name: http::header::HeaderName| response.and_then(|r| r.headers.get(name)).and_then(|v| v.to_str().ok());
    let cookies: Vec<&str> = req
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let cookie = cookies.join("; ");
    let digest = session.as_ref().digest();
    let tls = digest
        .and_then(|d| d.ssl_digest.as_ref())
        .map(|ssl| (openssl_protocol(&ssl.version), openssl_cipher(&ssl.cipher)));
    let client = session.as_ref().client_addr().and_then(|a| a.as_inet()).copied();
    let record = AccessRecord {
        at: SystemTime::now(),
        node: &ctx.config.node,
        request_id: &ctx.request_id,
        client_ip: &ctx.viewer.client_ip,
        client_port: client.map(|a| a.port()),
        method: req.method.as_str(),
        host: &ctx.viewer.host,
        path: req.uri.path(),
        query: req.uri.query(),
        version: version_name(req.version),
        tls: tls.as_ref().map(|(protocol, cipher)| Tls { protocol, cipher }),
        status,
        bytes_sent: response.map_or(0, response_head_size) + bytes_out,
        body_bytes_sent: bytes_out,
        bytes_received: request_head_size(req) + bytes_in,
        referer: header(http::header::REFERER),
        user_agent: header(http::header::USER_AGENT),
        cookie: (!cookie.is_empty()).then_some(cookie.as_str()),
        forwarded_for: header(http::header::HeaderName::from_static("x-forwarded-for")),
        content_type: response_header(http::header::CONTENT_TYPE),
        content_length: response_header(http::header::CONTENT_LENGTH),
        range: response_header(http::header::CONTENT_RANGE).and_then(content_range),
        duration: ctx.started.elapsed(),
        first_byte: ctx.first_byte,
        cache,
        result_type,
        detailed_result_type,
        distribution: ctx.distribution_label(),
        behavior: ctx.behavior_label(),
        origin: ctx.origin_name(),
        error: error.map(|e| e.to_string()),
    };
    let format = log.access_format;
    let line = access_format::line(format, &record);
    if !node.access_log.write(line, access_format::header(format)) {
        metrics.access_log_dropped.inc();
    }
    answered
}

/// Ends the request's trace: the request span named and described as OpenTelemetry's HTTP
/// server conventions have it (failed on 5xx or no answer), and the origin fetch span if the
/// request ended during it.
pub fn finish_trace(
    trace: RequestTrace,
    session: &Session,
    error: Option<&Error>,
    ctx: &RequestCtx,
    answered: Answered,
) {
    let message = error.map(|e| e.to_string());
    let end = match (&message, answered.status) {
        (Some(message), 0 | 500..) => SpanEnd::Error(message),
        (None, 0 | 500..) => SpanEnd::Error(""),
        _ => SpanEnd::Ok,
    };
    let origin_failure = error
        .filter(|e| e.esource() == &ErrorSource::Upstream)
        .and(message.as_deref());
    trace.finish(
        || request_span(session.req_header(), ctx, answered),
        end,
        origin_failure,
    );
}

/// The request span's name and attributes.
fn request_span(req: &RequestHeader, ctx: &RequestCtx, answered: Answered) -> (String, Vec<KeyValue>) {
    let route = ctx.behavior.as_ref().map(|b| b.pattern.as_str());
    let name = match route {
        Some(route) => format!("{} {route}", req.method),
        None => req.method.to_string(),
    };
    let mut attributes = vec![
        KeyValue::new("http.request.method", req.method.to_string()),
        KeyValue::new("url.path", req.uri.path().to_string()),
        KeyValue::new("url.scheme", if ctx.viewer.tls { "https" } else { "http" }),
        KeyValue::new("server.address", ctx.viewer.host.clone()),
        KeyValue::new("client.address", ctx.viewer.client_ip.clone()),
        KeyValue::new(
            "network.protocol.version",
            version_name(req.version).trim_start_matches("HTTP/"),
        ),
        KeyValue::new("edgehook.request_id", ctx.request_id.clone()),
        KeyValue::new("edgehook.cache", answered.cache),
    ];
    if let Some(route) = route {
        attributes.push(KeyValue::new("http.route", route.to_string()));
    }
    if answered.status != 0 {
        attributes.push(KeyValue::new("http.response.status_code", i64::from(answered.status)));
    }
    (name, attributes)
}

/// A status's class, as the request metrics label it.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}

/// How a fetch that got no answer failed: `edgehook_origin_errors_total`'s label, and
/// CloudFront's detailed result type for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OriginFailure {
    Connect,
    Tls,
    Timeout,
    ViewerGone,
    Read,
}

impl OriginFailure {
    fn of(error: &Error) -> OriginFailure {
        match error.etype() {
            ErrorType::ConnectTimedout
            | ErrorType::ConnectRefused
            | ErrorType::ConnectNoRoute
            | ErrorType::ConnectError => OriginFailure::Connect,
            ErrorType::TLSHandshakeFailure | ErrorType::TLSHandshakeTimedout | ErrorType::InvalidCert => {
                OriginFailure::Tls
            }
            ErrorType::ReadTimedout | ErrorType::WriteTimedout => OriginFailure::Timeout,
            _ if error.esource() == &ErrorSource::Downstream => OriginFailure::ViewerGone,
            _ => OriginFailure::Read,
        }
    }

    fn label(self) -> &'static str {
        match self {
            OriginFailure::Connect => "connect",
            OriginFailure::Tls => "tls",
            OriginFailure::Timeout => "timeout",
            OriginFailure::ViewerGone => "viewer_gone",
            OriginFailure::Read => "read",
        }
    }

    fn detailed_result_type(self) -> &'static str {
        match self {
            OriginFailure::Connect | OriginFailure::Tls => "OriginConnectError",
            OriginFailure::Timeout => "OriginReadError",
            OriginFailure::ViewerGone | OriginFailure::Read => "OriginError",
        }
    }
}

/// CloudFront's `x-edge-result-type` (also its response result type) and
/// `x-edge-detailed-result-type` for this request.
fn result_types(ctx: &RequestCtx, cache: &str, status: u16, error: Option<&Error>) -> (&'static str, &'static str) {
    if let Some(class) = ctx.function_failure() {
        let name = FailureClass::name(class);
        return (name, name);
    }
    let generated = matches!(ctx.route, Route::Generated(_));
    let result = match cache {
        _ if status >= 400 || error.is_some() => "Error",
        "hit" | "stale" => "Hit",
        "revalidated" => "RefreshHit",
        _ => "Miss",
    };
    let detail = match (result, error) {
        ("Error", Some(error)) => match error.esource() {
            ErrorSource::Downstream => "ClientCommError",
            ErrorSource::Upstream => OriginFailure::of(error).detailed_result_type(),
            _ => "Error",
        },
        ("Miss", None) if generated => "MissGeneratedResponse",
        (result, _) => result,
    };
    (result, detail)
}

fn version_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// A request head's size as HTTP/1.1 writes it.
fn request_head_size(req: &RequestHeader) -> u64 {
    let line = req.method.as_str().len() + 1 + req.uri.path_and_query().map_or(1, |p| p.as_str().len()) + 11;
    let fields: usize = req.headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    (line + fields + 2) as u64
}

/// A response head's size as HTTP/1.1 writes it.
fn response_head_size(resp: &ResponseHeader) -> u64 {
    let line = 13 + resp.status.canonical_reason().map_or(0, str::len) + 2;
    let fields: usize = resp.headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    (line + fields + 2) as u64
}

/// The first and last byte of `bytes 0-99/1000`.
fn content_range(value: &str) -> Option<(u64, u64)> {
    let (first, last) = value.strip_prefix("bytes ")?.split('/').next()?.split_once('-')?;
    Some((first.trim().parse().ok()?, last.trim().parse().ok()?))
}

/// rustls's protocol name (`TLSv1_3`) as OpenSSL and CloudFront's logs write it (`TLSv1.3`).
fn openssl_protocol(rustls: &str) -> String {
    rustls.replace('_', ".")
}

/// rustls's cipher suite names (IANA's) as OpenSSL and CloudFront's logs write them.
fn openssl_cipher(rustls: &str) -> String {
    let known = match rustls {
        "TLS13_AES_128_GCM_SHA256" => "TLS_AES_128_GCM_SHA256",
        "TLS13_AES_256_GCM_SHA384" => "TLS_AES_256_GCM_SHA384",
        "TLS13_CHACHA20_POLY1305_SHA256" => "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => "ECDHE-RSA-CHACHA20-POLY1305",
        other => other,
    };
    known.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_names_are_openssls() {
        assert_eq!(openssl_protocol("TLSv1_3"), "TLSv1.3");
        assert_eq!(openssl_protocol("TLSv1_2"), "TLSv1.2");
        assert_eq!(openssl_cipher("TLS13_AES_256_GCM_SHA384"), "TLS_AES_256_GCM_SHA384");
        assert_eq!(
            openssl_cipher("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
            "ECDHE-ECDSA-AES128-GCM-SHA256"
        );
    }

    #[test]
    fn content_ranges_give_their_first_and_last_byte() {
        assert_eq!(content_range("bytes 0-99/1000"), Some((0, 99)));
        assert_eq!(content_range("bytes 100-199/*"), Some((100, 199)));
        assert_eq!(content_range("bytes */1000"), None);
        assert_eq!(content_range("items 1-2/3"), None);
    }

    #[test]
    fn head_sizes_count_what_http1_writes() {
        let mut req = RequestHeader::build("GET", b"/a?b", None).unwrap();
        req.insert_header("host", "x").unwrap();
        // "GET /a?b HTTP/1.1\r\n" + "host: x\r\n" + "\r\n"
        assert_eq!(request_head_size(&req), 19 + 9 + 2);
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("a", "b").unwrap();
        // "HTTP/1.1 200 OK\r\n" + "a: b\r\n" + "\r\n"
        assert_eq!(response_head_size(&resp), 17 + 6 + 2);
    }
}
