//! Many sites on one node: distributions chosen by host name, each with its own behaviors,
//! origins, functions and cache, purged and reloaded apart.

use crate::support::*;

/// A function that tells the origin which distribution and domain its event named.
const SHOW_DISTRIBUTION: &str = r#"
export const handler = async (event) => {
  const { config, request } = event.Records[0].cf;
  request.headers['x-distribution-id'] = [{ value: config.distributionId }];
  request.headers['x-distribution-domain'] = [{ value: config.distributionDomainName }];
  return request;
};"#;

/// Two sites on two origins: `www` (exact names) with a viewer-request function, `shop` (an exact
/// name and a wildcard) with a path behavior of its own; `extra` is added after them.
fn sites(dir: &std::path::Path, www: &Origin, shop: &Origin, extra: &str) -> String {
    let code = dir.join("show.mjs");
    std::fs::write(&code, SHOW_DISTRIBUTION).unwrap();
    format!(
        r#"[origins.www]
url = "{}"
[origins.shop]
url = "{}"
[functions.show]
code = "{}"
[distributions.www]
domains = ["www.example.test", "example.test"]
[[distributions.www.behaviors]]
path = "*"
origin = "www"
viewer_request = "show"
[distributions.shop]
domains = ["shop.example.test", "*.shop.example.test"]
[[distributions.shop.behaviors]]
path = "/cart/*"
origin = "shop"
cache = false
[[distributions.shop.behaviors]]
path = "*"
origin = "shop"
{extra}"#,
        www.url(),
        shop.url(),
        code.display()
    )
}

async fn origin(name: &'static str) -> Origin {
    Origin::start(move |seen| Reply::ok(format!("{name} {}", seen.uri)).header("cache-control", "max-age=600")).await
}

/// GETs `path` from `edge` for `host`: status, X-Cache and body.
async fn get(edge: &Edgehook, host: &str, path: &str) -> (u16, String, String) {
    let response = client().get(edge.url(path)).header("host", host).send().await.unwrap();
    let status = response.status().as_u16();
    let x_cache = response
        .headers()
        .get("x-cache")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, x_cache, response.text().await.unwrap())
}

async fn start(extra_server: &str, www: &Origin, shop: &Origin, extra: &str) -> Edgehook {
    let dir = tempfile::tempdir().unwrap();
    let rest = sites(dir.path(), www, shop, extra);
    Edgehook::start_in(dir, extra_server, &rest).await
}

#[tokio::test]
async fn each_host_gets_its_sites_behaviors_origin_and_functions() {
    let (www, shop) = (origin("www").await, origin("shop").await);
    let edge = start("", &www, &shop, "").await;
    assert_eq!(get(&edge, "www.example.test", "/a").await.2, "www /a");
    let seen = www.last();
    assert_eq!(seen.headers["x-distribution-id"], "www");
    assert_eq!(seen.headers["x-distribution-domain"], "www.example.test");
    assert_eq!(get(&edge, "Example.TEST:8080", "/b").await.2, "www /b");
    assert_eq!(www.last().headers["x-distribution-domain"], "example.test:8080");

    assert_eq!(get(&edge, "shop.example.test", "/a").await.2, "shop /a");
    assert!(
        !shop.last().headers.contains_key("x-distribution-id"),
        "shop has no function"
    );
    assert_eq!(
        get(&edge, "eu.shop.example.test", "/cart/1").await.1,
        "Miss from edgehook"
    );
    assert_eq!(
        get(&edge, "eu.shop.example.test", "/cart/1").await.1,
        "Miss from edgehook",
        "shop's /cart/* is not cached"
    );
    assert_eq!(get(&edge, "www.example.test", "/cart/1").await.2, "www /cart/1");
    assert_eq!(get(&edge, "www.example.test", "/cart/1").await.1, "Hit from edgehook");

    // No site for the host, and no default one.
    let (status, _, body) = get(&edge, "other.test", "/a").await;
    assert_eq!(status, 404);
    assert!(body.contains("No site is configured for host `other.test`"), "{body}");
    let (status, _, _) = get(&edge, "x.y.shop.example.test", "/a").await;
    assert_eq!(status, 404, "a wildcard covers one label");

    let page = edge.metrics_page().await;
    assert!(
        page.contains(r#"edgehook_requests_total{behavior="/cart/*",distribution="shop",status_class="2xx"} 2"#),
        "{page}"
    );
}

#[tokio::test]
async fn two_sites_never_share_a_cached_object_and_are_purged_apart() {
    let (www, shop) = (origin("www").await, origin("shop").await);
    let edge = start("", &www, &shop, "").await;
    for host in ["www.example.test", "shop.example.test"] {
        assert_eq!(get(&edge, host, "/index.html").await.1, "Miss from edgehook");
        assert_eq!(get(&edge, host, "/index.html").await.1, "Hit from edgehook");
    }
    assert_eq!(get(&edge, "www.example.test", "/index.html").await.2, "www /index.html");
    assert_eq!(
        get(&edge, "shop.example.test", "/index.html").await.2,
        "shop /index.html"
    );

    let (status, answer) = admin(
        &edge,
        reqwest::Method::POST,
        "/distributions/shop/cache/purge",
        r#"{"paths": ["/index.html"]}"#,
        true,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["distribution"], "shop");
    assert_eq!(answer["purged"], 1);
    assert_eq!(
        get(&edge, "shop.example.test", "/index.html").await.1,
        "Miss from edgehook"
    );
    assert_eq!(
        get(&edge, "www.example.test", "/index.html").await.1,
        "Hit from edgehook"
    );

    let (status, answer) = admin(
        &edge,
        reqwest::Method::POST,
        "/distributions/blog/cache/purge",
        r#"{"paths": ["/*"]}"#,
        true,
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("no distribution `blog`"))
    );
    // No top-level behaviors here: the old endpoint has nothing to purge, and says where to go.
    let (status, answer) = admin(
        &edge,
        reqwest::Method::POST,
        "/cache/purge",
        r#"{"paths": ["/*"]}"#,
        true,
    )
    .await;
    assert_eq!(status, 404);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("/distributions/NAME/cache/purge"),
        "{answer}"
    );
    assert_eq!(
        get(&edge, "www.example.test", "/index.html").await.1,
        "Hit from edgehook"
    );
}

