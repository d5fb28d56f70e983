//! The disk tier: one file per cached object under `[cache] disk.path`, as nginx's proxy_cache
//! keeps them, bounded by `disk.size`.
//!
//! Why files and not `foyer` (a hybrid memory/disk cache): foyer takes and returns whole values,
//! so an object of several GiB would be held in memory to be written and again to be read, and a
//! byte range could not be read without the rest of the object. A file per object streams both
//! ways and seeks. Why pingora-lru and a sketch and not `TinyUFO` (pingora's admission cache):
//! TinyUFO weighs entries in `u16`, too small to count the bytes of large objects.
//!
//! A file is written under a temporary name and renamed when complete, so a crash or `kill -9`
//! mid-write leaves only a temporary file (removed at the next start), never a torn object. Its
//! prefix carries the lengths, the key hash and a CRC of the metadata, and the file's length must
//! match them, so an object cut short by a power loss is refused as well.
//!
//! I/O runs inline on the proxy's threads, as nginx does without `aio threads`: hot objects come
//! from the page cache, where a read costs less than handing it to another thread would.
//!
//! Start-up does not wait for the index: a lookup goes to the object's own path, so objects
//! written before a restart are served at once while a background scan indexes the rest for
//! eviction and purges.

use super::paths::PathIndex;
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use pingora::cache::key::HashBinary;
use pingora::cache::CacheMeta;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

/// File format magic; the last byte is the format version.
const MAGIC: [u8; 8] = *b"EHCACHE\x01";
/// magic, 3 lengths (u32), flags (u32), body length (u64), key hash (16), CRC32, reserved u32.
const FIXED: usize = 8 + 4 * 4 + 8 + 16 + 4 + 4;
const FLAGS_AT: usize = 20;
const CRC_AT: usize = 48;
/// Flag: the metadata's times alone rebuild its internal part (`StoredMeta::is_plain`).
const FLAG_PLAIN: u32 = 1;
const MAX_KEY: usize = 64 << 10;
const MAX_META: usize = 1 << 20;
/// Bytes read with the prefix: a small object's whole body comes with its first read. More
/// costs every hit a larger buffer to clear than the second read it saves larger objects.
const FIRST_READ: usize = 4 << 10;
/// Bytes read per body chunk of larger objects.
const CHUNK: usize = 256 << 10;
/// What the start-up scan reads of each file: the prefix and the request path.
const SCAN_READ: usize = 1 << 10;
const SHARDS: usize = 16;

type Predicate = Arc<dyn Fn(&str) -> bool + Send + Sync>;

#[derive(Clone)]
struct DiskEntry {
    hash: HashBinary,
    path: Box<str>,
}

/// A purge that arrived before the start-up scan finished: files written before it that the
/// scan (or a lookup) finds later are removed then.
struct PendingPurge {
    at: SystemTime,
    matches: Predicate,
}

#[derive(Default)]
pub struct DiskStats {
    pub hits: AtomicU64,
    pub errors: AtomicU64,
    /// Objects not written because the admission policy preferred what the disk holds.
    pub refused: AtomicU64,
}

pub struct DiskTier {
    objects_dir: PathBuf,
    temp_dir: PathBuf,
    index: pingora_lru::Lru<DiskEntry, SHARDS>,
    paths: PathIndex,
    sketch: FrequencySketch,
    max_object_size: u64,
    scan_done: AtomicBool,
    purges_during_scan: Mutex<Vec<PendingPurge>>,
    next_temp: AtomicU64,
    pub stats: DiskStats,
}

/// An object found on disk: its metadata and an open file to read the body from.
pub struct DiskObject {
    /// The serialized metadata: pingora's internal part and its compressed header.
    pub internal: Bytes,
    pub header: Bytes,
    /// See `FLAG_PLAIN`.
    pub plain: bool,
    file: File,
    body_offset: u64,
    body_len: u64,
    /// The request path it was stored for (checked as UTF-8 when read).
    request_path: Bytes,
    /// The body's first bytes, read with the prefix.
    head: Bytes,
}

fn lru_key(hash: &HashBinary) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(first)
}

fn hex(hash: &HashBinary) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(32);
    for byte in hash {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 15)] as char);
    }
    out
}

