//! Bundles the Node.js core modules taken from npm packages (src/js/node: package.json, its
//! lockfile, modules.js and its shims) into `$OUT_DIR/node_modules.js`, which the runtime evaluates before
//! its bootstrap. The packages are installed with `npm ci` from the lockfile into `$OUT_DIR`
//! (never into the source tree) and bundled with the esbuild the lockfile pins.

use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCES: [&str; 5] = [
    "package.json",
    "package-lock.json",
    "modules.js",
    "core.js",
    "core-buffer.js",
];

fn main() {
    let source = Path::new("src/js/node");
    for file in SOURCES {
        println!("cargo:rerun-if-changed={}", source.join(file).display());
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let work = out.join("node");
    std::fs::create_dir_all(&work).expect("create $OUT_DIR/node");
    for file in SOURCES {
        std::fs::copy(source.join(file), work.join(file)).unwrap_or_else(|e| panic!("copy {file}: {e}"));
    }
    run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"])
            .current_dir(&work),
        "npm ci (building edgehook needs Node.js's npm and the npm registry; scripts/setup installs npm)",
    );
    let bundle = out.join("node_modules.js");
    run(
        Command::new(work.join("node_modules/.bin/esbuild"))
            .arg("modules.js")
            .args(["--bundle", "--format=iife", "--platform=browser", "--target=es2022"])
            .args(["--legal-comments=inline", "--log-level=warning"])
            // The packages' `buffer` is the runtime's own (core-buffer.js).
            .arg("--alias:buffer=./core-buffer.js")
            .arg(format!("--outfile={}", bundle.display()))
            .current_dir(&work),
        "esbuild",
    );
}

fn run(command: &mut Command, what: &str) {
    match command.status() {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("{what} failed: {status}"),
        Err(e) => panic!("{what} could not start: {e}"),
    }
}
