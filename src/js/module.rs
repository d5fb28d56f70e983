//! How a function's source becomes a module: the kind (ES module or CommonJS), the specifier
//! it is known by, and the loader that serves it and the Node built-ins, and nothing else.

use deno_core::{
    ModuleLoadOptions, ModuleLoadReferrer, ModuleLoadResponse, ModuleLoader, ModuleResolveResponse, ModuleSource,
    ModuleSourceCode, ModuleSpecifier, ModuleType, ResolutionKind,
};
use deno_error::JsErrorBox;

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
        if esm.is_match(&strip_comments(source)) {
            ModuleKind::Esm
        } else {
            ModuleKind::CommonJs
        }
    }
}

/// The source with `//` and `/* */` comments blanked (strings are left alone), so commented-out
/// imports do not decide the module kind.
fn strip_comments(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(q) = quote {
            if c == b'\\' {
                i += 2;
                continue;
            }
            if c == q || c == b'\n' {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            b'"' | b'\'' | b'`' => {
                quote = Some(c);
                out.push('"');
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
pub const BUILTINS: [(&str, &[&str]); 25] = [
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

/// The modules `source` names (in `require("...")`, `import ... from "..."`, `import "..."`,
/// `import("...")` or `export ... from "..."`) that functions cannot load, in order of first
/// mention: packages and Node modules edgehook does not have. Relative paths are left out.
pub fn unavailable_modules(source: &str) -> Vec<String> {
    static NAMED: std::sync::OnceLock<regex_lite::Regex> = std::sync::OnceLock::new();
    let named = NAMED.get_or_init(|| {
        regex_lite::Regex::new(
            r#"(?:\brequire\s*\(\s*|\bimport\s*\(\s*|\bfrom\s*|\bimport\s+)(?:"([^"\n]+)"|'([^'\n]+)')"#,
        )
        .expect("valid regex")
    });
    let mut out: Vec<String> = Vec::new();
    for found in named.captures_iter(source) {
        let Some(name) = found.get(1).or_else(|| found.get(2)).map(|m| m.as_str()) else {
            continue;
        };
        let relative = name.starts_with('.') || name.starts_with('/') || name.starts_with("file:");
        if !relative && builtin_name(name).is_none() && !out.iter().any(|seen| seen == name) {
            out.push(name.to_string());
        }
    }
    out
}

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

/// The specifier a function's module is known by (what stack traces show).
pub fn function_specifier(file_name: &str) -> ModuleSpecifier {
    let name: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    ModuleSpecifier::parse(&format!("file:///var/task/{name}"))
        .unwrap_or_else(|_| ModuleSpecifier::parse("file:///var/task/index.mjs").expect("static URL parses"))
}

/// Serves the function's own module and the built-ins; any other import fails at load time.
pub struct FunctionLoader {
    pub main: ModuleSpecifier,
}

fn builtin_name(specifier: &str) -> Option<&'static str> {
    let bare = specifier.strip_prefix("node:").unwrap_or(specifier);
    BUILTINS.iter().find(|(name, _)| *name == bare).map(|(name, _)| *name)
}

fn not_available(specifier: &str) -> JsErrorBox {
    JsErrorBox::generic(not_available_message(&[specifier.to_string()]))
}

/// The load error of a function naming modules it cannot have.
pub fn not_available_message(specifiers: &[String]) -> String {
    let names: Vec<&str> = BUILTINS.iter().map(|(n, _)| *n).collect();
    let quoted: Vec<String> = specifiers.iter().map(|s| format!("'{s}'")).collect();
    let what = if specifiers.len() == 1 { "module" } else { "modules" };
    format!(
        "{what} not available: {} (edgehook functions can import: {})",
        quoted.join(", "),
        names.join(", ")
    )
}

impl ModuleLoader for FunctionLoader {
    fn resolve(&self, specifier: &str, _referrer: &str, _kind: ResolutionKind) -> ModuleResolveResponse {
        if let Some(name) = builtin_name(specifier) {
            return ModuleSpecifier::parse(&format!("node:{name}")).map_err(JsErrorBox::from_err);
        }
        if specifier == self.main.as_str() {
            return Ok(self.main.clone());
        }
        Err(not_available(specifier))
    }

    fn load(
        &self,
        specifier: &ModuleSpecifier,
        _referrer: Option<&ModuleLoadReferrer>,
        _options: ModuleLoadOptions,
    ) -> ModuleLoadResponse {
        let Some(name) = (specifier.scheme() == "node")
            .then(|| builtin_name(specifier.as_str()))
            .flatten()
        else {
            return ModuleLoadResponse::Sync(Err(not_available(specifier.as_str())));
        };
        let exports = BUILTINS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, e)| *e)
            .unwrap_or(&[]);
        let code = format!(
            "const m = globalThis.require(\"{name}\");\nexport default m;\nexport const {{ {} }} = m;\n",
            exports.join(", ")
        );
        ModuleLoadResponse::Sync(Ok(ModuleSource::new(
            ModuleType::JavaScript,
            ModuleSourceCode::String(code.into()),
            specifier,
            None,
        )))
    }
}

/// CommonJS source wrapped as a function expression (evaluated as a classic, sloppy-mode
/// script). The first line of the source stays on the first line, so line numbers match.
pub fn commonjs_wrapper(source: &str) -> String {
    format!("(function (exports, require, module, __filename, __dirname) {{{source}\n}})")
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

    #[test]
    fn loader_serves_builtins_only() {
        let loader = FunctionLoader {
            main: function_specifier("index.mjs"),
        };
        assert_eq!(
            loader
                .resolve("crypto", "file:///var/task/index.mjs", ResolutionKind::Import)
                .unwrap()
                .as_str(),
            "node:crypto"
        );
        assert_eq!(
            loader
                .resolve("node:url", "file:///var/task/index.mjs", ResolutionKind::Import)
                .unwrap()
                .as_str(),
            "node:url"
        );
        let denied = loader
            .resolve("fs", "file:///var/task/index.mjs", ResolutionKind::Import)
            .unwrap_err();
        assert!(denied.to_string().contains("module not available: 'fs'"));
        assert!(loader
            .resolve(
                "file:///etc/passwd",
                "file:///var/task/index.mjs",
                ResolutionKind::DynamicImport
            )
            .is_err());
        assert!(loader
            .resolve("./lib.js", "file:///var/task/index.mjs", ResolutionKind::Import)
            .is_err());
    }

    #[test]
    fn specifiers_are_sanitized() {
        assert_eq!(function_specifier("my fn.mjs").as_str(), "file:///var/task/my_fn.mjs");
    }
}