fn parse_hex(name: &str) -> Option<HashBinary> {
    if name.len() != 32 {
        return None;
    }
    let mut hash = [0u8; 16];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(name.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(hash)
}

/// The lengths a file's fixed prefix gives.
struct Prefix {
    key_len: usize,
    internal_len: usize,
    header_len: usize,
    body_len: u64,
    hash: HashBinary,
    crc: u32,
    flags: u32,
}

impl Prefix {
    fn len(&self) -> usize {
        FIXED + self.key_len + self.internal_len + self.header_len
    }

    fn read(bytes: &[u8]) -> Result<Prefix, &'static str> {
        if bytes.len() < FIXED {
            return Err("shorter than its prefix");
        }
        if bytes[..8] != MAGIC {
            return Err("not an edgehook cache object of this version");
        }
        let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let mut body_len = [0u8; 8];
        body_len.copy_from_slice(&bytes[24..32]);
        let mut hash = [0u8; 16];
        hash.copy_from_slice(&bytes[32..48]);
        let prefix = Prefix {
            key_len: u32_at(8) as usize,
            internal_len: u32_at(12) as usize,
            header_len: u32_at(16) as usize,
            body_len: u64::from_le_bytes(body_len),
            hash,
            crc: u32_at(CRC_AT),
            flags: u32_at(FLAGS_AT),
        };
        if prefix.key_len > MAX_KEY || prefix.internal_len + prefix.header_len > MAX_META {
            return Err("lengths out of bounds");
        }
        Ok(prefix)
    }
}

/// The serialized metadata an object is written with.
pub struct MetaParts<'a> {
    pub internal: &'a [u8],
    pub header: &'a [u8],
    pub plain: bool,
}

