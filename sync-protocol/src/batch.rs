//! The server's batch processor: one device's pushed ops in, results and changes out.
//!
//! Pure: the server loads what the batch needs (the device's [`SeriesState`], the states of
//! the [`touched_entities`], the stored results of ops that may be retries), calls
//! [`process_batch`] inside one transaction, then stores the returned series, entity states,
//! op results and changes. Running several servers is safe as long as that transaction
//! serialises per device and assigns commit sequence numbers in commit order.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::change::Change;
use crate::ids::{DeviceId, EntityId, OpId};
use crate::merge::{InPlace, MergeContext, Policy, Reject, RejectCode, merge_in_place};
use crate::op::Op;
use crate::series::{Admission, SeriesState};
use crate::state::EntityState;
use crate::wire::OpResult;

/// The entities a batch reads and writes, sorted and deduplicated: load these before
/// [`process_batch`].
pub fn touched_entities(ops: &[Op]) -> Vec<EntityId> {
    ops.iter()
        .map(|op| op.entity)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Everything [`process_batch`] needs.
pub struct Batch<'a> {
    /// The authenticated device that sent the batch.
    pub device: DeviceId,
    /// That device's series as stored.
    pub series: SeriesState,
    /// Current states of the [`touched_entities`] that exist (missing = does not exist).
    pub entities: BTreeMap<EntityId, EntityState>,
    /// The pushed ops, in the order sent (ascending `seq`).
    pub ops: &'a [Op],
    /// Schema and authorisation.
    pub policy: &'a dyn Policy,
    /// The commit sequence number the first change of this batch gets (last committed + 1).
    pub next_commit_seq: u64,
    /// Stored results of this batch's ops that the server has already processed, by op id.
    /// A retried op that was rejected is answered with its rejection again, so a device whose
    /// response was lost still learns why; may be empty if the server does not keep results
    /// (retries are then answered `duplicate`).
    pub prior_results: &'a BTreeMap<OpId, OpResult>,
    /// The op ids the server stored under this device's sequence numbers, for the batch's ops
    /// with `seq <= series.last_seq`. A retried op must have the stored id; a different op under
    /// an old number is rejected `seq_reused` instead of being acknowledged as a duplicate (which
    /// would make the device drop a value the server never saw). May be empty if the server does
    /// not keep ops (retries are then answered `duplicate`).
    pub stored_seqs: &'a BTreeMap<u64, OpId>,
}

impl fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("device", &self.device)
            .field("series", &self.series)
            .field("entities", &self.entities)
            .field("ops", &self.ops)
            .field("next_commit_seq", &self.next_commit_seq)
            .field("prior_results", &self.prior_results)
            .field("stored_seqs", &self.stored_seqs)
            .finish_non_exhaustive()
    }
}

/// What [`process_batch`] decided; the server stores all of it atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// The device's series after the batch.
    pub series: SeriesState,
    /// One result per op, in the order of `Batch::ops`. Store the op and its result for every
    /// result except `duplicate` and `gap` (and `wrong_device` rejections, which are not part of
    /// the device's series).
    pub results: Vec<OpResult>,
    /// The states of all touched entities after the batch (existing ones only).
    pub entities: BTreeMap<EntityId, EntityState>,
    /// The entities whose state changed and must be written back.
    pub changed: BTreeSet<EntityId>,
    /// The changes to append to the feed, in commit order.
    pub changes: Vec<Change>,
    /// The next free commit sequence number after the batch.
    pub next_commit_seq: u64,
}

