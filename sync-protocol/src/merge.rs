//! The merge rules: one pure function from (entity state, op, context) to an [`Outcome`].
//!
//! Vocabulary:
//! - **Applied**: the op changed the state.
//! - **Conflict**: the op was concurrent with another value of the field; the field now holds
//!   every concurrent value and a provisional winner. The op is accepted, nothing is lost.
//! - **Duplicate**: the op's effect is already in the state (a replay).
//! - **Rejected** ([`Reject`]): the op cannot apply; a machine [`RejectCode`] and a message for
//!   the person go back to the device, which shows it — a rejected value is never silently
//!   dropped.
//! - **Policy** ([`Policy`]): the server's schema and authorisation hook ("this field is not in
//!   the template", "a forestry inspector cannot set water_resources fields").
//!
//! The rules, in the order they are checked:
//! 1. the op is well formed (non-empty field keys, valid values, a reason on resolve …);
//! 2. `create` needs a new entity; every other op needs an existing one;
//! 3. a replay of an op whose effect is visible is a duplicate;
//! 4. nothing applies to a tombstoned entity;
//! 5. the policy must allow the op;
//! 6. nothing changes a signed section (set/add/remove/resolve in it, tombstone of an entity
//!    with any signature, a second signature);
//! 7. the kind-specific rule: revision/streak rule for `set`, OR-set for `add`/`remove`,
//!    current-revision rule for `resolve`, hash match and no conflict for `sign`.
//!
//! The same function runs on the server (authoritative) and on a device (to preview pending
//! ops on top of the confirmed state), so the two cannot disagree about the rules.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::canonical::{HashError, canonical_json, section_hash};
use crate::change::ChangeBody;
use crate::ids::OpId;
use crate::op::{Op, OpBody, section_of};
use crate::state::{
    Candidate, Conflict, EntityState, FieldState, Resolution, SectionSignature, SetElement,
    Withdrawal,
};
use crate::value::Value;

/// Machine-readable reason for a rejection. Snake case on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// The op is malformed (empty field key, invalid value, missing reason …).
    InvalidOp,
    /// The op targets an entity the server does not know.
    UnknownEntity,
    /// `create` for an entity that already exists.
    EntityExists,
    /// The entity was tombstoned.
    EntityTombstoned,
    /// The section is signed; nothing changes it.
    SectionSigned,
    /// `sign` for a section that is already signed.
    AlreadySigned,
    /// `sign` whose content hash differs from the server's hash of the section.
    HashMismatch,
    /// `sign` for a section with an unresolved conflict.
    SectionConflicted,
    /// `set` based on the current revision of a conflicted field: resolve it instead.
    ConflictUnresolved,
    /// `resolve` based on an old revision: a new value arrived since the person looked.
    StaleResolve,
    /// `resolve` of a field that has no conflict.
    NoConflict,
    /// `resolve` naming a candidate that is not in the conflict, or whose value differs.
    UnknownCandidate,
    /// A base revision greater than the field's revision (the device cannot have seen it).
    InvalidBaseRev,
    /// Scalar op on a set field or set op on a scalar field.
    FieldKindMismatch,
    /// The op's device is not the device that sent the batch.
    WrongDevice,
    /// The device reused a sequence number the server already holds for a different op (its
    /// outbox was restored from an old copy). The op is returned, not dropped, so the person
    /// can enter it again.
    SeqReused,
    /// Policy: the field or entity type does not exist in the template.
    UnknownField,
    /// Policy: the device's user may not make this change.
    Forbidden,
    /// Policy: a device signature the op carries (a section signature, a photo's capture
    /// attestation) does not hold: wrong key, tampered statement, or a statement about
    /// something else (PROTOCOL.md §12).
    InvalidSignature,
    /// Policy: `sign` of a section whose required answers are missing.
    IncompleteSection,
    /// `withdraw` of a section that is not signed (never, or already withdrawn).
    NotSigned,
    /// Policy: a signature names a handwritten strokes blob the server does not hold (it is
    /// uploaded before the op is pushed, PROTOCOL.md §14).
    StrokesMissing,
    /// Policy: the opinion letter is issued; nothing changes it (PROTOCOL.md §15).
    LetterIssued,
}

