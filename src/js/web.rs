//! The web platform of every instance (`fetch`, `Headers`, `Request`, `Response`, streams,
//! events, `AbortController`, `Blob`, `FormData`, `structuredClone`, `crypto.subtle`) from
//! Deno's extension crates, which run on this engine unchanged. Their scripts are not run when
//! an instance starts: the bootstrap defines each global as a getter that loads what it needs
//! on first use (`fetch` and what it pulls in take about 45 ms on QuickJS, once per instance),
//! so a function that uses none of it starts as fast as before. They stay out of the engine
//! snapshot too: this engine's snapshots replay what was run, and one holding these scripts
//! made every instance start in about 60 ms instead of 10.

use super::egress::{edgehook_egress, Egress, Names};
use super::ops::{edgehook_ops, LogContext};
use super::resolve::Resolver;
use deno_core::{Extension, ExtensionFileSource, ExtensionFileSourceCode};
use std::rc::Rc;
use std::sync::Arc;

// deno_fetch's HTTP client script loads `ext:deno_net/02_tls.js`; this is the one part of
// deno_net it needs (see the file).
deno_core::extension!(deno_net, lazy_loaded_js = [ dir "src/js/runtime/deno_net", "02_tls.js" ]);

// deno_fetch asks Deno's permissions before each request; they grant everything, since
// `egress` decides (checked on every request and redirect, and after resolution).
deno_core::extension!(
    edgehook_permissions,
    state = |state| {
        let parser = deno_permissions::RuntimePermissionDescriptorParser::new(sys_traits::impls::RealSys);
        state.put(deno_permissions::PermissionsContainer::allow_all(Arc::new(parser)));
    },
);

/// A script of an extension that this build does not carry (see build.rs: the crates whose
/// scripts it embeds).
#[derive(Debug, thiserror::Error)]
#[error("the runtime's script {specifier} is not embedded in this build of edgehook (deno_core recorded it at {path})")]
pub struct MissingScript {
    specifier: &'static str,
    path: &'static str,
}

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/extension_scripts.rs"));
}

/// What an instance's runtime is built with, in this order both for the engine snapshot and for
/// every instance (a snapshot only restores into the same extensions): edgehook's ops, and with
/// `web` (`names_web_api`) Deno's web extensions.
///
/// deno_core records an extension's scripts by the path they had when their crate was built.
/// With `embedded`, they are the copies build.rs embedded in the binary: for a runtime that
/// makes the snapshot or starts without one. An instance restored from the snapshot leaves them
/// as recorded, which deno_core then never reads (it takes them from `lazy_sources`); given
/// readable ones it would register every script again in each restored instance, and after a
/// few dozen instances on one thread the engine's module evaluation stalls.
pub fn extensions(
    log: LogContext,
    resolver: Rc<Resolver>,
    egress: Arc<Egress>,
    names: Names,
    web: bool,
    embedded: bool,
) -> Result<Vec<Extension>, MissingScript> {
    if !web {
        return Ok(vec![edgehook_ops::init(log, resolver)]);
    }
    let mut extensions = vec![
        deno_webidl::deno_webidl::init(),
        deno_web::deno_web::init(
            Arc::new(deno_web::BlobStore::default()) as Arc<dyn deno_web::BlobStoreTrait>,
            None,
            false,
            Default::default(),
        ),
        deno_net::init(),
        deno_crypto::deno_crypto::init(None),
        deno_fetch::deno_fetch::init(super::egress::fetch_options(egress.clone(), names)),
        edgehook_permissions::init(),
        edgehook_ops::init(log, resolver),
        edgehook_egress::init(egress),
    ];
    trim_unexposed(&mut extensions);
    if embedded {
        // Only the classic scripts: deno_web's two lazily loaded ES modules (`locks.js`,
        // `webtransport.js`) back nothing a function can reach.
        for extension in &mut extensions {
            let files = &mut extension.lazy_loaded_js_files;
            *files = files.iter().map(embed).collect::<Result<Vec<_>, _>>()?.into();
        }
    }
    Ok(extensions)
}

/// Ops of deno_web's features functions cannot reach (BroadcastChannel, Web Locks, URLPattern,
/// geometry, MessagePort), which no script loaded here calls.
const UNEXPOSED_OPS: [&str; 5] = [
    "op_broadcast_",
    "op_lock_manager_",
    "op_urlpattern_",
    "op_geometry_",
    "op_message_port_",
];

