//! Access logs in the formats log tools read (JSON, combined, CloudFront's), and log files
//! that logrotate can move (reopened on SIGUSR1).

use crate::support::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// CloudFront's 33 standard log fields, as AWS documents them, in order.
const CLOUDFRONT_FIELDS: &str = "date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len sc-range-start sc-range-end";

fn config(origin: &Origin, log: &str) -> String {
    format!(
        "[log]\n{log}\n[origins.app]\nurl = \"{}\"\n[[behaviors]]\npath = \"/x/*\"\norigin = \"app\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\ncache = false\n",
        origin.url()
    )
}

/// Waits (up to 5 s) until `path` has `lines` lines that are not headers.
async fn wait_lines(path: &Path, lines: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let found: Vec<String> = text.lines().filter(|l| !l.starts_with('#')).map(String::from).collect();
        if found.len() >= lines {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{} has {} lines, not {lines}:\n{text}",
            path.display(),
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn access_file(edge: &Edgehook) -> PathBuf {
    edge.log.parent().unwrap().join("access.log")
}

#[tokio::test]
async fn json_lines_carry_the_request_and_what_became_of_it() {
    let origin = Origin::start(|_| Reply::ok("hello").header("cache-control", "max-age=60")).await;
    let edge = Edgehook::start(&config(
        &origin,
        "access_format = \"json\"\naccess_file = \"{dir}/access.log\"",
    ))
    .await;
    let response = client()
        .get(edge.url("/x/page?q=1"))
        .header("user-agent", "edgehook-test")
        .send()
        .await
        .unwrap();
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_string();
    response.text().await.unwrap();
    let lines = wait_lines(&access_file(&edge), 1).await;
    let line: serde_json::Value = serde_json::from_str(&lines[0]).expect("a JSON line");
    assert_eq!(line["request_id"], request_id.as_str());
    assert_eq!(line["method"], "GET");
    assert_eq!(line["uri"], "/x/page?q=1");
    assert_eq!(line["protocol"], "HTTP/1.1");
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes"], 5);
    assert!(line["bytes_sent"].as_u64().unwrap() > 5, "the head counts too");
    assert_eq!(line["cache"], "miss");
    assert_eq!(line["result_type"], "Miss");
    assert_eq!(line["behavior"], "/x/*");
    assert_eq!(line["origin"], "app");
    assert_eq!(line["client_ip"], "127.0.0.1");
    assert_eq!(line["user_agent"], "edgehook-test");
    assert!(line["duration_ms"].as_f64().unwrap() >= line["first_byte_ms"].as_f64().unwrap());
    let time = line["time"].as_str().unwrap();
    assert!(time.len() >= 20 && time.as_bytes()[10] == b'T', "RFC 3339: {time}");
}

#[tokio::test]
async fn combined_lines_are_as_nginx_writes_them() {
    let origin = Origin::start(|_| Reply::ok("hello")).await;
    let edge = Edgehook::start(&config(
        &origin,
        "access_format = \"combined\"\naccess_file = \"{dir}/access.log\"",
    ))
    .await;
    let response = client()
        .get(edge.url("/plain?a=b"))
        .header("user-agent", "agent \"quoted\"")
        .header("referer", "https://example.test/from")
        .send()
        .await
        .unwrap();
    response.text().await.unwrap();
    let lines = wait_lines(&access_file(&edge), 1).await;
    let line = &lines[0];
    let (start, rest) = line.split_once(" [").expect("a timestamp");
    assert_eq!(start, "127.0.0.1 - -");
    let (stamp, rest) = rest.split_once("] ").expect("a timestamp's end");
    // 06/Dec/2026:03:04:05 +0000
    assert_eq!(stamp.len(), 26, "{stamp}");
    assert!(stamp.ends_with(" +0000"), "{stamp}");
    assert_eq!(&stamp[2..3], "/");
    assert_eq!(
        rest,
        "\"GET /plain?a=b HTTP/1.1\" 200 5 \"https://example.test/from\" \"agent \\x22quoted\\x22\""
    );
}

#[tokio::test]
async fn cloudfront_logs_have_cloudfronts_header_and_fields() {
    let (cert, key) = self_signed();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), &key).unwrap();
    let origin = Origin::start(|_| {
        Reply::ok("hello from the origin")
            .header("cache-control", "max-age=60")
            .header("content-type", "text/plain")
    })
    .await;
    let rest = format!(
        "[server.tls]\nlisten = [\"{{tls}}\"]\ncert = \"{{dir}}/cert.pem\"\nkey = \"{{dir}}/key.pem\"\n{}",
        config(
            &origin,
            "access_format = \"cloudfront\"\naccess_file = \"{dir}/access.log\""
        )
    );
    let edge = Edgehook::start_in(dir, "", &rest).await;
    let mut request_ids = Vec::new();
    for _ in 0..2 {
        let response = client()
            .get(edge.url("/x/a%20b.txt?q=1%202&r"))
            .header("user-agent", "Mozilla/5.0 (X11; Linux)")
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .header("x-forwarded-for", "192.0.2.7")
            .send()
            .await
            .unwrap();
        request_ids.push(response.headers()["x-request-id"].to_str().unwrap().to_string());
        response.text().await.unwrap();
    }
    let root = reqwest::Certificate::from_pem(cert.as_bytes()).unwrap();
    let https = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(root)
        .build()
        .unwrap();
    let response = https
        .get(format!("https://localhost:{}/x/a%20b.txt?q=1%202&r", edge.tls.port()))
        .header("range", "bytes=0-4")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 206);
    response.text().await.unwrap();

    let path = access_file(&edge);
    let lines = wait_lines(&path, 3).await;
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with(&format!("#Version: 1.0\n#Fields: {CLOUDFRONT_FIELDS}\n")),
        "the file starts with CloudFront's header:\n{text}"
    );
    let names: Vec<&str> = CLOUDFRONT_FIELDS.split(' ').collect();
    let rows: Vec<std::collections::HashMap<&str, &str>> = lines
        .iter()
        .map(|line| {
            let values: Vec<&str> = line.split('\t').collect();
            assert_eq!(values.len(), 33, "33 tab-separated fields: {line:?}");
            names.iter().copied().zip(values).collect()
        })
        .collect();
    let (miss, hit, tls) = (&rows[0], &rows[1], &rows[2]);
    let date = miss["date"];
    assert!(
        date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-',
        "{date}"
    );
    assert_eq!(miss["time"].len(), 8);
    assert_eq!(miss["c-ip"], "127.0.0.1");
    assert_eq!(miss["cs-method"], "GET");
    assert_eq!(miss["cs-uri-stem"], "/x/a%20b.txt");
    assert_eq!(
        miss["cs-uri-query"], "q=1%25202&r",
        "the query's % is encoded as CloudFront does"
    );
    assert_eq!(miss["sc-status"], "200");
    assert_eq!(miss["cs(User-Agent)"], "Mozilla/5.0%20(X11;%20Linux)");
    assert_eq!(miss["cs(Cookie)"], "a=1;%20b=2");
    assert_eq!(miss["cs(Referer)"], "-");
    assert_eq!(miss["x-forwarded-for"], "192.0.2.7");
    assert_eq!(miss["x-edge-result-type"], "Miss");
    assert_eq!(miss["x-edge-response-result-type"], "Miss");
    assert_eq!(miss["x-edge-detailed-result-type"], "Miss");
    assert_eq!(hit["x-edge-result-type"], "Hit");
    assert_eq!(miss["x-edge-request-id"], request_ids[0]);
    assert_eq!(hit["x-edge-request-id"], request_ids[1]);
    assert_eq!(miss["x-host-header"], format!("127.0.0.1:{}", edge.http.port()));
    assert_eq!(miss["cs-protocol"], "http");
    assert_eq!(miss["cs-protocol-version"], "HTTP/1.1");
    assert_eq!(miss["ssl-protocol"], "-");
    assert_eq!(miss["sc-content-type"], "text/plain");
    assert_eq!(miss["sc-content-len"], "21");
    assert!(miss["sc-bytes"].parse::<u64>().unwrap() > 21, "head and body");
    assert!(miss["cs-bytes"].parse::<u64>().unwrap() > 50, "the request head");
    assert!(miss["c-port"].parse::<u16>().is_ok());
    let taken: f64 = miss["time-taken"].parse().unwrap();
    let first_byte: f64 = miss["time-to-first-byte"].parse().unwrap();
    assert!(first_byte <= taken && taken < 5.0, "{first_byte} {taken}");
    assert_eq!(miss["fle-status"], "-");
    assert_eq!(miss["sc-range-start"], "-");
    assert_eq!(tls["cs-protocol"], "https");
    assert_eq!(tls["cs-protocol-version"], "HTTP/2.0");
    assert_eq!(tls["ssl-protocol"], "TLSv1.3");
    assert!(tls["ssl-cipher"].starts_with("TLS_AES_") || tls["ssl-cipher"] == "TLS_CHACHA20_POLY1305_SHA256");
    assert_eq!(tls["sc-status"], "206");
    assert_eq!(tls["x-edge-result-type"], "Miss", "another host, another cache key");
    assert_eq!(tls["x-host-header"], format!("localhost:{}", edge.tls.port()));
    assert_eq!(tls["sc-range-start"], "0");
    assert_eq!(tls["sc-range-end"], "4");
}