impl RejectCode {
    /// The wire name, e.g. `"section_signed"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::InvalidOp => "invalid_op",
            RejectCode::UnknownEntity => "unknown_entity",
            RejectCode::EntityExists => "entity_exists",
            RejectCode::EntityTombstoned => "entity_tombstoned",
            RejectCode::SectionSigned => "section_signed",
            RejectCode::AlreadySigned => "already_signed",
            RejectCode::HashMismatch => "hash_mismatch",
            RejectCode::SectionConflicted => "section_conflicted",
            RejectCode::ConflictUnresolved => "conflict_unresolved",
            RejectCode::StaleResolve => "stale_resolve",
            RejectCode::NoConflict => "no_conflict",
            RejectCode::UnknownCandidate => "unknown_candidate",
            RejectCode::InvalidBaseRev => "invalid_base_rev",
            RejectCode::FieldKindMismatch => "field_kind_mismatch",
            RejectCode::WrongDevice => "wrong_device",
            RejectCode::SeqReused => "seq_reused",
            RejectCode::UnknownField => "unknown_field",
            RejectCode::Forbidden => "forbidden",
            RejectCode::InvalidSignature => "invalid_signature",
            RejectCode::IncompleteSection => "incomplete_section",
            RejectCode::NotSigned => "not_signed",
            RejectCode::StrokesMissing => "strokes_missing",
            RejectCode::LetterIssued => "letter_issued",
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejection: machine code plus a message meant for the person who made the op.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Reject {
    /// Machine-readable reason.
    pub code: RejectCode,
    /// Human-readable explanation.
    pub message: String,
}

impl Reject {
    /// Creates a rejection.
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The server's schema and authorisation hook, consulted for every op before it applies.
///
/// `entity_type` is the entity's type (for `create`, the type being created). Return
/// [`RejectCode::UnknownField`] or [`RejectCode::Forbidden`] (or any code that fits).
pub trait Policy {
    /// Allows or rejects an op.
    fn check(&self, entity_type: &str, op: &Op) -> Result<(), Reject>;

    /// Allows or rejects a `sign` in the light of the section as it stands, after the merge's
    /// own checks passed (not signed yet, no conflict, the hash the signer saw): e.g. the
    /// server refuses to sign a section whose required answers are missing. Allows by default.
    fn check_sign(&self, _state: &EntityState, _op: &Op) -> Result<(), Reject> {
        Ok(())
    }

    /// Allows or rejects any op on an existing entity in the light of its state, right after
    /// [`Self::check`]: e.g. an expert's word on an opinion letter must be about the letter's
    /// current hash. Allows by default.
    fn check_state(&self, _state: &EntityState, _op: &Op) -> Result<(), Reject> {
        Ok(())
    }
}

/// A policy that allows everything: for devices previewing their own ops and for tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Policy for AllowAll {
    fn check(&self, _entity_type: &str, _op: &Op) -> Result<(), Reject> {
        Ok(())
    }
}

/// What the merge needs besides the state and the op.
#[derive(Clone, Copy)]
pub struct MergeContext<'a> {
    /// Schema / authorisation.
    pub policy: &'a dyn Policy,
    /// The commit sequence number this op's change will get if it applies (recorded in
    /// signatures). Devices previewing pending ops pass 0.
    pub commit_seq: u64,
}

impl fmt::Debug for MergeContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MergeContext")
            .field("commit_seq", &self.commit_seq)
            .finish_non_exhaustive()
    }
}

/// The new state of the entity and the change record describing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    /// The entity after the op.
    pub state: EntityState,
    /// The snapshot to append to the change feed.
    pub change: ChangeBody,
}

/// The result of merging one op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The op applied.
    Applied(Effect),
    /// The op's effect is already present.
    Duplicate,
    /// The op was concurrent with another value; the field now holds all of them.
    Conflict(Effect),
    /// The op cannot apply.
    Rejected(Reject),
}

impl Outcome {
    /// The effect, if the state changed.
    pub fn effect(&self) -> Option<&Effect> {
        match self {
            Outcome::Applied(e) | Outcome::Conflict(e) => Some(e),
            Outcome::Duplicate | Outcome::Rejected(_) => None,
        }
    }
}

