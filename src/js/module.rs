//! How a function's source becomes a module: the kind (ES module or CommonJS), the specifier
//! it is known by, and the loader that serves it and the Node built-ins, and nothing else.

use deno_core::{
    ModuleLoadOptions, ModuleLoadReferrer, ModuleLoadResponse, ModuleLoader, ModuleResolveResponse, ModuleSource,
    ModuleSourceCode, ModuleSpecifier, ModuleType, ResolutionKind,
};
use deno_error::JsErrorBox;
use std::rc::Rc;

use super::resolve::{FileKind, Mode, ResolveError, Resolved, Resolver};
use crate::package::TASK_ROOT;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleKind {
    Esm,
    CommonJs,
}

impl ModuleKind {
    /// `.mjs` is an ES module, `.cjs` CommonJS; `.js` (or anything else) is an ES module when it
    /// has top-level `import`/`export` statements, CommonJS otherwise.
    pub fn detect(file_name: &str, source: &str) -> ModuleKind {
        if file_name.ends_with(".mjs") {
            return ModuleKind::Esm;
        }
        if file_name.ends_with(".cjs") {
            return ModuleKind::CommonJs;
        }
        static ESM_SYNTAX: std::sync::OnceLock<regex_lite::Regex> = std::sync::OnceLock::new();
        let esm = ESM_SYNTAX.get_or_init(|| {
            regex_lite::Regex::new(r#"(?m)^[ \t]*(export[ \t]+(default|const|let|var|function|async|class|\{|\*)|export[ \t]*\{|import[ \t]*(["'{*]|[A-Za-z_$][\w$]*[ \t]*(,|from)))"#)
                .expect("valid regex")
        });
        if esm.is_match(&strip_comments(source, Strings::Blank)) {
            ModuleKind::Esm
        } else {
            ModuleKind::CommonJs
        }
    }
}

/// What `strip_comments` does with string literals.
#[derive(Clone, Copy, PartialEq)]
enum Strings {
    /// Each becomes `"`, so text inside strings cannot look like code.
    Blank,
    /// They stay as written, for scans that read specifiers.
    Keep,
}

/// The source with `//` and `/* */` comments removed (line breaks kept), so commented-out
/// imports do not decide the module kind or count as missing modules.
fn strip_comments(source: &str, strings: Strings) -> String {
    let bytes = source.as_bytes();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(q) = quote {
            // An escape takes the character after it along.
            let mut chars = source[i..].chars();
            let mut len = chars.next().map_or(1, char::len_utf8);
            if c == b'\\' {
                len += chars.next().map_or(0, char::len_utf8);
            } else if c == q || (c == b'\n' && q != b'`') {
                quote = None;
            }
            if strings == Strings::Keep {
                out.push_str(&source[i..i + len]);
            }
            i += len;
            continue;
        }
        match c {
            b'"' | b'\'' | b'`' => {
                quote = Some(c);
                out.push(if strings == Strings::Keep { c as char } else { '"' });
                i += 1;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    if bytes[i] == b'\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
                i += 2;
            }
            _ => {
                let ch_len = source[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&source[i..i + ch_len]);
                i += ch_len;
            }
        }
    }
    out
}

