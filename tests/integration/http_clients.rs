//! Deployment packages that bundle a Node HTTP client library, as users ship them, calling a
//! service on loopback with the egress allowed. The libraries come from npm, pinned by
//! tests/packages/http-clients/package-lock.json, installed once per lockfile into the
//! target directory.

use crate::support::*;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// A package directory holding the lockfile's node_modules, installed by `npm ci` once per
/// lockfile content (later runs reuse it).
fn installed_clients() -> PathBuf {
    // The tests of this module run at once; one installs, the others wait for it.
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _installing = INSTALLING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/packages/http-clients");
    let lock = std::fs::read(source.join("package-lock.json")).expect("the lockfile");
    let digest: u64 = lock.iter().fold(0xcbf29ce484222325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x100000001b3)
    });
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("http-clients-{digest:016x}"));
    if dir.join("node_modules/.package-lock.json").exists() {
        return dir;
    }
    let partial = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).expect("a directory for the packages");
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(source.join(file), partial.join(file)).expect("copy the package files");
    }
    let status = Command::new("npm")
        .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&partial)
        .status()
        .expect("npm (installed by scripts/setup) runs");
    assert!(status.success(), "npm ci of tests/packages/http-clients failed");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&partial, &dir).expect("move the installed packages in place");
    dir
}

/// A function package: the installed libraries and `index.js`, copied into `into`.
fn package_with(index: &str, into: &Path) -> PathBuf {
    let package = into.join("package");
    let copied = Command::new("cp")
        .args(["-r"])
        .arg(installed_clients())
        .arg(&package)
        .status()
        .expect("cp runs");
    assert!(copied.success());
    let mut file = std::fs::File::create(package.join("index.js")).expect("index.js");
    file.write_all(index.as_bytes()).expect("write index.js");
    package
}