/// Merges one op into the state of its entity (`None` if the entity does not exist).
///
/// Pure and deterministic: same inputs, same outcome, on every server and device.
pub fn merge(state: Option<&EntityState>, op: &Op, ctx: &MergeContext<'_>) -> Outcome {
    let mut next = state.cloned();
    let done = merge_in_place(&mut next, op, ctx);
    match (done, next) {
        (InPlace::Applied(change), Some(state)) => Outcome::Applied(Effect { state, change }),
        (InPlace::Conflict(change), Some(state)) => Outcome::Conflict(Effect { state, change }),
        (InPlace::Duplicate, _) => Outcome::Duplicate,
        (InPlace::Rejected(reject), _) => Outcome::Rejected(reject),
        // Every effect leaves an entity in the slot; this arm only completes the match.
        (InPlace::Applied(_) | InPlace::Conflict(_), None) => Outcome::Rejected(Reject::new(
            RejectCode::UnknownEntity,
            format!("entity {} does not exist", op.entity),
        )),
    }
}

/// What [`merge_in_place`] did: like [`Outcome`], with the new state left in the caller's slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InPlace {
    /// The op applied; the state in the slot is the new state.
    Applied(ChangeBody),
    /// The op was concurrent with another value; the field in the slot holds all of them.
    Conflict(ChangeBody),
    /// The op's effect is already present; the slot is unchanged.
    Duplicate,
    /// The op cannot apply; the slot is unchanged.
    Rejected(Reject),
}

/// [`merge`] without copying the entity: the op's effect is applied to `state` itself (a
/// `create` fills the empty slot). The rules are the same function; every check runs before
/// anything changes, so a rejected op leaves the state exactly as it was.
pub fn merge_in_place(state: &mut Option<EntityState>, op: &Op, ctx: &MergeContext<'_>) -> InPlace {
    merge_checked(state, op, ctx).unwrap_or_else(InPlace::Rejected)
}

fn applied(change: ChangeBody) -> Result<InPlace, Reject> {
    Ok(InPlace::Applied(change))
}

