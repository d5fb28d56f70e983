//! The HTTP cache: storage, keys, freshness policy, and the shared pieces pingora-cache needs for
//! every request (storage, eviction manager, cache lock), built once per process.

pub mod key;
pub mod policy;
pub mod storage;

use crate::config;
use pingora::cache::eviction::lru::Manager as LruManager;
use pingora::cache::eviction::{CacheEntryKeyRef, EvictionManager};
use pingora::cache::lock::{CacheKeyLockImpl, CacheLock};
use std::time::Duration;
use storage::MemoryStorage;

/// Shards of the LRU eviction manager.
const EVICTION_SHARDS: usize = 16;
/// Rough object count used to presize the LRU.
const EXPECTED_OBJECT_SIZE: usize = 16 << 10;

/// The process-wide cache. pingora-cache requires `'static` components, so `new` leaks them once
/// per server; a server lives for the whole process.
pub struct CacheLayer {
    pub storage: &'static MemoryStorage,
    pub eviction: &'static LruManager<EVICTION_SHARDS>,
    pub lock: &'static CacheKeyLockImpl,
    pub max_object_size: usize,
    pub lock_timeout: Duration,
}

impl CacheLayer {
    pub fn new(settings: &config::Cache) -> Self {
        let expected_objects = (settings.memory / EXPECTED_OBJECT_SIZE).clamp(128, 1 << 20);
        let lock: &'static CacheLock = Box::leak(CacheLock::new_boxed(settings.lock_timeout));
        CacheLayer {
            storage: Box::leak(Box::new(MemoryStorage::new(settings.max_object_size))),
            eviction: Box::leak(Box::new(LruManager::with_capacity(settings.memory, expected_objects))),
            lock,
            max_object_size: settings.max_object_size,
            lock_timeout: settings.lock_timeout,
        }
    }

    /// Removes every cached object stored for request path `path` (any host, query or
    /// variant): what a successful unsafe request does to its target (RFC 9111 4.4).
    pub fn invalidate_path(&self, path: &str) -> usize {
        let purged = self.storage.invalidate_path(path);
        for object in &purged {
            self.eviction.remove(CacheEntryKeyRef::from(&object.entry));
        }
        purged.len()
    }

    /// Removes every cached object whose request path matches one of `patterns` (CloudFront
    /// invalidation paths: exact, or with `*` wildcards). Returns how many objects were removed.
    pub fn purge(&self, patterns: &[config::pattern::PathPattern]) -> usize {
        let purged = self
            .storage
            .purge_paths(|path| patterns.iter().any(|p| p.matches(path)));
        for object in &purged {
            self.eviction.remove(CacheEntryKeyRef::from(&object.entry));
        }
        purged.len()
    }
}
