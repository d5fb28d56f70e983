use super::*;
use crate::edge::sample::{sample, SampleOptions};
use serde_json::json;

fn event(kind: EventType) -> Event {
    sample(kind, &SampleOptions::default())
}

/// The event's request or response as JSON, changed by `edit`.
fn edited(event: &Event, edit: impl FnOnce(&mut Value)) -> Value {
    let cf = event.cf();
    let mut value = if event.event_type().is_request() {
        serde_json::to_value(&cf.request).unwrap()
    } else {
        serde_json::to_value(cf.response.as_ref().unwrap()).unwrap()
    };
    edit(&mut value);
    value
}

/// Validates a result given as a serde_json value the way the proxy does: from its JSON text.
fn validate(event: &Event, result: &Value) -> Result<Outcome, ValidationError> {
    super::validate(event, &result.to_string())
}

fn error(event: &Event, result: &Value) -> String {
    validate(event, result).expect_err("the result should be refused").0
}

#[test]
fn unchanged_results_are_accepted_for_every_event() {
    for kind in EventType::ALL {
        let e = event(kind);
        let outcome = validate(&e, &edited(&e, |_| {})).unwrap();
        match outcome {
            Outcome::Request(RequestOutcome::Continue { request, body, .. }) => {
                assert_eq!(request, e.cf().request);
                assert!(body.is_none());
            }
            Outcome::Response(ResponseOutcome {
                response, status, body, ..
            }) => {
                assert_eq!(&response, e.cf().response.as_ref().unwrap());
                assert_eq!(status, 200);
                assert!(body.is_none());
            }
            Outcome::Request(RequestOutcome::Respond(_)) => panic!("no status was set"),
        }
    }
}

#[test]
fn non_objects_and_missing_results() {
    let e = event(EventType::ViewerRequest);
    assert!(error(&e, &json!("text")).contains("must be an object type"));
    assert!(error(&e, &json!([1])).contains("must be an object type"));
    assert!(error(&e, &Value::Null).contains("returned no result"));
    assert!(error(&e, &json!({})).contains("no `uri`"));
    let unparsable = super::validate(&e, "{\"uri\": ").expect_err("not JSON").0;
    assert!(unparsable.contains("not parsable"), "{unparsable}");
}

#[test]
fn request_changes_and_key_filling() {
    let e = event(EventType::ViewerRequest);
    let result = edited(&e, |r| {
        r["uri"] = json!("/new/path");
        r["querystring"] = json!("a=1&b=2");
        r["headers"]["x-variant"] = json!([{ "value": "b" }]);
        r["headers"]["accept"] = json!([]);
    });
    let Outcome::Request(RequestOutcome::Continue { request, .. }) = validate(&e, &result).unwrap() else {
        panic!("request expected")
    };
    assert_eq!(request.uri, "/new/path");
    assert_eq!(request.querystring, "a=1&b=2");
    assert_eq!(request.headers["x-variant"][0].key.as_deref(), Some("X-Variant"));
    assert!(
        !request.headers.contains_key("accept"),
        "an empty array removes the header"
    );
}

#[test]
fn read_only_fields() {
    let e = event(EventType::ViewerRequest);
    assert!(error(&e, &edited(&e, |r| r["method"] = json!("POST"))).contains("`method` is read-only"));
    assert!(error(&e, &edited(&e, |r| r["clientIp"] = json!("1.2.3.4"))).contains("`clientIp` is read-only"));
}

#[test]
fn uri_and_query_rules() {
    let e = event(EventType::ViewerRequest);
    assert!(error(&e, &edited(&e, |r| r["uri"] = json!("no-slash"))).contains("must start with `/`"));
    assert!(error(&e, &edited(&e, |r| r["uri"] = json!("/a?b=1"))).contains("`?`"));
    assert!(error(&e, &edited(&e, |r| r["uri"] = json!("/a b"))).contains("spaces"));
    assert!(error(&e, &edited(&e, |r| r["querystring"] = json!("a=1#x"))).contains("`#`"));
    assert!(error(&e, &edited(&e, |r| r["uri"] = json!(format!("/{}", "a".repeat(9000))))).contains("8192"));
}

