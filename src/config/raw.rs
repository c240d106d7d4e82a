//! The YAML document as a generic value tree.
//!
//! `serde-saphyr` parses the text into [`Raw`], a small tree that keeps mapping keys in file
//! order and tells integers, floats, booleans and strings apart (so `port: "8081"` and
//! `timeout: 30` can be judged later). Only YAML syntax problems (bad indentation, duplicate
//! keys, unclosed quotes, several documents) fail here; they carry a line and column. Every
//! other judgement happens in `extract` and `validate`, which can report many problems at once.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::MessageFormatter;

use super::{Diagnostic, Position};

/// One YAML node. Scalars are typed the way YAML 1.2's core schema resolves plain scalars;
/// quoted scalars are always strings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Raw {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Raw>),
    /// Entries in file order; keys that were not strings are stringified.
    Map(Vec<(String, Raw)>),
}

impl Raw {
    /// What this node is, with its value for scalars: `integer 30`, `string "abc"`, `a list`.
    /// Used in "expected X, found Y" messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Raw::Null => "nothing (null)".to_string(),
            Raw::Bool(b) => format!("boolean {b}"),
            Raw::Int(i) => format!("integer {i}"),
            Raw::Float(f) => format!("number {f}"),
            Raw::Str(s) => format!("string {}", quote(s)),
            Raw::Seq(_) => "a list".to_string(),
            Raw::Map(_) => "a mapping".to_string(),
        }
    }
}

/// A string in double quotes with control characters escaped, so a message stays one line.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 80;
    let mut out = String::with_capacity(s.len().min(MAX) + 2);
    out.push('"');
    for (n, c) in s.chars().enumerate() {
        if n == MAX {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('"');
    out
}

/// Parses one YAML document. Empty input (or only comments) yields [`Raw::Null`].
pub(crate) fn parse(yaml: &str) -> Result<Raw, Diagnostic> {
    let options = serde_saphyr::options! {
        // YAML 1.2 booleans only: `yes`/`on` stay strings, so a bool key given `yes` gets a
        // clear "expected a boolean" error and a header value `on` stays text.
        strict_booleans: true,
        // `.nan`, `.inf` and overflowing literals such as `1e999` become floats like any
        // other, so a misplaced one is a type error with a key path, not a fatal parse error.
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options::<Raw>(yaml, options).map_err(|err| syntax_error(&err))
}

/// Converts a parser error into a one-line diagnostic with its position.
fn syntax_error(err: &serde_saphyr::Error) -> Diagnostic {
    let err = err.without_snippet();
    let text = serde_saphyr::UserMessageFormatter.format_message(err);
    let message = one_line(&text);
    let position = err.location().filter(|l| l.line() > 0).map(|l| Position {
        line: l.line(),
        column: l.column(),
    });
    Diagnostic {
        path: String::new(),
        message,
        position,
    }
}

/// Collapses whitespace runs (including newlines) into single spaces.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(i128::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Int(i128::from(v)))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
        i128::try_from(v)
            .map(Raw::Int)
            .map_err(|_| E::custom("integer too large"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Raw>()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Raw>()? {
            let key = match key {
                Raw::Str(s) => s,
                Raw::Null => "null".to_string(),
                Raw::Bool(b) => b.to_string(),
                Raw::Int(i) => i.to_string(),
                Raw::Float(f) => f.to_string(),
                Raw::Seq(_) | Raw::Map(_) => {
                    return Err(de::Error::custom(
                        "a mapping key must be a plain value, not a list or mapping",
                    ))
                }
            };
            let value = map.next_value::<Raw>()?;
            entries.push((key, value));
        }
        Ok(Raw::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn scalars_keep_their_yaml_type() {
        let raw =
            parse("a: 30\nb: \"30\"\nc: 1.5\nd: true\ne: yes\nf: ~\ng: 90s\nh: -3\n").unwrap();
        let Raw::Map(entries) = raw else {
            panic!("not a map")
        };
        let values: Vec<_> = entries.into_iter().map(|(_, v)| v).collect();
        assert_eq!(
            values,
            vec![
                Raw::Int(30),
                Raw::Str("30".into()),
                Raw::Float(1.5),
                Raw::Bool(true),
                Raw::Str("yes".into()),
                Raw::Null,
                Raw::Str("90s".into()),
                Raw::Int(-3),
            ]
        );
    }

    #[test]
    fn keys_keep_file_order() {
        let raw = parse("z: 1\na: 2\nm: 3\n").unwrap();
        let Raw::Map(entries) = raw else {
            panic!("not a map")
        };
        let keys: Vec<_> = entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["z", "a", "m"]);
    }

    #[test]
    fn empty_and_comment_only_documents_are_null() {
        assert_eq!(parse("").unwrap(), Raw::Null);
        assert_eq!(parse("# just a comment\n\n# another\n").unwrap(), Raw::Null);
    }

    #[test]
    fn syntax_errors_have_a_position_and_one_line() {
        let err = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.position.is_some(), "{err:?}");
        assert!(!err.message.contains('\n'));
        let err = parse("a: 1\na: 2\n").unwrap_err();
        let pos = err.position.unwrap();
        assert_eq!(pos.line, 2, "{err:?}");
    }

    #[test]
    fn quote_escapes_controls() {
        assert_eq!(quote("a\nb\"c"), "\"a\\nb\\\"c\"");
    }
}
