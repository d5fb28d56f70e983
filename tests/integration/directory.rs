//! Directory origins: content types, validators, conditional requests, HEAD, 404, and no way out
//! of the directory.

use crate::support::*;

/// A site directory inside a temp dir, with a secret file next to it and a symlink pointing out.
fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("site");
    std::fs::create_dir_all(root.join("css")).unwrap();
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(root.join("docs/index.html"), "<h1>docs</h1>").unwrap();
    std::fs::write(root.join("css/site.css"), "body{}").unwrap();
    std::fs::write(root.join("data.json"), "{}").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "TOP SECRET").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("escape.txt")).unwrap();
    dir
}

const CONFIG: &str = "[origins.site]\ndir = \"{dir}/site\"\n[[behaviors]]\npath = \"*\"\norigin = \"site\"\n";

#[tokio::test]
async fn serves_files_with_types_and_validators() {
    let edge = Edgehook::start_in(site(), "", CONFIG).await;
    let c = client();
    let home = c.get(edge.url("/")).send().await.unwrap();
    assert_eq!(home.status(), 200);
    assert_eq!(home.headers()["content-type"], "text/html; charset=utf-8");
    let etag = home.headers()["etag"].to_str().unwrap().to_string();
    let last_modified = home.headers()["last-modified"].to_str().unwrap().to_string();
    assert_eq!(home.text().await.unwrap(), "<h1>home</h1>");
    let css = c.get(edge.url("/css/site.css")).send().await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let json = c.get(edge.url("/data.json")).send().await.unwrap();
    assert_eq!(json.headers()["content-type"], "application/json");
    assert_eq!(
        c.get(edge.url("/docs/")).send().await.unwrap().text().await.unwrap(),
        "<h1>docs</h1>"
    );
    let redirect = c.get(edge.url("/docs")).send().await.unwrap();
    assert_eq!(redirect.status(), 301);
    assert_eq!(redirect.headers()["location"], "/docs/");

    // Conditional requests, answered from the cache and from the origin alike.
    for _ in 0..2 {
        let by_etag = c
            .get(edge.url("/"))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(by_etag.status(), 304);
        let by_date = c
            .get(edge.url("/"))
            .header("if-modified-since", &last_modified)
            .send()
            .await
            .unwrap();
        assert_eq!(by_date.status(), 304);
        let other = c
            .get(edge.url("/"))
            .header("if-none-match", "\"nope\"")
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 200);
    }
    let fresh = c
        .get(edge.url("/data.json"))
        .header("if-none-match", "\"nope\"")
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 200);

    let head = c.head(edge.url("/css/site.css")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "6");
    assert!(head.bytes().await.unwrap().is_empty());

    let missing = c.get(edge.url("/nothing-here")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["x-cache"], "Error from edgehook");
}

/// A request sent the moment the proxy's port accepts is served from the directory: the proxy
/// listens only once the internal socket directories are served on does (pingora starts each
/// service on its own runtime; before, 6 of 40 such first requests got a 502).
#[tokio::test]
async fn the_first_request_after_start_is_served() {
    // With a function the process is busiest at the moment its services start (JS threads
    // making their instances), which is when the gap was widest.
    let config =
        format!("{CONFIG}viewer_response = \"headers\"\n[functions.headers]\ncode = \"{{dir}}/headers.mjs\"\n");
    for start in 0..16 {
        let dir = site();
        std::fs::write(
            dir.path().join("headers.mjs"),
            "export const handler = async (event) => event.Records[0].cf.response;",
        )
        .unwrap();
        let mut edge = Edgehook::spawn_in(dir, "", &config);
        let stream = edge.first_connection(edge.http).await;
        let answer = raw_exchange(
            stream,
            b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("<h1>home</h1>"),
            "start {start}: {answer}\n{}",
            edge.log_text()
        );
    }
}

#[tokio::test]
async fn path_escapes_are_refused() {
    let edge = Edgehook::start_in(site(), "", CONFIG).await;
    for path in [
        "/../secret.txt",
        "/docs/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/..%2fsecret.txt",
        "/docs/%2e%2e/%2e%2e/secret.txt",
        "/..%5csecret.txt",
        "/escape.txt",
        "/%00secret.txt",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        let answer = raw_request(edge.http, request.as_bytes()).await;
        let status_line = answer.lines().next().unwrap_or("").to_string();
        assert!(!answer.contains("TOP SECRET"), "{path} leaked the file: {answer}");
        assert!(
            status_line.contains(" 400 ") || status_line.contains(" 404 "),
            "{path} answered {status_line}"
        );
    }
}

#[tokio::test]
async fn directory_origins_refuse_other_methods() {
    let edge = Edgehook::start_in(site(), "", CONFIG).await;
    let response = client().post(edge.url("/index.html")).body("x").send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET, HEAD");
}
