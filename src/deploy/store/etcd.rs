//! The deployment state in etcd, shared by a fleet of nodes. Every node loads the whole state
//! at one revision, then follows it with a watch from the next; reads answer from that copy.
//! Writes that must not race are transactions: version numbers and deployment ids are taken
//! with compare-and-swap, one deployment per alias by a key created only where absent, and a
//! deployment's progress is saved only by the node that drives it. What belongs to a living
//! node (its record, its counts, the deployments it drives) is bound to its lease, so it goes
//! away with the node.
//!
//! ```text
//! <prefix>blobs/<sha256>                  a package's zip: {"size", "chunks"}, written last
//! <prefix>blobs/<sha256>/<i>              its chunks (1 MiB, under etcd's request limit)
//! <prefix>state/functions/<f>/latest      $LATEST uploaded through the admin API
//! <prefix>state/functions/<f>/versions/<n>
//! <prefix>state/functions/<f>/aliases/<a>
//! <prefix>state/deployment-ids            the last deployment number given
//! <prefix>state/deployments/<id>          a deployment's plan, progress and history
//! <prefix>state/active/<f>/<a>            the deployment moving an alias
//! <prefix>state/drivers/<id>              the node process driving it (leased)
//! <prefix>state/purges/<id>               a cache purge (leased for a day)
//! <prefix>state/purges/<id>/acks/<node>   a node applied it
//! <prefix>state/nodes/<node>              a live node (leased)
//! <prefix>state/counts/<node>             its counts of versions being deployed (leased)
//! ```
//!
//! Packages stay out of the watched state: a node fetches the ones the state names (before it
//! takes the change in) into its state directory, where they outlive restarts.

use super::{
    check_alias, now_ms, Alias, Change, Counts, DeploymentRecord, FunctionCode, NodeRecord, PurgeAck, PurgeRecord,
    PurgeStatus, State, StateStore, StoreError, StoreHealth, StoredCode, StoredVersion, Version, VersionInfo,
};
use crate::config::EtcdSettings;
use crate::package::{Limits, Package};
use async_trait::async_trait;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Identity, PutOptions, TlsOptions,
    Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Seconds a node's leased keys outlive its last keep-alive.
const LEASE_TTL: i64 = 5;
/// How often a node renews its lease and rewrites its record.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Bytes per package chunk: etcd refuses requests over 1.5 MiB by default.
const CHUNK: usize = 1 << 20;
/// Purge records are kept this long (seconds).
const PURGE_TTL: i64 = 24 * 3600;
/// How long a write waits to see itself in this node's copy (the watch may be moving to
/// another member).
const SEE_OWN_WRITE: Duration = Duration::from_secs(5);
/// Pauses between attempts to reach etcd again.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long etcd may be out of reach before the node reports it.
const OUTAGE_GRACE: Duration = Duration::from_secs(1);
/// Calls that could not connect are made again this many times.
const CONNECT_RETRIES: u32 = 6;
/// How long one call may take: longer than etcd takes to elect a new leader.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Transactions whose outcome is unknown (a member went away mid-call) are made again this
/// many times; each is written so that making it again is harmless, or finds it was done.
const TXN_RETRIES: u32 = 3;

/// A key of the state, as this node holds it.
#[derive(Debug, Clone)]
struct Entry {
    value: Vec<u8>,
    create_revision: i64,
    mod_revision: i64,
    lease: i64,
}

#[derive(Default)]
struct Mirror {
    /// The revision of the state held: every change up to it is in.
    revision: i64,
    /// Keys without `<prefix>state/`.
    entries: BTreeMap<String, Entry>,
}

#[derive(Serialize, Deserialize)]
struct BlobManifest {
    size: usize,
    chunks: usize,
}

#[derive(Serialize, Deserialize, PartialEq)]
struct NodeCounts {
    instance: String,
    counts: BTreeMap<String, Counts>,
}

/// Why the store is degraded, by what found it out.
#[derive(Default)]
struct Problems {
    watch: Option<String>,
    lease: Option<String>,
}

pub struct EtcdStore {
    client: Client,
    /// `<prefix>state/` and `<prefix>blobs/`.
    state: String,
    blobs: String,
    node: String,
    instance: String,
    /// Purges created up to this revision predate this process's cache.
    start_revision: AtomicI64,
    handle: tokio::runtime::Handle,
    mirror: RwLock<Mirror>,
    applied: tokio::sync::watch::Sender<i64>,
    /// Packages fetched from etcd are kept here (`<state_dir>/packages`), and parsed ones in
    /// memory.
    package_dir: PathBuf,
    packages: Mutex<HashMap<String, Arc<Package>>>,
    lease: AtomicI64,
    problems: Mutex<Problems>,
    changes: tokio::sync::broadcast::Sender<Change>,
    record: Mutex<NodeRecord>,
    last_counts: Mutex<Option<NodeCounts>>,
    /// Set when the node leaves the fleet: its watch and heartbeat stop.
    left: tokio::sync::watch::Sender<bool>,
}

/// An etcd failure as the store reports it: a refusal of the request itself is `Invalid`;
/// anything else means etcd could not be reached.
fn store_error(error: etcd_client::Error) -> StoreError {
    use tonic::Code;
    match &error {
        etcd_client::Error::GRpcStatus(status)
            if !matches!(
                status.code(),
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Internal
            ) =>
        {
            StoreError::Invalid(format!("etcd refused: {}", status.message()))
        }
        _ => StoreError::Unavailable(error.to_string()),
    }
}

