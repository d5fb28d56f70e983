//! A function's code as Lambda takes it: a deployment package, the files of a directory or a
//! zip (code, `node_modules`, data files), or one source file. Packages are read whole into
//! memory, checked against Lambda@Edge's size limits, and known by a digest of their content
//! (what versions freeze and the state directory stores once).
//!
//! Reading a zip refuses what could harm the proxy or escape the package: paths leaving it
//! (`../`, absolute names), symlinks pointing out of it, more files or more bytes than the
//! limits allow (sizes are counted as the data is inflated, so a zip whose headers lie about
//! its sizes is stopped at the limit too).

pub mod tree;

pub use tree::{CodeTree, Entry, LAYER_ROOT, TASK_ROOT};

use bytes::Bytes;
use sha2::Digest as _;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Component, Path};

/// Lambda's limits on a deployment package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The zipped package (Lambda@Edge: 1 MB for viewer events, 50 MB for origin events).
    pub zipped: u64,
    /// All files unzipped (Lambda: 250 MB).
    pub unzipped: u64,
    /// Files in the package (Lambda sets none; this bounds the index a zip can make us build).
    pub files: usize,
}

const MB: u64 = 1024 * 1024;

impl Limits {
    /// A function associated with an origin event (or with none).
    pub const ORIGIN: Limits = Limits {
        zipped: 50 * MB,
        unzipped: 250 * MB,
        files: 50_000,
    };
    /// A function associated with a viewer event.
    pub const VIEWER: Limits = Limits {
        zipped: MB,
        ..Limits::ORIGIN
    };
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PackageError {
    #[error("cannot read `{path}`: {message}")]
    Io { path: String, message: String },
    #[error("not a valid zip: {0}")]
    Zip(String),
    #[error("`{0}` is outside the package (paths in a package must stay inside it)")]
    Escapes(String),
    #[error("the symlink `{link}` points outside the package (to `{target}`)")]
    SymlinkEscapes { link: String, target: String },
    #[error("the package is {size} bytes zipped; the limit {what} is {limit} bytes")]
    ZippedTooLarge { size: u64, limit: u64, what: &'static str },
    #[error("the package holds more than {limit} bytes unzipped (Lambda's limit)")]
    UnzippedTooLarge { limit: u64 },
    #[error("the package holds more than {limit} files")]
    TooManyFiles { limit: usize },
    #[error("the package is empty")]
    Empty,
}

/// The files of a function's code, by their path inside the package (`dist/app.js`).
#[derive(Clone)]
pub struct Package {
    files: BTreeMap<String, Bytes>,
    digest: String,
    /// The size of `to_zip`'s archive, or of the zip it was read from; made on first need,
    /// as deflating a large layer costs more than reading it.
    zipped_size: std::sync::OnceLock<u64>,
}

impl PartialEq for Package {
    fn eq(&self, other: &Package) -> bool {
        self.files == other.files
    }
}

impl Eq for Package {}

impl std::fmt::Debug for Package {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Package")
            .field("files", &self.files.len())
            .field("digest", &self.digest)
            .finish()
    }
}

/// A package path made of plain names only: no `..`, no root, no empty or `.` parts; `\`
/// counts as a separator (zips made on Windows use it).
fn clean_path(raw: &str) -> Result<String, PackageError> {
    let mut parts = Vec::new();
    for part in raw.split(['/', '\\']) {
        match part {
            "" | "." => continue,
            ".." => return Err(PackageError::Escapes(raw.to_string())),
            _ if part.contains('\0') || part.contains(':') && parts.is_empty() && part.len() == 2 => {
                return Err(PackageError::Escapes(raw.to_string()))
            }
            _ => parts.push(part),
        }
    }
    if raw.starts_with('/') || raw.starts_with('\\') {
        return Err(PackageError::Escapes(raw.to_string()));
    }
    Ok(parts.join("/"))
}

/// `target` taken relative to the directory of `link`, normalized; `None` when it leaves
/// the package.
fn symlink_target(link: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            _ => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

struct Builder {
    files: BTreeMap<String, Bytes>,
    unzipped: u64,
    limits: Limits,
}

impl Builder {
    fn new(limits: Limits) -> Builder {
        Builder {
            files: BTreeMap::new(),
            unzipped: 0,
            limits,
        }
    }

    /// Room for `more` bytes and one more file.
    fn admit(&mut self, more: u64) -> Result<(), PackageError> {
        if self.files.len() >= self.limits.files {
            return Err(PackageError::TooManyFiles {
                limit: self.limits.files,
            });
        }
        self.unzipped = self.unzipped.saturating_add(more);
        if self.unzipped > self.limits.unzipped {
            return Err(PackageError::UnzippedTooLarge {
                limit: self.limits.unzipped,
            });
        }
        Ok(())
    }

    fn add(&mut self, path: String, content: Bytes) -> Result<(), PackageError> {
        self.admit(content.len() as u64)?;
        self.files.insert(path, content);
        Ok(())
    }

    /// A symlink inside the package: the file it names, or every file under the directory it
    /// names, appears under the link's path too. A link to nothing is left out, as a dangling
    /// link reads as no file.
    fn link(&mut self, link: &str, target: &str) -> Result<(), PackageError> {
        let resolved = symlink_target(link, target).ok_or_else(|| PackageError::SymlinkEscapes {
            link: link.to_string(),
            target: target.to_string(),
        })?;
        if let Some(content) = self.files.get(&resolved).cloned() {
            return self.add(link.to_string(), content);
        }
        let prefix = format!("{resolved}/");
        let beneath: Vec<(String, Bytes)> = self
            .files
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            .map(|(path, content)| (format!("{link}/{}", &path[prefix.len()..]), content.clone()))
            .collect();
        for (path, content) in beneath {
            self.add(path, content)?;
        }
        Ok(())
    }

    fn finish(self, zipped_size: Option<u64>) -> Result<Package, PackageError> {
        if self.files.is_empty() {
            return Err(PackageError::Empty);
        }
        let mut package = Package {
            files: self.files,
            digest: String::new(),
            zipped_size: std::sync::OnceLock::new(),
        };
        package.digest = package.compute_digest();
        if let Some(size) = zipped_size {
            let _ = package.zipped_size.set(size);
        }
        package.check_zipped(self.limits, "for a function package")?;
        Ok(package)
    }
}

impl Package {
    /// One source file, as `code = "index.mjs"` names it.
    pub fn single(file_name: &str, source: &str) -> Package {
        let mut files = BTreeMap::new();
        files.insert(file_name.to_string(), Bytes::copy_from_slice(source.as_bytes()));
        let mut package = Package {
            files,
            digest: String::new(),
            zipped_size: std::sync::OnceLock::new(),
        };
        package.digest = package.compute_digest();
        package
    }

    /// Every file under `dir`. Symlinks may point anywhere inside `dir`, not out of it.
    pub fn from_dir(dir: &Path, limits: Limits) -> Result<Package, PackageError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |e: std::io::Error| PackageError::Io {
                path,
                message: e.to_string(),
            }
        };
        let root = dir.canonicalize().map_err(io(dir))?;
        let mut builder = Builder::new(limits);
        let mut links = Vec::new();
        let mut pending = vec![root.clone()];
        while let Some(current) = pending.pop() {
            let mut entries: Vec<_> = std::fs::read_dir(&current)
                .map_err(io(&current))?
                .collect::<Result<_, _>>()
                .map_err(io(&current))?;
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let path = entry.path();
                let relative = path
                    .strip_prefix(&root)
                    .map_err(|_| PackageError::Escapes(path.display().to_string()))?;
                let name = relative
                    .components()
                    .map(|c| match c {
                        Component::Normal(part) => Ok(part.to_string_lossy().into_owned()),
                        _ => Err(PackageError::Escapes(path.display().to_string())),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .join("/");
                let kind = entry.file_type().map_err(io(&path))?;
                if kind.is_symlink() {
                    let target = std::fs::canonicalize(&path).map_err(io(&path))?;
                    let inside = target.strip_prefix(&root).map_err(|_| PackageError::SymlinkEscapes {
                        link: name.clone(),
                        target: target.display().to_string(),
                    })?;
                    links.push((name, inside.to_string_lossy().into_owned()));
                } else if kind.is_dir() {
                    pending.push(path);
                } else if kind.is_file() {
                    let size = entry.metadata().map_err(io(&path))?.len();
                    builder.admit(size)?;
                    let content = std::fs::read(&path).map_err(io(&path))?;
                    builder.unzipped -= size;
                    builder.add(name, content.into())?;
                }
            }
        }
        for (link, target) in links {
            // The target was made relative to the root; as a link target it must be taken
            // from the root, whatever directory the link sits in.
            let depth = link.matches('/').count();
            let from_root = format!("{}{target}", "../".repeat(depth));
            builder.link(&link, &from_root)?;
        }
        builder.finish(None)
    }

    /// The files of a zip archive.
    pub fn from_zip(data: &[u8], limits: Limits) -> Result<Package, PackageError> {
        let zipped = data.len() as u64;
        if zipped > limits.zipped {
            return Err(PackageError::ZippedTooLarge {
                size: zipped,
                limit: limits.zipped,
                what: "for a function package",
            });
        }
        let zip_error = |e: zip::result::ZipError| PackageError::Zip(e.to_string());
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(data)).map_err(zip_error)?;
        if archive.len() > limits.files.saturating_mul(2) {
            return Err(PackageError::TooManyFiles { limit: limits.files });
        }
        let mut builder = Builder::new(limits);
        let mut links = Vec::new();
        for index in 0..archive.len() {
            let mut entry = archive.by_index(index).map_err(zip_error)?;
            let raw = entry.name().to_string();
            let name = clean_path(&raw)?;
            if entry.is_dir() || name.is_empty() {
                continue;
            }
            // Read through a bound: the header's size is the archive's claim, not a fact.
            let room = limits.unzipped.saturating_sub(builder.unzipped);
            let mut content = Vec::with_capacity(entry.size().min(room).min(16 * MB) as usize);
            (&mut entry)
                .take(room + 1)
                .read_to_end(&mut content)
                .map_err(|e| PackageError::Zip(format!("`{raw}`: {e}")))?;
            if content.len() as u64 > room {
                return Err(PackageError::UnzippedTooLarge { limit: limits.unzipped });
            }
            if entry.is_symlink() {
                let target = String::from_utf8_lossy(&content).into_owned();
                links.push((name, target));
            } else {
                builder.add(name, content.into())?;
            }
        }
        for (link, target) in links {
            builder.link(&link, &target)?;
        }
        builder.finish(Some(zipped))
    }

