//! The cache: hits and misses counted at the origin, freshness and TTL clamping, Vary, the
//! cache lock, stale-while-revalidate and stale-if-error.

use crate::support::*;
use std::time::Duration;

fn config(origin: &Origin, behavior_extra: &str) -> String {
    format!(
        "[cache]\nmemory = \"16MiB\"\n[origins.app]\nurl = \"{}\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n{behavior_extra}\n",
        origin.url()
    )
}

async fn get(edge: &Edgehook, path: &str) -> reqwest::Response {
    client().get(edge.url(path)).send().await.unwrap()
}

fn x_cache(response: &reqwest::Response) -> String {
    response.headers()["x-cache"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn second_request_is_a_hit_with_age() {
    let origin =
        Origin::start(|seen| Reply::ok(format!("body of {}", seen.uri)).header("cache-control", "max-age=60")).await;
    let edge = Edgehook::start(&config(&origin, "")).await;
    let first = get(&edge, "/a").await;
    assert_eq!(x_cache(&first), "Miss from edgehook");
    assert_eq!(first.text().await.unwrap(), "body of /a");
    let second = get(&edge, "/a").await;
    assert_eq!(x_cache(&second), "Hit from edgehook");
    assert!(second.headers().contains_key("age"));
    assert_eq!(second.text().await.unwrap(), "body of /a");
    let head = client().head(edge.url("/a")).send().await.unwrap();
    assert_eq!(x_cache(&head), "Hit from edgehook");
    assert_eq!(origin.count("/a"), 1, "one origin fetch for three requests");
    // The query is part of the key by default.
    assert_eq!(x_cache(&get(&edge, "/a?v=2").await), "Miss from edgehook");
}

#[tokio::test]
async fn uncacheable_responses_go_to_the_origin_every_time() {
    let origin = Origin::start(|seen| match seen.uri.as_str() {
        "/no-store" => Reply::ok("x").header("cache-control", "no-store"),
        "/private" => Reply::ok("x").header("cache-control", "private, max-age=60"),
        "/cookie" => Reply::ok("x")
            .header("cache-control", "max-age=60")
            .header("set-cookie", "a=b"),
        _ => Reply::ok("x").status(201),
    })
    .await;
    let edge = Edgehook::start(&config(&origin, "")).await;
    for path in ["/no-store", "/private", "/cookie", "/created"] {
        get(&edge, path).await;
        let again = get(&edge, path).await;
        assert_eq!(x_cache(&again), "Miss from edgehook", "{path}");
        assert_eq!(origin.count(path), 2, "{path} must not be cached");
    }
}

#[tokio::test]
async fn min_ttl_caches_what_the_origin_forbids() {
    let origin = Origin::start(|_| Reply::ok("x").header("cache-control", "no-cache")).await;
    let edge = Edgehook::start(&config(&origin, "min_ttl = \"1m\"\ndefault_ttl = \"1m\"")).await;
    get(&edge, "/p").await;
    assert_eq!(x_cache(&get(&edge, "/p").await), "Hit from edgehook");
    assert_eq!(origin.count("/p"), 1);
}

#[tokio::test]
async fn freshness_expires_and_max_ttl_clamps() {
    let origin = Origin::start(|_| Reply::ok("x").header("cache-control", "max-age=3600")).await;
    let edge = Edgehook::start(&config(&origin, "default_ttl = \"1s\"\nmax_ttl = \"1s\"")).await;
    get(&edge, "/p").await;
    assert_eq!(x_cache(&get(&edge, "/p").await), "Hit from edgehook");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let after = get(&edge, "/p").await;
    assert_ne!(x_cache(&after), "Hit from edgehook", "max_ttl 1s caps max-age=3600");
    assert_eq!(origin.count("/p"), 2);
}

#[tokio::test]
async fn default_ttl_applies_without_headers_and_errors_get_error_ttl() {
    let origin = Origin::start(|seen| {
        if seen.uri == "/missing" {
            Reply::ok("nope").status(404)
        } else {
            Reply::ok("x")
        }
    })
    .await;
    let edge = Edgehook::start(&config(&origin, "default_ttl = \"1h\"\nerror_ttl = \"1s\"")).await;
    get(&edge, "/plain").await;
    assert_eq!(x_cache(&get(&edge, "/plain").await), "Hit from edgehook");
    let first_404 = get(&edge, "/missing").await;
    assert_eq!(first_404.status(), 404);
    assert_eq!(x_cache(&first_404), "Error from edgehook");
    assert_eq!(x_cache(&get(&edge, "/missing").await), "Hit from edgehook");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    get(&edge, "/missing").await;
    assert_eq!(origin.count("/missing"), 2, "error_ttl expired");
    assert_eq!(origin.count("/plain"), 1);
}

#[tokio::test]
async fn vary_keeps_variants_apart() {
    let origin = Origin::start(|seen| {
        let lang = seen
            .headers
            .get("accept-language")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string();
        Reply::ok(format!("lang={lang}"))
            .header("cache-control", "max-age=60")
            .header("vary", "Accept-Language")
    })
    .await;
    let edge = Edgehook::start(&config(&origin, "")).await;
    let c = client();
    for (lang, expected_count) in [("fr", 1), ("de", 2), ("fr", 2), ("de", 2)] {
        let r = c
            .get(edge.url("/v"))
            .header("accept-language", lang)
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), format!("lang={lang}"));
        assert_eq!(origin.count("/v"), expected_count, "after {lang}");
    }
}

