//! Per-request state carried through pingora's phases.

use crate::config::{Behavior, Config, Origin};
use crate::edge::event::{Headers, Request};
use crate::edge::result::ChangedHeaders;
use crate::edge::result::Generated;
use crate::js::FailureClass;
use crate::origin::local::{Forward, Pending};
use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Counts requests in progress; shutdown waits for it to reach zero.
#[derive(Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    fn enter(&self) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.0.clone())
    }
}

/// Held by a request's context for its whole life.
pub struct InFlightGuard(Arc<AtomicUsize>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct RequestCtx {
    /// The configuration this request runs under, from start to end.
    pub config: Arc<Config>,
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
    /// The viewer's Host, shown to functions as `config.distributionDomainName`.
    pub viewer_host: String,
    /// The viewer's address as functions see it (`clientIp`).
    pub client_ip: String,
    /// The viewer request after the viewer-request function, as viewer-response events show it.
    /// (Boxed, like the origin request: only requests with functions have them, and pingora
    /// moves the context around with every request.)
    pub viewer_request: Option<Box<Request>>,
    /// The class of a function failure being answered.
    pub function_error: Option<FailureClass>,
    /// The origin requests go to: the behavior's, or the one an origin-request function chose.
    pub origin: Option<Arc<Origin>>,
    /// The origin request as origin events show it (with its origin block), and the header
    /// changes an origin-request function made to it.
    pub origin_request: Option<Box<OriginRequest>>,
    /// Set when an origin-request function generated the response: the local origin serves it
    /// under its token so that it is cached like an origin response.
    pub generated: Option<Pending<Generated>>,
    /// The bodies edgehook holds whole for functions.
    pub bodies: Bodies,
    /// The real origin of a request whose body edgehook read: the local origin sends it on.
    pub forward_peer: Option<Box<pingora::upstreams::peer::HttpPeer>>,
    /// That request, waiting for the local origin under its token.
    pub forwarded: Option<Pending<Forward>>,
    _in_flight: InFlightGuard,
}

/// The bodies of a request and its response that edgehook holds whole for functions.
#[derive(Default)]
pub struct Bodies {
    /// The request body, read whole because a function includes it (include_body).
    pub request: Option<Bytes>,
    /// A request function's replacement for it (`body.action = "replace"`).
    pub request_replacement: Option<Bytes>,
    /// An origin-response function's replacement for the origin's body, sent (and cached)
    /// instead of it.
    pub response_replacement: Option<Bytes>,
}

impl Bodies {
    /// The request body the origin is to receive: a function's replacement, else the one read.
    pub fn request_to_send(&self) -> Option<&Bytes> {
        self.request_replacement.as_ref().or(self.request.as_ref())
    }
}

/// The origin request as origin-response events show it: after the origin-request function, if
/// one ran.
pub struct OriginRequest {
    pub request: Request,
    /// The headers the origin-request function was given and which of them it may have changed:
    /// applied to the request the origin receives. None without such a function.
    pub header_changes: Option<(Headers, ChangedHeaders)>,
}

impl RequestCtx {
    pub fn new(in_flight: &InFlight, config: Arc<Config>) -> Self {
        RequestCtx {
            config,
            request_id: super::request_id::next(),
            started: Instant::now(),
            behavior: None,
            viewer_tls: false,
            origin_started: None,
            error_answer: false,
            viewer_host: String::new(),
            client_ip: String::new(),
            viewer_request: None,
            function_error: None,
            origin: None,
            origin_request: None,
            generated: None,
            bodies: Bodies::default(),
            forward_peer: None,
            forwarded: None,
            _in_flight: in_flight.enter(),
        }
    }

    pub fn origin_name(&self) -> &str {
        match (&self.origin, &self.behavior) {
            (Some(origin), _) => origin.name.as_str(),
            (None, Some(behavior)) => behavior.origin.name.as_str(),
            (None, None) => "-",
        }
    }

    pub fn behavior_label(&self) -> &str {
        self.behavior.as_ref().map_or("-", |b| b.pattern.as_str())
    }
}

/// The viewer's address as text, as X-Forwarded-For and functions' `clientIp` carry it. IPv4
/// addresses are written out by hand: `Ipv4Addr`'s `Display` goes through the formatting
/// machinery and cost about 1,500 instructions on every request.
pub fn address_text(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut text = String::with_capacity(15);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text.push('.');
                }
                if octet >= 100 {
                    text.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    text.push(char::from(b'0' + octet / 10 % 10));
                }
                text.push(char::from(b'0' + octet % 10));
            }
            text
        }
        std::net::IpAddr::V6(v6) => v6.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{address_text, Bodies, Bytes};
    use std::net::IpAddr;

    #[test]
    fn the_origin_gets_a_functions_replacement_body_else_the_one_read() {
        let mut bodies = Bodies::default();
        assert_eq!(bodies.request_to_send(), None);
        bodies.request = Some(Bytes::from_static(b"read"));
        assert_eq!(bodies.request_to_send().map(|b| &b[..]), Some(&b"read"[..]));
        bodies.request_replacement = Some(Bytes::from_static(b"replaced"));
        assert_eq!(bodies.request_to_send().map(|b| &b[..]), Some(&b"replaced"[..]));
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for text in [
            "0.0.0.0",
            "1.2.3.4",
            "10.0.100.9",
            "99.100.101.255",
            "203.0.113.178",
            "255.255.255.255",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:192.0.2.1",
        ] {
            let ip: IpAddr = text.parse().expect("an address");
            assert_eq!(address_text(ip), ip.to_string());
            assert_eq!(address_text(ip), text);
        }
    }
}
