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
//! ```

use crate::config::valid_name;
use crate::package::{CodeTree, Limits, Package};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
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
}

/// `FunctionCode` as its JSON file holds it: a one-file package inline (`source`, `file_name`),
/// others (and layers) by the digest of their stored zip.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredCode {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    source: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    file_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    package: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    layers: Vec<String>,
    handler: String,
    timeout_ms: u64,
    memory: usize,
    env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub version: u32,
    /// Seconds since the Unix epoch.
    pub published_at: u64,
    pub code: FunctionCode,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredVersion {
    version: u32,
    published_at: u64,
    code: StoredCode,
}

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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state directory `{path}`: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("state file `{path}` is damaged: {message}")]
    Damaged { path: PathBuf, message: String },
    #[error("function `{function}` has no version {version}")]
    NoSuchVersion { function: String, version: u32 },
    #[error("{0}")]
    Invalid(String),
}

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

pub struct Store {
    root: PathBuf,
    /// Serializes writers so version numbers are never handed out twice.
    writing: Mutex<()>,
}

impl Store {
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let functions = root.join("functions");
        std::fs::create_dir_all(&functions).map_err(io(&functions))?;
        Ok(Store {
            root: root.to_path_buf(),
            writing: Mutex::new(()),
        })
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
        let layers = code
            .layers
            .iter()
            .map(|layer| self.put_package(layer))
            .collect::<Result<Vec<_>, _>>()?;
        let mut paths = code.package.paths();
        let single = match (paths.next(), paths.next()) {
            (Some(only), None) => code
                .package
                .file(only)
                .and_then(|content| std::str::from_utf8(content).ok())
                .map(|source| (only.to_string(), source.to_string())),
            _ => None,
        };
        let (source, file_name, package) = match single {
            Some((file_name, source)) => (source, file_name, None),
            None => (String::new(), String::new(), Some(self.put_package(&code.package)?)),
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

    fn loaded(&self, stored: StoredCode) -> Result<FunctionCode, StoreError> {
        let package = match &stored.package {
            Some(digest) => self.package(digest)?,
            None => Arc::new(Package::single(&stored.file_name, &stored.source)),
        };
        let layers = stored
            .layers
            .iter()
            .map(|digest| self.package(digest))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FunctionCode {
            package,
            layers,
            handler: stored.handler,
            timeout_ms: stored.timeout_ms,
            memory: stored.memory,
            env: stored.env,
        })
    }

    fn loaded_version(&self, stored: StoredVersion) -> Result<Version, StoreError> {
        Ok(Version {
            version: stored.version,
            published_at: stored.published_at,
            code: self.loaded(stored.code)?,
        })
    }

    pub fn latest(&self, name: &str) -> Result<Option<FunctionCode>, StoreError> {
        read_json::<StoredCode>(&self.function_dir(name)?.join("latest.json"))?
            .map(|stored| self.loaded(stored))
            .transpose()
    }

    pub fn put_latest(&self, name: &str, code: &FunctionCode) -> Result<(), StoreError> {
        let _writing = self.writing.lock();
        let stored = self.stored(code)?;
        write_json(&self.function_dir(name)?.join("latest.json"), &stored)
    }

    /// Published versions, oldest first.
    pub fn versions(&self, name: &str) -> Result<Vec<Version>, StoreError> {
        let dir = self.function_dir(name)?.join("versions");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::Io { path: dir, source: e }),
        };
        let mut versions = Vec::new();
        for entry in entries {
            let path = entry.map_err(io(&dir))?.path();
            let is_version = path.extension().is_some_and(|e| e == "json")
                && path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .is_some_and(|s| s.parse::<u32>().is_ok());
            if is_version {
                if let Some(version) = read_json::<StoredVersion>(&path)? {
                    versions.push(version);
                }
            }
        }
        versions.sort_by_key(|v| v.version);
        versions.into_iter().map(|v| self.loaded_version(v)).collect()
    }

    /// Version numbers and publication times, without reading their packages.
    pub fn version_list(&self, name: &str) -> Result<Vec<(u32, u64, String)>, StoreError> {
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
        if !valid_name(alias) || alias.parse::<u32>().is_ok() {
            return Err(StoreError::Invalid(format!(
                "`{alias}` is not an alias name (letters, digits, - and _, not only digits)"
            )));
        }
        let _writing = self.writing.lock();
        let published = self.version_list(name)?;
        for version in std::iter::once(value.version).chain(value.additional_version.map(|w| w.version)) {
            if !published.iter().any(|v| v.0 == version) {
                return Err(StoreError::NoSuchVersion {
                    function: name.to_string(),
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
        let mut aliases = self.aliases(name)?;
        aliases.insert(alias.to_string(), value);
        write_json(&self.function_dir(name)?.join("aliases.json"), &aliases)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let store = Store::open(dir.path()).unwrap();
        assert!(store.versions("f").unwrap().is_empty());
        store.put_latest("f", &code("one")).unwrap();
        assert_eq!(store.publish("f", &code("one"), 10).unwrap(), 1);
        store.put_latest("f", &code("two")).unwrap();
        assert_eq!(store.publish("f", &code("two"), 20).unwrap(), 2);
        drop(store);
        let reopened = Store::open(dir.path()).unwrap();
        let versions = reopened.versions("f").unwrap();
        assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(versions[0].code.env["STAGE"], "one", "version 1 kept its frozen code");
        assert_eq!(reopened.latest("f").unwrap().unwrap().env["STAGE"], "two");
    }

    #[test]
    fn aliases_check_their_versions_and_weights() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
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
        let store = Store::open(dir.path()).unwrap();
        assert!(store.put_latest("../../etc", &code("x")).is_err());
        assert!(store.versions("a/b").is_err());
    }

    #[test]
    fn a_damaged_file_is_reported_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.publish("f", &code("one"), 1).unwrap();
        std::fs::write(dir.path().join("functions/f/aliases.json"), "{ not json").unwrap();
        assert!(matches!(store.aliases("f"), Err(StoreError::Damaged { .. })));
    }

    #[test]
    fn concurrent_publishes_get_distinct_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(Store::open(dir.path()).unwrap());
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