/// Leaves out of every instance the parts of deno_web that back nothing a function can reach:
/// its classes other than `Console` (CSS, geometry, `ImageData`) and the ops above. Each
/// native function an instance gets takes one entry of its JS thread's dispatch table in this
/// engine, and the table holds 32,768 entries for the thread's whole life (QuickJS passes the
/// index as a 16-bit `magic`; entries are never freed): past it, calls reach the wrong function
/// and a module's evaluation never settles. Measured with one trivial function per instance
/// on one thread: 100 instances work and 130 do not without the web platform; 32 with all of
/// deno_web; 70 (not 85) with these left out.
fn trim_unexposed(extensions: &mut [Extension]) {
    for extension in extensions.iter_mut().filter(|extension| extension.name == "deno_web") {
        let objects: Vec<_> = extension
            .objects
            .iter()
            .filter(|object| object.name.0 == "Console")
            .cloned()
            .collect();
        extension.objects = objects.into();
        let ops: Vec<_> = extension
            .ops
            .iter()
            .filter(|op| !UNEXPOSED_OPS.iter().any(|prefix| op.name.starts_with(prefix)))
            .cloned()
            .collect();
        extension.ops = ops.into();
    }
}

/// deno_core records an extension's scripts by the path they had when their crate was built and
/// reads them from there; this gives it the copy build.rs embedded instead.
fn embed(file: &ExtensionFileSource) -> Result<ExtensionFileSource, MissingScript> {
    #[allow(deprecated, reason = "deno_core marks the variant deprecated but still makes it")]
    match file.code {
        ExtensionFileSourceCode::LoadedFromFsDuringSnapshot(path) => embedded::embedded_script(path)
            .map(|code| ExtensionFileSource::new(file.specifier, code))
            .ok_or(MissingScript {
                specifier: file.specifier,
                path,
            }),
        _ => Ok(file.clone()),
    }
}

/// The extensions of an engine snapshot: the same, with no function behind them.
pub fn snapshot_extensions(web: bool) -> Result<Vec<Extension>, MissingScript> {
    extensions(
        LogContext::new("".into(), String::new()),
        Rc::new(Resolver::new(crate::package::CodeTree::empty())),
        Arc::new(Egress::none()),
        Err("the engine snapshot makes no requests".into()),
        web,
        true,
    )
}

/// The sources of the extensions' lazily loaded scripts as deno_core takes them beside a
/// snapshot: `(specifier, source)`, sorted by specifier.
pub fn lazy_sources() -> Result<&'static [(&'static str, &'static str)], MissingScript> {
    static SOURCES: std::sync::OnceLock<Vec<(&'static str, &'static str)>> = std::sync::OnceLock::new();
    if let Some(sources) = SOURCES.get() {
        return Ok(sources);
    }
    let mut sources: Vec<_> = snapshot_extensions(true)?
        .iter()
        .flat_map(|extension| extension.lazy_loaded_js_files.iter())
        .filter_map(|file| {
            #[allow(deprecated, reason = "matching the variant embed() makes")]
            match file.code {
                ExtensionFileSourceCode::IncludedInBinary(code) => Some((file.specifier, code.as_str())),
                _ => None,
            }
        })
        .collect();
    sources.sort_by_key(|(specifier, _)| *specifier);
    Ok(SOURCES.get_or_init(|| sources))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every script the extensions load comes from the binary, none from the machine that built it.
    #[test]
    fn every_extension_script_is_embedded() {
        let extensions = snapshot_extensions(true).expect("all scripts embedded");
        let mut lazy = 0;
        for extension in &extensions {
            for file in extension.lazy_loaded_js_files.iter() {
                assert!(file.is_runtime_loadable(), "{} is read from disk", file.specifier);
                lazy += 1;
            }
            assert!(
                extension.js_files.is_empty() && extension.esm_files.is_empty(),
                "{} runs scripts at start",
                extension.name
            );
        }
        let sources = lazy_sources().expect("all scripts embedded");
        assert!(
            sources.len() >= 30 && sources.len() <= lazy,
            "{} lazily loaded scripts of {lazy}",
            sources.len()
        );
        assert!(
            sources.windows(2).all(|pair| pair[0].0 < pair[1].0),
            "sorted by specifier"
        );
        let streams = sources
            .iter()
            .find(|(specifier, _)| *specifier == "ext:deno_web/06_streams.js");
        assert!(streams.is_some_and(|(_, code)| code.contains("class ReadableStream")));
    }
}