#[tokio::test]
async fn cache_key_headers_and_cookies_split_the_cache() {
    let origin = Origin::start(|seen| {
        let cookie = seen
            .headers
            .get("cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        Reply::ok(cookie).header("cache-control", "max-age=60")
    })
    .await;
    let edge = Edgehook::start(&config(
        &origin,
        "cache_key = { query = \"all\", cookies = [\"variant\"] }",
    ))
    .await;
    let c = client();
    let a = c
        .get(edge.url("/k"))
        .header("cookie", "variant=a; other=1")
        .send()
        .await
        .unwrap();
    assert_eq!(a.text().await.unwrap(), "variant=a; other=1");
    let b = c
        .get(edge.url("/k"))
        .header("cookie", "variant=b")
        .send()
        .await
        .unwrap();
    assert_eq!(b.text().await.unwrap(), "variant=b");
    let a_again = c
        .get(edge.url("/k"))
        .header("cookie", "other=2; variant=a")
        .send()
        .await
        .unwrap();
    assert_eq!(x_cache(&a_again), "Hit from edgehook");
    assert_eq!(a_again.text().await.unwrap(), "variant=a; other=1");
    assert_eq!(origin.count("/k"), 2);
}

#[tokio::test]
async fn concurrent_misses_collapse_into_one_origin_fetch() {
    let origin = Origin::start(|_| {
        Reply::ok("slow")
            .header("cache-control", "max-age=60")
            .delay(Duration::from_millis(500))
    })
    .await;
    let edge = Edgehook::start(&config(&origin, "")).await;
    let c = client();
    let requests = (0..10).map(|_| {
        let (c, url) = (c.clone(), edge.url("/slow"));
        tokio::spawn(async move { c.get(url).send().await.unwrap().text().await.unwrap() })
    });
    for r in requests.collect::<Vec<_>>() {
        assert_eq!(r.await.unwrap(), "slow");
    }
    assert_eq!(origin.count("/slow"), 1, "ten concurrent misses, one origin fetch");
}

#[tokio::test]
async fn stale_if_error_serves_the_cached_copy_when_the_origin_is_gone() {
    let origin =
        Origin::start(|_| Reply::ok("cached copy").header("cache-control", "max-age=1, stale-if-error=600")).await;
    let rest = format!(
        "[origins.app]\nurl = \"{}\"\nconnect_timeout = \"500ms\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n",
        origin.url()
    );
    let edge = Edgehook::start(&rest).await;
    assert_eq!(get(&edge, "/s").await.text().await.unwrap(), "cached copy");
    origin.stop();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let stale = get(&edge, "/s").await;
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.text().await.unwrap(), "cached copy");
    // Without stale-if-error the same outage is a 502.
    let fresh_path = get(&edge, "/never-cached").await;
    assert_eq!(fresh_path.status(), 502);
}

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_refreshes_in_the_background() {
    let calls = Calls::default();
    let origin = {
        let calls = calls.clone();
        Origin::start(move |seen| {
            let n = calls.next(&seen.uri);
            Reply::ok(format!("version {n}")).header("cache-control", "max-age=1, stale-while-revalidate=600")
        })
        .await
    };
    let edge = Edgehook::start(&config(&origin, "")).await;
    assert_eq!(get(&edge, "/r").await.text().await.unwrap(), "version 1");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let stale = get(&edge, "/r").await;
    assert_eq!(
        stale.text().await.unwrap(),
        "version 1",
        "the stale copy is served while revalidating"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while origin.count("/r") < 2 {
        assert!(std::time::Instant::now() < deadline, "no background refresh happened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(get(&edge, "/r").await.text().await.unwrap(), "version 2");
}

#[tokio::test]
async fn the_cache_stays_within_its_memory_bound() {
    let origin = Origin::start(|_| Reply::ok(vec![b'z'; 10_000]).header("cache-control", "max-age=600")).await;
    // About a hundred objects fit, a few per eviction shard.
    let rest = format!(
        "[cache]\nmemory = \"1MiB\"\nmax_object_size = \"512KiB\"\n[origins.app]\nurl = \"{}\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n",
        origin.url()
    );
    let edge = Edgehook::start(&rest).await;
    for i in 0..400 {
        assert_eq!(
            get(&edge, &format!("/big{i}")).await.bytes().await.unwrap().len(),
            10_000
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let metrics = edge.metrics_page().await;
    let bytes: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("edgehook_cache_bytes{tier=\"memory\"} "))
        .expect("cache bytes gauge")
        .trim()
        .parse()
        .unwrap();
    assert!(
        bytes > 0.0 && bytes <= (1 << 20) as f64,
        "cache holds {bytes} bytes with a 1MiB bound"
    );
    // Pingora's LRU is sharded and evicts from a randomly chosen long shard, so recency is
    // approximate: most of the newest objects survive, the oldest are nearly all gone. The newest
    // are checked first because every miss re-admits an object and evicts another.
    let mut recent_hits = 0;
    for i in 390..400 {
        if x_cache(&get(&edge, &format!("/big{i}")).await) == "Hit from edgehook" {
            recent_hits += 1;
        }
    }
    let mut oldest_hits = 0;
    for i in 0..10 {
        if x_cache(&get(&edge, &format!("/big{i}")).await) == "Hit from edgehook" {
            oldest_hits += 1;
        }
    }
    assert!(
        recent_hits >= 7 && oldest_hits <= 2,
        "{recent_hits} of the 10 newest and {oldest_hits} of the 10 oldest objects were cached"
    );
}

/// RFC 9111 on the wire: the age a response arrived with counts in its freshness and in the
/// `Age` of hits; targeted fields (RFC 9213) come before `Cache-Control`, and edgehook's own
/// is not passed on; fields named in `Connection` are neither forwarded nor stored.
#[tokio::test]
async fn ages_targeted_fields_and_connection_named_fields_follow_the_rfcs() {
    let origin = Origin::start(|seen| match seen.uri.as_str() {
        "/aged" => Reply::ok("x")
            .header("cache-control", "max-age=3600")
            .header("age", "600"),
        "/too-old" => Reply::ok("x")
            .header("cache-control", "max-age=3600")
            .header("age", "7200, 0"),
        "/cdn" => Reply::ok("x")
            .header("cache-control", "no-store")
            .header("cdn-cache-control", "max-age=600"),
        "/own" => Reply::ok("x")
            .header("cdn-cache-control", "max-age=600")
            .header("edgehook-cache-control", "no-store"),
        "/hop" => Reply::ok("x")
            .header("cache-control", "max-age=60")
            .header("connection", "x-hop-by-hop")
            .header("x-hop-by-hop", "for the last hop only")
            .header("x-end-to-end", "for everyone"),
        _ => Reply::ok("x").status(404),
    })
    .await;
    let edge = Edgehook::start(&config(&origin, "")).await;

    get(&edge, "/aged").await;
    let hit = get(&edge, "/aged").await;
    assert_eq!(x_cache(&hit), "Hit from edgehook");
    let age: u64 = hit.headers()["age"].to_str().unwrap().parse().unwrap();
    assert!(
        (600..610).contains(&age),
        "the origin's 600 s plus the time cached: {age}"
    );

    get(&edge, "/too-old").await;
    assert_eq!(x_cache(&get(&edge, "/too-old").await), "Miss from edgehook");

    get(&edge, "/cdn").await;
    let hit = get(&edge, "/cdn").await;
    assert_eq!(
        x_cache(&hit),
        "Hit from edgehook",
        "CDN-Cache-Control outranks no-store"
    );
    assert_eq!(
        hit.headers()["cdn-cache-control"],
        "max-age=600",
        "passed on to caches below"
    );

    let first = get(&edge, "/own").await;
    assert!(
        !first.headers().contains_key("edgehook-cache-control"),
        "edgehook's own field stays here"
    );
    assert_eq!(
        x_cache(&get(&edge, "/own").await),
        "Miss from edgehook",
        "and outranks CDN-Cache-Control"
    );

    for expected in ["Miss from edgehook", "Hit from edgehook"] {
        let response = get(&edge, "/hop").await;
        assert_eq!(x_cache(&response), expected);
        assert!(!response.headers().contains_key("x-hop-by-hop"));
        assert_eq!(response.headers()["x-end-to-end"], "for everyone");
    }
}

/// A 304 from the origin on revalidation updates every field of the stored response it
/// carries (RFC 9111 3.2), not only the validators and freshness.
#[tokio::test]
async fn a_304_on_revalidation_updates_the_stored_fields() {
    let calls = Calls::default();
    let origin = Origin::start(move |seen| {
        let n = calls.next(&seen.uri);
        if n == 1 {
            Reply::ok("the body")
                .header("cache-control", "max-age=1")
                .header("etag", "\"v1\"")
                .header("x-version", "first")
        } else {
            assert_eq!(seen.headers["if-none-match"], "\"v1\"");
            Reply::ok("")
                .status(304)
                .header("cache-control", "max-age=3600")
                .header("etag", "\"v1\"")
                .header("x-version", "updated by the 304")
        }
    })
    .await;
    let edge = Edgehook::start(&config(&origin, "")).await;
    assert_eq!(get(&edge, "/r").await.headers()["x-version"], "first");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let revalidated = get(&edge, "/r").await;
    assert_eq!(revalidated.headers()["x-version"], "updated by the 304");
    assert_eq!(revalidated.text().await.unwrap(), "the body");
    let hit = get(&edge, "/r").await;
    assert_eq!(x_cache(&hit), "Hit from edgehook");
    assert_eq!(hit.headers()["x-version"], "updated by the 304");
    assert_eq!(origin.count("/r"), 2);
}

/// A successful POST, PUT or DELETE removes the cached responses of its path and of the
/// same-host `Location` it answers with (RFC 9111 4.4); a failed one, or a behavior that turns
/// it off, leaves them.
#[tokio::test]
async fn successful_unsafe_requests_invalidate_what_they_change() {
    let origin = Origin::start(|seen| match (seen.method.as_str(), seen.uri.as_str()) {
        ("GET", _) => {
            Reply::ok(format!("{} at {}", seen.uri, seen.headers.len())).header("cache-control", "max-age=3600")
        }
        (_, "/items/broken") => Reply::ok("no").status(500),
        _ => Reply::ok("done").status(201).header("location", "/items/list"),
    })
    .await;
    let send = |edge: &Edgehook, method: reqwest::Method, path: &str| client().request(method, edge.url(path)).send();
    for (setting, invalidates) in [("", true), ("invalidate_on_unsafe_methods = false", false)] {
        let edge = Edgehook::start(&config(&origin, setting)).await;
        for path in ["/items/1", "/items/list", "/items/other", "/items/broken"] {
            get(&edge, path).await;
            assert_eq!(x_cache(&get(&edge, path).await), "Hit from edgehook", "{path}");
        }
        assert_eq!(
            send(&edge, reqwest::Method::POST, "/items/1").await.unwrap().status(),
            201
        );
        assert_eq!(
            send(&edge, reqwest::Method::DELETE, "/items/broken")
                .await
                .unwrap()
                .status(),
            500
        );
        let expected = if invalidates {
            "Miss from edgehook"
        } else {
            "Hit from edgehook"
        };
        assert_eq!(x_cache(&get(&edge, "/items/1").await), expected, "{setting}");
        assert_eq!(x_cache(&get(&edge, "/items/list").await), expected, "{setting}");
        assert_eq!(x_cache(&get(&edge, "/items/other").await), "Hit from edgehook");
        assert_eq!(
            x_cache(&get(&edge, "/items/broken").await),
            "Hit from edgehook",
            "a failed DELETE changes nothing"
        );
    }
}

fn page() -> String {
    (0..400).map(|i| format!("<p>paragraph {i}</p>\n")).collect()
}

/// `compress = true`: compressible responses the origin did not compress go out as Brotli or
/// gzip, whichever the viewer accepts first in that order; each encoding is cached apart,
/// browsers' different spellings of Accept-Encoding share one, and the origin sees the
/// reduced header. Images, small bodies, compressed bodies and behaviors without `compress`
/// are left alone.
#[tokio::test]
async fn compress_answers_each_viewer_in_its_encoding_and_caches_each_apart() {
    use std::io::Read as _;
    let origin = Origin::start(|seen| {
        let reply = match seen.uri.as_str() {
            "/small.html" => Reply::ok("<p>tiny</p>").header("content-type", "text/html"),
            "/image.png" => Reply::ok(vec![7u8; 5000]).header("content-type", "image/png"),
            "/zipped.js" => Reply::ok(b"already".to_vec())
                .header("content-type", "text/javascript")
                .header("content-encoding", "gzip"),
            _ => Reply::ok(page())
                .header("content-type", "text/html; charset=utf-8")
                .header("etag", "\"p1\""),
        };
        let seen_encoding = seen
            .headers
            .get("accept-encoding")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_else(|| "-".into());
        reply
            .header("cache-control", "max-age=3600")
            .header("x-origin-saw", &seen_encoding)
    })
    .await;
    let edge = Edgehook::start(&format!(
        "[origins.app]\nurl = \"{}\"\n[[behaviors]]\npath = \"/plain/*\"\norigin = \"app\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\ncompress = true\n",
        origin.url()
    ))
    .await;
    let fetch = |path: &'static str, accept: Option<&'static str>| {
        let mut request = client().get(edge.url(path));
        if let Some(accept) = accept {
            request = request.header("accept-encoding", accept);
        }
        request.send()
    };
    let decoded = |encoding: &str, bytes: &[u8]| -> String {
        let mut out = String::new();
        match encoding {
            "br" => brotli::Decompressor::new(bytes, 4096).read_to_string(&mut out).unwrap(),
            "gzip" => flate2::read::GzDecoder::new(bytes).read_to_string(&mut out).unwrap(),
            _ => return String::from_utf8(bytes.to_vec()).unwrap(),
        };
        out
    };
    for (accept, encoding, origin_saw) in [
        (Some("gzip, deflate, br, zstd"), "br", "br,gzip"),
        (Some("br;q=1.0, gzip;q=0.8, *;q=0.1"), "br", "br,gzip"),
        (Some("gzip, deflate"), "gzip", "gzip"),
        (None, "", "-"),
    ] {
        let response = fetch("/page.html", accept).await.unwrap();
        assert_eq!(response.headers()["x-origin-saw"], origin_saw, "{accept:?}");
        let content_encoding = response
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(content_encoding.unwrap_or_default(), encoding, "{accept:?}");
        assert_eq!(response.headers()["vary"], "Accept-Encoding", "{accept:?}");
        if !encoding.is_empty() {
            assert_eq!(response.headers()["etag"], "W/\"p1\"", "{accept:?}");
        }
        let body = response.bytes().await.unwrap();
        if !encoding.is_empty() {
            assert!(body.len() < page().len() / 4, "{accept:?}: {} bytes", body.len());
        }
        assert_eq!(decoded(encoding, &body), page(), "{accept:?}");
    }
    assert_eq!(
        origin.count("/page.html"),
        3,
        "one origin fetch per encoding; both br spellings share one"
    );
    for accept in [Some("br, gzip"), Some("gzip"), None] {
        let again = fetch("/page.html", accept).await.unwrap();
        assert_eq!(x_cache(&again), "Hit from edgehook", "{accept:?}");
    }

    for (path, expected_encoding) in [
        ("/small.html", None),
        ("/image.png", None),
        ("/zipped.js", Some("gzip")),
        ("/plain/page.html", None),
    ] {
        let response = fetch(path, Some("gzip, br")).await.unwrap();
        let encoding = response.headers().get("content-encoding").map(|v| v.to_str().unwrap());
        assert_eq!(encoding, expected_encoding, "{path}");
    }
    let plain = fetch("/plain/page.html", Some("gzip, br")).await.unwrap();
    assert_eq!(
        plain.headers()["x-origin-saw"],
        "gzip, br",
        "a behavior without compress forwards the header as sent"
    );
}
