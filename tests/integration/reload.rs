//! Config reloads (SIGHUP, POST /reload) and code deployments under load: no request fails.

use crate::support::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn marker(name: &str) -> String {
    format!("export const handler = async (e) => {{ const r = e.Records[0].cf.request; r.headers['x-code'] = [{{ value: '{name}' }}]; return r; }};")
}

fn write_config(dir: &std::path::Path, origin: &Origin, extra: &str) -> String {
    format!(
        "[deploy]\nstate_dir = \"{d}/state\"\n[origins.app]\nurl = \"{}\"\n{extra}[[behaviors]]\npath = \"*\"\norigin = \"app\"\ncache = false\nviewer_request = \"f\"\n[functions.f]\ncode = \"{d}/f.mjs\"\n",
        origin.url(),
        d = dir.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_and_deployments_under_load_fail_no_request() {
    let origin = Origin::start(|seen| {
        Reply::ok(
            seen.headers
                .get("x-code")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default(),
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_path_buf();
    std::fs::write(base.join("f.mjs"), marker("one")).unwrap();
    std::fs::write(base.join("g.mjs"), marker("g")).unwrap();
    let rest = write_config(&base, &origin, "");
    let edge = Arc::new(Edgehook::start_in(dir, "", &rest).await);
    let config_path = base.join("edgehook.toml");
    let c = client();
    assert_eq!(c.get(edge.url("/")).send().await.unwrap().text().await.unwrap(), "one");

    // Traffic all along.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (edge, stop, sent, failed, c) = (edge.clone(), stop.clone(), sent.clone(), failed.clone(), c.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let ok = matches!(c.get(edge.url("/load")).send().await, Ok(r) if r.status() == 200);
                    sent.fetch_add(1, Ordering::Relaxed);
                    if !ok {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let until_code = |expected: &'static str| {
        let (edge, c) = (edge.clone(), c.clone());
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                if c.get(edge.url("/")).send().await.unwrap().text().await.unwrap() == expected {
                    return;
                }
                assert!(std::time::Instant::now() < deadline, "never saw {expected}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    // New code on disk + SIGHUP (the harness wrote the config at the same path).
    std::fs::write(base.join("f.mjs"), marker("two")).unwrap();
    edge.signal(libc::SIGHUP);
    until_code("two").await;

    // An invalid file is refused and the running configuration stays.
    std::fs::write(&config_path, "[server\nbroken").unwrap();
    let refused = edge.reload().await;
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("edgehook.toml"));
    assert_eq!(c.get(edge.url("/")).send().await.unwrap().text().await.unwrap(), "two");
    let unauthorized = c.post(edge.admin_url("/reload")).send().await.unwrap();
    assert_eq!(unauthorized.status(), 401);

    // A new behavior with a new function arrives by POST /reload.
    let with_g = write_config(
        &base,
        &origin,
        &format!("[functions.g]\ncode = \"{}/g.mjs\"\n[[behaviors]]\npath = \"/g/*\"\norigin = \"app\"\ncache = false\nviewer_request = \"g\"\n", base.display()),
    );
    std::fs::write(&config_path, edge_server_section(&edge) + &with_g).unwrap();
    let reloaded = edge.reload().await;
    assert_eq!(reloaded.status(), 200, "{}", reloaded.text().await.unwrap());
    assert_eq!(c.get(edge.url("/g/x")).send().await.unwrap().text().await.unwrap(), "g");

    // Code uploads and a deployment while the load goes on.
    let admin = |method: reqwest::Method, path: &str, body: String| {
        c.request(method, edge.admin_url(path))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .body(body)
            .send()
    };
    assert_eq!(
        admin(reqwest::Method::PUT, "/functions/f/code", marker("three"))
            .await
            .unwrap()
            .status(),
        200
    );
    until_code("three").await;
    assert_eq!(
        admin(reqwest::Method::POST, "/functions/f/versions", String::new())
            .await
            .unwrap()
            .status(),
        201
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(sent > 50, "the load kept going ({sent} requests)");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed");
}

/// The [server] section the harness wrote, so that a rewritten config keeps its ports.
fn edge_server_section(edge: &Edgehook) -> String {
    format!(
        "[server]\nlisten = [\"{}\"]\nadmin = \"{}\"\nadmin_token = \"{ADMIN_TOKEN}\"\nthreads = 2\nshutdown_timeout = \"10s\"\n",
        edge.http, edge.admin
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_in_flight_finishes_on_the_code_it_started_with() {
    let origin = Origin::start(|seen| {
        Reply::ok(
            seen.headers
                .get("x-code")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default(),
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_path_buf();
    // The old code keeps its invocation open for a while, with state in its module globals.
    std::fs::write(
        base.join("f.mjs"),
        "let calls = 0; export const handler = async (e) => { calls += 1; const r = e.Records[0].cf.request; \
         await new Promise((done) => setTimeout(done, 600)); r.headers['x-code'] = [{ value: 'old after ' + calls }]; return r; };",
    )
    .unwrap();
    let rest = write_config(&base, &origin, "");
    let edge = Arc::new(Edgehook::start_in(dir, "", &rest).await);
    let c = client();
    let slow = {
        let (edge, c) = (edge.clone(), c.clone());
        tokio::spawn(async move {
            let response = c.get(edge.url("/slow")).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let put = c
        .put(edge.admin_url("/functions/f/code"))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body(marker("new"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
    let after = c.get(edge.url("/after")).send().await.unwrap();
    assert_eq!(after.text().await.unwrap(), "new");
    assert_eq!(slow.await.unwrap(), (200, "old after 1".to_string()));
    assert_eq!(
        c.get(edge.url("/again")).send().await.unwrap().text().await.unwrap(),
        "new"
    );
}
