//! An event as the JSON text a function's instance parses, with where in it the header map of
//! the object a function returns sits (`cf.request`, or `cf.response` in response events). The
//! runtime can then hold that map back and parse it only when the function reads it: many
//! functions return the object with its headers untouched (URI rewrites, redirects, origin
//! choices), and the headers are most of an event's JSON. Likewise the event's part that
//! functions seldom read: the request in response events, the origin block in origin-request
//! events (the runtime parses it when read; see `HeldBack::part`).

use super::event::{Event, Headers};
use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter};
use std::cell::Cell;
use std::io;
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
        let has_part = cf.response.is_some() || cf.request.origin.is_some();
        let map_held = json_size_unescaped(super::result::given_headers(event)) >= HOLD_BACK_MIN;
        if !map_held && !has_part {
            return EventJson::whole(event.to_json());
        }
        let marks = Marks::default();
        let mut out = Counting {
            bytes: Vec::with_capacity(1024),
            written: &marks.written,
        };
        let serialized = event.serialize(&mut serde_json::Serializer::with_formatter(
            &mut out,
            Locator::new(&marks, cf.response.is_some(), with_index && map_held),
        ));
        // serde_json writes UTF-8 only, and plain strings and maps cannot fail to serialize.
        let text = match serialized {
            Ok(()) => String::from_utf8(out.bytes).unwrap_or_default(),
            Err(_) => String::new(),
        };
        let (headers, index) = (marks.headers.get().filter(|_| map_held), marks.index.take());
        // The index counts bytes, where the instance counts UTF-16 units: the same only in
        // ASCII. A name that needed escaping could not be found in it by the name.
        let index = index
            .filter(|_| !marks.escaped_name.get() && headers.is_some_and(|(start, end)| text[start..end].is_ascii()));
        EventJson {
            text,
            headers: headers.map(|(start, end)| start..end),
            index,
            part: marks.part.get().map(|(start, end)| start..end),
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

/// The length of `headers` as JSON where nothing in them needs escaping (escapes only add to
/// it): `{}`; per name its quotes, colon and brackets; per entry `{"key":"","value":""}`; commas.
fn json_size_unescaped(headers: &Headers) -> usize {
    let names: usize = headers
        .iter()
        .map(|(name, entries)| {
            let entries_size: usize = entries
                .iter()
                .map(|entry| entry.key.as_ref().map_or(0, |key| key.len() + 9) + entry.value.len() + 12)
                .sum();
            name.len() + 5 + entries_size + entries.len().saturating_sub(1)
        })
        .sum();
    2 + names + headers.len().saturating_sub(1)
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

/// A writer that keeps count of what it was given, for `Locator` to read.
struct Counting<'a> {
    bytes: Vec<u8>,
    written: &'a Cell<usize>,
}

impl io::Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        self.written.set(self.bytes.len());
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write(buf).map(|_| ())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What `Locator` found, beside the count of bytes written so far.
#[derive(Default)]
struct Marks {
    written: Cell<usize>,
    /// The byte range of the returned object's header map.
    headers: Cell<Option<(usize, usize)>>,
    index: Cell<Option<String>>,
    /// That map had a name that needed escaping.
    escaped_name: Cell<bool>,
    /// The byte range of the seldom-read part (`HeldBack::part`).
    part: Cell<Option<(usize, usize)>>,
}

/// Writes compact JSON and notes where the returned object's header map is written:
/// `Records[0].cf.request.headers`, or `Records[0].cf.response.headers` in response events;
/// and where the seldom-read part is: `Records[0].cf.request` in response events,
/// `Records[0].cf.request.origin` in request events.
/// `depth` is the nesting of the container being written; `matched` how many steps of that path
/// the current position has followed (a step per depth: `Records`, element 0, `cf`,
/// `request`/`response`, `headers`).
struct Locator<'a> {
    compact: CompactFormatter,
    marks: &'a Marks,
    depth: usize,
    matched: usize,
    key: String,
    in_key: bool,
    /// The path goes through `response` (else `request`).
    response: bool,
    start: usize,
    /// Whether to make the index of the header maps.
    with_index: bool,
    /// The index of the header map being written (`HeldBack::index`).
    index: Option<Vec<u8>>,
    /// Where the value of the map's member being written starts.
    member_start: usize,
    /// The depth and start of the seldom-read part while it is written.
    part_start: Option<(usize, usize)>,
}

/// The depth at which the header map is a member.
const HEADERS_DEPTH: usize = 5;