/// Node built-ins a function may import or require, with their named exports.
pub const BUILTINS: [(&str, &[&str]); 37] = [
    (
        "querystring",
        &["parse", "stringify", "escape", "unescape", "decode", "encode"],
    ),
    (
        "crypto",
        &[
            "createHash",
            "createHmac",
            "randomBytes",
            "randomUUID",
            "randomInt",
            "timingSafeEqual",
            "getRandomValues",
            "webcrypto",
            "getHashes",
            "createSign",
            "createVerify",
            "sign",
            "verify",
            "createPublicKey",
            "createPrivateKey",
            "createSecretKey",
            "KeyObject",
            "Sign",
            "Verify",
            "pbkdf2",
            "pbkdf2Sync",
            "scrypt",
            "scryptSync",
            "constants",
        ],
    ),
    (
        "url",
        &[
            "URL",
            "URLSearchParams",
            "Url",
            "parse",
            "resolve",
            "resolveObject",
            "format",
            "fileURLToPath",
            "pathToFileURL",
        ],
    ),
    ("buffer", &["Buffer"]),
    (
        "events",
        &["EventEmitter", "once", "defaultMaxListeners", "listenerCount"],
    ),
    ("path", PATH_EXPORTS),
    ("path/posix", PATH_EXPORTS),
    ("string_decoder", &["StringDecoder"]),
    (
        "timers",
        &[
            "setTimeout",
            "clearTimeout",
            "setInterval",
            "clearInterval",
            "setImmediate",
            "clearImmediate",
        ],
    ),
    ("timers/promises", &["setTimeout", "setImmediate", "scheduler"]),
    (
        "stream",
        &[
            "Stream",
            "Readable",
            "Writable",
            "Duplex",
            "Transform",
            "PassThrough",
            "pipeline",
            "finished",
            "addAbortSignal",
            "compose",
            "destroy",
            "promises",
            "isErrored",
            "isReadable",
            "isDisturbed",
            "getDefaultHighWaterMark",
            "setDefaultHighWaterMark",
        ],
    ),
    ("stream/promises", &["pipeline", "finished"]),
    ("domain", &["create", "createDomain", "Domain", "active"]),
    (
        "punycode",
        &["decode", "encode", "toASCII", "toUnicode", "ucs2", "version"],
    ),
    ("assert", ASSERT_EXPORTS),
    (
        "zlib",
        &[
            "constants",
            "codes",
            "deflate",
            "deflateSync",
            "inflate",
            "inflateSync",
            "gzip",
            "gzipSync",
            "gunzip",
            "gunzipSync",
            "deflateRaw",
            "deflateRawSync",
            "inflateRaw",
            "inflateRawSync",
            "unzip",
            "unzipSync",
            "brotliCompress",
            "brotliCompressSync",
            "brotliDecompress",
            "brotliDecompressSync",
            "Deflate",
            "Inflate",
            "Gzip",
            "Gunzip",
            "DeflateRaw",
            "InflateRaw",
            "Unzip",
            "BrotliCompress",
            "BrotliDecompress",
            "createDeflate",
            "createInflate",
            "createGzip",
            "createGunzip",
            "createDeflateRaw",
            "createInflateRaw",
            "createUnzip",
            "createBrotliCompress",
            "createBrotliDecompress",
        ],
    ),
    ("assert/strict", ASSERT_EXPORTS),
    (
        "process",
        &[
            "env",
            "argv",
            "platform",
            "arch",
            "version",
            "versions",
            "cwd",
            "nextTick",
            "hrtime",
            "memoryUsage",
            "exit",
            "emitWarning",
            "stdout",
            "stderr",
            "on",
        ],
    ),
    (
        "os",
        &[
            "EOL",
            "devNull",
            "platform",
            "type",
            "arch",
            "machine",
            "endianness",
            "tmpdir",
            "homedir",
            "hostname",
            "release",
            "version",
            "uptime",
            "loadavg",
            "totalmem",
            "freemem",
            "availableParallelism",
            "cpus",
            "networkInterfaces",
            "userInfo",
            "constants",
        ],
    ),
    ("tty", &["isatty", "ReadStream", "WriteStream"]),
    (
        "console",
        &[
            "log", "info", "debug", "warn", "error", "trace", "dir", "table", "assert", "time", "timeEnd", "Console",
        ],
    ),
    ("module", &["createRequire", "builtinModules", "isBuiltin", "Module"]),
    ("fs", FS_EXPORTS),
    (
        "fs/promises",
        &[
            "readFile",
            "stat",
            "lstat",
            "readdir",
            "writeFile",
            "appendFile",
            "mkdir",
            "unlink",
            "rm",
            "rmdir",
            "rename",
            "copyFile",
            "access",
            "realpath",
            "constants",
        ],
    ),
    (
        "util",
        &[
            "format",
            "inspect",
            "inherits",
            "promisify",
            "callbackify",
            "deprecate",
            "types",
            "TextEncoder",
            "TextDecoder",
            "isArray",
            "isDeepStrictEqual",
            "formatWithOptions",
            "stripVTControlCharacters",
        ],
    ),
    // These load, but their members throw when called (`UNAVAILABLE` in bootstrap.js); their
    // named exports are Node 20's.
    (
        "http",
        &[
            "METHODS",
            "STATUS_CODES",
            "Agent",
            "ClientRequest",
            "IncomingMessage",
            "OutgoingMessage",
            "Server",
            "ServerResponse",
            "createServer",
            "validateHeaderName",
            "validateHeaderValue",
            "get",
            "request",
            "maxHeaderSize",
            "globalAgent",
        ],
    ),
    (
        "https",
        &["Agent", "globalAgent", "Server", "createServer", "get", "request"],
    ),
    (
        "http2",
        &[
            "connect",
            "constants",
            "createServer",
            "createSecureServer",
            "getDefaultSettings",
            "sensitiveHeaders",
        ],
    ),
    (
        "net",
        &[
            "BlockList",
            "SocketAddress",
            "connect",
            "createConnection",
            "createServer",
            "isIP",
            "isIPv4",
            "isIPv6",
            "Server",
            "Socket",
            "Stream",
        ],
    ),
    (
        "tls",
        &[
            "DEFAULT_MIN_VERSION",
            "DEFAULT_MAX_VERSION",
            "getCiphers",
            "rootCertificates",
            "checkServerIdentity",
            "createSecureContext",
            "SecureContext",
            "TLSSocket",
            "Server",
            "createServer",
            "connect",
        ],
    ),
    ("dgram", &["createSocket", "Socket"]),
    (
        "child_process",
        &[
            "ChildProcess",
            "exec",
            "execFile",
            "execFileSync",
            "execSync",
            "fork",
            "spawn",
            "spawnSync",
        ],
    ),
    (
        "cluster",
        &[
            "isWorker",
            "isMaster",
            "isPrimary",
            "Worker",
            "workers",
            "settings",
            "fork",
            "disconnect",
        ],
    ),
    (
        "worker_threads",
        &[
            "isMainThread",
            "MessagePort",
            "MessageChannel",
            "threadId",
            "Worker",
            "parentPort",
            "workerData",
            "BroadcastChannel",
        ],
    ),
    (
        "vm",
        &[
            "Script",
            "createContext",
            "createScript",
            "runInContext",
            "runInNewContext",
            "runInThisContext",
            "isContext",
            "compileFunction",
        ],
    ),
    (
        "v8",
        &[
            "getHeapStatistics",
            "getHeapSnapshot",
            "setFlagsFromString",
            "serialize",
            "deserialize",
            "Serializer",
            "Deserializer",
        ],
    ),
    (
        "inspector",
        &["open", "close", "url", "waitForDebugger", "console", "Session"],
    ),
];

