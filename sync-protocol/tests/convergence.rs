//! Convergence under random schedules: several devices edit offline, sync through a lossy,
//! duplicating, reordering network, and must all end at the authority's state without losing
//! an acknowledged value or touching a signed section.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use sync_protocol::{
    Authority, ChangeBody, DeviceId, EntityId, Op, OpBody, OpId, OpResult, Replica, SyncRequest,
    SyncResponse, Value, section_hash, section_of,
};

const DEVICES: usize = 3;
const ENTITY: EntityId = EntityId::from_u128(0xe1);
const FIELDS: [&str; 4] = ["a/x", "a/y", "b/z", "c/w"];
const SET_FIELD: &str = "c/photos";
const SECTIONS: [&str; 2] = ["a", "b"];
/// Small pages so `has_more` and multi-page catch-up are exercised.
const PULL_LIMIT: u32 = 4;
const QUIET_CAP: usize = 50;

#[derive(Debug, Clone, Copy)]
enum Fault {
    None,
    DropRequest,
    DropResponse,
    DuplicateResponse,
    DelayResponse,
    /// The first op of the request is lost in transit: the server sees a gap.
    LoseFirstOp,
    /// A buggy or forged client adds an op with `seq` 0 and a new id.
    ForgeSeqZero,
    /// A buggy or forged client adds a second op under the last op's `seq`, with a new id.
    ReuseSeq,
    /// An old request of this device arrives again, late.
    ReplayOld,
}

#[derive(Debug, Clone)]
enum Action {
    Edit {
        dev: usize,
        field: usize,
    },
    /// An edit with a value other devices may enter too (both read "pass" off the same site).
    EditSame {
        dev: usize,
        field: usize,
        value: u8,
    },
    Add {
        dev: usize,
        element: u8,
    },
    Remove {
        dev: usize,
        element: u8,
    },
    Resolve {
        dev: usize,
        field: usize,
        pick: usize,
    },
    Sign {
        dev: usize,
        section: usize,
    },
    Sync {
        dev: usize,
        fault: Fault,
    },
    Wait {
        ms: u64,
    },
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        6 => Just(Fault::None),
        1 => Just(Fault::DropRequest),
        1 => Just(Fault::DropResponse),
        1 => Just(Fault::DuplicateResponse),
        1 => Just(Fault::DelayResponse),
        1 => Just(Fault::LoseFirstOp),
        1 => Just(Fault::ForgeSeqZero),
        1 => Just(Fault::ReuseSeq),
        1 => Just(Fault::ReplayOld),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    let dev = 0..DEVICES;
    prop_oneof![
        8 => (dev.clone(), 0..FIELDS.len()).prop_map(|(dev, field)| Action::Edit { dev, field }),
        3 => (dev.clone(), 0..FIELDS.len(), 0..2u8)
            .prop_map(|(dev, field, value)| Action::EditSame { dev, field, value }),
        2 => (dev.clone(), 0..3u8).prop_map(|(dev, element)| Action::Add { dev, element }),
        1 => (dev.clone(), 0..3u8).prop_map(|(dev, element)| Action::Remove { dev, element }),
        2 => (dev.clone(), 0..FIELDS.len(), 0..4usize)
            .prop_map(|(dev, field, pick)| Action::Resolve { dev, field, pick }),
        1 => (dev.clone(), 0..SECTIONS.len()).prop_map(|(dev, section)| Action::Sign { dev, section }),
        6 => (dev, fault()).prop_map(|(dev, fault)| Action::Sync { dev, fault }),
        1 => (1..20_000u64).prop_map(|ms| Action::Wait { ms }),
    ]
}

struct World {
    server: Authority,
    replicas: Vec<Replica>,
    /// Responses held back by the network, delivered after a later one (reordering).
    delayed: Vec<Vec<SyncResponse>>,
    /// Per-device clock skew, so HLCs and wall time disagree as they do in the field.
    skew: Vec<u64>,
    now: u64,
    next_id: u128,
    /// Every op each device made (and queued).
    made: Vec<Vec<OpId>>,
    /// Requests each device sent, for late replays.
    sent: Vec<Vec<SyncRequest>>,
}

