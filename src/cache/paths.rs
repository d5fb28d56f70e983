//! Request path -> stored object hashes, shared by the memory and disk tiers.

use pingora::cache::key::HashBinary;
use std::collections::HashMap;

const SHARDS: usize = 16;

/// Request path -> the hashes of the objects stored for it (every host, query and variant), so
/// that invalidating a path (RFC 9111 4.4, on every successful POST) does not scan the cache.
pub struct PathIndex {
    shards: Vec<parking_lot::Mutex<HashMap<Box<str>, Vec<HashBinary>>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl PathIndex {
    pub fn new() -> PathIndex {
        PathIndex {
            shards: (0..SHARDS).map(|_| parking_lot::Mutex::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn shard(&self, path: &str) -> &parking_lot::Mutex<HashMap<Box<str>, Vec<HashBinary>>> {
        use std::hash::BuildHasher;
        &self.shards[self.hasher.hash_one(path) as usize % SHARDS]
    }

    pub fn add(&self, path: &str, hash: HashBinary) {
        let mut shard = self.shard(path).lock();
        let hashes = shard.entry(path.into()).or_default();
        if !hashes.contains(&hash) {
            hashes.push(hash);
        }
    }

    pub fn remove(&self, path: &str, hash: &HashBinary) {
        let mut shard = self.shard(path).lock();
        if let Some(hashes) = shard.get_mut(path) {
            hashes.retain(|h| h != hash);
            if hashes.is_empty() {
                shard.remove(path);
            }
        }
    }

    pub fn take(&self, path: &str) -> Vec<HashBinary> {
        self.shard(path).lock().remove(path).unwrap_or_default()
    }
}

impl Default for PathIndex {
    fn default() -> Self {
        PathIndex::new()
    }
}