/// The packages and modules `source` names (in `require("...")`, `import ... from "..."`,
/// `import "..."`, `import("...")` or `export ... from "..."`) that cannot be found from the
/// module at `referrer`, in order of first mention: neither Node modules edgehook has nor in
/// the function's `node_modules` or layers. Relative paths are left out.
pub fn unavailable_modules(resolver: &Resolver, referrer: &str, source: &str) -> Vec<String> {
    static NAMED: std::sync::OnceLock<regex_lite::Regex> = std::sync::OnceLock::new();
    let named = NAMED.get_or_init(|| {
        regex_lite::Regex::new(
            r#"(?:\brequire\s*\(\s*|\bimport\s*\(\s*|\bfrom\s*|\bimport\s+)(?:"([^"\n]+)"|'([^'\n]+)')"#,
        )
        .expect("valid regex")
    });
    let mut out: Vec<String> = Vec::new();
    for found in named.captures_iter(&strip_comments(source, Strings::Keep)) {
        let Some(name) = found.get(1).or_else(|| found.get(2)).map(|m| m.as_str()) else {
            continue;
        };
        let relative = name.starts_with('.') || name.starts_with('/') || name.starts_with("file:");
        if !relative
            && resolver.resolve(name, referrer, Mode::Require).is_err()
            && resolver.resolve(name, referrer, Mode::Import).is_err()
            && !out.iter().any(|seen| seen == name)
        {
            out.push(name.to_string());
        }
    }
    out
}

