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
    /// The ops the server stored under this device's sequence numbers, for the batch's ops with
    /// `seq <= series.last_seq`. A retry is `duplicate` only if it is exactly the stored op (same
    /// id, same content); anything else under an old number — another id, the same id with other
    /// content, or a number the server holds nothing under — is rejected `seq_reused` instead,
    /// because a device drops a `duplicate` from its outbox and the value would be lost.
    pub stored_ops: &'a BTreeMap<u64, Op>,
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
            .field("stored_ops", &self.stored_ops)
            .finish_non_exhaustive()
    }
}

/// What [`process_batch`] decided; the server stores all of it atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// The device's series after the batch.
    pub series: SeriesState,
    /// One result per op, in the order of `Batch::ops`.
    pub results: Vec<OpResult>,
    /// Per op (in the order of `Batch::ops`): whether the op took its place in the device's
    /// series and must be stored with its result. False for retries, gaps and ops refused before
    /// the series (another device's, `seq` 0, `seq_reused`). True for an op that advanced the
    /// series even when the merge found its id already applied: storing it then trips the op
    /// log's unique op id, so the request is refused (`op_id_reused`) instead of acknowledged.
    pub stored: Vec<bool>,
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
        stored_ops,
    } = batch;
    let mut results = Vec::with_capacity(ops.len());
    let mut stored = Vec::with_capacity(ops.len());
    let mut changes = Vec::new();
    let mut changed = BTreeSet::new();
    let mut held_from: Option<u64> = None;
    // Ops of this batch that took their place in the series, by seq, with their result index:
    // a later op of the same batch under the same number is checked against them exactly as
    // against the stored ops.
    let mut taken: BTreeMap<u64, (&Op, usize)> = BTreeMap::new();
    for op in ops {
        if op.device != device {
            results.push(rejected(
                op,
                Reject::new(
                    RejectCode::WrongDevice,
                    format!("op {} belongs to device {}, not {device}", op.id, op.device),
                ),
            ));
            stored.push(false);
            continue;
        }
        if op.seq == 0 {
            results.push(rejected(
                op,
                Reject::new(
                    RejectCode::InvalidOp,
                    "sequence numbers start at 1; this change was not saved",
                ),
            ));
            stored.push(false);
            continue;
        }
        if let Some(expected) = held_from {
            results.push(OpResult::Gap {
                op: op.id,
                expected,
            });
            stored.push(false);
            continue;
        }
        match series.admit(op.seq) {
            Admission::Duplicate => {
                let earlier = match taken.get(&op.seq) {
                    Some((earlier, index)) => Some((*earlier, Some(&results[*index]))),
                    None => stored_ops
                        .get(&op.seq)
                        .map(|earlier| (earlier, prior_results.get(&earlier.id))),
                };
                results.push(match earlier {
                    Some((earlier, prior)) if earlier == op => match prior {
                        Some(prior @ OpResult::Rejected { .. }) => prior.clone(),
                        _ => OpResult::Duplicate { op: op.id },
                    },
                    Some((earlier, _)) => rejected(
                        op,
                        Reject::new(
                            RejectCode::SeqReused,
                            if earlier.id == op.id {
                                format!(
                                    "this change differs from the one saved under its id and \
                                     sequence number {}; it was not saved and must be entered \
                                     again",
                                    op.seq
                                )
                            } else {
                                format!(
                                    "sequence number {} of this device already belongs to \
                                     another change; this change was not saved and must be \
                                     entered again",
                                    op.seq
                                )
                            },
                        ),
                    ),
                    None => rejected(
                        op,
                        Reject::new(
                            RejectCode::SeqReused,
                            format!(
                                "this device has already used sequence number {} and the \
                                 server holds no change under it; this change was not saved \
                                 and must be entered again",
                                op.seq
                            ),
                        ),
                    ),
                });
                stored.push(false);
            }
            Admission::Gap { expected } => {
                held_from = Some(expected);
                results.push(OpResult::Gap {
                    op: op.id,
                    expected,
                });
                stored.push(false);
            }
            Admission::Next => {
                series.advance();
                taken.insert(op.seq, (op, results.len()));
                stored.push(true);
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
        stored,
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
            stored_ops: &BTreeMap::new(),
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
        let stored = BTreeMap::from([(1, first.clone())]);
        let out = process_batch(Batch {
            device: a,
            series: SeriesState { last_seq: 1 },
            entities: BTreeMap::new(),
            ops: &[first.clone(), impostor],
            policy: &AllowAll,
            next_commit_seq: 5,
            prior_results: &BTreeMap::new(),
            stored_ops: &stored,
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

    #[test]
    fn only_the_stored_op_itself_is_a_duplicate() {
        let a = DeviceId::from_u128(7);
        let set = |value: &str| OpBody::Set {
            field: "s/f".to_owned(),
            value: Value::from(value),
            base_rev: 0,
        };
        let create = op(
            a,
            1,
            OpBody::Create {
                entity_type: "t".to_owned(),
                fields: Default::default(),
            },
        );
        let first = op(a, 2, set("1"));
        let mut twin = op(a, 2, set("2"));
        twin.id = OpId::from_u128(1000);
        let mut zero = op(a, 0, set("3"));
        zero.id = OpId::from_u128(1001);
        let mut changed = first.clone();
        changed.body = set("4");
        let unknown = op(a, 1, set("5"));
        let ops = [
            create.clone(),
            zero,
            first.clone(),
            twin,
            first.clone(),
            changed,
        ];
        let out = process_batch(Batch {
            device: a,
            series: SeriesState::default(),
            entities: BTreeMap::new(),
            ops: &ops,
            policy: &AllowAll,
            next_commit_seq: 1,
            prior_results: &BTreeMap::new(),
            stored_ops: &BTreeMap::new(),
        });
        let codes: Vec<_> = out
            .results
            .iter()
            .map(|r| match r {
                OpResult::Rejected { code, .. } => code.as_str(),
                OpResult::Applied { .. } => "applied",
                OpResult::Duplicate { .. } => "duplicate",
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            codes,
            [
                "applied",
                "invalid_op",
                "applied",
                "seq_reused",
                "duplicate",
                "seq_reused"
            ]
        );
        assert_eq!(out.stored, [true, false, true, false, false, false]);
        assert_eq!(out.series.last_seq, 2);

        // A number the device used but the server holds nothing under is no duplicate either.
        let out = process_batch(Batch {
            device: a,
            series: SeriesState { last_seq: 2 },
            entities: BTreeMap::new(),
            ops: &[unknown],
            policy: &AllowAll,
            next_commit_seq: 1,
            prior_results: &BTreeMap::new(),
            stored_ops: &BTreeMap::from([(2, first)]),
        });
        assert!(matches!(
            &out.results[0],
            OpResult::Rejected {
                code: RejectCode::SeqReused,
                ..
            }
        ));
    }
}