/// Processes one device's batch: series check, then [`merge`] for each op in order.
///
/// Once an op hits a gap, every later op of the batch is held too (they would be out of order).
pub fn process_batch(batch: Batch<'_>) -> BatchOutcome {
    let Batch {
        device,
        mut series,
        mut entities,
        ops,
        policy,
        mut next_commit_seq,
        prior_results,
        stored_seqs,
    } = batch;
    let mut results = Vec::with_capacity(ops.len());
    let mut changes = Vec::new();
    let mut changed = BTreeSet::new();
    let mut held_from: Option<u64> = None;
    for op in ops {
        if op.device != device {
            results.push(rejected(
                op,
                Reject::new(
                    RejectCode::WrongDevice,
                    format!("op {} belongs to device {}, not {device}", op.id, op.device),
                ),
            ));
            continue;
        }
        if let Some(expected) = held_from {
            results.push(OpResult::Gap {
                op: op.id,
                expected,
            });
            continue;
        }
        match series.admit(op.seq) {
            Admission::Duplicate => {
                results.push(match stored_seqs.get(&op.seq) {
                    Some(stored) if *stored != op.id => rejected(
                        op,
                        Reject::new(
                            RejectCode::SeqReused,
                            format!(
                                "sequence number {} of this device already belongs to another \
                                 change; this change was not saved and must be entered again",
                                op.seq
                            ),
                        ),
                    ),
                    _ => match prior_results.get(&op.id) {
                        Some(prior @ OpResult::Rejected { .. }) => prior.clone(),
                        _ => OpResult::Duplicate { op: op.id },
                    },
                });
            }
            Admission::Gap { expected } => {
                held_from = Some(expected);
                results.push(OpResult::Gap {
                    op: op.id,
                    expected,
                });
            }
            Admission::Next => {
                series.advance();
                let ctx = MergeContext {
                    policy,
                    commit_seq: next_commit_seq,
                };
                // In place: the entity is not copied for each op.
                let mut slot = entities.remove(&op.entity);
                let done = merge_in_place(&mut slot, op, &ctx);
                let conflicted = matches!(done, InPlace::Conflict(_));
                match done {
                    InPlace::Applied(body) | InPlace::Conflict(body) => {
                        let commit_seq = next_commit_seq;
                        next_commit_seq += 1;
                        changes.push(Change {
                            commit_seq,
                            entity: op.entity,
                            entity_type: slot
                                .as_ref()
                                .map(|s| s.entity_type.clone())
                                .unwrap_or_default(),
                            op: op.id,
                            device: op.device,
                            hlc: op.hlc,
                            body,
                        });
                        changed.insert(op.entity);
                        results.push(if conflicted {
                            OpResult::Conflict {
                                op: op.id,
                                commit_seq,
                            }
                        } else {
                            OpResult::Applied {
                                op: op.id,
                                commit_seq,
                            }
                        });
                    }
                    InPlace::Duplicate => results.push(OpResult::Duplicate { op: op.id }),
                    InPlace::Rejected(reject) => results.push(rejected(op, reject)),
                }
                if let Some(state) = slot {
                    entities.insert(op.entity, state);
                }
            }
        }
    }
    BatchOutcome {
        series,
        results,
        entities,
        changed,
        changes,
        next_commit_seq,
    }
}

fn rejected(op: &Op, reject: Reject) -> OpResult {
    OpResult::Rejected {
        op: op.id,
        code: reject.code,
        message: reject.message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::Hlc;
    use crate::merge::AllowAll;
    use crate::op::OpBody;
    use crate::value::Value;

    fn op(device: DeviceId, seq: u64, body: OpBody) -> Op {
        Op {
            id: OpId::from_u128(u128::from(seq) + (device.as_uuid().as_u128() << 64)),
            device,
            seq,
            hlc: Hlc::new(seq, 0),
            entity: EntityId::from_u128(1),
            body,
        }
    }

    #[test]
    fn a_gap_holds_the_rest_of_the_batch_and_wrong_device_ops_are_rejected() {
        let (a, b) = (DeviceId::from_u128(0xa), DeviceId::from_u128(0xb));
        let create = OpBody::Create {
            entity_type: "t".to_owned(),
            fields: Default::default(),
        };
        let set = |base_rev| OpBody::Set {
            field: "s/f".to_owned(),
            value: Value::from("v"),
            base_rev,
        };
        let ops = [
            op(a, 1, create),
            op(b, 1, set(0)),
            op(a, 3, set(0)),
            op(a, 2, set(0)),
        ];
        let none = BTreeMap::new();
        let out = process_batch(Batch {
            device: a,
            series: SeriesState::default(),
            entities: BTreeMap::new(),
            ops: &ops,
            policy: &AllowAll,
            next_commit_seq: 10,
            prior_results: &none,
            stored_seqs: &BTreeMap::new(),
        });
        assert!(matches!(
            out.results[0],
            OpResult::Applied { commit_seq: 10, .. }
        ));
        assert!(matches!(
            &out.results[1],
            OpResult::Rejected {
                code: RejectCode::WrongDevice,
                ..
            }
        ));
        assert!(matches!(out.results[2], OpResult::Gap { expected: 2, .. }));
        assert!(
            matches!(out.results[3], OpResult::Gap { expected: 2, .. }),
            "held after a gap"
        );
        assert_eq!(out.series.last_seq, 1);
        assert_eq!((out.changes.len(), out.next_commit_seq), (1, 11));
        assert_eq!(touched_entities(&ops), [EntityId::from_u128(1)]);
    }

    #[test]
    fn a_different_op_under_an_old_sequence_number_is_rejected_not_acknowledged() {
        let a = DeviceId::from_u128(7);
        let tombstone = || OpBody::Tombstone {};
        let first = op(a, 1, tombstone());
        let mut impostor = op(a, 1, tombstone());
        impostor.id = OpId::from_u128(999);
        let stored = BTreeMap::from([(1, first.id)]);
        let out = process_batch(Batch {
            device: a,
            series: SeriesState { last_seq: 1 },
            entities: BTreeMap::new(),
            ops: &[first.clone(), impostor],
            policy: &AllowAll,
            next_commit_seq: 5,
            prior_results: &BTreeMap::new(),
            stored_seqs: &stored,
        });
        assert!(matches!(out.results[0], OpResult::Duplicate { .. }));
        assert!(matches!(
            &out.results[1],
            OpResult::Rejected {
                code: RejectCode::SeqReused,
                ..
            }
        ));
        assert!(out.changes.is_empty());
    }
}