const ASSERT_EXPORTS: &[&str] = &[
    "ok",
    "equal",
    "notEqual",
    "deepEqual",
    "notDeepEqual",
    "deepStrictEqual",
    "notDeepStrictEqual",
    "strictEqual",
    "notStrictEqual",
    "throws",
    "doesNotThrow",
    "rejects",
    "doesNotReject",
    "ifError",
    "match",
    "doesNotMatch",
    "fail",
    "AssertionError",
    "strict",
];

const FS_EXPORTS: &[&str] = &[
    "readFileSync",
    "readFile",
    "statSync",
    "stat",
    "lstatSync",
    "lstat",
    "readdirSync",
    "readdir",
    "writeFileSync",
    "writeFile",
    "appendFileSync",
    "appendFile",
    "mkdirSync",
    "mkdir",
    "unlinkSync",
    "unlink",
    "rmSync",
    "rm",
    "rmdirSync",
    "rmdir",
    "renameSync",
    "rename",
    "copyFileSync",
    "copyFile",
    "accessSync",
    "access",
    "existsSync",
    "exists",
    "realpathSync",
    "realpath",
    "Stats",
    "Dirent",
    "constants",
    "promises",
    "F_OK",
    "R_OK",
    "W_OK",
    "X_OK",
];

const PATH_EXPORTS: &[&str] = &[
    "basename",
    "delimiter",
    "dirname",
    "extname",
    "format",
    "isAbsolute",
    "join",
    "normalize",
    "parse",
    "posix",
    "relative",
    "resolve",
    "sep",
];

/// Serves the function's modules from its code tree (`crate::package::CodeTree`), resolved as
/// Node resolves `import`, and the built-ins.
pub struct FunctionLoader {
    pub resolver: Rc<Resolver>,
}

pub(crate) fn builtin_name(specifier: &str) -> Option<&'static str> {
    let bare = specifier.strip_prefix("node:").unwrap_or(specifier);
    BUILTINS.iter().find(|(name, _)| *name == bare).map(|(name, _)| *name)
}

/// The load error of a function naming modules it cannot have.
pub fn not_available_message(specifiers: &[String]) -> String {
    let names: Vec<&str> = BUILTINS.iter().map(|(n, _)| *n).collect();
    let quoted: Vec<String> = specifiers.iter().map(|s| format!("'{s}'")).collect();
    let what = if specifiers.len() == 1 { "module" } else { "modules" };
    format!(
        "{what} not available: {} (not in the function's package or its layers; edgehook's Node modules are: {})",
        quoted.join(", "),
        names.join(", ")
    )
}

/// The path a `file:` specifier names.
pub fn specifier_path(specifier: &ModuleSpecifier) -> String {
    percent_encoding::percent_decode_str(specifier.path())
        .decode_utf8_lossy()
        .into_owned()
}

/// The specifier of a module at `path` in the code tree.
pub fn path_specifier(path: &str) -> Result<ModuleSpecifier, JsErrorBox> {
    ModuleSpecifier::from_file_path(path).map_err(|()| JsErrorBox::generic(format!("`{path}` is not a module path")))
}

/// Where `require`s of the CommonJS module at a path are served from, as an ES module sees it:
/// the bootstrap's loader, under this global symbol.
pub const REQUIRE_SYMBOL: &str = "edgehook.require";

/// An ES module standing for the CommonJS module at `path`: its `module.exports` as the
/// default export and the names Node's lexer would find as named exports.
fn commonjs_facade(resolver: &Resolver, path: &str) -> String {
    let mut code = format!(
        "const m = globalThis[Symbol.for({:?})]({:?});\nexport default m;\n",
        REQUIRE_SYMBOL, path
    );
    for (index, name) in commonjs_exports(resolver, path).iter().enumerate() {
        code.push_str(&format!(
            "const e{index} = m[{name:?}];\nexport {{ e{index} as {name} }};\n"
        ));
    }
    code
}

