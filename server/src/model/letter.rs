//! The experts' opinion letter (验收合格意见书) as a sync entity (PROTOCOL.md §15): its type,
//! sections and field names. One letter per acceptance round, with an id derived from the
//! round's, so that drafting twice finds the same entity.

use uuid::Uuid;

/// The letter's entity type. Only the server creates letters.
pub const LETTER_TYPE: &str = "opinion_letter";

/// The section of the letter's text, written for the county office; the letter's hash is this
/// section's hash (PROTOCOL.md §3).
pub const TEXT_SECTION: &str = "letter";

/// The set field of the experts' words: each element a device signature of a `letter`
/// statement.
pub const OPINIONS_FIELD: &str = "experts/opinions";

/// Header fields (section `""`), written by the server only.
pub const ROUND_FIELD: &str = "round_id";
pub const RECORD_FIELD: &str = "record";
pub const STATUS_FIELD: &str = "status";
pub const ISSUED_FIELD: &str = "issued";

/// `status` values.
pub const DRAFT: &str = "draft";
pub const ISSUED: &str = "issued";

/// The text fields of the letter, in the order a letter reads.
pub const TEXT_FIELDS: &[&str] = &[
    "number",
    "title",
    "basis",
    "date",
    "organiser",
    "panel",
    "method",
    "situation",
    "opinions",
    "problems",
    "conclusion",
    "record_hash",
];

/// The full key of a text field (`letter/<name>`).
pub fn text_key(name: &str) -> String {
    format!("{TEXT_SECTION}/{name}")
}

/// Namespace of letter ids (UUID v5 over the round's id).
const LETTER_NAMESPACE: Uuid = Uuid::from_u128(0x6c65_7474_6572_4000_8000_7961_6e73_686f);

/// The id of the letter of round `round`.
pub fn letter_id(round: Uuid) -> Uuid {
    Uuid::new_v5(&LETTER_NAMESPACE, round.as_bytes())
}

/// The experts' conclusion (验收结论).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LetterConclusion {
    /// 同意通过
    Pass,
    /// 限期整改后通过
    PassAfterRectification,
    /// 不予通过
    Fail,
}

impl LetterConclusion {
    pub fn code(self) -> &'static str {
        match self {
            LetterConclusion::Pass => "pass",
            LetterConclusion::PassAfterRectification => "pass_after_rectification",
            LetterConclusion::Fail => "fail",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        [Self::Pass, Self::PassAfterRectification, Self::Fail]
            .into_iter()
            .find(|c| c.code() == code)
    }

    pub fn name_zh(self) -> &'static str {
        match self {
            LetterConclusion::Pass => "同意通过",
            LetterConclusion::PassAfterRectification => "限期整改后通过",
            LetterConclusion::Fail => "不予通过",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_has_one_letter_id_and_rounds_differ() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        assert_eq!(letter_id(a), letter_id(a));
        assert_ne!(letter_id(a), letter_id(b));
        assert_ne!(letter_id(a), a);
    }

    #[test]
    fn conclusions_round_trip_their_codes() {
        for c in [
            LetterConclusion::Pass,
            LetterConclusion::PassAfterRectification,
            LetterConclusion::Fail,
        ] {
            assert_eq!(LetterConclusion::from_code(c.code()), Some(c));
        }
        assert_eq!(LetterConclusion::from_code("maybe"), None);
    }
}
