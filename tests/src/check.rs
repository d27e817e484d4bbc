//! Invariants over the server's change feed and the devices' states.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sync_protocol::{
    Change, ChangeBody, DeviceId, EntityId, EntityState, Op, OpBody, OpId, OpResult, section_hash,
    section_of,
};

use crate::device::SimDevice;

/// Every op made by the devices, by id.
pub fn ops_by_id<'a>(devices: impl IntoIterator<Item = &'a SimDevice>) -> HashMap<OpId, Op> {
    devices
        .into_iter()
        .flat_map(|d| d.made.iter().cloned())
        .map(|op| (op.id, op))
        .collect()
}

/// Ops the server committed according to what the devices were told (applied, conflict, or a
/// duplicate of an earlier commit).
pub fn acknowledged<'a>(devices: impl IntoIterator<Item = &'a SimDevice>) -> BTreeSet<OpId> {
    devices
        .into_iter()
        .flat_map(|d| d.acked.keys().copied())
        .collect()
}

/// Checks the whole change feed (pulled from commit 0 by a device that sees everything)
/// against the ops the devices made and the acknowledgements they received:
///
/// 1. commit sequence numbers are 1, 2, 3 … without gaps;
/// 2. (the server's own changes aside) exactly one change per acknowledged op, and no change for any other op (a rejected op
///    never takes effect, a retried op never takes effect twice);
/// 3. each change carries its op's effect (a set's value as the value or a conflict candidate,
///    a resolve's value and resolution, a sign's hash);
/// 4. **no value is silently lost**: every value that entered a scalar field stays visible (as
///    the value or a conflict candidate) until an op that knowingly supersedes it — one based on
///    a revision that included it, a later edit by the same device, or a resolve that keeps it
///    in its resolution's candidates;
/// 5. **signatures freeze**: after a section is signed no change touches it, and the entity is
///    never tombstoned.
///
/// Returns the list of violations (empty: all good).
pub fn check_feed(feed: &[Change], ops: &HashMap<OpId, Op>, acked: &BTreeSet<OpId>) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, c) in feed.iter().enumerate() {
        if c.commit_seq != i as u64 + 1 {
            problems.push(format!(
                "change #{i} has commit_seq {} (expected {})",
                c.commit_seq,
                i + 1
            ));
            break;
        }
    }
    // The server's own changes (a round's record it creates, its findings) are no device's op.
    let server = DeviceId(uuid::Uuid::nil());
    let feed: Vec<&Change> = feed.iter().filter(|c| c.device != server).collect();
    let mut seen = BTreeSet::new();
    for c in &feed {
        if !seen.insert(c.op) {
            problems.push(format!("op {} has more than one change", c.op));
        }
    }
    for id in acked.difference(&seen) {
        problems.push(format!(
            "acknowledged op {id} has no change in the feed: lost"
        ));
    }
    for id in seen.difference(acked) {
        problems.push(format!(
            "op {id} took effect but no device was told it was acknowledged"
        ));
    }

    // Per (entity, field): values that must stay visible, with the revision they entered at.
    struct Live {
        op: OpId,
        device: DeviceId,
        rev: u64,
    }
    let mut live: HashMap<(EntityId, String), Vec<Live>> = HashMap::new();
    let mut signed: BTreeMap<(EntityId, String), u64> = BTreeMap::new();
    for &c in &feed {
        let op = ops.get(&c.op);
        if op.is_none() {
            problems.push(format!(
                "change {} is caused by op {} that no device made",
                c.commit_seq, c.op
            ));
        }
        let touches_signed = |field: &str| {
            signed
                .get(&(c.entity, section_of(field).to_owned()))
                .copied()
        };
        match &c.body {
            ChangeBody::Created { state } => {
                for (field, f) in &state.fields {
                    live.insert(
                        (c.entity, field.clone()),
                        vec![Live {
                            op: f.op,
                            device: f.last_writer,
                            rev: f.rev,
                        }],
                    );
                }
            }
            ChangeBody::Field { field, state } => {
                if let Some(at) = touches_signed(field) {
                    problems.push(format!(
                        "change {} changes {field} of {} after its section was signed at {at}",
                        c.commit_seq, c.entity
                    ));
                }
                let Some(op) = op else { continue };
                // 3. the op's effect is in the change.
                let holds = |id: OpId| {
                    (state.op == id && state.conflict.is_none())
                        || state
                            .conflict
                            .as_ref()
                            .is_some_and(|k| k.candidates.iter().any(|cand| cand.op == id))
                };
                let (base_rev, resolution_keeps): (u64, BTreeSet<OpId>) = match &op.body {
                    OpBody::Set {
                        value, base_rev, ..
                    } => {
                        let carried = state.conflict.as_ref().map_or(
                            state.op == op.id && &state.value == value,
                            |k| {
                                k.candidates
                                    .iter()
                                    .any(|x| x.op == op.id && &x.value == value)
                            },
                        );
                        if !carried {
                            problems.push(format!(
                                "change {} does not carry set {}'s value",
                                c.commit_seq, op.id
                            ));
                        }
                        (*base_rev, BTreeSet::new())
                    }
                    OpBody::Resolve {
                        value, base_rev, ..
                    } => {
                        let resolution = state.resolution.as_ref();
                        if &state.value != value
                            || state.conflict.is_some()
                            || resolution.map(|r| r.op) != Some(op.id)
                        {
                            problems.push(format!(
                                "change {} does not carry resolve {}",
                                c.commit_seq, op.id
                            ));
                        }
                        (
                            *base_rev,
                            resolution
                                .map(|r| r.candidates.iter().map(|x| x.op).collect())
                                .unwrap_or_default(),
                        )
                    }
                    other => {
                        problems.push(format!(
                            "field change {} caused by a {} op",
                            c.commit_seq,
                            other.kind()
                        ));
                        continue;
                    }
                };
                // 4. earlier values: knowingly superseded, or still visible.
                let entries = live.entry((c.entity, field.clone())).or_default();
                entries.retain(|e| {
                    let superseded = e.rev <= base_rev
                        || e.device == op.device
                        || resolution_keeps.contains(&e.op);
                    if !superseded && !holds(e.op) {
                        problems.push(format!(
                            "change {} ({} by {}) silently dropped the value of op {} on {field} \
                             of {}",
                            c.commit_seq,
                            op.body.kind(),
                            op.device,
                            e.op,
                            c.entity
                        ));
                    }
                    !superseded
                });
                entries.push(Live {
                    op: op.id,
                    device: op.device,
                    rev: state.rev,
                });
            }
            ChangeBody::SetField { field, .. } => {
                if let Some(at) = touches_signed(field) {
                    problems.push(format!(
                        "change {} changes set {field} of {} after its section was signed at {at}",
                        c.commit_seq, c.entity
                    ));
                }
            }
            ChangeBody::Tombstoned => {
                if signed.keys().any(|(e, _)| *e == c.entity) {
                    problems.push(format!(
                        "change {} tombstones the signed entity {}",
                        c.commit_seq, c.entity
                    ));
                }
            }
            ChangeBody::Signed { section, signature } => {
                if signature.op != c.op || signature.signed_at_commit != c.commit_seq {
                    problems.push(format!("signature change {} is inconsistent", c.commit_seq));
                }
                if let Some(Op {
                    body: OpBody::Sign { content_hash, .. },
                    ..
                }) = op
                    && content_hash != &signature.content_hash
                {
                    problems.push(format!(
                        "signature change {} does not carry its op's hash",
                        c.commit_seq
                    ));
                }
                if signed
                    .insert((c.entity, section.clone()), c.commit_seq)
                    .is_some()
                {
                    problems.push(format!(
                        "section {section:?} of {} signed twice (change {})",
                        c.entity, c.commit_seq
                    ));
                }
            }
            ChangeBody::Withdrawn { section, .. } => {
                // The signer took it back: the section may change again.
                signed.remove(&(c.entity, section.clone()));
            }
        }
    }
    problems
}

