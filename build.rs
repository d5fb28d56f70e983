//! Bundles each Node.js core module edgehook takes from an npm package (src/js/node:
//! package.json and its lockfile) into one CommonJS file per module, and writes
//! `$OUT_DIR/packaged_modules.rs`, the table the runtime serves them from. The packages are
//! installed with `npm ci` from the lockfile into `$OUT_DIR` (never into the source tree) and
//! bundled with the esbuild the lockfile pins. A package's own `require("buffer")` (and the
//! other `SHARED` modules) is left to the runtime, so it gets the function's, as in Node.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Module name as functions require it, and the package (path) that implements it.
const MODULES: [(&str, &str); 11] = [
    ("assert", "assert/"),
    ("domain", "domain-browser"),
    ("events", "events/"),
    ("path", "path-browserify"),
    // Node's streams, as Node's streams working group publishes them for other runtimes.
    ("stream", "readable-stream"),
    ("punycode", "punycode/"),
    ("string_decoder", "string_decoder/"),
    // The legacy API (parse, format, resolve); the runtime adds the WHATWG URL classes.
    ("url", "url/"),
    ("util", "util/"),
    // Node's deep equality (the `assert` package's copy of Node's comparisons), for
    // util.isDeepStrictEqual.
    ("util-comparisons", "assert/build/internal/util/comparisons"),
    // Node's util.inspect, extracted from Node for other runtimes.
    ("util-inspect", "node-inspect-extracted"),
];

/// Modules a package's bundle takes from the runtime rather than bundling its own copy, so
/// that, as in Node, there is one `Buffer`, one `EventEmitter` and one `process` (a stream is
/// an `EventEmitter` of the `events` module functions get).
const SHARED: [&str; 10] = [
    "buffer",
    "buffer/",
    "events",
    "events/",
    "process",
    "process/",
    "string_decoder",
    "string_decoder/",
    "util",
    "util/",
];

fn main() {
    let source = Path::new("src/js/node");
    for file in ["package.json", "package-lock.json"] {
        println!("cargo:rerun-if-changed={}", source.join(file).display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    // Two brotli decoders export the same C functions: pingora's brotli 3 (whose decompressor
    // always exports them) and deno_web's brotli 6 (built with `ffi-api`). Nothing calls them by
    // their C names (both crates are used through Rust), so the linker may keep either copy.
    println!("cargo:rustc-link-arg=-Wl,--allow-multiple-definition");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let work = out.join("node");
    std::fs::create_dir_all(&work).expect("create $OUT_DIR/node");
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(source.join(file), work.join(file)).unwrap_or_else(|e| panic!("copy {file}: {e}"));
    }
    run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"])
            .current_dir(&work),
        "npm ci (building edgehook needs Node.js's npm and the npm registry; scripts/setup installs npm)",
    );
    let mut table = String::from("/// Node.js modules from npm packages: name, CommonJS source (built by build.rs).\n");
    table.push_str("pub const PACKAGED_MODULES: &[(&str, &str)] = &[\n");
    for (name, package) in MODULES {
        let entry = work.join(format!("entry-{name}.js"));
        std::fs::write(&entry, format!("module.exports = require({package:?});\n")).expect("write an entry");
        let bundle = work.join(format!("{name}.js"));
        run(
            Command::new(work.join("node_modules/.bin/esbuild"))
                .arg(&entry)
                .args(["--bundle", "--format=cjs", "--platform=browser", "--target=es2022"])
                .args(
                    SHARED
                        .iter()
                        .filter(|shared| shared.trim_end_matches('/') != name)
                        .map(|shared| format!("--external:{shared}")),
                )
                // Its browser build takes AbortController from `window`; its main build is the
                // polyfill itself.
                .arg("--alias:abort-controller=abort-controller/dist/abort-controller")
                .args(["--legal-comments=inline", "--log-level=warning"])
                .arg(format!("--outfile={}", bundle.display()))
                .current_dir(&work),
            "esbuild",
        );
        table.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            bundle.display().to_string()
        ));
    }
    table.push_str("];\n");
    std::fs::write(out.join("packaged_modules.rs"), table).expect("write packaged_modules.rs");
    embed_extension_scripts(&out);
}

/// Crates whose extension scripts the runtime loads (src/js/web.rs), and this crate's own.
const EXTENSION_CRATES: [&str; 5] = ["deno_webidl", "deno_web", "deno_crypto", "deno_fetch", "edgehook"];

/// deno_core records an extension's scripts by the absolute path they had when their crate was
/// compiled and reads them from there, so a binary copied to another machine would not find
/// them. This writes `$OUT_DIR/extension_scripts.rs`: a function from that path to the script
/// embedded in the binary, for every script of the crates above.
fn embed_extension_scripts(out: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Only the target's packages: cargo fetches no others for a build, and `--offline` metadata
    // over every platform's packages would ask for them.
    let target = std::env::var("TARGET").expect("cargo sets TARGET for build scripts");
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--offline",
            "--format-version",
            "1",
            "--filter-platform",
            &target,
        ])
        .output()
        .unwrap_or_else(|e| panic!("cargo metadata could not start: {e}"));
    if !output.status.success() {
        panic!("cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let packages = metadata["packages"].as_array().expect("cargo metadata lists packages");
    let mut arms = String::new();
    for name in EXTENSION_CRATES {
        let package = packages
            .iter()
            .find(|package| package["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not a dependency"));
        let manifest = Path::new(package["manifest_path"].as_str().expect("a manifest path"));
        let root = manifest.parent().expect("a crate directory");
        let dirs = if name == "edgehook" {
            vec![root.join("src/js/runtime/deno_net")]
        } else {
            vec![root.to_path_buf()]
        };
        for dir in dirs {
            let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "js"))
                .collect();
            scripts.sort();
            for script in scripts {
                let path = script.display().to_string();
                if name == "edgehook" {
                    println!("cargo:rerun-if-changed={path}");
                }
                arms.push_str(&format!(
                    "        {path:?} => Some(deno_core::ascii_str_include!({path:?})),\n"
                ));
            }
        }
    }
    let code = format!(
        "/// The extension script deno_core recorded at `path`, embedded (written by build.rs).\n\
         pub fn embedded_script(path: &str) -> Option<deno_core::FastStaticString> {{\n    match path {{\n{arms}        _ => None,\n    }}\n}}\n"
    );
    std::fs::write(out.join("extension_scripts.rs"), code).expect("write extension_scripts.rs");
}

fn run(command: &mut Command, what: &str) {
    match command.status() {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("{what} failed: {status}"),
        Err(e) => panic!("{what} could not start: {e}"),
    }
}
