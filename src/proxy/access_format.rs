//! The access log's line formats: JSON, the combined format of Apache and nginx, and
//! CloudFront's standard log (tab-separated, with its `#Fields` header), so that tools that
//! read those logs read edgehook's.

use crate::config::AccessFormat;
use std::fmt::Write;
use std::time::{Duration, SystemTime};

/// CloudFront's standard log fields, in order (its legacy standard logging: 33 fields).
pub const CLOUDFRONT_FIELDS: [&str; 33] = [
    "date",
    "time",
    "x-edge-location",
    "sc-bytes",
    "c-ip",
    "cs-method",
    "cs(Host)",
    "cs-uri-stem",
    "sc-status",
    "cs(Referer)",
    "cs(User-Agent)",
    "cs-uri-query",
    "cs(Cookie)",
    "x-edge-result-type",
    "x-edge-request-id",
    "x-host-header",
    "cs-protocol",
    "cs-bytes",
    "time-taken",
    "x-forwarded-for",
    "ssl-protocol",
    "ssl-cipher",
    "x-edge-response-result-type",
    "cs-protocol-version",
    "fle-status",
    "fle-encrypted-fields",
    "c-port",
    "time-to-first-byte",
    "x-edge-detailed-result-type",
    "sc-content-type",
    "sc-content-len",
    "sc-range-start",
    "sc-range-end",
];

/// The lines a CloudFront log file starts with.
pub const CLOUDFRONT_HEADER: &str = "#Version: 1.0\n#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len sc-range-start sc-range-end\n";

/// What one request did, as the access log tells it.
pub struct AccessRecord<'a> {
    /// When the answer was finished.
    pub at: SystemTime,
    pub node: &'a str,
    pub request_id: &'a str,
    pub client_ip: &'a str,
    pub client_port: Option<u16>,
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// `HTTP/1.1`, `HTTP/2.0`.
    pub version: &'a str,
    pub tls: Option<Tls<'a>>,
    pub status: u16,
    /// Bytes sent to the viewer: the response head and body.
    pub bytes_sent: u64,
    pub body_bytes_sent: u64,
    /// Bytes received from the viewer: the request head and body.
    pub bytes_received: u64,
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub cookie: Option<&'a str>,
    pub forwarded_for: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub content_length: Option<&'a str>,
    /// The first and last byte of a partial answer (`Content-Range`).
    pub range: Option<(u64, u64)>,
    pub duration: Duration,
    pub first_byte: Option<Duration>,
    /// edgehook's cache result: hit, miss, stale, revalidated, bypass, uncacheable, error.
    pub cache: &'a str,
    /// CloudFront's result types: `x-edge-result-type` (and response result type), and the
    /// detailed one.
    pub result_type: &'a str,
    pub detailed_result_type: &'a str,
    /// The distribution's name (`-`: the top-level behaviors).
    pub distribution: &'a str,
    pub behavior: &'a str,
    pub origin: &'a str,
    pub error: Option<String>,
}

/// The viewer connection's TLS, in OpenSSL's names as CloudFront logs them.
#[derive(Clone, Copy)]
pub struct Tls<'a> {
    pub protocol: &'a str,
    pub cipher: &'a str,
}

/// One line of the log, with its newline.
pub fn line(format: AccessFormat, record: &AccessRecord) -> String {
    match format {
        AccessFormat::Json => json(record),
        AccessFormat::Combined => combined(record),
        AccessFormat::CloudFront => cloudfront(record),
    }
}

/// The header a new file of `format` starts with.
pub fn header(format: AccessFormat) -> Option<&'static str> {
    (format == AccessFormat::CloudFront).then_some(CLOUDFRONT_HEADER)
}

fn json(r: &AccessRecord) -> String {
    let mut value = serde_json::json!({
        "time": time::OffsetDateTime::from(r.at).format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "request_id": r.request_id,
        "client_ip": r.client_ip,
        "client_port": r.client_port,
        "method": r.method,
        "host": r.host,
        "uri": match r.query {
            Some(query) => format!("{}?{query}", r.path),
            None => r.path.to_string(),
        },
        "protocol": r.version,
        "tls": r.tls.map(|t| serde_json::json!({"protocol": t.protocol, "cipher": t.cipher})),
        "status": r.status,
        "bytes": r.body_bytes_sent,
        "bytes_sent": r.bytes_sent,
        "bytes_received": r.bytes_received,
        "referer": r.referer,
        "user_agent": r.user_agent,
        "duration_ms": r.duration.as_secs_f64() * 1000.0,
        "first_byte_ms": r.first_byte.map(|d| d.as_secs_f64() * 1000.0),
        "cache": r.cache,
        "result_type": r.result_type,
        "detail": r.detailed_result_type,
        "distribution": r.distribution,
        "behavior": r.behavior,
        "origin": r.origin,
        "node": r.node,
    });
    if let Some(error) = &r.error {
        value["error"] = error.as_str().into();
    }
    let mut out = value.to_string();
    out.push('\n');
    out
}

