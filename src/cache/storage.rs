//! `MemoryStorage`: the in-memory pingora-cache storage that `serve` uses. Complete objects live
//! in sharded maps keyed by the cache key hash; each stored object gets an entry id so that an
//! eviction decided for an old object never removes its newer replacement. The byte bound is
//! kept by pingora's LRU eviction manager (see `cache::CacheLayer`), which is told the size of
//! every object this storage reports from `finish`.

use super::paths::PathIndex;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use parking_lot::RwLock;
use pingora::cache::eviction::{CacheEntryId, CacheEntryKey};
use pingora::cache::key::{CacheHashKey, CompactCacheKey, HashBinary};
use pingora::cache::storage::{
    HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget, PurgeType,
};
use pingora::cache::trace::SpanHandle;
use pingora::cache::{CacheKey, CacheMeta, Storage};
use pingora::{Error, ErrorType, Result};
use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

const SHARDS: usize = 16;

struct StoredObject {
    id: u64,
    /// The key as pingora's eviction manager knows it; its user tag is the request path.
    key: CompactCacheKey,
    meta: StoredMeta,
    body: Bytes,
}

impl StoredObject {
    fn weight(&self) -> usize {
        self.body.len() + self.meta.weight
    }
}

/// A cached response's metadata: pingora's serialized internal part (times, variance), and the
/// response header kept parsed. pingora serializes the header compressed; decoding it again
/// on every hit was a fifth of a hit's instructions.
pub struct StoredMeta {
    internal: Vec<u8>,
    header: pingora::http::ResponseHeader,
    /// Set when `CacheMeta::new` with these times rebuilds `internal` exactly (no variance, no
    /// epoch override, never revalidated: most objects). Rebuilding so costs a third of decoding.
    plain_times: Option<PlainTimes>,
    /// What the serialized form weighs, counted against `cache.memory`.
    weight: usize,
}

#[derive(Clone, Copy)]
struct PlainTimes {
    fresh_until: std::time::SystemTime,
    created: std::time::SystemTime,
    stale_while_revalidate_sec: u32,
    stale_if_error_sec: u32,
}

impl PlainTimes {
    fn of(meta: &CacheMeta) -> PlainTimes {
        PlainTimes {
            fresh_until: meta.fresh_until(),
            created: meta.created(),
            stale_while_revalidate_sec: meta.stale_while_revalidate_sec(),
            stale_if_error_sec: meta.stale_if_error_sec(),
        }
    }

    fn meta(self, header: pingora::http::ResponseHeader) -> CacheMeta {
        CacheMeta::new(
            self.fresh_until,
            self.created,
            self.stale_while_revalidate_sec,
            self.stale_if_error_sec,
            header,
        )
    }
}

impl StoredMeta {
    fn of(meta: &CacheMeta) -> Result<StoredMeta> {
        Ok(StoredMeta::serialized(meta)?.0)
    }

    /// The stored form of `meta`, and its serialized header (what the disk tier writes).
    pub fn serialized(meta: &CacheMeta) -> Result<(StoredMeta, Vec<u8>)> {
        let (internal, header) = meta.serialize()?;
        let times = PlainTimes::of(meta);
        let (rebuilt, _) = times
            .meta(pingora::http::ResponseHeader::build(200, Some(0))?)
            .serialize()?;
        let stored = StoredMeta {
            weight: internal.len() + header.len(),
            plain_times: (rebuilt == internal).then_some(times),
            internal,
            header: meta.response_header_copy(),
        };
        Ok((stored, header))
    }

    /// The stored form rebuilt from what `serialized` gave (read back from disk): `meta` is
    /// those bytes decoded, `plain` whether `serialized` found its times plain.
    pub fn from_serialized(internal: Vec<u8>, header_len: usize, meta: &CacheMeta, plain: bool) -> StoredMeta {
        StoredMeta {
            weight: internal.len() + header_len,
            plain_times: plain.then(|| PlainTimes::of(meta)),
            internal,
            header: meta.response_header_copy(),
        }
    }

    pub fn internal(&self) -> &[u8] {
        &self.internal
    }

    /// Whether the times alone rebuild the internal part (see `plain_times`).
    pub fn is_plain(&self) -> bool {
        self.plain_times.is_some()
    }

