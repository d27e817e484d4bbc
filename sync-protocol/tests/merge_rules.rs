//! The merge rules, one behaviour per test, with hand-written expectations.

mod common;

use common::*;
use sync_protocol::{OpBody, OpId, Outcome, RejectCode, Value, section_hash};

const X: &str = "water_resources/item14.result";
const P: &str = "water_resources/photos";

fn created() -> Vec<sync_protocol::Op> {
    vec![op(A, 1, create(&[(X, "pending")]))]
}

fn with(more: Vec<sync_protocol::Op>) -> Vec<sync_protocol::Op> {
    let mut ops = created();
    ops.extend(more);
    ops
}

fn field_after(outcome: &Outcome, field: &str) -> sync_protocol::FieldState {
    outcome.effect().expect("state changed").state.fields[field].clone()
}

fn rejected_code(outcome: &Outcome) -> RejectCode {
    match outcome {
        Outcome::Rejected(r) => r.code,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn set_based_on_the_current_revision_applies_and_bumps_the_revision() {
    let (_, outcome) = run(None, &created(), &op(B, 2, set(X, "pass", 1)));
    assert!(matches!(outcome, Outcome::Applied(_)));
    let field = field_after(&outcome, X);
    assert_eq!(
        (field.value, field.rev, field.last_writer),
        (Value::from("pass"), 2, B)
    );
    assert!(field.conflict.is_none());
}

#[test]
fn replayed_ops_are_duplicates() {
    let given = with(vec![op(B, 2, set(X, "pass", 1))]);
    let (_, outcome) = run(None, &given, &op(B, 2, set(X, "pass", 1)));
    assert_eq!(outcome, Outcome::Duplicate);
    let (_, outcome) = run(None, &created(), &op(A, 1, create(&[(X, "pending")])));
    assert_eq!(outcome, Outcome::Duplicate);
}

#[test]
fn concurrent_set_becomes_a_conflict_holding_both_values() {
    let given = with(vec![op(A, 2, set(X, "pass", 1))]);
    let (_, outcome) = run(None, &given, &op(B, 3, set(X, "fail", 1)));
    assert!(matches!(outcome, Outcome::Conflict(_)));
    let field = field_after(&outcome, X);
    let conflict = field.conflict.expect("conflict");
    assert_eq!(conflict.candidates.len(), 2);
    assert!(conflict.holds(&Value::from("pass")) && conflict.holds(&Value::from("fail")));
    // Provisional winner: the larger HLC (op 3).
    assert_eq!(field.value, Value::from("fail"));
    assert_eq!(field.rev, 3);
}

#[test]
fn provisional_winner_breaks_hlc_ties_by_device_id() {
    let mut a = op(A, 2, set(X, "from a", 1));
    let mut b = op(B, 3, set(X, "from b", 1));
    a.hlc = sync_protocol::Hlc::new(5_000, 0);
    b.hlc = a.hlc;
    let (_, outcome) = run(None, &with(vec![b]), &a);
    assert_eq!(
        field_after(&outcome, X).value,
        Value::from("from b"),
        "B > A"
    );
}

#[test]
fn own_sequential_offline_edits_do_not_conflict() {
    // B edits twice offline, both based on revision 1.
    let given = with(vec![op(B, 2, set(X, "pass", 1))]);
    let (_, outcome) = run(None, &given, &op(B, 3, set(X, "pass, see photos", 1)));
    assert!(matches!(outcome, Outcome::Applied(_)));
    let field = field_after(&outcome, X);
    assert_eq!((field.rev, field.streak_base), (3, 1));
}

#[test]
fn a_devices_later_edit_replaces_its_own_candidate_in_a_conflict() {
    let given = with(vec![
        op(A, 2, set(X, "pass", 1)),
        op(B, 3, set(X, "fail", 1)),
    ]);
    let (_, outcome) = run(None, &given, &op(B, 4, set(X, "fail: ditch silted", 1)));
    let conflict = field_after(&outcome, X).conflict.expect("still conflicted");
    let values: Vec<_> = conflict
        .candidates
        .iter()
        .map(|c| c.value.clone())
        .collect();
    assert_eq!(
        values,
        [Value::from("pass"), Value::from("fail: ditch silted")]
    );
}

#[test]
fn setting_a_conflicted_field_on_its_current_revision_requires_a_resolve() {
    let given = with(vec![
        op(A, 2, set(X, "pass", 1)),
        op(B, 3, set(X, "fail", 1)),
    ]);
    let (_, outcome) = run(None, &given, &op(C, 4, set(X, "pass", 3)));
    assert_eq!(rejected_code(&outcome), RejectCode::ConflictUnresolved);
}

#[test]
fn resolve_on_the_current_revision_clears_the_conflict_and_records_who_and_why() {
    let given = with(vec![
        op(A, 2, set(X, "pass", 1)),
        op(B, 3, set(X, "fail", 1)),
    ]);
    let (_, outcome) = run(None, &given, &op(C, 4, resolve(X, "pass", 3, Some(2))));
    let field = field_after(&outcome, X);
    assert!(field.conflict.is_none());
    assert_eq!((field.value.clone(), field.rev), (Value::from("pass"), 4));
    let resolution = field.resolution.expect("recorded");
    assert_eq!(resolution.device, C);
    assert_eq!(resolution.chosen_op, Some(OpId::from_u128(2)));
    assert_eq!(resolution.reason, "re-inspected on site");
    assert_eq!(
        resolution.candidates.len(),
        2,
        "the losing value stays on record"
    );
}

#[test]
fn stale_resolve_is_rejected_so_the_person_sees_the_new_value() {
    let given = with(vec![
        op(A, 2, set(X, "pass", 1)),
        op(B, 3, set(X, "fail", 1)),
        op(C, 4, set(X, "n/a", 1)),
    ]);
    let (_, outcome) = run(None, &given, &op(A, 5, resolve(X, "pass", 3, Some(2))));
    assert_eq!(rejected_code(&outcome), RejectCode::StaleResolve);
}

#[test]
fn sign_with_the_matching_hash_freezes_the_section() {
    let given = with(vec![op(A, 2, set(X, "pass", 1))]);
    let (state, _) = run(None, &given, &op(A, 99, OpBody::Tombstone));
    let hash = section_hash(&state.expect("exists"), "water_resources").expect("hashable");
    let (_, outcome) = run(None, &given, &op(B, 3, sign("water_resources", &hash)));
    let state = outcome.effect().expect("signed").state.clone();
    assert_eq!(state.signatures["water_resources"].content_hash, hash);
    assert_eq!(state.signatures["water_resources"].signed_at_commit, 3);

    let mut signed = given.clone();
    signed.push(op(B, 3, sign("water_resources", &hash)));
    for body in [
        set(X, "fail", 2),
        set(X, "fail", 1),
        add(P, "photo"),
        remove(P, "photo", &[]),
    ] {
        let (_, outcome) = run(None, &signed, &op(C, 4, body));
        assert_eq!(rejected_code(&outcome), RejectCode::SectionSigned);
    }
    let (_, outcome) = run(None, &signed, &op(C, 4, OpBody::Tombstone));
    assert_eq!(rejected_code(&outcome), RejectCode::SectionSigned);
    // Other sections stay editable.
    let (_, outcome) = run(
        None,
        &signed,
        &op(C, 4, set("forestry/item20.result", "pass", 0)),
    );
    assert!(matches!(outcome, Outcome::Applied(_)));
}

#[test]
fn sign_with_a_wrong_hash_is_rejected() {
    let (_, outcome) = run(
        None,
        &created(),
        &op(B, 2, sign("water_resources", &"ab".repeat(32))),
    );
    assert_eq!(rejected_code(&outcome), RejectCode::HashMismatch);
}

#[test]
fn signing_a_section_with_an_unresolved_conflict_is_rejected() {
    let given = with(vec![
        op(A, 2, set(X, "pass", 1)),
        op(B, 3, set(X, "fail", 1)),
    ]);
    let (_, outcome) = run(
        None,
        &given,
        &op(C, 4, sign("water_resources", &"ab".repeat(32))),
    );
    assert_eq!(rejected_code(&outcome), RejectCode::SectionConflicted);
}

#[test]
fn tombstone_deletes_and_later_ops_are_rejected() {
    let (_, outcome) = run(None, &created(), &op(B, 2, OpBody::Tombstone));
    assert!(outcome.effect().expect("applied").state.tombstoned);
    let given = with(vec![op(B, 2, OpBody::Tombstone)]);
    let (_, outcome) = run(None, &given, &op(A, 3, set(X, "pass", 1)));
    assert_eq!(rejected_code(&outcome), RejectCode::EntityTombstoned);
}

#[test]
fn unknown_entity_and_existing_entity_are_rejected() {
    let (_, outcome) = run(None, &[], &op(A, 1, set(X, "pass", 0)));
    assert_eq!(rejected_code(&outcome), RejectCode::UnknownEntity);
    let (_, outcome) = run(None, &created(), &op(B, 2, create(&[])));
    assert_eq!(rejected_code(&outcome), RejectCode::EntityExists);
}

#[test]
fn or_set_add_wins_over_a_concurrent_remove() {
    // A and B both add photo-1 concurrently; A removes the add it saw (op 2) only.
    let given = with(vec![
        op(A, 2, add(P, "photo-1")),
        op(B, 3, add(P, "photo-1")),
    ]);
    let (_, outcome) = run(None, &given, &op(A, 4, remove(P, "photo-1", &[2])));
    let state = outcome.effect().expect("applied").state.clone();
    assert_eq!(state.elements(P), [&Value::from("photo-1")]);
    // Removing every observed add removes the element.
    let (_, outcome) = run(None, &given, &op(A, 4, remove(P, "photo-1", &[2, 3])));
    assert!(
        outcome
            .effect()
            .expect("applied")
            .state
            .elements(P)
            .is_empty()
    );
}

#[test]
fn policy_rejects_fields_an_inspector_may_not_set() {
    let policy = SectionPolicy {
        forbidden_sections: vec!["forestry".to_owned()],
    };
    let (_, outcome) = run(
        Some(&policy),
        &created(),
        &op(B, 2, set("forestry/item20.result", "pass", 0)),
    );
    assert_eq!(rejected_code(&outcome), RejectCode::Forbidden);
    let (_, outcome) = run(Some(&policy), &created(), &op(B, 2, set(X, "pass", 1)));
    assert!(matches!(outcome, Outcome::Applied(_)));
}

#[test]
fn malformed_ops_are_rejected_as_invalid() {
    let (_, outcome) = run(None, &created(), &op(B, 2, set("", "pass", 0)));
    assert_eq!(rejected_code(&outcome), RejectCode::InvalidOp);
    let mut no_reason = resolve(X, "pass", 1, None);
    if let OpBody::Resolve { reason, .. } = &mut no_reason {
        reason.clear();
    }
    let (_, outcome) = run(None, &created(), &op(B, 2, no_reason));
    assert_eq!(rejected_code(&outcome), RejectCode::InvalidOp);
    let (_, outcome) = run(None, &created(), &op(B, 2, set(X, "pass", 9)));
    assert_eq!(rejected_code(&outcome), RejectCode::InvalidBaseRev);
}
