//! The request the origin receives: Host per the origin's `host_header`, the origin's base path
//! (or the directory origin's name on the internal socket), and the forwarding headers
//! X-Forwarded-For (appended), X-Forwarded-Proto, Via (appended) and the request id.

use crate::config::{HostHeader, Origin, OriginKind};
use pingora::http::{IntoCaseHeaderName, RequestHeader};
use pingora::Result;

const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
/// The names as written on the wire. Given as `HeaderName`s, pingora would copy each custom name
/// into a new buffer on every insert to keep its spelling.
const X_FORWARDED_FOR_WIRE: bytes::Bytes = bytes::Bytes::from_static(b"X-Forwarded-For");
const X_FORWARDED_PROTO_WIRE: bytes::Bytes = bytes::Bytes::from_static(b"X-Forwarded-Proto");

pub struct Forwarding<'a> {
    pub origin: &'a Origin,
    /// The viewer's address as text (empty when unknown), computed once per request.
    pub client_ip: &'a str,
    pub viewer_tls: bool,
    /// Our hop in `Via` (`1.1 <via>`).
    pub via_hop: &'a http::HeaderValue,
    pub request_id_header: &'a http::HeaderName,
    pub request_id: &'a str,
}

impl<'a> Forwarding<'a> {
    pub fn apply(&self, req: &mut RequestHeader) -> Result<()> {
        let path_and_query = |req: &RequestHeader| req.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        match &self.origin.kind {
            OriginKind::Http(http) => {
                if !http.base_path.is_empty() {
                    set_uri(req, &format!("{}{}", http.base_path, path_and_query(req)))?;
                }
            }
            OriginKind::Dir(_) => {
                set_uri(req, &format!("/{}{}", self.origin.name, path_and_query(req)))?;
            }
        }
        self.headers(req)?.set_on(req)
    }

    /// The forwarding headers for `req`, worked out from it.
    pub fn headers(&self, req: &RequestHeader) -> Result<ForwardingHeaders<'a>> {
        let host = match &self.origin.kind {
            OriginKind::Http(http) => match &http.host_header {
                HostHeader::Origin(host) => Some(host.clone()),
                HostHeader::Viewer => None,
            },
            OriginKind::Dir(_) => None,
        };
        let forwarded_for = if self.client_ip.is_empty() {
            None
        } else {
            let joined = match req.headers.get(&X_FORWARDED_FOR).map(|v| v.as_bytes()) {
                Some(existing) if !existing.trim_ascii().is_empty() => {
                    [existing, b", ", self.client_ip.as_bytes()].concat()
                }
                _ => self.client_ip.as_bytes().to_vec(),
            };
            // An existing value is a valid header value, and so is an address: so is the join.
            let value = http::HeaderValue::from_maybe_shared(bytes::Bytes::from(joined))
                .map_err(|e| pingora::Error::because(pingora::ErrorType::InternalError, "X-Forwarded-For", e))?;
            Some(value)
        };
        let request_id = http::HeaderValue::from_str(self.request_id)
            .map_err(|e| pingora::Error::because(pingora::ErrorType::InternalError, "the request id", e))?;
        Ok(ForwardingHeaders {
            host,
            forwarded_for,
            proto: http::HeaderValue::from_static(if self.viewer_tls { "https" } else { "http" }),
            via: appended_via(&req.headers, self.via_hop),
            request_id_header: self.request_id_header,
            request_id,
        })
    }
}

/// Where forwarding headers are set, each replacing any header of its name: the request the
/// origin receives, or its picture in an origin event.
pub trait HeaderSink {
    fn set(&mut self, name: impl IntoCaseHeaderName, value: http::HeaderValue) -> Result<()>;
}

impl HeaderSink for RequestHeader {
    fn set(&mut self, name: impl IntoCaseHeaderName, value: http::HeaderValue) -> Result<()> {
        self.insert_header(name, value).map(|_| ())
    }
}

/// The values of the forwarding headers: Host per the origin's `host_header`, X-Forwarded-For
/// (appended), X-Forwarded-Proto, Via (appended) and the request id.
pub struct ForwardingHeaders<'a> {
    host: Option<http::HeaderValue>,
    forwarded_for: Option<http::HeaderValue>,
    proto: http::HeaderValue,
    via: http::HeaderValue,
    request_id_header: &'a http::HeaderName,
    request_id: http::HeaderValue,
}