impl World {
    fn new(skew: Vec<u64>) -> Self {
        let mut world = World {
            server: Authority::default(),
            replicas: (0..DEVICES)
                .map(|d| Replica::new(DeviceId::from_u128(0xd0 + d as u128)))
                .collect(),
            delayed: vec![Vec::new(); DEVICES],
            skew,
            now: 1_700_000_000_000,
            next_id: 1,
            made: vec![Vec::new(); DEVICES],
            sent: vec![Vec::new(); DEVICES],
        };
        let id = world.op_id();
        let now = world.now_for(0);
        let fields = BTreeMap::from([("a/x".to_owned(), Value::from("initial"))]);
        world.replicas[0]
            .create(id, now, ENTITY, "acceptance_table", fields)
            .expect("create");
        world.made[0].push(id);
        world.sync_until_quiet();
        world
    }

    fn op_id(&mut self) -> OpId {
        self.next_id += 1;
        OpId::from_u128(self.next_id)
    }

    fn now_for(&self, dev: usize) -> u64 {
        self.now + self.skew[dev]
    }

    fn act(&mut self, action: &Action) {
        self.now += 7;
        let id = self.op_id();
        let (dev, made) = match *action {
            Action::Edit { dev, field } => {
                let now = self.now_for(dev);
                let value = Value::from(format!("v{}", id.as_uuid().as_u128()));
                (
                    dev,
                    self.replicas[dev]
                        .set(id, now, ENTITY, FIELDS[field], value)
                        .is_ok(),
                )
            }
            Action::EditSame { dev, field, value } => {
                let now = self.now_for(dev);
                let value = Value::from(format!("same{value}"));
                (
                    dev,
                    self.replicas[dev]
                        .set(id, now, ENTITY, FIELDS[field], value)
                        .is_ok(),
                )
            }
            Action::Add { dev, element } => {
                let now = self.now_for(dev);
                let element = Value::from(format!("photo{element}"));
                (
                    dev,
                    self.replicas[dev]
                        .add(id, now, ENTITY, SET_FIELD, element)
                        .is_ok(),
                )
            }
            Action::Remove { dev, element } => {
                let now = self.now_for(dev);
                let element = Value::from(format!("photo{element}"));
                (
                    dev,
                    self.replicas[dev]
                        .remove(id, now, ENTITY, SET_FIELD, element)
                        .is_ok(),
                )
            }
            Action::Resolve { dev, field, pick } => {
                let now = self.now_for(dev);
                let replica = &mut self.replicas[dev];
                let chosen = replica
                    .confirmed()
                    .get(&ENTITY)
                    .and_then(|s| s.fields.get(FIELDS[field]))
                    .and_then(|f| f.conflict.as_ref())
                    .map(|c| c.candidates[pick % c.candidates.len()].clone());
                let made = chosen.is_some_and(|c| {
                    replica
                        .resolve(
                            id,
                            now,
                            ENTITY,
                            FIELDS[field],
                            c.value,
                            Some(c.op),
                            "checked on site",
                        )
                        .is_ok()
                });
                (dev, made)
            }
            Action::Sign { dev, section } => {
                let now = self.now_for(dev);
                let signature = Value::from(format!("signed by device {dev}"));
                let made = self.replicas[dev]
                    .sign(id, now, ENTITY, SECTIONS[section], signature)
                    .is_ok();
                (dev, made)
            }
            Action::Sync { dev, fault } => {
                self.sync(dev, fault);
                return;
            }
            Action::Wait { ms } => {
                self.now += ms;
                return;
            }
        };
        if made {
            self.made[dev].push(id);
        }
    }

    /// One round trip of one device through the faulty network. Returns whether it is done
    /// (nothing more to pull, nothing applied).
    fn sync(&mut self, dev: usize, fault: Fault) -> bool {
        let mut request = self.replicas[dev].build_request(Some(PULL_LIMIT));
        let mut forged = Vec::new();
        match fault {
            Fault::DropRequest => return false,
            Fault::LoseFirstOp if request.ops.len() > 1 => {
                request.ops.remove(0);
            }
            Fault::ForgeSeqZero if !request.ops.is_empty() => {
                let mut op = request.ops[0].clone();
                op.id = self.op_id();
                op.seq = 0;
                forged.push(op.id);
                request.ops.insert(0, op);
            }
            Fault::ReuseSeq if !request.ops.is_empty() => {
                let mut op = request.ops[request.ops.len() - 1].clone();
                op.id = self.op_id();
                forged.push(op.id);
                request.ops.push(op);
            }
            Fault::ReplayOld if !self.sent[dev].is_empty() => {
                request = self.sent[dev][0].clone();
            }
            _ => {}
        }
        if !request.ops.is_empty() && forged.is_empty() {
            self.sent[dev].push(request.clone());
        }
        let response = self.server.handle(&request).expect("same protocol version");
        // An op the server did not store is never acknowledged, so the device keeps it.
        for id in forged {
            let result = response.results.iter().find(|r| r.op() == id);
            assert!(
                matches!(
                    result,
                    Some(OpResult::Rejected { .. } | OpResult::Gap { .. })
                ),
                "forged op {id} answered {result:?}"
            );
            assert!(self.server.result(id).is_none(), "forged op {id} stored");
        }
        let now = self.now_for(dev);
        match fault {
            Fault::DropResponse => false,
            Fault::DelayResponse => {
                self.delayed[dev].push(response);
                false
            }
            _ => {
                let replica = &mut self.replicas[dev];
                let report = replica
                    .handle_response(&response, now)
                    .expect("valid response");
                if matches!(fault, Fault::DuplicateResponse) {
                    replica
                        .handle_response(&response, now)
                        .expect("valid response");
                }
                for late in std::mem::take(&mut self.delayed[dev]) {
                    replica.handle_response(&late, now).expect("valid response");
                }
                !report.has_more && report.changes_applied == 0
            }
        }
    }

