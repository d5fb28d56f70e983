//! Generators of arbitrary JSON, valid and not, for the property tests of the contract's
//! hand-written parts (the JSON reader, the event writer, the result validator).
//!
//! Case counts follow proptest's `PROPTEST_CASES` (256 by default); a longer run:
//! `PROPTEST_CASES=100000 cargo test --release --lib properties`.

use crate::edge::event::HeaderEntry;
use crate::edge::event::Headers;
use crate::edge::Event;
use proptest::prelude::*;
use serde_json::Value;

/// Characters that exercise JSON strings: quotes, backslashes, controls, non-ASCII, astral.
pub fn text_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range('a', 'z'),
        1 => Just('"'),
        1 => Just('\\'),
        1 => Just('/'),
        1 => proptest::char::range('\u{0}', '\u{1f}'),
        1 => Just('\u{7f}'),
        1 => Just('é'),
        1 => Just('中'),
        1 => Just('😀'),
        1 => Just('\u{2028}'),
        1 => any::<char>(),
    ]
}

pub fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(text_char(), 0..max).prop_map(|chars| chars.into_iter().collect())
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        Just(Value::from(0.1)),
        Just(Value::from(-0.0)),
    ]
}

/// Any JSON value, up to a few levels deep.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text(12).prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 48, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec((text(6), inner), 0..5)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// `value` as JSON text, each string's characters escaped or not at random (`\uXXXX` for any,
/// the short escapes where they exist), with random whitespace between tokens.
pub fn written(value: &Value, choices: &mut impl Iterator<Item = u8>) -> String {
    let mut out = String::new();
    write(value, choices, &mut out);
    out
}

fn space(choices: &mut impl Iterator<Item = u8>, out: &mut String) {
    match choices.next().unwrap_or(0) % 8 {
        0 => out.push(' '),
        1 => out.push_str("\n\t\r "),
        _ => {}
    }
}

fn write_string(text: &str, choices: &mut impl Iterator<Item = u8>, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        let escape = choices.next().unwrap_or(0) % 4 == 0;
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' if !escape => out.push_str("\\n"),
            c if (c as u32) < 0x20 || escape => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write(value: &Value, choices: &mut impl Iterator<Item = u8>, out: &mut String) {
    space(choices, out);
    match value {
        Value::String(s) => write_string(s, choices, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, choices, out);
            }
            space(choices, out);
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (name, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                space(choices, out);
                write_string(name, choices, out);
                space(choices, out);
                out.push(':');
                write(item, choices, out);
            }
            space(choices, out);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
    space(choices, out);
}

/// Pieces whose insertion breaks or bends JSON: lone and paired surrogate escapes, bad escapes,
/// numbers out of range, stray punctuation, literals cut short.
const PIECES: &[&str] = &[
    "\\ud800",
    "\\udfff",
    "\\ud83d\\ude00",
    "\\u00",
    "\\x41",
    "\\",
    "\"",
    "1e400",
    "-1e-400",
    "1",
    "-",
    "0.",
    ".5",
    "01",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    " ",
    "\u{0}",
    "\n",
    "tru",
    "nul",
    "NaN",
    "Infinity",
    "12345678901234567890123456789012345678901234567890",
];

/// JSON texts: valid ones written in many ways, the same with a piece inserted or a part cut
/// out, nesting around the depth limit, and text of any kind.
pub fn json_text() -> impl Strategy<Value = String> {
    let valid = || {
        (json_value(), proptest::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(value, choices)| written(&value, &mut choices.into_iter().cycle()))
    };
    let bent =
        (valid(), any::<prop::sample::Index>(), 0..PIECES.len(), any::<bool>()).prop_map(|(text, at, piece, cut)| {
            let chars: Vec<char> = text.chars().collect();
            let at = at.index(chars.len() + 1);
            let (head, tail) = chars.split_at(at);
            let head: String = head.iter().collect();
            let tail: String = if cut {
                tail.iter().skip(1).collect()
            } else {
                tail.iter().collect()
            };
            if cut {
                format!("{head}{tail}")
            } else {
                format!("{head}{}{tail}", PIECES[piece])
            }
        });
    let nested = (120usize..136, any::<bool>()).prop_map(|(depth, objects)| {
        if objects {
            "{\"a\":".repeat(depth) + "1" + &"}".repeat(depth)
        } else {
            "[".repeat(depth) + &"]".repeat(depth)
        }
    });
    prop_oneof![
        4 => valid(),
        4 => bent,
        1 => nested,
        1 => text(24),
    ]
}

/// Header names: mostly lower-case tokens (as the proxy makes them), some of anything (as an
/// event read from a file may hold).
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9-]{0,12}",
        1 => text(8),
    ]
}

fn headers(max: usize) -> impl Strategy<Value = Headers> {
    proptest::collection::vec(
        (
            header_name(),
            proptest::collection::vec((proptest::option::of(text(8)), text(16)), 0..3),
        ),
        0..max,
    )
    .prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(name, entries)| {
                let entries = entries
                    .into_iter()
                    .map(|(key, value)| HeaderEntry { key, value })
                    .collect();
                (name, entries)
            })
            .collect()
    })
}

/// Events of every type with arbitrary text in every field.
pub fn event() -> impl Strategy<Value = Event> {
    use crate::edge::event::{Body, Origin};
    use crate::edge::sample::{sample, SampleOptions};
    use crate::edge::EventType;
    (
        prop::sample::select(EventType::ALL.to_vec()),
        (text(24), text(24), text(8), text(8), text(10)),
        (headers(10), headers(6), headers(3)),
        (
            proptest::option::of((any::<bool>(), text(8), text(40))),
            text(6),
            text(12),
        ),
    )
        .prop_map(
            |(
                kind,
                (uri, querystring, method, client_ip, request_id),
                (request_headers, response_headers, custom),
                (body, status, description),
            )| {
                let mut event = sample(kind, &SampleOptions::default());
                let cf = event.cf_mut();
                cf.config.request_id = request_id;
                let request = &mut cf.request;
                (request.uri, request.querystring, request.method, request.client_ip) =
                    (uri, querystring, method, client_ip);
                request.headers = request_headers;
                request.body = body.map(|(input_truncated, encoding, data)| Body {
                    input_truncated,
                    action: "read-only".into(),
                    encoding,
                    data,
                });
                if let Some(Origin::Custom(origin)) = request.origin.as_mut() {
                    origin.custom_headers = custom;
                }
                if let Some(response) = cf.response.as_mut() {
                    response.headers = response_headers;
                    response.status = status;
                    response.status_description = description;
                }
                event
            },
        )
}
