//! The deployment state directory: per function, the uploaded `$LATEST` code, the published
//! (immutable) versions and the aliases. It survives restarts; every write is atomic (a temporary
//! file, fsynced, renamed over the old one, and the directory fsynced), so a crash mid-write
//! leaves either the old or the new content, never a mix, and nothing acknowledged is lost.
//!
//! ```text
//! <state>/functions/<name>/latest.json        $LATEST uploaded through the admin API
//! <state>/functions/<name>/versions/<n>.json  published version n (never rewritten)
//! <state>/functions/<name>/aliases.json       alias -> version (+ a weighted second version)
//! <state>/packages/<sha256>.zip                 a package's files, stored once however many
//!                                               versions name it (a function of one file is
//!                                               kept inline in its JSON instead)
//! <state>/deployments/d-<n>.json               a deployment's plan, progress and history
//! ```

use super::{
    check_alias, now_ms, Alias, Change, Counts, DeploymentRecord, FunctionCode, NodeRecord, PurgeAck, PurgeRecord,
    PurgeStatus, State, StateStore, StoreError, StoreHealth, StoredCode, StoredVersion, Version, VersionInfo,
};
use crate::config::valid_name;
use crate::package::{Limits, Package};
use async_trait::async_trait;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path
        .parent()
        .ok_or_else(|| StoreError::Invalid(format!("`{}` has no directory", path.display())))?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let temporary = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        std::process::id()
    ));
    {
        let mut file = std::fs::File::create(&temporary).map_err(io(&temporary))?;
        file.write_all(bytes).map_err(io(&temporary))?;
        file.sync_all().map_err(io(&temporary))?;
    }
    std::fs::rename(&temporary, path).map_err(io(path))?;
    // The rename itself must reach the disk too.
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Damaged {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Invalid(e.to_string()))?;
    write_atomic(path, &bytes)
}

/// Deployments, purges and this node's record: deployments are kept on disk too, so one in
/// progress carries on after a restart; purges only matter to this process's cache.
struct Runtime {
    /// Ids of deployments moving an alias: (function, alias) -> id.
    active: BTreeMap<(String, String), String>,
    purges: BTreeMap<String, (PurgeRecord, Option<PurgeAck>)>,
    serving: Vec<String>,
    next_purge: u64,
}

/// Purge records kept for `purge_status`.
const KEPT_PURGES: usize = 200;

pub struct LocalStore {
    root: PathBuf,
    node: String,
    instance: String,
    started_ms: u64,
    /// Serializes writers so version numbers and deployment ids are never handed out twice.
    writing: Mutex<()>,
    runtime: Mutex<Runtime>,
    changes: tokio::sync::broadcast::Sender<Change>,
}

impl LocalStore {
    pub fn open(root: &Path) -> Result<LocalStore, StoreError> {
        Self::open_as(root, &crate::config::host_name())
    }

    /// Opens the state directory for the node named `node`.
    pub fn open_as(root: &Path, node: &str) -> Result<LocalStore, StoreError> {
        let functions = root.join("functions");
        std::fs::create_dir_all(&functions).map_err(io(&functions))?;
        let started_ms = now_ms();
        let store = LocalStore {
            root: root.to_path_buf(),
            node: node.to_string(),
            instance: format!("{node}@{started_ms}"),
            started_ms,
            writing: Mutex::new(()),
            runtime: Mutex::new(Runtime {
                active: BTreeMap::new(),
                purges: BTreeMap::new(),
                serving: Vec::new(),
                next_purge: 1,
            }),
            changes: tokio::sync::broadcast::channel(1024).0,
        };
        let active = store
            .deployment_records()?
            .into_iter()
            .filter(|d| d.state == State::InProgress)
            .map(|d| ((d.function, d.alias), d.id))
            .collect();
        store.runtime.lock().active = active;
        Ok(store)
    }