/// axios, bundled in the function's package, fetches JSON from a service (plain and gzipped),
/// its errors arrive as axios errors with Node's codes, and the egress policy holds for it.
#[tokio::test]
async fn a_package_bundling_axios_calls_a_service() {
    let service = Origin::start(|seen| match seen.uri.as_str() {
        "/gzipped" => {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(br#"{"zipped":true}"#).expect("gzip");
            let mut reply = Reply::ok(encoder.finish().expect("gzip"));
            reply.headers = vec![
                ("content-type".into(), "application/json".into()),
                ("content-encoding".into(), "gzip".into()),
            ];
            reply
        }
        "/missing" => Reply::ok("no").status(404),
        _ => {
            let agent = seen
                .headers
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let mut reply = Reply::ok(format!(r#"{{"path":"{}","agent":"{agent}"}}"#, seen.uri));
            reply.headers = vec![("content-type".into(), "application/json".into())];
            reply
        }
    })
    .await;
    let port = service.addr.port();
    let dir = tempfile::tempdir().expect("temp dir");
    let index = r#"
const axios = require('axios');
exports.handler = async (event) => {
  const { uri, querystring } = event.Records[0].cf.request;
  const base = `http://127.0.0.1:${process.env.PORT}`;
  const target = uri === '/elsewhere' ? 'http://127.0.0.2:8080/' : `${base}${uri}${querystring ? '?' + querystring : ''}`;
  try {
    const response = await axios.get(target, { timeout: 2000 });
    return { status: '200', body: `${response.status} ${JSON.stringify(response.data)}` };
  } catch (e) {
    return { status: '200', body: `${e instanceof axios.AxiosError} ${e.code} ${e.response ? e.response.status : '-'}` };
  }
};
"#;
    let package = package_with(index, dir.path());
    let rest = format!(
        "[origins.app]\nurl = \"http://127.0.0.1:9\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\ncache = false\norigin_request = \"f\"\n\
         [functions.f]\ncode = \"{}\"\nhandler = \"index.handler\"\negress = [\"127.0.0.1:{port}\"]\nenv = {{ PORT = \"{port}\" }}\n",
        package.display()
    );
    let edge = Edgehook::start_in(dir, "", &rest).await;
    let c = client();
    let body = |path: &'static str| {
        let c = c.clone();
        let url = edge.url(path);
        async move {
            c.get(url)
                .send()
                .await
                .expect("an answer")
                .text()
                .await
                .expect("a body")
        }
    };
    let agent = {
        let lock = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/packages/http-clients/package.json"),
        )
        .expect("package.json");
        let version = lock
            .split("\"axios\": \"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("axios's version")
            .to_string();
        format!("axios/{version}")
    };
    assert_eq!(
        body("/data?q=1").await,
        format!(r#"200 {{"path":"/data?q=1","agent":"{agent}"}}"#)
    );
    assert_eq!(body("/gzipped").await, r#"200 {"zipped":true}"#);
    assert_eq!(body("/missing").await, "true ERR_BAD_REQUEST 404");
    // Refused as Node refuses a closed port: an AxiosError carrying the request error's code.
    assert_eq!(body("/elsewhere").await, "true ERR_EDGEHOOK_EGRESS_REFUSED -");
    assert_eq!(service.total(), 3);
}

/// The AWS SDK for JavaScript v3's S3 client, bundled in the function's package, writes and
/// reads an object on an S3-compatible service on loopback (a minimal one here: objects by
/// path, S3's NoSuchKey error), signing its requests with SigV4, and reads S3's error.
#[tokio::test]
async fn a_package_bundling_the_aws_sdk_v3_uses_s3() {
    let objects: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
    let signed: Arc<Mutex<Vec<String>>> = Arc::default();
    let (store, signatures) = (objects.clone(), signed.clone());
    let service = Origin::start(move |seen| {
        let path = seen.uri.split('?').next().unwrap_or_default().to_string();
        let authorization = seen.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        signatures.lock().unwrap().push(authorization.split(',').next().unwrap_or("").to_string());
        match seen.method.as_str() {
            "PUT" => {
                store.lock().unwrap().insert(path, seen.body.clone());
                Reply::ok("").header("etag", "\"1\"")
            }
            _ => match store.lock().unwrap().get(&path) {
                Some(body) => Reply::ok(body.clone()).header("etag", "\"1\""),
                None => {
                    let mut reply = Reply::ok("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>").status(404);
                    reply.headers = vec![("content-type".into(), "application/xml".into())];
                    reply
                }
            },
        }
    })
    .await;
    let port = service.addr.port();
    let dir = tempfile::tempdir().expect("temp dir");
    let index = r#"
const { S3Client, PutObjectCommand, GetObjectCommand } = require('@aws-sdk/client-s3');
const s3 = new S3Client({
  region: 'us-east-1',
  endpoint: `http://127.0.0.1:${process.env.PORT}`,
  forcePathStyle: true,
  credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
});
exports.handler = async () => {
  await s3.send(new PutObjectCommand({ Bucket: 'site', Key: 'greeting.txt', Body: 'hello from a function' }));
  const object = await s3.send(new GetObjectCommand({ Bucket: 'site', Key: 'greeting.txt' }));
  const text = await object.Body.transformToString();
  let missing;
  try {
    await s3.send(new GetObjectCommand({ Bucket: 'site', Key: 'nothing.txt' }));
  } catch (e) {
    missing = `${e.name} ${e.$metadata.httpStatusCode}`;
  }
  return { status: '200', body: `${text} / ${missing}` };
};
"#;
    let package = package_with(index, dir.path());
    let rest = format!(
        "[origins.app]\nurl = \"http://127.0.0.1:9\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\ncache = false\norigin_request = \"f\"\n\
         [functions.f]\ncode = \"{}\"\nhandler = \"index.handler\"\ntimeout = \"10s\"\negress = [\"127.0.0.1:{port}\"]\nenv = {{ PORT = \"{port}\" }}\n",
        package.display()
    );
    let edge = Edgehook::start_in(dir, "", &rest).await;
    let body = client()
        .get(edge.url("/"))
        .send()
        .await
        .expect("an answer")
        .text()
        .await
        .expect("a body");
    assert_eq!(body, "hello from a function / NoSuchKey 404", "{}", edge.log_text());
    assert_eq!(
        objects.lock().unwrap().get("/site/greeting.txt").map(Vec::as_slice),
        Some(&b"hello from a function"[..])
    );
    let signatures = signed.lock().unwrap().clone();
    assert_eq!(signatures.len(), 3);
    assert!(
        signatures
            .iter()
            .all(|s| s.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
                && s.ends_with("/us-east-1/s3/aws4_request")),
        "{signatures:?}"
    );
}
