//! The Lambda@Edge event, exactly as functions see it (`event.Records[0].cf`). The proxy builds
//! one from a request (and response); `edgehook invoke` parses one from JSON. Both serialize it
//! to JSON for the function and keep it to validate the function's result against.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The four trigger points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventType {
    ViewerRequest,
    OriginRequest,
    OriginResponse,
    ViewerResponse,
}

impl EventType {
    pub const ALL: [EventType; 4] = [
        EventType::ViewerRequest,
        EventType::OriginRequest,
        EventType::OriginResponse,
        EventType::ViewerResponse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ViewerRequest => "viewer-request",
            EventType::OriginRequest => "origin-request",
            EventType::OriginResponse => "origin-response",
            EventType::ViewerResponse => "viewer-response",
        }
    }

    pub fn parse(text: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// Request events may return a request or a generated response.
    pub fn is_request(self) -> bool {
        matches!(self, EventType::ViewerRequest | EventType::OriginRequest)
    }

    pub fn is_viewer(self) -> bool {
        matches!(self, EventType::ViewerRequest | EventType::ViewerResponse)
    }

    /// Generated response and exposed-body limit: 40 KB at viewer events, 1 MB at origin events.
    pub fn size_limit(self) -> usize {
        if self.is_viewer() {
            40 * 1024
        } else {
            1024 * 1024
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One occurrence of a header: the name as sent (case kept) and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub value: String,
}

/// Lowercased header name -> occurrences in order.
pub type Headers = BTreeMap<String, Vec<HeaderEntry>>;

/// Builds a header map from (name, value) pairs, keeping repeats as separate entries.
pub fn headers_from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Headers {
    let mut headers = Headers::new();
    for (name, value) in pairs {
        headers.entry(name.to_ascii_lowercase()).or_default().push(HeaderEntry {
            key: Some(name.to_string()),
            value: value.to_string(),
        });
    }
    headers
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventConfig {
    pub distribution_domain_name: String,
    pub distribution_id: String,
    pub event_type: EventType,
    pub request_id: String,
}

/// The request body handed to functions with Include Body: always base64 on the way in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Body {
    pub input_truncated: bool,
    pub action: String,
    pub encoding: String,
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomOrigin {
    #[serde(default)]
    pub custom_headers: Headers,
    pub domain_name: String,
    #[serde(default = "default_keepalive")]
    pub keepalive_timeout: u32,
    #[serde(default)]
    pub path: String,
    pub port: u32,
    pub protocol: String,
    #[serde(default = "default_read_timeout")]
    pub read_timeout: u32,
    #[serde(default)]
    pub ssl_protocols: Vec<String>,
}

fn default_keepalive() -> u32 {
    5
}

fn default_read_timeout() -> u32 {
    30
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Origin {
    #[serde(default = "default_auth_method")]
    pub auth_method: String,
    #[serde(default)]
    pub custom_headers: Headers,
    pub domain_name: String,
    #[serde(default)]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

fn default_auth_method() -> String {
    "none".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Custom(CustomOrigin),
    S3(S3Origin),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub client_ip: String,
    pub headers: Headers,
    pub method: String,
    pub querystring: String,
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub status: String,
    #[serde(default)]
    pub status_description: String,
    pub headers: Headers,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cf {
    pub config: EventConfig,
    pub request: Request,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Response>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub cf: Cf,
}

/// `{"Records": [{"cf": {...}}]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "Records")]
    pub records: Vec<Record>,
    /// The proxy made the event's header maps from HTTP it parsed (`Event::checked`): their
    /// names are lower-case tokens, none is one functions may not see (`rules::is_disallowed`),
    /// each key names its header, and no value holds a CR, LF or NUL, so the checks a
    /// function's headers get hold for them already. Not part of the JSON.
    #[serde(skip)]
    headers_checked: bool,
}

/// Why a JSON text is not a usable event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the event is not a Lambda@Edge event: {0}")]
    Shape(#[from] serde_json::Error),
    #[error("the event must hold exactly one record, not {0}")]
    Records(usize),
    #[error("{0}")]
    Inconsistent(String),
}

impl Event {
    pub fn new(cf: Cf) -> Event {
        Event {
            records: vec![Record { cf }],
            headers_checked: false,
        }
    }

    /// An event whose header maps the proxy made from HTTP it parsed (see `headers_checked`).
    pub fn checked(cf: Cf) -> Event {
        Event {
            headers_checked: true,
            ..Event::new(cf)
        }
    }

    pub fn headers_checked(&self) -> bool {
        self.headers_checked
    }

    pub fn cf(&self) -> &Cf {
        &self.records[0].cf
    }

    pub fn cf_mut(&mut self) -> &mut Cf {
        &mut self.records[0].cf
    }

    /// The record's `cf`, taken out of the event (the proxy's request and response go back to
    /// it after the function ran, uncopied).
    pub fn into_cf(mut self) -> Cf {
        self.records.swap_remove(0).cf
    }

    pub fn event_type(&self) -> EventType {
        self.cf().config.event_type
    }

    /// Parses and checks an event: one record, a response exactly in response events, an origin
    /// only in origin events.
    pub fn from_json(text: &str) -> Result<Event, EventError> {
        let event: Event = serde_json::from_str(text)?;
        if event.records.len() != 1 {
            return Err(EventError::Records(event.records.len()));
        }
        let cf = event.cf();
        let kind = cf.config.event_type;
        if kind.is_request() == cf.response.is_some() {
            return Err(EventError::Inconsistent(format!(
                "a {kind} event {} a `response`",
                if kind.is_request() { "cannot carry" } else { "needs" }
            )));
        }
        if kind.is_viewer() && cf.request.origin.is_some() {
            return Err(EventError::Inconsistent(format!(
                "a {kind} event cannot carry `request.origin`"
            )));
        }
        Ok(event)
    }

    pub fn to_json(&self) -> String {
        // Serializing plain strings, numbers and maps cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Title-Case of a lowercase header name: `user-agent` -> `User-Agent`.
pub fn title_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if upper {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        upper = c == '-';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIEWER_REQUEST: &str = r#"{"Records":[{"cf":{
      "config":{"distributionDomainName":"d111111abcdef8.cloudfront.net","distributionId":"EDFDVBD6EXAMPLE",
                "eventType":"viewer-request","requestId":"4TyzHTaYWb1GX1qTfsHhEqV6HUDd_BzoBZnwfnvQc_1oF26ClkoUSEQ=="},
      "request":{"clientIp":"203.0.113.178","method":"GET","uri":"/","querystring":"",
        "headers":{"host":[{"key":"Host","value":"d111111abcdef8.cloudfront.net"}],
                   "user-agent":[{"key":"User-Agent","value":"curl/7.66.0"}],
                   "accept":[{"key":"accept","value":"*/*"}]}}}}]}"#;

    #[test]
    fn parses_the_documented_example_and_round_trips() {
        let event = Event::from_json(VIEWER_REQUEST).unwrap();
        assert_eq!(event.event_type(), EventType::ViewerRequest);
        assert_eq!(event.cf().request.headers["user-agent"][0].value, "curl/7.66.0");
        let again = Event::from_json(&event.to_json()).unwrap();
        assert_eq!(again, event);
        let json: serde_json::Value = serde_json::from_str(&event.to_json()).unwrap();
        assert!(json["Records"][0]["cf"].get("response").is_none());
        assert!(json["Records"][0]["cf"]["request"].get("origin").is_none());
    }

    #[test]
    fn refuses_inconsistent_events() {
        let mut value: serde_json::Value = serde_json::from_str(VIEWER_REQUEST).unwrap();
        let record = value["Records"][0].clone();
        value["Records"].as_array_mut().unwrap().push(record);
        let two = value.to_string();
        assert!(Event::from_json(&two).is_err());
        let response_event = VIEWER_REQUEST.replace("viewer-request", "viewer-response");
        assert!(Event::from_json(&response_event)
            .unwrap_err()
            .to_string()
            .contains("needs a `response`"));
        assert!(Event::from_json("{}").is_err());
    }

    #[test]
    fn origins_serialize_as_custom_or_s3() {
        let origin = Origin::Custom(CustomOrigin {
            custom_headers: Headers::new(),
            domain_name: "example.org".into(),
            keepalive_timeout: 5,
            path: "".into(),
            port: 443,
            protocol: "https".into(),
            read_timeout: 30,
            ssl_protocols: vec!["TLSv1.2".into()],
        });
        let json = serde_json::to_value(&origin).unwrap();
        assert_eq!(json["custom"]["domainName"], "example.org");
        assert_eq!(json["custom"]["port"], 443);
    }

    #[test]
    fn title_case_names() {
        assert_eq!(title_case("user-agent"), "User-Agent");
        assert_eq!(title_case("x-amz-cf-id"), "X-Amz-Cf-Id");
        assert_eq!(title_case("etag"), "Etag");
    }

    #[test]
    fn header_pairs_keep_repeats() {
        let h = headers_from_pairs([("Set-Cookie", "a=1"), ("set-cookie", "b=2"), ("Host", "x")]);
        assert_eq!(h["set-cookie"].len(), 2);
        assert_eq!(h["set-cookie"][1].key.as_deref(), Some("set-cookie"));
    }
}