fn damaged(key: &str, message: impl ToString) -> StoreError {
    StoreError::DamagedValue {
        key: key.to_string(),
        message: message.to_string(),
    }
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Invalid(e.to_string()))
}

/// Whether a failed transaction's reads show `key` holding `value`: a transaction made again
/// after an unknown outcome finds its own earlier write so.
fn holds(response: &etcd_client::TxnResponse, key: &str, value: &[u8]) -> bool {
    response.op_responses().into_iter().any(|op| match op {
        TxnOpResponse::Get(get) => get
            .kvs()
            .iter()
            .any(|kv| kv.key() == key.as_bytes() && kv.value() == value),
        _ => false,
    })
}

/// Calls etcd, again at once when the call could not connect: with several endpoints, the
/// client's balancer may pick a member that is down, and the call was not sent.
async fn with_retries<T, F: std::future::Future<Output = Result<T, etcd_client::Error>>>(
    mut call: impl FnMut() -> F,
) -> Result<T, etcd_client::Error> {
    let mut attempt = 0;
    loop {
        match call().await {
            Err(error) if attempt < CONNECT_RETRIES && format!("{error:?}").contains("ConnectError") => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            result => return result,
        }
    }
}

/// Reaching etcd again after a failure: at once at first (another member may answer), then
/// backing off; the outage counts (and is reported) once it has lasted `OUTAGE_GRACE`.
struct Reconnect {
    down_since: Option<std::time::Instant>,
    backoff: Duration,
}

impl Default for Reconnect {
    fn default() -> Reconnect {
        Reconnect {
            down_since: None,
            backoff: FIRST_BACKOFF,
        }
    }
}

impl Reconnect {
    fn up(&mut self) {
        *self = Reconnect::default();
    }

    /// Waits before the next attempt; true when the outage is to be reported.
    async fn down(&mut self) -> bool {
        let since = *self.down_since.get_or_insert_with(std::time::Instant::now);
        let report = since.elapsed() >= OUTAGE_GRACE;
        tokio::time::sleep(self.backoff).await;
        if report {
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        }
        report
    }
}

/// The change a key's write or deletion makes, if any node acts on it.
fn change_of(key: &str) -> Option<Change> {
    let parts: Vec<&str> = key.split('/').collect();
    match parts.as_slice() {
        ["functions", function, "latest"] => Some(Change::Latest(function.to_string())),
        ["functions", function, "aliases", _] => Some(Change::Aliases(function.to_string())),
        ["deployments", id] | ["drivers", id] => Some(Change::Deployment(id.to_string())),
        ["purges", id] => Some(Change::Purge(id.to_string())),
        _ => None,
    }
}

/// The package digests a state value names (code of `$LATEST` or of a version).
fn digests_in(key: &str, value: &[u8]) -> Vec<String> {
    let parts: Vec<&str> = key.split('/').collect();
    let code = match parts.as_slice() {
        ["functions", _, "latest"] => serde_json::from_slice::<StoredCode>(value).ok(),
        ["functions", _, "versions", _] => serde_json::from_slice::<StoredVersion>(value).ok().map(|v| v.code),
        _ => None,
    };
    code.map(|c| c.digests().map(str::to_string).collect())
        .unwrap_or_default()
}

fn connect_options(settings: &EtcdSettings) -> Result<ConnectOptions, StoreError> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(CALL_TIMEOUT)
        // A member without a leader refuses at once rather than holding the call.
        .with_require_leader(true)
        .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
        .with_keep_alive_while_idle(true);
    if let Some((name, password)) = &settings.user {
        options = options.with_user(name.clone(), password.clone());
    }
    if settings.tls() {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| StoreError::Io {
                path: path.to_path_buf(),
                source,
            })
        };
        let mut tls = TlsOptions::new();
        if let Some(ca) = &settings.ca_file {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let Some((cert, key)) = &settings.identity {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        options = options.with_tls(tls);
    }
    Ok(options)
}

impl EtcdStore {
    /// Connects, loads the state at one revision and starts following it (on the current
    /// tokio runtime, which must outlive the store). `me` describes this node to the fleet.
    pub async fn connect(
        settings: &EtcdSettings,
        state_dir: &Path,
        me: NodeRecord,
    ) -> Result<Arc<EtcdStore>, StoreError> {
        let endpoints = settings.endpoints.join(", ");
        let unreachable = |e: etcd_client::Error| match store_error(e) {
            StoreError::Invalid(message) => StoreError::Invalid(format!("etcd at {endpoints}: {message}")),
            other => StoreError::Unavailable(format!("cannot reach etcd at {endpoints}: {other}")),
        };
        let client = Client::connect(&settings.endpoints, Some(connect_options(settings)?))
            .await
            .map_err(unreachable)?;
        let started_ms = now_ms();
        let instance = format!("{}@{started_ms}", me.name);
        let store = Arc::new(EtcdStore {
            client,
            state: format!("{}state/", settings.prefix),
            blobs: format!("{}blobs/", settings.prefix),
            node: me.name.clone(),
            instance: instance.clone(),
            start_revision: AtomicI64::new(0),
            handle: tokio::runtime::Handle::current(),
            mirror: RwLock::new(Mirror::default()),
            applied: tokio::sync::watch::channel(0).0,
            package_dir: state_dir.join("packages"),
            packages: Mutex::new(HashMap::new()),
            lease: AtomicI64::new(0),
            problems: Mutex::new(Problems::default()),
            changes: tokio::sync::broadcast::channel(4096).0,
            record: Mutex::new(NodeRecord {
                instance,
                started_ms,
                version: env!("CARGO_PKG_VERSION").to_string(),
                ..me
            }),
            last_counts: Mutex::new(None),
            left: tokio::sync::watch::channel(false).0,
        });
        store.reload().await.map_err(|e| match e {
            StoreError::Unavailable(message) => {
                StoreError::Unavailable(format!("cannot reach etcd at {endpoints}: {message}"))
            }
            other => other,
        })?;
        let lease = store
            .client
            .clone()
            .lease_grant(LEASE_TTL, None)
            .await
            .map_err(unreachable)?
            .id();
        store.lease.store(lease, Ordering::SeqCst);
        store.write_record().await?;
        // Purges older than this process are nothing to its empty cache.
        let start_revision = store.mirror.read().revision;
        store.start_revision.store(start_revision, Ordering::SeqCst);
        tokio::spawn(store.clone().until_left(store.clone().follow()));
        tokio::spawn(store.clone().until_left(store.clone().heartbeat()));
        Ok(store)
    }