/// The globals that give a function the web platform when its code names one (see
/// `names_web_api`). `performance`, `DOMException` and `navigator` are not among them: every
/// instance has its own.
const WEB_NAMES: [&str; 30] = [
    "fetch",
    "Headers",
    "Request",
    "Response",
    "FormData",
    "Blob",
    "File",
    "AbortController",
    "AbortSignal",
    "ReadableStream",
    "WritableStream",
    "TransformStream",
    "TextEncoderStream",
    "TextDecoderStream",
    "CompressionStream",
    "DecompressionStream",
    "ByteLengthQueuingStrategy",
    "CountQueuingStrategy",
    "structuredClone",
    "EventTarget",
    "Event",
    "CustomEvent",
    "MessageEvent",
    "subtle",
    "webcrypto",
    "Crypto",
    "CryptoKey",
    "SubtleCrypto",
    "PerformanceEntry",
    "PerformanceMark",
];

/// Whether any script of `code` (its package and layers) names one of the web platform's
/// globals as a word. Only such functions get Deno's web extensions: each instance's native
/// functions take entries of its JS thread's dispatch table in this engine (32,768 for the
/// thread's whole life, see `trim_unexposed`), and an instance with the extensions takes about
/// 460 where one without takes about 280 (measured: 70 and 100 instances of one trivial
/// function on one thread). A function that reaches one of them only by a computed name must
/// name it somewhere. Scanned once per package (layers are shared by many functions).
pub fn names_web_api(code: &crate::package::CodeTree) -> bool {
    std::iter::once(&code.task)
        .chain(code.layers.iter())
        .any(|package| package_names_web_api(package))
}

fn package_names_web_api(package: &crate::package::Package) -> bool {
    static SCANNED: std::sync::OnceLock<parking_lot::Mutex<std::collections::HashMap<String, bool>>> =
        std::sync::OnceLock::new();
    let scanned = SCANNED.get_or_init(Default::default);
    if let Some(&found) = scanned.lock().get(package.digest()) {
        return found;
    }
    let found = package
        .files()
        .filter(|(path, _)| [".js", ".mjs", ".cjs"].iter().any(|ext| path.ends_with(ext)))
        .any(|(_, source)| source_names_web_api(source));
    scanned.lock().insert(package.digest().to_string(), found);
    found
}

/// The modules whose requests go through fetch: named as a quoted module name (`require('https')`,
/// `from "node:http"`), they give a function the web platform too.
const HTTP_MODULES: [&str; 12] = [
    "'http'",
    "\"http\"",
    "`http`",
    "'https'",
    "\"https\"",
    "`https`",
    "'node:http'",
    "\"node:http\"",
    "`node:http`",
    "'node:https'",
    "\"node:https\"",
    "`node:https`",
];

/// Whether `source` holds one of `WEB_NAMES` as a whole identifier, or names `http`/`https` as a
/// module.
fn source_names_web_api(source: &[u8]) -> bool {
    static FINDER: std::sync::OnceLock<aho_corasick::AhoCorasick> = std::sync::OnceLock::new();
    let finder = FINDER.get_or_init(|| {
        aho_corasick::AhoCorasick::new(WEB_NAMES.iter().chain(HTTP_MODULES.iter())).expect("fixed patterns")
    });
    let identifier = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$';
    finder.find_overlapping_iter(source).any(|found| {
        if found.pattern().as_usize() >= WEB_NAMES.len() {
            return true;
        }
        let before = found.start().checked_sub(1).map(|at| source[at]);
        let after = source.get(found.end()).copied();
        !before.is_some_and(identifier) && !after.is_some_and(identifier)
    })
}

#[cfg(test)]
mod detection_tests {
    use super::source_names_web_api;

    /// A function gets the web platform when its code names one of its globals as a word.
    #[test]
    fn web_globals_are_found_by_name() {
        for named in [
            "const r = await fetch(url);",
            "new Headers({ a: '1' })",
            "globalThis.structuredClone(x)",
            "crypto.subtle.digest('SHA-256', data)",
            "require('crypto').webcrypto",
            "x instanceof Response",
            "const https = require('https');",
            "import http from \"node:http\";",
        ] {
            assert!(source_names_web_api(named.as_bytes()), "{named}");
        }
        for unnamed in [
            "const request = event.Records[0].cf.request;",
            "prefetch(); fetcher(); $fetch(); fetch_count++",
            "const response = { status: '200' };",
            "performance.now()",
            "const url = 'https://example.com/';",
        ] {
            assert!(!source_names_web_api(unnamed.as_bytes()), "{unnamed}");
        }
    }
}