    fn to_meta(&self) -> Result<CacheMeta> {
        if let Some(times) = self.plain_times {
            return Ok(times.meta(self.header.clone()));
        }
        let mut meta = CacheMeta::deserialize(&self.internal, placeholder_header()?)?;
        *meta.response_header_mut() = self.header.clone();
        Ok(meta)
    }
}

/// A serialized one-line header for `CacheMeta::deserialize`, which takes the internal part and
/// a header together; the stored header replaces it.
fn placeholder_header() -> Result<&'static [u8]> {
    static PLACEHOLDER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    if let Some(bytes) = PLACEHOLDER.get() {
        return Ok(bytes);
    }
    let header = pingora::http::ResponseHeader::build(200, Some(0))?;
    let (_, bytes) = CacheMeta::new(std::time::UNIX_EPOCH, std::time::UNIX_EPOCH, 0, 0, header).serialize()?;
    Ok(PLACEHOLDER.get_or_init(|| bytes))
}

type Shard = RwLock<HashMap<HashBinary, Arc<StoredObject>>>;

struct Shared {
    shards: Vec<Shard>,
    paths: PathIndex,
    next_id: AtomicU64,
    bytes: AtomicUsize,
    objects: AtomicUsize,
    max_object_size: usize,
}

impl Shared {
    fn shard(&self, hash: &HashBinary) -> &Shard {
        &self.shards[hash[0] as usize % SHARDS]
    }

    fn insert(&self, hash: HashBinary, object: StoredObject) {
        self.paths.add(object.key.user_tag(), hash);
        let weight = object.weight();
        let previous = self.shard(&hash).write().insert(hash, Arc::new(object));
        self.bytes.fetch_add(weight, Ordering::Relaxed);
        self.objects.fetch_add(1, Ordering::Relaxed);
        if let Some(previous) = previous {
            self.forget(&previous);
        }
    }

    fn forget(&self, object: &StoredObject) {
        self.bytes.fetch_sub(object.weight(), Ordering::Relaxed);
        self.objects.fetch_sub(1, Ordering::Relaxed);
    }

    /// Removes the object at `hash`, only if its id matches when one is given.
    fn remove(&self, hash: &HashBinary, only_id: Option<u64>) -> Option<Arc<StoredObject>> {
        let mut shard = self.shard(hash).write();
        let matches = shard.get(hash).is_some_and(|o| only_id.is_none_or(|id| o.id == id));
        let removed = if matches { shard.remove(hash) } else { None };
        drop(shard);
        if let Some(object) = &removed {
            self.paths.remove(object.key.user_tag(), hash);
            self.forget(object);
        }
        removed
    }
}

/// The bounded in-memory cache storage.
pub struct MemoryStorage {
    shared: Arc<Shared>,
}

/// An object removed by a path purge: the eviction manager must stop tracking it.
pub struct Purged {
    pub entry: CacheEntryKey,
}

impl MemoryStorage {
    pub fn new(max_object_size: usize) -> Self {
        MemoryStorage {
            shared: Arc::new(Shared {
                shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
                paths: PathIndex::new(),
                next_id: AtomicU64::new(1),
                bytes: AtomicUsize::new(0),
                objects: AtomicUsize::new(0),
                max_object_size,
            }),
        }
    }

    /// Bytes held by stored objects (bodies plus serialized headers).
    pub fn bytes(&self) -> usize {
        self.shared.bytes.load(Ordering::Relaxed)
    }

    pub fn objects(&self) -> usize {
        self.shared.objects.load(Ordering::Relaxed)
    }

    /// The largest body this tier keeps.
    pub fn max_object_size(&self) -> usize {
        self.shared.max_object_size
    }

    /// Stores a complete object (a disk hit promoted to memory); returns its entry id and what
    /// it weighs for the eviction manager.
    pub fn insert_object(&self, key: &CacheKey, meta: StoredMeta, body: Bytes) -> (CacheEntryId, usize) {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let object = StoredObject {
            id,
            key: key.to_compact(),
            meta,
            body,
        };
        let weight = object.weight();
        self.shared.insert(key.combined_bin(), object);
        (CacheEntryId::new(id), weight)
    }

