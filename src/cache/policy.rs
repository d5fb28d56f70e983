//! Whether and for how long a response is cached: RFC 9111 freshness from the origin's headers,
//! bent to CloudFront's rules by the behavior's TTLs.
//!
//! - `s-maxage`, else `max-age` (minus the origin's `Age`), else `Expires`, is clamped into
//!   `[min_ttl, max_ttl]`.
//! - `no-store`, `no-cache` or `private` make a response uncacheable when `min_ttl` is 0, and
//!   cached for `min_ttl` otherwise (CloudFront's rule).
//! - Without freshness headers: `default_ttl` for 200, 203, 204, 300, 301, 308 and 410;
//!   `error_ttl` for 400, 403, 404, 405, 414, 416, 500, 501, 502, 503 and 504.
//! - Never cached: other statuses, `Vary: *`, responses that set cookies, and answers to requests
//!   with `Authorization` unless the origin marked them `public`, `s-maxage` or `must-revalidate`.

use crate::config::Ttl;
use pingora::cache::cache_control::CacheControl;
use pingora::cache::{CacheMeta, NoCacheReason, RespCacheable};
use pingora::http::ResponseHeader;
use std::time::{Duration, SystemTime};

const DEFAULT_TTL_STATUSES: [u16; 7] = [200, 203, 204, 300, 301, 308, 410];
const ERROR_TTL_STATUSES: [u16; 11] = [400, 403, 404, 405, 414, 416, 500, 501, 502, 503, 504];
/// Statuses that may be cached when the origin gives explicit freshness.
const EXPLICIT_ONLY_STATUSES: [u16; 2] = [302, 307];

/// Decides cacheability of `response` for a request (with `authorization` set when it carried an
/// `Authorization` header) under `ttl`, as of `now`.
pub fn decide(response: &ResponseHeader, authorization: bool, ttl: &Ttl, now: SystemTime) -> RespCacheable {
    let uncacheable = RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
    let status = response.status.as_u16();
    let headers = &response.headers;
    if headers.contains_key(http::header::SET_COOKIE) {
        return uncacheable;
    }
    if headers
        .get_all(http::header::VARY)
        .iter()
        .any(|v| v.as_bytes().split(|b| *b == b',').any(|p| p.trim_ascii() == b"*"))
    {
        return uncacheable;
    }
    let cc = CacheControl::from_resp_headers(response);
    if authorization {
        let allowed = cc
            .as_ref()
            .is_some_and(|cc| cc.public() || cc.must_revalidate() || matches!(cc.s_maxage(), Ok(Some(_))));
        if !allowed {
            return uncacheable;
        }
    }
    let forbids = cc
        .as_ref()
        .is_some_and(|cc| cc.no_store() || cc.no_cache() || cc.private());
    let explicit = if forbids {
        None
    } else {
        explicit_freshness(cc.as_ref(), response, now)
    };
    let fresh_for = if forbids {
        if ttl.min.is_zero() {
            return uncacheable;
        }
        ttl.min
    } else if let Some(explicit) = explicit {
        let cacheable = DEFAULT_TTL_STATUSES.contains(&status)
            || ERROR_TTL_STATUSES.contains(&status)
            || EXPLICIT_ONLY_STATUSES.contains(&status);
        if !cacheable {
            return uncacheable;
        }
        explicit.clamp(ttl.min, ttl.max)
    } else if DEFAULT_TTL_STATUSES.contains(&status) {
        ttl.default
    } else if ERROR_TTL_STATUSES.contains(&status) {
        ttl.error
    } else {
        return uncacheable;
    };
    let (stale_while_revalidate, stale_if_error) = match (&cc, forbids) {
        (Some(cc), false) => (
            cc.stale_while_revalidate().ok().flatten().unwrap_or(0),
            cc.stale_if_error().ok().flatten().unwrap_or(0),
        ),
        _ => (0, 0),
    };
    // Zero freshness means "store, but revalidate before every use".
    let fresh_until = if fresh_for.is_zero() {
        now - Duration::from_secs(1)
    } else {
        now + fresh_for
    };
    RespCacheable::Cacheable(CacheMeta::new(
        fresh_until,
        now,
        stale_while_revalidate,
        stale_if_error,
        response.clone(),
    ))
}

