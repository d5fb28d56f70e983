//! Safe deployments: function versions, aliases and deployments kept in a state store (`store`:
//! a node's state directory, or etcd shared by a fleet), the sticky weighted choice between an
//! alias's versions (`route`), and `Deployments`, which keeps the JS pool in step with the
//! store: uploaded `$LATEST` code, published versions and aliases take effect without a
//! restart, on the node that made the change and on every node following the same store.

pub mod rollout;
pub mod route;
pub mod store;
pub mod strategy;

use crate::config::Config;
use crate::config::Function;
use crate::js::{FunctionSpec, JsPool, PoolOptions};
use crate::package::{Limits, Package};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use store::{Alias, Change, Counts, FunctionCode, StateStore, StoreError};

/// New `$LATEST` code: a package (a zip), or one source file.
pub enum Upload {
    Package(Package),
    Source { source: String, file_name: Option<String> },
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("no function named `{0}`")]
    UnknownFunction(String),
    #[error("function `{0}` has no alias `{1}`")]
    UnknownAlias(String, String),
    #[error("{0}")]
    Invalid(String),
    #[error("the code does not load: {0}")]
    Load(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Deployments {
    store: Arc<dyn StateStore>,
    pool: Arc<JsPool>,
    /// The runtime deployments are driven on and changes followed on.
    control: tokio::runtime::Handle,
    /// The functions of the config, whose settings uploaded code keeps.
    configured: RwLock<BTreeMap<String, Function>>,
    aliases: RwLock<HashMap<String, BTreeMap<String, Alias>>>,
    /// Invocations and failures per pool key (`fn:N`), which deployment alarms watch.
    stats: Mutex<HashMap<String, Counts>>,
    /// The stored `$LATEST` code running now, per function.
    running_latest: Mutex<HashMap<String, FunctionCode>>,
    /// The deployments this process drives.
    driving: Mutex<HashSet<String>>,
    /// Deployments this process drives that an operator asked to stop.
    stopping: Mutex<HashSet<String>>,
    /// Held while `$LATEST` code reaches the pool, so that the pool always runs what the store
    /// holds (uploaded code) or, when it holds none, the config's.
    code_changes: Mutex<()>,
    /// Where the deployments this process drives are counted as they end.
    metrics: Arc<crate::metrics::Metrics>,
}

/// A version's (or `$LATEST`'s) code and settings as stored, with what the config says of the
/// function now (`configured`): its concurrency, and its egress, which is the operator's policy
/// for every version rather than part of what a version freezes.
fn spec_of(name: &str, key: &str, version: &str, code: &FunctionCode, configured: Option<&Function>) -> FunctionSpec {
    let mut spec = FunctionSpec::packaged(name, code.code_tree(), &code.handler);
    spec.key = key.into();
    spec.version = version.into();
    spec.timeout = Duration::from_millis(code.timeout_ms);
    spec.memory = code.memory;
    spec.env = code.env.clone();
    if let Some(function) = configured {
        spec.concurrency = function.concurrency;
        spec.egress = Arc::new(crate::js::Egress::new(function.egress.clone()));
    }
    spec
}

fn code_of(function: &Function) -> FunctionCode {
    FunctionCode {
        package: function.package.clone(),
        layers: function.layers.iter().map(|l| l.package.clone()).collect(),
        handler: function.handler.clone(),
        timeout_ms: function.timeout.as_millis() as u64,
        memory: function.memory,
        env: function.env.clone(),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Deployments {
    /// Brings the pool in line with the store: uploaded `$LATEST` code replaces the config's,
    /// and every version an alias or a behavior names is loaded warm. Then follows the store
    /// on `control`: its changes, and deployments left without a driver.
    pub fn start(
        config: &Config,
        pool: Arc<JsPool>,
        store: Arc<dyn StateStore>,
        control: tokio::runtime::Handle,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Arc<Deployments>, DeployError> {
        let changes = store.subscribe();
        let deployments = Arc::new(Deployments {
            store,
            pool,
            control: control.clone(),
            configured: RwLock::new(config.functions.clone()),
            aliases: RwLock::new(HashMap::new()),
            stats: Default::default(),
            running_latest: Default::default(),
            driving: Default::default(),
            stopping: Default::default(),
            code_changes: Mutex::new(()),
            metrics,
        });
        for name in config.functions.keys() {
            if let Some(code) = deployments.store.latest(name)? {
                deployments.register_latest(name, &code);
            }
            let aliases = deployments.store.aliases(name)?;
            for alias in aliases.values() {
                deployments.ensure_version(name, alias.version)?;
                if let Some(extra) = alias.additional_version {
                    deployments.ensure_version(name, extra.version)?;
                }
            }
            deployments.aliases.write().insert(name.clone(), aliases);
        }
        for behavior in config.behaviors() {
            for association in [
                &behavior.hooks.viewer_request,
                &behavior.hooks.origin_request,
                &behavior.hooks.origin_response,
                &behavior.hooks.viewer_response,
            ]
            .into_iter()
            .flatten()
            {
                deployments.resolve(&association.function, "")?;
            }
        }
        control.spawn(deployments.clone().follow(changes));
        Ok(deployments)
    }

    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    fn configured(&self, name: &str) -> Result<Function, DeployError> {
        self.configured
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| DeployError::UnknownFunction(name.to_string()))
    }

    /// After a config reload: the functions the config now defines.
    pub fn set_configured(&self, functions: BTreeMap<String, Function>) {
        *self.configured.write() = functions;
    }

    /// Whether `$LATEST` of `name` is code uploaded through the admin API (which a config
    /// reload leaves in place).
    pub fn has_uploaded_code(&self, name: &str) -> bool {
        self.store.latest(name).ok().flatten().is_some()
    }

    /// Runs a reloaded config's new code for `function`, unless its `$LATEST` is uploaded code.
    pub fn register_configured(&self, function: &Function) {
        let _change = self.code_changes.lock();
        if !self.has_uploaded_code(&function.name) {
            self.pool.register(FunctionSpec::from(function));
        }
    }

    /// The aliases of the store, for functions the config defines.
    pub fn refresh_aliases(&self) -> Result<(), DeployError> {
        let names: Vec<String> = self.configured.read().keys().cloned().collect();
        for name in names {
            let aliases = self.store.aliases(&name)?;
            self.aliases.write().insert(name, aliases);
        }
        Ok(())
    }

    fn register_latest(&self, name: &str, code: &FunctionCode) {
        let spec = spec_of(name, name, "$LATEST", code, self.configured.read().get(name));
        self.pool.register(spec);
        self.running_latest.lock().insert(name.to_string(), code.clone());
    }

    /// Runs the store's `$LATEST` of `name`, unless it runs already.
    fn follow_latest(&self, name: &str) {
        if !self.configured.read().contains_key(name) {
            return;
        }
        let _change = self.code_changes.lock();
        match self.store.latest(name) {
            Ok(Some(code)) => {
                let running = self.running_latest.lock().get(name).is_some_and(|r| r.same_as(&code));
                if !running {
                    tracing::info!(target: "edgehook::deploy", function = name, "new $LATEST from the store");
                    self.register_latest(name, &code);
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::error!(target: "edgehook::deploy", function = name, %error, "cannot run the stored $LATEST")
            }
        }
    }

    /// Takes the store's aliases of `name`, loading the versions they name first.
    fn follow_aliases(&self, name: &str) {
        if !self.configured.read().contains_key(name) {
            return;
        }
        let aliases = match self.store.aliases(name) {
            Ok(aliases) => aliases,
            Err(error) => {
                tracing::error!(target: "edgehook::deploy", function = name, %error, "cannot read the aliases");
                return;
            }
        };
        for alias in aliases.values() {
            for version in std::iter::once(alias.version).chain(alias.additional_version.map(|w| w.version)) {
                if let Err(error) = self.ensure_version(name, version) {
                    tracing::error!(target: "edgehook::deploy", function = name, version, %error, "cannot load a version an alias names");
                }
            }
        }
        self.aliases.write().insert(name.to_string(), aliases);
    }

    /// Acts on the store's changes; every second, tells the fleet what this node serves and
    /// counts, and carries on deployments whose driver went away.
    async fn follow(self: Arc<Self>, mut changes: tokio::sync::broadcast::Receiver<Change>) {
        use tokio::sync::broadcast::error::RecvError;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(change) => self.apply(change).await,
                    Err(RecvError::Lagged(_)) => self.apply(Change::Everything).await,
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    self.report().await;
                    self.adopt_orphans().await;
                }
            }
        }
    }

    async fn apply(self: &Arc<Self>, change: Change) {
        match change {
            Change::Latest(name) => self.follow_latest(&name),
            Change::Aliases(name) => self.follow_aliases(&name),
            Change::Deployment(id) => self.adopt(&id).await,
            Change::Purge(_) => {}
            Change::Everything => {
                let names: Vec<String> = self.configured.read().keys().cloned().collect();
                for name in names {
                    self.follow_latest(&name);
                    self.follow_aliases(&name);
                }
                self.adopt_orphans().await;
            }
        }
    }

    async fn report(&self) {
        let counts: BTreeMap<String, Counts> = self
            .store
            .deployments()
            .into_iter()
            .filter(|d| d.state == store::State::InProgress)
            .map(|d| {
                let key = format!("{}:{}", d.function, d.to_version);
                let counts = self.stats(&key);
                (key, counts)
            })
            .collect();
        let _ = self.store.report_counts(counts).await;
        let _ = self.store.report_node(self.pool.function_keys()).await;
    }

    fn register_version(&self, name: &str, key: &str, version: u32) -> Result<(), DeployError> {
        let stored = self.store.version(name, version)?.ok_or(StoreError::NoSuchVersion {
            function: name.to_string(),
            version,
        })?;
        let configured = self.configured(name)?;
        self.pool.register(spec_of(
            name,
            key,
            &version.to_string(),
            &stored.code,
            Some(&configured),
        ));
        Ok(())
    }

    /// Loads version `version` into the pool if it is not there yet.
    fn ensure_version(&self, name: &str, version: u32) -> Result<String, DeployError> {
        let key = format!("{name}:{version}");
        if !self.pool.has_function(&key) {
            self.register_version(name, &key, version)?;
        }
        Ok(key)
    }

    /// The pool key that serves an association (`fn`, `fn:3` or `fn:alias`) for the viewer
    /// `viewer_key` (see `route`).
    pub fn resolve(&self, association: &str, viewer_key: &str) -> Result<String, DeployError> {
        let Some((name, qualifier)) = association.split_once(':') else {
            self.configured(association)?;
            return Ok(association.to_string());
        };
        self.configured(name)?;
        if let Ok(version) = qualifier.parse::<u32>() {
            return self.ensure_version(name, version);
        }
        let alias = self.alias(name, qualifier)?;
        self.ensure_version(name, route::pick(name, qualifier, &alias, viewer_key))
    }

    /// Counts an invocation of the code under `key`, and whether it failed (execution or
    /// validation error).
    pub fn record(&self, key: &str, failed: bool) {
        let mut stats = self.stats.lock();
        let entry = stats.entry(key.to_string()).or_default();
        entry.invocations += 1;
        entry.errors += u64::from(failed);
    }

    fn stats(&self, key: &str) -> Counts {
        self.stats.lock().get(key).copied().unwrap_or_default()
    }

    /// The current `$LATEST` code of a function.
    fn latest(&self, name: &str) -> Result<FunctionCode, DeployError> {
        let configured = self.configured(name)?;
        Ok(self.store.latest(name)?.unwrap_or_else(|| code_of(&configured)))
    }

    /// Replaces `$LATEST`'s package with the upload once it loads; nothing changes when it
    /// does not. The handler stays, unless `handler` names another.
    pub async fn put_code(
        &self,
        name: &str,
        upload: Upload,
        handler: Option<&str>,
        limits: Limits,
    ) -> Result<(), DeployError> {
        let mut code = self.latest(name)?;
        if let Some(handler) = handler {
            code.handler = handler.to_string();
        }
        let package = match upload {
            Upload::Package(package) => package,
            Upload::Source { source, file_name } => {
                // The file name decides the module kind (`.mjs`, `.cjs`); without one, the
                // current code's name is kept, or `index.js` (kind by syntax) after a package.
                let file_name = file_name.unwrap_or_else(|| {
                    let mut paths = code.package.paths();
                    match (paths.next(), paths.next()) {
                        (Some(only), None) => only.to_string(),
                        _ => "index.js".into(),
                    }
                });
                let file_name = file_name.rsplit('/').next().unwrap_or(&file_name).to_string();
                let package = Package::single(&file_name, &source);
                package
                    .check_zipped(limits, "for this function")
                    .map_err(|e| DeployError::Invalid(e.to_string()))?;
                package
            }
        };
        package
            .entry(&code.handler)
            .map_err(|e| DeployError::Invalid(format!("{e} (name the handler with ?handler=file.export)")))?;
        code.package = Arc::new(package);
        // Loading the code runs its top-level code (up to its timeout): on a blocking thread.
        let mut probe = spec_of(name, name, "$LATEST", &code, None);
        probe.concurrency = 1;
        tokio::task::spawn_blocking(move || {
            let options = PoolOptions {
                threads: 1,
                queue: 1,
                max_wait: Duration::from_secs(1),
                snapshot: true,
                name_servers: Vec::new(),
                ..PoolOptions::default()
            };
            JsPool::start(vec![probe], &options).map(|_| ())
        })
        .await
        .map_err(|e| DeployError::Load(format!("the check stopped: {e}")))?
        .map_err(|e| DeployError::Load(e.to_string()))?;
        self.store.put_latest(name, &code).await?;
        self.follow_latest(name);
        Ok(())
    }

    /// Publishes the current `$LATEST` as a new immutable version.
    pub async fn publish(&self, name: &str) -> Result<u32, DeployError> {
        let code = self.latest(name)?;
        let version = self.store.publish(name, &code, now()).await?;
        // Warmed now when it can be; otherwise on first use (this node's copy of a shared
        // store may not hold it yet).
        if let Err(error) = self.ensure_version(name, version) {
            tracing::warn!(target: "edgehook::deploy", function = name, version, %error, "published, not loaded yet");
        }
        Ok(version)
    }

    /// Where an alias points now.
    fn alias(&self, name: &str, alias: &str) -> Result<Alias, DeployError> {
        self.aliases
            .read()
            .get(name)
            .and_then(|aliases| aliases.get(alias).copied())
            .ok_or_else(|| DeployError::UnknownAlias(name.to_string(), alias.to_string()))
    }

    pub async fn put_alias(&self, name: &str, alias: &str, value: Alias) -> Result<(), DeployError> {
        self.configured(name)?;
        self.store.put_alias(name, alias, value).await?;
        self.follow_aliases(name);
        Ok(())
    }

    /// Versions and aliases of a function, as the admin API shows them.
    pub fn describe(&self, name: &str) -> Result<serde_json::Value, DeployError> {
        let latest = self.latest(name)?;
        let versions: Vec<serde_json::Value> = self
            .store
            .version_list(name)?
            .iter()
            .map(|(version, published_at, handler)| serde_json::json!({ "version": version, "published_at": published_at, "handler": handler }))
            .collect();
        let aliases = self.store.aliases(name)?;
        Ok(serde_json::json!({
            "name": name,
            "latest": {
                "handler": latest.handler,
                "timeout_ms": latest.timeout_ms,
                "memory": latest.memory,
                "entry": latest.package.entry(&latest.handler).ok(),
                "package": { "sha256": latest.package.digest(), "files": latest.package.paths().count(), "zipped_size": latest.package.zipped_size() },
                "layers": latest.layers.iter().map(|l| l.digest()).collect::<Vec<_>>(),
            },
            "versions": versions,
            "aliases": aliases,
            "deployments": self.deployments_of(name),
        }))
    }
}
