//! Directory origins: files served the way an S3 origin serves objects. Requests reach this
//! handler over edgehook's internal socket as `/<origin name>/<object path>`, so directory
//! origins take part in caching exactly like HTTP origins.
//!
//! Safety: the object path is percent-decoded once and split into segments; `..`, NUL and
//! backslashes are refused outright, and the resolved file must still be inside the (canonical)
//! root after symlinks are followed.

use crate::config::DirOrigin;
use crate::local_http::{Body, Reply};
use pingora::http::ResponseHeader;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// What a request path resolves to.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    File(PathBuf),
    /// A directory asked for without its trailing slash: redirect to `path/`.
    AddSlash,
    NotFound,
    BadPath,
}

/// Resolves the raw (still percent-encoded) object path inside `origin`.
pub fn resolve(origin: &DirOrigin, raw_path: &str) -> Resolved {
    let Ok(decoded) = percent_encoding::percent_decode_str(raw_path).decode_utf8() else {
        return Resolved::BadPath;
    };
    if decoded.contains('\0') || decoded.contains('\\') {
        return Resolved::BadPath;
    }
    let mut relative = PathBuf::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => continue,
            ".." => return Resolved::BadPath,
            s => relative.push(s),
        }
    }
    let mut candidate = origin.root.join(&relative);
    if decoded.ends_with('/') || relative.as_os_str().is_empty() {
        match &origin.index {
            Some(index) => candidate.push(index),
            None => return Resolved::NotFound,
        }
    }
    let Ok(canonical) = candidate.canonicalize() else {
        return Resolved::NotFound;
    };
    if !canonical.starts_with(&origin.root) {
        return Resolved::NotFound;
    }
    if canonical.is_dir() {
        return if origin.index.is_some() {
            Resolved::AddSlash
        } else {
            Resolved::NotFound
        };
    }
    Resolved::File(canonical)
}

/// Content-Type by file extension: the web's common types as their current RFCs name them
/// (mime_guess still has older names for some: `application/font-woff` where RFC 8081 says
/// `font/woff`, `application/javascript` for `.mjs` where RFC 9239 says `text/javascript`),
/// mime_guess's table for the rest; text types in UTF-8.
pub fn content_type(path: &Path) -> std::borrow::Cow<'static, str> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let common = match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "wasm" => "application/wasm",
        _ => "",
    };
    if !common.is_empty() {
        return common.into();
    }
    match mime_guess::from_ext(&ext).first() {
        Some(mime) if mime.type_() == mime_guess::mime::TEXT => format!("{}; charset=utf-8", mime.essence_str()).into(),
        Some(mime) => mime.essence_str().to_string().into(),
        None => "application/octet-stream".into(),
    }
}

/// A strong validator from size and modification time (nginx's scheme).
pub fn etag(size: u64, modified: SystemTime) -> String {
    let secs = modified.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format!("\"{secs:x}-{size:x}\"")
}

/// Whether the request's validators match, so a 304 is the answer (RFC 9110 13.2.2: when
/// If-None-Match is present, If-Modified-Since is ignored).
pub fn not_modified(req: &pingora::http::RequestHeader, etag: &str, modified: SystemTime) -> bool {
    if let Some(inm) = req.headers.get(http::header::IF_NONE_MATCH) {
        let Ok(inm) = inm.to_str() else { return false };
        return inm
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || t.trim_start_matches("W/") == etag);
    }
    let Some(since) = req
        .headers
        .get(http::header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return false;
    };
    // HTTP dates have whole seconds.
    let modified_secs = modified.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let since_secs = since.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    modified_secs <= since_secs
}

/// Serves every directory origin of the config.
pub struct DirServer {
    origins: HashMap<String, DirOrigin>,
}

impl DirServer {
    pub fn new(origins: HashMap<String, DirOrigin>) -> Self {
        DirServer { origins }
    }

