//! Per-request state carried through pingora's phases.

use crate::config::{Behavior, Config, Distribution, Origin};
use crate::edge::event::{Headers, Request};
use crate::edge::result::ChangedHeaders;
use crate::edge::result::Generated;
use crate::js::FailureClass;
use crate::origin::local::{Forward, Pending};
use bytes::Bytes;
use pingora::http::ResponseHeader;
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
    /// The distribution serving the request's host (None for requests refused before).
    pub distribution: Option<Arc<Distribution>>,
    /// The behavior chosen for the request path (None only for requests refused before matching).
    pub behavior: Option<Arc<Behavior>>,
    pub viewer: Viewer,
    /// Where a cache miss goes.
    pub route: Route,
    /// When the origin was chosen, to measure its response time.
    pub origin_started: Option<Instant>,
    /// Whether the origin's response head arrived (a fetch that failed before has none).
    pub origin_answered: bool,
    /// When the response head was ready to go to the viewer, from the request's start.
    pub first_byte: Option<std::time::Duration>,
    /// The origin request as origin events show it (with its origin block), and the header
    /// changes an origin-request function made to it.
    pub origin_request: Option<Box<OriginRequest>>,
    /// The bodies edgehook holds whole for functions.
    pub bodies: Bodies,
    /// Set when the answer is an error edgehook wrote (None: the origin's, the cache's or a
    /// function's answer).
    pub error_answer: Option<ErrorAnswer>,
    /// The origin's 304 to a revalidation: every header of it updates the stored response.
    pub not_modified: Option<Box<ResponseHeader>>,
    /// The encoding a compressing behavior would answer this viewer in (None: as it comes).
    pub encoding: Option<super::compress::Encoding>,
    /// Compresses the origin's body on its way into the cache.
    pub compressor: Option<super::compress::Compressor>,
    /// The request's trace, when `[tracing]` is on.
    pub trace: Option<Box<crate::telemetry::RequestTrace>>,
    _in_flight: InFlightGuard,
}

/// Who is asking, as functions and the forwarding headers see it.
#[derive(Default)]
pub struct Viewer {
    /// Whether the viewer connected over TLS.
    pub tls: bool,
    /// The viewer's Host, shown to functions as `config.distributionDomainName`.
    pub host: String,
    /// The viewer's address as functions see it (`clientIp`).
    pub client_ip: String,
    /// The viewer request after the viewer-request function, as viewer-response events show it.
    /// (Boxed, like the origin request: only requests with functions have them, and pingora
    /// moves the context around with every request.)
    pub request: Option<Box<Request>>,
}

/// Where a cache miss goes.
#[derive(Default)]
pub enum Route {
    /// Not chosen: the request has not reached the origin phase (or never will: a cache hit,
    /// an answer from a viewer-request function).
    #[default]
    Unrouted,
    /// To an origin: the behavior's, or the one an origin-request function chose.
    Origin(OriginRoute),
    /// An origin-request function generated the response: the local origin serves it under
    /// its token so that it is cached like an origin response.
    Generated(Pending<Generated>),
}

pub struct OriginRoute {
    pub origin: Arc<Origin>,
    /// Which of the origin's addresses is being tried (from 0), and how many come after it.
    pub attempt: usize,
    pub addresses_left: usize,
    /// A request whose body edgehook read goes through the local origin, which sends it on
    /// with the body; this is it, waiting there under its token.
    pub forwarded: Option<Pending<Forward>>,
}

impl OriginRoute {
    pub fn to(origin: Arc<Origin>) -> Self {
        OriginRoute {
            origin,
            attempt: 0,
            addresses_left: 0,
            forwarded: None,
        }
    }
}

/// An error answer edgehook wrote, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorAnswer {
    /// The request was refused, or the origin failed.
    Edgehook,
    /// A function failed (CloudFront's `FunctionExecutionError` and kin).
    Function(FailureClass),
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
            distribution: None,
            behavior: None,
            viewer: Viewer::default(),
            route: Route::Unrouted,
            origin_started: None,
            origin_answered: false,
            first_byte: None,
            origin_request: None,
            bodies: Bodies::default(),
            error_answer: None,
            not_modified: None,
            encoding: None,
            compressor: None,
            trace: None,
            _in_flight: in_flight.enter(),
        }
    }

    /// The origin a cache miss goes to: the chosen one, else the behavior's.
    pub fn origin(&self) -> Option<&Arc<Origin>> {
        match (&self.route, &self.behavior) {
            (Route::Origin(route), _) => Some(&route.origin),
            (_, Some(behavior)) => Some(&behavior.origin),
            (_, None) => None,
        }
    }

    pub fn origin_name(&self) -> &str {
        self.origin().map_or("-", |origin| origin.name.as_str())
    }

    /// The class of the function failure being answered, if that is what is answered.
    pub fn function_failure(&self) -> Option<FailureClass> {
        match self.error_answer {
            Some(ErrorAnswer::Function(class)) => Some(class),
            _ => None,
        }
    }

    /// Whether the request goes through the local origin with the body edgehook read.
    pub fn forwards_body(&self) -> bool {
        self.bodies.request.is_some()
    }

    /// The distribution's name in metrics and logs (`-` for the implicit one, or none).
    pub fn distribution_label(&self) -> &str {
        self.distribution.as_ref().map_or("-", |d| d.label())
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
