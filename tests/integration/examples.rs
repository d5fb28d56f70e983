//! Every example under examples/ driven end to end with its own config.

use crate::support::*;
use base64::Engine as _;
use hmac::Mac as _;
use reqwest::Method;
use std::time::Duration;

/// Starts edgehook with an example's config (paths in it are relative to the repository root,
/// where tests run).
async fn example(name: &str) -> Edgehook {
    let text = std::fs::read_to_string(format!("examples/{name}/edgehook.toml")).unwrap();
    Edgehook::start(&text).await
}

#[tokio::test]
async fn ab_testing() {
    let edge = example("ab-testing").await;
    let c = client();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..30 {
        let response = c.get(edge.url("/experiment/")).send().await.unwrap();
        let cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
        let variant = cookie.strip_prefix("variant=").unwrap().chars().next().unwrap();
        let body = response.text().await.unwrap();
        assert!(
            body.contains(&format!("Variant {}", variant.to_ascii_uppercase())),
            "{cookie} but {body}"
        );
        seen.insert(variant);
    }
    assert_eq!(seen.len(), 2, "new visitors are split between a and b");
    // Returning visitors keep their variant and get no new cookie; the variants are cached apart.
    for variant in ["a", "b"] {
        for expected in ["Variant", "Variant"] {
            let response = c
                .get(edge.url("/experiment/"))
                .header("cookie", format!("variant={variant}"))
                .send()
                .await
                .unwrap();
            assert!(!response.headers().contains_key("set-cookie"));
            assert_eq!(response.headers()["x-cache"], "Hit from edgehook");
            let body = response.text().await.unwrap();
            assert!(
                body.contains(&format!("{expected} {}", variant.to_uppercase())),
                "{body}"
            );
        }
    }
}

#[tokio::test]
async fn ab_testing_weight() {
    let text = std::fs::read_to_string("examples/ab-testing/edgehook.toml")
        .unwrap()
        .replace("\"0.5\"", "\"1\"");
    let edge = Edgehook::start(&text).await;
    for _ in 0..10 {
        let response = client().get(edge.url("/experiment/")).send().await.unwrap();
        assert!(response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("variant=b;"));
    }
}

fn jwt(secret: &str, claims: serde_json::Value) -> String {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = b64(claims.to_string().as_bytes());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{header}.{payload}").as_bytes());
    format!("{header}.{payload}.{}", b64(&mac.finalize().into_bytes()))
}

