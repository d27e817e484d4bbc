//! Reading TOML data files (templates, campaigns) so that **every** error is reported with its
//! location.
//!
//! `serde` derives stop at the first problem, which is useless for an administrator fixing a
//! 28-item template by hand. So the file is first read into a `Node` tree that keeps the byte
//! span of every value (via [`toml::Spanned`]) and accepts any shape; the template and campaign
//! readers then walk that tree with a `Reader`, collecting a [`DataFileError`] for every missing,
//! unknown, mistyped or invalid value and carrying on.
//!
//! Vocabulary:
//! - **path**: where a value sits, in the file's own key names with zero-based array indices,
//!   e.g. `sections[3].items[2].answer[0].threshold`;
//! - **line**: the one-based line of the value in the file (of the enclosing table when the key
//!   is missing), when known.

use std::{collections::BTreeMap, fmt, ops::Range};

use serde::{
    Deserialize, Deserializer, Serialize,
    de::{MapAccess, SeqAccess, Visitor},
};
use utoipa::ToSchema;

/// What is wrong at a location of a data file. Tests and clients match on this; the message says
/// it in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DataErrorKind {
    /// The text is not valid TOML at all (then it is the only error).
    Syntax,
    /// A required key is absent.
    MissingKey,
    /// A key the format does not define (often a typo of a defined one).
    UnknownKey,
    /// A value of the wrong TOML type (a string where a list is expected, …).
    WrongType,
    /// A text that must not be empty, or a list that must not be empty.
    Empty,
    /// A value that must be unique is repeated (item number, section, part key, deadline key).
    Duplicate,
    /// A department/section code outside the fixed list.
    UnknownDepartment,
    /// An answer kind other than `pass_fail`, `number`, `text`.
    UnknownAnswerKind,
    /// A disposition other than `cancel`, `continue`, `never_produced`.
    UnknownDisposition,
    /// An inspection method other than the three defined.
    UnknownMethod,
    /// A comparison operator other than `≤ ≥ < > =` (or their ASCII spellings).
    UnknownOperator,
    /// A photo expectation other than `required`, `optional`, `none`.
    UnknownPhotoExpectation,
    /// A number part without a unit.
    MissingUnit,
    /// A threshold that is neither a decimal string nor `design_value`.
    NotADecimal,
    /// A threshold given without an operator or the other way round.
    IncompleteRule,
    /// A key that is not a lowercase ASCII identifier.
    BadKey,
    /// A date that is not `YYYY-MM-DD`.
    BadDate,
    /// A deadline anchor event outside the fixed list.
    UnknownAnchor,
    /// A responsible party outside the fixed list.
    UnknownResponsible,
    /// A deadline's `tracks` outside the fixed list of work.
    UnknownWork,
    /// A combination the format forbids (e.g. a deadline with both a date and a period).
    Conflict,
    /// A number outside its allowed range.
    OutOfRange,
}

/// One problem in a data file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DataFileError {
    /// Path of the value, e.g. `sections[3].items[2].answer[0].threshold`.
    pub path: String,
    /// One-based line in the file, when known.
    pub line: Option<usize>,
    /// The kind of problem.
    pub kind: DataErrorKind,
    /// What is wrong, for a person.
    pub message: String,
}

impl fmt::Display for DataFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Every problem found in a data file (never empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, thiserror::Error)]
pub struct DataFileErrors {
    /// The problems, in file order as far as the reader walked it.
    pub errors: Vec<DataFileError>,
}

impl fmt::Display for DataFileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error(s) in data file", self.errors.len())?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl DataFileErrors {
    /// Whether any error is of `kind` at exactly `path` (handy in tests).
    pub fn has(&self, kind: DataErrorKind, path: &str) -> bool {
        self.errors.iter().any(|e| e.kind == kind && e.path == path)
    }
}

/// Why a data file could not be loaded from disk: unreadable, or invalid.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is invalid.
    #[error("{path}: {errors}")]
    Invalid {
        /// The path given.
        path: String,
        /// Every problem found.
        errors: DataFileErrors,
    },
}