    /// A miss handler for metadata already in its stored form.
    pub fn miss_handler(&self, key: &CacheKey, meta: StoredMeta) -> MissHandler {
        Box::new(MemoryMiss {
            shared: self.shared.clone(),
            hash: key.combined_bin(),
            key: key.to_compact(),
            meta,
            body: BytesMut::new(),
            id: self.shared.next_id.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Removes the object an eviction manager named, if that very object is still stored.
    pub fn remove_entry(&self, entry: &CacheEntryKey) -> bool {
        self.shared
            .remove(&entry.key().combined_bin(), entry.entry_id().map(CacheEntryId::get))
            .is_some()
    }

    /// Removes every object stored for request path `path`, whatever its host, query or
    /// variant; returns what was removed. Costs a lookup, not a scan.
    pub fn invalidate_path(&self, path: &str) -> Vec<Purged> {
        let mut purged = Vec::new();
        for hash in self.shared.paths.take(path) {
            let matches = self
                .shared
                .shard(&hash)
                .read()
                .get(&hash)
                .is_some_and(|o| o.key.user_tag() == path);
            if !matches {
                continue;
            }
            if let Some(object) = self.shared.remove(&hash, None) {
                purged.push(Purged {
                    entry: CacheEntryKey::identified(object.key.clone(), CacheEntryId::new(object.id)),
                });
            }
        }
        purged
    }

    /// Removes every object whose request path satisfies `matches`; returns what was removed.
    pub fn purge_paths(&self, matches: impl Fn(&str) -> bool) -> Vec<Purged> {
        let mut purged = Vec::new();
        for shard in &self.shared.shards {
            let mut shard = shard.write();
            shard.retain(|hash, object| {
                if matches(object.key.user_tag()) {
                    self.shared.paths.remove(object.key.user_tag(), hash);
                    purged.push(Purged {
                        entry: CacheEntryKey::identified(object.key.clone(), CacheEntryId::new(object.id)),
                    });
                    self.shared.bytes.fetch_sub(object.weight(), Ordering::Relaxed);
                    self.shared.objects.fetch_sub(1, Ordering::Relaxed);
                    false
                } else {
                    true
                }
            });
        }
        purged
    }
}

struct MemoryHit {
    object: Arc<StoredObject>,
    start: usize,
    end: usize,
    done: bool,
}

#[async_trait]
impl HandleHit for MemoryHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        Ok(Some(self.object.body.slice(self.start..self.end)))
    }

    async fn finish(self: Box<Self>, _: &'static (dyn Storage + Sync), _: &CacheKey, _: &SpanHandle) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let len = self.object.body.len();
        if start >= len {
            return Error::e_explain(
                ErrorType::InternalError,
                format!("seek start {start} beyond body length {len}"),
            );
        }
        self.start = start;
        self.end = end.map_or(len, |end| end.min(len));
        self.done = false;
        Ok(())
    }

    fn get_eviction_weight(&self) -> usize {
        self.object.weight()
    }

    fn entry_id(&self) -> Option<CacheEntryId> {
        Some(CacheEntryId::new(self.object.id))
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

struct MemoryMiss {
    shared: Arc<Shared>,
    hash: HashBinary,
    key: CompactCacheKey,
    meta: StoredMeta,
    body: BytesMut,
    id: u64,
}

#[async_trait]
impl HandleMiss for MemoryMiss {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        if self.body.len() + data.len() > self.shared.max_object_size {
            return Error::e_explain(ErrorType::InternalError, "object larger than cache.max_object_size");
        }
        self.body.extend_from_slice(&data);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        let this = *self;
        let object = StoredObject {
            id: this.id,
            key: this.key,
            meta: this.meta,
            body: this.body.freeze(),
        };
        let weight = object.weight();
        this.shared.insert(this.hash, object);
        Ok(MissFinishType::Created(weight))
    }

    fn entry_id(&self) -> Option<CacheEntryId> {
        Some(CacheEntryId::new(self.id))
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn lookup(&'static self, key: &CacheKey, _: &SpanHandle) -> Result<Option<(CacheMeta, HitHandler)>> {
        let hash = key.combined_bin();
        let Some(object) = self.shared.shard(&hash).read().get(&hash).cloned() else {
            return Ok(None);
        };
        let meta = object.meta.to_meta()?;
        let end = object.body.len();
        Ok(Some((
            meta,
            Box::new(MemoryHit {
                object,
                start: 0,
                end,
                done: false,
            }),
        )))
    }

    async fn get_miss_handler(&'static self, key: &CacheKey, meta: &CacheMeta, _: &SpanHandle) -> Result<MissHandler> {
        Ok(self.miss_handler(key, StoredMeta::of(meta)?))
    }

    async fn purge(&'static self, target: PurgeTarget<'_>, _: PurgeType, _: &SpanHandle) -> Result<PurgeOutcome> {
        let only_id = match target {
            PurgeTarget::Exact(entry) => entry.entry_id().map(CacheEntryId::get),
            PurgeTarget::Active(_) => None,
        };
        match self.shared.remove(&target.key().combined_bin(), only_id) {
            Some(object) => Ok(PurgeOutcome::Purged(Some(CacheEntryId::new(object.id)))),
            None => Ok(PurgeOutcome::NotFound),
        }
    }

    async fn update_meta(&'static self, key: &CacheKey, meta: &CacheMeta, _: &SpanHandle) -> Result<bool> {
        let hash = key.combined_bin();
        let stored = StoredMeta::of(meta)?;
        let mut shard = self.shared.shard(&hash).write();
        let Some(current) = shard.get(&hash) else {
            return Ok(false);
        };
        let replacement = StoredObject {
            id: current.id,
            key: current.key.clone(),
            meta: stored,
            body: current.body.clone(),
        };
        let (old_weight, new_weight) = (current.weight(), replacement.weight());
        shard.insert(hash, Arc::new(replacement));
        drop(shard);
        self.shared.bytes.fetch_add(new_weight, Ordering::Relaxed);
        self.shared.bytes.fetch_sub(old_weight, Ordering::Relaxed);
        Ok(true)
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::cache::trace::Span;
    use pingora::http::ResponseHeader;
    use std::time::{Duration, SystemTime};

    fn storage() -> &'static MemoryStorage {
        Box::leak(Box::new(MemoryStorage::new(1 << 20)))
    }

    fn meta() -> CacheMeta {
        let header = ResponseHeader::build(200, None).unwrap();
        let now = SystemTime::now();
        CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, header)
    }

    async fn store(storage: &'static MemoryStorage, path: &str, body: &'static [u8]) -> CacheKey {
        let key = CacheKey::new(path, path);
        let span = Span::inactive().handle();
        let mut miss = storage.get_miss_handler(&key, &meta(), &span).await.unwrap();
        miss.write_body(Bytes::from_static(body), true).await.unwrap();
        miss.finish().await.unwrap();
        key
    }

    async fn read(storage: &'static MemoryStorage, key: &CacheKey) -> Option<Bytes> {
        let span = Span::inactive().handle();
        let (_, mut hit) = storage.lookup(key, &span).await.unwrap()?;
        hit.read_body().await.unwrap()
    }

    #[tokio::test]
    async fn stores_reads_and_accounts_bytes() {
        let storage = storage();
        let key = store(storage, "/a", b"hello").await;
        assert_eq!(read(storage, &key).await.as_deref(), Some(&b"hello"[..]));
        assert_eq!(storage.objects(), 1);
        assert!(storage.bytes() >= 5);
        storage.purge_paths(|p| p == "/a");
        assert_eq!(storage.objects(), 0);
        assert_eq!(storage.bytes(), 0);
        assert!(read(storage, &key).await.is_none());
    }

    #[tokio::test]
    async fn metadata_rebuilt_or_decoded_is_the_stored_metadata() {
        let storage = storage();
        let span = Span::inactive().handle();
        let created = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let build = || {
            let mut header = ResponseHeader::build(200, None).unwrap();
            header.insert_header("Cache-Control", "max-age=60").unwrap();
            CacheMeta::new(created + Duration::from_secs(60), created, 5, 6, header)
        };
        let plain = build();
        let mut varied = build();
        varied.set_variance_key(*b"0123456789abcdef");
        let mut epoch = build();
        epoch.set_epoch_override(created + Duration::from_secs(1));
        let mut revalidated = build();
        revalidated.update_freshness(created + Duration::from_secs(120), 1, 2);
        for (name, stored, rebuilt) in [
            ("plain", plain, true),
            ("varied", varied, false),
            ("epoch", epoch, false),
            ("revalidated", revalidated, false),
        ] {
            assert_eq!(
                StoredMeta::of(&stored).unwrap().plain_times.is_some(),
                rebuilt,
                "{name}"
            );
            let key = CacheKey::new(name, name);
            let mut miss = storage.get_miss_handler(&key, &stored, &span).await.unwrap();
            miss.write_body(Bytes::from_static(b"body"), true).await.unwrap();
            miss.finish().await.unwrap();
            let (meta, _) = storage.lookup(&key, &span).await.unwrap().unwrap();
            assert_eq!(meta.serialize().unwrap(), stored.serialize().unwrap(), "{name}");
        }
    }

    #[tokio::test]
    async fn a_hit_returns_the_metadata_that_was_stored() {
        let storage = storage();
        let span = Span::inactive().handle();
        let mut header = ResponseHeader::build(404, None).unwrap();
        header.insert_header("Content-Type", "text/plain").unwrap();
        header.append_header("X-Custom-Case", "one").unwrap();
        header.append_header("x-custom-case", "two").unwrap();
        let created = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut stored = CacheMeta::new(created + Duration::from_secs(60), created, 7, 9, header);
        stored.set_variance_key(*b"0123456789abcdef");
        let key = CacheKey::new("/m", "/m");
        let mut miss = storage.get_miss_handler(&key, &stored, &span).await.unwrap();
        miss.write_body(Bytes::from_static(b"body"), true).await.unwrap();
        miss.finish().await.unwrap();

        let (meta, _) = storage.lookup(&key, &span).await.unwrap().unwrap();
        assert_eq!(meta.response_header().status, 404);
        let mut wire = Vec::new();
        meta.response_header().header_to_h1_wire(&mut wire);
        let mut expected = Vec::new();
        stored.response_header().header_to_h1_wire(&mut expected);
        assert_eq!(
            String::from_utf8_lossy(&wire),
            String::from_utf8_lossy(&expected),
            "header names keep their case and order"
        );
        assert_eq!(meta.created(), stored.created());
        assert_eq!(meta.updated(), stored.updated());
        assert_eq!(meta.fresh_until(), stored.fresh_until());
        assert_eq!(meta.stale_while_revalidate_sec(), 7);
        assert_eq!(meta.stale_if_error_sec(), 9);
        assert_eq!(meta.variance(), stored.variance());

        // A revalidation's new freshness is what the next hit sees.
        let mut refreshed = meta;
        refreshed.update_freshness(created + Duration::from_secs(600), 1, 2);
        assert!(storage.update_meta(&key, &refreshed, &span).await.unwrap());
        let (meta, _) = storage.lookup(&key, &span).await.unwrap().unwrap();
        assert_eq!(meta.fresh_until(), created + Duration::from_secs(600));
        assert_eq!(meta.updated(), refreshed.updated());
        assert_eq!(meta.response_header().status, 404);
    }

    #[tokio::test]
    async fn eviction_of_an_old_entry_spares_its_replacement() {
        let storage = storage();
        let span = Span::inactive().handle();
        let key = store(storage, "/a", b"old").await;
        let (_, old_hit) = storage.lookup(&key, &span).await.unwrap().unwrap();
        let old_id = old_hit.entry_id().unwrap();
        store(storage, "/a", b"new").await;
        let stale_target = CacheEntryKey::identified(key.to_compact(), old_id);
        let outcome = storage
            .purge(PurgeTarget::Exact(&stale_target), PurgeType::Eviction, &span)
            .await
            .unwrap();
        assert_eq!(outcome, PurgeOutcome::NotFound);
        assert_eq!(read(storage, &key).await.as_deref(), Some(&b"new"[..]));
    }

    #[tokio::test]
    async fn prefix_purge_matches_only_its_paths() {
        let storage = storage();
        let a = store(storage, "/img/a.png", b"a").await;
        let b = store(storage, "/img/b.png", b"b").await;
        let c = store(storage, "/css/c.css", b"c").await;
        let purged = storage.purge_paths(|p| p.starts_with("/img/"));
        assert_eq!(purged.len(), 2);
        assert!(read(storage, &a).await.is_none() && read(storage, &b).await.is_none());
        assert!(read(storage, &c).await.is_some());
    }

    #[tokio::test]
    async fn oversized_objects_are_refused() {
        let storage: &'static MemoryStorage = Box::leak(Box::new(MemoryStorage::new(4)));
        let key = CacheKey::new("/big", "/big");
        let span = Span::inactive().handle();
        let mut miss = storage.get_miss_handler(&key, &meta(), &span).await.unwrap();
        assert!(miss.write_body(Bytes::from_static(b"12345"), true).await.is_err());
    }
}