    /// Runs `work` until this node leaves the fleet.
    async fn until_left(self: Arc<Self>, work: impl std::future::Future<Output = ()>) {
        let mut left = self.left.subscribe();
        tokio::select! {
            _ = work => {}
            _ = left.wait_for(|left| *left) => {}
        }
    }

    fn key(&self, relative: &str) -> String {
        format!("{}{relative}", self.state)
    }

    fn entry(&self, relative: &str) -> Option<Entry> {
        self.mirror.read().entries.get(relative).cloned()
    }

    /// The entries under `relative` (which ends with `/`), with their keys relative to it.
    fn entries_under(&self, relative: &str) -> Vec<(String, Entry)> {
        let mirror = self.mirror.read();
        mirror
            .entries
            .range(relative.to_string()..)
            .take_while(|(key, _)| key.starts_with(relative))
            .map(|(key, entry)| (key[relative.len()..].to_string(), entry.clone()))
            .collect()
    }

    fn parse<T: for<'de> Deserialize<'de>>(&self, relative: &str, entry: &Entry) -> Result<T, StoreError> {
        serde_json::from_slice(&entry.value).map_err(|e| damaged(&self.key(relative), e))
    }

    fn problem(&self) -> Option<String> {
        let problems = self.problems.lock();
        problems.watch.clone().or_else(|| problems.lease.clone())
    }

    /// Refuses a write while etcd is known to be out of reach.
    fn writable(&self) -> Result<(), StoreError> {
        match self.problem() {
            Some(reason) => Err(StoreError::Unavailable(reason)),
            None => Ok(()),
        }
    }

    fn lease_options(&self) -> PutOptions {
        PutOptions::new().with_lease(self.lease.load(Ordering::SeqCst))
    }

    /// Waits (bounded) until this node's copy holds `revision`, so that what a node wrote it
    /// reads back at once.
    async fn see(&self, revision: i64) {
        let mut applied = self.applied.subscribe();
        let _ = tokio::time::timeout(SEE_OWN_WRITE, applied.wait_for(|seen| *seen >= revision)).await;
    }