#[test]
fn header_structure_rules() {
    let e = event(EventType::ViewerRequest);
    let bad = |edit: fn(&mut Value)| error(&e, &edited(&e, edit));
    assert!(bad(|r| r["headers"]["x-a"] = json!({"key": "X-A", "value": "1"})).contains("must be an array"));
    assert!(bad(|r| r["headers"]["x-a"] = json!([{"key": "X-A", "value": 1}])).contains("must be a string"));
    assert!(bad(|r| r["headers"]["x-a"] = json!([{"key": "X-A"}])).contains("no `value`"));
    assert!(bad(|r| r["headers"]["bad name"] = json!([{"value": "1"}])).contains("invalid header name"));
    assert!(bad(|r| r["headers"]["x-a"] = json!([{"value": "1\r\nSet-Cookie: evil=1"}])).contains("header injection"));
    assert!(bad(|r| r["headers"] = json!("nope")).contains("must be an object"));
}

/// What AWS accepts and its own samples rely on (lambda-edge.md 1.4): a map key in any case is
/// the header of its lowercase name, entries under two spellings are all kept, and a `key`
/// naming another header gives way to the map key's Title-Case.
#[test]
fn header_names_and_keys_are_taken_as_aws_takes_them() {
    let e = event(EventType::ViewerRequest);
    let headers = |edit: fn(&mut Value)| match validate(&e, &edited(&e, edit)) {
        Ok(Outcome::Request(RequestOutcome::Continue { request, .. })) => request.headers,
        other => panic!("accepted as a request: {other:?}"),
    };
    let entries = |h: &Headers, name: &str| -> Vec<(String, String)> {
        h[name]
            .iter()
            .map(|entry| (entry.key.clone().unwrap_or_default(), entry.value.clone()))
            .collect()
    };
    let pair = |key: &str, value: &str| (key.to_string(), value.to_string());

    // The developer guide's "add security headers" samples write Title-Case map keys.
    let mixed = headers(|r| r["headers"]["X-Frame-Options"] = json!([{"key": "X-Frame-Options", "value": "DENY"}]));
    assert_eq!(entries(&mixed, "x-frame-options"), [pair("X-Frame-Options", "DENY")]);
    assert!(!mixed.contains_key("X-Frame-Options"));

    let twice = headers(|r| {
        r["headers"]["x-a"] = json!([{"value": "1"}]);
        r["headers"]["X-A"] = json!([{"value": "2"}]);
    });
    assert_eq!(entries(&twice, "x-a").len(), 2, "both spellings' entries are kept");

    // "Override a response header": an entry copied with its key under another name.
    let copied = headers(|r| r["headers"]["x-b"] = json!([{"key": "User-Agent", "value": "copied"}]));
    assert_eq!(entries(&copied, "x-b"), [pair("X-B", "copied")]);
    let respelled = headers(|r| r["headers"]["x-b"] = json!([{"key": "x-B", "value": "kept"}]));
    assert_eq!(entries(&respelled, "x-b"), [pair("x-B", "kept")]);

    // What AWS refuses stays refused under any spelling.
    assert!(error(
        &e,
        &edited(&e, |r| r["headers"]["Connection"] = json!([{"value": "close"}]))
    )
    .contains("not allowed"));
    let host = error(
        &e,
        &edited(&e, |r| r["headers"]["HOST"] = json!([{"value": "evil.example"}])),
    );
    assert!(host.contains("read-only header: Host"), "{host}");
}

