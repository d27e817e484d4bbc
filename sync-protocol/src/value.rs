//! Field values.
//!
//! A [`Value`] is JSON restricted so that its canonical encoding is identical in Rust and in
//! TypeScript: `null`, booleans, strings, **integers within ±(2^53 − 1)** (exactly representable
//! as a JavaScript number), lists and maps with string keys. Floating-point numbers are rejected,
//! because two implementations can print the same float differently and then a signature's hash
//! would not match; decimals travel as strings (`"85.5"`), which also keeps the inspector's exact
//! digits.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest integer a [`Value`] may hold: 2^53 − 1 (JavaScript's `Number.MAX_SAFE_INTEGER`).
pub const MAX_SAFE_INTEGER: i64 = 9_007_199_254_740_991;

/// A field value. See the [module docs](self) for why floats are excluded.
///
/// The variants are public for pattern matching; an [`Int`](Value::Int) outside
/// ±[`MAX_SAFE_INTEGER`] is representable in Rust but is refused by [`Value::validate`],
/// serialisation and the canonical encoding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum Value {
    /// JSON `null`.
    #[default]
    Null,
    /// JSON `true` / `false`.
    Bool(bool),
    /// An integer within ±(2^53 − 1).
    Int(i64),
    /// A string (also used for decimals, dates and ids).
    String(String),
    /// A list, order preserved.
    List(Vec<Value>),
    /// A map; key order is irrelevant (the canonical encoding sorts keys).
    Map(BTreeMap<String, Value>),
}

/// Why a JSON document is not a valid [`Value`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// A JSON number with a fraction or exponent.
    #[error(
        "floating-point number {0} is not allowed in a field value; send decimals as strings, \
         e.g. \"85.5\""
    )]
    Float(String),
    /// An integer beyond what JavaScript represents exactly.
    #[error("integer {0} is outside ±(2^53 − 1); send it as a string")]
    IntOutOfRange(String),
}

impl Value {
    /// Checks the integer range everywhere inside the value.
    pub fn validate(&self) -> Result<(), ValueError> {
        match self {
            Value::Int(n) if !(-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(n) => {
                Err(ValueError::IntOutOfRange(n.to_string()))
            }
            Value::List(items) => items.iter().try_for_each(Value::validate),
            Value::Map(map) => map.values().try_for_each(Value::validate),
            _ => Ok(()),
        }
    }

    /// An integer value, refusing numbers outside ±(2^53 − 1).
    pub fn int(n: i64) -> Result<Self, ValueError> {
        let value = Value::Int(n);
        value.validate()?;
        Ok(value)
    }

    /// Converts from `serde_json`, refusing floats and out-of-range integers.
    pub fn from_json(json: serde_json::Value) -> Result<Self, ValueError> {
        Ok(match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::int(i)?
                } else if n.is_u64() {
                    return Err(ValueError::IntOutOfRange(n.to_string()));
                } else {
                    return Err(ValueError::Float(n.to_string()));
                }
            }
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(items) => Value::List(
                items
                    .into_iter()
                    .map(Value::from_json)
                    .collect::<Result<_, _>>()?,
            ),
            serde_json::Value::Object(map) => Value::Map(
                map.into_iter()
                    .map(|(k, v)| Ok((k, Value::from_json(v)?)))
                    .collect::<Result<_, ValueError>>()?,
            ),
        })
    }

    /// Converts to `serde_json` (for display or storage as JSON columns).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(n) => serde_json::Value::from(*n),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::List(items) => items.iter().map(Value::to_json).collect(),
            Value::Map(map) => serde_json::Value::Object(
                map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect(),
            ),
        }
    }

    /// The string inside, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<i32> for Value {
    fn from(n: i32) -> Self {
        Value::Int(i64::from(n))
    }
}

impl From<u32> for Value {
    fn from(n: u32) -> Self {
        Value::Int(i64::from(n))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl TryFrom<i64> for Value {
    type Error = ValueError;
    fn try_from(n: i64) -> Result<Self, ValueError> {
        Value::int(n)
    }
}

impl TryFrom<serde_json::Value> for Value {
    type Error = ValueError;
    fn try_from(json: serde_json::Value) -> Result<Self, ValueError> {
        Value::from_json(json)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(n) => {
                if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(n) {
                    serializer.serialize_i64(*n)
                } else {
                    Err(serde::ser::Error::custom(ValueError::IntOutOfRange(
                        n.to_string(),
                    )))
                }
            }
            Value::String(s) => serializer.serialize_str(s),
            Value::List(items) => serializer.collect_seq(items),
            Value::Map(map) => serializer.collect_map(map),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value without floating-point numbers")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
        Value::int(n).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
        match i64::try_from(n) {
            Ok(i) => Value::int(i).map_err(E::custom),
            Err(_) => Err(E::custom(ValueError::IntOutOfRange(n.to_string()))),
        }
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        Err(E::custom(ValueError::Float(n.to_string())))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = BTreeMap::new();
        while let Some((key, value)) = access.next_entry::<String, Value>()? {
            map.insert(key, value);
        }
        Ok(Value::Map(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_rejected_with_a_hint_to_use_strings() {
        let err = serde_json::from_str::<Value>(r#"{"a": 85.5}"#).expect_err("float");
        assert!(
            err.to_string().contains("send decimals as strings"),
            "{err}"
        );
        assert!(serde_json::from_str::<Value>("1.0").is_err());
        assert!(serde_json::from_str::<Value>("1e3").is_err());
    }

    #[test]
    fn integers_beyond_2_pow_53_are_rejected() {
        assert!(serde_json::from_str::<Value>("9007199254740991").is_ok());
        assert!(serde_json::from_str::<Value>("-9007199254740991").is_ok());
        assert!(serde_json::from_str::<Value>("9007199254740992").is_err());
        assert!(serde_json::from_str::<Value>("18446744073709551615").is_err());
        assert!(serde_json::to_string(&Value::Int(1 << 60)).is_err());
    }

    #[test]
    fn json_round_trip_preserves_the_value() {
        let json = serde_json::json!({"a": [1, "x", null, true, {"b": -3}]});
        let value = Value::from_json(json.clone()).expect("valid");
        assert_eq!(value.to_json(), json);
        let text = serde_json::to_string(&value).expect("serialises");
        assert_eq!(serde_json::from_str::<Value>(&text).expect("parses"), value);
    }
}
