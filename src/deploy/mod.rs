//! Safe deployments: function versions and aliases kept in a state directory (`store`), the
//! sticky weighted choice between an alias's versions (`route`), and `Deployments`, which keeps
//! the JS pool in step with the state: uploaded `$LATEST` code, published versions and aliases
//! take effect without a restart.

pub mod rollout;
pub mod route;
pub mod store;
pub mod strategy;

use crate::config::Config;
use crate::config::Function;
use crate::js::{FunctionSpec, JsPool, PoolOptions};
use crate::package::{Limits, Package};

/// New `$LATEST` code: a package (a zip), or one source file.
pub enum Upload {
    Package(Package),
    Source { source: String, file_name: Option<String> },
}
use parking_lot::RwLock;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use store::{Alias, FunctionCode, Store, StoreError};

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
    store: Store,
    pool: Arc<JsPool>,
    /// The functions of the config, whose settings uploaded code keeps.
    configured: RwLock<BTreeMap<String, Function>>,
    aliases: RwLock<HashMap<String, BTreeMap<String, Alias>>>,
    /// Invocations and failures per pool key (`fn:N`), which deployment alarms watch.
    stats: parking_lot::Mutex<HashMap<String, (u64, u64)>>,
    rollouts: parking_lot::Mutex<HashMap<String, rollout::DeploymentStatus>>,
    /// (function, alias) -> the deployment moving it.
    active: parking_lot::Mutex<HashMap<(String, String), String>>,
    next_deployment: std::sync::atomic::AtomicU64,
    /// Held while a code change (an upload, a reload's new config code) reaches the store and
    /// the pool, so that the two always agree on which code is `$LATEST`.
    code_changes: parking_lot::Mutex<()>,
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
    /// Opens the state directory and brings the pool in line with it: uploaded `$LATEST` code
    /// replaces the config's, and every version an alias or a behavior names is loaded warm.
    pub fn start(config: &Config, pool: Arc<JsPool>) -> Result<Deployments, DeployError> {
        let store = Store::open(&config.state_dir)?;
        let deployments = Deployments {
            store,
            pool,
            configured: RwLock::new(config.functions.clone()),
            aliases: RwLock::new(HashMap::new()),
            stats: Default::default(),
            rollouts: Default::default(),
            active: Default::default(),
            next_deployment: std::sync::atomic::AtomicU64::new(1),
            code_changes: parking_lot::Mutex::new(()),
        };
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
        for behavior in &config.behaviors {
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
        Ok(deployments)
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

    /// The aliases of the state directory, for functions the config defines.
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
    }

    /// Loads version `version` into the pool if it is not there yet.
    fn ensure_version(&self, name: &str, version: u32) -> Result<String, DeployError> {
        let key = format!("{name}:{version}");
        if !self.pool.has_function(&key) {
            let stored = self.store.version(name, version)?.ok_or(StoreError::NoSuchVersion {
                function: name.to_string(),
                version,
            })?;
            let configured = self.configured(name)?;
            self.pool.register(spec_of(
                name,
                &key,
                &version.to_string(),
                &stored.code,
                Some(&configured),
            ));
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
        entry.0 += 1;
        entry.1 += u64::from(failed);
    }

    fn stats(&self, key: &str) -> (u64, u64) {
        self.stats.lock().get(key).copied().unwrap_or_default()
    }

    /// The current `$LATEST` code of a function.
    fn latest(&self, name: &str) -> Result<FunctionCode, DeployError> {
        let configured = self.configured(name)?;
        Ok(self.store.latest(name)?.unwrap_or_else(|| code_of(&configured)))
    }

    /// Replaces `$LATEST`'s package with the upload once it loads; nothing changes when it
    /// does not. The handler stays, unless `handler` names another.
    pub fn put_code(
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
        let mut probe = spec_of(name, name, "$LATEST", &code, None);
        probe.concurrency = 1;
        let options = PoolOptions {
            threads: 1,
            queue: 1,
            max_wait: Duration::from_secs(1),
            snapshot: true,
            name_servers: Vec::new(),
        };
        JsPool::start(vec![probe], &options).map_err(|e| DeployError::Load(e.to_string()))?;
        let _change = self.code_changes.lock();
        self.store.put_latest(name, &code)?;
        self.register_latest(name, &code);
        Ok(())
    }

    /// Publishes the current `$LATEST` as a new immutable version.
    pub fn publish(&self, name: &str) -> Result<u32, DeployError> {
        let code = self.latest(name)?;
        let version = self.store.publish(name, &code, now())?;
        self.ensure_version(name, version)?;
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

    pub fn put_alias(&self, name: &str, alias: &str, value: Alias) -> Result<(), DeployError> {
        self.configured(name)?;
        self.store.put_alias(name, alias, value)?;
        self.ensure_version(name, value.version)?;
        if let Some(extra) = value.additional_version {
            self.ensure_version(name, extra.version)?;
        }
        self.aliases
            .write()
            .entry(name.to_string())
            .or_default()
            .insert(alias.to_string(), value);
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
