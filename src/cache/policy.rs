//! Whether and for how long a response is cached: RFC 9111 freshness from the origin's headers,
//! bent to CloudFront's rules by the behavior's TTLs.
//!
//! - The directives come from the first of `Edgehook-Cache-Control` and `CDN-Cache-Control`
//!   (RFC 9213 targeted fields) that is a valid structured dictionary; `Cache-Control` and
//!   `Expires` are then ignored. Otherwise from `Cache-Control`.
//! - `s-maxage`, else `max-age`, else `Expires` minus `Date`, gives the freshness lifetime; the
//!   response's age when it arrives (its `Age`, or how long ago its `Date` was if that is
//!   longer, RFC 9111 4.2.3) is taken off, and the rest clamped into `[min_ttl, max_ttl]`. The
//!   stored object counts that age as already passed, so the `Age` sent on hits includes it.
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
/// Targeted cache-control fields this cache obeys, first match wins (RFC 9213 2.1).
pub const TARGETED_FIELDS: [&str; 2] = ["edgehook-cache-control", "cdn-cache-control"];
/// edgehook's own targeted field: meant for this cache only, not forwarded to viewers.
pub const OWN_TARGETED_FIELD: http::HeaderName = http::HeaderName::from_static("edgehook-cache-control");
/// The largest delta-seconds value kept (RFC 9111 1.2.2).
const MAX_DELTA_SECONDS: u64 = 1 << 31;

/// The caching directives a response gives this cache.
#[derive(Debug, Default, PartialEq)]
struct Directives {
    /// `s-maxage`, else `max-age`.
    max_age: Option<u64>,
    s_maxage: bool,
    no_store: bool,
    no_cache: bool,
    private: bool,
    public: bool,
    must_revalidate: bool,
    stale_while_revalidate: u32,
    stale_if_error: u32,
    /// From a targeted field: `Expires` does not count.
    targeted: bool,
}

impl Directives {
    fn of(response: &ResponseHeader) -> Directives {
        TARGETED_FIELDS
            .iter()
            .find_map(|name| targeted(response, name))
            .unwrap_or_else(|| Directives::from_cache_control(CacheControl::from_resp_headers(response).as_ref()))
    }

    fn from_cache_control(cc: Option<&CacheControl>) -> Directives {
        let Some(cc) = cc else {
            return Directives::default();
        };
        // A directive present with an invalid value (`max-age=-1`, `max-age='60'`) makes the
        // response stale rather than unspecified (RFC 9111 4.2.1).
        let seconds = |value: pingora::Result<Option<u32>>| match value {
            Ok(seconds) => seconds.map(u64::from),
            Err(_) => Some(0),
        };
        let s_maxage = seconds(cc.s_maxage());
        Directives {
            max_age: s_maxage.or_else(|| seconds(cc.max_age())),
            s_maxage: s_maxage.is_some(),
            no_store: cc.no_store(),
            no_cache: cc.no_cache(),
            private: cc.private(),
            public: cc.public(),
            must_revalidate: cc.must_revalidate(),
            stale_while_revalidate: cc.stale_while_revalidate().ok().flatten().unwrap_or(0),
            stale_if_error: cc.stale_if_error().ok().flatten().unwrap_or(0),
            targeted: false,
        }
    }

    fn forbids(&self) -> bool {
        self.no_store || self.no_cache || self.private
    }
}