    /// Syncs every device over a perfect network until nothing moves; panics after the cap.
    fn sync_until_quiet(&mut self) -> usize {
        for round in 1..=QUIET_CAP {
            let mut quiet = true;
            for dev in 0..DEVICES {
                quiet &= self.sync(dev, Fault::None);
                quiet &= self.replicas[dev].is_quiet();
            }
            if quiet {
                return round;
            }
        }
        panic!("not quiet after {QUIET_CAP} rounds");
    }

    fn result(&self, op: OpId) -> Option<&OpResult> {
        self.server.result(op)
    }
}

/// The committed ops on one field, in commit order, with the revision each produced.
fn field_history<'a>(world: &'a World, field: &str) -> Vec<(&'a Op, u64, u64)> {
    let revs: BTreeMap<u64, u64> = world
        .server
        .feed()
        .iter()
        .filter_map(|c| match &c.body {
            ChangeBody::Field { field: f, state } if f == field => Some((c.commit_seq, state.rev)),
            _ => None,
        })
        .collect();
    world
        .server
        .log()
        .iter()
        .filter(|(op, _)| op.body.field() == Some(field))
        .filter_map(|(op, result)| match result {
            OpResult::Applied { commit_seq, .. } | OpResult::Conflict { commit_seq, .. } => {
                Some((op, *commit_seq, revs.get(commit_seq).copied().unwrap_or(0)))
            }
            _ => None,
        })
        .collect()
}

/// Whether a later committed op legitimately replaced the value of `set`: the same device
/// (its ops are sequential), a resolve, or a set that had seen the revision `set` produced.
fn superseded(history: &[(&Op, u64, u64)], index: usize) -> bool {
    let (op, _, rev) = history[index];
    history[index + 1..].iter().any(|(later, _, _)| {
        later.device == op.device
            || matches!(later.body, OpBody::Resolve { .. })
            || matches!(later.body, OpBody::Set { base_rev, .. } if base_rev >= rev)
    })
}

