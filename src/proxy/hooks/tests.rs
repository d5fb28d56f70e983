//! Events built from pingora's headers, and outcomes applied back to them.

use super::*;
use crate::edge::event::{self, HeaderEntry};
use crate::edge::result::ChangedHeaders;
use pingora::http::{RequestHeader, ResponseHeader};

fn request() -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/a?x=1", None).unwrap();
    req.append_header("Host", "example.com").unwrap();
    req.append_header("Cookie", "a=1").unwrap();
    req.append_header("Connection", "keep-alive").unwrap();
    req.append_header("X-Forwarded-Proto", "https").unwrap();
    req
}

#[test]
fn events_hide_disallowed_headers_and_keep_case() {
    let seen = request_of(&request(), "192.0.2.1");
    assert_eq!(seen.uri, "/a");
    assert_eq!(seen.querystring, "x=1");
    assert_eq!(seen.client_ip, "192.0.2.1");
    assert_eq!(seen.headers["host"][0].key.as_deref(), Some("Host"));
    assert!(!seen.headers.contains_key("connection"));
    assert!(!seen.headers.contains_key("x-forwarded-proto"));
}

/// `before` without its cookie and with an X-Variant header.
fn varied(before: &event::Request) -> event::Request {
    let mut after = before.clone();
    after.headers.remove("cookie");
    after.headers.insert(
        "x-variant".into(),
        vec![HeaderEntry {
            key: Some("X-Variant".into()),
            value: "b".into(),
        }],
    );
    after
}

#[test]
fn outcomes_apply_to_the_request() {
    let mut req = request();
    let before = request_of(&req, "192.0.2.1");
    let mut after = varied(&before);
    after.uri = "/b".into();
    after.querystring = String::new();
    apply_request(&mut req, &before, &after, &ChangedHeaders::Any).unwrap();
    assert_eq!(req.uri.to_string(), "/b");
    assert!(req.headers.get("cookie").is_none());
    assert_eq!(req.headers["x-variant"], "b");
    assert_eq!(req.headers["connection"], "keep-alive", "hidden headers stay");
    assert_eq!(req.headers["host"], "example.com");
}

/// With the changed names given, only those are compared and applied: a header left out of
/// them stays as the proxy holds it.
#[test]
fn only_the_changed_headers_apply() {
    let mut req = request();
    let before = request_of(&req, "192.0.2.1");
    let mut after = varied(&before);
    after.headers.get_mut("host").unwrap()[0].value = "other.example".into();
    let changed = ChangedHeaders::Only(vec!["cookie".into(), "x-variant".into()]);
    apply_request(&mut req, &before, &after, &changed).unwrap();
    assert!(req.headers.get("cookie").is_none());
    assert_eq!(req.headers["x-variant"], "b");
    assert_eq!(req.headers["host"], "example.com", "not named as changed");
    apply_request(&mut req, &before, &after, &ChangedHeaders::Any).unwrap();
    assert_eq!(req.headers["host"], "other.example");
}

#[test]
fn outcomes_apply_to_the_response() {
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.append_header("Content-Type", "text/html").unwrap();
    resp.append_header("Set-Cookie", "a=1").unwrap();
    let before = response_of(&resp);
    assert_eq!(before.status_description, "OK");
    let mut after = before.clone();
    after.headers.insert(
        "set-cookie".into(),
        vec![
            HeaderEntry {
                key: Some("Set-Cookie".into()),
                value: "a=1".into(),
            },
            HeaderEntry {
                key: Some("Set-Cookie".into()),
                value: "b=2".into(),
            },
        ],
    );
    let outcome = ResponseOutcome {
        response: after,
        status: 404,
        body: None,
        changed: ChangedHeaders::Any,
    };
    apply_response(&mut resp, &before, &outcome).unwrap();
    assert_eq!(resp.status.as_u16(), 404);
    assert_eq!(resp.headers.get_all("set-cookie").iter().count(), 2);
    assert_eq!(resp.headers["content-type"], "text/html");
}