/// A TOML value with the byte span it came from.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub span: Option<Range<usize>>,
    pub value: NodeValue,
}

/// The shape of a [`Node`]: tables and arrays keep spans of their children; leaves are plain.
#[derive(Debug, Clone)]
pub(crate) enum NodeValue {
    Table(BTreeMap<String, Node>),
    Array(Vec<Node>),
    Leaf(toml::Value),
}

impl NodeValue {
    fn type_name(&self) -> &'static str {
        match self {
            NodeValue::Table(_) => "table",
            NodeValue::Array(_) => "array",
            NodeValue::Leaf(v) => v.type_str(),
        }
    }
}

/// The key toml uses to smuggle a datetime through `deserialize_any` (`toml_datetime`'s
/// private `FIELD`; it is stable across toml 0.5–0.8). Tested by the campaign date tests.
const TOML_DATETIME_FIELD: &str = "$__toml_private_datetime";

impl<'de> Deserialize<'de> for NodeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NodeValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any TOML value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<NodeValue, E> {
                Ok(NodeValue::Leaf(toml::Value::Boolean(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<NodeValue, E> {
                Ok(NodeValue::Leaf(toml::Value::Integer(v)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<NodeValue, E> {
                i64::try_from(v)
                    .map(|v| NodeValue::Leaf(toml::Value::Integer(v)))
                    .map_err(E::custom)
            }
            fn visit_f64<E>(self, v: f64) -> Result<NodeValue, E> {
                Ok(NodeValue::Leaf(toml::Value::Float(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<NodeValue, E> {
                Ok(NodeValue::Leaf(toml::Value::String(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<NodeValue, E> {
                Ok(NodeValue::Leaf(toml::Value::String(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeValue, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<toml::Spanned<NodeValue>>()? {
                    items.push(spanned_node(item));
                }
                Ok(NodeValue::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeValue, A::Error> {
                let mut table = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key == TOML_DATETIME_FIELD {
                        let text: String = map.next_value()?;
                        let dt = text
                            .parse::<toml::value::Datetime>()
                            .map_err(serde::de::Error::custom)?;
                        return Ok(NodeValue::Leaf(toml::Value::Datetime(dt)));
                    }
                    let value = map.next_value::<toml::Spanned<NodeValue>>()?;
                    table.insert(key, spanned_node(value));
                }
                Ok(NodeValue::Table(table))
            }
        }
        d.deserialize_any(V)
    }
}

fn spanned_node(s: toml::Spanned<NodeValue>) -> Node {
    let span = s.span();
    Node {
        span: Some(span),
        value: s.into_inner(),
    }
}

/// Line starts of a text, to turn byte offsets into one-based line numbers.
#[derive(Debug)]
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines(starts)
    }
    fn line_of(&self, offset: usize) -> usize {
        self.0.partition_point(|&start| start <= offset)
    }
}

/// Walks a [`Node`] tree, collecting errors instead of stopping at the first.
#[derive(Debug)]
pub(crate) struct Reader {
    lines: Lines,
    pub errors: Vec<DataFileError>,
}

/// A table being read: its entries, path and line, and which keys have been consumed.
#[derive(Debug)]
pub(crate) struct TableCursor<'a> {
    pub path: String,
    line: Option<usize>,
    entries: &'a BTreeMap<String, Node>,
}

impl Reader {
    /// Parses `text` into a root table; a syntax error is returned as the only error.
    pub fn parse(text: &str) -> Result<(Self, BTreeMap<String, Node>), DataFileErrors> {
        let lines = Lines::new(text);
        match toml::from_str::<NodeValue>(text) {
            Ok(NodeValue::Table(root)) => Ok((
                Reader {
                    lines,
                    errors: Vec::new(),
                },
                root,
            )),
            Ok(other) => Err(DataFileErrors {
                errors: vec![DataFileError {
                    path: String::new(),
                    line: None,
                    kind: DataErrorKind::WrongType,
                    message: format!("expected a TOML document, found {}", other.type_name()),
                }],
            }),
            Err(e) => Err(DataFileErrors {
                errors: vec![DataFileError {
                    path: String::new(),
                    line: e.span().map(|s| lines.line_of(s.start)),
                    kind: DataErrorKind::Syntax,
                    message: e.message().to_owned(),
                }],
            }),
        }
    }

    /// Finishes reading: the value when there were no errors, else every error.
    pub fn finish<T>(self, value: T) -> Result<T, DataFileErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(DataFileErrors {
                errors: self.errors,
            })
        }
    }

    pub fn line(&self, node: &Node) -> Option<usize> {
        node.span.as_ref().map(|s| self.lines.line_of(s.start))
    }

    pub fn error(
        &mut self,
        path: impl Into<String>,
        line: Option<usize>,
        kind: DataErrorKind,
        message: impl Into<String>,
    ) {
        self.errors.push(DataFileError {
            path: path.into(),
            line,
            kind,
            message: message.into(),
        });
    }

    /// Reports a value at `node` as invalid.
    pub fn error_at(
        &mut self,
        node: &Node,
        path: &str,
        kind: DataErrorKind,
        message: impl Into<String>,
    ) {
        let line = self.line(node);
        self.error(path, line, kind, message);
    }

    /// Opens a table node; reports a wrong type and returns `None` otherwise.
    pub fn table<'a>(&mut self, node: &'a Node, path: &str) -> Option<TableCursor<'a>> {
        match &node.value {
            NodeValue::Table(entries) => Some(TableCursor {
                path: path.to_owned(),
                line: self.line(node),
                entries,
            }),
            other => {
                let msg = format!("expected a table, found {}", other.type_name());
                self.error_at(node, path, DataErrorKind::WrongType, msg);
                None
            }
        }
    }

    /// The root table as a cursor.
    pub fn root<'a>(&self, root: &'a BTreeMap<String, Node>) -> TableCursor<'a> {
        TableCursor {
            path: String::new(),
            line: None,
            entries: root,
        }
    }

    /// Reports every key of `table` not in `known`.
    pub fn deny_unknown(&mut self, table: &TableCursor<'_>, known: &[&str]) {
        for (key, node) in table.entries {
            if !known.contains(&key.as_str()) {
                let path = table.child(key);
                let msg = format!("unknown key `{key}`; expected one of: {}", known.join(", "));
                self.error_at(node, &path, DataErrorKind::UnknownKey, msg);
            }
        }
    }

    /// A required key: reports it missing (at the table's line) when absent.
    pub fn required<'a>(&mut self, table: &TableCursor<'a>, key: &str) -> Option<&'a Node> {
        let node = table.entries.get(key);
        if node.is_none() {
            self.error(
                table.child(key),
                table.line,
                DataErrorKind::MissingKey,
                format!("missing key `{key}`"),
            );
        }
        node
    }

    /// A string value (any string, possibly empty).
    pub fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            NodeValue::Leaf(toml::Value::String(s)) => Some(s.clone()),
            other => {
                let msg = format!("expected a string, found {}", other.type_name());
                self.error_at(node, path, DataErrorKind::WrongType, msg);
                None
            }
        }
    }

    /// A non-empty (after trimming) string, returned trimmed.
    pub fn text(&mut self, node: &Node, path: &str) -> Option<String> {
        let s = self.string(node, path)?;
        let trimmed = s.trim();
        if trimmed.is_empty() {
            self.error_at(node, path, DataErrorKind::Empty, "must not be empty");
            None
        } else {
            Some(trimmed.to_owned())
        }
    }

    /// A required non-empty string key.
    pub fn req_text(&mut self, table: &TableCursor<'_>, key: &str) -> Option<String> {
        let node = self.required(table, key)?;
        self.text(node, &table.child(key))
    }

    /// A required key whose value is an identifier (`[a-z][a-z0-9_]*`): deadline keys, answer
    /// part keys.
    pub fn req_identifier(&mut self, table: &TableCursor<'_>, key: &str) -> Option<String> {
        let text = self.req_text(table, key)?;
        if is_identifier(&text) {
            return Some(text);
        }
        if let Some(node) = table.get(key) {
            self.error_at(
                node,
                &table.child(key),
                DataErrorKind::BadKey,
                format!("{text:?} is not [a-z][a-z0-9_]*"),
            );
        }
        None
    }

    /// An optional non-empty string key.
    pub fn opt_text(&mut self, table: &TableCursor<'_>, key: &str) -> Option<String> {
        let node = table.entries.get(key)?;
        self.text(node, &table.child(key))
    }

    pub fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match &node.value {
            NodeValue::Leaf(toml::Value::Boolean(b)) => Some(*b),
            other => {
                let msg = format!("expected true or false, found {}", other.type_name());
                self.error_at(node, path, DataErrorKind::WrongType, msg);
                None
            }
        }
    }

    /// An optional boolean key with a default.
    pub fn opt_bool(&mut self, table: &TableCursor<'_>, key: &str, default: bool) -> bool {
        match table.entries.get(key) {
            Some(node) => self.boolean(node, &table.child(key)).unwrap_or(default),
            None => default,
        }
    }

    pub fn integer(&mut self, node: &Node, path: &str) -> Option<i64> {
        match &node.value {
            NodeValue::Leaf(toml::Value::Integer(i)) => Some(*i),
            other => {
                let msg = format!("expected an integer, found {}", other.type_name());
                self.error_at(node, path, DataErrorKind::WrongType, msg);
                None
            }
        }
    }

    /// An array node's elements; reports a wrong type otherwise.
    pub fn array<'a>(&mut self, node: &'a Node, path: &str) -> Option<&'a [Node]> {
        match &node.value {
            NodeValue::Array(items) => Some(items),
            other => {
                let msg = format!("expected an array, found {}", other.type_name());
                self.error_at(node, path, DataErrorKind::WrongType, msg);
                None
            }
        }
    }
}

