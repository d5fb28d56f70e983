//! Header rules of Lambda@Edge (spec section 3): headers never shown to functions, headers a
//! function may read but not change, and names that cannot be origin custom headers.

use super::event::EventType;

/// Headers never exposed to functions; a function adding one fails validation (3.1).
const DISALLOWED: [&str; 23] = [
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "trailer",
    "upgrade",
    "x-accel-buffering",
    "x-accel-charset",
    "x-accel-limit-rate",
    "x-accel-redirect",
    "x-amzn-auth",
    "x-amzn-cf-billing",
    "x-amzn-cf-id",
    "x-amzn-cf-xff",
    "x-amzn-errortype",
    "x-amzn-fle-profile",
    "x-amzn-header-count",
    "x-amzn-header-order",
    "x-amzn-lambda-integration-tag",
    "x-amzn-requestid",
    "x-cache",
];
const DISALLOWED_MORE: [&str; 2] = ["x-forwarded-proto", "x-real-ip"];
const DISALLOWED_PREFIXES: [&str; 2] = ["x-amz-cf-", "x-edge-"];

/// Whether `name` (lowercase) is a disallowed header.
pub fn is_disallowed(name: &str) -> bool {
    DISALLOWED.contains(&name)
        || DISALLOWED_MORE.contains(&name)
        || DISALLOWED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Headers a function of `event` may read but not add, change or delete (3.2, current docs).
pub fn read_only(event: EventType) -> &'static [&'static str] {
    match event {
        EventType::ViewerRequest => &["cdn-loop", "content-length", "host", "transfer-encoding", "via"],
        EventType::OriginRequest => &[
            "accept-encoding",
            "cdn-loop",
            "content-length",
            "if-modified-since",
            "if-none-match",
            "if-range",
            "if-unmodified-since",
            "transfer-encoding",
            "via",
        ],
        EventType::OriginResponse => &["transfer-encoding", "via"],
        EventType::ViewerResponse => &[
            "content-encoding",
            "content-length",
            "transfer-encoding",
            "via",
            "warning",
        ],
    }
}

/// Names that cannot be origin custom headers (3.4), beyond the disallowed ones.
pub fn is_denied_custom_header(name: &str) -> bool {
    const DENIED: [&str; 22] = [
        "cache-control",
        "connection",
        "content-length",
        "cookie",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "max-forwards",
        "pragma",
        "proxy-authorization",
        "proxy-connection",
        "range",
        "request-range",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "via",
        "x-real-ip",
    ];
    DENIED.contains(&name) || name.starts_with("x-amz-") || name.starts_with("x-edge-") || is_disallowed(name)
}

/// RFC 9110 token characters, which header names consist of.
pub fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        assert!(is_disallowed("connection"));
        assert!(is_disallowed("x-amz-cf-pop"));
        assert!(is_disallowed("x-edge-location"));
        assert!(is_disallowed("x-forwarded-proto"));
        assert!(!is_disallowed("x-forwarded-for"));
        assert!(read_only(EventType::ViewerRequest).contains(&"host"));
        assert!(!read_only(EventType::OriginRequest).contains(&"host"));
        assert!(is_denied_custom_header("x-amz-date"));
        assert!(is_denied_custom_header("cookie"));
        assert!(!is_denied_custom_header("x-origin-secret"));
        assert!(is_token("x-my_header.1"));
        assert!(!is_token("bad header"));
        assert!(!is_token(""));
    }
}