/// The names a CommonJS module exports, found as Node's cjs-module-lexer finds them (without
/// running the module): `exports.x =`, `module.exports.x =`, `exports["x"] =`,
/// `Object.defineProperty(exports, "x"`, the keys of `module.exports = { ... }` (esbuild's
/// `0 && (module.exports = {...})` note among them), and the names of modules re-exported by
/// `module.exports = require(...)` or `__exportStar(require(...))`. Hand-written: the lexer is
/// a JavaScript/WebAssembly package and the ES module loader runs outside the engine.
pub fn commonjs_exports(resolver: &Resolver, path: &str) -> Vec<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut visited = std::collections::HashSet::new();
    collect_exports(resolver, path, &mut names, &mut visited);
    names.remove("default");
    names.into_iter().collect()
}

fn collect_exports(
    resolver: &Resolver,
    path: &str,
    names: &mut std::collections::BTreeSet<String>,
    visited: &mut std::collections::HashSet<String>,
) {
    use std::sync::OnceLock;
    if visited.len() > 64 || !visited.insert(path.to_string()) {
        return;
    }
    let Some(content) = resolver.tree().file(path) else {
        return;
    };
    let raw = String::from_utf8_lossy(content);
    let source = strip_comments(&raw, Strings::Blank);
    static PATTERNS: OnceLock<[regex_lite::Regex; 4]> = OnceLock::new();
    let [member, indexed, defined, reexport] = PATTERNS.get_or_init(|| {
        let regex = |pattern: &str| regex_lite::Regex::new(pattern).expect("valid regex");
        [
            regex(r"(?:^|[^.\w$])(?:module\s*\.\s*)?exports\s*\.\s*([A-Za-z_$][\w$]*)\s*=[^=]"),
            regex(r#"(?:^|[^.\w$])(?:module\s*\.\s*)?exports\s*\[\s*["']([A-Za-z_$][\w$]*)["']\s*\]\s*=[^=]"#),
            regex(r#"Object\.defineProperty\(\s*(?:module\s*\.\s*)?exports\s*,\s*["']([A-Za-z_$][\w$]*)["']"#),
            regex(
                r#"(?:module\s*\.\s*exports\s*=\s*|__exportStar\(\s*|__export\(\s*)require\(\s*["']([^"']+)["']\s*\)"#,
            ),
        ]
    });
    // Names in strings are read from the source as written (comments blanked lose strings).
    for (pattern, text) in [
        (member, &source),
        (indexed, &raw.to_string()),
        (defined, &raw.to_string()),
    ] {
        for found in pattern.captures_iter(text) {
            names.insert(found[1].to_string());
        }
    }
    static LITERAL: OnceLock<regex_lite::Regex> = OnceLock::new();
    let literal =
        LITERAL.get_or_init(|| regex_lite::Regex::new(r"module\s*\.\s*exports\s*=\s*\{").expect("valid regex"));
    for found in literal.find_iter(&raw) {
        object_keys(&raw[found.end()..], names);
    }
    for found in reexport.captures_iter(&raw) {
        if let Ok(Resolved::File { path: target, .. }) = resolver.resolve(&found[1], path, Mode::Require) {
            collect_exports(resolver, &target, names, visited);
        }
    }
}

/// The keys of an object literal whose `{` came just before `text`: shorthand names,
/// `name:`, `"name":` and `name(` methods, at the literal's own depth.
fn object_keys(text: &str, names: &mut std::collections::BTreeSet<String>) {
    let mut depth = 0usize;
    let mut entry = String::new();
    let take = |entry: &str, names: &mut std::collections::BTreeSet<String>| {
        let entry = entry.trim_start();
        if entry.starts_with("...") || entry.starts_with('[') {
            return;
        }
        let unquoted = entry.trim_start_matches(['"', '\'']);
        let key: String = unquoted
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '$')
            .collect();
        if !key.is_empty() && !key.starts_with(|c: char| c.is_ascii_digit()) {
            names.insert(key);
        }
    };
    for c in text.chars() {
        match c {
            '{' | '(' | '[' => depth += 1,
            '}' | ')' | ']' if depth == 0 => {
                take(&entry, names);
                return;
            }
            '}' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                take(&entry, names);
                entry.clear();
                continue;
            }
            _ => {}
        }
        if depth == 0 {
            entry.push(c);
        } else if entry
            .trim_end()
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '$' || c.is_whitespace())
        {
            // A method's parameters: the key is already there.
            entry.push(' ');
        }
    }
}

