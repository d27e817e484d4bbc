//! The case log: 一事一议 and 线索移送 records on a mine's timeline.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    AppState,
    error::{AppError, Result},
    identity::auth::{AuthUser, visible_mine},
    model::{CaseRecord, Role},
};

/// A case record to add: 一事一议 or 线索移送 (announcements come from the `announce` transition).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NewCase {
    /// 一事一议: a hard case studied collectively.
    CollectiveStudy {
        question: String,
        decision: String,
        #[schema(value_type = String, format = Date)]
        date: NaiveDate,
        /// Departments and people present.
        participants: Vec<String>,
    },
    /// 线索移送: a holder who failed their duties, referred to prosecutors or courts.
    Referral {
        what: String,
        /// e.g. 县检察院.
        to: String,
        /// Evidence list (photo ids, documents).
        evidence: Vec<String>,
    },
}

pub async fn add_case(
    state: &AppState,
    caller: &AuthUser,
    id: Uuid,
    case: NewCase,
) -> Result<CaseRecord> {
    caller.require(&[Role::Admin, Role::CountyOffice, Role::TownshipOfficer])?;
    let mine = visible_mine(state, caller, id).await?;
    let (kind, empty) = match &case {
        NewCase::CollectiveStudy {
            question, decision, ..
        } => (
            "collective_study",
            question.trim().is_empty() || decision.trim().is_empty(),
        ),
        NewCase::Referral { what, to, .. } => {
            ("referral", what.trim().is_empty() || to.trim().is_empty())
        }
    };
    if empty {
        return Err(AppError::bad_request(
            "a case record needs its question and decision (一事一议) or what and to whom (线索移送)",
        ));
    }
    let mut data =
        serde_json::to_value(&case).map_err(|e| AppError::Internal(format!("case encode: {e}")))?;
    if let Some(obj) = data.as_object_mut() {
        obj.remove("kind");
    }
    let record = CaseRecord {
        id: Uuid::now_v7(),
        mine_id: mine.id,
        kind: kind.into(),
        data,
        created_by: Some(caller.id()),
        created_at: state.clock.now_ms(),
    };
    state.store.add_case_record(&record).await?;
    Ok(record)
}