/// nginx's `combined`: `$remote_addr - $remote_user [$time_local] "$request" $status
/// $body_bytes_sent "$http_referer" "$http_user_agent"`, in UTC, escaped as nginx escapes.
fn combined(r: &AccessRecord) -> String {
    let at = time::OffsetDateTime::from(r.at);
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][usize::from(u8::from(at.month())) - 1];
    let mut out = String::with_capacity(256);
    let _ = write!(
        out,
        "{} - - [{:02}/{month}/{}:{:02}:{:02}:{:02} +0000] \"",
        r.client_ip,
        at.day(),
        at.year(),
        at.hour(),
        at.minute(),
        at.second()
    );
    escape_nginx(&mut out, r.method);
    out.push(' ');
    escape_nginx(&mut out, r.path);
    if let Some(query) = r.query {
        out.push('?');
        escape_nginx(&mut out, query);
    }
    let _ = write!(out, " {}\" {} {} \"", r.version, r.status, r.body_bytes_sent);
    escape_nginx(&mut out, r.referer.unwrap_or("-"));
    out.push_str("\" \"");
    escape_nginx(&mut out, r.user_agent.unwrap_or("-"));
    out.push_str("\"\n");
    out
}

/// nginx's default escaping: `"`, `\` and bytes outside printable ASCII as `\xHH`.
fn escape_nginx(out: &mut String, text: &str) {
    for &byte in text.as_bytes() {
        if byte == b'"' || byte == b'\\' || !(0x20..0x7f).contains(&byte) {
            let _ = write!(out, "\\x{byte:02X}");
        } else {
            out.push(byte as char);
        }
    }
}

fn cloudfront(r: &AccessRecord) -> String {
    let at = time::OffsetDateTime::from(r.at);
    let mut out = String::with_capacity(512);
    let _ = write!(
        out,
        "{}-{:02}-{:02}\t{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    let mut field = |value: &str, query: bool| {
        out.push('\t');
        if value.is_empty() {
            out.push('-');
        } else {
            escape_cloudfront(&mut out, value, query);
        }
    };
    let numbers = |n: u64| n.to_string();
    let seconds = |d: Duration| format!("{:.3}", d.as_secs_f64());
    field(r.node, false);
    field(&numbers(r.bytes_sent), false);
    field(r.client_ip, false);
    field(r.method, false);
    // CloudFront writes the distribution's own domain here and the viewer's Host in
    // x-host-header: a named distribution writes its name, the implicit one the Host.
    field(if r.distribution == "-" { r.host } else { r.distribution }, false);
    field(r.path, false);
    field(&r.status.to_string(), false);
    field(r.referer.unwrap_or(""), false);
    field(r.user_agent.unwrap_or(""), false);
    field(r.query.unwrap_or(""), true);
    field(r.cookie.unwrap_or(""), false);
    field(r.result_type, false);
    field(r.request_id, false);
    field(r.host, false);
    field(if r.tls.is_some() { "https" } else { "http" }, false);
    field(&numbers(r.bytes_received), false);
    field(&seconds(r.duration), false);
    field(r.forwarded_for.unwrap_or(""), false);
    field(r.tls.map_or("", |t| t.protocol), false);
    field(r.tls.map_or("", |t| t.cipher), false);
    field(r.result_type, false);
    field(r.version, false);
    field("", false);
    field("", false);
    field(&r.client_port.map(|p| p.to_string()).unwrap_or_default(), false);
    field(&r.first_byte.map(seconds).unwrap_or_default(), false);
    field(r.detailed_result_type, false);
    field(r.content_type.unwrap_or(""), false);
    field(r.content_length.unwrap_or(""), false);
    field(&r.range.map(|(start, _)| start.to_string()).unwrap_or_default(), false);
    field(&r.range.map(|(_, end)| end.to_string()).unwrap_or_default(), false);
    out.push('\n');
    out
}