fn merge_checked(
    slot: &mut Option<EntityState>,
    op: &Op,
    ctx: &MergeContext<'_>,
) -> Result<InPlace, Reject> {
    validate(op)?;
    let state = match (&op.body, slot.as_mut()) {
        (
            OpBody::Create {
                entity_type,
                fields,
            },
            None,
        ) => {
            ctx.policy.check(entity_type, op)?;
            let created = create(op, entity_type, fields);
            let change = ChangeBody::Created {
                state: created.clone(),
            };
            *slot = Some(created);
            return applied(change);
        }
        (OpBody::Create { .. }, Some(s)) if s.created_by == op.id => {
            return Ok(InPlace::Duplicate);
        }
        (OpBody::Create { .. }, Some(_)) => {
            return Err(Reject::new(
                RejectCode::EntityExists,
                format!("entity {} already exists", op.entity),
            ));
        }
        (_, None) => {
            return Err(Reject::new(
                RejectCode::UnknownEntity,
                format!("entity {} does not exist", op.entity),
            ));
        }
        (_, Some(s)) => s,
    };
    if is_duplicate(state, op) {
        return Ok(InPlace::Duplicate);
    }
    if state.tombstoned {
        return Err(Reject::new(
            RejectCode::EntityTombstoned,
            format!("entity {} was deleted", op.entity),
        ));
    }
    ctx.policy.check(&state.entity_type, op)?;
    ctx.policy.check_state(state, op)?;
    if let Some(field) = op.body.field() {
        check_unsigned(state, field)?;
    }
    // Below, every arm finishes its checks before it changes `state`.
    match &op.body {
        OpBody::Create { .. } => Err(Reject::new(RejectCode::EntityExists, "entity exists")),
        OpBody::Set {
            field,
            value,
            base_rev,
        } => {
            check_kind(state, field, false)?;
            let (field_state, conflicted) = set(state.fields.get(field), op, value, *base_rev)?;
            state.fields.insert(field.clone(), field_state.clone());
            let change = ChangeBody::Field {
                field: field.clone(),
                state: field_state,
            };
            Ok(if conflicted {
                InPlace::Conflict(change)
            } else {
                InPlace::Applied(change)
            })
        }
        OpBody::Resolve {
            field,
            value,
            base_rev,
            chosen_op,
            reason,
        } => {
            check_kind(state, field, false)?;
            let field_state = resolve(
                state.fields.get(field),
                op,
                field,
                value,
                *base_rev,
                *chosen_op,
                reason,
            )?;
            state.fields.insert(field.clone(), field_state.clone());
            applied(ChangeBody::Field {
                field: field.clone(),
                state: field_state,
            })
        }
        OpBody::Add { field, element } => {
            check_kind(state, field, true)?;
            let key = element_key(element)?;
            let set = state.sets.entry(field.clone()).or_default();
            set.elements
                .entry(key)
                .or_insert_with(|| SetElement {
                    value: element.clone(),
                    tags: Default::default(),
                })
                .tags
                .insert(op.id);
            applied(set_change(state, field))
        }
        OpBody::Remove {
            field,
            element,
            observed,
        } => {
            check_kind(state, field, true)?;
            let key = element_key(element)?;
            let set = state.sets.entry(field.clone()).or_default();
            if let Some(entry) = set.elements.get_mut(&key) {
                for tag in observed {
                    entry.tags.remove(tag);
                }
                if entry.tags.is_empty() {
                    set.elements.remove(&key);
                }
            }
            applied(set_change(state, field))
        }
        OpBody::Tombstone => {
            if let Some(section) = state.signatures.keys().next() {
                return Err(Reject::new(
                    RejectCode::SectionSigned,
                    format!("section {section:?} is signed; a signed record cannot be deleted"),
                ));
            }
            state.tombstoned = true;
            applied(ChangeBody::Tombstoned)
        }
        OpBody::Sign {
            section,
            content_hash,
            signature,
        } => {
            if state.is_signed(section) {
                return Err(Reject::new(
                    RejectCode::AlreadySigned,
                    format!("section {section:?} is already signed"),
                ));
            }
            let current = section_hash(state, section).map_err(|e| match e {
                HashError::Conflicted { .. } => {
                    Reject::new(RejectCode::SectionConflicted, e.to_string())
                }
                HashError::Value(_) => Reject::new(RejectCode::InvalidOp, e.to_string()),
            })?;
            if &current != content_hash {
                return Err(Reject::new(
                    RejectCode::HashMismatch,
                    format!(
                        "section {section:?} changed since it was shown for signing \
                         (signed {content_hash}, current {current}); review and sign again"
                    ),
                ));
            }
            ctx.policy.check_sign(state, op)?;
            let signature = SectionSignature {
                content_hash: current,
                signed_at_commit: ctx.commit_seq,
                op: op.id,
                device: op.device,
                hlc: op.hlc,
                signature: signature.clone(),
            };
            state.signatures.insert(section.clone(), signature.clone());
            applied(ChangeBody::Signed {
                section: section.clone(),
                signature,
            })
        }
        OpBody::Withdraw { section, reason } => {
            let Some(signature) = state.signatures.get(section) else {
                return Err(Reject::new(
                    RejectCode::NotSigned,
                    format!("section {section:?} is not signed; there is nothing to withdraw"),
                ));
            };
            ctx.policy.check_sign(state, op)?;
            let withdrawal = Withdrawal {
                section: section.clone(),
                signature: signature.clone(),
                op: op.id,
                device: op.device,
                hlc: op.hlc,
                reason: reason.clone(),
                withdrawn_at_commit: ctx.commit_seq,
            };
            state.signatures.remove(section);
            state.withdrawals.push(withdrawal.clone());
            applied(ChangeBody::Withdrawn {
                section: section.clone(),
                withdrawal,
            })
        }
    }
}

fn validate(op: &Op) -> Result<(), Reject> {
    let invalid = |message: String| Err(Reject::new(RejectCode::InvalidOp, message));
    let check_value = |value: &Value| {
        value
            .validate()
            .map_err(|e| Reject::new(RejectCode::InvalidOp, e.to_string()))
    };
    if let Some(field) = op.body.field()
        && field.is_empty()
    {
        return invalid("the field key is empty".to_owned());
    }
    match &op.body {
        OpBody::Create {
            entity_type,
            fields,
        } => {
            if entity_type.is_empty() {
                return invalid("the entity type is empty".to_owned());
            }
            for (key, value) in fields {
                if key.is_empty() {
                    return invalid("a field key is empty".to_owned());
                }
                check_value(value)?;
            }
        }
        OpBody::Set { value, .. } => check_value(value)?,
        OpBody::Add { element, .. } | OpBody::Remove { element, .. } => check_value(element)?,
        OpBody::Tombstone => {}
        OpBody::Sign {
            content_hash,
            signature,
            ..
        } => {
            let is_hex = content_hash.len() == 64
                && content_hash
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !is_hex {
                return invalid(format!(
                    "content hash {content_hash:?} is not a lowercase hex SHA-256"
                ));
            }
            check_value(signature)?;
        }
        OpBody::Resolve { value, reason, .. } => {
            check_value(value)?;
            if reason.trim().is_empty() {
                return invalid("a resolution needs a reason".to_owned());
            }
        }
        OpBody::Withdraw { section, reason } => {
            if section.is_empty() {
                return invalid("the section is empty".to_owned());
            }
            if reason.trim().is_empty() {
                return invalid("withdrawing a signature needs a reason".to_owned());
            }
        }
    }
    Ok(())
}