impl ForwardingHeaders<'_> {
    pub fn set_on(self, sink: &mut impl HeaderSink) -> Result<()> {
        if let Some(host) = self.host {
            sink.set(http::header::HOST, host)?;
        }
        if let Some(forwarded_for) = self.forwarded_for {
            sink.set(X_FORWARDED_FOR_WIRE, forwarded_for)?;
        }
        sink.set(X_FORWARDED_PROTO_WIRE, self.proto)?;
        sink.set(http::header::VIA, self.via)?;
        sink.set(self.request_id_header.clone(), self.request_id)
    }
}

/// `Via` with our hop appended to what earlier hops wrote (requests and responses alike).
pub fn appended_via(headers: &http::HeaderMap, own_hop: &http::HeaderValue) -> http::HeaderValue {
    match headers.get(http::header::VIA) {
        Some(existing) => {
            let joined = [existing.as_bytes(), b", ", own_hop.as_bytes()].concat();
            // Both parts are valid header values, so their join is one too.
            http::HeaderValue::from_bytes(&joined).unwrap_or_else(|_| own_hop.clone())
        }
        None => own_hop.clone(),
    }
}

fn set_uri(req: &mut RequestHeader, path_and_query: &str) -> Result<()> {
    let uri = http::Uri::builder()
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| pingora::Error::because(pingora::ErrorType::InternalError, "building the origin URI", e))?;
    req.set_uri(uri);
    Ok(())
}

/// Hop-by-hop by definition (RFC 9110 7.6.1): dropped whenever present.
pub const KEEP_ALIVE: http::HeaderName = http::HeaderName::from_static("keep-alive");

