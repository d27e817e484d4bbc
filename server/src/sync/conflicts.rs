//! Unresolved conflicts a person can resolve.

use std::collections::HashMap;

use sync_protocol::{Candidate, EntityId, EntityState};

use super::policy::{SyncPolicy, visibility};
use crate::{AppState, error::Result, identity::auth::AuthUser, store::ConflictRow};

/// One field waiting for a person to choose among concurrent values.
#[derive(Debug, Clone)]
pub struct ConflictItem {
    pub entity: EntityId,
    pub entity_type: String,
    pub field: String,
    pub section: String,
    /// The field revision a `resolve` op must be based on.
    pub rev: u64,
    /// Every concurrent value (oldest first; the last is the provisional winner).
    pub candidates: Vec<Candidate>,
    pub since_commit: u64,
}

/// Unresolved conflicts the caller can see and resolve: those in sections the sync policy lets
/// the caller write (a `resolve` op is checked by the same [`SyncPolicy::may_write`]), so the
/// list never offers a conflict whose resolution would come back `forbidden`.
pub async fn list(state: &AppState, caller: &AuthUser) -> Result<Vec<ConflictItem>> {
    let rows = state.store.sync_conflicts(visibility(caller), 1000).await?;
    let policy = SyncPolicy::for_caller(caller, &state.inspecting_departments);
    let mine = |row: &ConflictRow| policy.may_write(&row.section).is_ok();
    let rows: Vec<ConflictRow> = rows.into_iter().filter(|r| mine(r)).collect();
    let mut ids: Vec<EntityId> = rows.iter().map(|r| r.entity).collect();
    ids.sort();
    ids.dedup();
    let states: HashMap<EntityId, EntityState> = state
        .store
        .sync_entities(&ids)
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let field = states.get(&row.entity)?.fields.get(&row.field)?;
            let conflict = field.conflict.as_ref()?;
            Some(ConflictItem {
                entity: row.entity,
                entity_type: row.entity_type,
                field: row.field,
                section: row.section,
                rev: field.rev,
                candidates: conflict.candidates.clone(),
                since_commit: row.since_commit,
            })
        })
        .collect())
}
