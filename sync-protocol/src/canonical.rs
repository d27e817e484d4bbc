//! Canonical encoding and hashing.
//!
//! The **canonical encoding** of a [`Value`] is JSON with no whitespace, object keys sorted by
//! UTF-16 code units, strings escaped exactly as ECMAScript's `JSON.stringify` does, and
//! integers printed in plain decimal. It is RFC 8785 (JCS) restricted to integers, so
//! `JSON.stringify` with sorted keys in the PWA produces the same bytes. The **content hash** is
//! the lowercase hex SHA-256 of those UTF-8 bytes.
//!
//! A **section hash** ([`section_hash`]) is what a signature covers: the content hash of the
//! *section document* — the entity id and type, the section name, every scalar field of the
//! section and every set field of the section (elements sorted). A section whose fields hold an
//! unresolved conflict has no hash: nobody can sign "one of these values".

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::op::section_of;
use crate::state::EntityState;
use crate::value::{Value, ValueError};

/// Why a section cannot be hashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// A field of the section holds an unresolved conflict.
    #[error("field {field:?} has an unresolved conflict; resolve it before signing")]
    Conflicted {
        /// The conflicted field.
        field: String,
    },
    /// A value could not be encoded.
    #[error(transparent)]
    Value(#[from] ValueError),
}

/// Compares strings by UTF-16 code units, the order JavaScript's default sort uses and RFC 8785
/// prescribes (it differs from byte order only for characters beyond U+FFFF vs U+E000..U+FFFF).
pub fn cmp_utf16(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// The canonical JSON text of a value.
pub fn canonical_json(value: &Value) -> Result<String, ValueError> {
    value.validate()?;
    let mut out = String::new();
    write_value(&mut out, value);
    Ok(out)
}

/// Lowercase hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Lowercase hex SHA-256 of the canonical JSON of a value.
pub fn content_hash(value: &Value) -> Result<String, ValueError> {
    Ok(sha256_hex(canonical_json(value)?.as_bytes()))
}

/// The document a section signature covers; see the [module docs](self).
///
/// Shape: `{"entity": id, "entity_type": …, "fields": {key: value}, "section": name,
/// "sets": {key: [elements sorted by canonical JSON]}}`, with full field keys
/// (`"water_resources/item14.result"`).
pub fn section_document(state: &EntityState, section: &str) -> Result<Value, HashError> {
    let mut fields = BTreeMap::new();
    for (key, field) in state
        .fields
        .iter()
        .filter(|(k, _)| section_of(k) == section)
    {
        if field.conflict.is_some() {
            return Err(HashError::Conflicted { field: key.clone() });
        }
        fields.insert(key.clone(), field.value.clone());
    }
    let mut sets = BTreeMap::new();
    for (key, set) in state.sets.iter().filter(|(k, _)| section_of(k) == section) {
        let mut elements = set
            .elements
            .values()
            .map(|e| Ok((canonical_json(&e.value)?, e.value.clone())))
            .collect::<Result<Vec<_>, ValueError>>()?;
        elements.sort_by(|a, b| cmp_utf16(&a.0, &b.0));
        sets.insert(
            key.clone(),
            Value::List(elements.into_iter().map(|(_, v)| v).collect()),
        );
    }
    let mut doc = BTreeMap::new();
    doc.insert("entity".to_owned(), Value::String(state.id.to_string()));
    doc.insert(
        "entity_type".to_owned(),
        Value::String(state.entity_type.clone()),
    );
    doc.insert("fields".to_owned(), Value::Map(fields));
    doc.insert("section".to_owned(), Value::String(section.to_owned()));
    doc.insert("sets".to_owned(), Value::Map(sets));
    Ok(Value::Map(doc))
}

/// The content hash of a section: what a `sign` op's `content_hash` must equal.
pub fn section_hash(state: &EntityState, section: &str) -> Result<String, HashError> {
    Ok(content_hash(&section_document(state, section)?)?)
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_string(out, s),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Map(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| cmp_utf16(a.0, b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// Escapes like ECMAScript `JSON.stringify`: `"` `\` and control characters only; short forms
/// for `\b \t \n \f \r`, `\u00xx` (lowercase hex) for the other controls; everything else,
/// including non-ASCII and U+2028/U+2029, verbatim.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{0c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(json: &str) -> String {
        let value: Value = serde_json::from_str(json).expect("valid value");
        canonical_json(&value).expect("encodable")
    }

    #[test]
    fn keys_are_sorted_and_whitespace_removed() {
        assert_eq!(
            canon(r#"{ "b": 1, "a": [true, null] }"#),
            r#"{"a":[true,null],"b":1}"#
        );
    }

    #[test]
    fn strings_are_escaped_like_json_stringify() {
        assert_eq!(
            canon(r#""a\"b\\c\n\u0001\u007f/é\u2028""#),
            "\"a\\\"b\\\\c\\n\\u0001\u{7f}/é\u{2028}\""
        );
    }

    #[test]
    fn keys_sort_by_utf16_code_units_not_bytes() {
        // U+FF61 sorts after U+1F600 in UTF-8 bytes but before it in UTF-16 code units.
        assert_eq!(
            canon("{\"\u{1F600}\":1,\"\u{FF61}\":2}"),
            "{\"\u{1F600}\":1,\"\u{FF61}\":2}"
        );
    }
}