fn explicit_freshness(cc: Option<&CacheControl>, response: &ResponseHeader, now: SystemTime) -> Option<Duration> {
    let max_age = cc.and_then(|cc| cc.s_maxage().ok().flatten().or_else(|| cc.max_age().ok().flatten()));
    if let Some(seconds) = max_age {
        let age = response
            .headers
            .get(http::header::AGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        return Some(Duration::from_secs(u64::from(seconds).saturating_sub(age)));
    }
    let expires = response.headers.get(http::header::EXPIRES)?;
    // An unparsable Expires means "already expired" (RFC 9111 5.3).
    let Some(expires) = expires.to_str().ok().and_then(|v| httpdate::parse_http_date(v).ok()) else {
        return Some(Duration::ZERO);
    };
    let date = response
        .headers
        .get(http::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .unwrap_or(now);
    Some(expires.duration_since(date).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Ttl = Ttl {
        min: Duration::ZERO,
        default: Duration::from_secs(100),
        max: Duration::from_secs(1000),
        error: Duration::from_secs(10),
    };

    fn response(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).unwrap();
        for (name, value) in headers {
            r.append_header(name.to_string(), *value).unwrap();
        }
        r
    }

    /// Freshness lifetime in seconds, or None when uncacheable.
    fn lifetime(status: u16, headers: &[(&str, &str)], ttl: &Ttl, auth: bool) -> Option<i64> {
        let now = SystemTime::now();
        match decide(&response(status, headers), auth, ttl, now) {
            RespCacheable::Cacheable(meta) => Some(match meta.fresh_until().duration_since(now) {
                Ok(d) => d.as_secs() as i64,
                Err(_) => -1,
            }),
            RespCacheable::Uncacheable(_) => None,
        }
    }

    #[test]
    fn explicit_freshness_is_clamped() {
        assert_eq!(lifetime(200, &[("cache-control", "max-age=50")], &TTL, false), Some(50));
        assert_eq!(
            lifetime(200, &[("cache-control", "max-age=5000")], &TTL, false),
            Some(1000)
        );
        assert_eq!(
            lifetime(200, &[("cache-control", "max-age=50, s-maxage=70")], &TTL, false),
            Some(70)
        );
        assert_eq!(
            lifetime(200, &[("cache-control", "max-age=50"), ("age", "20")], &TTL, false),
            Some(30)
        );
        let floor = Ttl {
            min: Duration::from_secs(60),
            ..TTL
        };
        assert_eq!(
            lifetime(200, &[("cache-control", "max-age=5")], &floor, false),
            Some(60)
        );
    }

    #[test]
    fn defaults_and_errors() {
        assert_eq!(lifetime(200, &[], &TTL, false), Some(100));
        assert_eq!(lifetime(404, &[], &TTL, false), Some(10));
        assert_eq!(lifetime(201, &[], &TTL, false), None);
        assert_eq!(lifetime(302, &[], &TTL, false), None);
        assert_eq!(lifetime(302, &[("cache-control", "max-age=9")], &TTL, false), Some(9));
    }

    #[test]
    fn forbidding_directives_follow_min_ttl() {
        for cc in ["no-store", "no-cache", "private", "private, max-age=100"] {
            assert_eq!(lifetime(200, &[("cache-control", cc)], &TTL, false), None, "{cc}");
            let floor = Ttl {
                min: Duration::from_secs(30),
                ..TTL
            };
            assert_eq!(lifetime(200, &[("cache-control", cc)], &floor, false), Some(30), "{cc}");
        }
    }

    #[test]
    fn expires_header() {
        let now = SystemTime::now();
        let date = httpdate::fmt_http_date(now);
        let expires = httpdate::fmt_http_date(now + Duration::from_secs(300));
        let got = lifetime(200, &[("date", &date), ("expires", &expires)], &TTL, false).unwrap();
        assert!((298..=300).contains(&got), "{got}");
        assert_eq!(lifetime(200, &[("expires", "garbage")], &TTL, false), Some(-1));
    }

    #[test]
    fn never_cached() {
        assert_eq!(lifetime(200, &[("set-cookie", "a=b")], &TTL, false), None);
        assert_eq!(lifetime(200, &[("vary", "Accept, *")], &TTL, false), None);
        assert_eq!(lifetime(200, &[], &TTL, true), None);
        assert_eq!(
            lifetime(200, &[("cache-control", "public, max-age=5")], &TTL, true),
            Some(5)
        );
    }

    #[test]
    fn stale_windows_are_kept() {
        let now = SystemTime::now();
        let r = response(
            200,
            &[(
                "cache-control",
                "max-age=1, stale-while-revalidate=30, stale-if-error=60",
            )],
        );
        let RespCacheable::Cacheable(meta) = decide(&r, false, &TTL, now) else {
            panic!("cacheable expected")
        };
        assert_eq!((meta.stale_while_revalidate_sec(), meta.stale_if_error_sec()), (30, 60));
    }
}
