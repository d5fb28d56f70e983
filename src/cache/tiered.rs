//! The storage `serve` gives pingora-cache: the memory tier, and under it the disk tier when
//! `[cache] disk` is set. Misses are written to both (the disk streams; the memory tier keeps
//! objects up to `memory_max_object_size`); the memory tier's LRU evicts from memory only, so an
//! evicted object stays on disk, and a disk hit read whole is promoted back to memory. Purges and
//! invalidations empty both tiers. A failing disk costs its tier, never a request: its errors
//! are counted and the memory tier carries on.

use super::disk::{DiskObject, DiskTier, DiskWrite, MetaParts};
use super::storage::{MemoryStorage, StoredMeta};
use super::EvictionLru;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::cache::eviction::{CacheEntryId, CacheEntryKey, EvictionManager};
use pingora::cache::key::{CacheHashKey, HashBinary};
use pingora::cache::storage::{
    HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget, PurgeType,
};
use pingora::cache::trace::SpanHandle;
use pingora::cache::{CacheKey, CacheMeta, Storage};
use pingora::{Error, ErrorType, Result};
use std::any::Any;

pub struct TieredStorage {
    memory: MemoryStorage,
    disk: Option<&'static DiskTier>,
    /// The memory tier's eviction manager, told about promoted objects.
    eviction: &'static EvictionLru,
}

/// An entry id no memory object has (ids count up from 1): what a miss stored on disk only
/// tells the eviction manager, so evicting it never removes a memory object.
const DISK_ONLY_ENTRY: u64 = u64::MAX;

impl TieredStorage {
    pub fn new(memory: MemoryStorage, disk: Option<&'static DiskTier>, eviction: &'static EvictionLru) -> Self {
        TieredStorage { memory, disk, eviction }
    }

    pub fn memory(&self) -> &MemoryStorage {
        &self.memory
    }

    pub fn disk(&self) -> Option<&'static DiskTier> {
        self.disk
    }

    /// Bytes and objects held by the memory tier and by the disk tier.
    pub fn usage(&self) -> [(&'static str, u64, usize); 2] {
        let disk = self.disk.map_or((0, 0), |disk| (disk.bytes(), disk.objects()));
        [
            ("memory", self.memory.bytes() as u64, self.memory.objects()),
            ("disk", disk.0, disk.1),
        ]
    }

    fn promote(&self, key: &CacheKey, meta: StoredMeta, fresh_until: std::time::SystemTime, body: Bytes) {
        let (id, weight) = self.memory.insert_object(key, meta, body);
        let entry = CacheEntryKey::identified(key.to_compact(), id);
        for evicted in self.eviction.admit(entry, weight, fresh_until) {
            self.memory.remove_entry(&evicted);
        }
    }

    /// Whether a disk hit of `size` bytes should move into memory: while memory has room, yes;
    /// when it is full, only if the object was asked of the disk tier more often than the one it
    /// would evict (the disk tier's admission rule). Without this, a working set larger than
    /// memory asked for evenly turns every disk hit into a promotion and an eviction, which cost
    /// more than the hit itself and bring no hits.
    fn worth_promoting(&self, disk: &DiskTier, hash: &HashBinary, size: usize) -> bool {
        let shards = self.eviction.shards();
        let used: usize = (0..shards).map(|shard| self.eviction.shard_weight(shard)).sum();
        if used + size <= self.eviction.weight_limit() {
            return true;
        }
        let victim = (0..shards)
            .max_by_key(|&shard| self.eviction.shard_len(shard))
            .and_then(|shard| self.eviction.peek_lru(shard));
        match victim {
            Some(victim) => disk.frequency(hash) > disk.frequency(&victim.key().combined_bin()),
            None => true,
        }
    }

    /// Removes every object stored for `path` in either tier; returns what the memory tier's
    /// eviction manager must forget and how many distinct objects went.
    pub fn invalidate_path(&self, path: &str) -> (Vec<CacheEntryKey>, usize) {
        let purged = self.memory.invalidate_path(path);
        let on_disk = self.disk.map(|disk| disk.invalidate_path(path)).unwrap_or_default();
        distinct(purged, on_disk)
    }

    /// Removes every object whose request path satisfies `matches` from both tiers; what the
    /// memory tier removed and how many distinct objects went.
    pub fn purge_paths(
        &self,
        matches: std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>,
    ) -> (Vec<CacheEntryKey>, usize) {
        let purged = self.memory.purge_paths(|path| matches(path));
        let on_disk = self.disk.map(|disk| disk.purge_paths(matches)).unwrap_or_default();
        distinct(purged, on_disk)
    }
}