/// A targeted field's directives, or None when it is absent, empty or not a valid structured
/// dictionary whose known directives have their types (RFC 9213 2.1: such a field is ignored).
fn targeted(response: &ResponseHeader, name: &str) -> Option<Directives> {
    let lines: Vec<&[u8]> = response.headers.get_all(name).iter().map(|v| v.as_bytes()).collect();
    if lines.is_empty() {
        return None;
    }
    let joined = lines.join(&b","[..]);
    let dictionary: sfv::Dictionary = sfv::Parser::new(&joined).parse().ok()?;
    if dictionary.is_empty() {
        return None;
    }
    let mut directives = Directives {
        targeted: true,
        ..Directives::default()
    };
    let mut s_maxage = None;
    for (key, member) in &dictionary {
        let sfv::ListEntry::Item(item) = member else {
            return None;
        };
        let seconds = || match &item.bare_item {
            sfv::BareItem::Integer(n) => u64::try_from(i64::from(*n)).ok().map(|n| n.min(MAX_DELTA_SECONDS)),
            _ => None,
        };
        let flag = || matches!(item.bare_item, sfv::BareItem::Boolean(true));
        match key.as_str() {
            "max-age" => directives.max_age = Some(seconds()?),
            "s-maxage" => s_maxage = Some(seconds()?),
            "stale-while-revalidate" => {
                directives.stale_while_revalidate = u32::try_from(seconds()?).unwrap_or(u32::MAX)
            }
            "stale-if-error" => directives.stale_if_error = u32::try_from(seconds()?).unwrap_or(u32::MAX),
            "no-store" => directives.no_store = flag(),
            "no-cache" => directives.no_cache = flag(),
            "private" => directives.private = flag(),
            "public" => directives.public = flag(),
            "must-revalidate" => directives.must_revalidate = flag(),
            _ => {}
        }
    }
    if let Some(seconds) = s_maxage {
        directives.max_age = Some(seconds);
        directives.s_maxage = true;
    }
    Some(directives)
}

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
    let directives = Directives::of(response);
    if authorization && !(directives.public || directives.must_revalidate || directives.s_maxage) {
        return uncacheable;
    }
    let forbids = directives.forbids();
    let age = initial_age(response, now);
    let explicit = if forbids {
        None
    } else {
        lifetime(&directives, response, now).map(|lifetime| lifetime.saturating_sub(age))
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
    let (stale_while_revalidate, stale_if_error) = if forbids {
        (0, 0)
    } else {
        (directives.stale_while_revalidate, directives.stale_if_error)
    };
    // Zero freshness means "store, but revalidate before every use".
    let fresh_until = if fresh_for.is_zero() {
        now - Duration::from_secs(1)
    } else {
        now + fresh_for
    };
    RespCacheable::Cacheable(CacheMeta::new(
        fresh_until,
        now.checked_sub(age).unwrap_or(now),
        stale_while_revalidate,
        stale_if_error,
        response.clone(),
    ))
}

/// Fields a 304 does not update in the stored response (RFC 9111 3.2): the stored body's
/// framing and the hop-by-hop fields.
const NOT_UPDATED_BY_304: [&str; 8] = [
    "content-length",
    "transfer-encoding",
    "content-encoding",
    "content-range",
    "connection",
    "keep-alive",
    "trailer",
    "upgrade",
];

/// The stored response header updated by a 304 from the origin: every field the 304 carries
/// replaces the stored field of its name (RFC 9111 3.2, 4.3.4), but the framing ones.
pub fn updated_by_304(stored: &ResponseHeader, not_modified: &ResponseHeader) -> ResponseHeader {
    let mut updated = stored.clone();
    let mut replaced = std::collections::HashSet::new();
    for (name, value) in &not_modified.headers {
        if NOT_UPDATED_BY_304.contains(&name.as_str()) {
            continue;
        }
        // The first value of a name replaces the stored ones; later values add to it.
        let result = if replaced.insert(name.clone()) {
            updated.insert_header(name.clone(), value.clone())
        } else {
            updated.append_header(name.clone(), value.clone()).map(|_| ())
        };
        if let Err(error) = result {
            tracing::debug!(%error, header = %name, "a 304's header was not merged");
        }
    }
    updated
}

/// The request paths whose cached responses a response to `request` invalidates (RFC 9111
/// 4.4): for a non-error answer to an unsafe method, its own path and the paths of its
/// `Location` and `Content-Location` when they are on the same host. Empty otherwise.
pub fn invalidated_paths(request: &pingora::http::RequestHeader, response: &ResponseHeader) -> Vec<String> {
    let safe = matches!(
        request.method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS | http::Method::TRACE
    );
    if safe || !(200..400).contains(&response.status.as_u16()) {
        return Vec::new();
    }
    let mut paths = vec![request.uri.path().to_string()];
    let host = super::key::request_host(request);
    let Ok(base) = url::Url::parse(&format!("http://{host}{}", request.uri.path())) else {
        return paths;
    };
    for name in [http::header::LOCATION, http::header::CONTENT_LOCATION] {
        let Some(target) = response.headers.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let Ok(target) = base.join(target) else { continue };
        let same_host =
            target.host_str() == base.host_str() && target.port_or_known_default() == base.port_or_known_default();
        if same_host && !paths.iter().any(|p| p == target.path()) {
            paths.push(target.path().to_string());
        }
    }
    paths
}