impl ModuleLoader for FunctionLoader {
    fn resolve(&self, specifier: &str, referrer: &str, _kind: ResolutionKind) -> ModuleResolveResponse {
        let referrer_path = ModuleSpecifier::parse(referrer)
            .ok()
            .filter(|r| r.scheme() == "file")
            .map_or_else(|| format!("{TASK_ROOT}/"), |r| specifier_path(&r));
        match self.resolver.resolve(specifier, &referrer_path, Mode::Import) {
            Ok(Resolved::Builtin(name)) => {
                ModuleSpecifier::parse(&format!("node:{name}")).map_err(JsErrorBox::from_err)
            }
            Ok(Resolved::File { path, .. }) => path_specifier(&path),
            Err(ResolveError::NotFound { .. } | ResolveError::UnknownBuiltin(_)) if split_bare(specifier) => {
                Err(JsErrorBox::generic(not_available_message(&[specifier.to_string()])))
            }
            // deno_core gives every failed import the code ERR_MODULE_NOT_FOUND; the message
            // is Node's.
            Err(error) => Err(JsErrorBox::generic(error.to_string())),
        }
    }

    fn load(
        &self,
        specifier: &ModuleSpecifier,
        _referrer: Option<&ModuleLoadReferrer>,
        _options: ModuleLoadOptions,
    ) -> ModuleLoadResponse {
        let source = |module_type, code: String| {
            ModuleLoadResponse::Sync(Ok(ModuleSource::new(
                module_type,
                ModuleSourceCode::String(code.into()),
                specifier,
                None,
            )))
        };
        if specifier.scheme() == "file" {
            let path = specifier_path(specifier);
            let Some(content) = self.resolver.tree().file(&path) else {
                return ModuleLoadResponse::Sync(Err(JsErrorBox::generic(format!("Cannot find module '{path}'"))));
            };
            let text = String::from_utf8_lossy(content).into_owned();
            return match self.resolver.kind(&path) {
                Ok(FileKind::Esm) => source(ModuleType::JavaScript, text),
                Ok(FileKind::Json) => source(ModuleType::Json, text),
                Ok(FileKind::CommonJs) => source(ModuleType::JavaScript, commonjs_facade(&self.resolver, &path)),
                Err(error) => ModuleLoadResponse::Sync(Err(JsErrorBox::generic(error.to_string()))),
            };
        }
        let Some(name) = (specifier.scheme() == "node")
            .then(|| builtin_name(specifier.as_str()))
            .flatten()
        else {
            return ModuleLoadResponse::Sync(Err(JsErrorBox::generic(not_available_message(
                &[specifier.to_string()],
            ))));
        };
        let exports = BUILTINS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, e)| *e)
            .unwrap_or(&[]);
        source(
            ModuleType::JavaScript,
            format!(
                "const m = globalThis.require(\"{name}\");\nexport default m;\nexport const {{ {} }} = m;\n",
                exports.join(", ")
            ),
        )
    }
}