    /// Runs a transaction; one whose outcome is unknown is run again (so a caller whose
    /// transaction compares must recognise its own earlier success). A successful one is
    /// waited for in this node's copy.
    async fn txn(&self, txn: Txn) -> Result<etcd_client::TxnResponse, StoreError> {
        self.writable()?;
        let mut attempt = 0;
        let response = loop {
            let (client, call) = (self.client.clone(), txn.clone());
            let outcome = self
                .handle
                .spawn(async move {
                    with_retries(|| {
                        let (mut client, call) = (client.clone(), call.clone());
                        async move { client.txn(call).await }
                    })
                    .await
                })
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?
                .map_err(store_error);
            match outcome {
                Err(StoreError::Unavailable(reason)) if attempt < TXN_RETRIES => {
                    attempt += 1;
                    tracing::debug!(target: "edgehook::store", %reason, attempt, "etcd call failed; trying again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                outcome => break outcome?,
            }
        };
        if response.succeeded() {
            if let Some(header) = response.header() {
                self.see(header.revision()).await;
            }
        }
        Ok(response)
    }

    async fn put(&self, relative: &str, value: Vec<u8>, options: Option<PutOptions>) -> Result<(), StoreError> {
        let txn = Txn::new().and_then([TxnOp::put(self.key(relative), value, options)]);
        self.txn(txn).await.map(|_| ())
    }

    async fn get(&self, key: String, options: Option<GetOptions>) -> Result<etcd_client::GetResponse, StoreError> {
        let client = self.client.clone();
        self.handle
            .spawn(async move {
                with_retries(|| {
                    let (mut client, key, options) = (client.clone(), key.clone(), options.clone());
                    async move { client.get(key, options).await }
                })
                .await
            })
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
            .map_err(store_error)
    }

    fn package_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::Invalid(format!("`{digest}` is not a package digest")));
        }
        Ok(self.package_dir.join(format!("{digest}.zip")))
    }

    /// A package named by the state, from memory or this node's copy on disk.
    fn package(&self, digest: &str) -> Result<Arc<Package>, StoreError> {
        if let Some(package) = self.packages.lock().get(digest) {
            return Ok(package.clone());
        }
        let path = self.package_path(digest)?;
        let data = std::fs::read(&path)
            .map_err(|_| StoreError::Unavailable(format!("package {digest} has not reached this node yet")))?;
        let package = Package::from_zip(&data, Limits::ORIGIN).map_err(|e| StoreError::Damaged {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if package.digest() != digest {
            return Err(StoreError::Damaged {
                path,
                message: format!("its files have digest {}", package.digest()),
            });
        }
        let package = Arc::new(package);
        self.packages.lock().insert(digest.to_string(), package.clone());
        Ok(package)
    }

    /// Stores a package in etcd once (chunks first, then the manifest that makes it whole).
    async fn put_package(&self, package: &Package) -> Result<String, StoreError> {
        let digest = package.digest().to_string();
        let manifest_key = format!("{}{digest}", self.blobs);
        let present = self
            .get(manifest_key.clone(), Some(GetOptions::new().with_count_only()))
            .await?;
        if present.count() == 0 {
            let zip = package.to_zip();
            let chunks: Vec<&[u8]> = zip.chunks(CHUNK).collect();
            for (index, chunk) in chunks.iter().enumerate() {
                let txn = Txn::new().and_then([TxnOp::put(format!("{manifest_key}/{index}"), chunk.to_vec(), None)]);
                self.txn(txn).await?;
            }
            let manifest = BlobManifest {
                size: zip.len(),
                chunks: chunks.len(),
            };
            self.txn(Txn::new().and_then([TxnOp::put(manifest_key, json(&manifest)?, None)]))
                .await?;
        }
        self.keep_package(package)?;
        Ok(digest)
    }

    /// Keeps a package this node has on disk, as a fetched one would be.
    fn keep_package(&self, package: &Package) -> Result<(), StoreError> {
        let path = self.package_path(package.digest())?;
        if !path.exists() {
            super::local::write_atomic(&path, &package.to_zip())?;
        }
        Ok(())
    }

    /// Fetches a package from etcd into this node's copy, unless it is there already.
    async fn fetch_package(&self, digest: &str) -> Result<(), StoreError> {
        if self.package_path(digest)?.exists() {
            return Ok(());
        }
        let manifest_key = format!("{}{digest}", self.blobs);
        let response = self.get(manifest_key.clone(), None).await?;
        let Some(kv) = response.kvs().first() else {
            return Err(damaged(&manifest_key, "the package is missing"));
        };
        let manifest: BlobManifest = serde_json::from_slice(kv.value()).map_err(|e| damaged(&manifest_key, e))?;
        let mut zip = Vec::with_capacity(manifest.size);
        for index in 0..manifest.chunks {
            let key = format!("{manifest_key}/{index}");
            let response = self.get(key.clone(), None).await?;
            let chunk = response
                .kvs()
                .first()
                .ok_or_else(|| damaged(&key, "a chunk is missing"))?;
            zip.extend_from_slice(chunk.value());
        }
        let package = Package::from_zip(&zip, Limits::ORIGIN).map_err(|e| damaged(&manifest_key, e))?;
        if package.digest() != digest {
            return Err(damaged(
                &manifest_key,
                format!("its files have digest {}", package.digest()),
            ));
        }
        self.keep_package(&package)
    }

    async fn stored(&self, code: &FunctionCode) -> Result<StoredCode, StoreError> {
        for package in super::kept_packages(code) {
            self.put_package(package).await?;
        }
        StoredCode::of(code, |package| Ok(package.digest().to_string()))
    }

    /// Fetches the packages a state value names. A package etcd holds damaged is logged and
    /// left out (the code naming it then fails to load with that message); only an
    /// unreachable etcd stops the caller.
    async fn fetch_named(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        for digest in digests_in(key, value) {
            match self.fetch_package(&digest).await {
                Ok(()) => {}
                Err(StoreError::Unavailable(reason)) => return Err(StoreError::Unavailable(reason)),
                Err(error) => tracing::error!(target: "edgehook::store", key, %error, "a package cannot be fetched"),
            }
        }
        Ok(())
    }

    /// Reads the whole state at one revision (fetching the packages it names), replaces this
    /// node's copy with it, and tells the followers that anything may have changed.
    async fn reload(&self) -> Result<(), StoreError> {
        let response = self
            .get(self.state.clone(), Some(GetOptions::new().with_prefix()))
            .await?;
        let revision = response.header().map_or(0, |h| h.revision());
        let mut entries = BTreeMap::new();
        for kv in response.kvs() {
            let Some(relative) = kv.key_str().ok().and_then(|k| k.strip_prefix(&self.state)) else {
                continue;
            };
            entries.insert(
                relative.to_string(),
                Entry {
                    value: kv.value().to_vec(),
                    create_revision: kv.create_revision(),
                    mod_revision: kv.mod_revision(),
                    lease: kv.lease(),
                },
            );
        }
        for (key, entry) in &entries {
            self.fetch_named(key, &entry.value).await?;
        }
        *self.mirror.write() = Mirror { revision, entries };
        self.applied.send_replace(revision);
        let _ = self.changes.send(Change::Everything);
        Ok(())
    }

    /// Follows the state for as long as the process lives: watches from the revision after
    /// the one held; when the watch breaks, reports it, waits and watches again from where
    /// it was (or reads everything again when etcd compacted that revision away).
    async fn follow(self: Arc<Self>) {
        let mut reconnect = Reconnect::default();
        loop {
            match self.watch(&mut reconnect).await {
                Ok(()) => reconnect.up(),
                Err(reason) => {
                    if reconnect.down().await {
                        let mut problems = self.problems.lock();
                        if problems.watch.is_none() {
                            tracing::warn!(target: "edgehook::store", %reason, "lost etcd; serving the last state");
                        }
                        problems.watch = Some(format!("lost etcd: {reason}"));
                    }
                }
            }
        }
    }

    /// One watch, until it breaks (`Err`) or must start again (`Ok`, after a reload).
    async fn watch(&self, reconnect: &mut Reconnect) -> Result<(), String> {
        let start = self.mirror.read().revision + 1;
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(start)
            .with_progress_notify();
        let mut client = self.client.clone();
        let mut stream = client
            .watch(self.state.clone(), Some(options))
            .await
            .map_err(|e| e.to_string())?;
        loop {
            let Some(response) = stream.message().await.map_err(|e| e.to_string())? else {
                return Err("etcd ended the watch".into());
            };
            if response.compact_revision() > 0 || response.canceled() {
                tracing::info!(
                    target: "edgehook::store",
                    compacted = response.compact_revision(),
                    reason = response.cancel_reason(),
                    "the watch revision is gone; reading the whole state again"
                );
                self.reload().await.map_err(|e| e.to_string())?;
                return Ok(());
            }
            if response.created() {
                reconnect.up();
                if self.problems.lock().watch.take().is_some() {
                    tracing::info!(target: "edgehook::store", "etcd is back; catching up");
                }
                continue;
            }
            let header_revision = response.header().map_or(0, |h| h.revision());
            if response.events().is_empty() {
                // A progress notice: every change up to its revision has been sent.
                self.advance(header_revision, Vec::new());
                continue;
            }
            // Packages the new code names are fetched before the code is taken in.
            let mut last = 0;
            for event in response.events() {
                if let Some(kv) = event.kv() {
                    last = last.max(kv.mod_revision());
                    if event.event_type() == EventType::Put {
                        if let Some(relative) = kv.key_str().ok().and_then(|k| k.strip_prefix(&self.state)) {
                            self.fetch_named(relative, kv.value())
                                .await
                                .map_err(|e| e.to_string())?;
                        }
                    }
                }
            }
            let mut changes = Vec::new();
            {
                let mut mirror = self.mirror.write();
                for event in response.events() {
                    let Some(kv) = event.kv() else { continue };
                    let Some(relative) = kv.key_str().ok().and_then(|k| k.strip_prefix(&self.state)) else {
                        continue;
                    };
                    match event.event_type() {
                        EventType::Put => {
                            mirror.entries.insert(
                                relative.to_string(),
                                Entry {
                                    value: kv.value().to_vec(),
                                    create_revision: kv.create_revision(),
                                    mod_revision: kv.mod_revision(),
                                    lease: kv.lease(),
                                },
                            );
                        }
                        EventType::Delete => {
                            mirror.entries.remove(relative);
                        }
                    }
                    if let Some(change) = change_of(relative) {
                        if !changes.contains(&change) {
                            changes.push(change);
                        }
                    }
                }
            }
            self.advance(last, changes);
        }
    }

    fn advance(&self, revision: i64, changes: Vec<Change>) {
        {
            let mut mirror = self.mirror.write();
            mirror.revision = mirror.revision.max(revision);
            self.applied.send_replace(mirror.revision);
        }
        for change in changes {
            let _ = self.changes.send(change);
        }
    }

    /// Keeps this node's lease alive and its record current; grants a new lease (and
    /// rewrites the record) when etcd let the old one expire.
    async fn heartbeat(self: Arc<Self>) {
        let mut reconnect = Reconnect::default();
        loop {
            match self.keep_alive(&mut reconnect).await {
                Ok(()) => reconnect.up(),
                Err(reason) => {
                    if reconnect.down().await {
                        self.problems.lock().lease = Some(format!("lost etcd: {reason}"));
                    }
                }
            }
        }
    }

    async fn keep_alive(&self, reconnect: &mut Reconnect) -> Result<(), String> {
        let mut client = self.client.clone();
        let lease = self.lease.load(Ordering::SeqCst);
        let (mut keeper, mut responses) = client.lease_keep_alive(lease).await.map_err(|e| e.to_string())?;
        let mut ticks = tokio::time::interval(HEARTBEAT);
        loop {
            ticks.tick().await;
            keeper.keep_alive().await.map_err(|e| e.to_string())?;
            let response = tokio::time::timeout(Duration::from_secs(3), responses.message())
                .await
                .map_err(|_| "etcd did not answer the lease keep-alive".to_string())?
                .map_err(|e| e.to_string())?
                .ok_or("etcd ended the lease keep-alive")?;
            if response.ttl() <= 0 {
                let granted = client.lease_grant(LEASE_TTL, None).await.map_err(|e| e.to_string())?;
                tracing::warn!(target: "edgehook::store", "this node's etcd lease expired; registering again");
                self.lease.store(granted.id(), Ordering::SeqCst);
                self.problems.lock().lease = None;
                *self.last_counts.lock() = None;
                self.write_record().await.map_err(|e| e.to_string())?;
                return Ok(());
            }
            self.problems.lock().lease = None;
            reconnect.up();
            self.write_record().await.map_err(|e| e.to_string())?;
        }
    }

    /// Writes this node's record, with the revision it holds and the time of this contact.
    async fn write_record(&self) -> Result<(), StoreError> {
        let record = {
            let mut record = self.record.lock();
            record.revision = self.mirror.read().revision.max(0) as u64;
            record.last_contact_ms = now_ms();
            record.clone()
        };
        let key = self.key(&format!("nodes/{}", self.node));
        let txn = Txn::new().and_then([TxnOp::put(key, json(&record)?, Some(self.lease_options()))]);
        let client = self.client.clone();
        self.handle
            .spawn(async move { client.clone().txn(txn).await })
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
            .map_err(store_error)?;
        Ok(())
    }

    fn version_entries(&self, function: &str) -> Vec<(u32, String, Entry)> {
        let mut list: Vec<(u32, String, Entry)> = self
            .entries_under(&format!("functions/{function}/versions/"))
            .into_iter()
            .filter_map(|(number, entry)| Some((number.parse().ok()?, number, entry)))
            .collect();
        list.sort_by_key(|(number, ..)| *number);
        list
    }

    fn record_of(&self, id: &str) -> Option<(DeploymentRecord, Entry)> {
        let relative = format!("deployments/{id}");
        let entry = self.entry(&relative)?;
        let record = self.parse(&relative, &entry).ok()?;
        Some((record, entry))
    }
}

#[async_trait]
impl StateStore for EtcdStore {
    fn kind(&self) -> &'static str {
        "etcd"
    }

    fn node(&self) -> &str {
        &self.node
    }

    fn instance(&self) -> &str {
        &self.instance
    }

    fn health(&self) -> StoreHealth {
        match self.problem() {
            Some(reason) => StoreHealth::Degraded(reason),
            None => StoreHealth::Connected,
        }
    }

    fn revision(&self) -> u64 {
        self.mirror.read().revision.max(0) as u64
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    fn latest(&self, function: &str) -> Result<Option<FunctionCode>, StoreError> {
        let relative = format!("functions/{function}/latest");
        let Some(entry) = self.entry(&relative) else {
            return Ok(None);
        };
        let stored: StoredCode = self.parse(&relative, &entry)?;
        stored.load(|digest| self.package(digest)).map(Some)
    }

    async fn put_latest(&self, function: &str, code: &FunctionCode) -> Result<(), StoreError> {
        self.writable()?;
        let stored = self.stored(code).await?;
        self.put(&format!("functions/{function}/latest"), json(&stored)?, None)
            .await
    }

    fn version(&self, function: &str, version: u32) -> Result<Option<Version>, StoreError> {
        let relative = format!("functions/{function}/versions/{version}");
        let Some(entry) = self.entry(&relative) else {
            return Ok(None);
        };
        let stored: StoredVersion = self.parse(&relative, &entry)?;
        Ok(Some(Version {
            version: stored.version,
            published_at: stored.published_at,
            code: stored.code.load(|digest| self.package(digest))?,
        }))
    }

    fn version_list(&self, function: &str) -> Result<Vec<VersionInfo>, StoreError> {
        self.version_entries(function)
            .into_iter()
            .map(|(_, number, entry)| {
                let stored: StoredVersion = self.parse(&format!("functions/{function}/versions/{number}"), &entry)?;
                Ok((stored.version, stored.published_at, stored.code.handler))
            })
            .collect()
    }

    async fn publish(&self, function: &str, code: &FunctionCode, now: u64) -> Result<u32, StoreError> {
        self.writable()?;
        let stored = self.stored(code).await?;
        let versions = format!("functions/{function}/versions/");
        // The next number after the highest this node has seen; a node that lost the race
        // learns the highest from the failed transaction and tries the one after.
        let mut next = self.version_entries(function).last().map_or(1, |(n, ..)| n + 1);
        let publish = format!("{}/{:016x}", self.instance, rand::random::<u64>());
        for _ in 0..64 {
            let version = StoredVersion {
                version: next,
                published_at: now,
                code: stored.clone(),
                publish: publish.clone(),
            };
            let key = self.key(&format!("{versions}{next}"));
            let txn = Txn::new()
                .when([Compare::version(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key.clone(), json(&version)?, None)])
                .or_else([
                    TxnOp::get(
                        self.key(&versions),
                        Some(GetOptions::new().with_prefix().with_keys_only()),
                    ),
                    TxnOp::get(key.clone(), None),
                ]);
            let response = self.txn(txn).await?;
            if response.succeeded() || holds(&response, &key, &json(&version)?) {
                return Ok(next);
            }
            let highest = response
                .op_responses()
                .into_iter()
                .filter_map(|op| match op {
                    TxnOpResponse::Get(get) => Some(get),
                    _ => None,
                })
                .flat_map(|get| {
                    get.kvs()
                        .iter()
                        .filter_map(|kv| kv.key_str().ok()?.rsplit('/').next()?.parse::<u32>().ok())
                        .collect::<Vec<_>>()
                })
                .max()
                .unwrap_or(next);
            next = highest.max(next) + 1;
        }
        Err(StoreError::Conflict(format!(
            "could not take a version number of `{function}`: too many publishes at once"
        )))
    }

    fn aliases(&self, function: &str) -> Result<BTreeMap<String, Alias>, StoreError> {
        let under = format!("functions/{function}/aliases/");
        self.entries_under(&under)
            .into_iter()
            .map(|(alias, entry)| {
                let value: Alias = self.parse(&format!("{under}{alias}"), &entry)?;
                Ok((alias, value))
            })
            .collect()
    }

    async fn put_alias(&self, function: &str, alias: &str, value: Alias) -> Result<(), StoreError> {
        self.writable()?;
        check_alias(function, alias, &value, |_| true)?;
        // The versions must exist in etcd, not only in this node's copy.
        let named: Vec<u32> = std::iter::once(value.version)
            .chain(value.additional_version.map(|w| w.version))
            .collect();
        let compares: Vec<Compare> = named
            .iter()
            .map(|v| {
                Compare::create_revision(
                    self.key(&format!("functions/{function}/versions/{v}")),
                    CompareOp::Greater,
                    0,
                )
            })
            .collect();
        let txn = Txn::new().when(compares).and_then([TxnOp::put(
            self.key(&format!("functions/{function}/aliases/{alias}")),
            json(&value)?,
            None,
        )]);
        if self.txn(txn).await?.succeeded() {
            return Ok(());
        }
        let missing = named
            .into_iter()
            .find(|v| self.entry(&format!("functions/{function}/versions/{v}")).is_none())
            .unwrap_or(value.version);
        Err(StoreError::NoSuchVersion {
            function: function.to_string(),
            version: missing,
        })
    }

    fn deployments(&self) -> Vec<DeploymentRecord> {
        let mut records: Vec<DeploymentRecord> = self
            .entries_under("deployments/")
            .into_iter()
            .filter_map(|(id, entry)| self.parse(&format!("deployments/{id}"), &entry).ok())
            .collect();
        records.sort_by_key(|r: &DeploymentRecord| r.id.trim_start_matches("d-").parse::<u64>().unwrap_or(0));
        records
    }

    async fn begin_deployment(&self, mut record: DeploymentRecord) -> Result<DeploymentRecord, StoreError> {
        self.writable()?;
        let counter = self.key("deployment-ids");
        let active = self.key(&format!("active/{}/{}", record.function, record.alias));
        for _ in 0..64 {
            let current = self.get(counter.clone(), None).await?;
            let (last, guard) = match current.kvs().first() {
                Some(kv) => (
                    kv.value_str().ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0),
                    Compare::mod_revision(counter.clone(), CompareOp::Equal, kv.mod_revision()),
                ),
                None => (0, Compare::version(counter.clone(), CompareOp::Equal, 0)),
            };
            record.id = format!("d-{}", last + 1);
            record.driver = self.node.clone();
            let txn = Txn::new()
                .when([guard, Compare::version(active.clone(), CompareOp::Equal, 0)])
                .and_then([
                    TxnOp::put(counter.clone(), (last + 1).to_string(), None),
                    TxnOp::put(active.clone(), record.id.clone(), None),
                    TxnOp::put(self.key(&format!("deployments/{}", record.id)), json(&record)?, None),
                    TxnOp::put(
                        self.key(&format!("drivers/{}", record.id)),
                        self.instance.clone(),
                        Some(self.lease_options()),
                    ),
                ])
                .or_else([
                    TxnOp::get(active.clone(), None),
                    TxnOp::get(self.key(&format!("deployments/{}", record.id)), None),
                ]);
            let response = self.txn(txn).await?;
            let mine = holds(
                &response,
                &self.key(&format!("deployments/{}", record.id)),
                &json(&record)?,
            );
            if response.succeeded() || mine {
                return Ok(record);
            }
            let running = response.op_responses().into_iter().find_map(|op| match op {
                TxnOpResponse::Get(get) => get.kvs().first().and_then(|kv| kv.value_str().ok().map(str::to_string)),
                _ => None,
            });
            if let Some(running) = running {
                return Err(StoreError::Conflict(format!(
                    "deployment {running} is already moving alias `{}`",
                    record.alias
                )));
            }
        }
        Err(StoreError::Conflict(
            "could not take a deployment id: too many deployments at once".into(),
        ))
    }

    async fn save_deployment(&self, record: &DeploymentRecord) -> Result<(), StoreError> {
        self.writable()?;
        let driver = self.key(&format!("drivers/{}", record.id));
        let mut then = vec![TxnOp::put(
            self.key(&format!("deployments/{}", record.id)),
            json(record)?,
            None,
        )];
        if record.state != State::InProgress {
            then.push(TxnOp::delete(driver.clone(), None));
        }
        let txn = Txn::new()
            .when([Compare::value(driver, CompareOp::Equal, self.instance.clone())])
            .and_then(then);
        if !self.txn(txn).await?.succeeded() {
            return Err(StoreError::NotDriver(record.id.clone()));
        }
        if record.state != State::InProgress {
            let active = self.key(&format!("active/{}/{}", record.function, record.alias));
            let txn = Txn::new()
                .when([Compare::value(active.clone(), CompareOp::Equal, record.id.clone())])
                .and_then([TxnOp::delete(active, None)]);
            self.txn(txn).await?;
        }
        Ok(())
    }

    async fn take_over(&self, id: &str) -> Result<bool, StoreError> {
        self.writable()?;
        let Some((record, entry)) = self.record_of(id) else {
            return Ok(false);
        };
        if record.state != State::InProgress {
            return Ok(false);
        }
        let driver = self.key(&format!("drivers/{id}"));
        let txn = Txn::new()
            .when([
                Compare::version(driver.clone(), CompareOp::Equal, 0),
                Compare::mod_revision(
                    self.key(&format!("deployments/{id}")),
                    CompareOp::Equal,
                    entry.mod_revision,
                ),
            ])
            .and_then([TxnOp::put(
                driver.clone(),
                self.instance.clone(),
                Some(self.lease_options()),
            )])
            .or_else([TxnOp::get(driver.clone(), None)]);
        let response = self.txn(txn).await?;
        Ok(response.succeeded() || holds(&response, &driver, self.instance.as_bytes()))
    }

    fn driven(&self, id: &str) -> bool {
        self.entry(&format!("drivers/{id}")).is_some()
    }

    async fn report_counts(&self, counts: BTreeMap<String, Counts>) -> Result<(), StoreError> {
        let report = NodeCounts {
            instance: self.instance.clone(),
            counts,
        };
        if self.last_counts.lock().as_ref() == Some(&report) {
            return Ok(());
        }
        self.put(
            &format!("counts/{}", self.node),
            json(&report)?,
            Some(self.lease_options()),
        )
        .await?;
        *self.last_counts.lock() = Some(report);
        Ok(())
    }

    fn peer_counts(&self, key: &str) -> BTreeMap<String, Counts> {
        self.entries_under("counts/")
            .into_iter()
            .filter_map(|(node, entry)| {
                let report: NodeCounts = self.parse(&format!("counts/{node}"), &entry).ok()?;
                let counts = *report.counts.get(key)?;
                (report.instance != self.instance).then_some((report.instance, counts))
            })
            .collect()
    }

    async fn request_purge(&self, distribution: String, paths: Vec<String>) -> Result<PurgeRecord, StoreError> {
        self.writable()?;
        let record = PurgeRecord {
            id: format!("p-{}-{:08x}", now_ms(), rand::random::<u32>()),
            distribution,
            paths,
            requested_ms: now_ms(),
            requested_by: self.node.clone(),
        };
        let client = self.client.clone();
        let lease = self
            .handle
            .spawn(async move { client.clone().lease_grant(PURGE_TTL, None).await })
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
            .map_err(store_error)?
            .id();
        self.put(
            &format!("purges/{}", record.id),
            json(&record)?,
            Some(PutOptions::new().with_lease(lease)),
        )
        .await?;
        Ok(record)
    }

    async fn ack_purge(&self, id: &str, ack: PurgeAck) -> Result<(), StoreError> {
        let Some(purge) = self.entry(&format!("purges/{id}")) else {
            return Ok(());
        };
        self.put(
            &format!("purges/{id}/acks/{}", self.node),
            json(&ack)?,
            Some(PutOptions::new().with_lease(purge.lease)),
        )
        .await
    }

    fn purge_status(&self, id: &str) -> Option<PurgeStatus> {
        let relative = format!("purges/{id}");
        let purge: PurgeRecord = self.parse(&relative, &self.entry(&relative)?).ok()?;
        let applied: BTreeMap<String, PurgeAck> = self
            .entries_under(&format!("{relative}/acks/"))
            .into_iter()
            .filter_map(|(node, entry)| {
                Some((
                    node.clone(),
                    self.parse(&format!("{relative}/acks/{node}"), &entry).ok()?,
                ))
            })
            .collect();
        // Nodes that started after the purge had nothing to purge.
        let pending = self
            .nodes()
            .into_iter()
            .filter(|n| n.started_ms <= purge.requested_ms && !applied.contains_key(&n.name))
            .map(|n| n.name)
            .collect();
        Some(PurgeStatus {
            purge,
            applied,
            pending,
        })
    }

    fn pending_purges(&self) -> Vec<PurgeRecord> {
        let mine = format!("/acks/{}", self.node);
        let all = self.entries_under("purges/");
        let acked: BTreeSet<&str> = all.iter().filter_map(|(key, _)| key.strip_suffix(&mine)).collect();
        all.iter()
            .filter(|(key, entry)| {
                !key.contains('/') && entry.create_revision > self.start_revision.load(Ordering::SeqCst)
            })
            .filter(|(key, _)| !acked.contains(key.as_str()))
            .filter_map(|(key, entry)| self.parse(&format!("purges/{key}"), entry).ok())
            .collect()
    }

    async fn report_node(&self, serving: Vec<String>) -> Result<(), StoreError> {
        self.record.lock().serving = serving;
        Ok(())
    }

    /// Gives up this node's lease, so that its records go at once (on a clean shutdown).
    async fn leave(&self) {
        self.left.send_replace(true);
        let lease = self.lease.swap(0, Ordering::SeqCst);
        if lease != 0 {
            let _ = self.client.clone().lease_revoke(lease).await;
        }
    }

    fn nodes(&self) -> Vec<NodeRecord> {
        self.entries_under("nodes/")
            .into_iter()
            .filter_map(|(node, entry)| self.parse(&format!("nodes/{node}"), &entry).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_changes_nodes_act_on() {
        assert_eq!(change_of("functions/f/latest"), Some(Change::Latest("f".into())));
        assert_eq!(change_of("functions/f/aliases/live"), Some(Change::Aliases("f".into())));
        assert_eq!(change_of("functions/f/versions/3"), None);
        assert_eq!(change_of("deployments/d-4"), Some(Change::Deployment("d-4".into())));
        assert_eq!(change_of("drivers/d-4"), Some(Change::Deployment("d-4".into())));
        assert_eq!(change_of("purges/p-1"), Some(Change::Purge("p-1".into())));
        assert_eq!(change_of("purges/p-1/acks/edge-1"), None);
        assert_eq!(change_of("nodes/edge-1"), None);
    }
}
