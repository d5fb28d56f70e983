//! Each case is what Node.js 20 resolves for the same tree (the differential test in
//! `src/js/tests.rs` runs a package through Node itself).
use super::*;
use crate::package::{Limits, Package};
use std::io::Write as _;
use std::sync::Arc;

fn package(files: &[(&str, &str)]) -> Arc<Package> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, content) in files {
        writer
            .start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        writer.write_all(content.as_bytes()).unwrap();
    }
    Arc::new(Package::from_zip(&writer.finish().unwrap().into_inner(), Limits::ORIGIN).unwrap())
}

fn resolver() -> Resolver {
    let task = package(&[
        ("index.js", "require('./lib')"),
        ("lib/index.js", ""),
        ("lib/data.json", "{}"),
        ("esm/main.mjs", ""),
        (
            "package.json",
            r##"{"name": "app", "exports": {".": "./index.js", "./data": "./lib/data.json"}, "imports": {"#config": "./lib/data.json", "#dep": "dual"}}"##,
        ),
        ("node_modules/plain/package.json", r#"{"main": "./src/main"}"#),
        ("node_modules/plain/src/main.js", ""),
        ("node_modules/plain/other.js", ""),
        (
            "node_modules/dual/package.json",
            r#"{"type": "module", "exports": {".": {"import": "./esm/index.js", "require": "./cjs/index.cjs"}, "./feature/*": {"default": "./features/*.js"}, "./package.json": "./package.json"}}"#,
        ),
        ("node_modules/dual/esm/index.js", "export default 1"),
        ("node_modules/dual/cjs/index.cjs", "module.exports = 1"),
        ("node_modules/dual/features/a.js", "export default 1"),
        ("node_modules/dual/node_modules/inner/index.js", ""),
        ("node_modules/@scope/pkg/index.js", ""),
        ("node_modules/sugar/package.json", r#"{"exports": "./main.js"}"#),
        ("node_modules/sugar/main.js", ""),
        ("node_modules/native/index.node", ""),
    ]);
    let layer = package(&[("nodejs/node_modules/from-layer/index.js", "")]);
    Resolver::new(CodeTree::new(task, vec![layer]))
}

fn file(found: Result<Resolved, ResolveError>) -> (String, FileKind) {
    match found {
        Ok(Resolved::File { path, kind }) => (path, kind),
        other => panic!("not a file: {other:?}"),
    }
}

const MAIN: &str = "/var/task/index.js";

#[test]
fn require_finds_files_directories_and_packages_as_node_does() {
    let r = resolver();
    let require = |s: &str, from: &str| r.resolve(s, from, Mode::Require);
    assert_eq!(require("crypto", MAIN), Ok(Resolved::Builtin("crypto")));
    assert_eq!(require("node:path", MAIN), Ok(Resolved::Builtin("path")));
    assert_eq!(file(require("./lib", MAIN)).0, "/var/task/lib/index.js");
    assert_eq!(
        file(require("./lib/data", MAIN)),
        ("/var/task/lib/data.json".into(), FileKind::Json)
    );
    assert_eq!(
        file(require("plain", MAIN)).0,
        "/var/task/node_modules/plain/src/main.js"
    );
    assert_eq!(
        file(require("plain/other", MAIN)).0,
        "/var/task/node_modules/plain/other.js"
    );
    assert_eq!(
        file(require("dual", MAIN)),
        ("/var/task/node_modules/dual/cjs/index.cjs".into(), FileKind::CommonJs)
    );
    assert_eq!(
        file(require("dual/feature/a", MAIN)).0,
        "/var/task/node_modules/dual/features/a.js"
    );
    assert_eq!(
        file(require("@scope/pkg", MAIN)).0,
        "/var/task/node_modules/@scope/pkg/index.js"
    );
    assert_eq!(file(require("sugar", MAIN)).0, "/var/task/node_modules/sugar/main.js");
    // Nested node_modules are searched first from inside a package.
    let inside = "/var/task/node_modules/dual/esm/index.js";
    assert_eq!(
        file(require("inner", inside)).0,
        "/var/task/node_modules/dual/node_modules/inner/index.js"
    );
    assert!(require("inner", MAIN).is_err());
    // Self-reference and package imports.
    assert_eq!(file(require("app/data", MAIN)).0, "/var/task/lib/data.json");
    assert_eq!(
        file(require("#config", "/var/task/lib/index.js")).0,
        "/var/task/lib/data.json"
    );
    assert_eq!(
        file(require("#dep", MAIN)).0,
        "/var/task/node_modules/dual/cjs/index.cjs"
    );
    // Lambda's NODE_PATH: the layers' nodejs/node_modules.
    assert_eq!(
        file(require("from-layer", MAIN)).0,
        "/opt/nodejs/node_modules/from-layer/index.js"
    );
}

#[test]
fn import_takes_exact_paths_and_the_import_condition() {
    let r = resolver();
    let import = |s: &str| r.resolve(s, "/var/task/esm/main.mjs", Mode::Import);
    assert_eq!(file(import("../index.js")).0, "/var/task/index.js");
    assert_eq!(
        file(import("dual")),
        ("/var/task/node_modules/dual/esm/index.js".into(), FileKind::Esm)
    );
    assert_eq!(file(import("plain")).0, "/var/task/node_modules/plain/src/main.js");
    let extensionless = import("../lib/data").unwrap_err();
    assert_eq!(extensionless.code(), "ERR_MODULE_NOT_FOUND");
    assert_eq!(
        extensionless.to_string(),
        "Cannot find module '/var/task/lib/data' imported from /var/task/esm/main.mjs"
    );
    assert_eq!(import("../lib").unwrap_err().code(), "ERR_UNSUPPORTED_DIR_IMPORT");
}

#[test]
fn failures_carry_node_codes_and_messages() {
    let r = resolver();
    let missing = r.resolve("./nope", MAIN, Mode::Require).unwrap_err();
    assert_eq!(
        (missing.code(), missing.to_string().as_str()),
        (
            "MODULE_NOT_FOUND",
            "Cannot find module './nope'\nRequire stack:\n- /var/task/index.js"
        )
    );
    let hidden = r.resolve("dual/cjs/index.cjs", MAIN, Mode::Require).unwrap_err();
    assert_eq!(hidden.code(), "ERR_PACKAGE_PATH_NOT_EXPORTED");
    assert!(hidden.to_string().starts_with(
        "Package subpath './cjs/index.cjs' is not defined by \"exports\" in /var/task/node_modules/dual/package.json"
    ));
    assert_eq!(
        r.resolve("node:nothing", MAIN, Mode::Require).unwrap_err().code(),
        "ERR_UNKNOWN_BUILTIN_MODULE"
    );
    assert_eq!(
        r.resolve("#nothing", MAIN, Mode::Require).unwrap_err().code(),
        "ERR_PACKAGE_IMPORT_NOT_DEFINED"
    );
    assert_eq!(
        r.resolve("native", MAIN, Mode::Require).unwrap_err().code(),
        "ERR_DLOPEN_FAILED"
    );
    assert_eq!(
        r.resolve("/etc/passwd", MAIN, Mode::Require).unwrap_err().code(),
        "MODULE_NOT_FOUND"
    );
    assert_eq!(
        r.resolve("../../../etc/passwd", MAIN, Mode::Require)
            .unwrap_err()
            .code(),
        "MODULE_NOT_FOUND"
    );
}

#[test]
fn a_js_file_is_esm_by_its_package_type_else_by_its_syntax() {
    let r = resolver();
    assert_eq!(r.kind("/var/task/node_modules/dual/features/a.js"), Ok(FileKind::Esm));
    assert_eq!(r.kind("/var/task/index.js"), Ok(FileKind::CommonJs));
    assert_eq!(r.kind("/var/task/esm/main.mjs"), Ok(FileKind::Esm));
}

/// Node 20 adds to a failed import what `require` would have found, looking up relative
/// specifiers from the working directory (/var/task on Lambda); the messages here are Node's
/// for the same tree, run with its package as the working directory.
#[test]
fn a_failed_import_suggests_what_require_would_find_as_node_does() {
    let r = resolver();
    let from = "/var/task/esm/main.mjs";
    let message = |specifier: &str| r.resolve(specifier, from, Mode::Import).unwrap_err().to_string();
    assert_eq!(
        message("./lib"),
        "Cannot find module '/var/task/esm/lib' imported from /var/task/esm/main.mjs\nDid you mean to import \"../lib/index.js\"?"
    );
    assert_eq!(
        message("../lib"),
        "Directory import '/var/task/lib' is not supported resolving ES modules imported from /var/task/esm/main.mjs"
    );
    assert_eq!(
        message("plain/other"),
        "Cannot find module '/var/task/node_modules/plain/other' imported from /var/task/esm/main.mjs\nDid you mean to import \"plain/other.js\"?"
    );
    // require's own failures are as they were.
    assert!(!r
        .resolve("./lib", from, Mode::Require)
        .unwrap_err()
        .to_string()
        .contains("Did you mean"));
}