    fn function_dir(&self, name: &str) -> Result<PathBuf, StoreError> {
        if !valid_name(name) {
            return Err(StoreError::Invalid(format!("`{name}` is not a function name")));
        }
        Ok(self.root.join("functions").join(name))
    }

    fn package_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::Invalid(format!("`{digest}` is not a package digest")));
        }
        Ok(self.root.join("packages").join(format!("{digest}.zip")))
    }

    /// Stores a package's zip once; returns its digest.
    fn put_package(&self, package: &Package) -> Result<String, StoreError> {
        let path = self.package_path(package.digest())?;
        if !path.exists() {
            write_atomic(&path, &package.to_zip())?;
        }
        Ok(package.digest().to_string())
    }

    fn package(&self, digest: &str) -> Result<Arc<Package>, StoreError> {
        let path = self.package_path(digest)?;
        let data = std::fs::read(&path).map_err(io(&path))?;
        let damaged = |message: String| StoreError::Damaged {
            path: path.clone(),
            message,
        };
        let package = Package::from_zip(&data, Limits::ORIGIN).map_err(|e| damaged(e.to_string()))?;
        if package.digest() != digest {
            return Err(damaged(format!("its files have digest {}", package.digest())));
        }
        Ok(Arc::new(package))
    }

    fn stored(&self, code: &FunctionCode) -> Result<StoredCode, StoreError> {
        StoredCode::of(code, |package| self.put_package(package))
    }

    fn loaded_version(&self, stored: StoredVersion) -> Result<Version, StoreError> {
        Ok(Version {
            version: stored.version,
            published_at: stored.published_at,
            code: stored.code.load(|digest| self.package(digest))?,
        })
    }

    fn notify(&self, change: Change) {
        // Nobody listening is fine: changes are only news.
        let _ = self.changes.send(change);
    }

    /// Published versions, oldest first.
    pub fn versions(&self, name: &str) -> Result<Vec<Version>, StoreError> {
        let mut versions = Vec::new();
        for (number, ..) in self.version_list(name)? {
            if let Some(version) = self.version(name, number)? {
                versions.push(version);
            }
        }
        Ok(versions)
    }

    pub fn latest(&self, name: &str) -> Result<Option<FunctionCode>, StoreError> {
        read_json::<StoredCode>(&self.function_dir(name)?.join("latest.json"))?
            .map(|stored| stored.load(|digest| self.package(digest)))
            .transpose()
    }

    pub fn put_latest(&self, name: &str, code: &FunctionCode) -> Result<(), StoreError> {
        {
            let _writing = self.writing.lock();
            let stored = self.stored(code)?;
            write_json(&self.function_dir(name)?.join("latest.json"), &stored)?;
        }
        self.notify(Change::Latest(name.to_string()));
        Ok(())
    }

    /// Version numbers and publication times, without reading their packages.
    pub fn version_list(&self, name: &str) -> Result<Vec<VersionInfo>, StoreError> {
        let dir = self.function_dir(name)?.join("versions");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::Io { path: dir, source: e }),
        };
        let mut list = Vec::new();
        for entry in entries {
            let path = entry.map_err(io(&dir))?.path();
            let numbered = path
                .file_stem()
                .and_then(|s| s.to_str())
                .is_some_and(|s| s.parse::<u32>().is_ok());
            if numbered && path.extension().is_some_and(|e| e == "json") {
                if let Some(v) = read_json::<StoredVersion>(&path)? {
                    list.push((v.version, v.published_at, v.code.handler));
                }
            }
        }
        list.sort();
        Ok(list)
    }

    pub fn version(&self, name: &str, version: u32) -> Result<Option<Version>, StoreError> {
        read_json::<StoredVersion>(
            &self
                .function_dir(name)?
                .join("versions")
                .join(format!("{version}.json")),
        )?
        .map(|v| self.loaded_version(v))
        .transpose()
    }

    /// Publishes `code` as the next version number and returns it.
    pub fn publish(&self, name: &str, code: &FunctionCode, now: u64) -> Result<u32, StoreError> {
        let _writing = self.writing.lock();
        let next = self.version_list(name)?.last().map_or(1, |v| v.0 + 1);
        let version = StoredVersion {
            version: next,
            published_at: now,
            code: self.stored(code)?,
            publish: String::new(),
        };
        write_json(
            &self.function_dir(name)?.join("versions").join(format!("{next}.json")),
            &version,
        )?;
        Ok(next)
    }

    pub fn aliases(&self, name: &str) -> Result<BTreeMap<String, Alias>, StoreError> {
        Ok(read_json(&self.function_dir(name)?.join("aliases.json"))?.unwrap_or_default())
    }

    /// Creates or moves an alias; its versions must exist and the weight be within 0..1.
    pub fn put_alias(&self, name: &str, alias: &str, value: Alias) -> Result<(), StoreError> {
        {
            let _writing = self.writing.lock();
            let published = self.version_list(name)?;
            check_alias(name, alias, &value, |v| published.iter().any(|p| p.0 == v))?;
            let mut aliases = self.aliases(name)?;
            aliases.insert(alias.to_string(), value);
            write_json(&self.function_dir(name)?.join("aliases.json"), &aliases)?;
        }
        self.notify(Change::Aliases(name.to_string()));
        Ok(())
    }

    fn deployment_path(&self, id: &str) -> Result<PathBuf, StoreError> {
        let number = id.strip_prefix("d-").and_then(|n| n.parse::<u64>().ok());
        match number {
            Some(_) => Ok(self.root.join("deployments").join(format!("{id}.json"))),
            None => Err(StoreError::Invalid(format!("`{id}` is not a deployment id"))),
        }
    }

    fn deployment_records(&self) -> Result<Vec<DeploymentRecord>, StoreError> {
        let dir = self.root.join("deployments");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::Io { path: dir, source: e }),
        };
        let mut records = Vec::new();
        for entry in entries {
            let path = entry.map_err(io(&dir))?.path();
            let is_record = path.extension().is_some_and(|e| e == "json")
                && path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .is_some_and(|s| s.starts_with("d-"));
            if is_record {
                if let Some(record) = read_json::<DeploymentRecord>(&path)? {
                    records.push(record);
                }
            }
        }
        records.sort_by_key(|r| r.id.trim_start_matches("d-").parse::<u64>().unwrap_or(0));
        Ok(records)
    }
}

