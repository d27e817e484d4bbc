//! An acceptance round: one visit to a mine, one record.

use uuid::Uuid;

/// One acceptance visit (初验 or department acceptance) of a mine: one record, filled through
/// sync as the entity with the same id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptanceRound {
    pub id: Uuid,
    pub mine_id: Uuid,
    /// 1 for the first visit; re-inspections count on.
    pub round_no: i32,
    /// The round this one re-inspects.
    pub previous_round_id: Option<Uuid>,
    /// `template-id@version` the record is filled against.
    pub template_ref: String,
    /// The mine's disposition when the round was opened (decides which items apply).
    pub disposition: String,
    pub created_by: Option<Uuid>,
    pub created_at: i64,
}