#[tokio::test]
async fn unknown_hosts_go_to_the_default_distribution_or_the_top_level_behaviors() {
    let (www, shop) = (origin("www").await, origin("shop").await);
    let edge = start("default_distribution = \"shop\"", &www, &shop, "").await;
    assert_eq!(get(&edge, "other.test", "/a").await.2, "shop /a");
    assert_eq!(get(&edge, "www.example.test", "/a").await.2, "www /a");

    let rest = origin("rest").await;
    let implicit = format!(
        "[origins.rest]\nurl = \"{}\"\n[[behaviors]]\npath = \"*\"\norigin = \"rest\"\n",
        rest.url()
    );
    let edge = start("", &www, &shop, &implicit).await;
    assert_eq!(get(&edge, "other.test", "/a").await.2, "rest /a");
    assert_eq!(get(&edge, "", "/b").await.2, "rest /b", "even without a host");
    assert_eq!(get(&edge, "shop.example.test", "/a").await.2, "shop /a");
    // The old purge endpoint purges the top-level behaviors' objects, and only theirs.
    assert_eq!(get(&edge, "other.test", "/a").await.1, "Hit from edgehook");
    assert_eq!(get(&edge, "shop.example.test", "/a").await.1, "Hit from edgehook");
    let (status, answer) = admin(
        &edge,
        reqwest::Method::POST,
        "/cache/purge",
        r#"{"paths": ["/a"]}"#,
        true,
    )
    .await;
    assert_eq!((status, answer["purged"].as_u64()), (200, Some(1)), "{answer}");
    assert_eq!(get(&edge, "other.test", "/a").await.1, "Miss from edgehook");
    assert_eq!(get(&edge, "shop.example.test", "/a").await.1, "Hit from edgehook");
}

#[tokio::test]
async fn a_reload_adds_a_site_live() {
    let (www, shop) = (origin("www").await, origin("shop").await);
    let dir = tempfile::tempdir().unwrap();
    let config_dir = dir.path().to_path_buf();
    let edge = Edgehook::start_in(dir, "", &sites(&config_dir, &www, &shop, "")).await;
    assert_eq!(get(&edge, "blog.test", "/a").await.0, 404);
    let blog = origin("blog").await;
    let added = format!(
        "[origins.blog]\nurl = \"{}\"\n[distributions.blog]\ndomains = [\"blog.test\"]\n[[distributions.blog.behaviors]]\npath = \"*\"\norigin = \"blog\"\n",
        blog.url()
    );
    let path = config_dir.join("edgehook.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}{added}")).unwrap();
    let response = edge.reload().await;
    assert_eq!(response.status(), 200);
    let report: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(report["needs_restart"], serde_json::json!([]));
    assert_eq!(get(&edge, "blog.test", "/a").await.2, "blog /a");
    assert_eq!(get(&edge, "www.example.test", "/a").await.2, "www /a");
}