fn encode_prefix(hash: &HashBinary, path: &str, meta: &MetaParts, body_len: u64) -> Vec<u8> {
    let (internal, header) = (meta.internal, meta.header);
    let mut out = Vec::with_capacity(FIXED + path.len() + internal.len() + header.len());
    out.extend_from_slice(&MAGIC);
    let flags = if meta.plain { FLAG_PLAIN } else { 0 };
    for word in [path.len() as u32, internal.len() as u32, header.len() as u32, flags] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(hash);
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(internal);
    out.extend_from_slice(header);
    let crc = crc32fast::hash(&out);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Reads at `offset` until `buf` is full or the file ends; returns the bytes read.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

enum Found {
    Object(DiskObject),
    Absent,
    /// Torn, of another format, or not this key's: removed.
    Invalid(&'static str),
}

impl DiskTier {
    /// Opens (creating) the tier at `root` and starts indexing what an earlier run left there.
    /// A directory that cannot be created is logged and counted; writes retry it later.
    pub fn open(root: &Path, size: u64, max_object_size: u64) -> &'static DiskTier {
        let expected_objects = (size / (16 << 10)).clamp(1024, 1 << 22) as usize;
        let tier: &'static DiskTier = Box::leak(Box::new(DiskTier {
            objects_dir: root.join("objects"),
            temp_dir: root.join("tmp"),
            index: pingora_lru::Lru::with_capacity(size as usize, expected_objects / SHARDS),
            paths: PathIndex::new(),
            sketch: FrequencySketch::new(expected_objects),
            max_object_size,
            scan_done: AtomicBool::new(false),
            purges_during_scan: Mutex::new(Vec::new()),
            next_temp: AtomicU64::new(0),
            stats: DiskStats::default(),
        }));
        for dir in [&tier.objects_dir, &tier.temp_dir] {
            if let Err(e) = std::fs::create_dir_all(dir) {
                tier.count_error(format_args!("cannot create {}: {e}", dir.display()));
            }
        }
        let scanning = std::thread::Builder::new()
            .name("cache-disk-scan".into())
            .spawn(move || tier.scan());
        if let Err(e) = scanning {
            tier.count_error(format_args!("cannot start the index scan: {e}"));
            tier.finish_scan();
        }
        tier
    }

    /// Counts and logs a disk failure.
    pub fn count_error(&self, what: std::fmt::Arguments) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(target: "edgehook::cache", "disk tier: {what}");
    }

    pub fn bytes(&self) -> u64 {
        self.index.weight() as u64
    }

    pub fn objects(&self) -> usize {
        self.index.len()
    }

    /// How often `hash` was asked of this tier lately (the admission sketch's estimate).
    pub fn frequency(&self, hash: &HashBinary) -> u8 {
        self.sketch.estimate(hash)
    }

    pub fn scan_done(&self) -> bool {
        self.scan_done.load(Ordering::Acquire)
    }

    fn object_path(&self, hash: &HashBinary) -> PathBuf {
        let name = hex(hash);
        let mut path = self.objects_dir.clone().into_os_string();
        path.reserve(name.len() + 4);
        path.push("/");
        path.push(&name[..2]);
        path.push("/");
        path.push(&name);
        PathBuf::from(path)
    }

    /// The object stored for `hash`, if a whole, valid one is on disk.
    pub fn lookup(&self, hash: &HashBinary) -> Option<DiskObject> {
        self.sketch.record(hash);
        match self.read_object(hash) {
            Ok(Found::Object(object)) => {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                Some(object)
            }
            Ok(Found::Absent) => {
                self.forget(hash);
                None
            }
            Ok(Found::Invalid(why)) => {
                self.count_error(format_args!("{}: {why}; removed", self.object_path(hash).display()));
                self.remove(hash);
                None
            }
            Err(e) => {
                self.count_error(format_args!("reading {}: {e}", self.object_path(hash).display()));
                None
            }
        }
    }

    fn read_object(&self, hash: &HashBinary) -> io::Result<Found> {
        let path = self.object_path(hash);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Absent),
            Err(e) => return Err(e),
        };
        let mut buf = vec![0u8; FIRST_READ];
        let read = read_full_at(&file, &mut buf, 0)?;
        buf.truncate(read);
        let prefix = match Prefix::read(&buf) {
            Ok(prefix) => prefix,
            Err(why) => return Ok(Found::Invalid(why)),
        };
        if prefix.hash != *hash {
            return Ok(Found::Invalid("holds another key's object"));
        }
        let prefix_len = prefix.len();
        if buf.len() < prefix_len {
            let have = buf.len();
            buf.resize(prefix_len, 0);
            if read_full_at(&file, &mut buf[have..], have as u64)? < prefix_len - have {
                return Ok(Found::Invalid("cut short in its metadata"));
            }
        }
        let mut check = buf[..prefix_len].to_vec();
        check[CRC_AT..CRC_AT + 4].fill(0);
        if crc32fast::hash(&check) != prefix.crc {
            return Ok(Found::Invalid("metadata checksum does not match"));
        }
        let stat = file.metadata()?;
        if stat.len() != prefix_len as u64 + prefix.body_len {
            return Ok(Found::Invalid("length does not match its prefix (torn)"));
        }
        let path_at = FIXED;
        let internal_at = path_at + prefix.key_len;
        let header_at = internal_at + prefix.internal_len;
        let Ok(request_path) = std::str::from_utf8(&buf[path_at..internal_at]) else {
            return Ok(Found::Invalid("request path is not UTF-8"));
        };
        if !self.scan_done() && self.purged_during_scan(request_path, stat.modified().ok()) {
            self.remove(hash);
            return Ok(Found::Absent);
        }
        let key = lru_key(hash);
        if !self.index.promote(key) {
            self.insert(*hash, request_path.into(), stat.len());
        }
        let body = Bytes::from(buf);
        let head_end = prefix_len + (body.len() - prefix_len).min(prefix.body_len as usize);
        Ok(Found::Object(DiskObject {
            internal: body.slice(internal_at..header_at),
            header: body.slice(header_at..prefix_len),
            plain: prefix.flags & FLAG_PLAIN != 0,
            file,
            body_offset: prefix_len as u64,
            body_len: prefix.body_len,
            request_path: body.slice(path_at..internal_at),
            head: body.slice(prefix_len..head_end),
        }))
    }

    fn purged_during_scan(&self, path: &str, written: Option<SystemTime>) -> bool {
        let written = written.unwrap_or(SystemTime::UNIX_EPOCH);
        self.purges_during_scan
            .lock()
            .iter()
            .any(|purge| written <= purge.at && (purge.matches)(path))
    }

    /// Whether a new object of `size` bytes may enter: always while the tier has room; when full,
    /// only if it has been asked for more often than what it would evict (TinyLFU's rule), so
    /// objects asked for once do not flush the working set. The victim is the least recently
    /// used object of the longest LRU shard, which `make_room` evicts in that order.
    fn admits(&self, hash: &HashBinary, size: u64) -> bool {
        if self.index.weight() as u64 + size <= self.index.weight_limit() as u64 {
            return true;
        }
        match self.victim() {
            Some(victim) => victim.hash == *hash || self.sketch.estimate(hash) > self.sketch.estimate(&victim.hash),
            None => true,
        }
    }

    fn victim(&self) -> Option<DiskEntry> {
        let shard = (0..SHARDS).max_by_key(|&shard| self.index.shard_len(shard))?;
        self.index.peek_lru(shard).map(|(entry, _)| entry)
    }

    /// Evicts what a new object of `size` bytes displaces, as long as it wins against each
    /// victim (see `admits`); whether it may enter.
    fn make_room(&self, hash: &HashBinary, size: u64) -> bool {
        let limit = self.index.weight_limit() as u64;
        if size > limit {
            return false;
        }
        let frequency = self.sketch.estimate(hash);
        while self.index.weight() as u64 + size > limit {
            let Some(victim) = self.victim() else {
                break;
            };
            if victim.hash != *hash && self.sketch.estimate(&victim.hash) >= frequency {
                return false;
            }
            self.remove(&victim.hash);
        }
        true
    }

    /// Starts writing the object for `hash`; `None` when it is refused (too large, not admitted)
    /// or the disk cannot take it (counted and logged).
    pub fn begin_write(
        &'static self,
        hash: HashBinary,
        request_path: &str,
        meta: &MetaParts,
        expected_len: Option<u64>,
    ) -> Option<DiskWrite> {
        let expected = expected_len.unwrap_or(0);
        if expected > self.max_object_size || request_path.len() > MAX_KEY {
            return None;
        }
        if !self.admits(&hash, expected) {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if meta.internal.len() + meta.header.len() > MAX_META {
            return None;
        }
        let prefix = encode_prefix(&hash, request_path, meta, 0);
        let (file, temp) = match self.create_temp() {
            Ok(created) => created,
            Err(e) => {
                self.count_error(format_args!("cannot create a file in {}: {e}", self.temp_dir.display()));
                return None;
            }
        };
        let mut write = DiskWrite {
            tier: self,
            file,
            temp,
            hash,
            request_path: request_path.into(),
            prefix,
            written: 0,
            finished: false,
        };
        if let Err(e) = write.file.write_all(&write.prefix) {
            self.count_error(format_args!("writing {}: {e}", write.temp.display()));
            return None;
        }
        Some(write)
    }

    fn create_temp(&self) -> io::Result<(File, PathBuf)> {
        let name = format!(
            "{}.{}",
            std::process::id(),
            self.next_temp.fetch_add(1, Ordering::Relaxed)
        );
        let temp = self.temp_dir.join(name);
        let open = || OpenOptions::new().write(true).read(true).create_new(true).open(&temp);
        let file = match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.temp_dir)?;
                open()?
            }
            other => other?,
        };
        Ok((file, temp))
    }

    /// Moves a complete temporary file to `hash`'s path.
    fn publish(&self, temp: &Path, hash: &HashBinary) -> io::Result<()> {
        let target = self.object_path(hash);
        match std::fs::rename(temp, &target) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && temp.exists() => {
                if let Some(dir) = target.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::rename(temp, &target)
            }
            other => other,
        }
    }

    fn insert(&self, hash: HashBinary, request_path: Box<str>, size: u64) {
        self.paths.add(&request_path, hash);
        self.index.admit(
            lru_key(&hash),
            DiskEntry {
                hash,
                path: request_path,
            },
            size as usize,
        );
        for (evicted, _) in self.index.evict_to_limit() {
            self.paths.remove(&evicted.path, &evicted.hash);
            self.unlink(&evicted.hash);
        }
    }

    fn unlink(&self, hash: &HashBinary) {
        let path = self.object_path(hash);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                self.count_error(format_args!("cannot remove {}: {e}", path.display()))
            }
            _ => {}
        }
    }

    /// Drops `hash` from the index (its file is already gone).
    fn forget(&self, hash: &HashBinary) {
        if let Some((entry, _)) = self.index.remove(lru_key(hash)) {
            self.paths.remove(&entry.path, &entry.hash);
        }
    }

    /// Removes the object stored for `hash`; whether one was indexed.
    pub fn remove(&self, hash: &HashBinary) -> bool {
        let indexed = self.index.remove(lru_key(hash));
        if let Some((entry, _)) = &indexed {
            self.paths.remove(&entry.path, &entry.hash);
        }
        self.unlink(hash);
        indexed.is_some()
    }

    /// Removes every object whose request path satisfies `matches`; returns their hashes.
    pub fn purge_paths(&self, matches: Predicate) -> Vec<HashBinary> {
        if !self.scan_done() {
            self.purges_during_scan.lock().push(PendingPurge {
                at: SystemTime::now(),
                matches: matches.clone(),
            });
        }
        let mut doomed = Vec::new();
        for shard in 0..SHARDS {
            self.index.iter_for_each(shard, |(entry, _)| {
                if matches(&entry.path) {
                    doomed.push(entry.hash);
                }
            });
        }
        doomed.retain(|hash| self.remove(hash));
        doomed
    }

    /// Removes every object stored for request path `path` (a lookup, not a scan); returns
    /// their hashes.
    pub fn invalidate_path(&self, path: &str) -> Vec<HashBinary> {
        if !self.scan_done() {
            let exact: Box<str> = path.into();
            self.purges_during_scan.lock().push(PendingPurge {
                at: SystemTime::now(),
                matches: Arc::new(move |p| p == &*exact),
            });
        }
        let mut hashes = self.paths.take(path);
        hashes.retain(|hash| self.remove(hash));
        hashes
    }

    /// Replaces the stored metadata of `hash` (after a revalidation), keeping its body; whether
    /// there was an object to update.
    pub fn update_meta(&self, hash: &HashBinary, meta: &CacheMeta) -> bool {
        match self.rewrite_meta(hash, meta) {
            Ok(updated) => updated,
            Err(e) => {
                self.count_error(format_args!("updating {}: {e}", self.object_path(hash).display()));
                self.remove(hash);
                false
            }
        }
    }

    fn rewrite_meta(&self, hash: &HashBinary, meta: &CacheMeta) -> io::Result<bool> {
        let Ok(Found::Object(old)) = self.read_object(hash) else {
            return Ok(false);
        };
        let request_path = std::str::from_utf8(&old.request_path).map_err(io::Error::other)?;
        let (stored, header) =
            super::storage::StoredMeta::serialized(meta).map_err(|e| io::Error::other(e.to_string()))?;
        let parts = MetaParts {
            internal: stored.internal(),
            header: &header,
            plain: stored.is_plain(),
        };
        let prefix = encode_prefix(hash, request_path, &parts, old.body_len);
        let (mut file, temp) = self.create_temp()?;
        let copied = (|| {
            file.write_all(&prefix)?;
            let mut source = old.file;
            source.seek(SeekFrom::Start(old.body_offset))?;
            // `io::copy` between files copies in the kernel (copy_file_range).
            let copied = io::copy(&mut io::Read::take(source, old.body_len), &mut file)?;
            if copied != old.body_len {
                return Err(io::Error::other("body shorter than recorded"));
            }
            self.publish(&temp, hash)
        })();
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
        self.insert(*hash, request_path.into(), prefix.len() as u64 + old.body_len);
        Ok(true)
    }

    /// Indexes what an earlier run left on disk and removes the temporary files of processes
    /// that are gone.
    fn scan(&'static self) {
        self.remove_orphan_temps();
        let shards = match std::fs::read_dir(&self.objects_dir) {
            Ok(dirs) => dirs,
            Err(e) => {
                self.count_error(format_args!("cannot list {}: {e}", self.objects_dir.display()));
                self.finish_scan();
                return;
            }
        };
        let mut indexed = 0usize;
        for dir in shards.flatten() {
            let Ok(files) = std::fs::read_dir(dir.path()) else {
                continue;
            };
            for file in files.flatten() {
                let name = file.file_name();
                let Some(hash) = name.to_str().and_then(parse_hex) else {
                    continue;
                };
                if self.index.peek(lru_key(&hash)) {
                    continue;
                }
                match self.scan_one(&file.path(), &hash) {
                    Ok(true) => indexed += 1,
                    Ok(false) => {}
                    Err(e) => self.count_error(format_args!("scanning {}: {e}", file.path().display())),
                }
            }
        }
        self.finish_scan();
        tracing::info!(target: "edgehook::cache", objects = indexed, "disk tier: indexed what was on disk");
    }

    fn scan_one(&self, path: &Path, hash: &HashBinary) -> io::Result<bool> {
        let file = File::open(path)?;
        let mut buf = vec![0u8; SCAN_READ];
        let read = read_full_at(&file, &mut buf, 0)?;
        buf.truncate(read);
        let prefix = match Prefix::read(&buf) {
            Ok(prefix) if prefix.hash == *hash => prefix,
            _ => {
                self.count_error(format_args!("{}: not a whole cache object; removed", path.display()));
                self.unlink(hash);
                return Ok(false);
            }
        };
        if buf.len() < FIXED + prefix.key_len {
            buf.resize(FIXED + prefix.key_len, 0);
            read_full_at(&file, &mut buf[read..], read as u64)?;
        }
        let stat = file.metadata()?;
        let request_path = String::from_utf8_lossy(&buf[FIXED..FIXED + prefix.key_len]).into_owned();
        if stat.len() != prefix.len() as u64 + prefix.body_len {
            self.count_error(format_args!(
                "{}: length does not match its prefix (torn); removed",
                path.display()
            ));
            self.unlink(hash);
            return Ok(false);
        }
        if self.purged_during_scan(&request_path, stat.modified().ok()) {
            self.unlink(hash);
            return Ok(false);
        }
        if !self.index.peek(lru_key(hash)) {
            self.insert(*hash, request_path.into(), stat.len());
        }
        Ok(true)
    }

    fn finish_scan(&self) {
        let mut purges = self.purges_during_scan.lock();
        self.scan_done.store(true, Ordering::Release);
        purges.clear();
    }

    fn remove_orphan_temps(&self) {
        let Ok(entries) = std::fs::read_dir(&self.temp_dir) else {
            return;
        };
        let own = std::process::id();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let owner = name
                .to_str()
                .and_then(|n| n.split('.').next())
                .and_then(|p| p.parse::<u32>().ok());
            // A writer that is still running (the old process during `serve --upgrade`) keeps
            // its files.
            let alive = owner.is_some_and(|pid| pid == own || Path::new(&format!("/proc/{pid}")).exists());
            if !alive {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// An object being written; dropped unfinished, its temporary file is removed.
pub struct DiskWrite {
    tier: &'static DiskTier,
    file: File,
    temp: PathBuf,
    hash: HashBinary,
    request_path: Box<str>,
    prefix: Vec<u8>,
    written: u64,
    finished: bool,
}

impl DiskWrite {
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.written + data.len() as u64 > self.tier.max_object_size {
            return Err(io::Error::other("object larger than cache.max_object_size"));
        }
        self.file.write_all(data)?;
        self.written += data.len() as u64;
        Ok(())
    }

    /// Records the body's length in the prefix and publishes the file under its key's name,
    /// unless the admission policy refuses it; the bytes the tier now holds for it.
    pub fn finish(mut self) -> io::Result<u64> {
        let body_len_at = 24;
        self.prefix[body_len_at..body_len_at + 8].copy_from_slice(&self.written.to_le_bytes());
        self.prefix[CRC_AT..CRC_AT + 4].fill(0);
        let crc = crc32fast::hash(&self.prefix);
        self.prefix[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
        self.file.write_all_at(&self.prefix[..FIXED], 0)?;
        let size = self.prefix.len() as u64 + self.written;
        if !self.tier.make_room(&self.hash, size) {
            self.tier.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Ok(0);
        }
        self.tier.publish(&self.temp, &self.hash)?;
        self.finished = true;
        self.tier
            .insert(self.hash, std::mem::take(&mut self.request_path), size);
        Ok(size)
    }

    pub fn tier(&self) -> &'static DiskTier {
        self.tier
    }
}

impl Drop for DiskWrite {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

impl DiskObject {
    /// The object's metadata, decoded.
    pub fn meta(&self) -> Option<CacheMeta> {
        CacheMeta::deserialize(&self.internal, &self.header).ok()
    }

    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// The whole body when it came with the first read.
    pub fn whole_body(&self) -> Option<Bytes> {
        (self.head.len() as u64 == self.body_len).then(|| self.head.clone())
    }

    /// Body bytes from `start`, at most `limit` of them; fewer only at the end of the body.
    pub fn read(&self, start: u64, limit: usize) -> io::Result<Bytes> {
        let end = (start + limit as u64).min(self.body_len);
        if start >= end {
            return Ok(Bytes::new());
        }
        if end <= self.head.len() as u64 {
            return Ok(self.head.slice(start as usize..end as usize));
        }
        let mut buf = BytesMut::zeroed((end - start) as usize);
        let read = read_full_at(&self.file, &mut buf, self.body_offset + start)?;
        if read < buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "cached body shorter than recorded",
            ));
        }
        Ok(buf.freeze())
    }

    pub const CHUNK: usize = CHUNK;
}