/// Every signature in `states` still matches the hash of its section: nothing changed it after
/// signing.
pub fn check_signatures(states: &BTreeMap<EntityId, EntityState>) -> Vec<String> {
    let mut problems = Vec::new();
    for (id, state) in states {
        for (section, signature) in &state.signatures {
            match section_hash(state, section) {
                Ok(hash) if hash == signature.content_hash => {}
                Ok(hash) => problems.push(format!(
                    "section {section:?} of {id} was signed as {} but now hashes to {hash}",
                    signature.content_hash
                )),
                Err(e) => problems.push(format!(
                    "section {section:?} of {id} is signed but cannot be hashed: {e}"
                )),
            }
        }
    }
    problems
}

/// Ops a device was told were rejected, with the code.
pub fn rejections<'a>(
    devices: impl IntoIterator<Item = &'a SimDevice>,
) -> BTreeMap<OpId, sync_protocol::RejectCode> {
    devices
        .into_iter()
        .flat_map(|d| d.rejected.iter().map(|(k, v)| (*k, *v)))
        .collect()
}

/// Counts of op results over every device.
pub fn result_counts<'a>(
    devices: impl IntoIterator<Item = &'a SimDevice>,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for d in devices {
        for r in d.acked.values() {
            let key = match r {
                OpResult::Applied { .. } => "applied",
                OpResult::Conflict { .. } => "conflict",
                OpResult::Duplicate { .. } => "duplicate (first answer lost)",
                _ => "other",
            };
            *counts.entry(key.to_owned()).or_insert(0) += 1;
        }
        for code in d.rejected.values() {
            *counts.entry(format!("rejected {code:?}")).or_insert(0) += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    //! The checker must bite: run a scenario through the reference authority, then tamper with
    //! the feed the way a buggy server would.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use sync_protocol::{Authority, ChangeBody, Replica, Value};

    struct Scenario {
        feed: Vec<Change>,
        ops: HashMap<OpId, Op>,
        acked: BTreeSet<OpId>,
    }

    /// Office creates a record; A and B set one field concurrently (a conflict); A signs
    /// another section.
    fn scenario() -> Scenario {
        let mut server = Authority::default();
        let mut a = Replica::new(DeviceId::from_u128(0xa));
        let mut b = Replica::new(DeviceId::from_u128(0xb));
        let record = EntityId::from_u128(1);
        a.create(OpId::from_u128(1), 1_000, record, "r", BTreeMap::new())
            .unwrap();
        for r in [&mut a, &mut b] {
            let response = server.handle(&r.build_request(None)).unwrap();
            r.handle_response(&response, 1_000).unwrap();
        }
        a.set(OpId::from_u128(2), 2_000, record, "x/f", Value::from("a"))
            .unwrap();
        b.set(OpId::from_u128(3), 2_100, record, "x/f", Value::from("b"))
            .unwrap();
        a.set(OpId::from_u128(4), 2_200, record, "y/g", Value::from("g"))
            .unwrap();
        a.sign(OpId::from_u128(5), 2_300, record, "y", Value::from("sig"))
            .unwrap();
        let round = |server: &mut Authority, r: &mut Replica| {
            let response = server.handle(&r.build_request(None)).unwrap();
            r.handle_response(&response, 3_000).unwrap();
        };
        round(&mut server, &mut a);
        round(&mut server, &mut b);
        round(&mut server, &mut a);
        Scenario {
            feed: server.feed().to_vec(),
            ops: server
                .log()
                .iter()
                .map(|(op, _)| (op.id, op.clone()))
                .collect(),
            acked: server
                .log()
                .iter()
                .filter(|(_, r)| matches!(r, OpResult::Applied { .. } | OpResult::Conflict { .. }))
                .map(|(op, _)| op.id)
                .collect(),
        }
    }

    fn check(s: &Scenario) -> Vec<String> {
        check_feed(&s.feed, &s.ops, &s.acked)
    }

    #[test]
    fn a_correct_feed_passes() {
        let s = scenario();
        assert_eq!(s.feed.len(), 5);
        assert_eq!(check(&s), Vec::<String>::new());
    }

    #[test]
    fn last_write_wins_is_caught() {
        let mut s = scenario();
        let change = s
            .feed
            .iter_mut()
            .find(|c| c.op == OpId::from_u128(3))
            .unwrap();
        let ChangeBody::Field { state, .. } = &mut change.body else {
            panic!("a field change")
        };
        state.conflict = None;
        let problems = check(&s);
        assert!(
            problems.iter().any(|p| p.contains("silently dropped")),
            "{problems:?}"
        );
    }

    #[test]
    fn an_op_applied_twice_or_lost_is_caught() {
        let mut s = scenario();
        let mut twice = s.feed[1].clone();
        twice.commit_seq = s.feed.len() as u64 + 1;
        s.feed.push(twice);
        assert!(check(&s).iter().any(|p| p.contains("more than one change")));
        s.feed.pop();
        s.acked.insert(OpId::from_u128(99));
        assert!(check(&s).iter().any(|p| p.contains("lost")));
    }

    #[test]
    fn an_edit_after_signing_is_caught() {
        let mut s = scenario();
        let mut late = s
            .feed
            .iter()
            .find(|c| c.op == OpId::from_u128(4))
            .unwrap()
            .clone();
        late.commit_seq = s.feed.len() as u64 + 1;
        s.feed.push(late);
        assert!(
            check(&s)
                .iter()
                .any(|p| p.contains("after its section was signed")),
            "{:?}",
            check(&s)
        );
        let mut state = Authority::default().entities().clone();
        let mut apply = BTreeMap::new();
        for c in &s.feed {
            sync_protocol::apply_change(&mut apply, c).unwrap();
        }
        state.append(&mut apply);
        let record = state.values_mut().next().unwrap();
        record.fields.get_mut("y/g").unwrap().value = Value::from("changed");
        assert_eq!(check_signatures(&state).len(), 1);
    }
}
