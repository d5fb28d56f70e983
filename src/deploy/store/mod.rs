//! The deployment state: function code, versions, aliases, deployments, cache purges and the
//! nodes sharing them, behind one trait (`StateStore`) with two backends: a node's own state
//! directory (`local`, the default) and etcd (`etcd`), which a fleet of nodes shares.
//!
//! Reads answer from what the node holds (the directory, or the node's copy of the etcd
//! prefix, kept current by a watch), so the request path never waits on the network. Writes go
//! to the store and, once it accepted them, are seen by every node through `subscribe`.

pub mod etcd;
pub mod local;

pub use etcd::EtcdStore;
pub use local::LocalStore;

use crate::config::valid_name;
use crate::package::{CodeTree, Package};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything a function version freezes: its package, its layers' files, and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionCode {
    pub package: Arc<Package>,
    pub layers: Vec<Arc<Package>>,
    pub handler: String,
    pub timeout_ms: u64,
    pub memory: usize,
    pub env: BTreeMap<String, String>,
}

impl FunctionCode {
    pub fn code_tree(&self) -> CodeTree {
        CodeTree::new(self.package.clone(), self.layers.clone())
    }

    /// Whether `other` is the same code with the same settings (by the packages' digests).
    pub fn same_as(&self, other: &FunctionCode) -> bool {
        self.package.digest() == other.package.digest()
            && self.layers.len() == other.layers.len()
            && self
                .layers
                .iter()
                .zip(&other.layers)
                .all(|(a, b)| a.digest() == b.digest())
            && self.handler == other.handler
            && self.timeout_ms == other.timeout_ms
            && self.memory == other.memory
            && self.env == other.env
    }
}

/// `FunctionCode` as the store holds it: a one-file package inline (`source`, `file_name`),
/// others (and layers) by the digest of their stored zip.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredCode {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    source: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    file_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    package: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    layers: Vec<String>,
    pub(crate) handler: String,
    timeout_ms: u64,
    memory: usize,
    env: BTreeMap<String, String>,
}

impl StoredCode {
    /// The stored form of `code`; `put_package` keeps a package's zip and returns its digest.
    pub(crate) fn of(
        code: &FunctionCode,
        mut put_package: impl FnMut(&Package) -> Result<String, StoreError>,
    ) -> Result<StoredCode, StoreError> {
        let layers = code
            .layers
            .iter()
            .map(|layer| put_package(layer))
            .collect::<Result<Vec<_>, _>>()?;
        let (source, file_name, package) = match single_file(&code.package) {
            Some((file_name, source)) => (source, file_name, None),
            None => (String::new(), String::new(), Some(put_package(&code.package)?)),
        };
        Ok(StoredCode {
            source,
            file_name,
            package,
            layers,
            handler: code.handler.clone(),
            timeout_ms: code.timeout_ms,
            memory: code.memory,
            env: code.env.clone(),
        })
    }

    /// The digests of the packages this code names.
    pub(crate) fn digests(&self) -> impl Iterator<Item = &str> {
        self.package.iter().chain(&self.layers).map(String::as_str)
    }

    /// The code back; `package` finds a stored package by its digest.
    pub(crate) fn load(
        self,
        mut package: impl FnMut(&str) -> Result<Arc<Package>, StoreError>,
    ) -> Result<FunctionCode, StoreError> {
        let main = match &self.package {
            Some(digest) => package(digest)?,
            None => Arc::new(Package::single(&self.file_name, &self.source)),
        };
        let layers = self
            .layers
            .iter()
            .map(|digest| package(digest))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FunctionCode {
            package: main,
            layers,
            handler: self.handler,
            timeout_ms: self.timeout_ms,
            memory: self.memory,
            env: self.env,
        })
    }
}

/// The packages `StoredCode::of` keeps apart (by digest): the layers, and the function's own
/// unless it is one file kept inline.
pub(crate) fn kept_packages(code: &FunctionCode) -> Vec<&Arc<Package>> {
    let mut kept: Vec<&Arc<Package>> = code.layers.iter().collect();
    if single_file(&code.package).is_none() {
        kept.push(&code.package);
    }
    kept
}

