//! The HTTP cache: storage, keys, freshness policy, and the shared pieces pingora-cache needs for
//! every request (storage, eviction manager, cache lock), built once per process.

pub mod disk;
pub mod key;
pub mod paths;
pub mod policy;
pub mod storage;
pub mod tiered;

use crate::config;
use pingora::cache::eviction::lru::Manager as LruManager;
use pingora::cache::eviction::{CacheEntryKeyRef, EvictionManager};
use pingora::cache::lock::{CacheKeyLockImpl, CacheLock};
use std::sync::Arc;
use std::time::Duration;
use storage::MemoryStorage;
use tiered::TieredStorage;

/// Shards of the LRU eviction manager.
const EVICTION_SHARDS: usize = 16;
/// Rough object count used to presize the LRU.
const EXPECTED_OBJECT_SIZE: usize = 16 << 10;

/// The memory tier's eviction manager.
pub type EvictionLru = LruManager<EVICTION_SHARDS>;

/// The process-wide cache. pingora-cache requires `'static` components, so `new` leaks them once
/// per server; a server lives for the whole process.
pub struct CacheLayer {
    pub storage: &'static TieredStorage,
    pub eviction: &'static EvictionLru,
    pub lock: &'static CacheKeyLockImpl,
    pub max_object_size: usize,
    pub lock_timeout: Duration,
}

impl CacheLayer {
    pub fn new(settings: &config::Cache) -> Self {
        let expected_objects = (settings.memory / EXPECTED_OBJECT_SIZE).clamp(128, 1 << 20);
        let lock: &'static CacheLock = Box::leak(CacheLock::new_boxed(settings.lock_timeout));
        let eviction: &'static EvictionLru =
            Box::leak(Box::new(LruManager::with_capacity(settings.memory, expected_objects)));
        let disk = settings
            .disk
            .as_ref()
            .map(|disk| disk::DiskTier::open(&disk.path, disk.size, settings.max_object_size as u64));
        let memory = MemoryStorage::new(settings.memory_max_object_size);
        CacheLayer {
            storage: Box::leak(Box::new(TieredStorage::new(memory, disk, eviction))),
            eviction,
            lock,
            max_object_size: settings.max_object_size,
            lock_timeout: settings.lock_timeout,
        }
    }

    /// Removes every cached object stored under user tag `tag` (`key::user_tag`: a
    /// distribution's request path, any host, query or variant): what a successful unsafe
    /// request does to its target (RFC 9111 4.4).
    pub fn invalidate_path(&self, tag: &str) -> usize {
        let (in_memory, count) = self.storage.invalidate_path(tag);
        for entry in &in_memory {
            self.eviction.remove(CacheEntryKeyRef::from(entry));
        }
        count
    }

    /// Removes every cached object of `distribution` ("": the implicit one) whose request path
    /// matches one of `patterns` (CloudFront invalidation paths: exact, or with `*` wildcards).
    /// Returns how many objects were removed.
    pub fn purge(&self, distribution: &str, patterns: &[config::pattern::PathPattern]) -> usize {
        let patterns = patterns.to_vec();
        let distribution = distribution.to_string();
        let (in_memory, count) = self.storage.purge_paths(Arc::new(move |tag| {
            let (owner, path) = key::tag_parts(tag);
            owner == distribution && patterns.iter().any(|p| p.matches(path))
        }));
        for entry in &in_memory {
            self.eviction.remove(CacheEntryKeyRef::from(entry));
        }
        count
    }
}
