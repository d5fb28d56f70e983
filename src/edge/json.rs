//! A function's result as parsed for validation: a JSON tree that borrows its strings from the
//! result text (only strings with escapes are copied) and keeps each object's members in a short
//! list. serde_json's `Value` copies every string and, with the `preserve_order` feature that
//! deno_core turns on, hashes every member name into an `IndexMap`; for a result of a few dozen
//! strings that was most of the proxy's share of a function call.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
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
    /// Parses a JSON text; serde_json's nesting limit applies.
    pub fn parse(text: &'a str) -> Result<Json<'a>, serde_json::Error> {
        serde_json::from_str(text)
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
            (Json::Object(a), Value::Object(b)) => {
                a.0.len() == b.len() && b.iter().all(|(name, y)| a.get(name).is_some_and(|x| x.same_as(y)))
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

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Json<'de>, E> {
        serde_json::Number::from_f64(n)
            .map(Json::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(s.to_string())))
    }
    fn visit_string<E>(self, s: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(MemberName(name)) = map.next_key()? {
            members.push((name, map.next_value()?));
        }
        Ok(Json::Object(Object(members)))
    }
}

/// A member name, borrowed from the text unless it had escapes (serde's own `Cow<str>` always
/// copies).
struct MemberName<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for MemberName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = MemberName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<MemberName<'de>, E> {
                Ok(MemberName(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<MemberName<'de>, E> {
                Ok(MemberName(Cow::Owned(s.to_string())))
            }
        }
        deserializer.deserialize_str(NameVisitor)
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
