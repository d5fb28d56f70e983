//! Node.js 20's module resolution over a function's code tree (`crate::package::CodeTree`):
//! what `require(x)` and `import x` name, from a given module. It follows Node's documented
//! algorithms (the CommonJS `require.resolve` pseudocode and the ESM resolver): relative
//! files with extension and `index` search for `require` (exact paths for `import`),
//! `package.json` `main`, `exports` and `imports` with conditions and `*` patterns, nested
//! `node_modules` up the tree, self-reference, and Lambda's `NODE_PATH`, which puts the
//! layers' `/opt/nodejs/node20/node_modules` and `/opt/nodejs/node_modules` after them.
//! Kept in Rust because the ES module loader (outside the engine) and `require` (inside it)
//! both need it.

use super::module::{builtin_name, ModuleKind};
use crate::package::{tree::normalize, CodeTree, Entry, TASK_ROOT};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Lambda's `NODE_PATH` for the nodejs20.x runtime (its runtime's own directories hold
/// nothing a function can load here).
const NODE_PATH: [&str; 2] = ["/opt/nodejs/node20/node_modules", "/opt/nodejs/node_modules"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    Builtin(&'static str),
    File { path: String, kind: FileKind },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Esm,
    CommonJs,
    Json,
}

impl FileKind {
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Esm => "esm",
            FileKind::CommonJs => "cjs",
            FileKind::Json => "json",
        }
    }
}

/// How a module asked: `require` (and `require.resolve`) or `import`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Require,
    Import,
}

impl Mode {
    fn conditions(self) -> [&'static str; 3] {
        match self {
            Mode::Require => ["node", "require", "default"],
            Mode::Import => ["node", "import", "default"],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Node's `MODULE_NOT_FOUND` / `ERR_MODULE_NOT_FOUND`.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("Directory import '{path}' is not supported resolving ES modules imported from {referrer}{hint}")]
    DirectoryImport {
        path: String,
        referrer: String,
        /// Node's `\nDid you mean to import "..."?`, or empty.
        hint: String,
    },
    #[error(
        "Package subpath '{subpath}' is not defined by \"exports\" in {package}/package.json imported from {referrer}"
    )]
    NotExported {
        subpath: String,
        package: String,
        referrer: String,
    },
    #[error(
        "Package import specifier \"{specifier}\" is not defined in {package}/package.json imported from {referrer}"
    )]
    ImportNotDefined {
        specifier: String,
        package: String,
        referrer: String,
    },
    #[error("No such built-in module: {0}")]
    UnknownBuiltin(String),
    #[error("'{0}' is a native addon (.node); edgehook functions run JavaScript only")]
    NativeAddon(String),
    #[error("Invalid package config {0}")]
    InvalidPackageJson(String),
}

impl ResolveError {
    /// Node's error code.
    pub fn code(&self) -> &'static str {
        match self {
            ResolveError::NotFound { code, .. } => code,
            ResolveError::DirectoryImport { .. } => "ERR_UNSUPPORTED_DIR_IMPORT",
            ResolveError::NotExported { .. } => "ERR_PACKAGE_PATH_NOT_EXPORTED",
            ResolveError::ImportNotDefined { .. } => "ERR_PACKAGE_IMPORT_NOT_DEFINED",
            ResolveError::UnknownBuiltin(_) => "ERR_UNKNOWN_BUILTIN_MODULE",
            ResolveError::NativeAddon(_) => "ERR_DLOPEN_FAILED",
            ResolveError::InvalidPackageJson(_) => "ERR_INVALID_PACKAGE_CONFIG",
        }
    }
}

/// Resolves specifiers in one instance's code tree, keeping the `package.json` files it read.
pub struct Resolver {
    tree: CodeTree,
    manifests: RefCell<HashMap<String, Option<Rc<serde_json::Value>>>>,
}

fn dirname(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => "/",
    }
}

/// What JavaScript's encodeURIComponent leaves as it is: letters, digits and `-_.!~*'()`.
const URI_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// Node's `path.posix.relative` of two absolute, normalized paths.
fn relative_path(from: &str, to: &str) -> String {
    let from: Vec<&str> = from.split('/').filter(|p| !p.is_empty()).collect();
    let to: Vec<&str> = to.split('/').filter(|p| !p.is_empty()).collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; from.len() - common];
    parts.extend(&to[common..]);
    parts.join("/")
}

