//! The admin API: `GET /healthz`, `GET /metrics`, `GET /fleet`, `POST /cache/purge` and
//! `GET /cache/purges/{id}`, `POST /reload`, and `/functions/...` (changes need the bearer
//! token).

use crate::cache::CacheLayer;
use crate::config::pattern::PathPattern;
use crate::config::AdminToken;
use crate::deploy::rollout::DeploymentRequest;
use crate::deploy::store::{Alias, State, StoreError, StoreHealth};
use crate::deploy::DeployError;
use crate::deploy::Upload;
use crate::local_http::{Handler, Reply};
use crate::metrics::Metrics;
use crate::package::Package;
use crate::proxy::NodeState;
use crate::reload::Reloader;
use async_trait::async_trait;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

const MAX_BODY: usize = 1 << 20;
const MAX_PURGE_PATHS: usize = 3000;

pub struct AdminApi {
    pub token: AdminToken,
    pub metrics: Arc<Metrics>,
    pub node: Arc<NodeState>,
    pub reloader: Arc<Reloader>,
    /// The last minutes, second by second, for the console.
    pub history: Arc<super::history::History>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    paths: Vec<String>,
    /// How long to wait for the nodes to apply it: `"2s"`, `"500ms"` or seconds.
    #[serde(default)]
    wait: Option<serde_json::Value>,
}

/// How long a purge's answer waits for the fleet by default, and at most.
const PURGE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
const MAX_PURGE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

fn purge_wait(wait: Option<&serde_json::Value>) -> Result<std::time::Duration, String> {
    let wait = match wait {
        None => PURGE_WAIT,
        Some(serde_json::Value::Number(seconds)) => seconds
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| std::time::Duration::from_secs_f64(s.min(MAX_PURGE_WAIT.as_secs_f64())))
            .ok_or("`wait` must be a duration (\"2s\") or seconds")?,
        Some(serde_json::Value::String(text)) => crate::config::units::parse_duration(text)?,
        Some(_) => return Err("`wait` must be a duration (\"2s\") or seconds".into()),
    };
    Ok(wait.min(MAX_PURGE_WAIT))
}

/// The distribution named by `/distributions/{name}/cache/purge`.
fn distribution_purge(path: &str) -> Option<&str> {
    path.strip_prefix("/distributions/")?
        .strip_suffix("/cache/purge")
        .filter(|name| !name.is_empty() && !name.contains('/'))
}

/// A purge's answer: the purge, who applied it (and how many objects), who has not yet.
fn purge_answer(status: &crate::deploy::store::PurgeStatus) -> serde_json::Value {
    let purged: usize = status.applied.values().map(|a| a.purged).sum();
    serde_json::json!({
        "id": status.purge.id,
        "distribution": status.purge.distribution,
        "paths": status.purge.paths,
        "status": if status.pending.is_empty() { "Completed" } else { "InProgress" },
        "purged": purged,
        "nodes": { "applied": status.applied.len(), "pending": status.pending.len() },
        "applied": status.applied,
        "pending": status.pending,
        "requested_ms": status.purge.requested_ms,
        "requested_by": status.purge.requested_by,
    })
}

/// The value of `name` in the request's query string.
fn query_value(session: &ServerSession, name: &str) -> Option<String> {
    let query = session.req_header().uri.query()?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| value.to_string())
    })
}

fn json(status: u16, value: serde_json::Value) -> Reply {
    Reply::bytes(status, "application/json", format!("{value}\n"))
}

fn json_error(status: u16, message: &str) -> Reply {
    json(status, serde_json::json!({ "error": message }))
}

/// Compares in time independent of where the inputs first differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

impl AdminApi {
    fn cache(&self) -> &CacheLayer {
        &self.node.cache
    }