    pub async fn serve(&self, req: &pingora::http::RequestHeader) -> Reply {
        if req.method != http::Method::GET && req.method != http::Method::HEAD {
            let mut reply = Reply::text(405, "method not allowed");
            let _ = reply.header.insert_header(http::header::ALLOW, "GET, HEAD");
            return reply;
        }
        let path = req.uri.path();
        let rest = path.strip_prefix('/').unwrap_or(path);
        let (name, object) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/"),
        };
        let Some(origin) = self.origins.get(name) else {
            return Reply::text(502, "unknown directory origin");
        };
        match resolve(origin, object) {
            Resolved::BadPath => Reply::text(400, "bad path"),
            Resolved::NotFound => Reply::text(404, "not found"),
            Resolved::AddSlash => {
                let mut reply = Reply::text(301, "moved");
                let location = match req.uri.query() {
                    Some(q) => format!("{object}/?{q}"),
                    None => format!("{object}/"),
                };
                let _ = reply.header.insert_header(http::header::LOCATION, location);
                reply
            }
            Resolved::File(file) => self.serve_file(req, &file).await,
        }
    }

    async fn serve_file(&self, req: &pingora::http::RequestHeader, path: &Path) -> Reply {
        let opened = async {
            let file = tokio::fs::File::open(path).await?;
            let metadata = file.metadata().await?;
            Ok::<_, std::io::Error>((file, metadata))
        };
        let (file, metadata) = match opened.await {
            Ok(found) => found,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Reply::text(404, "not found"),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Reply::text(403, "forbidden"),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "directory origin cannot read a file");
                return Reply::text(500, "cannot read file");
            }
        };
        let modified = metadata.modified().unwrap_or(UNIX_EPOCH);
        let tag = etag(metadata.len(), modified);
        let status = if not_modified(req, &tag, modified) { 304 } else { 200 };
        let Ok(mut header) = ResponseHeader::build(status, Some(6)) else {
            return Reply::text(500, "internal error");
        };
        let _ = header.insert_header(http::header::ETAG, tag.as_str());
        let _ = header.insert_header(http::header::LAST_MODIFIED, httpdate::fmt_http_date(modified));
        let _ = header.insert_header(http::header::CONTENT_TYPE, content_type(path).as_ref());
        let _ = header.insert_header(http::header::ACCEPT_RANGES, "bytes");
        if status == 304 {
            return Reply {
                header,
                body: Body::Empty,
            };
        }
        let _ = header.insert_header(http::header::CONTENT_LENGTH, metadata.len());
        Reply {
            header,
            body: Body::File(file),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> (tempfile::TempDir, DirOrigin) {
        let outside = tempfile::tempdir().unwrap();
        let root = outside.path().join("site");
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::write(root.join("index.html"), "home").unwrap();
        std::fs::write(root.join("docs/index.html"), "docs").unwrap();
        std::fs::write(root.join("a b.txt"), "space").unwrap();
        std::fs::write(outside.path().join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), root.join("link.txt")).unwrap();
        let origin = DirOrigin {
            root: root.canonicalize().unwrap(),
            index: Some("index.html".into()),
        };
        (outside, origin)
    }

    #[test]
    fn resolves_files_and_indexes() {
        let (_dir, origin) = site();
        assert_eq!(resolve(&origin, "/"), Resolved::File(origin.root.join("index.html")));
        assert_eq!(
            resolve(&origin, "/docs/"),
            Resolved::File(origin.root.join("docs/index.html"))
        );
        assert_eq!(resolve(&origin, "/docs"), Resolved::AddSlash);
        assert_eq!(
            resolve(&origin, "/a%20b.txt"),
            Resolved::File(origin.root.join("a b.txt"))
        );
        assert_eq!(resolve(&origin, "/missing"), Resolved::NotFound);
    }

    #[test]
    fn refuses_escapes() {
        let (_dir, origin) = site();
        for path in [
            "/../secret.txt",
            "/docs/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/..%2fsecret.txt",
            "/%2E%2E%2Fsecret.txt",
            "/a\\..\\secret.txt",
            "/x%00.txt",
        ] {
            assert_eq!(resolve(&origin, path), Resolved::BadPath, "{path}");
        }
        assert_eq!(
            resolve(&origin, "/link.txt"),
            Resolved::NotFound,
            "symlink out of the root"
        );
        assert_eq!(resolve(&origin, "/%ff"), Resolved::BadPath);
    }

    #[test]
    fn conditional_requests() {
        let modified = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let tag = etag(10, modified);
        let mut req = pingora::http::RequestHeader::build("GET", b"/", None).unwrap();
        assert!(!not_modified(&req, &tag, modified));
        req.insert_header("if-none-match", tag.as_str()).unwrap();
        assert!(not_modified(&req, &tag, modified));
        req.insert_header("if-none-match", "\"other\"").unwrap();
        req.insert_header("if-modified-since", httpdate::fmt_http_date(modified))
            .unwrap();
        assert!(
            !not_modified(&req, &tag, modified),
            "If-None-Match wins over If-Modified-Since"
        );
        req.remove_header("if-none-match");
        assert!(not_modified(&req, &tag, modified));
        req.insert_header(
            "if-modified-since",
            httpdate::fmt_http_date(modified - std::time::Duration::from_secs(5)),
        )
        .unwrap();
        assert!(!not_modified(&req, &tag, modified));
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(Path::new("a/b.CSS")), "text/css; charset=utf-8");
        assert_eq!(content_type(Path::new("font.woff")), "font/woff");
        assert_eq!(content_type(Path::new("app.mjs")), "text/javascript; charset=utf-8");
        // From mime_guess's table.
        assert_eq!(content_type(Path::new("notes.md")), "text/markdown; charset=utf-8");
        assert_eq!(content_type(Path::new("clip.mp4")), "video/mp4");
        assert_eq!(content_type(Path::new("doc.epub")), "application/epub+zip");
        assert_eq!(content_type(Path::new("x.unknown")), "application/octet-stream");
        assert_eq!(content_type(Path::new("no-extension")), "application/octet-stream");
    }
}