    /// The package as a zip (entries in path order, fixed times: the same files give the same
    /// bytes).
    pub fn to_zip(&self) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(0o644);
        for (path, content) in &self.files {
            // Writing to memory fails only on paths zip cannot hold, which a package has not.
            if writer.start_file(path.as_str(), options).is_ok() {
                let _ = writer.write_all(content);
            }
        }
        writer.finish().map(|cursor| cursor.into_inner()).unwrap_or_default()
    }

    /// Refuses the package if it is larger zipped than `limits` allow.
    pub fn check_zipped(&self, limits: Limits, what: &'static str) -> Result<(), PackageError> {
        // A package whose files would fit stored (not deflated) fits zipped: no need to deflate.
        if self.zipped_size.get().is_none() && self.stored_zip_bound() <= limits.zipped {
            return Ok(());
        }
        let size = self.zipped_size();
        if size > limits.zipped {
            return Err(PackageError::ZippedTooLarge {
                size,
                limit: limits.zipped,
                what,
            });
        }
        Ok(())
    }

    /// At least the size of `to_zip`'s archive: each file as deflate's worst case (stored
    /// blocks: 5 bytes per 16 KiB at most, plus a final block) with its local and central
    /// headers (each at most 46 bytes, the name and 36 bytes of extra fields), and the end
    /// record.
    fn stored_zip_bound(&self) -> u64 {
        const ENTRY_OVERHEAD: u64 = 2 * (46 + 36) + 16;
        const END_RECORD: u64 = 22;
        self.files
            .iter()
            .map(|(path, content)| {
                let len = content.len() as u64;
                len + len / 1024 + 2 * path.len() as u64 + ENTRY_OVERHEAD
            })
            .sum::<u64>()
            + END_RECORD
    }

    fn compute_digest(&self) -> String {
        let mut hash = sha2::Sha256::new();
        for (path, content) in &self.files {
            hash.update((path.len() as u64).to_le_bytes());
            hash.update(path.as_bytes());
            hash.update((content.len() as u64).to_le_bytes());
            hash.update(content);
        }
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The SHA-256 of the package's files and their paths.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    pub fn zipped_size(&self) -> u64 {
        *self.zipped_size.get_or_init(|| self.to_zip().len() as u64)
    }

    pub fn file(&self, path: &str) -> Option<&Bytes> {
        self.files.get(path)
    }

    /// Whether `path` is a directory: some file lies beneath it (`""` is the package's root).
    pub fn is_dir(&self, path: &str) -> bool {
        if path.is_empty() {
            return true;
        }
        let prefix = format!("{path}/");
        self.files
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(p, _)| p.starts_with(&prefix))
    }

    /// The names directly inside directory `path`, sorted; `None` when it is no directory.
    pub fn read_dir(&self, path: &str) -> Option<Vec<String>> {
        if !self.is_dir(path) {
            return None;
        }
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let mut names: Vec<String> = Vec::new();
        for (file, _) in self.files.range(prefix.clone()..) {
            let Some(rest) = file.strip_prefix(&prefix) else { break };
            let name = rest.split('/').next().unwrap_or(rest);
            if names.last().map(String::as_str) != Some(name) {
                names.push(name.to_string());
            }
        }
        Some(names)
    }

    /// The module a Lambda handler (`file.export`: `index.handler`, `dist/app.handler`) names,
    /// as a path in the package, found as Lambda's Node.js runtime finds it: `<file>.js`,
    /// `.mjs`, then `.cjs`. A package of one file is that module whatever the file part says.
    pub fn entry(&self, handler: &str) -> Result<String, String> {
        let mut paths = self.paths();
        if let (Some(only), None) = (paths.next(), paths.next()) {
            return Ok(only.to_string());
        }
        let Some((module, _)) = handler.rsplit_once('.') else {
            return Err(format!(
                "handler `{handler}` names no module: in a package, write it as `file.export` (`index.handler`, `dist/app.handler`)"
            ));
        };
        let module = module.trim_start_matches("./");
        [".js", ".mjs", ".cjs"]
            .iter()
            .map(|extension| format!("{module}{extension}"))
            .find(|path| self.file(path).is_some())
            .ok_or_else(|| {
                format!("Cannot find module '{module}' (handler `{handler}`): the package has no {module}.js, {module}.mjs or {module}.cjs")
            })
    }

    /// Every file: its path and contents.
    pub fn files(&self) -> impl Iterator<Item = (&str, &Bytes)> {
        self.files.iter().map(|(path, data)| (path.as_str(), data))
    }

    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Bytes of all files.
    pub fn unzipped_size(&self) -> u64 {
        self.files.values().map(|c| c.len() as u64).sum()
    }
}

/// What a function's code setting names: a source file, a directory or a zip.
pub fn read(path: &Path, limits: Limits) -> Result<Package, PackageError> {
    let io = |e: std::io::Error| PackageError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let metadata = std::fs::metadata(path).map_err(io)?;
    if metadata.is_dir() {
        return Package::from_dir(path, limits);
    }
    let data = std::fs::read(path).map_err(io)?;
    if data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06") {
        return Package::from_zip(&data, limits);
    }
    let source = String::from_utf8(data).map_err(|_| PackageError::Io {
        path: path.display().to_string(),
        message: "neither a zip nor UTF-8 JavaScript".into(),
    })?;
    let name = path
        .file_name()
        .map_or_else(|| "index.js".into(), |n| n.to_string_lossy().into_owned());
    let package = Package::single(&name, &source);
    package.check_zipped(limits, "for a function package")?;
    Ok(package)
}

#[cfg(test)]
mod tests;
