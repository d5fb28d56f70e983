//! Versions, aliases and code changes through the admin API, live and across restarts.

use crate::support::*;

fn marker(name: &str) -> String {
    format!("export const handler = async (e) => {{ const r = e.Records[0].cf.request; r.headers['x-code'] = [{{ value: '{name}' }}]; return r; }};")
}

fn config(origin: &Origin, dir: &std::path::Path, state: &std::path::Path, live_behavior: bool) -> String {
    std::fs::write(dir.join("f.mjs"), marker("config")).unwrap();
    let live = if live_behavior {
        "[[behaviors]]\npath = \"/live/*\"\norigin = \"app\"\ncache = false\nviewer_request = \"f:live\"\n"
    } else {
        ""
    };
    format!(
        "[deploy]\nstate_dir = \"{}\"\n[origins.app]\nurl = \"{}\"\n{live}[[behaviors]]\npath = \"*\"\norigin = \"app\"\ncache = false\nviewer_request = \"f\"\n[functions.f]\ncode = \"{}/f.mjs\"\n",
        state.display(),
        origin.url(),
        dir.display()
    )
}

/// An origin, a state directory and edgehook serving function `f` (code marked "config").
async fn start_with_state() -> (Origin, tempfile::TempDir, std::sync::Arc<Edgehook>) {
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rest = config(&origin, dir.path(), state.path(), false);
    let edge = std::sync::Arc::new(Edgehook::start_in(dir, "", &rest).await);
    (origin, state, edge)
}