impl<'a> TableCursor<'a> {
    /// The path of a key of this table.
    pub fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries.get(key)
    }

    pub fn line(&self) -> Option<usize> {
        self.line
    }
}

/// Whether `key` is a lowercase ASCII identifier (`[a-z][a-z0-9_]*`), the shape of every code
/// and part key: they end up in field keys and URLs.
fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn spans_reach_values_inside_arrays_of_tables() {
        let text = "a = 1\n[[s]]\nk = \"x\"\n[[s.items]]\nn = 2\nd = 2024-02-29\n";
        let (reader, root) = Reader::parse(text).unwrap();
        let NodeValue::Array(s) = &root["s"].value else {
            panic!()
        };
        let NodeValue::Table(t) = &s[0].value else {
            panic!()
        };
        assert_eq!(reader.line(&t["k"]), Some(3));
        let NodeValue::Array(items) = &t["items"].value else {
            panic!()
        };
        let NodeValue::Table(item) = &items[0].value else {
            panic!()
        };
        assert_eq!(reader.line(&item["n"]), Some(5));
        assert!(matches!(
            item["d"].value,
            NodeValue::Leaf(toml::Value::Datetime(_))
        ));
        assert_eq!(reader.line(&item["d"]), Some(6));
    }

    #[test]
    fn syntax_error_has_a_line() {
        let errs = Reader::parse("a = 1\nb = = 2\n").unwrap_err();
        assert_eq!(errs.errors.len(), 1);
        assert_eq!(errs.errors[0].kind, DataErrorKind::Syntax);
        assert_eq!(errs.errors[0].line, Some(2));
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("result"));
        assert!(is_identifier("design_2"));
        assert!(!is_identifier("2x"));
        assert!(!is_identifier("Result"));
        assert!(!is_identifier("a.b"));
        assert!(!is_identifier(""));
    }
}