/// The freshness lifetime the origin gave: `s-maxage`/`max-age`, else `Expires` minus `Date`
/// (not for targeted fields). An unparsable `Expires` means "already expired" (RFC 9111 5.3).
fn lifetime(directives: &Directives, response: &ResponseHeader, now: SystemTime) -> Option<Duration> {
    if let Some(seconds) = directives.max_age {
        return Some(Duration::from_secs(seconds));
    }
    if directives.targeted {
        return None;
    }
    let expires = response.headers.get(http::header::EXPIRES)?;
    let Some(expires) = expires.to_str().ok().and_then(|v| httpdate::parse_http_date(v).ok()) else {
        return Some(Duration::ZERO);
    };
    let date = date_of(response).unwrap_or(now);
    Some(expires.duration_since(date).unwrap_or(Duration::ZERO))
}

fn date_of(response: &ResponseHeader) -> Option<SystemTime> {
    response
        .headers
        .get(http::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
}

/// How old the response already is as it arrives (RFC 9111 4.2.3): the larger of its `Age` and
/// the time since its `Date`.
fn initial_age(response: &ResponseHeader, now: SystemTime) -> Duration {
    let age = age_value(response).unwrap_or(0);
    let apparent = date_of(response)
        .and_then(|date| now.duration_since(date).ok())
        .unwrap_or(Duration::ZERO);
    apparent.max(Duration::from_secs(age))
}

/// The `Age` field's first member as delta-seconds (RFC 9111 5.1: a list's first member; an
/// invalid value is ignored; values past 2^31 count as 2^31).
fn age_value(response: &ResponseHeader) -> Option<u64> {
    let first_line = response.headers.get(http::header::AGE)?.as_bytes();
    let first = first_line.split(|b| *b == b',').next()?.trim_ascii();
    if first.is_empty() || !first.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let digits = std::str::from_utf8(first).ok()?;
    Some(
        digits
            .parse::<u64>()
            .map_or(MAX_DELTA_SECONDS, |n| n.min(MAX_DELTA_SECONDS)),
    )
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

    const TTL_LONG: Ttl = Ttl {
        max: Duration::from_secs(1 << 30),
        ..TTL
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
    fn the_age_a_response_arrives_with_is_taken_off_its_freshness() {
        let cc = ("cache-control", "max-age=3600");
        assert_eq!(lifetime(200, &[cc, ("age", "600")], &TTL_LONG, false), Some(3000));
        // RFC 9111 5.1: a list's first member counts; an invalid value is ignored.
        assert_eq!(lifetime(200, &[cc, ("age", "7200, 0")], &TTL_LONG, false), Some(-1));
        assert_eq!(lifetime(200, &[cc, ("age", "0, 7200")], &TTL_LONG, false), Some(3600));
        for invalid in ["abc", "-7200", "7200.0", ""] {
            assert_eq!(
                lifetime(200, &[cc, ("age", invalid)], &TTL_LONG, false),
                Some(3600),
                "{invalid}"
            );
        }
        assert_eq!(
            lifetime(200, &[cc, ("age", "99999999999999999999999")], &TTL_LONG, false),
            Some(-1)
        );
        // A Date two hours old makes the response two hours old, whatever its Age says.
        let old = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(7200));
        assert_eq!(lifetime(200, &[cc, ("date", &old)], &TTL_LONG, false), Some(-1));
        // Age counts against Expires too.
        let now = SystemTime::now();
        let (date, expires) = (
            httpdate::fmt_http_date(now),
            httpdate::fmt_http_date(now + Duration::from_secs(3600)),
        );
        let got = lifetime(
            200,
            &[("date", &date), ("expires", &expires), ("age", "3000")],
            &TTL_LONG,
            false,
        )
        .unwrap();
        assert!((598..=600).contains(&got), "{got}");
    }

    #[test]
    fn an_invalid_max_age_makes_the_response_stale() {
        for invalid in ["max-age=-3600", "max-age='3600'", "s-maxage=abc"] {
            assert_eq!(
                lifetime(200, &[("cache-control", invalid)], &TTL, false),
                Some(-1),
                "{invalid}"
            );
        }
    }

    #[test]
    fn a_stored_response_counts_its_initial_age_as_passed() {
        let now = SystemTime::now();
        let r = response(200, &[("cache-control", "max-age=3600"), ("age", "600")]);
        let RespCacheable::Cacheable(meta) = decide(&r, false, &TTL_LONG, now) else {
            panic!("cacheable expected")
        };
        assert_eq!(now.duration_since(meta.created()).unwrap(), Duration::from_secs(600));
    }

    #[test]
    fn targeted_fields_come_before_cache_control_and_expires() {
        let cc = ("cache-control", "no-store");
        assert_eq!(
            lifetime(200, &[cc, ("cdn-cache-control", "max-age=600")], &TTL_LONG, false),
            Some(600)
        );
        assert_eq!(
            lifetime(
                200,
                &[
                    ("cdn-cache-control", "max-age=600"),
                    ("edgehook-cache-control", "max-age=60")
                ],
                &TTL_LONG,
                false
            ),
            Some(60)
        );
        assert_eq!(
            lifetime(
                200,
                &[("cache-control", "max-age=600"), ("cdn-cache-control", "no-store")],
                &TTL_LONG,
                false
            ),
            None
        );
        assert_eq!(
            lifetime(200, &[("cdn-cache-control", "private")], &TTL_LONG, false),
            None
        );
        // Without max-age in the targeted field, Expires does not count: the default TTL does.
        let expires = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(9000));
        assert_eq!(
            lifetime(
                200,
                &[("cdn-cache-control", "public"), ("expires", &expires)],
                &TTL_LONG,
                false
            ),
            Some(100)
        );
        // Targeted fields are structured dictionaries: an invalid one is ignored.
        for invalid in [
            "max-age=10000, &&&&&",
            "max-age=\"10000\"",
            "max-age =100",
            "max-age=-5",
            "",
        ] {
            assert_eq!(
                lifetime(200, &[cc, ("cdn-cache-control", invalid)], &TTL_LONG, false),
                None,
                "{invalid}"
            );
        }
        assert_eq!(
            lifetime(
                200,
                &[("cdn-cache-control", "max-age=600, stale-while-revalidate=30")],
                &TTL_LONG,
                false
            ),
            Some(600)
        );
        assert_eq!(
            lifetime(
                200,
                &[("cdn-cache-control", "s-maxage=60, max-age=600")],
                &TTL_LONG,
                true
            ),
            Some(60)
        );
    }

    #[test]
    fn a_304_updates_every_stored_field_but_the_framing() {
        let stored = response(
            200,
            &[
                ("etag", "\"a\""),
                ("x-test", "old"),
                ("x-kept", "kept"),
                ("content-length", "100"),
                ("cache-control", "max-age=10"),
            ],
        );
        let not_modified = response(
            304,
            &[
                ("etag", "\"a\""),
                ("x-test", "new"),
                ("x-test", "newer"),
                ("content-length", "0"),
                ("cache-control", "max-age=100"),
                ("x-added", "1"),
            ],
        );
        let updated = updated_by_304(&stored, &not_modified);
        let values = |name: &str| -> Vec<&str> {
            updated
                .headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect()
        };
        assert_eq!(updated.status, 200);
        assert_eq!(values("x-test"), ["new", "newer"]);
        assert_eq!(values("x-kept"), ["kept"]);
        assert_eq!(values("x-added"), ["1"]);
        assert_eq!(values("content-length"), ["100"]);
        assert_eq!(values("cache-control"), ["max-age=100"]);
    }

    #[test]
    fn successful_unsafe_requests_invalidate_their_path_and_same_host_locations() {
        let request = |method: &str| {
            let mut r = pingora::http::RequestHeader::build(method, b"/items/1?x=1", None).unwrap();
            r.insert_header("host", "www.example.test").unwrap();
            r
        };
        let created = response(
            201,
            &[
                ("location", "/items/2"),
                ("content-location", "http://www.example.test/items/2/view"),
            ],
        );
        assert_eq!(
            invalidated_paths(&request("POST"), &created),
            ["/items/1", "/items/2", "/items/2/view"]
        );
        assert_eq!(
            invalidated_paths(&request("M-SEARCH"), &response(204, &[])),
            ["/items/1"]
        );
        let elsewhere = response(
            303,
            &[("location", "https://other.test/x"), ("content-location", "other")],
        );
        assert_eq!(
            invalidated_paths(&request("DELETE"), &elsewhere),
            ["/items/1", "/items/other"]
        );
        assert!(invalidated_paths(&request("POST"), &response(500, &[])).is_empty());
        assert!(invalidated_paths(&request("POST"), &response(404, &[])).is_empty());
        assert!(invalidated_paths(&request("GET"), &response(200, &[])).is_empty());
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