#[test]
fn disallowed_and_read_only_headers() {
    let e = event(EventType::ViewerRequest);
    assert!(error(
        &e,
        &edited(&e, |r| r["headers"]["connection"] = json!([{"value": "close"}]))
    )
    .contains("not allowed"));
    assert!(error(
        &e,
        &edited(&e, |r| r["headers"]["x-amz-cf-pop"] = json!([{"value": "x"}]))
    )
    .contains("not allowed"));
    let host_changed = error(
        &e,
        &edited(&e, |r| r["headers"]["host"] = json!([{"value": "evil.example"}])),
    );
    assert!(host_changed.contains("read-only header: Host"), "{host_changed}");
    let host_deleted = error(
        &e,
        &edited(&e, |r| {
            r["headers"].as_object_mut().unwrap().remove("host");
        }),
    );
    assert!(host_deleted.contains("read-only header: Host"));
    assert!(
        error(&e, &edited(&e, |r| r["headers"]["via"] = json!([{"value": "1.1 x"}]))).contains("read-only header: Via")
    );
    assert!(error(
        &e,
        &edited(&e, |r| r["headers"]["cloudfront-viewer-country"] =
            json!([{"value": "FR"}]))
    )
    .contains("CloudFront-Viewer-Country"));
    // Host is writable at origin-request.
    let o = event(EventType::OriginRequest);
    assert!(validate(
        &o,
        &edited(&o, |r| r["headers"]["host"] = json!([{"value": "other.example"}]))
    )
    .is_ok());
    assert!(error(
        &o,
        &edited(&o, |r| r["headers"]["if-none-match"] = json!([{"value": "\"x\""}]))
    )
    .contains("If-None-Match"));
    // Origin-response: Transfer-Encoding read-only, deleting counts.
    let mut or = event(EventType::OriginResponse);
    or.cf_mut().response.as_mut().unwrap().headers.insert(
        "transfer-encoding".into(),
        vec![HeaderEntry {
            key: Some("Transfer-Encoding".into()),
            value: "chunked".into(),
        }],
    );
    let deleted = error(
        &or,
        &edited(&or, |r| {
            r["headers"].as_object_mut().unwrap().remove("transfer-encoding");
        }),
    );
    assert!(deleted.contains("Transfer-Encoding"));
    // Viewer-response: content-length read-only.
    let vr = event(EventType::ViewerResponse);
    assert!(error(
        &vr,
        &edited(&vr, |r| r["headers"]["content-length"] = json!([{"value": "1"}]))
    )
    .contains("Content-Length"));
}

#[test]
fn generated_responses() {
    let e = event(EventType::ViewerRequest);
    let result = json!({
        "status": "302",
        "statusDescription": "Found",
        "headers": { "location": [{ "value": "https://example.com/" }], "content-length": [{ "value": "999" }] }
    });
    let Outcome::Request(RequestOutcome::Respond(g)) = validate(&e, &result).unwrap() else {
        panic!("generated expected")
    };
    assert_eq!(g.status, 302);
    assert_eq!(g.headers["location"][0].key.as_deref(), Some("Location"));
    assert!(
        !g.headers.contains_key("content-length"),
        "framing headers are the proxy's"
    );
    let Outcome::Request(RequestOutcome::Respond(g)) =
        validate(&e, &json!({"status": 200, "body": "aGk=", "bodyEncoding": "base64"})).unwrap()
    else {
        panic!("generated expected")
    };
    assert_eq!(g.body, b"hi");
    assert!(error(&e, &json!({"status": "99"})).contains("200 to 599"));
    assert!(error(&e, &json!({"status": 600})).contains("200 to 599"));
    assert!(error(&e, &json!({"status": "abc"})).contains("200 to 599"));
    assert!(error(&e, &json!({"status": 200, "body": "***", "bodyEncoding": "base64"})).contains("not valid base64"));
    assert!(error(&e, &json!({"status": 200, "body": 5})).contains("The body is not a string"));
    assert!(error(&e, &json!({"status": 204, "body": "x"})).contains("204"));
    assert!(error(&e, &json!({"status": 200, "headers": {"x-cache": [{"value": "1"}]}})).contains("not allowed"));
    let big = "x".repeat(41 * 1024);
    assert!(error(&e, &json!({"status": 200, "body": big})).contains("over the 40960-byte limit"));
    // The origin-request limit is 1 MB.
    let o = event(EventType::OriginRequest);
    assert!(validate(&o, &json!({"status": 200, "body": big})).is_ok());
    assert!(error(&o, &json!({"status": 200, "body": "x".repeat(1024 * 1024 + 1)})).contains("1048576"));
}