fn join(dir: &str, relative: &str) -> String {
    normalize(&format!("{dir}/{relative}"))
}

/// `name` and `./subpath` of a bare specifier (`@scope/name/sub` too); `None` if invalid.
fn split_package(specifier: &str) -> Option<(&str, String)> {
    let end = if specifier.starts_with('@') {
        let slash = specifier.find('/')?;
        specifier[slash + 1..]
            .find('/')
            .map_or(specifier.len(), |i| slash + 1 + i)
    } else {
        specifier.find('/').unwrap_or(specifier.len())
    };
    let name = &specifier[..end];
    if name.is_empty() || name.starts_with('.') || name.contains('\\') || name.contains('%') {
        return None;
    }
    Some((name, format!(".{}", &specifier[end..])))
}

impl Resolver {
    pub fn new(tree: CodeTree) -> Resolver {
        Resolver {
            tree,
            manifests: RefCell::new(HashMap::new()),
        }
    }

    pub fn tree(&self) -> &CodeTree {
        &self.tree
    }

    fn is_file(&self, path: &str) -> bool {
        matches!(self.tree.entry(path), Some(Entry::File(_)))
    }

    fn is_dir(&self, path: &str) -> bool {
        matches!(self.tree.entry(path), Some(Entry::Dir))
    }

    /// The parsed `package.json` of directory `dir`, if there is one.
    fn manifest(&self, dir: &str) -> Result<Option<Rc<serde_json::Value>>, ResolveError> {
        let path = join(dir, "package.json");
        if let Some(known) = self.manifests.borrow().get(&path) {
            return Ok(known.clone());
        }
        let parsed = match self.tree.file(&path) {
            None => None,
            Some(content) => Some(Rc::new(
                serde_json::from_slice(content)
                    .map_err(|e| ResolveError::InvalidPackageJson(format!("{path}: {e}")))?,
            )),
        };
        self.manifests.borrow_mut().insert(path, parsed.clone());
        Ok(parsed)
    }

    /// The nearest `package.json` at or above `dir`: its directory and content.
    fn package_scope(&self, dir: &str) -> Result<Option<(String, Rc<serde_json::Value>)>, ResolveError> {
        let mut current = dir.to_string();
        loop {
            if let Some(manifest) = self.manifest(&current)? {
                return Ok(Some((current, manifest)));
            }
            if current == "/" || current.ends_with("/node_modules") {
                return Ok(None);
            }
            current = dirname(&current).to_string();
        }
    }

    /// What kind of module the file at `path` is: by extension, then by its package's `type`,
    /// then (no `type`) by its syntax, as Node 20 detects it.
    pub fn kind(&self, path: &str) -> Result<FileKind, ResolveError> {
        if path.ends_with(".json") {
            return Ok(FileKind::Json);
        }
        if path.ends_with(".mjs") {
            return Ok(FileKind::Esm);
        }
        if path.ends_with(".cjs") {
            return Ok(FileKind::CommonJs);
        }
        if path.ends_with(".node") {
            return Err(ResolveError::NativeAddon(path.to_string()));
        }
        let declared = self
            .package_scope(dirname(path))?
            .and_then(|(_, manifest)| manifest.get("type").and_then(|t| t.as_str()).map(str::to_owned));
        Ok(match declared.as_deref() {
            Some("module") => FileKind::Esm,
            Some("commonjs") => FileKind::CommonJs,
            _ => {
                let source = self
                    .tree
                    .file(path)
                    .map(|c| String::from_utf8_lossy(c))
                    .unwrap_or_default();
                match ModuleKind::detect(path, &source) {
                    ModuleKind::Esm => FileKind::Esm,
                    ModuleKind::CommonJs => FileKind::CommonJs,
                }
            }
        })
    }

    fn file_at(&self, path: String) -> Result<Resolved, ResolveError> {
        let kind = self.kind(&path)?;
        Ok(Resolved::File { path, kind })
    }