/// A replay whose effect is still visible in the state. (Replays are normally caught earlier
/// by the series check; this makes merging idempotent on its own.)
fn is_duplicate(state: &EntityState, op: &Op) -> bool {
    match &op.body {
        OpBody::Set { field, .. } | OpBody::Resolve { field, .. } => {
            state.fields.get(field).is_some_and(|f| {
                f.op == op.id
                    || f.conflict
                        .as_ref()
                        .is_some_and(|c| c.candidates.iter().any(|x| x.op == op.id))
                    || f.resolution.as_ref().is_some_and(|r| r.op == op.id)
            })
        }
        OpBody::Add { field, .. } => state
            .sets
            .get(field)
            .is_some_and(|s| s.elements.values().any(|e| e.tags.contains(&op.id))),
        OpBody::Sign { section, .. } => {
            state.signatures.get(section).is_some_and(|s| s.op == op.id)
                || state.withdrawals.iter().any(|w| w.signature.op == op.id)
        }
        OpBody::Withdraw { .. } => state.withdrawals.iter().any(|w| w.op == op.id),
        OpBody::Create { .. } | OpBody::Remove { .. } | OpBody::Tombstone => false,
    }
}

fn check_unsigned(state: &EntityState, field: &str) -> Result<(), Reject> {
    let section = section_of(field);
    match state.signatures.get(section) {
        Some(sig) => Err(Reject::new(
            RejectCode::SectionSigned,
            format!(
                "section {section:?} was signed (commit {}) after this edit was made; \
                 field {field:?} can no longer change",
                sig.signed_at_commit
            ),
        )),
        None => Ok(()),
    }
}

fn check_kind(state: &EntityState, field: &str, want_set: bool) -> Result<(), Reject> {
    let mismatch = if want_set {
        state.fields.contains_key(field)
    } else {
        state.sets.contains_key(field)
    };
    if mismatch {
        let (is, op) = if want_set {
            ("a scalar field", "add/remove")
        } else {
            ("a set field", "set/resolve")
        };
        return Err(Reject::new(
            RejectCode::FieldKindMismatch,
            format!("field {field:?} is {is}; {op} does not apply to it"),
        ));
    }
    Ok(())
}

fn element_key(element: &Value) -> Result<String, Reject> {
    canonical_json(element).map_err(|e| Reject::new(RejectCode::InvalidOp, e.to_string()))
}

fn set_change(state: &EntityState, field: &str) -> ChangeBody {
    ChangeBody::SetField {
        field: field.to_owned(),
        state: state.sets.get(field).cloned().unwrap_or_default(),
    }
}

fn create(
    op: &Op,
    entity_type: &str,
    fields: &std::collections::BTreeMap<String, Value>,
) -> EntityState {
    EntityState {
        id: op.entity,
        entity_type: entity_type.to_owned(),
        created_by: op.id,
        tombstoned: false,
        fields: fields
            .iter()
            .map(|(key, value)| {
                let field = FieldState {
                    value: value.clone(),
                    rev: 1,
                    last_writer: op.device,
                    op: op.id,
                    hlc: op.hlc,
                    streak_base: 0,
                    conflict: None,
                    resolution: None,
                };
                (key.clone(), field)
            })
            .collect(),
        sets: Default::default(),
        signatures: Default::default(),
        withdrawals: Vec::new(),
    }
}

fn candidate(op: &Op, value: &Value) -> Candidate {
    Candidate {
        value: value.clone(),
        op: op.id,
        device: op.device,
        hlc: op.hlc,
    }
}

