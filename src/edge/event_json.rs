//! An event as the JSON text a function's instance parses, with where in it the header map of
//! the object a function returns sits (`cf.request`, or `cf.response` in response events). The
//! runtime can then hold that map back and parse it only when the function reads it: many
//! functions return the object with its headers untouched (URI rewrites, redirects, origin
//! choices), and the headers are most of an event's JSON. Likewise the event's part that
//! functions seldom read: the request in response events, the origin block in origin-request
//! events (the runtime parses it when read; see `HeldBack::part`).

use super::event::{Cf, Event, Headers, Request};
use super::json::plain_run_end;
use serde::Serialize;
use std::ops::Range;

pub struct EventJson {
    pub text: String,
    /// The byte range of the returned object's header map (`{...}`) in `text`.
    pub headers: Option<Range<usize>>,
    /// Where each header's value sits in that map (`HeldBack::index`), when asked for.
    index: Option<String>,
    /// The byte range of the event's seldom-read part (`HeldBack::part`), where it has one.
    pub part: Option<Range<usize>>,
}

/// Header maps shorter than this (in JSON) stay in the event: holding one back costs the
/// function's instance about what parsing a map of this size does (callgrind: a map of one
/// header held back made a generated page's call 4% dearer, one of three 1% cheaper).
pub const HOLD_BACK_MIN: usize = 128;

impl EventJson {
    /// The event's JSON; `with_index`: with the index of the returned object's header map.
    pub fn new(event: &Event, with_index: bool) -> EventJson {
        let cf = event.cf();
        let mut writer = Writer {
            out: Vec::with_capacity(1024),
            index: with_index.then(|| Vec::with_capacity(256)),
            escaped_name: false,
            headers: None,
            part: None,
        };
        writer.event(cf);
        let Writer {
            out,
            index,
            escaped_name,
            headers,
            part,
        } = writer;
        // Only whole strings, ASCII punctuation and serde_json's own output went in: UTF-8.
        let text = String::from_utf8(out).unwrap_or_default();
        let headers = headers.filter(|range| range.len() >= HOLD_BACK_MIN);
        // The index counts bytes, where the instance counts UTF-16 units: the same only in
        // ASCII. A name that needed escaping could not be found in it by the name.
        let index = index
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .filter(|_| !escaped_name && headers.as_ref().is_some_and(|range| text[range.clone()].is_ascii()));
        EventJson {
            text,
            headers,
            index,
            part,
        }
    }

    /// The text with the header map (`map`) and the seldom-read part (`part`) cut out where
    /// asked and found, a `0` in each place (the function's instance puts an accessor there),
    /// and their own texts; `None` where nothing is held back.
    pub fn held_back(&self, map: bool, part: bool) -> Option<HeldBack<'_>> {
        let map = self.headers.clone().filter(|_| map);
        let part = self.part.clone().filter(|_| part);
        let mut cuts = [map.clone(), part.clone()];
        cuts.sort_by_key(|cut| cut.as_ref().map(|range| range.start));
        let text = &self.text;
        let cut_len: usize = cuts.iter().flatten().map(|range| range.len()).sum();
        if cut_len == 0 {
            return None;
        }
        let mut rest = String::with_capacity(text.len() + 2 - cut_len);
        let mut from = 0;
        for range in cuts.iter().flatten() {
            rest.push_str(&text[from..range.start]);
            rest.push('0');
            from = range.end;
        }
        rest.push_str(&text[from..]);
        let index = self.index.as_deref().filter(|_| map.is_some());
        Some(HeldBack {
            rest,
            map: map.map(|range| &text[range]),
            index,
            part: part.map(|range| &text[range]),
        })
    }

    /// The text alone, with no map held back (events whose header names are not all tokens).
    pub fn whole(text: String) -> EventJson {
        EventJson {
            text,
            headers: None,
            index: None,
            part: None,
        }
    }
}

/// An event with its returned object's header map, its seldom-read part, or both held back.
pub struct HeldBack<'a> {
    /// The event's JSON with a `0` in the place of each.
    pub rest: String,
    /// The map's JSON.
    pub map: Option<&'a str>,
    /// Where each header's value sits in `map`: `,NAME:START:END` per header, byte offsets, so
    /// that the instance can parse the one header a function reads (names are tokens: no
    /// comma or colon in them); `None` where not asked for.
    pub index: Option<&'a str>,
    /// The JSON of `cf.request` in response events (whose result is the response) or of
    /// `cf.request.origin` in origin-request events: parsed by the instance only if read.
    pub part: Option<&'a str>,
}