#[async_trait]
impl StateStore for LocalStore {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn node(&self) -> &str {
        &self.node
    }

    fn instance(&self) -> &str {
        &self.instance
    }

    fn health(&self) -> StoreHealth {
        StoreHealth::Connected
    }

    fn revision(&self) -> u64 {
        0
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    fn latest(&self, function: &str) -> Result<Option<FunctionCode>, StoreError> {
        LocalStore::latest(self, function)
    }

    async fn put_latest(&self, function: &str, code: &FunctionCode) -> Result<(), StoreError> {
        LocalStore::put_latest(self, function, code)
    }

    fn version(&self, function: &str, version: u32) -> Result<Option<Version>, StoreError> {
        LocalStore::version(self, function, version)
    }

    fn version_list(&self, function: &str) -> Result<Vec<VersionInfo>, StoreError> {
        LocalStore::version_list(self, function)
    }

    async fn publish(&self, function: &str, code: &FunctionCode, now: u64) -> Result<u32, StoreError> {
        LocalStore::publish(self, function, code, now)
    }

    fn aliases(&self, function: &str) -> Result<BTreeMap<String, Alias>, StoreError> {
        LocalStore::aliases(self, function)
    }

    async fn put_alias(&self, function: &str, alias: &str, value: Alias) -> Result<(), StoreError> {
        LocalStore::put_alias(self, function, alias, value)
    }

    fn deployments(&self) -> Vec<DeploymentRecord> {
        self.deployment_records().unwrap_or_else(|e| {
            tracing::warn!(target: "edgehook::deploy", error = %e, "cannot read the deployment records");
            Vec::new()
        })
    }

    async fn begin_deployment(&self, mut record: DeploymentRecord) -> Result<DeploymentRecord, StoreError> {
        let _writing = self.writing.lock();
        let slot = (record.function.clone(), record.alias.clone());
        if let Some(running) = self.runtime.lock().active.get(&slot) {
            return Err(StoreError::Conflict(format!(
                "deployment {running} is already moving alias `{}`",
                record.alias
            )));
        }
        let last = self
            .deployment_records()?
            .iter()
            .filter_map(|r| r.id.strip_prefix("d-")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        record.id = format!("d-{}", last + 1);
        record.driver = self.node.clone();
        write_json(&self.deployment_path(&record.id)?, &record)?;
        self.runtime.lock().active.insert(slot, record.id.clone());
        Ok(record)
    }

    async fn save_deployment(&self, record: &DeploymentRecord) -> Result<(), StoreError> {
        {
            let _writing = self.writing.lock();
            write_json(&self.deployment_path(&record.id)?, record)?;
            if record.state != State::InProgress {
                let mut runtime = self.runtime.lock();
                let slot = (record.function.clone(), record.alias.clone());
                if runtime.active.get(&slot) == Some(&record.id) {
                    runtime.active.remove(&slot);
                }
            }
        }
        self.notify(Change::Deployment(record.id.clone()));
        Ok(())
    }

    /// A state directory has one node: a deployment left in progress by an earlier process
    /// is this one's to carry on.
    async fn take_over(&self, id: &str) -> Result<bool, StoreError> {
        let path = self.deployment_path(id)?;
        Ok(read_json::<DeploymentRecord>(&path)?.is_some_and(|r| r.state == State::InProgress))
    }

    fn driven(&self, _id: &str) -> bool {
        false
    }

    async fn report_counts(&self, _counts: BTreeMap<String, Counts>) -> Result<(), StoreError> {
        Ok(())
    }

    fn peer_counts(&self, _key: &str) -> BTreeMap<String, Counts> {
        BTreeMap::new()
    }

    async fn request_purge(&self, distribution: String, paths: Vec<String>) -> Result<PurgeRecord, StoreError> {
        let record = {
            let mut runtime = self.runtime.lock();
            let record = PurgeRecord {
                id: format!("p-{}-{}", self.started_ms, runtime.next_purge),
                distribution,
                paths,
                requested_ms: now_ms(),
                requested_by: self.node.clone(),
            };
            runtime.next_purge += 1;
            runtime.purges.insert(record.id.clone(), (record.clone(), None));
            while runtime.purges.len() > KEPT_PURGES {
                runtime.purges.pop_first();
            }
            record
        };
        self.notify(Change::Purge(record.id.clone()));
        Ok(record)
    }

    async fn ack_purge(&self, id: &str, ack: PurgeAck) -> Result<(), StoreError> {
        if let Some(entry) = self.runtime.lock().purges.get_mut(id) {
            entry.1 = Some(ack);
        }
        Ok(())
    }

    fn purge_status(&self, id: &str) -> Option<PurgeStatus> {
        let runtime = self.runtime.lock();
        let (purge, ack) = runtime.purges.get(id)?;
        Some(PurgeStatus {
            purge: purge.clone(),
            applied: ack.iter().map(|a| (self.node.clone(), a.clone())).collect(),
            pending: if ack.is_some() {
                Vec::new()
            } else {
                vec![self.node.clone()]
            },
        })
    }

    fn pending_purges(&self) -> Vec<PurgeRecord> {
        let runtime = self.runtime.lock();
        runtime
            .purges
            .values()
            .filter(|(_, ack)| ack.is_none())
            .map(|(purge, _)| purge.clone())
            .collect()
    }

    async fn report_node(&self, serving: Vec<String>) -> Result<(), StoreError> {
        self.runtime.lock().serving = serving;
        Ok(())
    }

    fn nodes(&self) -> Vec<NodeRecord> {
        vec![NodeRecord {
            name: self.node.clone(),
            instance: self.instance.clone(),
            admin: None,
            listen: Vec::new(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_ms: self.started_ms,
            revision: 0,
            last_contact_ms: now_ms(),
            serving: self.runtime.lock().serving.clone(),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::store::Weighted;

    fn code(marker: &str) -> FunctionCode {
        let source = format!("export const handler = async (e) => e.Records[0].cf.request; // {marker}");
        FunctionCode {
            package: Arc::new(Package::single("index.mjs", &source)),
            layers: Vec::new(),
            handler: "handler".into(),
            timeout_ms: 5000,
            memory: 128 << 20,
            env: BTreeMap::from([("STAGE".to_string(), marker.to_string())]),
        }
    }

    #[test]
    fn versions_are_numbered_immutable_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        assert!(store.versions("f").unwrap().is_empty());
        store.put_latest("f", &code("one")).unwrap();
        assert_eq!(store.publish("f", &code("one"), 10).unwrap(), 1);
        store.put_latest("f", &code("two")).unwrap();
        assert_eq!(store.publish("f", &code("two"), 20).unwrap(), 2);
        drop(store);
        let reopened = LocalStore::open(dir.path()).unwrap();
        let versions = reopened.versions("f").unwrap();
        assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(versions[0].code.env["STAGE"], "one", "version 1 kept its frozen code");
        assert_eq!(reopened.latest("f").unwrap().unwrap().env["STAGE"], "two");
    }

    #[test]
    fn aliases_check_their_versions_and_weights() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        store.publish("f", &code("one"), 1).unwrap();
        store.publish("f", &code("two"), 2).unwrap();
        let live = Alias {
            version: 1,
            additional_version: Some(Weighted {
                version: 2,
                weight: 0.1,
            }),
        };
        store.put_alias("f", "live", live).unwrap();
        assert_eq!(store.aliases("f").unwrap()["live"], live);
        assert!(matches!(
            store.put_alias(
                "f",
                "live",
                Alias {
                    version: 9,
                    additional_version: None
                }
            ),
            Err(StoreError::NoSuchVersion { .. })
        ));
        let bad_weight = Alias {
            version: 1,
            additional_version: Some(Weighted {
                version: 2,
                weight: 1.5,
            }),
        };
        assert!(store.put_alias("f", "live", bad_weight).is_err());
        assert!(store
            .put_alias(
                "f",
                "123",
                Alias {
                    version: 1,
                    additional_version: None
                }
            )
            .is_err());
        assert!(store
            .put_alias(
                "f",
                "../x",
                Alias {
                    version: 1,
                    additional_version: None
                }
            )
            .is_err());
        assert_eq!(
            store.aliases("f").unwrap()["live"],
            live,
            "refused writes change nothing"
        );
    }

    #[test]
    fn names_cannot_escape_the_state_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        assert!(store.put_latest("../../etc", &code("x")).is_err());
        assert!(store.versions("a/b").is_err());
    }

    #[test]
    fn a_damaged_file_is_reported_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        store.publish("f", &code("one"), 1).unwrap();
        std::fs::write(dir.path().join("functions/f/aliases.json"), "{ not json").unwrap();
        assert!(matches!(store.aliases("f"), Err(StoreError::Damaged { .. })));
    }

    #[test]
    fn concurrent_publishes_get_distinct_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(LocalStore::open(dir.path()).unwrap());
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || store.publish("f", &code(&i.to_string()), i).unwrap())
            })
            .collect();
        let mut numbers: Vec<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        numbers.sort();
        assert_eq!(numbers, (1..=8).collect::<Vec<_>>());
    }

    #[test]
    fn atomic_writes_leave_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/file.json");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }
}