#[tokio::test]
async fn sigusr1_opens_the_log_files_again_after_logrotate_moved_them() {
    let origin = Origin::start(|_| Reply::ok("hello")).await;
    let edge = Edgehook::start(&config(
        &origin,
        "access_format = \"cloudfront\"\naccess_file = \"{dir}/access.log\"\nfile = \"{dir}/edgehook-diagnostic.log\"",
    ))
    .await;
    let dir = edge.log.parent().unwrap().to_path_buf();
    let access = access_file(&edge);
    let diagnostic = dir.join("edgehook-diagnostic.log");
    get_text(&edge.url("/before")).await;
    wait_lines(&access, 1).await;
    assert!(
        std::fs::read_to_string(&diagnostic)
            .unwrap()
            .contains("edgehook serving"),
        "the diagnostic log goes to its file"
    );

    // What logrotate does: move the files away, then signal.
    std::fs::rename(&access, dir.join("access.log.1")).unwrap();
    std::fs::rename(&diagnostic, dir.join("edgehook-diagnostic.log.1")).unwrap();
    edge.signal(libc::SIGUSR1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !diagnostic.exists() {
        assert!(Instant::now() < deadline, "the diagnostic log was not opened again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    get_text(&edge.url("/after")).await;
    let after = wait_lines(&access, 1).await;
    assert_eq!(after.len(), 1);
    assert!(after[0].contains("\t/after\t"), "{after:?}");
    assert!(
        std::fs::read_to_string(&access)
            .unwrap()
            .starts_with("#Version: 1.0\n#Fields: "),
        "a new CloudFront file starts with its header"
    );
    let before = std::fs::read_to_string(dir.join("access.log.1")).unwrap();
    assert!(before.contains("\t/before\t") && !before.contains("/after"), "{before}");
    assert!(
        std::fs::read_to_string(&diagnostic)
            .unwrap()
            .contains("log files opened again"),
        "the diagnostic log goes on in its new file"
    );
    // The proxy kept serving throughout.
    let status = client().get(edge.url("/still")).send().await.unwrap().status();
    assert_eq!(status, 200);
    edge.signal(libc::SIGTERM);
}

#[tokio::test]
async fn an_access_log_that_cannot_be_opened_stops_the_start_with_a_clear_error() {
    let origin = Origin::start(|_| Reply::ok("hello")).await;
    let dir = tempfile::tempdir().unwrap();
    let mut edge = Edgehook::spawn_in(
        dir,
        "",
        &config(&origin, "access_file = \"{dir}/no/such/directory/access.log\""),
    );
    let code = tokio::task::spawn_blocking(move || {
        let code = edge.wait_exit(Duration::from_secs(20));
        (code, edge.log_text())
    })
    .await
    .unwrap();
    assert_eq!(code.0, Some(1), "exit status; log:\n{}", code.1);
    assert!(
        code.1.contains("cannot open the access log") && code.1.contains("access.log"),
        "{}",
        code.1
    );
}