#[tokio::test]
async fn auth_gating() {
    let edge = example("auth-gating").await;
    let c = client();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let page = c.get(edge.url("/?a=1")).send().await.unwrap();
    assert_eq!(page.status(), 302);
    assert_eq!(
        page.headers()["location"],
        "https://login.example.com/?next=%2F%3Fa%3D1"
    );
    let api = c.get(edge.url("/api/data.json")).send().await.unwrap();
    assert_eq!(api.status(), 401);
    assert_eq!(api.headers()["www-authenticate"], "Bearer");

    let valid = jwt(
        "change-me",
        serde_json::json!({ "sub": "alice", "exp": now + 600, "nbf": now - 10 }),
    );
    let ok = c
        .get(edge.url("/api/data.json"))
        .header("authorization", format!("Bearer {valid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap().trim(), r#"{"secret": "data"}"#);
    let by_cookie = c
        .get(edge.url("/"))
        .header("cookie", format!("theme=dark; token={valid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), 200);

    for (name, token) in [
        (
            "expired",
            jwt("change-me", serde_json::json!({ "sub": "alice", "exp": now - 1 })),
        ),
        (
            "not yet valid",
            jwt("change-me", serde_json::json!({ "sub": "alice", "nbf": now + 600 })),
        ),
        (
            "wrong secret",
            jwt("another-secret", serde_json::json!({ "sub": "alice" })),
        ),
        ("garbage", "a.b.c".to_string()),
    ] {
        let refused = c
            .get(edge.url("/api/data.json"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401, "{name}");
    }
}

#[tokio::test]
async fn auth_gating_passes_the_subject_to_the_origin() {
    let origin = Origin::start(|seen| {
        Reply::ok(
            seen.headers
                .get("x-user")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default(),
        )
    })
    .await;
    let text = std::fs::read_to_string("examples/auth-gating/edgehook.toml")
        .unwrap()
        .replace(
            "dir = \"examples/auth-gating/site\"",
            &format!("url = \"{}\"", origin.url()),
        );
    let edge = Edgehook::start(&text).await;
    let token = jwt("change-me", serde_json::json!({ "sub": "bob" }));
    let response = client()
        .get(edge.url("/profile"))
        .header("authorization", format!("Bearer {token}"))
        .header("x-user", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.text().await.unwrap(),
        "bob",
        "the verified subject, never the viewer's own header"
    );
}

#[tokio::test]
async fn static_pages() {
    let edge = example("static-pages").await;
    let c = client();
    let home = c.get(edge.url("/")).send().await.unwrap();
    assert_eq!(home.status(), 200);
    assert_eq!(home.headers()["x-cache"], "LambdaGeneratedResponse from edgehook");
    assert!(home.text().await.unwrap().contains("<h1>Welcome</h1>"));
    let about = c.get(edge.url("/about")).send().await.unwrap();
    assert!(about.text().await.unwrap().contains("without an origin"));
    let missing = c.get(edge.url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("Not found"));
    // As an origin-request function the page is cached.
    let first = c.get(edge.url("/cached/")).send().await.unwrap();
    assert_eq!(
        first.status(),
        404,
        "the function sees /cached/ and answers its 404 page"
    );
    assert_eq!(first.headers()["x-cache"], "Error from edgehook");
    let second = c.get(edge.url("/cached/")).send().await.unwrap();
    assert_eq!(second.headers()["x-cache"], "Hit from edgehook");
}

#[tokio::test]
async fn security_headers() {
    let edge = example("security-headers").await;
    for expected in ["Miss from edgehook", "Hit from edgehook"] {
        let response = client().get(edge.url("/")).send().await.unwrap();
        assert_eq!(response.headers()["x-cache"], expected);
        assert_eq!(response.headers()["x-frame-options"], "DENY");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert!(response.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age="));
    }
    let missing = client().get(edge.url("/missing")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(!missing.headers().contains_key("x-frame-options"), "not run for 4xx");
}

#[tokio::test]
async fn pretty_urls() {
    let edge = example("pretty-urls").await;
    let c = client();
    assert!(c
        .get(edge.url("/docs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .contains("Docs index"));
    let slash = c.get(edge.url("/docs/")).send().await.unwrap();
    assert_eq!(
        slash.headers()["x-cache"],
        "Hit from edgehook",
        "both forms share one cache entry"
    );
    assert!(c
        .get(edge.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .contains("<h1>Home</h1>"));
}

#[tokio::test]
async fn origin_by_device() {
    let edge = example("origin-by-device").await;
    let c = client();
    let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148";
    let mobile = c.get(edge.url("/")).header("user-agent", iphone).send().await.unwrap();
    assert!(mobile.text().await.unwrap().contains("Mobile site"));
    let desktop = c
        .get(edge.url("/"))
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/120")
        .send()
        .await
        .unwrap();
    assert!(desktop.text().await.unwrap().contains("Desktop site"));
}

/// The token for the demo's `demo-secret` that README.md gives.
const DEMO_TOKEN: &str =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJkZW1vIn0.VRsgtLbHmcl48FiMGNUl-lyKanB-fhLLMmR6nNxzjiU";

#[tokio::test]
async fn the_demo_config_shows_the_examples_together() {
    let demo = std::fs::read_to_string("config/edgehook.toml").unwrap();
    // The harness provides its own [server] on free ports; keep the rest of the demo.
    let rest = &demo[demo.find("[cache]").unwrap()..];
    let edge = Edgehook::start(rest).await;
    let c = client();
    let home = c.get(edge.url("/")).send().await.unwrap();
    assert_eq!(home.status(), 200);
    assert_eq!(home.headers()["x-frame-options"], "DENY");
    assert!(home.text().await.unwrap().contains("edgehook is serving"));
    let experiment = c.get(edge.url("/experiment/")).send().await.unwrap();
    assert!(experiment.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("variant="));
    assert!(experiment.text().await.unwrap().contains("Experiment: variant"));
    let members = c.get(edge.url("/members/")).send().await.unwrap();
    assert_eq!(members.status(), 302);
    assert_eq!(members.headers()["location"], "/about?next=%2Fmembers%2F");
    let admitted = c
        .get(edge.url("/members/"))
        .header("cookie", format!("token={DEMO_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(admitted.status(), 200);
    assert!(admitted.text().await.unwrap().contains("Members only"));
    let about = c.get(edge.url("/about")).send().await.unwrap();
    assert_eq!(about.headers()["x-cache"], "LambdaGeneratedResponse from edgehook");
    let docs = c.get(edge.url("/docs")).send().await.unwrap();
    assert!(docs.text().await.unwrap().contains("Docs"));
    let css = c.get(edge.url("/static/css/site.css")).send().await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
}

#[tokio::test]
async fn redirects_package() {
    let edge = example("redirects-package").await;
    let c = client();
    let moved = c.get(edge.url("/old-docs/intro.html")).send().await.unwrap();
    assert_eq!(moved.status(), 301);
    assert_eq!(moved.headers()["location"], "/docs/intro.html");
    assert_eq!(
        moved.headers()["x-content-type-options"],
        "nosniff",
        "from the layer's library"
    );
    let found = c.get(edge.url("/blog")).send().await.unwrap();
    assert_eq!(
        (found.status().as_u16(), found.headers()["location"].to_str().unwrap()),
        (302, "/news/")
    );
    let page = c.get(edge.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200, "other paths reach the origin");
}

#[tokio::test]
async fn jwks_gate() {
    // What make-keys.mjs makes, and tokens that must be refused: expired, signed by another
    // key, tampered with.
    let made = std::process::Command::new("node")
        .arg("-e")
        .arg(
            r#"
const { generateKeyPairSync, createSign } = require('crypto');
const pair = () => generateKeyPairSync('rsa', { modulusLength: 2048 });
const [ours, theirs] = [pair(), pair()];
const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
const token = (claims, key) => {
  const unsigned = `${part({ alg: 'RS256', typ: 'JWT', kid: 'k1' })}.${part(claims)}`;
  return `${unsigned}.${createSign('sha256').update(unsigned).sign(key, 'base64url')}`;
};
const now = Math.floor(Date.now() / 1000);
const valid = token({ sub: 'alice', exp: now + 600 }, ours.privateKey);
console.log(JSON.stringify({
  jwks: { keys: [{ ...ours.publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'RS256', use: 'sig' }] },
  valid,
  expired: token({ sub: 'alice', exp: now - 10 }, ours.privateKey),
  foreign: token({ sub: 'mallory', exp: now + 600 }, theirs.privateKey),
  tampered: valid.replace(/\.([^.]*)\./, (_, body) => `.${part({ sub: 'admin', exp: now + 600 })}.`),
}));
"#,
        )
        .output()
        .expect("node runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let made: serde_json::Value = serde_json::from_slice(&made.stdout).expect("JSON");
    let jwks = made["jwks"].to_string();
    let keys = Origin::start(move |seen| {
        let mut reply = Reply::ok(jwks.clone());
        reply.headers = vec![("content-type".into(), "application/json".into())];
        if seen.uri == "/jwks.json" {
            reply
        } else {
            reply.status(404)
        }
    })
    .await;
    let text = std::fs::read_to_string("examples/jwks-gate/edgehook.toml")
        .expect("the example's config")
        .replace("127.0.0.1:8099", &keys.addr.to_string());
    let edge = Edgehook::start(&text).await;
    let c = client();
    let get = |token: Option<&str>| {
        let mut request = c.get(edge.url("/"));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request.send()
    };
    let none = get(None).await.expect("an answer");
    assert_eq!(none.status(), 401);
    assert!(none.headers()["www-authenticate"]
        .to_str()
        .expect("text")
        .starts_with("Bearer error=\"invalid_token\""));
    for _ in 0..4 {
        let valid = get(made["valid"].as_str()).await.expect("an answer");
        assert_eq!(valid.status(), 200);
        assert!(valid.text().await.expect("a body").contains("Only for members."));
    }
    for refused in ["expired", "foreign", "tampered"] {
        assert_eq!(
            get(made[refused].as_str()).await.expect("an answer").status(),
            401,
            "{refused}"
        );
    }
    // The key set is kept in module scope: fetched once per instance, and an instance is on
    // each thread that ran the function: JS threads and proxy threads, one per core each.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    assert!(
        (1..=2 * cores).contains(&keys.count("/jwks.json")),
        "{} fetches",
        keys.count("/jwks.json")
    );
    let page = edge.metrics_page().await;
    let fetched: f64 = page
        .lines()
        .find(|line| {
            line.starts_with(
                r#"edgehook_function_egress_requests_total{function="gate",host="127.0.0.1",status_class="2xx"}"#,
            )
        })
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .expect("the egress metric");
    assert_eq!(fetched as usize, keys.count("/jwks.json"));
}

/// One node of examples/fleet as shipped, but for its listeners (the test's), its state
/// directory (the test's) and its etcd endpoint (the test's etcd).
fn fleet_node(number: usize, etcd: &EtcdCluster) -> Edgehook {
    let text = std::fs::read_to_string(format!("examples/fleet/edge-{number}.toml")).unwrap();
    let mut config: toml::Table = text.parse().unwrap();
    config.remove("server").expect("the example has a [server] table");
    let deploy = config["deploy"].as_table_mut().unwrap();
    deploy.insert("state_dir".into(), "{dir}/state".into());
    let etcd_table = deploy["etcd"].as_table_mut().unwrap();
    assert_eq!(etcd_table["node"].as_str(), Some(format!("edge-{number}").as_str()));
    etcd_table.insert("endpoints".into(), toml::Value::Array(vec![etcd.endpoint(0).into()]));
    Edgehook::spawn_in(tempfile::tempdir().unwrap(), "", &toml::to_string(&config).unwrap())
}

async fn greeting(edge: &Edgehook) -> (String, String) {
    let response = client().get(edge.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_string();
    (header("x-greeting"), header("x-cache"))
}

#[tokio::test]
async fn fleet() {
    let Some(etcd) = EtcdCluster::start(1).await else {
        return;
    };
    let mut nodes: Vec<Edgehook> = (1..=3).map(|n| fleet_node(n, &etcd)).collect();
    for node in &mut nodes {
        node.wait_ready().await;
    }
    for node in &nodes {
        assert_eq!(greeting(node).await.0, "hello from the configuration file");
    }

    // New code uploaded through node 1 serves on all three.
    let code = std::fs::read_to_string("examples/fleet/greeting-v2.mjs").unwrap();
    let (status, answer) = admin(&nodes[0], Method::PUT, "/functions/greeting/code", &code, true).await;
    assert_eq!(status, 200, "{answer}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for node in &nodes {
        while greeting(node).await.0 != "hello from code uploaded once" {
            assert!(std::time::Instant::now() < deadline, "a node still serves the old code");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // A version published through node 2 and an alias set through node 3 are node 1's too.
    let (status, answer) = admin(&nodes[1], Method::POST, "/functions/greeting/versions", "", true).await;
    assert_eq!((status, answer["version"].as_u64()), (201, Some(1)), "{answer}");
    let (status, answer) = admin(
        &nodes[2],
        Method::PUT,
        "/functions/greeting/aliases/live",
        r#"{"version": 1}"#,
        true,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, described) = admin(&nodes[0], Method::GET, "/functions/greeting", "", false).await;
        if described["aliases"]["live"]["version"] == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node 1 does not see the alias: {described}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A purge through node 2 empties the cache of all three.
    for node in &nodes {
        assert_eq!(greeting(node).await.1, "Hit from edgehook");
    }
    let (status, answer) = admin(
        &nodes[1],
        Method::POST,
        "/cache/purge",
        r#"{"paths": ["/*"], "wait": "5s"}"#,
        true,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "Completed", "{answer}");
    assert_eq!(answer["nodes"]["applied"], 3, "{answer}");
    for node in &nodes {
        assert_eq!(greeting(node).await.1, "Miss from edgehook");
    }

    let (_, fleet) = admin(&nodes[0], Method::GET, "/fleet", "", false).await;
    let names: Vec<&str> = fleet["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert_eq!(names, ["edge-1", "edge-2", "edge-3"], "{fleet}");
}

#[tokio::test]
async fn two_sites() {
    // Certificates made as the example's README says, in a directory of the test's.
    let tls = tempfile::tempdir().unwrap();
    let made = std::process::Command::new("examples/two-sites/make-certificates.sh")
        .arg(tls.path())
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let text = std::fs::read_to_string("examples/two-sites/edgehook.toml")
        .unwrap()
        .replace("127.0.0.1:8443", "{tls}")
        .replace("examples/two-sites/tls", &tls.path().display().to_string());
    let edge = Edgehook::start(&text).await;
    let root = std::fs::read(tls.path().join("ca.pem")).unwrap();
    let port = edge.tls.port();
    let mut browser = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(&root).unwrap());
    for host in [
        "www.example.test",
        "example.test",
        "shop.example.test",
        "eu.shop.example.test",
    ] {
        browser = browser.resolve(host, edge.tls);
    }
    let browser = browser.build().unwrap();
    let get = |host: &str, path: &str| browser.get(format!("https://{host}:{port}{path}")).send();

    for host in ["www.example.test", "example.test"] {
        let response = get(host, "/").await.unwrap();
        assert!(!response.headers().contains_key("strict-transport-security"));
        assert!(response.text().await.unwrap().contains("Welcome to www"));
    }
    for host in ["shop.example.test", "eu.shop.example.test"] {
        let response = get(host, "/").await.unwrap();
        assert!(response.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age="));
        assert!(response.text().await.unwrap().contains("Welcome to the shop"));
    }
    for expected in ["Miss from edgehook", "Miss from edgehook"] {
        let response = get("shop.example.test", "/cart/").await.unwrap();
        assert_eq!(response.headers()["x-cache"], expected, "the cart is never cached");
        assert!(response.text().await.unwrap().contains("Your cart is empty"));
    }
    // No default certificate: a name neither site serves gets no handshake.
    let stranger = reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .resolve("other.test", edge.tls)
        .build()
        .unwrap();
    assert!(stranger
        .get(format!("https://other.test:{port}/"))
        .send()
        .await
        .is_err());
}
