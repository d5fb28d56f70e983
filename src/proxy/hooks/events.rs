//! Events built from what the proxy holds: the request and response as functions see them,
//! the origin block, and the origin a function chose.

use crate::config::distribution::IMPLICIT_DISTRIBUTION_ID;
use crate::config::{HostHeader, HttpOrigin, Origin, OriginKind};
use crate::edge::event::{self, Cf, Event, EventConfig, HeaderEntry, Headers};
use crate::edge::{rules, EventType};
use crate::proxy::ctx::RequestCtx;
use crate::proxy::forward::HeaderSink;
use pingora::http::{IntoCaseHeaderName, RequestHeader, ResponseHeader};
use pingora::Result;
use std::sync::Arc;
use std::time::Duration;

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
        config: EventConfig {
            distribution_domain_name: ctx.viewer.host.clone(),
            distribution_id: ctx
                .distribution
                .as_ref()
                .map_or(IMPLICIT_DISTRIBUTION_ID, |d| d.id())
                .into(),
            event_type: kind,
            request_id: ctx.request_id.clone(),
        },
        request,
        response,
    })
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