#[test]
fn response_events() {
    let or = event(EventType::OriginResponse);
    let changed = edited(&or, |r| {
        r["status"] = json!(404);
        r["headers"]["cache-control"] = json!([{"value": "max-age=60"}]);
        r["body"] = json!("replaced");
    });
    let Outcome::Response(ResponseOutcome {
        status, body, response, ..
    }) = validate(&or, &changed).unwrap()
    else {
        panic!("response expected")
    };
    assert_eq!((status, response.status.as_str()), (404, "404"));
    assert_eq!(body.as_deref(), Some(&b"replaced"[..]));
    assert!(error(&or, &edited(&or, |r| r["status"] = json!(700))).contains("200 to 599"));
    let vr = event(EventType::ViewerResponse);
    assert!(error(&vr, &edited(&vr, |r| r["status"] = json!("404"))).contains("cannot be changed at viewer-response"));
    assert!(
        validate(&vr, &edited(&vr, |r| r["status"] = json!(200))).is_ok(),
        "the same status as a number is fine"
    );
    assert!(error(&vr, &edited(&vr, |r| r["body"] = json!("x"))).contains("cannot replace the body"));
    assert!(error(&vr, &json!({"status": "200"})).contains("no `headers`"));
}

#[test]
fn include_body() {
    let mut e = event(EventType::ViewerRequest);
    e.cf_mut().request.body = Some(Body {
        input_truncated: false,
        action: "read-only".into(),
        encoding: "base64".into(),
        data: "aGk=".into(),
    });
    let replaced = edited(&e, |r| {
        r["body"] = json!({"action": "replace", "encoding": "text", "data": "new body"})
    });
    let Outcome::Request(RequestOutcome::Continue { body, request, .. }) = validate(&e, &replaced).unwrap() else {
        panic!("request expected")
    };
    assert_eq!(body.as_deref(), Some(&b"new body"[..]));
    assert_eq!(request.body.unwrap().action, "replace");
    let b64 = edited(&e, |r| {
        r["body"] = json!({"action": "replace", "encoding": "base64", "data": "bmV3"})
    });
    let Outcome::Request(RequestOutcome::Continue { body, .. }) = validate(&e, &b64).unwrap() else {
        panic!("request expected")
    };
    assert_eq!(body.as_deref(), Some(&b"new"[..]));
    let ignored = edited(&e, |r| r["body"]["data"] = json!("Y2hhbmdlZA=="));
    let Outcome::Request(RequestOutcome::Continue { body, .. }) = validate(&e, &ignored).unwrap() else {
        panic!("request expected")
    };
    assert!(body.is_none(), "read-only: the original body goes on");
    assert!(error(
        &e,
        &edited(&e, |r| r["body"] =
            json!({"action": "replace", "encoding": "base64", "data": "!!"}))
    )
    .contains("not valid base64"));
    assert!(error(&e, &edited(&e, |r| r["body"] = json!({"action": "delete"}))).contains("`read-only` or `replace`"));
    assert!(error(&e, &edited(&e, |r| r["body"]["inputTruncated"] = json!(true))).contains("read-only"));
    let too_big = "x".repeat(40 * 1024 + 1);
    assert!(error(
        &e,
        &edited(&e, |r| r["body"] =
            json!({"action": "replace", "encoding": "text", "data": too_big}))
    )
    .contains("larger than"));
    let plain = event(EventType::ViewerRequest);
    assert!(error(
        &plain,
        &edited(&plain, |r| r["body"] = json!({"action": "replace", "data": "x"}))
    )
    .contains("include_body"));
}