/// A package of one UTF-8 file, as (file name, source): such code is kept inline.
fn single_file(package: &Package) -> Option<(String, String)> {
    let mut paths = package.paths();
    match (paths.next(), paths.next()) {
        (Some(only), None) => package
            .file(only)
            .and_then(|content| std::str::from_utf8(content).ok())
            .map(|source| (only.to_string(), source.to_string())),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub version: u32,
    /// Seconds since the Unix epoch.
    pub published_at: u64,
    pub code: FunctionCode,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredVersion {
    pub(crate) version: u32,
    pub(crate) published_at: u64,
    pub(crate) code: StoredCode,
    /// Which publish wrote it (a shared store's writer tells its own write from another's).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) publish: String,
}

/// A published version as listed: number, publication time, handler.
pub type VersionInfo = (u32, u64, String);

/// A second version taking `weight` (0..1) of an alias's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Weighted {
    pub version: u32,
    pub weight: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Alias {
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_version: Option<Weighted>,
}

/// Checks an alias's name, weight and versions (`published` tells whether a version exists).
pub(crate) fn check_alias(
    function: &str,
    alias: &str,
    value: &Alias,
    published: impl Fn(u32) -> bool,
) -> Result<(), StoreError> {
    if !valid_name(alias) || alias.parse::<u32>().is_ok() {
        return Err(StoreError::Invalid(format!(
            "`{alias}` is not an alias name (letters, digits, - and _, not only digits)"
        )));
    }
    for version in std::iter::once(value.version).chain(value.additional_version.map(|w| w.version)) {
        if !published(version) {
            return Err(StoreError::NoSuchVersion {
                function: function.to_string(),
                version,
            });
        }
    }
    if let Some(extra) = value.additional_version {
        if !(0.0..=1.0).contains(&extra.weight) || extra.weight.is_nan() {
            return Err(StoreError::Invalid(format!(
                "weight {} is not between 0 and 1",
                extra.weight
            )));
        }
        if extra.version == value.version {
            return Err(StoreError::Invalid(
                "the additional version must differ from the main one".into(),
            ));
        }
    }
    Ok(())
}

/// Invocations of one version and how many of them failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub invocations: u64,
    pub errors: u64,
}

impl Counts {
    /// What was counted since `earlier` (nothing, if the counter started again).
    pub fn since(self, earlier: Counts) -> Counts {
        Counts {
            invocations: self.invocations.saturating_sub(earlier.invocations),
            errors: self.errors.saturating_sub(earlier.errors),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Alarm {
    /// Execution plus validation errors over invocations of the new version.
    pub error_rate: f64,
    /// The alarm is not judged on fewer invocations than this.
    #[serde(default)]
    pub min_invocations: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    InProgress,
    Succeeded,
    RolledBack,
    Failed,
}

/// One moment of a deployment's history: the new version's share from then on, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub weight: f64,
    pub event: String,
}

/// A deployment as the store keeps it: its plan, and its progress so far, from which any node
/// can carry it on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    pub id: String,
    pub function: String,
    pub alias: String,
    pub from_version: u32,
    pub to_version: u32,
    pub state: State,
    pub reason: Option<String>,
    /// The share of traffic the new version has now (0..1).
    pub weight: f64,
    /// Invocations of the new version (and errors) since the deployment started, fleet-wide.
    pub invocations: u64,
    pub errors: u64,
    /// The new version's weights, each held for `interval_ms`, before it takes everything.
    pub steps: Vec<f64>,
    pub interval_ms: u64,
    pub alarm: Option<Alarm>,
    pub pre_traffic: Option<String>,
    /// The index in `steps` being held (`steps.len()`: the last move is next).
    pub step: usize,
    pub step_started_ms: u64,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    /// The node driving it now (or last).
    pub driver: String,
    /// Per node process (`node@start`): its counts of the new version when the deployment
    /// started (subtracted) and the last ones seen (kept when the process goes away).
    pub baseline: BTreeMap<String, Counts>,
    pub seen: BTreeMap<String, Counts>,
    pub history: Vec<Step>,
}

/// A cache purge: paths and path patterns, applied by every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeRecord {
    pub id: String,
    /// The distribution whose objects go ("": the implicit one of the top-level behaviors).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub distribution: String,
    pub paths: Vec<String>,
    pub requested_ms: u64,
    pub requested_by: String,
}

/// A node's application of a purge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeAck {
    pub applied_ms: u64,
    pub purged: usize,
}

/// A purge and, per node, whether it applied it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeStatus {
    #[serde(flatten)]
    pub purge: PurgeRecord,
    pub applied: BTreeMap<String, PurgeAck>,
    /// Live nodes that have not applied it yet.
    pub pending: Vec<String>,
}

/// What a node tells the others about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    /// This process: `name@start`.
    pub instance: String,
    pub admin: Option<String>,
    pub listen: Vec<String>,
    /// edgehook's version.
    pub version: String,
    pub started_ms: u64,
    /// The store revision this node has applied.
    pub revision: u64,
    pub last_contact_ms: u64,
    /// The function versions it serves (`fn:3`, and `fn` for `$LATEST`).
    pub serving: Vec<String>,
}