    /// None when the call carries the admin token; otherwise the refusal.
    fn refuse_unauthorized(&self, session: &ServerSession) -> Option<Reply> {
        let expected = match &self.token {
            AdminToken::Value(token) => token,
            AdminToken::Unset => {
                return Some(json_error(
                    403,
                    "no admin token is configured (server.admin_token); mutating calls are disabled",
                ))
            }
            AdminToken::MissingEnv(name) => {
                return Some(json_error(
                    403,
                    &format!("the admin token variable {name} is not set; mutating calls are disabled"),
                ))
            }
        };
        let given = session
            .get_header(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match given {
            Some(given) if same_secret(given.as_bytes(), expected.as_bytes()) => None,
            _ => {
                let mut reply = json_error(401, "missing or wrong `Authorization: Bearer <admin token>`");
                let _ = reply.header.insert_header(http::header::WWW_AUTHENTICATE, "Bearer");
                Some(reply)
            }
        }
    }

    async fn read_body(session: &mut ServerSession) -> Result<Vec<u8>, Reply> {
        Self::read_body_up_to(session, MAX_BODY).await
    }

    async fn read_body_up_to(session: &mut ServerSession, limit: usize) -> Result<Vec<u8>, Reply> {
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > limit {
                        return Err(json_error(413, &format!("request body larger than {limit} bytes")));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(e) => return Err(json_error(400, &format!("cannot read the request body: {e}"))),
            }
        }
    }