    /// Resolves `specifier` as the module at `referrer` (an absolute path) asks for it.
    pub fn resolve(&self, specifier: &str, referrer: &str, mode: Mode) -> Result<Resolved, ResolveError> {
        match (self.resolve_unhinted(specifier, referrer, mode), mode) {
            (Err(mut error), Mode::Import) => {
                let referrer = referrer.strip_prefix("file://").unwrap_or(referrer);
                if let Some(found) = self.commonjs_hint(specifier, referrer) {
                    let hint = format!("\nDid you mean to import {}?", serde_json::Value::from(found));
                    match &mut error {
                        ResolveError::NotFound { message, .. } => message.push_str(&hint),
                        ResolveError::DirectoryImport { hint: slot, .. } => *slot = hint,
                        _ => {}
                    }
                }
                Err(error)
            }
            (outcome, _) => outcome,
        }
    }

    /// What Node suggests when an import fails where `require` would have found a module
    /// (`decorateErrorWithCommonJSHints` in Node 20's esm/resolve.js), as it does on Lambda:
    /// a relative specifier is looked up from the working directory, /var/task (Node's
    /// stand-in parent module has no file name), and shown relative to the importer.
    fn commonjs_hint(&self, specifier: &str, referrer: &str) -> Option<String> {
        let specifier = specifier.strip_prefix("file://").unwrap_or(specifier);
        let relative =
            specifier == "." || specifier == ".." || specifier.starts_with("./") || specifier.starts_with("../");
        let from = if relative {
            format!("{TASK_ROOT}/[eval]")
        } else {
            referrer.to_string()
        };
        let Ok(Resolved::File { path, .. }) = self.resolve_unhinted(specifier, &from, Mode::Require) else {
            return None;
        };
        let found = if relative {
            let shown = relative_path(dirname(referrer), &path);
            if shown.starts_with("../") {
                shown
            } else {
                format!("./{shown}")
            }
        } else if !specifier.starts_with('/') {
            let package = specifier.split('/').next().unwrap_or(specifier);
            let needle = format!("/node_modules/{package}/");
            match path.rfind(&needle) {
                Some(index) => {
                    let rest: Vec<String> = path[index + needle.len()..]
                        .split('/')
                        .map(|part| percent_encoding::utf8_percent_encode(part, URI_COMPONENT).to_string())
                        .collect();
                    format!("{package}/{}", rest.join("/"))
                }
                None => format!("file://{path}"),
            }
        } else {
            path
        };
        (found != specifier).then_some(found)
    }

    fn resolve_unhinted(&self, specifier: &str, referrer: &str, mode: Mode) -> Result<Resolved, ResolveError> {
        if let Some(name) = builtin_name(specifier) {
            return Ok(Resolved::Builtin(name));
        }
        if let Some(rest) = specifier.strip_prefix("node:") {
            return Err(ResolveError::UnknownBuiltin(format!("node:{rest}")));
        }
        let referrer = referrer.strip_prefix("file://").unwrap_or(referrer);
        let base = dirname(referrer);
        let not_found = || self.not_found(specifier, referrer, mode);
        let path_like = specifier.strip_prefix("file://").unwrap_or(specifier);
        if path_like.starts_with('/')
            || path_like.starts_with("./")
            || path_like.starts_with("../")
            || path_like == "."
            || path_like == ".."
        {
            let target = if path_like.starts_with('/') {
                normalize(path_like)
            } else {
                join(base, path_like)
            };
            return match mode {
                Mode::Require => self
                    .load_as_file(&target)?
                    .or(self.load_as_directory(&target)?)
                    .ok_or_else(not_found),
                Mode::Import => {
                    if self.is_file(&target) {
                        self.file_at(target)
                    } else if self.is_dir(&target) {
                        Err(ResolveError::DirectoryImport {
                            path: target,
                            referrer: referrer.to_string(),
                            hint: String::new(),
                        })
                    } else {
                        Err(not_found())
                    }
                }
            };
        }
        if specifier.starts_with('#') {
            return self.package_imports(specifier, base, referrer, mode);
        }
        let (name, subpath) = split_package(specifier).ok_or_else(not_found)?;
        if let Some(found) = self.package_self(name, &subpath, base, referrer, mode)? {
            return Ok(found);
        }
        for dir in self.node_modules_paths(base) {
            let package_dir = join(&dir, name);
            if let Some(found) = self.package_entry(&package_dir, &subpath, referrer, mode)? {
                return Ok(found);
            }
        }
        Err(not_found())
    }