fn check_invariants(world: &World) -> Result<(), TestCaseError> {
    let server_state = world.server.entities();
    let entity = &server_state[&ENTITY];

    // 1. Convergence: every replica's confirmed state and view equal the authority's state.
    for replica in &world.replicas {
        prop_assert_eq!(replica.confirmed(), server_state);
        prop_assert_eq!(&replica.view(), server_state);
    }

    // 2. Every op a device made was answered; rejected ones are visible on their device.
    for (dev, ops) in world.made.iter().enumerate() {
        for id in ops {
            let result = world.result(*id);
            prop_assert!(
                result.is_some(),
                "op {} of device {} never processed",
                id,
                dev
            );
            if let Some(OpResult::Rejected { .. }) = result {
                prop_assert!(
                    world.replicas[dev]
                        .rejections()
                        .iter()
                        .any(|r| r.op.id == *id),
                    "rejection of {} not shown on device {}",
                    id,
                    dev
                );
            }
        }
    }

    for field in FIELDS {
        let history = field_history(world, field);
        let state = entity.fields.get(field);
        // By op, not only by value: two devices may enter the same value, and each entry must
        // stay on record (as the field's value or as a conflict candidate).
        let present = |op: &Op, value: &Value| {
            state.is_some_and(|s| {
                (s.op == op.id && &s.value == value)
                    || s.conflict.as_ref().is_some_and(|c| {
                        c.candidates
                            .iter()
                            .any(|k| k.op == op.id && &k.value == value)
                    })
            })
        };
        let candidate = |op: &Op| {
            state
                .and_then(|s| s.conflict.as_ref())
                .is_some_and(|c| c.candidates.iter().any(|k| k.op == op.id))
        };
        for (i, (op, _, _)) in history.iter().enumerate() {
            let OpBody::Set { value, .. } = &op.body else {
                continue;
            };
            if superseded(&history, i) {
                continue;
            }
            // 3. No acknowledged value is lost.
            prop_assert!(
                present(op, value),
                "acknowledged {:?} of {} (op {}) lost: {:?}",
                value,
                field,
                op.id,
                state
            );
            // 4. Concurrent sets of one field end as a conflict holding both.
            for (j, (other, _, _)) in history.iter().enumerate().skip(i + 1) {
                let OpBody::Set {
                    value: v2,
                    base_rev,
                    ..
                } = &other.body
                else {
                    continue;
                };
                let concurrent = other.device != op.device && *base_rev < history[i].2;
                if concurrent && !superseded(&history, j) {
                    let conflict = state.and_then(|s| s.conflict.as_ref());
                    prop_assert!(
                        conflict.is_some_and(|c| c.holds(value) && c.holds(v2))
                            && candidate(op)
                            && candidate(other),
                        "concurrent {:?} and {:?} of {} not both in a conflict: {:?}",
                        value,
                        v2,
                        field,
                        state
                    );
                }
            }
        }
    }

    // 5. Add wins: an acknowledged add stays unless a later remove had observed it.
    let log = world.server.log();
    for (i, (op, result)) in log.iter().enumerate() {
        if !matches!(op.body, OpBody::Add { .. }) || !matches!(result, OpResult::Applied { .. }) {
            continue;
        }
        let removed = log[i + 1..].iter().any(|(later, r)| {
            matches!(r, OpResult::Applied { .. })
                && matches!(&later.body, OpBody::Remove { observed, .. } if observed.contains(&op.id))
        });
        let OpBody::Add { element, field } = &op.body else {
            continue;
        };
        let present = entity.sets.get(field).is_some_and(|s| {
            s.elements
                .values()
                .any(|e| &e.value == element && e.tags.contains(&op.id))
        });
        prop_assert_eq!(present, !removed, "add {} of {:?}", op.id, element);
    }

    // 6. Nothing changes a signed section.
    let mut signed: BTreeMap<&str, u64> = BTreeMap::new();
    for change in world.server.feed() {
        match &change.body {
            ChangeBody::Signed { section, .. } => {
                signed.insert(section, change.commit_seq);
            }
            ChangeBody::Withdrawn { section, .. } => {
                signed.remove(section.as_str());
            }
            ChangeBody::Field { field, .. } | ChangeBody::SetField { field, .. } => {
                prop_assert!(
                    !signed.contains_key(section_of(field)),
                    "change {} touches signed section of {}",
                    change.commit_seq,
                    field
                );
            }
            _ => {}
        }
    }
    for (section, signature) in &entity.signatures {
        let hash = section_hash(entity, section).ok();
        prop_assert_eq!(hash.as_ref(), Some(&signature.content_hash));
    }
    let sections: BTreeSet<_> = entity.signatures.keys().collect();
    prop_assert_eq!(sections.len(), signed.len());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_without_losing_acknowledged_values(
        skew in proptest::collection::vec(0..600_000u64, DEVICES),
        actions in proptest::collection::vec(action(), 1..120),
    ) {
        let mut world = World::new(skew);
        for action in &actions {
            world.act(action);
        }
        world.sync_until_quiet();
        check_invariants(&world)?;
    }
}

#[test]
fn concurrent_offline_edits_by_three_devices_all_survive_as_one_conflict() {
    let mut world = World::new(vec![0, 0, 0]);
    for dev in 0..DEVICES {
        world.act(&Action::Edit { dev, field: 1 });
    }
    for dev in 0..DEVICES {
        world.act(&Action::Sync {
            dev,
            fault: Fault::None,
        });
    }
    world.sync_until_quiet();
    let field = &world.server.entities()[&ENTITY].fields["a/y"];
    assert_eq!(field.conflict.as_ref().map(|c| c.candidates.len()), Some(3));
    check_invariants(&world).expect("invariants");
}

