//! Byte ranges and conditional requests answered from the cache: single, suffix, open and
//! multiple ranges byte-exact against the whole object, `If-Range`, 416, a range asked of an
//! object not cached yet, and 304s for `If-None-Match` / `If-Modified-Since`.

use crate::support::*;

const LAST_MODIFIED: &str = "Tue, 01 Dec 2026 10:00:00 GMT";

/// 100,000 bytes, each position's own value, so any misplaced byte shows.
fn object() -> Vec<u8> {
    (0..100_000u32).map(|i| (i % 251) as u8).collect()
}

async fn cached_origin() -> Origin {
    Origin::start(|_| {
        Reply::ok(object())
            .header("cache-control", "max-age=3600")
            .header("etag", "\"v1\"")
            .header("last-modified", LAST_MODIFIED)
            .header("content-type", "application/octet-stream")
    })
    .await
}

async fn edge_for(origin: &Origin) -> Edgehook {
    Edgehook::start(&format!(
        "[origins.app]\nurl = \"{}\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n",
        origin.url()
    ))
    .await
}

async fn get(edge: &Edgehook, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = client().get(edge.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// The parts of a multipart/byteranges body: (Content-Range, bytes).
fn parts(content_type: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .expect("a boundary")
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(start) = find(rest, delimiter.as_bytes()) {
        rest = &rest[start + delimiter.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let head_end = find(rest, b"\r\n\r\n").expect("part headers end");
        let head = String::from_utf8_lossy(&rest[..head_end]).to_string();
        let range = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-range:")
                    .map(|v| v.trim().to_string())
            })
            .expect("a Content-Range per part");
        let data_start = head_end + 4;
        let data_end = data_start + find(&rest[data_start..], format!("\r\n{delimiter}").as_bytes()).expect("part end");
        out.push((range, rest[data_start..data_end].to_vec()));
        rest = &rest[data_end + 2..];
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn ranges_of_a_cached_object_are_byte_exact() {
    let origin = cached_origin().await;
    let edge = edge_for(&origin).await;
    let whole = object();
    let full = get(&edge, "/file", &[]).await;
    assert_eq!(header(&full, "accept-ranges"), "bytes");
    assert_eq!(full.bytes().await.unwrap().as_ref(), &whole[..]);

    for (range, start, end) in [
        ("bytes=0-99", 0, 99),
        ("bytes=99990-", 99_990, 99_999),
        ("bytes=-500", 99_500, 99_999),
        ("bytes=1000-1000", 1000, 1000),
        ("bytes=99000-200000", 99_000, 99_999),
    ] {
        let response = get(&edge, "/file", &[("range", range)]).await;
        assert_eq!(response.status(), 206, "{range}");
        assert_eq!(header(&response, "x-cache"), "Hit from edgehook", "{range}");
        assert_eq!(header(&response, "accept-ranges"), "bytes", "{range}");
        assert_eq!(
            header(&response, "content-range"),
            format!("bytes {start}-{end}/100000"),
            "{range}"
        );
        assert_eq!(response.bytes().await.unwrap().as_ref(), &whole[start..=end], "{range}");
    }

    let response = get(&edge, "/file", &[("range", "bytes=0-9,50000-50009,-5")]).await;
    assert_eq!(response.status(), 206);
    let content_type = header(&response, "content-type");
    assert!(content_type.starts_with("multipart/byteranges"), "{content_type}");
    let got = parts(&content_type, &response.bytes().await.unwrap());
    let expected: Vec<(String, Vec<u8>)> = [(0, 9), (50_000, 50_009), (99_995, 99_999)]
        .iter()
        .map(|&(s, e)| (format!("bytes {s}-{e}/100000"), whole[s..=e].to_vec()))
        .collect();
    assert_eq!(got, expected);

    let unsatisfiable = get(&edge, "/file", &[("range", "bytes=200000-300000")]).await;
    assert_eq!(unsatisfiable.status(), 416);
    assert_eq!(header(&unsatisfiable, "content-range"), "bytes */100000");

    // If-Range: the range only while the validator still matches, else the whole object.
    let matching = get(&edge, "/file", &[("range", "bytes=0-9"), ("if-range", "\"v1\"")]).await;
    assert_eq!(matching.status(), 206);
    let changed = get(&edge, "/file", &[("range", "bytes=0-9"), ("if-range", "\"v0\"")]).await;
    assert_eq!(changed.status(), 200);
    assert_eq!(changed.bytes().await.unwrap().len(), 100_000);
    assert_eq!(origin.total(), 1, "every answer came from the cache");
}

#[tokio::test]
async fn a_range_of_an_object_not_cached_yet_is_answered_and_the_whole_object_cached() {
    let origin = cached_origin().await;
    let edge = edge_for(&origin).await;
    let whole = object();
    let first = get(&edge, "/cold", &[("range", "bytes=10-19")]).await;
    assert_eq!(first.status(), 206);
    assert_eq!(header(&first, "content-range"), "bytes 10-19/100000");
    assert_eq!(first.bytes().await.unwrap().as_ref(), &whole[10..20]);
    assert!(
        origin.last().headers.get("range").is_none(),
        "the origin was asked for the whole object"
    );
    let full = get(&edge, "/cold", &[]).await;
    assert_eq!(header(&full, "x-cache"), "Hit from edgehook");
    assert_eq!(full.bytes().await.unwrap().as_ref(), &whole[..]);
    assert_eq!(origin.total(), 1);
}

#[tokio::test]
async fn conditional_requests_get_304_from_the_cache() {
    let origin = cached_origin().await;
    let edge = edge_for(&origin).await;
    get(&edge, "/file", &[]).await.bytes().await.unwrap();
    for conditional in [
        ("if-none-match", "\"v1\""),
        ("if-none-match", "\"v0\", \"v1\""),
        ("if-none-match", "*"),
        ("if-modified-since", LAST_MODIFIED),
        ("if-modified-since", "Wed, 02 Dec 2026 10:00:00 GMT"),
    ] {
        let response = get(&edge, "/file", &[conditional]).await;
        assert_eq!(response.status(), 304, "{conditional:?}");
        assert_eq!(header(&response, "etag"), "\"v1\"", "{conditional:?}");
        assert!(response.bytes().await.unwrap().is_empty());
    }
    for unmet in [
        ("if-none-match", "\"v0\""),
        ("if-modified-since", "Mon, 30 Nov 2026 10:00:00 GMT"),
    ] {
        let response = get(&edge, "/file", &[unmet]).await;
        assert_eq!(response.status(), 200, "{unmet:?}");
        assert_eq!(response.bytes().await.unwrap().len(), 100_000);
    }
    assert_eq!(origin.total(), 1, "every answer came from the cache");
}

/// Ranges are honoured however the response is cached: an uncacheable response on a cached
/// behavior, and a behavior with the cache off (the origin answers the range itself).
#[tokio::test]
async fn ranges_are_honoured_on_uncacheable_responses_and_uncached_behaviors() {
    let origin = Origin::start(|seen| {
        let whole = object();
        match seen.headers.get("range").map(|r| r.to_str().unwrap().to_string()) {
            Some(range) if range == "bytes=10-19" => Reply::ok(whole[10..20].to_vec())
                .status(206)
                .header("content-range", "bytes 10-19/100000")
                .header("accept-ranges", "bytes")
                .header("cache-control", "no-store"),
            _ => Reply::ok(whole)
                .header("cache-control", "no-store")
                .header("accept-ranges", "bytes"),
        }
    })
    .await;
    let edge = Edgehook::start(&format!(
        "[origins.app]\nurl = \"{}\"\n[[behaviors]]\npath = \"/off/*\"\norigin = \"app\"\ncache = false\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n",
        origin.url()
    ))
    .await;
    for path in ["/off/file", "/file"] {
        let response = get(&edge, path, &[("range", "bytes=10-19")]).await;
        assert_eq!(response.status(), 206, "{path}");
        assert_eq!(header(&response, "content-range"), "bytes 10-19/100000", "{path}");
        assert_eq!(header(&response, "accept-ranges"), "bytes", "{path}");
        assert_eq!(response.bytes().await.unwrap().as_ref(), &object()[10..20], "{path}");
    }
}