#[test]
fn origin_changes() {
    let o = event(EventType::OriginRequest);
    let result = edited(&o, |r| {
        r["origin"] = json!({"custom": {"domainName": "Other.Example", "port": 8443, "protocol": "https", "path": "/base",
            "customHeaders": {"x-origin-secret": [{"value": "s"}]}}});
    });
    let Outcome::Request(RequestOutcome::Continue { request, .. }) = validate(&o, &result).unwrap() else {
        panic!("request expected")
    };
    let Some(Origin::Custom(custom)) = request.origin else {
        panic!("custom origin expected")
    };
    assert_eq!(
        (custom.domain_name.as_str(), custom.port, custom.path.as_str()),
        ("other.example", 8443, "/base")
    );
    assert_eq!(
        custom.custom_headers["x-origin-secret"][0].key.as_deref(),
        Some("X-Origin-Secret")
    );
    let bad = |origin: Value| error(&o, &edited(&o, |r| r["origin"] = origin));
    assert!(bad(json!({"custom": {"domainName": "a:80"}})).contains("DNS name"));
    assert!(bad(json!({"custom": {"domainName": "10.0.0.1"}})).contains("not an IP"));
    assert!(bad(json!({"custom": {"domainName": "a.example", "port": 81}})).contains("80, 443 or 1024-65535"));
    assert!(bad(json!({"custom": {"domainName": "a.example", "protocol": "ftp"}})).contains("`http` or `https`"));
    assert!(bad(json!({"custom": {"domainName": "a.example", "path": "/x/"}})).contains("not end with `/`"));
    assert!(bad(json!({"custom": {"domainName": "a.example", "readTimeout": 500}})).contains("1 to 120"));
    assert!(
        bad(json!({"custom": {"domainName": "a.example", "customHeaders": {"cookie": [{"value": "x"}]}}}))
            .contains("cannot be an origin custom header")
    );
    assert!(
        bad(json!({"custom": {"domainName": "a.example", "customHeaders": {"user-agent": [{"value": "x"}]}}}))
            .contains("already a request header")
    );
    assert!(bad(json!({"custom": {}, "s3": {}})).contains("exactly one"));
    assert!(
        bad(json!({"s3": {"domainName": "bucket.s3.amazonaws.com", "authMethod": "origin-access-identity"}}))
            .contains("region")
    );
    let v = event(EventType::ViewerRequest);
    assert!(error(
        &v,
        &edited(&v, |r| r["origin"] = json!({"custom": {"domainName": "a.example"}}))
    )
    .contains("origin-request"));
}

#[test]
fn outcomes_render_as_json() {
    let e = event(EventType::ViewerRequest);
    let Ok(outcome) = validate(&e, &json!({"status": 200, "body": "hello"})) else {
        panic!("valid")
    };
    let json = outcome.to_json();
    assert_eq!(json["status"], "200");
    assert_eq!(json["body"], "hello");
    assert_eq!(json["bodyEncoding"], "text");
}

#[test]
fn request_heads_stay_within_limits() {
    let e = event(EventType::ViewerRequest);
    let big = edited(&e, |r| {
        for i in 0..300 {
            r["headers"][format!("x-h{i}")] = json!([{ "value": "v".repeat(100) }]);
        }
    });
    assert!(error(&e, &big).contains("20480-byte limit"));
    let fine = edited(&e, |r| r["headers"]["x-h"] = json!([{ "value": "v".repeat(1000) }]));
    assert!(validate(&e, &fine).is_ok());
}

#[test]
fn headers_kept_as_given_are_put_back_from_the_event() {
    let e = event(EventType::ViewerRequest);
    let written = edited(&e, |r| {
        r["headers"]
            .as_object_mut()
            .unwrap()
            .retain(|name, _| name == "user-agent");
    });
    let Outcome::Request(RequestOutcome::Continue { request, .. }) =
        super::validate(&e, &format!("Kaccept,host\n{written}")).unwrap()
    else {
        panic!("a request")
    };
    assert_eq!(request.headers, e.cf().request.headers);
    let unknown = super::validate(&e, &format!("Kx-unknown\n{written}")).unwrap_err().0;
    assert!(unknown.contains("does not have"), "{unknown}");
    let twice = super::validate(&e, &format!("Kuser-agent\n{written}")).unwrap_err().0;
    assert!(twice.contains("both kept and written"), "{twice}");

    // Kept headers are checked as if written out: an event from a file may hold a bad name.
    let mut odd = e.clone();
    let entries = odd.cf_mut().request.headers.remove("accept").unwrap();
    odd.cf_mut().request.headers.insert("bad name".into(), entries);
    let full = error(&odd, &edited(&odd, |_| {}));
    assert!(full.contains("invalid header name"), "{full}");
    let kept = super::validate(
        &odd,
        &format!(
            "Kbad name\n{}",
            edited(&odd, |r| {
                r["headers"].as_object_mut().unwrap().remove("bad name");
            })
        ),
    )
    .unwrap_err()
    .0;
    assert_eq!(kept, full);
}