/// How often keys were asked of the disk tier: a count-min sketch of 4-bit counters, halved
/// every `10 x width` records so old popularity fades (TinyLFU, Einziger et al. 2017).
/// Hand-written because TinyUFO, the maintained implementation in pingora's family, keeps its
/// sketch private to its own cache.
struct FrequencySketch {
    counters: Vec<AtomicU8>,
    mask: usize,
    records: AtomicUsize,
    reset_every: usize,
}

const SKETCH_ROWS: usize = 4;
const SKETCH_MAX: u8 = 15;

impl FrequencySketch {
    fn new(expected_objects: usize) -> FrequencySketch {
        let width = expected_objects.next_power_of_two().max(64);
        FrequencySketch {
            counters: (0..width * SKETCH_ROWS).map(|_| AtomicU8::new(0)).collect(),
            mask: width - 1,
            records: AtomicUsize::new(0),
            reset_every: width * 10,
        }
    }

    fn slots(&self, hash: &HashBinary) -> [usize; SKETCH_ROWS] {
        std::array::from_fn(|row| {
            let at = row * 4;
            let word = u32::from_le_bytes([hash[at], hash[at + 1], hash[at + 2], hash[at + 3]]) as usize;
            row * (self.mask + 1) + (word & self.mask)
        })
    }