/// Two inspectors enter the same value offline: both entries stay on record as candidates of
/// one conflict (equal values are not merged into one anonymous value), and a person settles it.
#[test]
fn two_devices_setting_the_same_value_offline_keep_both_entries() {
    let mut world = World::new(vec![0, 250, 0]);
    for dev in [0, 1] {
        world.act(&Action::EditSame {
            dev,
            field: 1,
            value: 0,
        });
    }
    world.sync_until_quiet();
    let field = &world.server.entities()[&ENTITY].fields["a/y"];
    assert_eq!(field.value, Value::from("same0"));
    let conflict = field.conflict.as_ref().expect("a conflict");
    let devices: BTreeSet<_> = conflict.candidates.iter().map(|c| c.device).collect();
    assert_eq!(
        devices,
        BTreeSet::from([world.replicas[0].device(), world.replicas[1].device()])
    );
    assert!(
        conflict
            .candidates
            .iter()
            .all(|c| c.value == Value::from("same0"))
    );
    check_invariants(&world).expect("invariants");
    world.act(&Action::Resolve {
        dev: 2,
        field: 1,
        pick: 0,
    });
    world.sync_until_quiet();
    let field = &world.server.entities()[&ENTITY].fields["a/y"];
    assert!(field.conflict.is_none());
    assert_eq!(
        field.resolution.as_ref().map(|r| r.candidates.len()),
        Some(2)
    );
    check_invariants(&world).expect("invariants");
}

#[test]
fn a_lost_response_to_a_rejected_op_still_shows_the_rejection() {
    let mut world = World::new(vec![0, 0, 0]);
    // Device 1 signs section a; device 2 edits it offline, then loses the rejection's response.
    world.act(&Action::Edit { dev: 2, field: 0 });
    world.act(&Action::Sign { dev: 1, section: 0 });
    world.act(&Action::Sync {
        dev: 1,
        fault: Fault::None,
    });
    world.act(&Action::Sync {
        dev: 2,
        fault: Fault::DropResponse,
    });
    assert!(world.replicas[2].rejections().is_empty());
    world.sync_until_quiet();
    let rejections = world.replicas[2].rejections();
    assert_eq!(rejections.len(), 1);
    assert_eq!(rejections[0].code.as_str(), "section_signed");
    check_invariants(&world).expect("invariants");
}

#[test]
fn a_gap_holds_the_batch_until_the_device_resends() {
    let mut world = World::new(vec![0, 0, 0]);
    world.act(&Action::Edit { dev: 1, field: 0 });
    world.act(&Action::Edit { dev: 1, field: 2 });
    world.act(&Action::Sync {
        dev: 1,
        fault: Fault::LoseFirstOp,
    });
    assert_eq!(world.replicas[1].outbox().len(), 2, "held ops stay queued");
    world.sync_until_quiet();
    check_invariants(&world).expect("invariants");
}

/// Guards against a vacuous property: the random schedules must actually produce conflicts,
/// resolutions, signatures, rejections, gaps and set-field traffic.
#[test]
fn random_schedules_exercise_every_rule() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = (
        proptest::collection::vec(0..600_000u64, DEVICES),
        proptest::collection::vec(action(), 1..80),
    );
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..96 {
        let (skew, actions) = strategy.new_tree(&mut runner).expect("strategy").current();
        let mut world = World::new(skew);
        for action in &actions {
            if let Action::Sync {
                dev,
                fault: Fault::LoseFirstOp,
            } = action
                && world.replicas[*dev].build_request(None).ops.len() > 1
            {
                *seen.entry("gap".to_owned()).or_default() += 1;
            }
            world.act(action);
        }
        world.sync_until_quiet();
        for (op, result) in world.server.log() {
            let key = match result {
                OpResult::Rejected { code, .. } => format!("rejected:{code}"),
                OpResult::Conflict { .. } => "conflict".to_owned(),
                other => format!(
                    "{}:{}",
                    op.body.kind(),
                    serde_json::to_value(other).expect("json")["status"]
                ),
            };
            *seen.entry(key).or_default() += 1;
        }
        for state in world.server.entities().values() {
            for field in state.fields.values() {
                if let Some(c) = &field.conflict {
                    let values: BTreeSet<String> = c
                        .candidates
                        .iter()
                        .map(|k| format!("{:?}", k.value))
                        .collect();
                    if values.len() < c.candidates.len() {
                        *seen.entry("same_value_conflict".to_owned()).or_default() += 1;
                    }
                }
            }
        }
    }
    eprintln!("{seen:#?}");
    for key in [
        "conflict",
        "resolve:\"applied\"",
        "sign:\"applied\"",
        "add:\"applied\"",
        "remove:\"applied\"",
        "rejected:section_signed",
        "gap",
        "same_value_conflict",
    ] {
        assert!(
            seen.get(key).copied().unwrap_or(0) > 0,
            "{key} never happened: {seen:?}"
        );
    }
}