/// The fields a message's `Connection` header names (`close` and `keep-alive` aside, the
/// usual values, which name nothing to drop but `Keep-Alive`): meant for the hop that sent it
/// alone, so a proxy removes them before forwarding (RFC 9110 7.6.1) and a cache does not
/// store them. None without a `Connection` header; the usual values cost no allocation.
pub fn connection_named(headers: &http::HeaderMap) -> Option<Vec<http::HeaderName>> {
    let mut values = headers.get_all(http::header::CONNECTION).iter();
    match (values.next(), values.next()) {
        (None, _) => return None,
        (Some(only), None)
            if only.as_bytes().eq_ignore_ascii_case(b"keep-alive")
                || only.as_bytes().eq_ignore_ascii_case(b"close") =>
        {
            return Some(Vec::new())
        }
        _ => {}
    }
    let mut names = Vec::new();
    for value in headers.get_all(http::header::CONNECTION) {
        for token in value.as_bytes().split(|b| *b == b',') {
            let token = token.trim_ascii();
            if token.is_empty() || token.eq_ignore_ascii_case(b"close") || token.eq_ignore_ascii_case(b"keep-alive") {
                continue;
            }
            if let Ok(name) = http::HeaderName::from_bytes(token) {
                names.push(name);
            }
        }
    }
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DirOrigin, HttpOrigin};
    use crate::proxy::hooks::{request_of, ForwardedEventHeaders};
    use std::time::Duration;

    fn http_origin(base_path: &str, host_header: HostHeader) -> Origin {
        Origin {
            name: "app".into(),
            kind: OriginKind::Http(HttpOrigin {
                tls: false,
                host: "origin.internal".into(),
                port: 9000,
                base_path: base_path.into(),
                connect_timeout: Duration::from_secs(1),
                read_timeout: Duration::from_secs(1),
                write_timeout: Duration::from_secs(1),
                idle_timeout: Duration::from_secs(1),
                verify_cert: true,
                ca: None,
                host_header,
            }),
        }
    }

    fn forward(origin: &Origin, req: &mut RequestHeader) {
        let header = http::HeaderName::from_static("x-request-id");
        Forwarding {
            origin,
            client_ip: "10.1.2.3",
            viewer_tls: true,
            via_hop: &http::HeaderValue::from_static("1.1 edgehook"),
            request_id_header: &header,
            request_id: "abc",
        }
        .apply(req)
        .unwrap();
    }

    #[test]
    fn forwarding_headers_are_appended() {
        let origin = http_origin(
            "/base",
            HostHeader::Origin(http::HeaderValue::from_static("origin.internal:9000")),
        );
        let mut req = RequestHeader::build("GET", b"/p?q=1", None).unwrap();
        req.insert_header("host", "viewer.example").unwrap();
        req.insert_header("x-forwarded-for", "192.0.2.1").unwrap();
        req.insert_header("via", "1.1 other").unwrap();
        forward(&origin, &mut req);
        assert_eq!(req.uri.to_string(), "/base/p?q=1");
        assert_eq!(req.headers["host"], "origin.internal:9000");
        assert_eq!(req.headers["x-forwarded-for"], "192.0.2.1, 10.1.2.3");
        assert_eq!(req.headers["x-forwarded-proto"], "https");
        assert_eq!(req.headers["via"], "1.1 other, 1.1 edgehook");
        assert_eq!(req.headers["x-request-id"], "abc");
    }

    /// Origin events show the request's headers as forwarding sets them for the origin: the same
    /// as the event of a forwarded copy of the request would show, with and without the case
    /// of the names kept.
    #[test]
    fn origin_events_show_the_forwarded_headers() {
        let origins = [
            http_origin(
                "",
                HostHeader::Origin(http::HeaderValue::from_static("origin.internal:9000")),
            ),
            http_origin("/base", HostHeader::Viewer),
            Origin {
                name: "site".into(),
                kind: OriginKind::Dir(DirOrigin {
                    root: "/".into(),
                    index: None,
                }),
            },
        ];
        let id = http::HeaderName::from_static("x-request-id");
        let hop = http::HeaderValue::from_static("1.1 edgehook");
        for keep_case in [true, false] {
            for client_ip in ["10.1.2.3", ""] {
                for origin in &origins {
                    let mut req = if keep_case {
                        RequestHeader::build("GET", b"/p?q=1", None).unwrap()
                    } else {
                        RequestHeader::build_no_case("GET", b"/p?q=1", None).unwrap()
                    };
                    for (name, value) in [
                        ("Host", "viewer.example"),
                        ("x-forwarded-for", "192.0.2.1"),
                        ("Via", "1.1 a"),
                        ("Via", "1.1 b"),
                        ("X-Request-ID", "spoofed"),
                        ("X-Forwarded-Proto", "http"),
                        ("Cookie", "a=1"),
                    ] {
                        req.append_header(name, value).unwrap();
                    }
                    let forwarding = Forwarding {
                        origin,
                        client_ip,
                        viewer_tls: true,
                        via_hop: &hop,
                        request_id_header: &id,
                        request_id: "abc",
                    };
                    let mut copy = req.clone();
                    forwarding.apply(&mut copy).unwrap();
                    let expected = request_of(&copy, client_ip).headers;
                    let mut seen = request_of(&req, client_ip);
                    let mut headers = ForwardedEventHeaders {
                        headers: &mut seen.headers,
                        has_case: req.has_case(),
                    };
                    forwarding.headers(&req).unwrap().set_on(&mut headers).unwrap();
                    assert_eq!(seen.headers, expected, "case kept: {keep_case}, client {client_ip:?}");
                    assert_eq!(seen.headers["via"].len(), 1);
                }
            }
        }
    }

    #[test]
    fn viewer_host_is_kept_when_asked() {
        let origin = http_origin("", HostHeader::Viewer);
        let mut req = RequestHeader::build("GET", b"/p", None).unwrap();
        req.insert_header("host", "viewer.example").unwrap();
        forward(&origin, &mut req);
        assert_eq!(req.headers["host"], "viewer.example");
        assert_eq!(req.uri.to_string(), "/p");
    }

    #[test]
    fn directory_origins_get_their_name_prefix() {
        let origin = Origin {
            name: "site".into(),
            kind: OriginKind::Dir(DirOrigin {
                root: "/".into(),
                index: None,
            }),
        };
        let mut req = RequestHeader::build("GET", b"/a/b.css?v=2", None).unwrap();
        forward(&origin, &mut req);
        assert_eq!(req.uri.to_string(), "/site/a/b.css?v=2");
    }

    #[test]
    fn the_fields_connection_names_are_hop_by_hop() {
        let mut headers = http::HeaderMap::new();
        headers.append(http::header::CONNECTION, "close, X-Hop".parse().unwrap());
        headers.append(http::header::CONNECTION, "keep-alive,,".parse().unwrap());
        let names: Vec<String> = connection_named(&headers)
            .unwrap()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, ["x-hop"]);
        assert_eq!(connection_named(&http::HeaderMap::new()), None);
    }
}