    fn record(&self, hash: &HashBinary) {
        for slot in self.slots(hash) {
            let _ = self.counters[slot].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                (c < SKETCH_MAX).then_some(c + 1)
            });
        }
        if self.records.fetch_add(1, Ordering::Relaxed) + 1 >= self.reset_every {
            self.records.store(0, Ordering::Relaxed);
            for counter in &self.counters {
                let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| Some(c / 2));
            }
        }
    }

    fn estimate(&self, hash: &HashBinary) -> u8 {
        self.slots(hash)
            .iter()
            .map(|&slot| self.counters[slot].load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::http::ResponseHeader;
    use std::time::{Duration, SystemTime};

    fn meta(max_age: u64) -> CacheMeta {
        let mut header = ResponseHeader::build(200, None).unwrap();
        header
            .insert_header("Cache-Control", format!("max-age={max_age}"))
            .unwrap();
        let now = SystemTime::now();
        CacheMeta::new(now + Duration::from_secs(max_age), now, 0, 0, header)
    }

    fn parts(meta: &CacheMeta) -> MetaParts<'static> {
        let (stored, header) = crate::cache::storage::StoredMeta::serialized(meta).unwrap();
        MetaParts {
            internal: stored.internal().to_vec().leak(),
            header: header.leak(),
            plain: stored.is_plain(),
        }
    }

    fn hash_of(name: &str) -> HashBinary {
        use pingora::cache::key::CacheHashKey;
        pingora::cache::CacheKey::new(name, name).combined_bin()
    }

    fn store(tier: &'static DiskTier, name: &str, body: &[u8]) -> u64 {
        let mut write = tier
            .begin_write(hash_of(name), name, &parts(&meta(60)), None)
            .expect("admitted");
        for piece in body.chunks(7000) {
            write.write(piece).unwrap();
        }
        write.finish().unwrap()
    }

    fn body_of(tier: &DiskTier, name: &str) -> Option<Vec<u8>> {
        let object = tier.lookup(&hash_of(name))?;
        let mut body = Vec::new();
        while (body.len() as u64) < object.body_len() {
            body.extend_from_slice(&object.read(body.len() as u64, CHUNK).unwrap());
        }
        Some(body)
    }

    fn wait_scan(tier: &DiskTier) {
        for _ in 0..500 {
            if tier.scan_done() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("scan did not finish");
    }

    fn pattern(bytes: usize) -> Vec<u8> {
        (0..bytes).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn an_object_written_in_pieces_reads_back_whole_and_by_range() {
        let dir = tempfile::tempdir().unwrap();
        let tier = DiskTier::open(dir.path(), 10 << 20, 4 << 20);
        let small = b"hello".to_vec();
        let large = pattern(1 << 20);
        store(tier, "/small", &small);
        store(tier, "/large", &large);
        assert_eq!(body_of(tier, "/small"), Some(small));
        assert_eq!(body_of(tier, "/large").as_deref(), Some(&large[..]));
        let object = tier.lookup(&hash_of("/large")).unwrap();
        assert_eq!(object.read(500_000, 1000).unwrap(), &large[500_000..501_000]);
        assert_eq!(
            object.meta().unwrap().response_header().headers["cache-control"],
            "max-age=60"
        );
        assert!(object.whole_body().is_none(), "a large body is read in chunks");
        assert_eq!(tier.objects(), 2);
        assert!(tier.bytes() > (1 << 20));
        assert!(body_of(tier, "/absent").is_none());
    }

    #[test]
    fn an_unfinished_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let tier = DiskTier::open(dir.path(), 10 << 20, 4 << 20);
        let mut write = tier
            .begin_write(hash_of("/cut"), "/cut", &parts(&meta(60)), None)
            .unwrap();
        write.write(&pattern(10_000)).unwrap();
        drop(write);
        assert!(body_of(tier, "/cut").is_none());
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert_eq!(tier.objects(), 0);
    }

    #[test]
    fn a_torn_or_foreign_file_is_refused_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let tier = DiskTier::open(dir.path(), 10 << 20, 4 << 20);
        store(tier, "/torn", &pattern(100_000));
        let path = tier.object_path(&hash_of("/torn"));
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(60_000).unwrap();
        assert!(body_of(tier, "/torn").is_none());
        assert!(!path.exists(), "a torn object is deleted");
        assert_eq!(tier.stats.errors.load(Ordering::Relaxed), 1);

        store(tier, "/a", b"aaaa");
        store(tier, "/b", b"bbbb");
        // /b's file under /a's name: the hash in the prefix does not match.
        std::fs::copy(tier.object_path(&hash_of("/b")), tier.object_path(&hash_of("/a"))).unwrap();
        assert!(body_of(tier, "/a").is_none());
        assert_eq!(body_of(tier, "/b").as_deref(), Some(&b"bbbb"[..]));

        store(tier, "/flipped", b"body");
        let path = tier.object_path(&hash_of("/flipped"));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[FIXED + 2] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        assert!(
            body_of(tier, "/flipped").is_none(),
            "a metadata checksum mismatch is refused"
        );
    }

    #[test]
    fn a_reopened_tier_indexes_what_is_on_disk_and_removes_dead_writers_temps() {
        let dir = tempfile::tempdir().unwrap();
        let first = DiskTier::open(dir.path(), 10 << 20, 4 << 20);
        wait_scan(first);
        for i in 0..20 {
            store(first, &format!("/o{i}"), &pattern(1000 + i));
        }
        std::fs::write(dir.path().join("tmp").join("999999999.0"), b"half an object").unwrap();
        let live = dir.path().join("tmp").join(format!("{}.77", std::process::id()));
        std::fs::write(&live, b"a live writer's file").unwrap();

        let second = DiskTier::open(dir.path(), 10 << 20, 4 << 20);
        assert_eq!(
            body_of(second, "/o7"),
            Some(pattern(1007)),
            "served before the scan ends"
        );
        wait_scan(second);
        assert_eq!(second.objects(), 20);
        assert_eq!(second.bytes(), first.bytes());
        assert!(!dir.path().join("tmp").join("999999999.0").exists());
        assert!(live.exists(), "a running process's temporary file is kept");
    }

    #[test]
    fn a_purge_during_the_start_up_scan_still_removes_older_objects() {
        let dir = tempfile::tempdir().unwrap();
        let first = DiskTier::open(dir.path(), 10 << 20, 4 << 20);
        for i in 0..200 {
            store(first, &format!("/img/{i}"), b"x");
        }
        store(first, "/css/site.css", b"y");
        let second = DiskTier::open(dir.path(), 10 << 20, 4 << 20);
        let purged = second.purge_paths(Arc::new(|p: &str| p.starts_with("/img/")));
        wait_scan(second);
        assert!(purged.len() <= 200);
        for i in (0..200).step_by(37) {
            assert!(body_of(second, &format!("/img/{i}")).is_none(), "/img/{i}");
        }
        assert_eq!(second.objects(), 1);
        assert_eq!(body_of(second, "/css/site.css").as_deref(), Some(&b"y"[..]));
        assert_eq!(second.invalidate_path("/css/site.css").len(), 1);
        assert!(body_of(second, "/css/site.css").is_none());
    }

    #[test]
    fn objects_asked_for_once_do_not_displace_the_working_set() {
        let dir = tempfile::tempdir().unwrap();
        let tier = DiskTier::open(dir.path(), 600_000, 200_000);
        wait_scan(tier);
        let working_set: Vec<String> = (0..4).map(|i| format!("/hot{i}")).collect();
        for name in &working_set {
            assert!(tier.lookup(&hash_of(name)).is_none());
            store(tier, name, &pattern(100_000));
            for _ in 0..3 {
                assert!(body_of(tier, name).is_some());
            }
        }
        for i in 0..30 {
            let name = format!("/once{i}");
            assert!(tier.lookup(&hash_of(&name)).is_none());
            if let Some(mut write) = tier.begin_write(hash_of(&name), &name, &parts(&meta(60)), Some(100_000)) {
                write.write(&pattern(100_000)).unwrap();
                write.finish().unwrap();
            }
        }
        for name in &working_set {
            assert!(body_of(tier, name).is_some(), "{name} was flushed by one-hit objects");
        }
        assert!(tier.bytes() <= 600_000);
        assert!(tier.stats.refused.load(Ordering::Relaxed) > 20);
    }

    #[test]
    fn new_metadata_keeps_the_body() {
        let dir = tempfile::tempdir().unwrap();
        let tier = DiskTier::open(dir.path(), 10 << 20, 4 << 20);
        let body = pattern(300_000);
        store(tier, "/r", &body);
        assert!(tier.update_meta(&hash_of("/r"), &meta(999)));
        let object = tier.lookup(&hash_of("/r")).unwrap();
        assert_eq!(
            object.meta().unwrap().response_header().headers["cache-control"],
            "max-age=999"
        );
        assert_eq!(body_of(tier, "/r"), Some(body));
        assert_eq!(tier.objects(), 1);
        assert!(!tier.update_meta(&hash_of("/none"), &meta(1)));
    }
}