/// The revision/streak rule. Returns the new field state and whether it is (now) conflicted.
fn set(
    prev: Option<&FieldState>,
    op: &Op,
    value: &Value,
    base_rev: u64,
) -> Result<(FieldState, bool), Reject> {
    let Some(prev) = prev else {
        if base_rev != 0 {
            return Err(invalid_base(base_rev, 0));
        }
        return Ok((
            FieldState {
                value: value.clone(),
                rev: 1,
                last_writer: op.device,
                op: op.id,
                hlc: op.hlc,
                streak_base: 0,
                conflict: None,
                resolution: None,
            },
            false,
        ));
    };
    if base_rev > prev.rev {
        return Err(invalid_base(base_rev, prev.rev));
    }
    let candidates = match &prev.conflict {
        Some(_) if base_rev == prev.rev => {
            return Err(Reject::new(
                RejectCode::ConflictUnresolved,
                "the field has concurrent values; resolve the conflict instead of setting it",
            ));
        }
        // Extend the conflict. The device's own earlier candidate is superseded: its ops are
        // sequential, so this edit was made with that value in view.
        Some(conflict) => {
            let mut candidates: Vec<_> = conflict
                .candidates
                .iter()
                .filter(|c| c.device != op.device)
                .cloned()
                .collect();
            candidates.push(candidate(op, value));
            candidates
        }
        None if base_rev == prev.rev
            || (prev.last_writer == op.device && base_rev >= prev.streak_base) =>
        {
            let streak_base = if prev.last_writer == op.device {
                prev.streak_base
            } else {
                base_rev
            };
            return Ok((
                FieldState {
                    value: value.clone(),
                    rev: prev.rev + 1,
                    last_writer: op.device,
                    op: op.id,
                    hlc: op.hlc,
                    streak_base,
                    conflict: None,
                    resolution: None,
                },
                false,
            ));
        }
        // Concurrent with the current value: keep both.
        None => vec![prev.as_candidate(), candidate(op, value)],
    };
    let conflict = Conflict::new(candidates);
    let winner = conflict
        .winner()
        .map_or_else(|| value.clone(), |w| w.value.clone());
    Ok((
        FieldState {
            value: winner,
            rev: prev.rev + 1,
            last_writer: op.device,
            op: op.id,
            hlc: op.hlc,
            streak_base: prev.streak_base,
            conflict: Some(conflict),
            resolution: None,
        },
        true,
    ))
}

fn invalid_base(base_rev: u64, rev: u64) -> Reject {
    Reject::new(
        RejectCode::InvalidBaseRev,
        format!("base revision {base_rev} is newer than the field's revision {rev}"),
    )
}

fn resolve(
    prev: Option<&FieldState>,
    op: &Op,
    field: &str,
    value: &Value,
    base_rev: u64,
    chosen_op: Option<OpId>,
    reason: &str,
) -> Result<FieldState, Reject> {
    let no_conflict = || {
        Reject::new(
            RejectCode::NoConflict,
            format!("field {field:?} has no conflict to resolve"),
        )
    };
    let prev = prev.ok_or_else(no_conflict)?;
    // Stale first: if the field moved on (even to "resolved by someone else"), the person must
    // see the new state before deciding anything.
    if base_rev != prev.rev {
        return Err(Reject::new(
            RejectCode::StaleResolve,
            format!(
                "field {field:?} changed since the conflict was shown (revision {base_rev}, now \
                 {}); review the new value(s) and resolve again",
                prev.rev
            ),
        ));
    }
    let conflict = prev.conflict.as_ref().ok_or_else(no_conflict)?;
    if let Some(chosen) = chosen_op {
        let matches = conflict
            .candidates
            .iter()
            .any(|c| c.op == chosen && &c.value == value);
        if !matches {
            return Err(Reject::new(
                RejectCode::UnknownCandidate,
                format!("op {chosen} is not a candidate of field {field:?} with this value"),
            ));
        }
    }
    Ok(FieldState {
        value: value.clone(),
        rev: prev.rev + 1,
        last_writer: op.device,
        op: op.id,
        hlc: op.hlc,
        streak_base: base_rev,
        conflict: None,
        resolution: Some(Resolution {
            op: op.id,
            device: op.device,
            chosen_op,
            reason: reason.to_owned(),
            candidates: conflict.candidates.clone(),
        }),
    })
}