#[test]
fn headers_are_listable_when_their_names_are_tokens() {
    let e = event(EventType::ViewerRequest);
    assert!(headers_listable(&e));
    assert!(headers_listable(&event(EventType::OriginResponse)));
    let mut odd = e.clone();
    odd.cf_mut().request.headers.insert("a,b".into(), vec![]);
    assert!(!headers_listable(&odd), "a name that is not a token");
    let mut response = event(EventType::ViewerResponse);
    response
        .cf_mut()
        .response
        .as_mut()
        .unwrap()
        .headers
        .insert("x\ny".into(), vec![]);
    assert!(
        !headers_listable(&response),
        "the response's names count in response events"
    );
}

#[test]
fn a_body_after_the_json_is_the_results_body() {
    let e = event(EventType::ViewerRequest);
    let Outcome::Request(RequestOutcome::Respond(g)) =
        super::validate(&e, "{\"status\":\"200\"}\0raw \"body\"\0 with a NUL").unwrap()
    else {
        panic!("a generated response")
    };
    assert_eq!(g.body, b"raw \"body\"\0 with a NUL");
    let twice = super::validate(&e, "{\"status\":\"200\",\"body\":\"x\"}\0y")
        .unwrap_err()
        .0;
    assert!(twice.contains("has one"), "{twice}");
    assert!(super::validate(&e, "[1]\0y").is_err());
    let o = event(EventType::OriginResponse);
    let Outcome::Response(ResponseOutcome { body, .. }) =
        super::validate(&o, &format!("{}\0new", edited(&o, |_| {}))).unwrap()
    else {
        panic!("a response")
    };
    assert_eq!(body.as_deref(), Some(&b"new"[..]));
}

/// Headers kept as given (`K*`) come out the same from an event whose maps the proxy made
/// (taken as they are) as from one read from a file (each checked as if written out).
#[test]
fn kept_headers_are_the_same_from_a_checked_event() {
    for kind in EventType::ALL {
        let unchecked = event(kind);
        let checked = Event::checked(unchecked.cf().clone());
        assert!(checked.headers_checked() && !unchecked.headers_checked());
        let given = crate::edge::result::given_headers(&unchecked);
        let first = given.keys().next().expect("a header").clone();
        let maps = [
            json!({}),
            json!({ "x-a": [{ "key": "X-A", "value": "1" }] }),
            json!({ first.as_str(): [] }),
            json!({ first.as_str(): [{ "value": "mine" }], "x-b": [{ "value": "2" }] }),
            json!({ "x-c": [{ "value": "bad\r\nvalue" }] }),
            json!({ "connection": [{ "value": "close" }] }),
            json!({ "x-d": "not an array" }),
            // Read-only in every event, and not settable at viewer-request.
            json!({ "via": [{ "value": "1.1 other" }] }),
            json!({ "transfer-encoding": [] }),
            json!({ "cloudfront-viewer-country": [{ "value": "FR" }] }),
        ];
        for map in maps {
            let result = edited(&unchecked, |value| value["headers"] = map.clone());
            let text = format!("K*\n{result}");
            assert_eq!(
                super::validate(&checked, &text).map(|o| o.checked_changes(&checked)),
                super::validate(&unchecked, &text),
                "{kind} {map}"
            );
        }
    }
}

mod properties {
    use super::*;
    use crate::edge::arbitrary;
    use proptest::prelude::*;

