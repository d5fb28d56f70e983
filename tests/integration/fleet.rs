//! A fleet: three edgehook nodes sharing their deployment state in a real etcd on loopback.
//! A change made through any node reaches all of them; deployments and purges are the
//! fleet's; nodes ride out etcd's members (and all of etcd) going away.

use crate::support::*;
use ::edgehook::deploy::store::{Alias, EtcdStore, FunctionCode, NodeRecord, StateStore};
use ::edgehook::package::Package;
use reqwest::Method;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A viewer-request function answering `name` itself (the origin is not asked).
fn answering(name: &str) -> String {
    format!(
        "export const handler = async () => ({{ status: '200', headers: {{ 'cache-control': [{{ value: 'no-store' }}] }}, body: '{name}' }});"
    )
}

const BROKEN: &str = "export const handler = async () => { throw new Error('this version is broken'); };";

fn code(source: &str) -> FunctionCode {
    FunctionCode {
        package: Arc::new(Package::single("f.mjs", source)),
        layers: Vec::new(),
        handler: "handler".into(),
        timeout_ms: 5000,
        memory: 64 << 20,
        env: Default::default(),
    }
}

fn etcd_settings(endpoints: &[String], prefix: &str) -> ::edgehook::config::EtcdSettings {
    ::edgehook::config::EtcdSettings {
        endpoints: endpoints.to_vec(),
        prefix: prefix.to_string(),
        ca_file: None,
        identity: None,
        user: None,
    }
}

/// Publishes `versions` of function `f` in order (1, 2, ...) and points alias `live` at 1,
/// as a node would, then leaves.
async fn seed(endpoints: &[String], prefix: &str, versions: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let me = NodeRecord {
        name: "seeder".into(),
        ..NodeRecord::default()
    };
    let store = EtcdStore::connect(&etcd_settings(endpoints, prefix), dir.path(), me)
        .await
        .expect("connect to etcd");
    for (number, source) in versions.iter().enumerate() {
        assert_eq!(store.publish("f", &code(source), 1).await.unwrap(), number as u32 + 1);
    }
    let live = Alias {
        version: 1,
        additional_version: None,
    };
    store.put_alias("f", "live", live).await.unwrap();
    store.leave().await;
}

struct Fleet {
    etcd: EtcdCluster,
    origin: Origin,
    nodes: Vec<Option<Edgehook>>,
}

impl Fleet {
    /// `f` seeded with `versions` in `etcd`, and one node per entry of `endpoints` (the etcd
    /// endpoints each node is given), named edge-0, edge-1, ...
    async fn start(etcd: EtcdCluster, versions: &[&str], endpoints: &[Vec<String>]) -> Fleet {
        let prefix = format!("/edgehook-test-{}/", rand_suffix());
        seed(&etcd.endpoints(), &prefix, versions).await;
        let origin =
            Origin::start(|seen| Reply::ok(format!("origin {}", seen.uri)).header("cache-control", "max-age=3600"))
                .await;
        let mut starting = Vec::new();
        for (index, members) in endpoints.iter().enumerate() {
            let list: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("f.mjs"), answering("config")).unwrap();
            let rest = format!(
                "[deploy]\nstate_dir = \"{{dir}}/state\"\nstore = \"etcd\"\n[deploy.etcd]\nendpoints = [{}]\nprefix = \"{prefix}\"\nnode = \"edge-{index}\"\n\
                 [origins.app]\nurl = \"{}\"\n\
                 [[behaviors]]\npath = \"/cached/*\"\norigin = \"app\"\n\
                 [[behaviors]]\npath = \"*\"\norigin = \"app\"\ncache = false\nviewer_request = \"f:live\"\n\
                 [functions.f]\ncode = \"{{dir}}/f.mjs\"\n",
                list.join(", "),
                origin.url()
            );
            // Started together; each then waits for the others to be ready.
            starting.push(Edgehook::spawn_in(dir, "", &rest));
        }
        let mut nodes = Vec::new();
        for mut node in starting {
            node.wait_ready().await;
            nodes.push(Some(node));
        }
        Fleet { etcd, origin, nodes }
    }

    /// Three nodes on a one-member etcd (None, with a message, when etcd is not installed).
    async fn of_three(versions: &[&str]) -> Option<Fleet> {
        let etcd = EtcdCluster::start(1).await?;
        let endpoint = vec![etcd.endpoint(0)];
        Some(Fleet::start(etcd, versions, &[endpoint.clone(), endpoint.clone(), endpoint]).await)
    }

    fn node(&self, index: usize) -> &Edgehook {
        self.nodes[index].as_ref().expect("a running node")
    }

    fn running(&self) -> impl Iterator<Item = &Edgehook> {
        self.nodes.iter().flatten()
    }

    /// Kills node `index` (SIGKILL): it leaves nothing behind but what its lease holds.
    fn kill(&mut self, index: usize) {
        self.nodes[index] = None;
    }
}