    fn not_found(&self, specifier: &str, referrer: &str, mode: Mode) -> ResolveError {
        match mode {
            Mode::Require => ResolveError::NotFound {
                code: "MODULE_NOT_FOUND",
                message: format!("Cannot find module '{specifier}'\nRequire stack:\n- {referrer}"),
            },
            Mode::Import => {
                let bare =
                    !(specifier.starts_with('.') || specifier.starts_with('/') || specifier.starts_with("file:"));
                let what = if bare { "package" } else { "module" };
                let path_like = specifier.strip_prefix("file://").unwrap_or(specifier);
                let shown = if bare {
                    specifier.to_string()
                } else if path_like.starts_with('/') {
                    normalize(path_like)
                } else {
                    join(
                        dirname(referrer),
                        specifier.strip_prefix("file://").unwrap_or(specifier),
                    )
                };
                ResolveError::NotFound {
                    code: "ERR_MODULE_NOT_FOUND",
                    message: format!("Cannot find {what} '{shown}' imported from {referrer}"),
                }
            }
        }
    }

    /// `node_modules` directories from `start` up to the root, then Lambda's `NODE_PATH`.
    fn node_modules_paths(&self, start: &str) -> Vec<String> {
        let mut dirs = Vec::new();
        let mut current = start.to_string();
        loop {
            if !current.ends_with("/node_modules") {
                dirs.push(join(&current, "node_modules"));
            }
            if current == "/" {
                break;
            }
            current = dirname(&current).to_string();
        }
        dirs.extend(NODE_PATH.iter().map(|d| d.to_string()));
        dirs
    }

    /// The module a package directory gives for `subpath` (`.` or `./x`): through its
    /// `exports` when it has them, else its files (`main` for `.`).
    fn package_entry(
        &self,
        package_dir: &str,
        subpath: &str,
        referrer: &str,
        mode: Mode,
    ) -> Result<Option<Resolved>, ResolveError> {
        if !self.is_dir(package_dir) {
            return Ok(None);
        }
        if let Some(manifest) = self.manifest(package_dir)? {
            if let Some(exports) = manifest.get("exports").filter(|e| !e.is_null()) {
                return self
                    .exports_resolve(package_dir, subpath, exports, referrer, mode)
                    .map(Some);
            }
        }
        let target = join(package_dir, subpath);
        match mode {
            Mode::Require => Ok(self.load_as_file(&target)?.or(self.load_as_directory(&target)?)),
            Mode::Import if subpath == "." => self.legacy_main(package_dir),
            // The package is found: a subpath missing from it is an error, not a reason to
            // look further up.
            Mode::Import if self.is_file(&target) => Ok(Some(self.file_at(target)?)),
            Mode::Import if self.is_dir(&target) => Err(ResolveError::DirectoryImport {
                path: target,
                referrer: referrer.to_string(),
                hint: String::new(),
            }),
            Mode::Import => Err(ResolveError::NotFound {
                code: "ERR_MODULE_NOT_FOUND",
                message: format!("Cannot find module '{target}' imported from {referrer}"),
            }),
        }
    }

    /// ESM's legacy `main` lookup: `main`, with `.js`/`.json`/`/index.js`..., else `index.js`.
    fn legacy_main(&self, package_dir: &str) -> Result<Option<Resolved>, ResolveError> {
        let main = self
            .manifest(package_dir)?
            .and_then(|m| m.get("main").and_then(|v| v.as_str()).map(str::to_owned));
        if let Some(main) = main {
            let base = join(package_dir, &main);
            for candidate in [
                base.clone(),
                format!("{base}.js"),
                format!("{base}.json"),
                format!("{base}/index.js"),
                format!("{base}/index.json"),
            ] {
                if self.is_file(&candidate) {
                    return self.file_at(candidate).map(Some);
                }
            }
        }
        let index = join(package_dir, "index.js");
        if self.is_file(&index) {
            return self.file_at(index).map(Some);
        }
        Ok(None)
    }