    /// `POST /cache/purge` (the implicit distribution's objects) and
    /// `POST /distributions/{name}/cache/purge`.
    async fn purge(&self, session: &mut ServerSession, distribution: &str) -> Reply {
        if let Some(refusal) = self.refuse_unauthorized(session) {
            return refusal;
        }
        if self.node.config.load().distributions.get(distribution).is_none() {
            return match distribution {
                "" => json_error(
                    404,
                    "there are no top-level [[behaviors]] to purge: name the distribution, POST /distributions/NAME/cache/purge",
                ),
                name => json_error(404, &format!("no distribution `{name}`")),
            };
        }
        let body = match Self::read_body(session).await {
            Ok(body) => body,
            Err(reply) => return reply,
        };
        let request: PurgeRequest = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return json_error(400, &format!("expected {{\"paths\": [\"/path\", \"/prefix/*\"]}}: {e}")),
        };
        if request.paths.is_empty() || request.paths.len() > MAX_PURGE_PATHS {
            return json_error(400, &format!("`paths` must hold between 1 and {MAX_PURGE_PATHS} paths"));
        }
        let mut patterns = Vec::with_capacity(request.paths.len());
        for path in &request.paths {
            if !path.starts_with('/') {
                return json_error(400, &format!("path `{path}` must start with `/`"));
            }
            match PathPattern::new(path) {
                Ok(p) => patterns.push(p),
                Err(e) => return json_error(400, &e),
            }
        }
        let wait = match purge_wait(request.wait.as_ref()) {
            Ok(wait) => wait,
            Err(message) => return json_error(400, &message),
        };
        drop(patterns);
        let store = self.node.store.clone();
        let purge = match store.request_purge(distribution.to_string(), request.paths).await {
            Ok(purge) => purge,
            Err(error) => return store_error_reply(&error),
        };
        tracing::info!(target: "edgehook::admin", id = purge.id, distribution, paths = ?purge.paths, "cache purge requested");
        // Every node (this one too) applies it from the store; the answer waits for them, up
        // to `wait`.
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let status = store.purge_status(&purge.id);
            let done = status
                .as_ref()
                .is_some_and(|s| s.pending.is_empty() && !s.applied.is_empty());
            if done || tokio::time::Instant::now() >= deadline {
                return match status {
                    Some(status) => json(200, purge_answer(&status)),
                    None => json(
                        200,
                        serde_json::json!({ "id": purge.id, "paths": purge.paths, "status": "InProgress", "purged": 0 }),
                    ),
                };
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// `GET /cache/purges/{id}`: a purge's status per node.
    fn purge_status(&self, id: &str) -> Reply {
        match self.node.store.purge_status(id) {
            Some(status) => json(200, purge_answer(&status)),
            None => json_error(
                404,
                "no such purge (etcd keeps purges for a day, a single node its last 200)",
            ),
        }
    }

    /// `/functions/{name}`, `/functions/{name}/code`, `/functions/{name}/versions`,
    /// `/functions/{name}/aliases/{alias}`.
    async fn functions(&self, session: &mut ServerSession, method: &str, path: &str) -> Reply {
        let Some(deploy) = self.node.deploy.clone() else {
            return json_error(404, "no functions are configured");
        };
        let parts: Vec<&str> = path.trim_start_matches("/functions/").split('/').collect();
        let mutating = method != "GET" && method != "HEAD";
        if mutating {
            if let Some(refusal) = self.refuse_unauthorized(session) {
                return refusal;
            }
        }
        let outcome = match (method, parts.as_slice()) {
            ("GET" | "HEAD", [name]) => deploy.describe(name).map(|v| json(200, v)),
            ("PUT", [name, "code"]) => {
                let limits = self.node.config.load().package_limits(name);
                let body = match Self::read_body_up_to(session, limits.zipped as usize).await {
                    Ok(body) => body,
                    Err(reply) => return reply,
                };
                let header = session.req_header();
                let zipped = header
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|t| t.starts_with("application/zip") || t.starts_with("application/x-zip"))
                    || body.starts_with(b"PK\x03\x04");
                let query: std::collections::HashMap<String, String> = header
                    .uri
                    .query()
                    .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                    .unwrap_or_default();
                let handler = query.get("handler").cloned();
                let upload = if zipped {
                    match Package::from_zip(&body, limits) {
                        Ok(package) => Upload::Package(package),
                        Err(e) => return json_error(400, &format!("the zip is refused, nothing was stored: {e}")),
                    }
                } else {
                    let Ok(source) = String::from_utf8(body) else {
                        return json_error(
                            400,
                            "the code must be UTF-8 JavaScript or a zip (Content-Type: application/zip)",
                        );
                    };
                    Upload::Source {
                        source,
                        file_name: query.get("file").cloned(),
                    }
                };
                // Checking the code loads runs on a blocking thread: health checks and metrics
                // answer meanwhile.
                deploy
                    .put_code(name, upload, handler.as_deref(), limits)
                    .await
                    .map(|()| json(200, serde_json::json!({ "function": name, "updated": "$LATEST" })))
            }
            ("POST", [name, "versions"]) => deploy
                .publish(name)
                .await
                .map(|version| json(201, serde_json::json!({ "version": version }))),
            ("PUT", [name, "aliases", alias]) => {
                let body = match Self::read_body(session).await {
                    Ok(body) => body,
                    Err(reply) => return reply,
                };
                match serde_json::from_slice::<Alias>(&body) {
                    Ok(value) => deploy.put_alias(name, alias, value).await.map(|()| {
                        json(
                            200,
                            serde_json::json!({ "function": name, "alias": alias, "routing": value }),
                        )
                    }),
                    Err(e) => Err(DeployError::Invalid(format!(
                        "expected {{\"version\": N, \"additional_version\": {{\"version\": M, \"weight\": 0.1}}}}: {e}"
                    ))),
                }
            }
            ("POST", [name, "aliases", alias, "deployments"]) => {
                let body = match Self::read_body(session).await {
                    Ok(body) => body,
                    Err(reply) => return reply,
                };
                match serde_json::from_slice::<DeploymentRequest>(&body) {
                    Ok(request) => deploy
                        .start_deployment(name, alias, request)
                        .await
                        .map(|status| json(201, serde_json::to_value(status).unwrap_or_default())),
                    Err(e) => Err(DeployError::Invalid(format!(
                        "expected {{\"version\": N, \"strategy\": \"AllAtOnce\" | \"Canary10Percent5Minutes\" | ... | {{\"type\": \"canary\", \"percent\": 10, \"interval\": \"30s\"}}, \"alarm\": {{\"error_rate\": 0.05, \"min_invocations\": 20}}, \"pre_traffic\": \"fn\"}}: {e}"
                    ))),
                }
            }
            ("GET" | "HEAD", [name, "aliases", _alias, "deployments", id]) => match deploy.deployment(id) {
                Some(status) if status.function == *name => {
                    Ok(json(200, serde_json::to_value(status).unwrap_or_default()))
                }
                _ => return json_error(404, "no such deployment"),
            },
            ("POST", [name, "aliases", _alias, "deployments", id, "stop"]) => match deploy.deployment(id) {
                Some(status) if status.function == *name => deploy
                    .stop_deployment(name, id)
                    .await
                    .map(|status| json(200, serde_json::to_value(status).unwrap_or_default())),
                _ => return json_error(404, "no such deployment"),
            },
            _ => return json_error(404, "no such admin endpoint"),
        };
        match outcome {
            Ok(reply) => {
                if mutating {
                    tracing::info!(target: "edgehook::admin", method, path, "function change");
                }
                reply
            }
            Err(DeployError::Store(error)) => store_error_reply(&error),
            Err(error) => {
                use crate::deploy::DeployError::*;
                let status = match &error {
                    UnknownFunction(_) | UnknownAlias(..) => 404,
                    Invalid(_) | Load(_) => 400,
                    Conflict(_) => 409,
                    Store(_) => 500,
                };
                json_error(status, &error.to_string())
            }
        }
    }

