//! Cache keys from a behavior's cache-key policy. The viewer-request stage has already applied
//! the query policy to the URI (so the origin sees the same query the key holds); the key adds
//! the host, path, query and the configured header and cookie values, each length-prefixed so
//! that no two different requests frame to the same bytes.

use crate::config::{CacheKeyPolicy, QueryPolicy};
use cookie::Cookie;
use pingora::cache::key::CacheHashKey;
use pingora::cache::CacheKey;
use pingora::http::RequestHeader;

/// Returns `query` reduced to what `policy` keeps, or None when nothing is left.
pub fn filter_query(query: Option<&str>, policy: &QueryPolicy) -> Option<String> {
    let query = query.filter(|q| !q.is_empty())?;
    match policy {
        QueryPolicy::All => Some(query.to_string()),
        QueryPolicy::None => None,
        QueryPolicy::Only(names) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|pair| {
                    let name = pair.split('=').next().unwrap_or("");
                    let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
                    names.iter().any(|n| *n == decoded)
                })
                .collect();
            (!kept.is_empty()).then(|| kept.join("&"))
        }
    }
}

/// The host the viewer asked for, lowercased, without a default port.
pub fn request_host(req: &RequestHeader) -> String {
    let host = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    host.to_ascii_lowercase()
}

/// Values of the cookies named `name` in the request's Cookie headers, as sent (not
/// percent-decoded); pairs that do not parse are skipped.
pub fn cookie_values<'a>(req: &'a RequestHeader, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(move |cookie| {
            let cookie = cookie.ok()?;
            (cookie.name_raw()? == name).then(|| cookie.value_raw()).flatten()
        })
}

/// The cache key of `req` in `distribution` (named; "" for the implicit distribution, whose keys
/// are as they were before distributions, so that a disk cache keeps its objects).
pub fn cache_key(req: &RequestHeader, policy: &CacheKeyPolicy, distribution: &str) -> CacheKey {
    let mut primary = Vec::with_capacity(128);
    let mut push = |part: &[u8]| {
        primary.extend_from_slice(&(part.len() as u32).to_be_bytes());
        primary.extend_from_slice(part);
    };
    // A named distribution's key starts with its name, then the host: its second field never
    // starts with `/`, as the implicit distribution's (the path) always does.
    if !distribution.is_empty() {
        push(distribution.as_bytes());
    }
    push(request_host(req).as_bytes());
    push(req.uri.path().as_bytes());
    push(req.uri.query().unwrap_or("").as_bytes());
    for header in &policy.headers {
        push(header.as_str().as_bytes());
        for value in req.headers.get_all(header) {
            push(value.as_bytes());
        }
    }
    for cookie in &policy.cookies {
        push(cookie.as_bytes());
        for value in cookie_values(req, cookie) {
            push(value.as_bytes());
        }
    }
    // The user tag carries the distribution and the path so that purges can find the object.
    let mut key = CacheKey::new(primary, user_tag(distribution, req.uri.path()));
    // pingora hashes the key (blake2b) each time it asks for the hash, two to five times per
    // request; hashed once here, the hash is kept with the key.
    let hash = key.primary_bin();
    key.set_primary_bin_override(hash);
    key
}

/// The user tag of an object of `path` in `distribution`: the distribution's name before the
/// path (which starts with `/`, a character names cannot hold); the path alone in the implicit
/// distribution.
pub fn user_tag(distribution: &str, path: &str) -> String {
    let mut tag = String::with_capacity(distribution.len() + path.len());
    tag.push_str(distribution);
    tag.push_str(path);
    tag
}