    /// The outcome without the note of which headers may differ (the listed and the whole form
    /// of one result note it differently, to the same effect).
    fn settled(outcome: Result<Outcome, ValidationError>) -> Result<Outcome, ()> {
        match outcome {
            Ok(Outcome::Request(RequestOutcome::Continue { request, body, .. })) => {
                Ok(Outcome::Request(RequestOutcome::Continue {
                    request,
                    body,
                    changed: ChangedHeaders::Any,
                }))
            }
            Ok(Outcome::Response(ResponseOutcome {
                response, status, body, ..
            })) => Ok(Outcome::Response(ResponseOutcome {
                response,
                status,
                body,
                changed: ChangedHeaders::Any,
            })),
            Ok(generated) => Ok(generated),
            Err(_) => Err(()),
        }
    }

    /// What a function may do to one header of its event's returned object.
    #[derive(Debug, Clone)]
    enum Edit {
        /// Return it as given, listed by name (`K`) instead of written out.
        Listed,
        /// Return it as given, written out.
        Written,
        Changed(String),
        Deleted,
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            3 => Just(Edit::Listed),
            1 => Just(Edit::Written),
            1 => arbitrary::text(6).prop_map(Edit::Changed),
            1 => Just(Edit::Deleted),
        ]
    }

    /// The characters a header name may have (RFC 9110 `tchar`), written out apart from the
    /// validator's own test.
    fn is_tchar(c: char) -> bool {
        c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
    }

    proptest! {
        #[test]
        fn validation_never_panics_on_any_text(
            event in arbitrary::event(),
            text in arbitrary::json_text(),
            kept in proptest::option::of("[a-z*,-]{0,12}"),
            body in proptest::option::of(arbitrary::text(8)),
        ) {
            let mut result = kept.map(|names| format!("K{names}\n")).unwrap_or_default();
            result.push_str(&text);
            if let Some(body) = body {
                result.push('\0');
                result.push_str(&body);
            }
            let _ = super::super::validate(&event, &result);
        }

        #[test]
        fn validation_never_panics_on_any_value_in_any_field(
            kind in prop::sample::select(EventType::ALL.to_vec()),
            path in prop::sample::select(vec![
                "", "uri", "querystring", "method", "clientIp", "headers", "headers/host", "headers/host/0",
                "headers/host/0/value", "headers/host/0/key", "headers/x-new", "body", "body/data", "body/encoding",
                "body/action", "status", "statusDescription", "origin", "origin/custom", "origin/custom/port",
                "origin/custom/customHeaders", "origin/s3", "origin/s3/domainName",
            ]),
            value in arbitrary::json_value(),
        ) {
            let e = event(kind);
            let result = edited(&e, |result| {
                let mut place = result;
                let mut steps = path.split('/').filter(|step| !step.is_empty()).peekable();
                while let Some(step) = steps.next() {
                    let next = match place {
                        Value::Array(items) => step.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
                        Value::Object(members) => Some(members.entry(step.to_string()).or_insert(Value::Null)),
                        _ => None,
                    };
                    let Some(next) = next else { return };
                    place = next;
                    if steps.peek().is_none() {
                        *place = value.clone();
                        return;
                    }
                }
                *place = value.clone();
            });
            let _ = super::super::validate(&e, &result.to_string());
        }

        /// A result whose unchanged headers the runtime lists by name (`K`) gets the verdict,
        /// and the outcome, of the same result written out whole; so does one listing all it
        /// does not write (`K*`), when it deleted none.
        #[test]
        fn the_listed_form_gives_the_whole_forms_verdict(
            kind in prop::sample::select(EventType::ALL.to_vec()),
            edits in proptest::collection::vec(edit(), 8),
            added in proptest::collection::vec(("[a-z][a-z-]{0,6}", arbitrary::text(6)), 0..3),
        ) {
            let e = event(kind);
            let given = crate::edge::result::given_headers(&e).clone();
            let mut listed = Vec::new();
            let mut deleted = false;
            let whole = edited(&e, |result| {
                let map = result["headers"].as_object_mut().expect("a header map");
                for ((name, _), edit) in given.iter().zip(edits.iter().cycle()) {
                    match edit {
                        Edit::Listed => listed.push(name.clone()),
                        Edit::Written => {}
                        Edit::Changed(value) => map[name] = json!([{ "value": value }]),
                        Edit::Deleted => {
                            map.remove(name);
                            deleted = true;
                        }
                    }
                }
                for (name, value) in &added {
                    if !given.contains_key(name) {
                        map.insert(name.clone(), json!([{ "value": value }]));
                    }
                }
            });
            let mut short = whole.clone();
            for name in &listed {
                short["headers"].as_object_mut().expect("a header map").remove(name);
            }
            let verdict = settled(super::super::validate(&e, &whole.to_string()));
            let listed_verdict = settled(super::super::validate(&e, &format!("K{}\n{short}", listed.join(","))));
            prop_assert_eq!(&listed_verdict, &verdict);
            if !deleted {
                let starred = settled(super::super::validate(&e, &format!("K*\n{short}")));
                prop_assert_eq!(&starred, &verdict);
            }
        }

        /// The validator decides a viewer-request result's URI, query string and header map as
        /// a simple model of the rules does: the URI a path from `/` without `?`, `#`, spaces or
        /// control characters; the query without `#`, spaces or control characters; header
        /// names lower-case tokens, each an array of objects with a string `value` free of CR,
        /// LF and NUL and an optional `key` naming the same header.
        #[test]
        fn structure_rules_decide_as_the_model_says(
            uri in "/?[a-z/?# \t%é\u{7f}]{0,10}",
            querystring in "[a-z=&# \t%é]{0,10}",
            headers in proptest::collection::vec(
                (
                    // No name of the rules' lists starts with `z`: every well-formed one may be set.
                    "z[a-z0-9]{0,5}(-[a-z0-9]{1,4})?|[a-z]{0,2}[ ,:\u{e9}\"][a-z]{0,2}|",
                    proptest::collection::vec(
                        (
                            prop_oneof![
                                Just(None),
                                Just(Some(json!(null))),
                                Just(Some(json!("SAME"))),
                                Just(Some(json!(7))),
                            ],
                            prop_oneof![
                                "[a-z ]{0,6}".prop_map(|v| Some(json!(v))),
                                "[a-z]{0,2}[\r\n\0][a-z]{0,2}".prop_map(|v| Some(json!(v))),
                                Just(Some(json!(12))),
                                Just(None),
                            ],
                        ),
                        0..3,
                    ),
                ),
                0..4,
            ),
        ) {
            let e = event(EventType::ViewerRequest);
            let mut model_accepts = uri.starts_with('/')
                && !uri.contains(['?', '#', ' '])
                && !uri.chars().any(char::is_control)
                && !querystring.contains(['#', ' '])
                && !querystring.chars().any(char::is_control);
            let mut map = e.cf().request.headers.iter().map(|(name, entries)| (name.clone(), json!(entries))).collect::<serde_json::Map<_, _>>();
            for (name, entries) in &headers {
                if map.contains_key(name) {
                    continue;
                }
                model_accepts &= !name.is_empty() && name.chars().all(is_tchar);
                let written: Vec<Value> = entries
                    .iter()
                    .map(|(key, value)| {
                        let mut entry = serde_json::Map::new();
                        if let Some(key) = key {
                            let key = if key == "SAME" { json!(name.to_ascii_uppercase()) } else { key.clone() };
                            model_accepts &= key.is_null() || key.as_str().is_some_and(|k| k.eq_ignore_ascii_case(name));
                            entry.insert("key".into(), key);
                        }
                        match value {
                            Some(value) => {
                                model_accepts &= value.as_str().is_some_and(|v| !v.contains(['\r', '\n', '\0']));
                                entry.insert("value".into(), value.clone());
                            }
                            None => model_accepts = false,
                        }
                        Value::Object(entry)
                    })
                    .collect();
                map.insert(name.clone(), Value::Array(written));
            }
            let result = edited(&e, |r| {
                r["uri"] = json!(uri);
                r["querystring"] = json!(querystring);
                r["headers"] = Value::Object(map);
            });
            let verdict = super::super::validate(&e, &result.to_string());
            prop_assert_eq!(verdict.is_ok(), model_accepts, "{} -> {:?}", result, verdict.err());
        }
    }
}
