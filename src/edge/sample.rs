//! Well-formed sample events, for `edgehook event` and for tests.

use super::event::*;

/// What a sample event is made of; unset parts get the AWS documentation's example values.
#[derive(Debug, Clone, Default)]
pub struct SampleOptions {
    pub uri: Option<String>,
    pub method: Option<String>,
    pub querystring: Option<String>,
    /// `(name, value)` pairs, added after the defaults (a name given here replaces the default).
    pub headers: Vec<(String, String)>,
    pub client_ip: Option<String>,
    pub status: Option<u16>,
    pub request_id: Option<String>,
}

pub fn sample(kind: EventType, options: &SampleOptions) -> Event {
    let mut pairs: Vec<(String, String)> = vec![
        ("Host".into(), "d111111abcdef8.cloudfront.net".into()),
        ("User-Agent".into(), "curl/8.5.0".into()),
        ("Accept".into(), "*/*".into()),
    ];
    pairs.retain(|(name, _)| !options.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)));
    pairs.extend(options.headers.iter().cloned());
    let headers = headers_from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let origin = (!kind.is_viewer()).then(|| {
        Origin::Custom(CustomOrigin {
            custom_headers: Headers::new(),
            domain_name: "example.org".into(),
            keepalive_timeout: 5,
            path: String::new(),
            port: 443,
            protocol: "https".into(),
            read_timeout: 30,
            ssl_protocols: vec!["TLSv1.2".into()],
        })
    });
    let response = (!kind.is_request()).then(|| {
        let status = options.status.unwrap_or(200);
        Response {
            status: status.to_string(),
            status_description: http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("")
                .to_string(),
            headers: headers_from_pairs([
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Length", "9593"),
                ("Date", "Mon, 13 Jan 2020 20:12:38 GMT"),
            ]),
        }
    });
    Event::new(Cf {
        config: EventConfig {
            distribution_domain_name: "d111111abcdef8.cloudfront.net".into(),
            distribution_id: "EDFDVBD6EXAMPLE".into(),
            event_type: kind,
            request_id: options
                .request_id
                .clone()
                .unwrap_or_else(|| "4TyzHTaYWb1GX1qTfsHhEqV6HUDd_BzoBZnwfnvQc_1oF26ClkoUSEQ==".into()),
        },
        request: Request {
            client_ip: options.client_ip.clone().unwrap_or_else(|| "203.0.113.178".into()),
            headers,
            method: options.method.clone().unwrap_or_else(|| "GET".into()),
            querystring: options.querystring.clone().unwrap_or_default(),
            uri: options.uri.clone().unwrap_or_else(|| "/".into()),
            body: None,
            origin,
        },
        response,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_valid_events_of_their_type() {
        for kind in EventType::ALL {
            let event = sample(kind, &SampleOptions::default());
            let parsed = Event::from_json(&event.to_json()).unwrap();
            assert_eq!(parsed.event_type(), kind);
            assert_eq!(parsed.cf().response.is_some(), !kind.is_request());
            assert_eq!(parsed.cf().request.origin.is_some(), !kind.is_viewer());
        }
    }

    #[test]
    fn options_apply() {
        let options = SampleOptions {
            uri: Some("/a".into()),
            headers: vec![("host".into(), "example.com".into()), ("Cookie".into(), "a=b".into())],
            status: Some(404),
            ..Default::default()
        };
        let event = sample(EventType::ViewerResponse, &options);
        let cf = event.cf();
        assert_eq!(cf.request.uri, "/a");
        assert_eq!(cf.request.headers["host"].len(), 1);
        assert_eq!(cf.request.headers["host"][0].value, "example.com");
        assert_eq!(cf.request.headers["cookie"][0].value, "a=b");
        let response = cf.response.as_ref().unwrap();
        assert_eq!(
            (response.status.as_str(), response.status_description.as_str()),
            ("404", "Not Found")
        );
    }
}
