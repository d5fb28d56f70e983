//! A function's result as parsed for validation: a JSON tree that borrows its strings from the
//! result text (only strings with escapes are copied) and keeps each object's members in a short
//! list. serde_json's `Value` copies every string and, with the `preserve_order` feature that
//! deno_core turns on, hashes every member name into an `IndexMap`; for a result of a few dozen
//! strings that was most of the proxy's share of a function call.

use serde::ser::{Serialize, SerializeMap, Serializer};
use std::borrow::Cow;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Object<'a>),
}

/// An object's members in the order written. A name written twice means its last value, as
/// with `JSON.parse` (lookups search from the end).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object<'a>(Vec<(Cow<'a, str>, Json<'a>)>);

impl<'a> Json<'a> {
    /// Parses a JSON text (RFC 8259, as serde_json reads it: whitespace around the value,
    /// nothing after it, fewer than 128 levels of nesting).
    pub fn parse(text: &'a str) -> Result<Json<'a>, ParseError> {
        let mut parser = Parser { text, at: 0, depth: 0 };
        let value = parser.value()?;
        if parser.peek().is_some() {
            return Err(parser.error("trailing characters"));
        }
        Ok(value)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this is the same JSON as `value` (member order aside).
    pub fn same_as(&self, value: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (self, value) {
            (Json::Null, Value::Null) => true,
            (Json::Bool(a), Value::Bool(b)) => a == b,
            (Json::Number(a), Value::Number(b)) => a == b,
            (Json::String(a), Value::String(b)) => a == b,
            (Json::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_as(y)),
            // A name written twice means its last value (`get`), as serde_json keeps it.
            (Json::Object(a), Value::Object(b)) => {
                a.iter().all(|(name, _)| b.contains_key(name))
                    && b.iter().all(|(name, y)| a.get(name).is_some_and(|x| x.same_as(y)))
            }
            _ => false,
        }
    }
}

impl<'a> Object<'a> {
    pub fn get(&self, name: &str) -> Option<&Json<'a>> {
        self.0.iter().rev().find(|(n, _)| n == name).map(|(_, value)| value)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Json<'a>)> {
        self.0.iter().map(|(name, value)| (name.as_ref(), value))
    }

    /// Adds a member the object does not have; false (and nothing added) if it has it.
    pub fn insert_new(&mut self, name: &'a str, value: Json<'a>) -> bool {
        if self.contains_key(name) {
            return false;
        }
        self.0.push((Cow::Borrowed(name), value));
        true
    }
}

/// As compact JSON, for error messages that quote what a function returned.
impl fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| fmt::Error)?)
    }
}

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::Number(n) => n.serialize(serializer),
            Json::String(s) => serializer.serialize_str(s),
            Json::Array(items) => items.serialize(serializer),
            Json::Object(object) => {
                let mut map = serializer.serialize_map(Some(object.0.len()))?;
                for (name, value) in &object.0 {
                    map.serialize_entry(name.as_ref(), value)?;
                }
                map.end()
            }
        }
    }
}

/// Why a text is not JSON, and where (line and column, from 1, as serde_json says it).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason} at line {line} column {column}")]
pub struct ParseError {
    reason: &'static str,
    line: usize,
    column: usize,
}

/// Arrays and objects nest fewer levels deep than this (serde_json's limit): the parser recurses
/// once per level.
const MAX_DEPTH: usize = 128;

/// Whether any of the eight bytes in `word` is one a JSON string cannot hold raw: a control
/// character, a quote or a backslash (exact for the word as a whole: the classic "has a byte
/// less than n" and "has a zero byte" tests, n = 0x20 being at most 0x80).
fn may_need_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * b'"' as u64);
    let backslash = word ^ (ONES * b'\\' as u64);
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x;
    (below_space | zero_in(quote) | zero_in(backslash)) & HIGHS != 0
}