/// Whether the store can take writes now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreHealth {
    Connected,
    /// Serving the last state seen; writes are refused. The reason says why.
    Degraded(String),
}

/// What changed in the store, for the nodes following it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// `$LATEST` of a function.
    Latest(String),
    /// A function's aliases.
    Aliases(String),
    /// A deployment's record, or who drives it.
    Deployment(String),
    /// A new purge.
    Purge(String),
    /// Anything may have changed: the state was read again whole.
    Everything,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state directory `{path}`: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("state file `{path}` is damaged: {message}")]
    Damaged { path: PathBuf, message: String },
    #[error("stored value `{key}` is damaged: {message}")]
    DamagedValue { key: String, message: String },
    #[error("function `{function}` has no version {version}")]
    NoSuchVersion { function: String, version: u32 },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    /// Another node drives this deployment now.
    #[error("deployment {0} is driven by another node now")]
    NotDriver(String),
    /// The shared store cannot be reached; the node serves its last state meanwhile.
    #[error("the state store is unavailable ({0}); changes are refused until it is back")]
    Unavailable(String),
}

/// The deployment state, wherever it lives. Reads answer from this node's copy; writes are
/// accepted by the store (and seen by every node) or refused.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// `local` or `etcd`.
    fn kind(&self) -> &'static str;
    /// This node's name, and its process (`name@start`).
    fn node(&self) -> &str;
    fn instance(&self) -> &str;
    fn health(&self) -> StoreHealth;
    /// The revision of the state this node holds (0 for a state directory).
    fn revision(&self) -> u64;
    /// Changes as they reach this node.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change>;

    /// `$LATEST` uploaded through the admin API, if any.
    fn latest(&self, function: &str) -> Result<Option<FunctionCode>, StoreError>;
    async fn put_latest(&self, function: &str, code: &FunctionCode) -> Result<(), StoreError>;
    fn version(&self, function: &str, version: u32) -> Result<Option<Version>, StoreError>;
    /// Published versions, oldest first, without their code.
    fn version_list(&self, function: &str) -> Result<Vec<VersionInfo>, StoreError>;
    /// Publishes `code` as the next version number, distinct from every other publish.
    async fn publish(&self, function: &str, code: &FunctionCode, now: u64) -> Result<u32, StoreError>;
    fn aliases(&self, function: &str) -> Result<BTreeMap<String, Alias>, StoreError>;
    /// Creates or moves an alias; its versions must exist and the weight be within 0..1.
    async fn put_alias(&self, function: &str, alias: &str, value: Alias) -> Result<(), StoreError>;

    fn deployments(&self) -> Vec<DeploymentRecord>;
    /// Records a new deployment (its `id` is chosen here) with this node driving it, unless
    /// one is moving the same alias already (`Conflict`).
    async fn begin_deployment(&self, record: DeploymentRecord) -> Result<DeploymentRecord, StoreError>;
    /// Saves a deployment's progress; an ended one frees its alias. `NotDriver` when another
    /// node drives it now.
    async fn save_deployment(&self, record: &DeploymentRecord) -> Result<(), StoreError>;
    /// Makes this node the driver of a deployment in progress that no live node drives.
    async fn take_over(&self, id: &str) -> Result<bool, StoreError>;
    /// Whether a live node drives the deployment.
    fn driven(&self, id: &str) -> bool;

    /// Publishes this node's counts of versions being deployed (for the fleet's alarms).
    async fn report_counts(&self, counts: BTreeMap<String, Counts>) -> Result<(), StoreError>;
    /// The other node processes' last counts of `key` (`fn:N`), by process.
    fn peer_counts(&self, key: &str) -> BTreeMap<String, Counts>;

    async fn request_purge(&self, distribution: String, paths: Vec<String>) -> Result<PurgeRecord, StoreError>;
    async fn ack_purge(&self, id: &str, ack: PurgeAck) -> Result<(), StoreError>;
    fn purge_status(&self, id: &str) -> Option<PurgeStatus>;
    /// Purges requested since this node started that it has not applied.
    fn pending_purges(&self) -> Vec<PurgeRecord>;

    /// Tells the fleet what this node serves.
    async fn report_node(&self, serving: Vec<String>) -> Result<(), StoreError>;
    /// The live nodes.
    fn nodes(&self) -> Vec<NodeRecord>;

    /// Leaves the fleet at shutdown: what this node held goes at once rather than when its
    /// lease runs out.
    async fn leave(&self) {}
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
