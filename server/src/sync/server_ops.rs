//! The server's own ops on entities, outside every device's series (PROTOCOL.md §7 does not
//! apply: the server has none): publishing photo findings into a record, creating an opinion
//! letter and writing its text for the county office, issuing it. They run inside
//! `SyncStore::sync_server_write`, under the same write lock as device pushes, so they take
//! their commit sequence numbers in order with everyone else's and reach every phone through
//! the feed.

use std::collections::BTreeMap;

use sync_protocol::{
    AllowAll, Change, EntityId, EntityState, Hlc, MergeContext, Op, OpBody, OpId, Value,
    merge::InPlace,
};
use uuid::Uuid;

use super::policy::scope_of;
use crate::{
    model::record::SERVER_DEVICE,
    store::{ChangeRow, EntityRow, SyncWrites},
};

/// `set` bodies for the fields of `values` whose value differs from `state`'s (all of them
/// when the entity does not exist yet), each based on the field's current revision.
pub fn changed_fields(state: Option<&EntityState>, values: BTreeMap<String, Value>) -> Vec<OpBody> {
    values
        .into_iter()
        .filter_map(|(field, value)| {
            let current = state.and_then(|s| s.fields.get(&field));
            if current.is_some_and(|f| f.value == value) {
                return None;
            }
            Some(OpBody::Set {
                field,
                value,
                base_rev: current.map_or(0, |f| f.rev),
            })
        })
        .collect()
}

/// Applies `bodies` in order to `entity` (taken from `entities`, the states the store loaded;
/// a `create` makes it) as the server, from commit sequence number `commit_seq` on. Ops that
/// do not apply are skipped; the entity row is written when any did.
pub fn apply(
    mut entities: BTreeMap<EntityId, EntityState>,
    entity: EntityId,
    bodies: Vec<OpBody>,
    mut commit_seq: u64,
    now: i64,
) -> SyncWrites {
    let mut writes = SyncWrites::default();
    let mut slot = entities.remove(&entity);
    let mut last_commit = None;
    for body in bodies {
        let op = Op {
            id: OpId(Uuid::now_v7()),
            device: SERVER_DEVICE,
            seq: 0,
            hlc: Hlc::new(u64::try_from(now).unwrap_or(0), 0),
            entity,
            body,
        };
        let ctx = MergeContext {
            policy: &AllowAll,
            commit_seq,
        };
        match sync_protocol::merge_in_place(&mut slot, &op, &ctx) {
            InPlace::Applied(body) | InPlace::Conflict(body) => {
                let entity_type = slot
                    .as_ref()
                    .map(|s| s.entity_type.clone())
                    .unwrap_or_default();
                writes.changes.push(ChangeRow {
                    change: Change {
                        commit_seq,
                        entity,
                        entity_type,
                        op: op.id,
                        device: op.device,
                        hlc: op.hlc,
                        body,
                    },
                    scope: None,
                });
                last_commit = Some(commit_seq);
                commit_seq += 1;
            }
            InPlace::Duplicate | InPlace::Rejected(_) => {}
        }
    }
    if let (Some(state), Some(last_commit)) = (slot, last_commit) {
        let scope = scope_of(&state);
        for c in &mut writes.changes {
            c.scope = scope;
        }
        writes.entities.push(EntityRow {
            state,
            scope,
            last_commit,
        });
    }
    writes
}