    /// 200 `ok`; 200 `degraded` with the reason while the node serves its last state without
    /// the state store (it still serves: a load balancer keeps it); or 503 `unhealthy` while
    /// the function runtime has lost capacity it cannot get back (see
    /// `ThreadHealth::problem`): an orchestrator then replaces the process instead of letting
    /// it serve less and less.
    fn health(&self) -> Reply {
        let problem = self.node.functions.as_ref().and_then(|pool| pool.health().problem());
        if let Some(reason) = problem {
            return json(503, serde_json::json!({ "status": "unhealthy", "reason": reason }));
        }
        match self.node.store.health() {
            StoreHealth::Connected => json(200, serde_json::json!({ "status": "ok" })),
            StoreHealth::Degraded(reason) => json(200, serde_json::json!({ "status": "degraded", "reason": reason })),
        }
    }

    fn metrics_page(&self) -> Reply {
        let store = &self.node.store;
        self.metrics
            .store_connected
            .set(i64::from(store.health() == StoreHealth::Connected));
        self.metrics.store_revision.set(store.revision() as i64);
        self.metrics.fleet_nodes.set(store.nodes().len() as i64);
        let storage = self.cache().storage;
        for (tier, bytes, objects) in storage.usage() {
            self.metrics.cache_bytes.with_label_values(&[tier]).set(bytes as i64);
            self.metrics
                .cache_objects
                .with_label_values(&[tier])
                .set(objects as i64);
        }
        if let Some(disk) = storage.disk() {
            use std::sync::atomic::Ordering::Relaxed;
            for (counter, total) in [
                (&self.metrics.cache_disk_hits, &disk.stats.hits),
                (&self.metrics.cache_disk_errors, &disk.stats.errors),
                (&self.metrics.cache_disk_refused, &disk.stats.refused),
            ] {
                counter.inc_by(total.load(Relaxed).saturating_sub(counter.get()));
            }
        }
        if let Some(pool) = &self.node.functions {
            let health = pool.health();
            let replaced = self.metrics.js_threads_replaced.get();
            self.metrics
                .js_threads_replaced
                .inc_by(health.replaced.saturating_sub(replaced));
            let crashed = self.metrics.js_threads_crashed.get();
            self.metrics
                .js_threads_crashed
                .inc_by(health.crashed.saturating_sub(crashed));
            self.metrics
                .js_threads_stuck
                .set((health.stuck + health.unreplaced) as i64);
            self.metrics.js_instances.set(pool.instances() as i64);
        }
        // Every alias a deployment moved shows its new version's share: 0 once none is running.
        let mut weights = std::collections::BTreeMap::new();
        for deployment in store.deployments() {
            let weight = weights.entry((deployment.function, deployment.alias)).or_insert(0.0);
            if deployment.state == State::InProgress {
                *weight = deployment.weight;
            }
        }
        for ((function, alias), weight) in weights {
            self.metrics
                .deployment_weight
                .with_label_values(&[&function, &alias])
                .set(weight);
        }
        Reply::bytes(200, "text/plain; version=0.0.4; charset=utf-8", self.metrics.render())
    }
}

