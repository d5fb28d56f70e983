//! The web console at `/ui/`, in a real headless Chromium: logging in with the admin token,
//! the functions with their aliases' split, a canary deployment started from the page whose
//! chart moves second by second until its alarm rolls it back, the metrics and the cache.
//! With EDGEHOOK_CONSOLE_SCREENSHOTS=DIR, each page's screenshot is written there
//! (docs/console/ holds the ones in the manual).

use crate::support::browser::Browser;
use crate::support::*;
use ::edgehook::deploy::store::{Alias, LocalStore};
use std::time::Duration;

const PASS: &str = "export const handler = async (e) => e.Records[0].cf.request;";

async fn screenshot(browser: &Browser, name: &str) {
    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    if let Ok(dir) = std::env::var("EDGEHOOK_CONSOLE_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

#[tokio::test]
async fn an_operator_watches_a_canary_roll_back_in_the_console() {
    let Some(browser) = Browser::start().await else { return };
    let origin = Origin::start(|_| Reply::ok("page").header("cache-control", "max-age=60")).await;
    let state = tempfile::tempdir().unwrap();
    {
        let store = LocalStore::open(state.path()).unwrap();
        store.publish("f", &stored_code(PASS), 1).unwrap();
        store
            .publish(
                "f",
                &stored_code("export const handler = async () => { throw new Error('v2 is broken'); };"),
                2,
            )
            .unwrap();
        store
            .put_alias(
                "f",
                "live",
                Alias {
                    version: 1,
                    additional_version: None,
                },
            )
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.mjs"), PASS).unwrap();
    let rest = format!(
        "[deploy]\nstate_dir = \"{}\"\n[origins.app]\nurl = \"{}\"\n[[behaviors]]\npath = \"/live/*\"\norigin = \"app\"\ncache = false\nviewer_request = \"f:live\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n[functions.f]\ncode = \"{}/f.mjs\"\n",
        state.path().display(),
        origin.url(),
        dir.path().display()
    );
    let edge = Edgehook::start_in(dir, "", &rest).await;
    for path in ["/live/a", "/cached"] {
        get_text(&edge.url(path)).await;
    }

    // Logging in: a wrong token is refused, the right one opens the console.
    browser.goto(&edge.admin_url("/ui/")).await;
    browser.type_into("#token", "not the token").await;
    browser.click("#login-button").await;
    browser
        .wait_for(
            "return document.getElementById('login-error').textContent || null",
            Duration::from_secs(5),
        )
        .await;
    screenshot(&browser, "login").await;
    browser
        .script("document.getElementById('token').value = ''; return 1")
        .await;
    browser.type_into("#token", ADMIN_TOKEN).await;
    browser.click("#login-button").await;
    let weight = browser
        .wait_for(
            "const s = document.querySelector('.function[data-function=\"f\"] .split'); return s && s.dataset.weight",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(weight, "0", "all of live's traffic on version 1");
    assert!(
        browser
            .script("return sessionStorage.getItem('edgehook-admin-token') !== null && document.cookie === ''")
            .await
            == true,
        "the token is in the tab's session storage, not a cookie"
    );
    screenshot(&browser, "functions").await;

    // A canary of the broken version 2, started from the page, with its confirmation.
    browser
        .script(
            "document.getElementById('deploy-function').value = 'f';
             document.getElementById('deploy-alias').value = 'live';
             document.getElementById('deploy-version').value = '2';
             document.getElementById('deploy-strategy').value = 'canary';
             document.getElementById('deploy-percent').value = '50';
             document.getElementById('deploy-interval').value = '1m';
             document.getElementById('deploy-alarm').value = '0.2';
             document.getElementById('deploy-min').value = '10';
             return 1",
        )
        .await;
    browser.click("#deploy-button").await;
    browser
        .wait_for("return document.getElementById('confirm').open", Duration::from_secs(5))
        .await;
    browser.click("#confirm-ok").await;
    let chart = "const c = document.querySelector('svg.deployment-chart'); return c && [c.dataset.state, Number(c.dataset.points)]";
    let first = browser.wait_for(chart, Duration::from_secs(10)).await;
    assert_eq!(first[0], "InProgress", "{first}");
    // The chart updates every second while the canary runs.
    let later = browser
        .wait_for(
            &format!("const c = document.querySelector('svg.deployment-chart'); return c && Number(c.dataset.points) >= {} + 2 && Number(c.dataset.points)", first[1]),
            Duration::from_secs(10),
        )
        .await;
    assert!(later.as_u64().unwrap() >= first[1].as_u64().unwrap() + 2);
    screenshot(&browser, "deployment-canary").await;

    // Viewers reach version 2, which fails: the alarm rolls the deployment back.
    for viewer in 0..80 {
        let _ = client()
            .get(edge.url("/live/page"))
            .header("user-agent", format!("viewer {viewer}"))
            .send()
            .await
            .unwrap()
            .text()
            .await;
    }
    let ended = browser
        .wait_for(
            "const c = document.querySelector('svg.deployment-chart'); return c && c.dataset.state !== 'InProgress' && [c.dataset.state, c.querySelectorAll('line.marker.rollback').length, document.querySelector('.deployment').textContent]",
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(ended[0], "RolledBack", "{ended}");
    assert_eq!(ended[1], 1, "the rollback is marked on the chart: {ended}");
    assert!(ended[2].as_str().unwrap().contains("crossed the alarm"), "{ended}");
    // Let the chart draw a few seconds past the rollback.
    tokio::time::sleep(Duration::from_secs(2)).await;
    screenshot(&browser, "deployment-rolled-back").await;

    // Publishing $LATEST makes version 3; moving the alias and stopping a deployment of it, each
    // confirmed, from the page.
    browser.click("#tabs button[data-tab='functions']").await;
    browser
        .wait_for(
            "return document.querySelector('button[data-action=\"publish\"]') !== null",
            Duration::from_secs(5),
        )
        .await;
    browser.click("button[data-action='publish'][data-function='f']").await;
    browser.click("#confirm-ok").await;
    browser
        .wait_for(
            "return document.querySelector('.function[data-function=\"f\"]').textContent.includes('v3')",
            Duration::from_secs(10),
        )
        .await;
    browser.type_into("input[data-move='f:live']", "3").await;
    browser.click("button[data-action='move'][data-alias='live']").await;
    browser.click("#confirm-ok").await;
    browser
        .wait_for(
            "return document.querySelector('.split .old') && document.querySelector('.split .old').textContent.startsWith('v3')",
            Duration::from_secs(10),
        )
        .await;
    browser
        .script(
            "document.getElementById('deploy-version').value = '1';
             document.getElementById('deploy-strategy').value = 'linear';
             document.getElementById('deploy-percent').value = '20';
             document.getElementById('deploy-interval').value = '10m';
             return 1",
        )
        .await;
    browser.click("#deploy-button").await;
    browser.click("#confirm-ok").await;
    browser
        .wait_for(
            "return document.querySelector('button[data-action=\"stop\"]') !== null",
            Duration::from_secs(10),
        )
        .await;
    browser.click("button[data-action='stop']").await;
    browser.click("#confirm-ok").await;
    let stopped = browser
        .wait_for(
            "const d = [...document.querySelectorAll('.deployment')].find((d) => d.textContent.includes('v3 \\u2192 v1')); return d && d.querySelector('svg').dataset.state !== 'InProgress' && [d.querySelector('svg').dataset.state, d.textContent, d.dataset.id]",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(stopped[0], "RolledBack", "{stopped}");
    assert!(
        stopped[1].as_str().unwrap().contains("stopped by an operator"),
        "{stopped}"
    );
    let again = admin(
        &edge,
        reqwest::Method::POST,
        &format!(
            "/functions/f/aliases/live/deployments/{}/stop",
            stopped[2].as_str().unwrap()
        ),
        "",
        true,
    )
    .await;
    assert_eq!(again.0, 409, "an ended deployment cannot be stopped: {}", again.1);

    // Per-function metrics and the cache, with a purge.
    browser.click("#tabs button[data-tab='metrics']").await;
    browser
        .wait_for(
            "return document.querySelector('.function-metrics[data-function^=\"f\"] svg path[data-series=\"invocations\"]') !== null",
            Duration::from_secs(5),
        )
        .await;
    screenshot(&browser, "metrics").await;
    browser.click("#tabs button[data-tab='cache']").await;
    let objects = browser
        .wait_for(
            "const cell = document.querySelector('#cache-tiers tr:nth-child(2) td:nth-child(2)'); return cell && Number(cell.textContent)",
            Duration::from_secs(5),
        )
        .await;
    assert!(objects.as_u64().unwrap() >= 1, "the cached page is counted");
    let sites = browser
        .wait_for(
            "return [...document.querySelectorAll('#purge-distribution option')].map((o) => o.textContent).join('|')",
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(
        sites, "top-level behaviors (every other host)",
        "the sites one may purge"
    );
    browser.type_into("#purge-paths", "/cached").await;
    browser.click("#purge-button").await;
    browser
        .wait_for("return document.getElementById('confirm').open", Duration::from_secs(5))
        .await;
    browser.click("#confirm-ok").await;
    let said = browser
        .wait_for(
            "const s = document.getElementById('status').textContent; return s.startsWith('Purge') && s",
            Duration::from_secs(10),
        )
        .await;
    assert!(said.as_str().unwrap().contains("1 object"), "{said}");
    screenshot(&browser, "cache").await;
}

#[tokio::test]
async fn the_console_needs_the_admin_token() {
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let edge = Edgehook::start(&uncached_proxy_to(&origin.url())).await;
    let page = client().get(edge.admin_url("/ui/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(
        policy.contains("default-src 'self'") && policy.contains("frame-ancestors 'none'"),
        "{policy}"
    );
    assert!(page.text().await.unwrap().contains("<script src=\"app.js\""));
    let state = client().get(edge.admin_url("/console/state")).send().await.unwrap();
    assert_eq!(state.status(), 401, "no token, no data");
    let wrong = client()
        .get(edge.admin_url("/auth"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = client()
        .get(edge.admin_url("/auth"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 204);
    let state = client()
        .get(edge.admin_url("/console/state"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert!(state["requests"]["2xx"].is_array(), "{state}");
    assert!(state["cache"]["tiers"].is_array(), "{state}");
}
