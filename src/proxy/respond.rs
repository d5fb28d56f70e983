//! Answers edgehook writes itself: error pages, and the `X-Cache` label of every response.

use crate::js::FailureClass;
use pingora::cache::CachePhase;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

pub const X_CACHE: &str = "X-Cache";
pub const HIT: &str = "Hit from edgehook";
pub const REFRESH_HIT: &str = "RefreshHit from edgehook";
pub const MISS: &str = "Miss from edgehook";
pub const ERROR: &str = "Error from edgehook";
pub const GENERATED: &str = "LambdaGeneratedResponse from edgehook";

/// The X-Cache label for a response that went through the cache machinery.
pub fn cache_label(phase: CachePhase, status: u16) -> &'static str {
    match phase {
        CachePhase::Hit | CachePhase::Stale | CachePhase::StaleUpdating => HIT,
        CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => REFRESH_HIT,
        _ if status >= 400 => ERROR,
        _ => MISS,
    }
}

/// The short name of a cache phase, for logs and metrics.
pub fn cache_result(phase: CachePhase) -> &'static str {
    match phase {
        CachePhase::Hit => "hit",
        CachePhase::Stale | CachePhase::StaleUpdating => "stale",
        CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => "revalidated",
        CachePhase::Miss | CachePhase::Expired => "miss",
        CachePhase::Bypass => "bypass",
        CachePhase::Disabled(_) | CachePhase::Uninit | CachePhase::CacheKey => "uncacheable",
    }
}

fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

/// Writes a small error page with `X-Cache: Error from edgehook` and the request id.
pub async fn write_error(
    session: &mut Session,
    status: u16,
    request_id_header: &http::HeaderName,
    request_id: &str,
) -> pingora::Result<()> {
    write_error_page(session, status, ERROR, "", request_id_header, request_id).await
}

/// The X-Cache label and the viewer-facing cause line of a function failure (spec 5.1).
pub fn function_failure(class: FailureClass) -> (String, &'static str) {
    let cause = match class {
        FailureClass::Execution => {
            "The Lambda function associated with the CloudFront distribution is invalid or doesn't have the required permissions."
        }
        FailureClass::Validation => "The Lambda function returned an invalid result: it failed validation.",
        FailureClass::LimitExceeded => "The Lambda function associated with the CloudFront distribution was throttled.",
    };
    (format!("{} from edgehook", class.name()), cause)
}

/// Writes an error page with an X-Cache label, an optional cause line and the request id.
pub async fn write_error_page(
    session: &mut Session,
    status: u16,
    x_cache: &str,
    cause: &str,
    request_id_header: &http::HeaderName,
    request_id: &str,
) -> pingora::Result<()> {
    let cause = if cause.is_empty() {
        String::new()
    } else {
        format!("{cause}\n")
    };
    let body = format!("{status} {}\n{cause}request id: {request_id}\n", reason(status));
    let mut header = ResponseHeader::build(status, Some(5))?;
    header.insert_header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    header.insert_header(http::header::CONTENT_LENGTH, body.len())?;
    header.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    header.insert_header(X_CACHE, x_cache)?;
    header.insert_header(request_id_header.clone(), request_id)?;
    // The connection may carry a half-read request: do not reuse it.
    session.set_keepalive(None);
    session.write_response_header(Box::new(header), false).await?;
    session.write_response_body(Some(bytes::Bytes::from(body)), true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(cache_label(CachePhase::Hit, 200), HIT);
        assert_eq!(cache_label(CachePhase::Miss, 200), MISS);
        assert_eq!(cache_label(CachePhase::Miss, 503), ERROR);
        assert_eq!(cache_label(CachePhase::Revalidated, 200), REFRESH_HIT);
    }
}