async fn code_seen(edge: &Edgehook, origin: &Origin, path: &str, agent: &str) -> String {
    let response = client()
        .get(edge.url(path))
        .header("user-agent", agent)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    origin.last().headers["x-code"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn code_versions_and_aliases_take_effect_live_and_survive_a_restart() {
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rest = config(&origin, dir.path(), state.path(), false);
    let edge = Edgehook::start_in(dir, "", &rest).await;
    assert_eq!(code_seen(&edge, &origin, "/", "a").await, "config");

    // Uploading code: the token is required, bad code changes nothing, good code is live at once.
    let (status, _) = admin(&edge, reqwest::Method::PUT, "/functions/f/code", &marker("two"), false).await;
    assert_eq!(status, 401);
    let (status, body) = admin(
        &edge,
        reqwest::Method::PUT,
        "/functions/f/code",
        "export const handler = (",
        true,
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("does not load"), "{body}");
    assert_eq!(code_seen(&edge, &origin, "/", "a").await, "config");
    let (status, _) = admin(&edge, reqwest::Method::PUT, "/functions/f/code", &marker("two"), true).await;
    assert_eq!(status, 200);
    assert_eq!(code_seen(&edge, &origin, "/", "a").await, "two", "no restart needed");

    // Versions freeze the code; aliases point at versions.
    let (status, body) = admin(&edge, reqwest::Method::POST, "/functions/f/versions", "", true).await;
    assert_eq!((status, body["version"].as_u64()), (201, Some(1)));
    admin(&edge, reqwest::Method::PUT, "/functions/f/code", &marker("three"), true).await;
    let (_, body) = admin(&edge, reqwest::Method::POST, "/functions/f/versions", "", true).await;
    assert_eq!(body["version"], 2);
    let (status, body) = admin(
        &edge,
        reqwest::Method::PUT,
        "/functions/f/aliases/live",
        r#"{"version": 9}"#,
        true,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = admin(
        &edge,
        reqwest::Method::PUT,
        "/functions/f/aliases/live",
        "not json",
        true,
    )
    .await;
    assert_eq!(status, 400);
    let split = r#"{"version": 1, "additional_version": {"version": 2, "weight": 0.5}}"#;
    let (status, body) = admin(&edge, reqwest::Method::PUT, "/functions/f/aliases/live", split, true).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin(&edge, reqwest::Method::GET, "/functions/f", "", false).await;
    assert_eq!(status, 200);
    assert_eq!(body["versions"].as_array().unwrap().len(), 2);
    assert_eq!(body["aliases"]["live"]["additional_version"]["version"], 2);
    assert_eq!(
        admin(&edge, reqwest::Method::GET, "/functions/nope", "", false).await.0,
        404
    );
    drop(edge);

    // After a restart, a behavior can use the alias: split by weight, sticky per viewer.
    let dir = tempfile::tempdir().unwrap();
    let rest = config(&origin, dir.path(), state.path(), true);
    let edge = Edgehook::start_in(dir, "", &rest).await;
    assert_eq!(
        code_seen(&edge, &origin, "/", "a").await,
        "three",
        "the uploaded $LATEST survived the restart"
    );
    let mut seen = std::collections::HashMap::new();
    for viewer in 0..200 {
        let agent = format!("viewer {viewer}");
        let first = code_seen(&edge, &origin, "/live/x", &agent).await;
        assert_eq!(
            code_seen(&edge, &origin, "/live/x", &agent).await,
            first,
            "sticky per viewer"
        );
        *seen.entry(first).or_insert(0) += 1;
    }
    let (two, three) = (
        seen.get("two").copied().unwrap_or(0),
        seen.get("three").copied().unwrap_or(0),
    );
    assert_eq!(two + three, 200, "{seen:?}");
    assert!((70..=130).contains(&two), "about half on each version: {seen:?}");
}

#[tokio::test]
async fn serve_refuses_an_alias_that_does_not_exist() {
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rest = config(&origin, dir.path(), state.path(), true);
    let (http, admin, tls) = (free_addr(), free_addr(), free_addr());
    let path = write_config(dir.path(), http, admin, tls, "", &rest);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgehook"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no alias `live`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn wait_for_end(edge: &Edgehook, id: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (_, status) = admin(
            edge,
            reqwest::Method::GET,
            &format!("/functions/f/aliases/live/deployments/{id}"),
            "",
            false,
        )
        .await;
        if status["state"] != "InProgress" {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "deployment {id} never ended: {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn deployments_shift_traffic_roll_back_on_errors_and_honour_pre_traffic() {
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let state = tempfile::tempdir().unwrap();
    {
        let store = ::edgehook::deploy::store::LocalStore::open(state.path()).unwrap();
        store.publish("f", &stored_code(&marker("one")), 1).unwrap();
        store
            .publish(
                "f",
                &stored_code("export const handler = async () => { throw new Error('version 2 is broken'); };"),
                2,
            )
            .unwrap();
        store.publish("f", &stored_code(&marker("three")), 3).unwrap();
        store
            .put_alias(
                "f",
                "live",
                ::edgehook::deploy::store::Alias {
                    version: 1,
                    additional_version: None,
                },
            )
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("prefail.mjs"),
        "export const handler = async () => { throw new Error('smoke test failed'); };",
    )
    .unwrap();
    let mut rest = config(&origin, dir.path(), state.path(), true);
    rest.push_str(&format!(
        "[functions.prefail]\ncode = \"{}/prefail.mjs\"\n",
        dir.path().display()
    ));
    let edge = Edgehook::start_in(dir, "", &rest).await;
    assert_eq!(code_seen(&edge, &origin, "/live/x", "v").await, "one");

    // A broken version is rolled back as soon as its error rate crosses the alarm.
    let body = r#"{"version": 2, "strategy": {"type": "canary", "percent": 50, "interval": "5s"}, "alarm": {"error_rate": 0.2, "min_invocations": 5}}"#;
    let (status, started) = admin(
        &edge,
        reqwest::Method::POST,
        "/functions/f/aliases/live/deployments",
        body,
        true,
    )
    .await;
    assert_eq!(status, 201, "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    let conflict = admin(
        &edge,
        reqwest::Method::POST,
        "/functions/f/aliases/live/deployments",
        body,
        true,
    )
    .await;
    assert_eq!(conflict.0, 409, "one deployment per alias at a time");
    assert!(
        edge.metrics_page()
            .await
            .contains("edgehook_deployment_weight{alias=\"live\",function=\"f\"} 0.5"),
        "the canary's share is exported while it runs"
    );
    let mut failures = 0;
    for viewer in 0..60 {
        let response = client()
            .get(edge.url("/live/x"))
            .header("user-agent", format!("viewer {viewer}"))
            .send()
            .await
            .unwrap();
        if response.status() == 503 {
            failures += 1;
        }
    }
    assert!(failures > 0, "some viewers reached version 2");
    let ended = wait_for_end(&edge, &id).await;
    assert_eq!(ended["state"], "RolledBack", "{ended}");
    assert!(ended["reason"].as_str().unwrap().contains("error rate"), "{ended}");
    let metrics = edge.metrics_page().await;
    assert!(
        metrics.contains("edgehook_deployments_total{alias=\"live\",function=\"f\",result=\"rolled_back\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("edgehook_deployment_weight{alias=\"live\",function=\"f\"} 0\n"),
        "{metrics}"
    );
    for viewer in 0..20 {
        assert_eq!(
            code_seen(&edge, &origin, "/live/x", &format!("after {viewer}")).await,
            "one"
        );
    }

    // A healthy version is promoted step by step.
    let body = r#"{"version": 3, "strategy": {"type": "linear", "percent": 50, "interval": "300ms"}, "alarm": {"error_rate": 0.05, "min_invocations": 20}}"#;
    let (status, started) = admin(
        &edge,
        reqwest::Method::POST,
        "/functions/f/aliases/live/deployments",
        body,
        true,
    )
    .await;
    assert_eq!(status, 201);
    let ended = wait_for_end(&edge, started["id"].as_str().unwrap()).await;
    assert_eq!(ended["state"], "Succeeded", "{ended}");
    assert_eq!(ended["weight"], 1.0);
    assert!(edge
        .metrics_page()
        .await
        .contains("edgehook_deployments_total{alias=\"live\",function=\"f\",result=\"succeeded\"} 1"));
    for viewer in 0..20 {
        assert_eq!(
            code_seen(&edge, &origin, "/live/x", &format!("late {viewer}")).await,
            "three"
        );
    }

    // A failing pre-traffic function aborts before any traffic moves.
    let body = r#"{"version": 1, "strategy": "AllAtOnce", "pre_traffic": "prefail"}"#;
    let (_, started) = admin(
        &edge,
        reqwest::Method::POST,
        "/functions/f/aliases/live/deployments",
        body,
        true,
    )
    .await;
    let ended = wait_for_end(&edge, started["id"].as_str().unwrap()).await;
    assert_eq!(ended["state"], "Failed");
    assert!(ended["reason"].as_str().unwrap().contains("pre-traffic"), "{ended}");
    assert_eq!(
        code_seen(&edge, &origin, "/live/x", "v").await,
        "three",
        "nothing moved"
    );

    // A canary holds its share for its interval, then is promoted on time.
    let started_at = std::time::Instant::now();
    let body = r#"{"version": 1, "strategy": {"type": "canary", "percent": 20, "interval": "600ms"}}"#;
    let (_, started) = admin(
        &edge,
        reqwest::Method::POST,
        "/functions/f/aliases/live/deployments",
        body,
        true,
    )
    .await;
    let id = started["id"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let (_, midway) = admin(
        &edge,
        reqwest::Method::GET,
        &format!("/functions/f/aliases/live/deployments/{id}"),
        "",
        false,
    )
    .await;
    assert_eq!(
        (midway["state"].as_str(), midway["weight"].as_f64()),
        (Some("InProgress"), Some(0.2)),
        "{midway}"
    );
    let ended = wait_for_end(&edge, &id).await;
    assert_eq!(ended["state"], "Succeeded");
    let took = started_at.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(600) && took < std::time::Duration::from_secs(5),
        "promoted after {took:?}"
    );
    assert_eq!(code_seen(&edge, &origin, "/live/x", "v").await, "one");

    // All at once, and the bad requests are refused clearly.
    let (_, started) = admin(
        &edge,
        reqwest::Method::POST,
        "/functions/f/aliases/live/deployments",
        r#"{"version": 3, "strategy": "AllAtOnce"}"#,
        true,
    )
    .await;
    assert_eq!(
        wait_for_end(&edge, started["id"].as_str().unwrap()).await["state"],
        "Succeeded"
    );
    assert_eq!(code_seen(&edge, &origin, "/live/x", "v").await, "three");
    for (body, status) in [
        (r#"{"version": 1, "strategy": "Sideways"}"#, 400),
        (r#"{"version": 9, "strategy": "AllAtOnce"}"#, 404),
        ("not json", 400),
    ] {
        assert_eq!(
            admin(
                &edge,
                reqwest::Method::POST,
                "/functions/f/aliases/live/deployments",
                body,
                true
            )
            .await
            .0,
            status,
            "{body}"
        );
    }
    assert_eq!(
        admin(
            &edge,
            reqwest::Method::POST,
            "/functions/f/aliases/nope/deployments",
            r#"{"version": 1, "strategy": "AllAtOnce"}"#,
            true
        )
        .await
        .0,
        404
    );
    assert_eq!(
        admin(
            &edge,
            reqwest::Method::POST,
            "/functions/f/aliases/live/deployments",
            r#"{"version": 1, "strategy": "AllAtOnce"}"#,
            false
        )
        .await
        .0,
        401
    );
    let (_, described) = admin(&edge, reqwest::Method::GET, "/functions/f", "", false).await;
    assert_eq!(described["deployments"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn the_deploy_command_uploads_publishes_and_follows_the_deployment() {
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let state = tempfile::tempdir().unwrap();
    {
        let store = ::edgehook::deploy::store::LocalStore::open(state.path()).unwrap();
        store.publish("f", &stored_code(&marker("one")), 1).unwrap();
        store
            .put_alias(
                "f",
                "live",
                ::edgehook::deploy::store::Alias {
                    version: 1,
                    additional_version: None,
                },
            )
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let new_code = dir.path().join("new.mjs");
    std::fs::write(&new_code, marker("cli")).unwrap();
    let rest = config(&origin, dir.path(), state.path(), true);
    let edge = Edgehook::start_in(dir, "", &rest).await;
    let admin_url = format!("http://{}", edge.admin);
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_edgehook"))
                .args(args)
                .output()
                .unwrap()
        })
    };
    let args = vec![
        "deploy".into(),
        "f".into(),
        "--code".into(),
        new_code.display().to_string(),
        "--strategy".into(),
        "linear:50:200ms".into(),
        "--admin".into(),
        admin_url.clone(),
        "--token".into(),
        ADMIN_TOKEN.into(),
    ];
    let out = run(args).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("published f version 2"), "{stdout}");
    assert!(stdout.contains("Succeeded"), "{stdout}");
    assert_eq!(code_seen(&edge, &origin, "/live/x", "anyone").await, "cli");

    let bad = vec![
        "deploy".into(),
        "f".into(),
        "--to-version".into(),
        "7".into(),
        "--admin".into(),
        admin_url,
        "--token".into(),
        "wrong".into(),
    ];
    let out = run(bad).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}

#[tokio::test]
async fn concurrent_admin_calls_do_not_trip_over_each_other() {
    let (origin, state, edge) = start_with_state().await;
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let edge = edge.clone();
            tokio::spawn(async move {
                let (status, _) = admin(
                    &edge,
                    reqwest::Method::PUT,
                    "/functions/f/code",
                    &marker(&format!("c{i}")),
                    true,
                )
                .await;
                assert_eq!(status, 200);
                let (status, body) = admin(&edge, reqwest::Method::POST, "/functions/f/versions", "", true).await;
                assert_eq!(status, 201);
                body["version"].as_u64().unwrap()
            })
        })
        .collect();
    let mut versions = Vec::new();
    for call in calls {
        versions.push(call.await.unwrap());
    }
    versions.sort();
    assert_eq!(
        versions,
        (1..=8).collect::<Vec<u64>>(),
        "every publish got its own number"
    );
    let (_, described) = admin(&edge, reqwest::Method::GET, "/functions/f", "", false).await;
    assert_eq!(described["versions"].as_array().unwrap().len(), 8);
    // The uploads ran side by side: the code served is the code stored as $LATEST.
    let store = ::edgehook::deploy::store::LocalStore::open(state.path()).unwrap();
    let latest = store.latest("f").unwrap().unwrap();
    let stored = String::from_utf8_lossy(latest.package.file("f.mjs").unwrap()).into_owned();
    let served = code_seen(&edge, &origin, "/", "a").await;
    assert_eq!(marker(&served), stored);
}

#[tokio::test]
async fn the_admin_listener_answers_while_uploaded_code_loads() {
    let (origin, _state, edge) = start_with_state().await;
    // Top-level code that takes 1.5 s (within the function's 5 s): the upload waits for it.
    let slow = format!(
        "const end = Date.now() + 1500; while (Date.now() < end) {{}}\n{}",
        marker("slow")
    );
    let upload = {
        let edge = edge.clone();
        tokio::spawn(async move { admin(&edge, reqwest::Method::PUT, "/functions/f/code", &slow, true).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let asked = std::time::Instant::now();
    let health = client().get(edge.admin_url("/healthz")).send().await.unwrap();
    let answered = asked.elapsed();
    assert_eq!(health.status(), 200);
    assert!(
        answered < std::time::Duration::from_millis(700),
        "/healthz waited {answered:?} for the upload"
    );
    assert!(!upload.is_finished(), "the upload was still loading");
    let (status, body) = upload.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(code_seen(&edge, &origin, "/", "a").await, "slow");
}

#[tokio::test]
async fn a_deployment_in_progress_carries_on_after_the_node_restarts() {
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let state = tempfile::tempdir().unwrap();
    {
        let store = ::edgehook::deploy::store::LocalStore::open(state.path()).unwrap();
        store.publish("f", &stored_code(&marker("one")), 1).unwrap();
        store.publish("f", &stored_code(&marker("two")), 2).unwrap();
        let live = ::edgehook::deploy::store::Alias {
            version: 1,
            additional_version: None,
        };
        store.put_alias("f", "live", live).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let rest = config(&origin, dir.path(), state.path(), true);
    let edge = Edgehook::start_in(dir, "", &rest).await;
    let body = r#"{"version": 2, "strategy": {"type": "canary", "percent": 50, "interval": "3s"}}"#;
    let (status, started) = admin(
        &edge,
        reqwest::Method::POST,
        "/functions/f/aliases/live/deployments",
        body,
        true,
    )
    .await;
    assert_eq!(status, 201, "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    drop(edge); // SIGKILL, mid-step

    let dir = tempfile::tempdir().unwrap();
    let rest = config(&origin, dir.path(), state.path(), true);
    let edge = Edgehook::start_in(dir, "", &rest).await;
    let ended = wait_for_end(&edge, &id).await;
    assert_eq!(ended["state"], "Succeeded", "{ended}");
    let events: Vec<&str> = ended["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        ["started", "shifted", "completed"],
        "carried on from its step: {ended}"
    );
    assert_eq!(code_seen(&edge, &origin, "/live/x", "anyone").await, "two");
    // The alias is free again.
    let (status, _) = admin(
        &edge,
        reqwest::Method::POST,
        "/functions/f/aliases/live/deployments",
        r#"{"version": 1, "strategy": "AllAtOnce"}"#,
        true,
    )
    .await;
    assert_eq!(status, 201);
}