    /// `require`'s LOAD_AS_FILE: the path, then with `.js`, `.json` (`.node` is refused).
    fn load_as_file(&self, path: &str) -> Result<Option<Resolved>, ResolveError> {
        if self.is_file(path) {
            return self.file_at(path.to_string()).map(Some);
        }
        for extension in [".js", ".json"] {
            let candidate = format!("{path}{extension}");
            if self.is_file(&candidate) {
                return self.file_at(candidate).map(Some);
            }
        }
        if self.is_file(&format!("{path}.node")) {
            return Err(ResolveError::NativeAddon(format!("{path}.node")));
        }
        Ok(None)
    }

    fn load_index(&self, dir: &str) -> Result<Option<Resolved>, ResolveError> {
        for index in ["index.js", "index.json"] {
            let candidate = join(dir, index);
            if self.is_file(&candidate) {
                return self.file_at(candidate).map(Some);
            }
        }
        let native = join(dir, "index.node");
        if self.is_file(&native) {
            return Err(ResolveError::NativeAddon(native));
        }
        Ok(None)
    }

    /// `require`'s LOAD_AS_DIRECTORY: `package.json` `main`, then `index`.
    fn load_as_directory(&self, dir: &str) -> Result<Option<Resolved>, ResolveError> {
        if !self.is_dir(dir) {
            return Ok(None);
        }
        let main = self
            .manifest(dir)?
            .and_then(|m| m.get("main").and_then(|v| v.as_str()).map(str::to_owned));
        if let Some(main) = main {
            let target = join(dir, &main);
            if let Some(found) = self.load_as_file(&target)? {
                return Ok(Some(found));
            }
            if let Some(found) = self.load_index(&target)? {
                return Ok(Some(found));
            }
        }
        self.load_index(dir)
    }

    /// LOAD_PACKAGE_SELF: a package naming itself, through its own `exports`.
    fn package_self(
        &self,
        name: &str,
        subpath: &str,
        base: &str,
        referrer: &str,
        mode: Mode,
    ) -> Result<Option<Resolved>, ResolveError> {
        let Some((dir, manifest)) = self.package_scope(base)? else {
            return Ok(None);
        };
        let named = manifest.get("name").and_then(|n| n.as_str()) == Some(name);
        match manifest.get("exports").filter(|e| !e.is_null()) {
            Some(exports) if named => self.exports_resolve(&dir, subpath, exports, referrer, mode).map(Some),
            _ => Ok(None),
        }
    }

    /// PACKAGE_IMPORTS_RESOLVE: `#name` through the `imports` of the referrer's package.
    fn package_imports(
        &self,
        specifier: &str,
        base: &str,
        referrer: &str,
        mode: Mode,
    ) -> Result<Resolved, ResolveError> {
        let not_defined = |package: &str| ResolveError::ImportNotDefined {
            specifier: specifier.to_string(),
            package: package.to_string(),
            referrer: referrer.to_string(),
        };
        let Some((dir, manifest)) = self.package_scope(base)? else {
            return Err(not_defined(base));
        };
        let Some(imports) = manifest.get("imports").and_then(|i| i.as_object()) else {
            return Err(not_defined(&dir));
        };
        let Some((target, star)) = match_key(imports, specifier) else {
            return Err(not_defined(&dir));
        };
        match self.target_resolve(&dir, target, star.as_deref(), true, mode)? {
            Some(Target::Path(path)) => self.exported_file(path, referrer, mode),
            Some(Target::Bare(bare)) => self.resolve(&bare, &join(&dir, "package.json"), mode),
            None => Err(not_defined(&dir)),
        }
    }