/// A state store failure as an answer: 503 while the store is unreachable (the node serves
/// on; the change can be made again once it is back).
fn store_error_reply(error: &StoreError) -> Reply {
    let status = match error {
        StoreError::NoSuchVersion { .. } => 404,
        StoreError::Invalid(_) => 400,
        StoreError::Conflict(_) | StoreError::NotDriver(_) => 409,
        StoreError::Unavailable(_) => 503,
        StoreError::Io { .. } | StoreError::Damaged { .. } | StoreError::DamagedValue { .. } => 500,
    };
    json_error(status, &error.to_string())
}

/// Runs `work` on tokio's blocking pool; a panic in it becomes an error message.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("the work stopped: {e}"))
}

#[async_trait]
impl Handler for AdminApi {
    async fn handle(&self, session: &mut ServerSession) -> Reply {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_string();
        let reply = match (method.as_str(), path.as_str()) {
            ("GET" | "HEAD", "/healthz") => self.health(),
            ("GET" | "HEAD", "/ui") => {
                let mut reply = Reply::text(301, "the console is at /ui/\n");
                let _ = reply.header.insert_header(http::header::LOCATION, "/ui/");
                reply
            }
            ("GET" | "HEAD", p) if p.starts_with("/ui/") => {
                super::console::asset(p).unwrap_or_else(|| json_error(404, "no such console page"))
            }
            ("GET" | "HEAD", "/auth") => self
                .refuse_unauthorized(session)
                .unwrap_or_else(|| Reply::bytes(204, "text/plain", "")),
            ("GET" | "HEAD", "/console/state") => match self.refuse_unauthorized(session) {
                Some(refusal) => refusal,
                None => {
                    let seconds = query_value(session, "seconds")
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(300);
                    json(200, super::console::state(&self.node, &self.history, seconds))
                }
            },
            ("GET" | "HEAD", "/metrics") => self.metrics_page(),
            ("POST", "/cache/purge") => self.purge(session, "").await,
            ("POST", p) if distribution_purge(p).is_some() => {
                let name = distribution_purge(p).map(str::to_string);
                self.purge(session, name.as_deref().unwrap_or_default()).await
            }
            (_, p) if distribution_purge(p).is_some() => json_error(405, "method not allowed"),
            ("GET" | "HEAD", "/fleet") => json(200, super::fleet::fleet(self.node.store.as_ref())),
            ("GET" | "HEAD", p) if p.starts_with("/cache/purges/") => self.purge_status(&p["/cache/purges/".len()..]),
            ("POST", "/reload") => match self.refuse_unauthorized(session) {
                Some(refusal) => refusal,
                // Off this listener's thread too: a reload loads every changed function.
                None => match blocking({
                    let reloader = self.reloader.clone();
                    move || reloader.reload_and_log("POST /reload")
                })
                .await
                .unwrap_or_else(Err)
                {
                    Ok(report) => json(200, serde_json::to_value(report).unwrap_or_default()),
                    Err(message) => json_error(400, &message),
                },
            },
            (_, "/healthz" | "/metrics" | "/cache/purge" | "/reload" | "/fleet") => {
                json_error(405, "method not allowed")
            }
            (_, p) if p.starts_with("/functions/") => self.functions(session, method.as_str(), &path).await,
            _ => json_error(404, "no such admin endpoint"),
        };
        // Drain what is left of a body we did not read, so keep-alive stays in sync.
        let _ = session.drain_request_body().await;
        reply
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn secret_comparison() {
        assert!(super::same_secret(b"abc", b"abc"));
        assert!(!super::same_secret(b"abc", b"abd"));
        assert!(!super::same_secret(b"abc", b"abcd"));
    }
}