/// Appends `n` in decimal (what `write!` does, without its formatting machinery: this runs for
/// every header of every held-back event).
fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Writes an event as compact JSON, the same text as serde's (`Event::to_json`, which the tests
/// hold it to), and notes where the returned object's header map (`Records[0].cf.request.headers`,
/// or `.response.headers` in response events) and the seldom-read part (`cf.request` in response
/// events, `cf.request.origin` in request events) are. Through serde's formatter callbacks this
/// cost the proxy about as much per event as the function's own result did to parse.
struct Writer {
    out: Vec<u8>,
    /// The index of the returned object's header map (`HeldBack::index`), when asked for.
    index: Option<Vec<u8>>,
    /// A name in that map needed escaping.
    escaped_name: bool,
    headers: Option<Range<usize>>,
    part: Option<Range<usize>>,
}

impl Writer {
    fn raw(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
    }

    /// `text` as a JSON string, escaped as serde_json escapes: quotes, backslashes and control
    /// characters; true if anything needed escaping.
    fn string(&mut self, text: &str) -> bool {
        let bytes = text.as_bytes();
        self.out.reserve(bytes.len() + 2);
        self.out.push(b'"');
        let mut from = 0;
        loop {
            let at = plain_run_end(bytes, from);
            self.out.extend_from_slice(&bytes[from..at]);
            let Some(&b) = bytes.get(at) else { break };
            let short = match b {
                b'"' => b'"',
                b'\\' => b'\\',
                b'\n' => b'n',
                b'\r' => b'r',
                b'\t' => b't',
                0x08 => b'b',
                0x0c => b'f',
                _ => 0,
            };
            if short == 0 {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                self.out
                    .extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]);
            } else {
                self.out.extend_from_slice(&[b'\\', short]);
            }
            from = at + 1;
        }
        self.out.push(b'"');
        from > 0
    }

    /// `key` (the member's name as JSON with its colon, and a comma before unless first: the
    /// event's own names, plain ASCII) and `value` as a JSON string.
    fn member(&mut self, key: &'static str, value: &str) {
        self.raw(key);
        self.string(value);
    }

    fn event(&mut self, cf: &Cf) {
        let config = &cf.config;
        self.raw("{\"Records\":[{\"cf\":{\"config\":{");
        self.member("\"distributionDomainName\":", &config.distribution_domain_name);
        self.member(",\"distributionId\":", &config.distribution_id);
        self.member(",\"eventType\":", config.event_type.as_str());
        self.member(",\"requestId\":", &config.request_id);
        self.raw("},\"request\":");
        let start = self.out.len();
        self.request(&cf.request, cf.response.is_none());
        if let Some(response) = &cf.response {
            // In response events the request is the seldom-read part.
            self.part = Some(start..self.out.len());
            self.member(",\"response\":{\"status\":", &response.status);
            self.member(",\"statusDescription\":", &response.status_description);
            self.raw(",\"headers\":");
            self.headers(&response.headers, true);
            self.out.push(b'}');
        }
        self.raw("}}]}");
    }

    /// `returned`: the request is what the function returns (request events).
    fn request(&mut self, request: &Request, returned: bool) {
        self.member("{\"clientIp\":", &request.client_ip);
        self.raw(",\"headers\":");
        self.headers(&request.headers, returned);
        self.member(",\"method\":", &request.method);
        self.member(",\"querystring\":", &request.querystring);
        self.member(",\"uri\":", &request.uri);
        // Rarely there (include_body, origin events): serde writes them.
        if let Some(body) = &request.body {
            self.raw(",\"body\":");
            self.serde(body);
        }
        if let Some(origin) = &request.origin {
            self.raw(",\"origin\":");
            let start = self.out.len();
            self.serde(origin);
            if returned {
                self.part = Some(start..self.out.len());
            }
        }
        self.out.push(b'}');
    }

    fn serde(&mut self, value: &impl Serialize) {
        // Plain strings, numbers, lists and maps cannot fail to serialize.
        let _ = serde_json::to_writer(&mut self.out, value);
    }

    /// A header map; `returned`: the returned object's, whose range (and index) are noted.
    fn headers(&mut self, headers: &Headers, returned: bool) {
        let start = self.out.len();
        self.out.push(b'{');
        for (n, (name, entries)) in headers.iter().enumerate() {
            if n > 0 {
                self.out.push(b',');
            }
            let escaped = self.string(name);
            self.out.push(b':');
            let value_start = self.out.len();
            self.out.push(b'[');
            for (e, entry) in entries.iter().enumerate() {
                if e > 0 {
                    self.out.push(b',');
                }
                match &entry.key {
                    Some(key) => {
                        self.member("{\"key\":", key);
                        self.member(",\"value\":", &entry.value);
                    }
                    None => self.member("{\"value\":", &entry.value),
                }
                self.out.push(b'}');
            }
            self.out.push(b']');
            if returned {
                self.escaped_name |= escaped;
                if let Some(index) = self.index.as_mut() {
                    index.push(b',');
                    index.extend_from_slice(name.as_bytes());
                    index.push(b':');
                    push_decimal(index, value_start - start);
                    index.push(b':');
                    push_decimal(index, self.out.len() - start);
                }
            }
        }
        self.out.push(b'}');
        if returned {
            self.headers = Some(start..self.out.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::event::{headers_from_pairs, HeaderEntry, Headers};
    use crate::edge::sample::{sample, SampleOptions};
    use crate::edge::EventType;

    fn held_back(json: &EventJson) -> &str {
        &json.text[json.headers.clone().expect("a range")]
    }

    #[test]
    fn the_text_is_the_events_json_and_the_range_its_returned_headers() {
        for kind in EventType::ALL {
            let mut event = sample(kind, &SampleOptions::default());
            // Maps elsewhere in the event (request headers of a response event, an origin's
            // custom headers) and a header named `headers` do not mislead it.
            let cf = event.cf_mut();
            cf.request.headers.insert(
                "headers".into(),
                headers_from_pairs([("Headers", "{\"a\":[1]} \\ ]}\"")])
                    .remove("headers")
                    .unwrap(),
            );
            if let Some(response) = cf.response.as_mut() {
                response.headers.insert(
                    "x-tricky".into(),
                    headers_from_pairs([("X-Tricky", "\"}],\"x\":[{\\")])
                        .remove("x-tricky")
                        .unwrap(),
                );
            }
            let json = EventJson::new(&event, true);
            assert_eq!(json.text, event.to_json(), "{kind}");
            let returned: &Headers = match &event.cf().response {
                Some(response) => &response.headers,
                None => &event.cf().request.headers,
            };
            assert_eq!(held_back(&json), serde_json::to_string(returned).unwrap(), "{kind}");
            let HeldBack { rest, map, index, .. } = json.held_back(true, false).expect("held back");
            let (map, index) = (map.expect("the map"), index.expect("an index"));
            assert_eq!(map, held_back(&json));
            // The index gives every header's own JSON.
            let mut names = Vec::new();
            for entry in index.split(',').skip(1) {
                let mut parts = entry.split(':');
                let (name, start, end) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
                let value = &map[start.parse::<usize>().unwrap()..end.parse::<usize>().unwrap()];
                assert_eq!(value, serde_json::to_string(&returned[name]).unwrap(), "{kind} {name}");
                names.push(name);
            }
            assert_eq!(names, returned.keys().map(String::as_str).collect::<Vec<_>>(), "{kind}");
            let mut rest: serde_json::Value = serde_json::from_str(&rest).unwrap();
            let cf = &mut rest["Records"][0]["cf"];
            let place = if cf.get("response").is_some() {
                &mut cf["response"]
            } else {
                &mut cf["request"]
            };
            assert_eq!(place["headers"], 0, "{kind}");
            place["headers"] = serde_json::from_str(map).unwrap();
            assert_eq!(
                rest,
                serde_json::from_str::<serde_json::Value>(&json.text).unwrap(),
                "{kind}"
            );
        }
    }

    /// The hand-written JSON is serde's, whatever the strings hold and whichever rare parts
    /// (a body, an S3 origin, entries without a key) the event has.
    #[test]
    fn the_text_is_serdes_for_any_characters_and_parts() {
        let awkward: String = (0u8..0x20).map(char::from).collect::<String>() + "\"\\/\u{7f}é中😀 end";
        for kind in EventType::ALL {
            let mut event = sample(kind, &SampleOptions::default());
            let cf = event.cf_mut();
            cf.config.request_id = awkward.clone();
            cf.config.distribution_domain_name = awkward.clone();
            let request = &mut cf.request;
            request.uri = awkward.clone();
            request.querystring = awkward.clone();
            request.method = awkward.clone();
            request.client_ip = awkward.clone();
            request.headers.insert(
                awkward.clone(),
                vec![
                    HeaderEntry {
                        key: None,
                        value: awkward.clone(),
                    },
                    HeaderEntry {
                        key: Some(awkward.clone()),
                        value: String::new(),
                    },
                ],
            );
            request.headers.insert("x-empty".into(), Vec::new());
            request.body = Some(crate::edge::event::Body {
                input_truncated: false,
                action: "read-only".into(),
                encoding: "base64".into(),
                data: "aGk=".into(),
            });
            if request.origin.is_some() {
                request.origin = Some(crate::edge::event::Origin::S3(crate::edge::event::S3Origin {
                    auth_method: "none".into(),
                    custom_headers: headers_from_pairs([("X-A", awkward.as_str())]),
                    domain_name: "bucket.s3.amazonaws.com".into(),
                    path: String::new(),
                    region: Some("us-east-1".into()),
                }));
            }
            if let Some(response) = cf.response.as_mut() {
                response.status_description = awkward.clone();
                response.headers.insert(awkward.clone(), Vec::new());
            }
            let json = EventJson::new(&event, true);
            assert_eq!(json.text, event.to_json(), "{kind}");
            assert!(
                json.index.is_none(),
                "{kind}: an escaped name leaves the map without index"
            );
            assert_eq!(EventJson::new(&event, false).text, json.text, "{kind}");
        }
    }

    #[test]
    fn a_map_with_a_name_that_needs_escaping_has_no_index() {
        let mut event = sample(EventType::ViewerRequest, &SampleOptions::default());
        assert!(EventJson::new(&event, true)
            .held_back(true, false)
            .unwrap()
            .index
            .is_some());
        let headers = &mut event.cf_mut().request.headers;
        let entries = headers["user-agent"].clone();
        headers.insert("x-\"quoted\"".into(), entries);
        let json = EventJson::new(&event, true);
        assert_eq!(json.text, event.to_json());
        assert!(json.held_back(true, false).unwrap().index.is_none());
    }

    #[test]
    fn a_map_that_is_not_ascii_has_no_index() {
        let mut event = sample(EventType::ViewerRequest, &SampleOptions::default());
        let headers = &mut event.cf_mut().request.headers;
        headers.extend(headers_from_pairs([("A-Name", "Zo\u{eb}")]));
        headers.insert("x-\u{e9}".into(), Vec::new());
        let json = EventJson::new(&event, true);
        assert_eq!(json.text, event.to_json());
        let held = json.held_back(true, false).unwrap();
        assert_eq!(
            held.map,
            Some(serde_json::to_string(&event.cf().request.headers).unwrap().as_str())
        );
        assert!(held.index.is_none());
    }

    #[test]
    fn small_maps_stay_in_the_event() {
        let mut event = sample(EventType::ViewerRequest, &SampleOptions::default());
        let headers = &mut event.cf_mut().request.headers;
        headers.get_mut("accept").unwrap().push(HeaderEntry {
            key: None,
            value: "text/html".into(),
        });
        let held = |event: &Event| EventJson::new(event, true).headers.is_some();
        let size = |event: &Event| serde_json::to_string(&event.cf().request.headers).unwrap().len();
        assert!(size(&event) >= HOLD_BACK_MIN && held(&event));
        let headers = &mut event.cf_mut().request.headers;
        headers.retain(|name, _| name == "host");
        assert!(size(&event) < HOLD_BACK_MIN && !held(&event));
        assert!(EventJson::new(&event, true).held_back(true, true).is_none());
        event.cf_mut().request.headers.clear();
        assert!(EventJson::new(&event, true).headers.is_none());
    }

    #[test]
    fn the_seldom_read_part_is_the_request_or_the_origin() {
        for kind in EventType::ALL {
            let mut event = sample(kind, &SampleOptions::default());
            // A custom header named `origin` (in the map) and an `origin` inside the origin
            // block's own custom headers do not mislead it.
            let request = &mut event.cf_mut().request;
            request
                .headers
                .extend(headers_from_pairs([("Origin", "{\"custom\":1}")]));
            if let Some(crate::edge::event::Origin::Custom(custom)) = request.origin.as_mut() {
                custom.custom_headers.extend(headers_from_pairs([("Origin", "o")]));
            }
            let json = EventJson::new(&event, true);
            assert_eq!(json.text, event.to_json(), "{kind}");
            let cf = event.cf();
            let expected = match (&cf.response, &cf.request.origin) {
                (Some(_), _) => Some(serde_json::to_string(&cf.request).unwrap()),
                (None, Some(origin)) => Some(serde_json::to_string(origin).unwrap()),
                (None, None) => None,
            };
            let part = json.part.clone().map(|range| json.text[range].to_string());
            assert_eq!(part, expected, "{kind}");
            let Some(part) = part else {
                assert!(json.held_back(false, true).is_none(), "{kind}");
                continue;
            };
            // Both cut out, each with a 0 in its place: put back, they are the event.
            let held = json.held_back(true, true).expect("held back");
            assert_eq!(held.part, Some(part.as_str()), "{kind}");
            let mut rest: serde_json::Value = serde_json::from_str(&held.rest).unwrap();
            let cf = &mut rest["Records"][0]["cf"];
            let map: serde_json::Value = serde_json::from_str(held.map.expect("the map")).unwrap();
            let part: serde_json::Value = serde_json::from_str(&part).unwrap();
            if cf.get("response").is_some() {
                assert_eq!(
                    (&cf["request"], &cf["response"]["headers"]),
                    (&0.into(), &0.into()),
                    "{kind}"
                );
                cf["request"] = part;
                cf["response"]["headers"] = map;
            } else {
                assert_eq!(
                    (&cf["request"]["origin"], &cf["request"]["headers"]),
                    (&0.into(), &0.into()),
                    "{kind}"
                );
                cf["request"]["origin"] = part;
                cf["request"]["headers"] = map;
            }
            assert_eq!(
                rest,
                serde_json::from_str::<serde_json::Value>(&json.text).unwrap(),
                "{kind}"
            );
            // The part alone.
            let alone = json.held_back(false, true).expect("the part");
            assert!(alone.map.is_none() && alone.index.is_none(), "{kind}");
            assert_eq!(
                alone.rest.len(),
                json.text.len() + 1 - held.part.unwrap().len(),
                "{kind}"
            );
        }
    }

    #[test]
    fn a_part_is_held_back_beside_a_small_map() {
        let mut event = sample(EventType::ViewerResponse, &SampleOptions::default());
        event.cf_mut().response.as_mut().unwrap().headers.clear();
        let json = EventJson::new(&event, true);
        assert!(json.headers.is_none() && json.part.is_some());
        assert!(json.held_back(true, false).is_none());
        assert!(json.held_back(true, true).is_some_and(|held| held.map.is_none()));
    }
}

#[cfg(test)]
mod properties {
    use super::EventJson;
    use crate::edge::arbitrary;
    use proptest::prelude::*;
    use serde_json::Value;

    proptest! {
        /// The event's text is the JSON serde writes for it, whatever its fields hold; the parts
        /// held back are the JSON of what sat in their place, and the index gives each
        /// header's own JSON.
        #[test]
        fn any_event_is_written_as_serde_writes_it(event in arbitrary::event(), with_index in any::<bool>()) {
            let json = EventJson::new(&event, with_index);
            let whole = serde_json::to_value(&event).expect("events serialize");
            let written: Value = serde_json::from_str(&json.text).expect("the writer writes JSON");
            prop_assert_eq!(&written, &whole);
            let Some(held) = json.held_back(true, true) else { return Ok(()) };
            let mut rebuilt: Value = serde_json::from_str(&held.rest).expect("the rest is JSON");
            let cf = &mut rebuilt["Records"][0]["cf"];
            let response_event = !cf["response"].is_null();
            if let Some(map) = held.map {
                let map: Value = serde_json::from_str(map).expect("the map is JSON");
                let owner = if response_event { &mut cf["response"] } else { &mut cf["request"] };
                prop_assert_eq!(&owner["headers"], &Value::from(0));
                owner["headers"] = map;
            }
            if let Some(part) = held.part {
                let part: Value = serde_json::from_str(part).expect("the part is JSON");
                let place = if response_event { &mut cf["request"] } else { &mut cf["request"]["origin"] };
                prop_assert_eq!(&*place, &Value::from(0));
                *place = part;
            }
            prop_assert_eq!(&rebuilt, &whole);
            if let (Some(map), Some(index)) = (held.map, held.index) {
                let headers = if response_event { &whole["Records"][0]["cf"]["response"]["headers"] } else { &whole["Records"][0]["cf"]["request"]["headers"] };
                for entry in index.split(',').skip(1) {
                    let mut fields = entry.rsplitn(3, ':');
                    let end: usize = fields.next().unwrap().parse().unwrap();
                    let start: usize = fields.next().unwrap().parse().unwrap();
                    let name = fields.next().unwrap();
                    let own: Value = serde_json::from_str(&map[start..end]).expect("a header's JSON");
                    prop_assert_eq!(&own, &headers[name]);
                }
            }
        }
    }
}