    fn exports_resolve(
        &self,
        package_dir: &str,
        subpath: &str,
        exports: &serde_json::Value,
        referrer: &str,
        mode: Mode,
    ) -> Result<Resolved, ResolveError> {
        let not_exported = || ResolveError::NotExported {
            subpath: subpath.to_string(),
            package: package_dir.to_string(),
            referrer: referrer.to_string(),
        };
        let sugar = match exports {
            serde_json::Value::Object(map) => !map.keys().any(|k| k.starts_with('.')),
            _ => true,
        };
        let found = if sugar {
            if subpath != "." {
                return Err(not_exported());
            }
            self.target_resolve(package_dir, exports, None, false, mode)?
        } else {
            let map = exports.as_object().ok_or_else(not_exported)?;
            let Some((target, star)) = match_key(map, subpath) else {
                return Err(not_exported());
            };
            self.target_resolve(package_dir, target, star.as_deref(), false, mode)?
        };
        match found {
            Some(Target::Path(path)) => self.exported_file(path, referrer, mode),
            _ => Err(not_exported()),
        }
    }

    fn exported_file(&self, path: String, referrer: &str, mode: Mode) -> Result<Resolved, ResolveError> {
        if self.is_file(&path) {
            return self.file_at(path);
        }
        Err(match mode {
            Mode::Require => ResolveError::NotFound {
                code: "MODULE_NOT_FOUND",
                message: format!("Cannot find module '{path}'\nRequire stack:\n- {referrer}"),
            },
            Mode::Import => ResolveError::NotFound {
                code: "ERR_MODULE_NOT_FOUND",
                message: format!("Cannot find module '{path}' imported from {referrer}"),
            },
        })
    }

    /// PACKAGE_TARGET_RESOLVE: strings, arrays (first that resolves) and condition objects.
    fn target_resolve(
        &self,
        package_dir: &str,
        target: &serde_json::Value,
        star: Option<&str>,
        imports: bool,
        mode: Mode,
    ) -> Result<Option<Target>, ResolveError> {
        match target {
            serde_json::Value::String(text) => {
                let text = match star {
                    Some(matched) => text.replace('*', matched),
                    None => text.clone(),
                };
                if let Some(relative) = text.strip_prefix("./") {
                    let path = join(package_dir, relative);
                    // A target may not leave its package.
                    if !path.starts_with(&format!("{package_dir}/")) && path != package_dir {
                        return Err(ResolveError::InvalidPackageJson(format!(
                            "{package_dir}/package.json: target `{text}` leaves the package"
                        )));
                    }
                    Ok(Some(Target::Path(path)))
                } else if imports && !text.starts_with('/') && !text.starts_with("../") {
                    Ok(Some(Target::Bare(text)))
                } else {
                    Err(ResolveError::InvalidPackageJson(format!(
                        "{package_dir}/package.json: invalid target `{text}`"
                    )))
                }
            }
            serde_json::Value::Array(targets) => {
                for candidate in targets {
                    if let Ok(Some(found)) = self.target_resolve(package_dir, candidate, star, imports, mode) {
                        return Ok(Some(found));
                    }
                }
                Ok(None)
            }
            serde_json::Value::Object(conditions) => {
                let accepted = mode.conditions();
                for (condition, value) in conditions {
                    if accepted.contains(&condition.as_str()) {
                        if let Some(found) = self.target_resolve(package_dir, value, star, imports, mode)? {
                            return Ok(Some(found));
                        }
                    }
                }
                Ok(None)
            }
            _ => Ok(None),
        }
    }
}

enum Target {
    Path(String),
    Bare(String),
}

/// The entry of an `exports`/`imports` map for `key`: exact, else the `*` pattern with the
/// longest prefix, with what the `*` matched.
fn match_key<'m>(
    map: &'m serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Option<(&'m serde_json::Value, Option<String>)> {
    if let Some(exact) = map.get(key).filter(|_| !key.contains('*')) {
        return Some((exact, None));
    }
    let mut best: Option<(&str, &serde_json::Value, String)> = None;
    for (pattern, value) in map {
        let Some((prefix, suffix)) = pattern.split_once('*') else {
            continue;
        };
        if key.len() >= prefix.len() + suffix.len() && key.starts_with(prefix) && key.ends_with(suffix) && key != prefix
        {
            let matched = key[prefix.len()..key.len() - suffix.len()].to_string();
            if best.as_ref().is_none_or(|(p, _, _)| prefix.len() > p.len()) {
                best = Some((prefix, value, matched));
            }
        }
    }
    best.map(|(_, value, matched)| (value, Some(matched)))
}

#[cfg(test)]
mod tests;
