//! Deployment packages (a directory or a zip with node_modules and data files) and layers:
//! configured, uploaded through the admin API, frozen by versions, and refused when unsafe.

use crate::support::*;
use std::io::Write as _;

/// A zip of (path, content) entries.
fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in files {
        writer.start_file(*name, options).unwrap();
        writer.write_all(content).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// A package whose function marks requests with the `tag` of its data file, through a module
/// in its node_modules.
fn tagging_package(tag: &str) -> Vec<u8> {
    zip_of(&[
        (
            "index.mjs",
            b"import { readFileSync } from 'node:fs';\nimport mark from 'marker';\nconst { tag } = JSON.parse(readFileSync(new URL('./data/tag.json', import.meta.url)));\nexport const handler = async (e) => mark(e.Records[0].cf.request, tag);\n",
        ),
        ("data/tag.json", format!("{{\"tag\": \"{tag}\"}}").as_bytes()),
        ("node_modules/marker/package.json", b"{\"main\": \"mark.js\"}"),
        (
            "node_modules/marker/mark.js",
            b"module.exports = (r, tag) => { r.headers['x-code'] = [{ value: tag }]; return r; };\n",
        ),
    ])
}

async fn put_code(edge: &Edgehook, query: &str, body: Vec<u8>, zipped: bool) -> (u16, serde_json::Value) {
    let mut request = client()
        .put(edge.admin_url(&format!("/functions/f/code{query}")))
        .bearer_auth(ADMIN_TOKEN)
        .body(body);
    if zipped {
        request = request.header("content-type", "application/zip");
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

async fn admin_json(edge: &Edgehook, method: reqwest::Method, path: &str, body: &str) -> serde_json::Value {
    let response = client()
        .request(method, edge.admin_url(path))
        .bearer_auth(ADMIN_TOKEN)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    serde_json::from_str(&response.text().await.unwrap()).unwrap()
}

async fn tag_seen(edge: &Edgehook, origin: &Origin, path: &str) -> String {
    let response = client().get(edge.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    origin.last().headers["x-code"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn zip_packages_upload_live_versions_freeze_them_and_unsafe_zips_change_nothing() {
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("f.mjs"),
        "export const handler = async (e) => e.Records[0].cf.request;",
    )
    .unwrap();
    let rest = format!(
        "[deploy]\nstate_dir = \"{}\"\n[origins.app]\nurl = \"{}\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\ncache = false\norigin_request = \"f\"\n[functions.f]\ncode = \"{}/f.mjs\"\n",
        state.path().display(),
        origin.url(),
        dir.path().display()
    );
    let edge = Edgehook::start_in(dir, "", &rest).await;

    // A zip with node_modules and a data file becomes $LATEST at once.
    let (status, body) = put_code(&edge, "?handler=index.handler", tagging_package("one"), true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(tag_seen(&edge, &origin, "/").await, "one");
    let described = admin_json(&edge, reqwest::Method::GET, "/functions/f", "").await;
    assert_eq!(described["latest"]["entry"], "index.mjs", "{described}");
    assert_eq!(described["latest"]["package"]["files"], 4, "{described}");

    // A version freezes the whole package: new code does not reach an alias on version 1.
    let published = admin_json(&edge, reqwest::Method::POST, "/functions/f/versions", "").await;
    assert_eq!(published["version"], 1);
    let (status, _) = put_code(&edge, "", tagging_package("two"), true).await;
    assert_eq!(status, 200, "the handler is kept");
    admin_json(
        &edge,
        reqwest::Method::PUT,
        "/functions/f/aliases/live",
        r#"{"version": 1}"#,
    )
    .await;
    let config_path = edge.log.parent().unwrap().join("edgehook.toml");
    let config = std::fs::read_to_string(&config_path).unwrap().replace(
        "[[behaviors]]\npath = \"*\"",
        "[[behaviors]]\npath = \"/live/*\"\norigin = \"app\"\ncache = false\norigin_request = \"f:live\"\n[[behaviors]]\npath = \"*\"",
    );
    std::fs::write(&config_path, config).unwrap();
    assert_eq!(edge.reload().await.status(), 200);
    assert_eq!(tag_seen(&edge, &origin, "/").await, "two");
    assert_eq!(tag_seen(&edge, &origin, "/live/x").await, "one");
    let store = ::edgehook::deploy::store::LocalStore::open(state.path()).unwrap();
    let frozen = store.version("f", 1).unwrap().unwrap();
    assert_eq!(
        frozen.code.package.file("data/tag.json").unwrap().as_ref(),
        br#"{"tag": "one"}"#
    );

    // Unsafe or broken packages are refused with the reason, and nothing changes.
    let escaping = zip_of(&[
        ("index.mjs", b"export const handler = (e) => e;"),
        ("../../evil.js", b"x"),
    ]);
    let (status, body) = put_code(&edge, "", escaping, true).await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("outside the package"),
        "{body}"
    );
    let (status, body) = put_code(&edge, "", b"PK\x03\x04 truncated".to_vec(), true).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("not a valid zip"), "{body}");
    let headless = zip_of(&[("main.mjs", b"export const handler = (e) => e;"), ("other.js", b"")]);
    let (status, body) = put_code(&edge, "?handler=index.handler", headless, true).await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("Cannot find module 'index'"),
        "{body}"
    );
    let broken = zip_of(&[
        (
            "index.mjs",
            b"import 'missing-package';\nexport const handler = (e) => e;",
        ),
        ("x.js", b""),
    ]);
    let (status, body) = put_code(&edge, "", broken, true).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("module not available: 'missing-package'"),
        "{body}"
    );
    assert_eq!(tag_seen(&edge, &origin, "/").await, "two");
    let latest = store.latest("f").unwrap().unwrap();
    assert_eq!(
        latest.package.file("data/tag.json").unwrap().as_ref(),
        br#"{"tag": "two"}"#
    );
}

#[tokio::test]
async fn a_viewer_function_takes_packages_up_to_one_megabyte_zipped() {
    let origin = Origin::start(|_| Reply::ok("x")).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("f.mjs"),
        "export const handler = async (e) => e.Records[0].cf.request;",
    )
    .unwrap();
    let rest = format!(
        "[origins.app]\nurl = \"{}\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\nviewer_request = \"f\"\n[functions.f]\ncode = \"{}/f.mjs\"\n",
        origin.url(),
        dir.path().display()
    );
    let edge = Edgehook::start_in(dir, "", &rest).await;
    // Random bytes do not compress: this zip is over 1 MiB.
    let noise: Vec<u8> = (0..(3 << 19)).map(|_| rand::random::<u8>()).collect();
    let large = zip_of(&[
        (
            "index.mjs",
            b"export const handler = async (e) => e.Records[0].cf.request;",
        ),
        ("noise.bin", &noise),
    ]);
    let (status, body) = put_code(&edge, "", large, true).await;
    assert_eq!(status, 413, "{body}");
    let small = zip_of(&[
        (
            "index.mjs",
            b"export const handler = async (e) => e.Records[0].cf.request;",
        ),
        ("noise.bin", &noise[..1000]),
    ]);
    let (status, body) = put_code(&edge, "?handler=index.handler", small, true).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_config_names_packages_and_layers_and_says_what_is_wrong_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join("fn");
    std::fs::create_dir_all(package.join("src")).unwrap();
    std::fs::write(
        package.join("src/app.js"),
        "exports.handler = async (e) => e.Records[0].cf.request;",
    )
    .unwrap();
    std::fs::write(package.join("README.md"), "a package").unwrap();
    let check = |text: String| {
        let path = dir.path().join("edgehook.toml");
        std::fs::write(&path, text).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_edgehook"))
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap()
    };
    let base = "[origins.app]\nurl = \"http://127.0.0.1:9\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\nviewer_request = \"f\"\n";
    let good = check(format!(
        "{base}[layers.shared]\npath = \"{0}\"\n[functions.f]\ncode = \"{0}\"\nhandler = \"src/app.handler\"\nlayers = [\"shared\"]\n",
        package.display()
    ));
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    let bad = check(format!(
        "{base}[layers.broken]\npath = \"{0}/none\"\n[functions.f]\ncode = \"{0}\"\nlayers = [\"nowhere\"]\n",
        package.display()
    ));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(stderr.contains("`layers.broken.path`"), "{stderr}");
    assert!(
        stderr.contains("Cannot find module 'index' (handler `index.handler`)"),
        "{stderr}"
    );
    assert!(stderr.contains("no layer named `nowhere`"), "{stderr}");
}
