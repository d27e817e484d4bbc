//! Changes: the server's feed of committed effects, and pagination of pulls.
//!
//! Vocabulary:
//! - **Commit sequence** (`commit_seq`): a server-wide counter, +1 per change, assigned by the
//!   authority. A device's **cursor** is the largest commit sequence it has applied.
//! - **Change** ([`Change`]): one committed effect, carrying *snapshots*, not deltas: the new
//!   [`FieldState`] of a field, the new [`OrSet`] of a set field, the created entity, a signature,
//!   a tombstone. Applying changes in commit order to a mirror therefore reproduces the server's
//!   state exactly ([`apply_change`]), and a device that was offline for a month pulls only what
//!   changed since its cursor — O(changes), never O(history).
//! - **Page** ([`Page`]): at most `limit` changes after a cursor, with `has_more`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hlc::Hlc;
use crate::ids::{DeviceId, EntityId, OpId};
use crate::state::{EntityState, FieldState, OrSet, SectionSignature, Withdrawal};

/// One committed change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Position in the server's change feed; strictly increasing.
    pub commit_seq: u64,
    /// The entity changed.
    pub entity: EntityId,
    /// Its type, so a device can skip entity types it does not show.
    pub entity_type: String,
    /// The op that caused the change.
    pub op: OpId,
    /// That op's device.
    pub device: DeviceId,
    /// That op's HLC; devices [`observe`](crate::hlc::Clock::observe) it so their next ops
    /// order after what they have seen.
    pub hlc: Hlc,
    /// The snapshot.
    #[serde(flatten)]
    pub body: ChangeBody,
}

/// What changed, as a snapshot. Tagged by `"kind"` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChangeBody {
    /// The entity was created; its whole initial state.
    Created {
        /// State right after creation.
        state: EntityState,
    },
    /// A scalar field's new state (value, revision, conflict, resolution).
    Field {
        /// Field key.
        field: String,
        /// New state of the field.
        state: FieldState,
    },
    /// A set field's new state.
    SetField {
        /// Field key.
        field: String,
        /// New state of the set.
        state: OrSet,
    },
    /// The entity was tombstoned.
    Tombstoned,
    /// A section was signed.
    Signed {
        /// Section name.
        section: String,
        /// The signature.
        signature: SectionSignature,
    },
    /// A section's signature was withdrawn by its signer.
    Withdrawn {
        /// Section name.
        section: String,
        /// The withdrawn signature, who withdrew it and why.
        withdrawal: Withdrawal,
    },
}

/// A change refers to an entity the mirror does not have: changes were skipped or reordered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("change {commit_seq} refers to entity {entity}, which this replica has not seen created")]
pub struct MissingEntity {
    /// The change's commit sequence.
    pub commit_seq: u64,
    /// The missing entity.
    pub entity: EntityId,
}

/// Applies one change to a mirror of entity states; the exact inverse of how the authority
/// produced it.
pub fn apply_change(
    states: &mut BTreeMap<EntityId, EntityState>,
    change: &Change,
) -> Result<(), MissingEntity> {
    if let ChangeBody::Created { state } = &change.body {
        states.insert(change.entity, state.clone());
        return Ok(());
    }
    let state = states.get_mut(&change.entity).ok_or(MissingEntity {
        commit_seq: change.commit_seq,
        entity: change.entity,
    })?;
    match &change.body {
        ChangeBody::Created { .. } => {}
        ChangeBody::Field { field, state: f } => {
            state.fields.insert(field.clone(), f.clone());
        }
        ChangeBody::SetField { field, state: s } => {
            state.sets.insert(field.clone(), s.clone());
        }
        ChangeBody::Tombstoned => state.tombstoned = true,
        ChangeBody::Signed { section, signature } => {
            state.signatures.insert(section.clone(), signature.clone());
        }
        ChangeBody::Withdrawn {
            section,
            withdrawal,
        } => {
            state.signatures.remove(section);
            state.withdrawals.push(withdrawal.clone());
        }
    }
    Ok(())
}

/// One page of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<'a> {
    /// Changes with `commit_seq > cursor`, oldest first, at most `limit`.
    pub changes: &'a [Change],
    /// The cursor to send next time: the last returned change's commit sequence, or the
    /// request's cursor if there was nothing new.
    pub cursor: u64,
    /// More changes are waiting after this page.
    pub has_more: bool,
}

/// Selects the page after `cursor` from a feed sorted by `commit_seq`.
pub fn page(feed: &[Change], cursor: u64, limit: u32) -> Page<'_> {
    let start = feed.partition_point(|c| c.commit_seq <= cursor);
    let rest = &feed[start..];
    let take = rest
        .len()
        .min(usize::try_from(limit.max(1)).unwrap_or(usize::MAX));
    let changes = &rest[..take];
    Page {
        changes,
        cursor: changes.last().map_or(cursor, |c| c.commit_seq),
        has_more: rest.len() > take,
    }
}