/// Where the run of bytes a JSON string holds as they are (all but control characters, quotes
/// and backslashes) that starts at `from` ends: the first such byte, or the end. Eight bytes at
/// a time up to the first word that may hold one (most strings hold none). The event writer
/// escapes what ends a run, the parser reads it.
pub(crate) fn plain_run_end(bytes: &[u8], from: usize) -> usize {
    let mut at = from;
    while let Some(word) = bytes.get(at..at + 8) {
        let mut eight = [0; 8];
        eight.copy_from_slice(word);
        if may_need_escape(u64::from_le_bytes(eight)) {
            break;
        }
        at += 8;
    }
    while let Some(&b) = bytes.get(at) {
        if b < 0x20 || b == b'"' || b == b'\\' {
            break;
        }
        at += 1;
    }
    at
}

/// A recursive-descent parser over the text's bytes. serde's visitor machinery cost about five
/// times this per byte of a small result (callgrind), most of a function call's validation.
struct Parser<'a> {
    text: &'a str,
    at: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn error(&self, reason: &'static str) -> ParseError {
        let before = &self.bytes()[..self.at.min(self.text.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
        ParseError { reason, line, column }
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes().get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes().get(self.at).copied()
    }

    fn expect_literal(&mut self, literal: &'static str, value: Json<'a>) -> Result<Json<'a>, ParseError> {
        if self.bytes()[self.at..].starts_with(literal.as_bytes()) {
            self.at += literal.len();
            Ok(value)
        } else {
            Err(self.error("expected ident"))
        }
    }

    fn value(&mut self) -> Result<Json<'a>, ParseError> {
        match self.peek() {
            None => Err(self.error("EOF while parsing a value")),
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b'{') => self.nested(Self::object),
            Some(b'[') => self.nested(Self::array),
            Some(b't') => self.expect_literal("true", Json::Bool(true)),
            Some(b'f') => self.expect_literal("false", Json::Bool(false)),
            Some(b'n') => self.expect_literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected value")),
        }
    }

    fn nested(&mut self, parse: fn(&mut Self) -> Result<Json<'a>, ParseError>) -> Result<Json<'a>, ParseError> {
        self.depth += 1;
        if self.depth >= MAX_DEPTH {
            return Err(self.error("recursion limit exceeded"));
        }
        self.at += 1;
        let value = parse(self)?;
        self.depth -= 1;
        Ok(value)
    }

    /// After the `{`.
    fn object(&mut self) -> Result<Json<'a>, ParseError> {
        let mut members = Vec::new();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(Json::Object(Object(members)));
        }
        loop {
            match self.peek() {
                Some(b'"') => {}
                None => return Err(self.error("EOF while parsing an object")),
                Some(_) => return Err(self.error("key must be a string")),
            }
            let name = self.string()?;
            match self.peek() {
                Some(b':') => self.at += 1,
                None => return Err(self.error("EOF while parsing an object")),
                Some(_) => return Err(self.error("expected `:`")),
            }
            members.push((name, self.value()?));
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Json::Object(Object(members)));
                }
                None => return Err(self.error("EOF while parsing an object")),
                Some(_) => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    /// After the `[`.
    fn array(&mut self) -> Result<Json<'a>, ParseError> {
        let mut items = Vec::new();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Json::Array(items));
        }
        loop {
            items.push(self.value()?);
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Json::Array(items));
                }
                None => return Err(self.error("EOF while parsing a list")),
                Some(_) => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    fn number(&mut self) -> Result<Json<'a>, ParseError> {
        let bytes = self.bytes();
        let start = self.at;
        let mut at = start;
        let digits = |at: &mut usize| {
            let from = *at;
            while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
                *at += 1;
            }
            *at > from
        };
        if bytes.get(at) == Some(&b'-') {
            at += 1;
        }
        match bytes.get(at) {
            Some(b'0') => at += 1,
            Some(b'1'..=b'9') => {
                digits(&mut at);
            }
            _ => {
                self.at = at;
                return Err(self.error("invalid number"));
            }
        }
        if bytes.get(at) == Some(&b'.') {
            at += 1;
            if !digits(&mut at) {
                self.at = at;
                return Err(self.error("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = bytes.get(at) {
            at += 1;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            if !digits(&mut at) {
                self.at = at;
                return Err(self.error("invalid number"));
            }
        }
        self.at = at;
        self.text[start..at]
            .parse::<serde_json::Number>()
            .map(Json::Number)
            .map_err(|_| self.error("number out of range"))
    }

    /// At the opening quote; borrowed from the text unless it has escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, ParseError> {
        self.at += 1;
        let mut owned: Option<String> = None;
        loop {
            let run = self.at;
            self.at = plain_run_end(self.bytes(), run);
            let plain = &self.text[run..self.at];
            match self.bytes().get(self.at) {
                None => return Err(self.error("EOF while parsing a string")),
                Some(b'"') => {
                    self.at += 1;
                    return Ok(match owned {
                        None => Cow::Borrowed(plain),
                        Some(mut text) => {
                            text.push_str(plain);
                            Cow::Owned(text)
                        }
                    });
                }
                Some(b'\\') => {
                    let text = owned.get_or_insert_with(String::new);
                    text.push_str(plain);
                    self.at += 1;
                    self.escape(text)?;
                }
                Some(_) => return Err(self.error("control character (\\u0000-\\u001F) found while parsing a string")),
            }
        }
    }

    /// After a backslash.
    fn escape(&mut self, out: &mut String) -> Result<(), ParseError> {
        let Some(&b) = self.bytes().get(self.at) else {
            return Err(self.error("EOF while parsing a string"));
        };
        self.at += 1;
        let c = match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let first = self.hex4()?;
                match first {
                    0xD800..=0xDBFF => {
                        if !self.bytes()[self.at..].starts_with(b"\\u") {
                            return Err(self.error("unexpected end of hex escape"));
                        }
                        self.at += 2;
                        let second = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&second) {
                            return Err(self.error("lone leading surrogate in hex escape"));
                        }
                        let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                        char::from_u32(code).ok_or_else(|| self.error("invalid unicode code point"))?
                    }
                    0xDC00..=0xDFFF => return Err(self.error("lone leading surrogate in hex escape")),
                    code => char::from_u32(code).ok_or_else(|| self.error("invalid unicode code point"))?,
                }
            }
            _ => return Err(self.error("invalid escape")),
        };
        out.push(c);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let Some(digits) = self.bytes().get(self.at..self.at + 4) else {
            self.at = self.text.len();
            return Err(self.error("EOF while parsing a string"));
        };
        let mut code = 0;
        for &d in digits {
            let Some(value) = (d as char).to_digit(16) else {
                return Err(self.error("invalid escape"));
            };
            code = code * 16 + value;
        }
        self.at += 4;
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_borrow_unless_escaped() {
        let text = r#"{"plain": "abc", "escaped": "a\"b", "n\u0061me": 1}"#;
        let Json::Object(object) = Json::parse(text).unwrap() else {
            panic!("an object")
        };
        assert!(matches!(object.get("plain"), Some(Json::String(Cow::Borrowed("abc")))));
        assert!(matches!(object.get("escaped"), Some(Json::String(Cow::Owned(s))) if s == "a\"b"));
        assert_eq!(object.get("name"), Some(&Json::Number(1.into())));
    }

    #[test]
    fn a_repeated_name_means_its_last_value() {
        let Json::Object(object) = Json::parse(r#"{"a": 1, "a": 2}"#).unwrap() else {
            panic!("an object")
        };
        assert_eq!(object.get("a"), Some(&Json::Number(2.into())));
    }

    #[test]
    fn round_trips_and_compares_with_serde_json() {
        let value = json!({"s": "x", "n": -1.5, "b": true, "z": null, "a": [1, {"k": "v"}], "o": {}});
        let text = value.to_string();
        let parsed = Json::parse(&text).unwrap();
        assert!(parsed.same_as(&value));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&parsed.to_string()).unwrap(),
            value
        );
        let other = json!({"s": "x", "n": -1.5, "b": true, "z": null, "a": [1, {"k": "w"}], "o": {}});
        assert!(!parsed.same_as(&other));
        assert!(!parsed.same_as(&json!({"s": "x"})));
    }

    /// The parser accepts what serde_json accepts, and reads it the same.
    #[test]
    fn reads_what_serde_json_reads() {
        let deepest = "[".repeat(MAX_DEPTH - 1) + &"]".repeat(MAX_DEPTH - 1);
        let too_deep = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        let texts = [
            r#"{"status":"200","headers":{"x-a":[{"key":"X-A","value":"1"}]},"body":null}"#,
            " \t\r\n{ \"a\" : [ 1 , 2.5 , -3e2 , 4E-1 , 0 , -0 , true , false , null ] } \n",
            r#"{"esc":"q\"b\\s\/f\bf\ff\nn\rr\tt","u":"\u00e9\u4e2d\ud83d\ude00","raw":"é中😀"}"#,
            r#"[{},[],"",{"":""}]"#,
            "12345678901234567890123456789",
            "1e308",
            "\"\"",
            deepest.as_str(),
            // Not JSON:
            "",
            " ",
            "{",
            "[1,]",
            r#"{"a":1,}"#,
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "1e+",
            "+1",
            "1e400",
            "tru",
            "nul",
            "truex",
            r#""\x""#,
            r#""\u12""#,
            r#""\u12g4""#,
            r#""\ud800""#,
            r#""\ud800\u0041""#,
            r#""\udc00""#,
            "\"a\u{1}b\"",
            "\"a\tb\"",
            "\"unterminated",
            "\"ends in a backslash\\",
            "{} x",
            "[1 2]",
            r#"{"a" 1}"#,
            "{1:2}",
            r#"{"a":}"#,
            too_deep.as_str(),
        ];
        for text in texts {
            let ours = Json::parse(text);
            let theirs = serde_json::from_str::<serde_json::Value>(text);
            match (&ours, &theirs) {
                (Ok(ours), Ok(theirs)) => assert!(ours.same_as(theirs), "{text:?}: {ours:?} against {theirs:?}"),
                (Err(_), Err(_)) => {}
                _ => panic!("{text:?}: ours {ours:?}, serde_json {theirs:?}"),
            }
        }
        let error = Json::parse("{\n  \"a\": tru }").unwrap_err();
        assert_eq!(error.to_string(), "expected ident at line 2 column 8");
    }

    #[test]
    fn words_that_may_need_escaping() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut word = *b"abcdefgh";
                word[at] = b;
                let expected = b < 0x20 || b == b'"' || b == b'\\';
                assert_eq!(may_need_escape(u64::from_le_bytes(word)), expected, "{b:#x} at {at}");
            }
        }
        assert!(!may_need_escape(u64::from_le_bytes(*b"\xff\x80 ~!#[]")));
    }

    #[test]
    fn plain_runs_end_at_the_first_byte_to_escape() {
        let text = b"0123456789abcdef\"tail\\";
        assert_eq!(plain_run_end(text, 0), 16);
        assert_eq!(plain_run_end(text, 17), 21);
        assert_eq!(plain_run_end(text, 22), 22);
        assert_eq!(plain_run_end(b"no escapes at all, twenty-nine", 3), 30);
        for at in 0..20 {
            let mut bytes = vec![b'a'; 20];
            bytes[at] = b'\n';
            assert_eq!(plain_run_end(&bytes, 0), at);
        }
    }

    #[test]
    fn bad_text_and_deep_nesting_are_errors() {
        assert!(Json::parse("{\"a\": ").is_err());
        assert!(Json::parse("[1, 2] x").is_err());
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(
            Json::parse(&deep).is_err(),
            "serde_json's nesting limit keeps the stack safe"
        );
    }
}

#[cfg(test)]
mod properties {
    use super::Json;
    use crate::edge::arbitrary::json_text;
    use proptest::prelude::*;

    proptest! {
        /// The reader accepts exactly the texts serde_json accepts and reads the same value from
        /// them; what it read writes back as the same JSON.
        #[test]
        fn any_text_reads_as_serde_json_reads_it(text in json_text()) {
            let ours = Json::parse(&text);
            let theirs = serde_json::from_str::<serde_json::Value>(&text);
            prop_assert_eq!(
                ours.is_ok(),
                theirs.is_ok(),
                "{:?}: ours {:?}, serde_json {:?}",
                text,
                ours.as_ref().err().map(|e| e.to_string()),
                theirs.as_ref().err().map(|e| e.to_string())
            );
            if let (Ok(ours), Ok(theirs)) = (ours, theirs) {
                prop_assert!(ours.same_as(&theirs), "{:?}", text);
                let rewritten: serde_json::Value = serde_json::from_str(&ours.to_string()).expect("it writes JSON");
                prop_assert_eq!(rewritten, theirs);
            }
        }
    }
}