/// The distribution and path a user tag holds.
pub fn tag_parts(tag: &str) -> (&str, &str) {
    tag.find('/').map_or(("", tag), |slash| tag.split_at(slash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::cache::key::CacheHashKey;

    fn request(uri: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", uri.as_bytes(), None).unwrap();
        for (name, value) in headers {
            req.append_header(name.to_string(), *value).unwrap();
        }
        req
    }

    #[test]
    fn cookie_values_are_read_from_every_cookie_header() {
        let req = request(
            "/",
            &[
                ("cookie", "a=1;  variant=x=y ; b"),
                ("cookie", ";;variant=\"q\"; c=%20"),
                ("cookie", "variant="),
            ],
        );
        let values: Vec<&str> = cookie_values(&req, "variant").collect();
        assert_eq!(values, ["x=y", "\"q\"", ""]);
        assert_eq!(
            cookie_values(&req, "c").collect::<Vec<_>>(),
            ["%20"],
            "as sent, not decoded"
        );
        assert_eq!(cookie_values(&req, "b").count(), 0, "a pair without `=` is no cookie");
    }

    fn policy(query: QueryPolicy, headers: &[&'static str], cookies: &[&str]) -> CacheKeyPolicy {
        CacheKeyPolicy {
            query,
            headers: headers.iter().map(|h| http::HeaderName::from_static(h)).collect(),
            cookies: cookies.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn key(uri: &str, headers: &[(&str, &str)], policy: &CacheKeyPolicy) -> String {
        cache_key(&request(uri, headers), policy, "").combined()
    }

    #[test]
    fn query_policies() {
        assert_eq!(
            filter_query(Some("a=1&b=2"), &QueryPolicy::All).as_deref(),
            Some("a=1&b=2")
        );
        assert_eq!(filter_query(Some("a=1&b=2"), &QueryPolicy::None), None);
        let only = QueryPolicy::Only(vec!["b".into(), "c d".into()]);
        assert_eq!(
            filter_query(Some("a=1&b=2&c%20d=3&bb=4"), &only).as_deref(),
            Some("b=2&c%20d=3")
        );
        assert_eq!(filter_query(Some("a=1"), &only), None);
        assert_eq!(filter_query(Some(""), &QueryPolicy::All), None);
    }

    #[test]
    fn key_parts() {
        let plain = policy(QueryPolicy::All, &[], &[]);
        let host_a = [("host", "a.example")];
        assert_eq!(
            key("/p?x=1", &host_a, &plain),
            key("/p?x=1", &[("host", "A.example")], &plain)
        );
        assert_ne!(key("/p?x=1", &host_a, &plain), key("/p?x=2", &host_a, &plain));
        assert_ne!(key("/p", &host_a, &plain), key("/p", &[("host", "b.example")], &plain));
        // Headers outside the policy do not split the cache; listed ones do.
        assert_eq!(
            key("/p", &[("accept-language", "fr")], &plain),
            key("/p", &[("accept-language", "de")], &plain)
        );
        let by_lang = policy(QueryPolicy::All, &["accept-language"], &[]);
        assert_ne!(
            key("/p", &[("accept-language", "fr")], &by_lang),
            key("/p", &[("accept-language", "de")], &by_lang)
        );
        let by_cookie = policy(QueryPolicy::All, &[], &["variant"]);
        assert_ne!(
            key("/p", &[("cookie", "variant=a; other=1")], &by_cookie),
            key("/p", &[("cookie", "other=1; variant=b")], &by_cookie)
        );
        assert_eq!(
            key("/p", &[("cookie", "variant=a; other=1")], &by_cookie),
            key("/p", &[("cookie", "other=2; variant=a")], &by_cookie)
        );
    }

    #[test]
    fn framing_prevents_ambiguity() {
        let plain = policy(QueryPolicy::All, &[], &[]);
        assert_ne!(
            key("/ab?", &[("host", "h")], &plain),
            key("/a?b", &[("host", "h")], &plain)
        );
    }

    #[test]
    fn user_tag_is_the_path() {
        let k = cache_key(&request("/dir/file?x=1", &[]), &policy(QueryPolicy::All, &[], &[]), "");
        assert_eq!(k.user_tag, "/dir/file");
    }
}