/// A package name rather than a path.
fn split_bare(specifier: &str) -> bool {
    !(specifier.starts_with('.')
        || specifier.starts_with('/')
        || specifier.starts_with("file:")
        || specifier.starts_with('#'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_detection() {
        assert_eq!(ModuleKind::detect("a.mjs", "exports.handler = 1"), ModuleKind::Esm);
        assert_eq!(
            ModuleKind::detect("a.cjs", "export const handler = 1"),
            ModuleKind::CommonJs
        );
        assert_eq!(
            ModuleKind::detect("a.js", "export const handler = async () => {}"),
            ModuleKind::Esm
        );
        assert_eq!(
            ModuleKind::detect("a.js", "export async function handler() {}"),
            ModuleKind::Esm
        );
        assert_eq!(
            ModuleKind::detect("a.js", "import crypto from 'crypto';\nexport default 1"),
            ModuleKind::Esm
        );
        assert_eq!(
            ModuleKind::detect("a.js", "import { createHash } from 'node:crypto'"),
            ModuleKind::Esm
        );
        assert_eq!(
            ModuleKind::detect("a.js", "'use strict';\nexports.handler = async (e) => e;"),
            ModuleKind::CommonJs
        );
        assert_eq!(
            ModuleKind::detect("a.js", "module.exports.handler = function (e, c, cb) {}"),
            ModuleKind::CommonJs
        );
        assert_eq!(
            ModuleKind::detect("a.js", "// export const x = 1\nexports.handler = 1"),
            ModuleKind::CommonJs
        );
        assert_eq!(
            ModuleKind::detect("a.js", "/*\nexport default 1\n*/ exports.handler = 1"),
            ModuleKind::CommonJs
        );
        assert_eq!(
            ModuleKind::detect("a.js", "const s = 'x';\nconst t = `\nexport default 1`;"),
            ModuleKind::CommonJs
        );
        assert_eq!(
            ModuleKind::detect(
                "a.js",
                "const imported = require('url'); exports.handler = () => imported"
            ),
            ModuleKind::CommonJs
        );
    }

    fn loader(files: &[(&str, &str)]) -> FunctionLoader {
        use std::io::Write as _;
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, content) in files {
            writer
                .start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            writer.write_all(content.as_bytes()).unwrap();
        }
        let data = writer.finish().unwrap().into_inner();
        let package = crate::package::Package::from_zip(&data, crate::package::Limits::ORIGIN).unwrap();
        let tree = crate::package::CodeTree::new(std::sync::Arc::new(package), Vec::new());
        FunctionLoader {
            resolver: Rc::new(Resolver::new(tree)),
        }
    }

    #[test]
    fn loader_serves_builtins_and_the_package_only() {
        let loader = loader(&[("index.mjs", ""), ("lib.js", "")]);
        let resolve = |s: &str, kind| loader.resolve(s, "file:///var/task/index.mjs", kind);
        assert_eq!(
            resolve("crypto", ResolutionKind::Import).unwrap().as_str(),
            "node:crypto"
        );
        assert_eq!(
            resolve("node:url", ResolutionKind::Import).unwrap().as_str(),
            "node:url"
        );
        assert_eq!(
            resolve("./lib.js", ResolutionKind::Import).unwrap().as_str(),
            "file:///var/task/lib.js"
        );
        let denied = resolve("left-pad", ResolutionKind::Import).unwrap_err();
        assert!(
            denied.to_string().contains("module not available: 'left-pad'"),
            "{denied}"
        );
        assert!(resolve("file:///etc/passwd", ResolutionKind::DynamicImport).is_err());
        assert!(resolve("../../etc/passwd", ResolutionKind::DynamicImport).is_err());
        assert!(resolve("./missing.js", ResolutionKind::Import).is_err());
    }

    #[test]
    fn commonjs_exports_are_found_as_nodes_lexer_finds_them() {
        let loader = loader(&[
            ("a.js", "exports.one = 1; module.exports.two = 2; exports['three'] = 3;\nObject.defineProperty(exports, \"four\", { get() { return 4 } });\nif (exports.one == 1) {}"),
            ("b.js", "module.exports = { alpha, beta: 2, 'gamma': 3, delta() { return { no: 1 } }, ...spread };"),
            ("c.js", "module.exports = require('./a');"),
            ("d.js", "var x = 1;\n0 && (module.exports = { handler, config });"),
        ]);
        let names = |path: &str| commonjs_exports(&loader.resolver, path);
        assert_eq!(names("/var/task/a.js"), vec!["four", "one", "three", "two"]);
        assert_eq!(names("/var/task/b.js"), vec!["alpha", "beta", "delta", "gamma"]);
        assert_eq!(names("/var/task/c.js"), vec!["four", "one", "three", "two"]);
        assert_eq!(names("/var/task/d.js"), vec!["config", "handler"]);
    }
}