/// CloudFront's log encoding: bytes outside visible ASCII (spaces, tabs, controls, UTF-8)
/// become `%XX`; in the query string `%` itself does too, as CloudFront logs it.
fn escape_cloudfront(out: &mut String, text: &str, query: bool) {
    for &byte in text.as_bytes() {
        if !(0x21..0x7f).contains(&byte) || (query && byte == b'%') {
            let _ = write!(out, "%{byte:02X}");
        } else {
            out.push(byte as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AccessRecord<'static> {
        AccessRecord {
            // 2019-12-04T21:02:31Z, the time of CloudFront's sample events.
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_575_493_351),
            node: "edge-1",
            request_id: "2e3f9a5c41b7d0e8",
            client_ip: "203.0.113.178",
            client_port: Some(54321),
            method: "GET",
            host: "www.example.test",
            path: "/a b/\u{e9}.html",
            query: Some("q=1%202&x"),
            version: "HTTP/1.1",
            tls: Some(Tls {
                protocol: "TLSv1.3",
                cipher: "TLS_AES_128_GCM_SHA256",
            }),
            status: 206,
            bytes_sent: 300,
            body_bytes_sent: 100,
            bytes_received: 120,
            referer: None,
            user_agent: Some("Mozilla/5.0 \"x\"\tz"),
            cookie: Some("a=1; b=2"),
            forwarded_for: None,
            content_type: Some("text/html"),
            content_length: Some("100"),
            range: Some((0, 99)),
            duration: Duration::from_micros(12_345),
            first_byte: Some(Duration::from_micros(2_001)),
            cache: "hit",
            result_type: "Hit",
            detailed_result_type: "Hit",
            distribution: "-",
            behavior: "*",
            origin: "app",
            error: None,
        }
    }

    #[test]
    fn the_cloudfront_header_names_the_fields_in_order() {
        assert_eq!(
            CLOUDFRONT_HEADER,
            format!("#Version: 1.0\n#Fields: {}\n", CLOUDFRONT_FIELDS.join(" "))
        );
        assert_eq!(header(AccessFormat::CloudFront), Some(CLOUDFRONT_HEADER));
        assert_eq!(header(AccessFormat::Combined), None);
        assert_eq!(header(AccessFormat::Json), None);
    }

    #[test]
    fn a_cloudfront_line_has_every_field_tab_separated_and_encoded() {
        let line = line(AccessFormat::CloudFront, &record());
        let fields: Vec<&str> = line.trim_end_matches('\n').split('\t').collect();
        assert_eq!(
            fields,
            [
                "2019-12-04",
                "21:02:31",
                "edge-1",
                "300",
                "203.0.113.178",
                "GET",
                "www.example.test",
                "/a%20b/%C3%A9.html",
                "206",
                "-",
                "Mozilla/5.0%20\"x\"%09z",
                "q=1%25202&x",
                "a=1;%20b=2",
                "Hit",
                "2e3f9a5c41b7d0e8",
                "www.example.test",
                "https",
                "120",
                "0.012",
                "-",
                "TLSv1.3",
                "TLS_AES_128_GCM_SHA256",
                "Hit",
                "HTTP/1.1",
                "-",
                "-",
                "54321",
                "0.002",
                "Hit",
                "text/html",
                "100",
                "0",
                "99",
            ]
        );
        assert!(line.ends_with('\n'));
    }

    #[test]
    fn a_combined_line_escapes_as_nginx_does() {
        assert_eq!(
            line(AccessFormat::Combined, &record()),
            "203.0.113.178 - - [04/Dec/2019:21:02:31 +0000] \"GET /a b/\\xC3\\xA9.html?q=1%202&x HTTP/1.1\" 206 100 \"-\" \"Mozilla/5.0 \\x22x\\x22\\x09z\"\n"
        );
    }

    #[test]
    fn a_json_line_is_one_object() {
        let line = line(AccessFormat::Json, &record());
        assert_eq!(line.matches('\n').count(), 1, "one line");
        let value: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(value["time"], "2019-12-04T21:02:31Z");
        assert_eq!(value["uri"], "/a b/\u{e9}.html?q=1%202&x");
        assert_eq!(value["status"], 206);
        assert_eq!(value["bytes"], 100);
        assert_eq!(value["tls"]["protocol"], "TLSv1.3");
        assert!((value["duration_ms"].as_f64().unwrap() - 12.345).abs() < 1e-9);
        assert_eq!(value["referer"], serde_json::Value::Null);
        assert!(value.get("error").is_none(), "no error, no field");
    }
}