fn distinct(in_memory: Vec<super::storage::Purged>, on_disk: Vec<HashBinary>) -> (Vec<CacheEntryKey>, usize) {
    let mut hashes: std::collections::HashSet<HashBinary> = on_disk.into_iter().collect();
    let entries: Vec<CacheEntryKey> = in_memory.into_iter().map(|p| p.entry).collect();
    hashes.extend(entries.iter().map(|e| e.key().combined_bin()));
    (entries, hashes.len())
}

fn content_length(meta: &CacheMeta) -> Option<u64> {
    meta.response_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

#[async_trait]
impl Storage for TieredStorage {
    async fn lookup(&'static self, key: &CacheKey, trace: &SpanHandle) -> Result<Option<(CacheMeta, HitHandler)>> {
        if let Some(found) = self.memory.lookup(key, trace).await? {
            return Ok(Some(found));
        }
        let Some(disk) = self.disk else {
            return Ok(None);
        };
        let hash = key.combined_bin();
        let Some(object) = disk.lookup(&hash) else {
            return Ok(None);
        };
        let Some(meta) = object.meta() else {
            disk.count_error(format_args!("an object's metadata does not decode; removed"));
            disk.remove(&hash);
            return Ok(None);
        };
        // Its stored form for the memory tier, made now from the bytes read (encoding the
        // header again would cost more than the rest of the hit).
        let promote = object.body_len() <= self.memory.max_object_size() as u64
            && self.worth_promoting(disk, &hash, object.body_len() as usize);
        let promotion = promote.then(|| Promotion {
            meta: StoredMeta::from_serialized(object.internal.to_vec(), object.header.len(), &meta, object.plain),
            fresh_until: meta.fresh_until(),
            body: Vec::new(),
        });
        let end = object.body_len();
        Ok(Some((
            meta,
            Box::new(DiskHit {
                tiered: self,
                object,
                pos: 0,
                end,
                promotion,
            }),
        )))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let Some(disk) = self.disk else {
            return self.memory.get_miss_handler(key, meta, trace).await;
        };
        let (stored, header) = StoredMeta::serialized(meta)?;
        let parts = MetaParts {
            internal: stored.internal(),
            header: &header,
            plain: stored.is_plain(),
        };
        let expected = content_length(meta);
        let write = disk.begin_write(key.combined_bin(), key.user_tag(), &parts, expected);
        let memory = self.memory.miss_handler(key, stored);
        let entry_id = memory.entry_id().unwrap_or(CacheEntryId::new(DISK_ONLY_ENTRY));
        let memory = expected
            .is_none_or(|len| len <= self.memory.max_object_size() as u64)
            .then_some(memory);
        if memory.is_none() && write.is_none() {
            return Error::e_explain(ErrorType::InternalError, "object fits no cache tier");
        }
        Ok(Box::new(TieredMiss {
            memory,
            disk: write,
            entry_id,
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        purge_type: PurgeType,
        trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let hash: HashBinary = target.key().combined_bin();
        let outcome = self.memory.purge(target, purge_type, trace).await?;
        // The memory tier's LRU evicts from memory only: the object stays on disk.
        if matches!(purge_type, PurgeType::Eviction) {
            return Ok(outcome);
        }
        let removed = self.disk.is_some_and(|disk| disk.remove(&hash));
        Ok(match outcome {
            PurgeOutcome::NotFound if removed => PurgeOutcome::Purged(None),
            outcome => outcome,
        })
    }

    async fn update_meta(&'static self, key: &CacheKey, meta: &CacheMeta, trace: &SpanHandle) -> Result<bool> {
        let in_memory = self.memory.update_meta(key, meta, trace).await?;
        let on_disk = self
            .disk
            .is_some_and(|disk| disk.update_meta(&key.combined_bin(), meta));
        Ok(in_memory || on_disk)
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

struct TieredMiss {
    memory: Option<MissHandler>,
    disk: Option<DiskWrite>,
    entry_id: CacheEntryId,
}

#[async_trait]
impl HandleMiss for TieredMiss {
    async fn write_body(&mut self, data: Bytes, eof: bool) -> Result<()> {
        if let Some(memory) = &mut self.memory {
            // Too large for the memory tier: the object goes on in the disk tier alone.
            if memory.write_body(data.clone(), eof).await.is_err() {
                self.memory = None;
            }
        }
        if let Some(write) = &mut self.disk {
            if let Err(e) = write.write(&data) {
                write.tier().count_error(format_args!("writing an object: {e}"));
                self.disk = None;
            }
        }
        if self.memory.is_none() && self.disk.is_none() {
            return Error::e_explain(ErrorType::InternalError, "object fits no cache tier");
        }
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        let this = *self;
        if let Some(write) = this.disk {
            let tier = write.tier();
            if let Err(e) = write.finish() {
                tier.count_error(format_args!("finishing an object: {e}"));
            }
        }
        match this.memory {
            Some(memory) => memory.finish().await,
            None => Ok(MissFinishType::Created(0)),
        }
    }

    fn entry_id(&self) -> Option<CacheEntryId> {
        Some(self.entry_id)
    }
}

/// What moving a disk hit into the memory tier takes.
struct Promotion {
    meta: StoredMeta,
    fresh_until: std::time::SystemTime,
    /// The body read so far from its first byte.
    body: Vec<Bytes>,
}

impl Promotion {
    fn collected(&self) -> u64 {
        self.body.iter().map(|c| c.len() as u64).sum()
    }
}

struct DiskHit {
    tiered: &'static TieredStorage,
    object: DiskObject,
    pos: u64,
    end: u64,
    /// Kept while the object can still be promoted: it is small enough and read in order.
    promotion: Option<Promotion>,
}

#[async_trait]
impl HandleHit for DiskHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let limit = (self.end - self.pos).min(DiskObject::CHUNK as u64) as usize;
        let chunk = match self.object.read(self.pos, limit) {
            Ok(chunk) => chunk,
            Err(e) => {
                if let Some(disk) = self.tiered.disk {
                    disk.count_error(format_args!("reading a cached body: {e}"));
                }
                return Error::e_explain(ErrorType::InternalError, format!("cache disk read: {e}"));
            }
        };
        if self.object.whole_body().is_none() {
            match &mut self.promotion {
                Some(promotion) if promotion.collected() == self.pos => promotion.body.push(chunk.clone()),
                _ => self.promotion = None,
            }
        }
        self.pos += chunk.len() as u64;
        Ok(Some(chunk))
    }

    async fn finish(self: Box<Self>, _: &'static (dyn Storage + Sync), key: &CacheKey, _: &SpanHandle) -> Result<()> {
        let this = *self;
        let Some(promotion) = this.promotion else {
            return Ok(());
        };
        let body = match this.object.whole_body() {
            // A copy: the slice would keep the whole first read (prefix included) alive.
            Some(body) => Bytes::copy_from_slice(&body),
            None if promotion.collected() == this.object.body_len() => {
                let mut body = BytesMut::with_capacity(this.object.body_len() as usize);
                for chunk in &promotion.body {
                    body.extend_from_slice(chunk);
                }
                body.freeze()
            }
            None => return Ok(()),
        };
        this.tiered.promote(key, promotion.meta, promotion.fresh_until, body);
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let len = self.object.body_len();
        if start as u64 >= len {
            return Error::e_explain(
                ErrorType::InternalError,
                format!("seek start {start} beyond body length {len}"),
            );
        }
        self.pos = start as u64;
        self.end = end.map_or(len, |end| (end as u64).min(len));
        Ok(())
    }

    /// A disk hit is not in the memory tier: the memory LRU learns of it only if it is promoted.
    fn should_count_access(&self) -> bool {
        false
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}