fn rand_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    format!("{:x}", hasher.finish())
}

/// What node `edge` answers viewer `viewer` at `/`.
async fn served(edge: &Edgehook, viewer: &str) -> String {
    let response = client()
        .get(edge.url("/"))
        .header("user-agent", viewer)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    if status == 200 {
        body
    } else {
        format!("status {status}")
    }
}

/// Waits until every running node serves `expected` to a few viewers; returns how long it took.
async fn until_all_serve(fleet: &Fleet, expected: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let mut all = true;
        for edge in fleet.running() {
            for viewer in ["a", "b", "c"] {
                if served(edge, viewer).await != expected {
                    all = false;
                }
            }
        }
        if all {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "not every node serves `{expected}` after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_deployment(edge: &Edgehook, id: &str, within: Duration) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let (_, status) = admin(
            edge,
            Method::GET,
            &format!("/functions/f/aliases/live/deployments/{id}"),
            "",
            false,
        )
        .await;
        // No state: the node has not seen the deployment yet.
        if !(status["state"].is_null() || status["state"] == "InProgress") {
            return status;
        }
        assert!(Instant::now() < deadline, "deployment {id} never ended: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_node_serves_on_every_node() {
    let Some(fleet) = Fleet::of_three(&[&answering("one")]).await else {
        return;
    };
    until_all_serve(&fleet, "one", Duration::from_secs(5)).await;

    // New code through node 0, published there, the alias moved through node 1: every node
    // serves it within a second of the move.
    let (status, body) = admin(fleet.node(0), Method::PUT, "/functions/f/code", &answering("two"), true).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin(fleet.node(0), Method::POST, "/functions/f/versions", "", true).await;
    assert_eq!((status, body["version"].as_u64()), (201, Some(2)), "{body}");
    let (status, body) = admin(
        fleet.node(1),
        Method::PUT,
        "/functions/f/aliases/live",
        r#"{"version": 2}"#,
        true,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let took = until_all_serve(&fleet, "two", Duration::from_secs(1)).await;
    eprintln!("alias move to all three nodes serving: {took:?}");

    // Node 2 never saw the upload, yet its `$LATEST` is the uploaded code.
    let (_, described) = admin(fleet.node(2), Method::GET, "/functions/f", "", false).await;
    assert_eq!(described["versions"].as_array().unwrap().len(), 2, "{described}");

    // Publishes from every node at once get distinct numbers, and none is lost.
    let publishes = (0..3).map(|i| admin(fleet.node(i), Method::POST, "/functions/f/versions", "", true));
    let mut numbers = Vec::new();
    for publish in publishes.collect::<Vec<_>>() {
        let (status, body) = publish.await;
        assert_eq!(status, 201, "{body}");
        numbers.push(body["version"].as_u64().unwrap());
    }
    let concurrent = {
        let (a, b, c) = tokio::join!(
            admin(fleet.node(0), Method::POST, "/functions/f/versions", "", true),
            admin(fleet.node(1), Method::POST, "/functions/f/versions", "", true),
            admin(fleet.node(2), Method::POST, "/functions/f/versions", "", true),
        );
        [a, b, c]
    };
    for (status, body) in &concurrent {
        assert_eq!(*status, 201, "{body}");
        numbers.push(body["version"].as_u64().unwrap());
    }
    numbers.sort();
    assert_eq!(numbers, vec![3, 4, 5, 6, 7, 8]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for edge in fleet.running() {
        let (_, described) = admin(edge, Method::GET, "/functions/f", "", false).await;
        assert_eq!(described["versions"].as_array().unwrap().len(), 8, "{described}");
    }

    // Two deployments of one alias through two nodes at once: one is taken, one refused.
    let body = r#"{"version": 3, "strategy": {"type": "canary", "percent": 10, "interval": "1s"}}"#;
    let (first, second) = tokio::join!(
        admin(
            fleet.node(0),
            Method::POST,
            "/functions/f/aliases/live/deployments",
            body,
            true
        ),
        admin(
            fleet.node(1),
            Method::POST,
            "/functions/f/aliases/live/deployments",
            body,
            true
        ),
    );
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{first:?} {second:?}");

    // The fleet view lists the three nodes, on every node.
    let (status, view) = admin(fleet.node(2), Method::GET, "/fleet", "", false).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["edge-0", "edge-1", "edge-2"], "{view}");
    assert_eq!(view["store"], "etcd");
    assert_eq!(view["health"]["status"], "connected");

    // Each node reports what it serves with its heartbeat (every second).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, view) = admin(fleet.node(1), Method::GET, "/fleet", "", false).await;
        let reported = view["nodes"].as_array().unwrap().iter().all(|node| {
            node["serving"]
                .as_array()
                .is_some_and(|s| s.iter().any(|k| k.as_str().is_some_and(|k| k.starts_with("f:"))))
        });
        if reported {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every node reports serving f's versions: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // `edgehook fleet` prints the same as a table.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgehook"))
        .args(["fleet", "--admin", &format!("http://{}", fleet.node(1).admin)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("store etcd at revision"), "{text}");
    assert!(lines[0].ends_with("(connected), as node edge-1 sees it"), "{text}");
    for (line, node) in lines[2..].iter().zip(0..3) {
        assert!(line.starts_with(&format!("edge-{node} ")), "{text}");
        assert!(line.contains(&fleet.node(node).admin.to_string()), "{text}");
        assert!(
            line.split_whitespace().any(|w| w.starts_with("f:")),
            "serves versions of f: {text}"
        );
    }
    assert_eq!(lines.len(), 5, "{text}");
}

/// How many of `viewers` (spread over every running node) node by node are served `name`.
async fn share_serving(fleet: &Fleet, name: &str, viewers: usize) -> f64 {
    let nodes: Vec<&Edgehook> = fleet.running().collect();
    let mut hits = 0;
    for viewer in 0..viewers {
        if served(nodes[viewer % nodes.len()], &format!("viewer {viewer}")).await == name {
            hits += 1;
        }
    }
    hits as f64 / viewers as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_are_the_fleets_their_alarm_counts_every_node_and_outlive_their_driver() {
    let versions = [answering("one").as_str(), BROKEN, &answering("three")].map(str::to_string);
    let versions: Vec<&str> = versions.iter().map(String::as_str).collect();
    let Some(mut fleet) = Fleet::of_three(&versions).await else {
        return;
    };
    until_all_serve(&fleet, "one", Duration::from_secs(5)).await;

    // A broken version, deployed through node 0, fails only on the viewers nodes 1 and 2
    // send it: their errors roll it back, on every node.
    let body = r#"{"version": 2, "strategy": {"type": "canary", "percent": 50, "interval": "20s"}, "alarm": {"error_rate": 0.2, "min_invocations": 10}}"#;
    let (status, started) = admin(
        fleet.node(0),
        Method::POST,
        "/functions/f/aliases/live/deployments",
        body,
        true,
    )
    .await;
    assert_eq!(status, 201, "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut failures = 0;
    loop {
        let (_, status) = admin(
            fleet.node(2),
            Method::GET,
            &format!("/functions/f/aliases/live/deployments/{id}"),
            "",
            false,
        )
        .await;
        // Node 2 may not have seen the deployment yet (no state): it is not over.
        if !(status["state"].is_null() || status["state"] == "InProgress") {
            break;
        }
        for viewer in 0..10 {
            let node = fleet.node(1 + viewer % 2);
            if served(node, &format!("viewer {viewer}")).await.starts_with("status") {
                failures += 1;
            }
        }
        assert!(Instant::now() < deadline, "the alarm never fired: {status}");
    }
    assert!(failures > 0);
    let ended = wait_deployment(fleet.node(1), &id, Duration::from_secs(1)).await;
    assert_eq!(ended["state"], "RolledBack", "{ended}");
    assert!(ended["errors"].as_u64().unwrap() >= 2, "{ended}");
    until_all_serve(&fleet, "one", Duration::from_secs(1)).await;
    assert_eq!(share_serving(&fleet, "one", 60).await, 1.0, "rolled back on every node");

    // A canary's weight holds across the fleet: 30% of many viewers over all three nodes.
    let body = r#"{"version": 3, "strategy": {"type": "canary", "percent": 30, "interval": "6s"}}"#;
    let (status, started) = admin(
        fleet.node(0),
        Method::POST,
        "/functions/f/aliases/live/deployments",
        body,
        true,
    )
    .await;
    assert_eq!(status, 201, "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let share = share_serving(&fleet, "three", 600).await;
    assert!((0.24..=0.36).contains(&share), "version 3 has {share} of the viewers");
    // The same viewer gets the same version from any node.
    for viewer in 0..30 {
        let name = format!("viewer {viewer}");
        let mut seen = Vec::new();
        for edge in fleet.running() {
            seen.push(served(edge, &name).await);
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "viewer {viewer}: {seen:?}");
    }

    // The node driving it dies; another carries it on from its step and finishes it.
    fleet.kill(0);
    let ended = wait_deployment(fleet.node(1), &id, Duration::from_secs(20)).await;
    assert_eq!(ended["state"], "Succeeded", "{ended}");
    assert_ne!(ended["driver"], "edge-0", "{ended}");
    let events: Vec<&str> = ended["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["started", "shifted", "completed"], "{ended}");
    until_all_serve(&fleet, "three", Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_through_one_node_empties_every_nodes_cache() {
    let Some(fleet) = Fleet::of_three(&[&answering("one")]).await else {
        return;
    };
    let fetch_all = || async {
        for edge in fleet.running() {
            for path in ["/cached/a", "/cached/b", "/cached/keep"] {
                let response = client().get(edge.url(path)).send().await.unwrap();
                assert_eq!(response.status(), 200);
            }
        }
    };
    fetch_all().await;
    let cold = fleet.origin.total();
    fetch_all().await;
    assert_eq!(fleet.origin.total(), cold, "all nine are cached");

    let (status, answer) = admin(
        fleet.node(1),
        Method::POST,
        "/cache/purge",
        r#"{"paths": ["/cached/a", "/cached/b"], "wait": "5s"}"#,
        true,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "Completed", "{answer}");
    assert_eq!(answer["nodes"]["applied"], 3, "{answer}");
    assert_eq!(answer["purged"], 6, "{answer}");
    fetch_all().await;
    assert_eq!(
        fleet.origin.total(),
        cold + 6,
        "each node asked the origin again for the purged two"
    );

    let id = answer["id"].as_str().unwrap();
    let (status, report) = admin(fleet.node(2), Method::GET, &format!("/cache/purges/{id}"), "", false).await;
    assert_eq!(status, 200);
    let applied: Vec<&String> = report["applied"].as_object().unwrap().keys().collect();
    assert_eq!(applied, ["edge-0", "edge-1", "edge-2"], "{report}");
    let (status, _) = admin(fleet.node(2), Method::GET, "/cache/purges/p-none", "", false).await;
    assert_eq!(status, 404);

    // A node stopped with SIGTERM leaves the fleet as it exits, not when its lease runs out
    // (5 s): the next purge is complete without it at once.
    let mut fleet = fleet;
    let stopping = fleet.nodes[2].as_mut().unwrap();
    stopping.signal(libc::SIGTERM);
    assert_eq!(stopping.wait_exit(Duration::from_secs(15)), Some(0));
    fleet.nodes[2] = None;
    let (status, answer) = admin(
        fleet.node(0),
        Method::POST,
        "/cache/purge",
        r#"{"paths": ["/cached/keep"], "wait": "2s"}"#,
        true,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "Completed", "{answer}");
    let applied: Vec<&String> = answer["applied"].as_object().unwrap().keys().collect();
    assert_eq!(applied, ["edge-0", "edge-1"], "{answer}");
}

async fn health(edge: &Edgehook) -> serde_json::Value {
    let (status, body) = admin(edge, Method::GET, "/healthz", "", false).await;
    assert_eq!(status, 200, "a node without etcd still serves: {body}");
    body
}

/// Waits until node `edge`'s `/healthz` says `status`.
async fn until_health(edge: &Edgehook, status: &str, within: Duration) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let body = health(edge).await;
        if body["status"] == status {
            return body;
        }
        assert!(Instant::now() < deadline, "health never became {status}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_ride_out_etcd_members_and_all_of_etcd_going_away() {
    // Nodes 0 and 1 know all three members; node 2 reaches member 2 through a gate the test
    // closes, as a network partition would cut it off while the others carry on.
    let versions = [answering("one"), answering("two"), answering("three")];
    let versions: Vec<&str> = versions.iter().map(String::as_str).collect();
    let Some(etcd) = EtcdCluster::start(3).await else {
        return;
    };
    let gate = TcpGate::start(etcd.endpoint(2).trim_start_matches("http://").parse().unwrap()).await;
    let all = etcd.endpoints();
    let gated = vec![format!("http://{}", gate.address)];
    let mut fleet = Fleet::start(etcd, &versions, &[all.clone(), all, gated]).await;
    until_all_serve(&fleet, "one", Duration::from_secs(5)).await;

    // One member of three killed: nothing to notice.
    fleet.etcd.kill(0);
    for index in [0, 1] {
        let (status, body) = admin(fleet.node(index), Method::POST, "/functions/f/versions", "", true).await;
        assert_eq!(status, 201, "node {index} publishes with a member gone: {body}");
        assert_eq!(health(fleet.node(index)).await["status"], "ok");
    }
    fleet.etcd.restart(0).await;

    // Node 2 cut off: it says so, serves its last state and refuses changes.
    gate.close();
    let degraded = until_health(fleet.node(2), "degraded", Duration::from_secs(10)).await;
    assert!(degraded["reason"].as_str().unwrap().contains("etcd"), "{degraded}");
    assert!(fleet
        .node(2)
        .metrics_page()
        .await
        .contains("edgehook_store_connected 0"));
    let (status, body) = admin(fleet.node(2), Method::POST, "/functions/f/versions", "", true).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains("unavailable"), "{body}");
    // Meanwhile the others move the alias, and etcd compacts its history past node 2's
    // revision.
    let (status, body) = admin(
        fleet.node(0),
        Method::PUT,
        "/functions/f/aliases/live",
        r#"{"version": 2}"#,
        true,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for index in 0..3 {
        let expected = if index == 2 { "one" } else { "two" };
        assert_eq!(served(fleet.node(index), "a").await, expected, "node {index}");
    }
    let mut etcd = fleet.etcd.client(0).await;
    let revision = etcd.get("any", None).await.unwrap().header().unwrap().revision();
    etcd.compact(revision, Some(etcd_client::CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    // Node 2 back in touch: it reads the state again and catches up.
    gate.open();
    until_health(fleet.node(2), "ok", Duration::from_secs(15)).await;
    until_all_serve(&fleet, "two", Duration::from_secs(2)).await;
    fleet.node(2).wait_log("reading the whole state again").await;
    assert!(fleet
        .node(2)
        .metrics_page()
        .await
        .contains("edgehook_store_connected 1"));

    // All of etcd gone: every node serves on, and refuses changes.
    for member in 0..3 {
        fleet.etcd.kill(member);
    }
    for index in 0..3 {
        until_health(fleet.node(index), "degraded", Duration::from_secs(10)).await;
        let (status, _) = admin(
            fleet.node(index),
            Method::PUT,
            "/functions/f/aliases/live",
            r#"{"version": 3}"#,
            true,
        )
        .await;
        assert_eq!(status, 503);
    }
    until_all_serve(&fleet, "two", Duration::from_secs(1)).await;
    // etcd back: the fleet takes changes again.
    for member in 0..3 {
        fleet.etcd.spawn_again(member);
    }
    fleet.etcd.wait_all().await;
    for index in 0..3 {
        until_health(fleet.node(index), "ok", Duration::from_secs(15)).await;
    }
    let (status, body) = admin(
        fleet.node(1),
        Method::PUT,
        "/functions/f/aliases/live",
        r#"{"version": 3}"#,
        true,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    until_all_serve(&fleet, "three", Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_across_the_fleet_during_a_deployment_and_a_purge() {
    let versions = [answering("one"), answering("two"), answering("three")];
    let versions: Vec<&str> = versions.iter().map(String::as_str).collect();
    let Some(fleet) = Fleet::of_three(&versions).await else {
        return;
    };
    let urls: Vec<(String, String)> = fleet
        .running()
        .map(|edge| (edge.url("/"), edge.url("/cached/x")))
        .collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for worker in 0..6 {
        let (urls, stop) = (urls.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let (mut sent, mut failed) = (0u64, Vec::new());
            let client = client();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (function, cached) = &urls[(worker + sent as usize) % urls.len()];
                let url = if sent % 2 == 0 { function } else { cached };
                let outcome = client
                    .get(url)
                    .header("user-agent", format!("viewer {worker}-{sent}"))
                    .send()
                    .await;
                match outcome {
                    Ok(response) if response.status() == 200 => {}
                    Ok(response) => failed.push(format!("{url}: {}", response.status())),
                    Err(error) => failed.push(format!("{url}: {error}")),
                }
                sent += 1;
            }
            (sent, failed)
        }));
    }
    let body = r#"{"version": 2, "strategy": {"type": "linear", "percent": 50, "interval": "500ms"}, "alarm": {"error_rate": 0.01}}"#;
    let (status, started) = admin(
        fleet.node(0),
        Method::POST,
        "/functions/f/aliases/live/deployments",
        body,
        true,
    )
    .await;
    assert_eq!(status, 201, "{started}");
    let ended = wait_deployment(fleet.node(2), started["id"].as_str().unwrap(), Duration::from_secs(10)).await;
    assert_eq!(ended["state"], "Succeeded", "{ended}");
    let (status, purge) = admin(
        fleet.node(1),
        Method::POST,
        "/cache/purge",
        r#"{"paths": ["/cached/*"]}"#,
        true,
    )
    .await;
    assert_eq!(
        (status, &purge["status"]),
        (200, &serde_json::json!("Completed")),
        "{purge}"
    );
    let body = r#"{"version": 3, "strategy": "AllAtOnce"}"#;
    let (status, started) = admin(
        fleet.node(2),
        Method::POST,
        "/functions/f/aliases/live/deployments",
        body,
        true,
    )
    .await;
    assert_eq!(status, 201, "{started}");
    let ended = wait_deployment(fleet.node(0), started["id"].as_str().unwrap(), Duration::from_secs(10)).await;
    assert_eq!(ended["state"], "Succeeded", "{ended}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut sent, mut failed) = (0, Vec::new());
    for worker in load {
        let (worker_sent, worker_failed) = worker.await.unwrap();
        sent += worker_sent;
        failed.extend(worker_failed);
    }
    assert!(sent > 200, "only {sent} requests were made");
    assert!(
        failed.is_empty(),
        "{} of {sent} requests failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(10)]
    );
    until_all_serve(&fleet, "three", Duration::from_secs(1)).await;
}

/// A store of node `name` on `endpoints` under `prefix`, with its own state directory.
async fn store_of(
    settings: &::edgehook::config::EtcdSettings,
    name: &str,
) -> Result<(Arc<EtcdStore>, tempfile::TempDir), ::edgehook::deploy::store::StoreError> {
    let dir = tempfile::tempdir().unwrap();
    let me = NodeRecord {
        name: name.into(),
        ..NodeRecord::default()
    };
    EtcdStore::connect(settings, dir.path(), me)
        .await
        .map(|store| (store, dir))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_larger_than_an_etcd_value_reaches_the_other_nodes_whole() {
    let Some(etcd) = EtcdCluster::start(1).await else {
        return;
    };
    let settings = etcd_settings(&etcd.endpoints(), "/edgehook-chunks/");
    let (writer, _a) = store_of(&settings, "a").await.unwrap();
    let (reader, _b) = store_of(&settings, "b").await.unwrap();
    let mut changes = reader.subscribe();
    // 3 MiB that do not compress: four chunks under etcd's 1.5 MiB request limit.
    let noise: Vec<u8> = (0..3u32 << 20).map(|_| rand::random::<u8>()).collect();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("index.mjs"), answering("big")).unwrap();
    std::fs::create_dir(files.path().join("data")).unwrap();
    std::fs::write(files.path().join("data/noise.bin"), &noise).unwrap();
    let package = Package::from_dir(files.path(), ::edgehook::package::Limits::ORIGIN).unwrap();
    assert!(package.zipped_size() > 3 << 20);
    let big = FunctionCode {
        package: Arc::new(package),
        ..code("unused")
    };
    writer.put_latest("f", &big).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let change = tokio::time::timeout_at(deadline.into(), changes.recv())
            .await
            .expect("the change arrives");
        if change.unwrap() == ::edgehook::deploy::store::Change::Latest("f".into()) {
            break;
        }
    }
    let seen = reader.latest("f").unwrap().expect("the reader has it");
    assert!(seen.same_as(&big));
    assert_eq!(seen.package.file("data/noise.bin"), big.package.file("data/noise.bin"));
    writer.leave().await;
    reader.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_reach_etcd_over_tls_with_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed();
    let (cert_path, key_path) = (dir.path().join("etcd.pem"), dir.path().join("etcd.key"));
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let Some(etcd) = EtcdCluster::start_tls(cert_path.clone(), key_path).await else {
        return;
    };
    // Authentication on, with a root user.
    let tls = etcd_client::TlsOptions::new().ca_certificate(etcd_client::Certificate::from_pem(cert.as_bytes()));
    let mut admin_client =
        etcd_client::Client::connect(etcd.endpoints(), Some(etcd_client::ConnectOptions::new().with_tls(tls)))
            .await
            .unwrap();
    admin_client.user_add("root", "s3cret", None).await.unwrap();
    admin_client.user_grant_role("root", "root").await.unwrap();
    admin_client.auth_enable().await.unwrap();

    let mut settings = etcd_settings(&etcd.endpoints(), "/edgehook-tls/");
    settings.ca_file = Some(cert_path);
    settings.user = Some(("root".into(), "wrong".into()));
    let refused = store_of(&settings, "a")
        .await
        .err()
        .expect("a wrong password is refused");
    assert!(refused.to_string().contains("authentication failed"), "{refused}");
    settings.user = Some(("root".into(), "s3cret".into()));
    let (store, _dir) = store_of(&settings, "a").await.unwrap();
    assert_eq!(store.publish("f", &code(&answering("one")), 1).await.unwrap(), 1);
    assert_eq!(store.version_list("f").unwrap().len(), 1);
    store.leave().await;
}