impl<'a> Locator<'a> {
    fn new(marks: &'a Marks, response: bool, with_index: bool) -> Locator<'a> {
        Locator {
            compact: CompactFormatter,
            marks,
            depth: 0,
            matched: 0,
            key: String::new(),
            in_key: false,
            response,
            start: 0,
            with_index,
            index: None,
            member_start: 0,
            part_start: None,
        }
    }

    /// Whether a member of the header map (`matched` its depth) is being written.
    fn in_map(&self) -> bool {
        self.matched == HEADERS_DEPTH && self.depth == HEADERS_DEPTH + 1
    }

    /// Whether the member or element being written continues the path.
    fn on_path(&self) -> bool {
        self.depth == self.matched + 1 && self.depth <= HEADERS_DEPTH
    }

    /// Whether the member named `self.key` at this depth is the path's step.
    fn key_is_step(&self) -> bool {
        match self.depth {
            1 => self.key == "Records",
            3 => self.key == "cf",
            4 => self.key == if self.response { "response" } else { "request" },
            HEADERS_DEPTH => self.key == "headers",
            _ => false,
        }
    }

    /// Whether the member named `self.key` at this depth (on the path) is the seldom-read part.
    fn key_is_part(&self) -> bool {
        match self.depth {
            4 => self.response && self.key == "request",
            HEADERS_DEPTH => !self.response && self.key == "origin",
            _ => false,
        }
    }
}

impl Formatter for Locator<'_> {
    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth += 1;
        self.compact.begin_array(writer)
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth -= 1;
        self.compact.end_array(writer)
    }

    fn begin_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        if self.on_path() && self.depth == 2 && first {
            self.matched = self.depth;
        }
        self.compact.begin_array_value(writer, first)
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        if self.matched == self.depth {
            self.matched -= 1;
        }
        self.compact.end_array_value(writer)
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth += 1;
        self.compact.begin_object(writer)
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth -= 1;
        self.compact.end_object(writer)
    }

    fn begin_object_key<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        if self.on_path() || (self.in_map() && self.with_index) {
            self.in_key = true;
            self.key.clear();
        }
        self.compact.begin_object_key(writer, first)
    }

    fn end_object_key<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.in_key = false;
        self.compact.end_object_key(writer)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.compact.begin_object_value(writer)?;
        if self.in_map() {
            self.member_start = self.marks.written.get();
        } else if self.on_path() && self.key_is_step() {
            self.matched = self.depth;
            self.start = self.marks.written.get();
            if self.depth == HEADERS_DEPTH && self.with_index {
                self.index = Some(Vec::with_capacity(256));
            }
        } else if self.on_path() && self.key_is_part() {
            self.part_start = Some((self.depth, self.marks.written.get()));
        }
        Ok(())
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        if self.in_map() {
            if let Some(index) = self.index.as_mut() {
                index.push(b',');
                index.extend_from_slice(self.key.as_bytes());
                index.push(b':');
                push_decimal(index, self.member_start - self.start);
                index.push(b':');
                push_decimal(index, self.marks.written.get() - self.start);
            }
        } else if self.matched == self.depth {
            if self.depth == HEADERS_DEPTH {
                self.marks.headers.set(Some((self.start, self.marks.written.get())));
                // Names and digits: UTF-8 as written.
                let index = self.index.take().and_then(|bytes| String::from_utf8(bytes).ok());
                self.marks.index.set(index);
            }
            self.matched -= 1;
        } else if let Some((depth, start)) = self.part_start {
            // Members inside the part end deeper: the first end at its depth is its own.
            if depth == self.depth {
                self.marks.part.set(Some((start, self.marks.written.get())));
                self.part_start = None;
            }
        }
        self.compact.end_object_value(writer)
    }

    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()> {
        if self.in_key {
            self.key.push_str(fragment);
        }
        self.compact.write_string_fragment(writer, fragment)
    }

    fn write_char_escape<W: ?Sized + io::Write>(&mut self, writer: &mut W, escape: CharEscape) -> io::Result<()> {
        if self.in_key {
            // No step of the path needs escaping: an escaped key is none of them. A header name
            // that does cannot be found in the index by its name.
            self.key.push('\\');
            if self.in_map() {
                self.marks.escaped_name.set(true);
            }
        }
        self.compact.write_char_escape(writer, escape)
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
        assert_eq!(
            json_size_unescaped(headers),
            serde_json::to_string(headers).unwrap().len()
        );
        headers.retain(|name, _| name == "host");
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
