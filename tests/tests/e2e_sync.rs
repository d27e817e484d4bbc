//! End to end: the real `yanshou` binary over real HTTP, simulated phones running the
//! `sync-protocol` client, on SQLite and on PostgreSQL.
//!
//! Needs the binary: `cargo build -p yanshou-server --bin yanshou` (or `cargo test --workspace`).
//! Replay a soak with `SOAK_SEED=<seed printed by the failing run>`; `SOAK_STEPS` sets its length.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use sync_protocol::{EntityId, OpResult, RejectCode, Value};
use yanshou_tests::{
    Backend, Fault, FaultPlan, Round, Server, SimDevice,
    check::{acknowledged, check_feed, check_signatures, ops_by_id, rejections, result_counts},
};

const RECORD: &str = "acceptance_record";
const FIELD: &str = "forestry/19.cover";

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(yanshou_tests::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(yanshou_tests::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A server with users made through the CLI: `(name, role, department)`.
async fn server_with(backend: Backend, users: &[(&str, &str, Option<&str>)]) -> Server {
    let server = Server::start(backend).await.unwrap();
    for (name, role, department) in users {
        server.add_user(name, role, *department).await.unwrap();
    }
    server
}

async fn device(server: &Server, user: &str, label: &str, seed: u64) -> SimDevice {
    SimDevice::enroll(&server.base, user, label, seed)
        .await
        .unwrap()
}

async fn quiet(device: &mut SimDevice) {
    device.sync_until_quiet(50).await.unwrap();
}

fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect()
}

/// (a) Two forestry inspectors edit the same field offline; whichever order they sync in,
/// every device ends identical with both values visible in a conflict, which the conflict queue
/// lists; a `resolve` op settles it and every device is identical again.
async fn concurrent_offline_edits_conflict_visibly_then_resolve(backend: Backend) {
    let server = server_with(
        backend,
        &[
            ("office", "county_office", None),
            ("lin.a", "department_inspector", Some("forestry")),
            ("lin.b", "department_inspector", Some("forestry")),
        ],
    )
    .await;
    let mut office = device(&server, "office", "office/pc", 1).await;
    let mut a = device(&server, "lin.a", "lin.a/phone", 2).await;
    let mut b = device(&server, "lin.b", "lin.b/phone", 3).await;

    for a_first in [true, false] {
        let record = office
            .create(RECORD, fields(&[("mine", "大岭采石场")]))
            .unwrap();
        quiet(&mut office).await;
        quiet(&mut a).await;
        quiet(&mut b).await;

        // Offline on the mountain, both measure the vegetation cover.
        a.go_offline(1);
        b.go_offline(1);
        let op_a = a.set(record, FIELD, "82").unwrap();
        let op_b = b.set(record, FIELD, "78").unwrap();
        assert_eq!(a.sync_once().await.unwrap(), Round::Offline);
        assert_eq!(b.sync_once().await.unwrap(), Round::Offline);

        let (first, second) = if a_first {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        quiet(first).await;
        quiet(second).await;
        for d in [&mut a, &mut b, &mut office] {
            quiet(d).await;
        }
        assert!(matches!(
            a.acked[&op_a],
            OpResult::Applied { .. } | OpResult::Conflict { .. }
        ));
        assert!(matches!(
            b.acked[&op_b],
            OpResult::Applied { .. } | OpResult::Conflict { .. }
        ));

        // Identical everywhere, both values kept.
        assert_eq!(a.replica().confirmed(), b.replica().confirmed());
        assert_eq!(a.replica().confirmed(), office.replica().confirmed());
        let field = a.replica().confirmed()[&record].fields[FIELD].clone();
        let conflict = field
            .conflict
            .as_ref()
            .expect("the conflict must be visible");
        assert!(conflict.holds(&Value::from("82")), "{conflict:?}");
        assert!(conflict.holds(&Value::from("78")), "{conflict:?}");
        let rev = field.rev;

        // The conflict queue lists it, with both candidates and the revision to resolve on.
        let queue = a.get_json("/api/v1/sync/conflicts").await.unwrap();
        let queue = queue.as_array().unwrap();
        assert_eq!(queue.len(), 1, "{queue:?}");
        assert_eq!(queue[0]["entity"], record.to_string());
        assert_eq!(queue[0]["field"], FIELD);
        assert_eq!(queue[0]["rev"], rev);
        let values: BTreeSet<String> = queue[0]["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["value"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(values, BTreeSet::from(["78".to_owned(), "82".to_owned()]));

        // A set on the conflicted field is refused on the phone: it must be resolved.
        assert!(b.set(record, FIELD, "80").is_err());

        // Inspector B re-measures and chooses A's value, saying why.
        let chosen = conflict
            .candidates
            .iter()
            .find(|c| c.value == Value::from("82"))
            .map(|c| c.op);
        let resolve = b
            .resolve(record, FIELD, "82", chosen, "复测：东侧坡面覆盖率 82%")
            .unwrap();
        quiet(&mut b).await;
        assert!(matches!(b.acked[&resolve], OpResult::Applied { .. }));
        for d in [&mut a, &mut office] {
            quiet(d).await;
        }
        assert_eq!(a.replica().confirmed(), b.replica().confirmed());
        assert_eq!(a.replica().confirmed(), office.replica().confirmed());
        let field = &office.replica().confirmed()[&record].fields[FIELD];
        assert_eq!(field.value, Value::from("82"));
        assert!(field.conflict.is_none());
        let resolution = field.resolution.as_ref().unwrap();
        assert_eq!(resolution.device, b.device());
        assert_eq!(resolution.chosen_op, chosen);
        assert_eq!(
            resolution.candidates.len(),
            2,
            "the losing value stays on record"
        );
        let queue = a.get_json("/api/v1/sync/conflicts").await.unwrap();
        assert_eq!(queue.as_array().unwrap().len(), 0, "{queue}");
    }
    for d in [&a, &b, &office] {
        d.check_accounted().unwrap();
    }
}

/// (b) A batch whose response was lost is retried: every op comes back `duplicate`, and the
/// change feed holds exactly one change per op.
async fn a_retry_after_a_lost_response_is_duplicate_not_a_second_copy(backend: Backend) {
    let server = server_with(
        backend,
        &[
            ("office", "county_office", None),
            ("lin.a", "department_inspector", Some("forestry")),
        ],
    )
    .await;
    let mut office = device(&server, "office", "office/pc", 1).await;
    let mut a = device(&server, "lin.a", "lin.a/phone", 2).await;
    let record = office.create(RECORD, fields(&[])).unwrap();
    quiet(&mut office).await;
    quiet(&mut a).await;

    let ops = [
        a.set(record, FIELD, "81").unwrap(),
        a.set(record, "forestry/20.survival", "90").unwrap(),
        a.add(record, "forestry/photos", "sha256:aa").unwrap(),
        a.set(record, FIELD, "83").unwrap(),
    ];
    // Sent and processed; the answer is lost on the mountain road. Twice.
    for _ in 0..2 {
        assert_eq!(
            a.sync_once_with(Fault::DropResponse).await.unwrap(),
            Round::ResponseDropped
        );
    }
    assert_eq!(
        a.replica().outbox().len(),
        ops.len(),
        "still queued on the phone"
    );
    let Round::Synced { results, .. } = a.sync_once_with(Fault::None).await.unwrap() else {
        panic!("online")
    };
    assert_eq!(results.len(), ops.len());
    for (result, op) in results.iter().zip(&ops) {
        assert_eq!(result, &OpResult::Duplicate { op: *op });
    }
    // A duplicated request racing itself: nothing is committed twice.
    a.set(record, "forestry/21.note", "补植 30 株").unwrap();
    a.sync_once_with(Fault::Duplicate).await.unwrap();
    quiet(&mut a).await;
    quiet(&mut office).await;
    assert!(a.replica().is_quiet());

    let mut fresh = device(&server, "office", "office/new-pc", 9).await;
    quiet(&mut fresh).await;
    assert_eq!(fresh.replica().confirmed(), a.replica().confirmed());
    let feed = fresh.pull_changes(0).await.unwrap();
    let mut per_op: BTreeMap<_, usize> = BTreeMap::new();
    for change in &feed {
        *per_op.entry(change.op).or_default() += 1;
    }
    assert_eq!(
        feed.len(),
        1 + ops.len() + 1,
        "create + 4 ops + the note: {feed:#?}"
    );
    assert!(per_op.values().all(|n| *n == 1), "{per_op:?}");
    for op in &ops {
        assert_eq!(per_op.get(op), Some(&1), "op {op}");
    }
    let state = &fresh.replica().confirmed()[&record];
    assert_eq!(state.value(FIELD), Some(&Value::from("83")));
    assert_eq!(state.fields[FIELD].rev, 2, "two sets, each applied once");
    let devices = [&office, &a];
    let problems = check_feed(&feed, &ops_by_id(devices), &acknowledged(devices));
    assert!(problems.is_empty(), "{problems:#?}");
    for d in devices {
        d.check_accounted().unwrap();
    }
}

const DEPARTMENTS: [&str; 2] = ["forestry", "water_resources"];

fn soak_seed() -> u64 {
    match std::env::var("SOAK_SEED") {
        Ok(s) => s.parse().expect("SOAK_SEED must be an integer"),
        Err(_) => rand::thread_rng().r#gen(),
    }
}

/// What a device of the soak does in one edit step.
fn edit(d: &mut SimDevice, department: Option<&str>, rng: &mut StdRng) {
    // The records this phone knows of.
    let records: Vec<EntityId> = d.replica().confirmed().keys().copied().collect();
    let Some(&record) = records.choose(rng) else {
        return;
    };
    let value = format!("v{}", rng.gen_range(0..1000));
    let Some(dept) = department else {
        // The county office: header fields, sometimes a new record.
        if rng.gen_bool(0.1) {
            let _ = d.create(RECORD, fields(&[("mine", &value)]));
        } else {
            let field = ["mine", "visit_date", "remarks"].choose(rng).unwrap();
            let _ = d.set(record, field, value.as_str());
        }
        return;
    };
    let roll = rng.gen_range(0..100);
    let field = format!(
        "{dept}/{}",
        ["19.cover", "20.survival", "21.note"].choose(rng).unwrap()
    );
    match roll {
        0..=59 => {
            if let Err(sync_protocol::ClientError::Rejected(r)) =
                d.set(record, &field, value.as_str())
                && r.code == RejectCode::ConflictUnresolved
            {
                resolve(d, record, &field, rng);
            }
        }
        60..=71 => {
            let element = format!("photo-{}", rng.gen_range(0..4));
            if rng.gen_bool(0.6) {
                let _ = d.add(record, &format!("{dept}/photos"), element.as_str());
            } else {
                let _ = d.remove(record, &format!("{dept}/photos"), element.as_str());
            }
        }
        72..=76 => {
            // Another department's section: the server refuses, the phone shows why.
            let other = DEPARTMENTS.iter().find(|x| **x != dept).unwrap();
            let _ = d.set(record, &format!("{other}/19.cover"), value.as_str());
        }
        77..=97 => {
            let conflicted: Vec<String> = d
                .replica()
                .confirmed()
                .get(&record)
                .map(|s| {
                    s.fields
                        .iter()
                        .filter(|(k, f)| k.starts_with(dept) && f.conflict.is_some())
                        .map(|(k, _)| k.clone())
                        .collect()
                })
                .unwrap_or_default();
            if let Some(field) = conflicted.choose(rng) {
                resolve(d, record, field, rng);
            }
        }
        _ => {
            let _ = d.sign(record, dept);
        }
    }
}

fn resolve(d: &mut SimDevice, record: EntityId, field: &str, rng: &mut StdRng) {
    let Some(conflict) = d
        .replica()
        .confirmed()
        .get(&record)
        .and_then(|s| s.fields.get(field))
        .and_then(|f| f.conflict.clone())
    else {
        return;
    };
    let _ = if rng.gen_bool(0.7) {
        let pick = conflict.candidates.choose(rng).unwrap();
        d.resolve(
            record,
            field,
            pick.value.clone(),
            Some(pick.op),
            "复核后选定",
        )
    } else {
        d.resolve(
            record,
            field,
            format!("m{}", rng.gen_range(0..100)),
            None,
            "重新测量",
        )
    };
}

/// (c) A randomized soak: the county office and four inspector devices (two forestry
/// inspectors, one of them on two devices, and one water-resources inspector) edit the same and
/// different fields, resolve and sign, through lost requests, lost responses, duplicated
/// requests, offline periods, restarts and expired tokens. Afterwards every device converges to
/// the same confirmed state as a fresh device's pull, no acknowledged op is lost, every
/// rejection is on its device, signed sections never changed.
async fn randomized_soak_converges_and_loses_nothing(backend: Backend) {
    soak(backend, soak_seed()).await;
}

/// Seeds whose soak once failed, kept as regression cases:
/// - 15792625001832197322: a request sent twice landed in one group commit and the second copy
///   answered `duplicate` for an op the first copy rejected (the phone dropped the value).
const REGRESSION_SEEDS: &[u64] = &[15_792_625_001_832_197_322];

async fn soak_regression_seeds(backend: Backend) {
    for seed in REGRESSION_SEEDS {
        soak(backend, *seed).await;
    }
}

async fn soak(backend: Backend, seed: u64) {
    let steps: usize = std::env::var("SOAK_STEPS")
        .ok()
        .map_or(1200, |s| s.parse().expect("SOAK_STEPS must be a number"));
    println!(
        "soak on {}: SOAK_SEED={seed} SOAK_STEPS={steps}",
        backend.name()
    );
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let server = server_with(
        backend,
        &[
            ("office", "county_office", None),
            ("lin.a", "department_inspector", Some("forestry")),
            ("lin.b", "department_inspector", Some("forestry")),
            ("shui.a", "department_inspector", Some("water_resources")),
        ],
    )
    .await;
    let roster: [(&str, &str, Option<&str>); 5] = [
        ("office", "office/pc", None),
        ("lin.a", "lin.a/phone", Some("forestry")),
        ("lin.a", "lin.a/tablet", Some("forestry")),
        ("lin.b", "lin.b/phone", Some("forestry")),
        ("shui.a", "shui.a/phone", Some("water_resources")),
    ];
    let mut devices = Vec::new();
    for (i, (user, label, _)) in roster.iter().enumerate() {
        devices.push(device(&server, user, label, seed ^ (i as u64 + 1) << 32).await);
    }

    // Each inspector's handwritten strokes are on the server before they sign (PROTOCOL.md
    // §14); they are uploaded for a real acceptance round (uploads belong to one).
    let office_token = devices[0].access_token().to_owned();
    let round = yanshou_tests::device::open_cancel_round(
        &server,
        &yanshou_tests::device::http_client(),
        &server.base,
        &office_token,
    )
    .await
    .unwrap();
    for d in devices.iter_mut().skip(1) {
        d.upload_strokes(round).await.unwrap();
    }

    // The office creates the records; everyone pulls them.
    for k in 0..4 {
        devices[0]
            .create(
                RECORD,
                fields(&[("mine", &format!("矿区 {k}")), ("visit_date", "2025-06-01")]),
            )
            .unwrap();
    }
    for d in &mut devices {
        quiet(d).await;
    }
    let plan = FaultPlan {
        drop_request: 0.1,
        drop_response: 0.12,
        duplicate: 0.1,
    };
    for d in &mut devices {
        d.set_fault_plan(plan);
    }

    for _ in 0..steps {
        let i = rng.gen_range(0..devices.len());
        let department = roster[i].2;
        let d = &mut devices[i];
        match rng.gen_range(0..100) {
            0..=39 => {
                for _ in 0..rng.gen_range(1..=3) {
                    edit(d, department, &mut rng);
                }
            }
            40..=79 => {
                d.sync_once().await.unwrap();
            }
            80..=86 => d.go_offline(rng.gen_range(1..=5)),
            87..=92 => d.restart(),
            93..=96 => d.invalidate_access_token(),
            _ => {
                // A burst: sync a few times in a row (the faults still apply).
                for _ in 0..3 {
                    d.sync_once().await.unwrap();
                }
            }
        }
    }

    // The network heals: everyone syncs until nothing moves.
    for d in &mut devices {
        d.set_fault_plan(FaultPlan::default());
        d.go_online();
    }
    let mut converged = false;
    for _ in 0..5 {
        for d in &mut devices {
            quiet(d).await;
        }
        let head = devices[0].replica().cursor();
        if devices.iter().all(|d| {
            d.replica().cursor() == head
                && d.replica().confirmed() == devices[0].replica().confirmed()
        }) {
            converged = true;
            break;
        }
    }
    assert!(converged, "devices did not converge (seed {seed})");

    // A fresh device pulls the same state.
    let mut fresh = device(&server, "office", "office/fresh", seed ^ 0xf7e5).await;
    quiet(&mut fresh).await;
    let state = fresh.replica().confirmed().clone();
    for d in &devices {
        assert_eq!(
            d.replica().confirmed(),
            &state,
            "{} differs from a fresh pull (seed {seed})",
            d.label
        );
    }

    // Nothing lost, nothing doubled, every rejection on its device, signatures frozen.
    let mut problems = Vec::new();
    for d in &devices {
        if let Err(e) = d.check_accounted() {
            problems.push(e);
        }
    }
    let feed = fresh.pull_changes(0).await.unwrap();
    problems.extend(check_feed(
        &feed,
        &ops_by_id(&devices),
        &acknowledged(&devices),
    ));
    problems.extend(check_signatures(&state));
    let rejected = rejections(&devices);
    for d in &devices {
        for r in d.replica().rejections() {
            assert_eq!(rejected.get(&r.op.id), Some(&r.code));
        }
    }

    // The conflict queue shows each caller exactly the conflicted fields it may resolve (the
    // office the header's, each inspector their department's): together, every one.
    let mut listed: BTreeSet<(String, String)> = BTreeSet::new();
    let mut queues = vec![(&mut fresh, "")];
    for d in devices.iter_mut() {
        match d.label.as_str() {
            "lin.a/phone" => queues.push((d, "forestry")),
            "shui.a/phone" => queues.push((d, "water_resources")),
            _ => {}
        }
    }
    for (who, section) in queues {
        let queue = who.get_json("/api/v1/sync/conflicts").await.unwrap();
        for c in queue.as_array().unwrap() {
            let field = c["field"].as_str().unwrap().to_owned();
            if sync_protocol::section_of(&field) != section {
                problems.push(format!("{} is offered {field}", who.label));
            }
            listed.insert((c["entity"].as_str().unwrap().to_owned(), field));
        }
    }
    let conflicted: BTreeSet<(String, String)> = state
        .iter()
        .flat_map(|(id, s)| {
            s.fields
                .iter()
                .filter(|(_, f)| f.conflict.is_some())
                .map(move |(k, _)| (id.to_string(), k.clone()))
        })
        .collect();
    if listed != conflicted {
        problems.push(format!(
            "conflict queue {listed:?} != conflicted fields {conflicted:?}"
        ));
    }

    let counts = result_counts(&devices);
    let signed = state.values().map(|s| s.signatures.len()).sum::<usize>();
    println!(
        "soak on {} (seed {seed}): {} steps, {} ops, {} changes, {} records, {} signed sections, \
         {} open conflicts, {:.1} s; results {counts:?}",
        backend.name(),
        steps,
        devices.iter().map(|d| d.made.len()).sum::<usize>(),
        feed.len(),
        state.len(),
        signed,
        conflicted.len(),
        started.elapsed().as_secs_f64()
    );
    for d in &devices {
        println!("  {:<14} {:?}", d.label, d.stats);
    }
    assert!(problems.is_empty(), "seed {seed}:\n{}", problems.join("\n"));

    // The soak exercised what it claims to (only for the default length).
    if steps >= 1000 {
        let total = |f: fn(&SimDevice) -> u64| devices.iter().map(f).sum::<u64>();
        assert!(total(|d| d.stats.dropped_responses) > 0, "no lost response");
        assert!(total(|d| d.stats.dropped_requests) > 0, "no lost request");
        assert!(total(|d| d.stats.duplicated) > 0, "no duplicate");
        assert!(total(|d| d.stats.restarts) > 0, "no restart");
        assert!(total(|d| d.stats.refreshes) > 0, "no refresh");
        assert!(counts.contains_key("conflict"), "no conflict: {counts:?}");
        assert!(
            counts.keys().any(|k| k.starts_with("rejected")),
            "no rejection: {counts:?}"
        );
    }
}

both_backends!(
    concurrent_offline_edits_conflict_visibly_then_resolve,
    a_retry_after_a_lost_response_is_duplicate_not_a_second_copy,
    randomized_soak_converges_and_loses_nothing,
    soak_regression_seeds,
);
