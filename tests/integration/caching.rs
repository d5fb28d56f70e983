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
        .find_map(|l| l.strip_prefix("edgehook_cache_bytes "))
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
