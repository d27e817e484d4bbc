//! Entity state: what the server stores per entity and a device mirrors.
//!
//! Vocabulary:
//! - **Revision** (`rev`): a per-field counter, +1 on every change of the field (set, conflict,
//!   resolve). Ops carry the revision they were based on.
//! - **Streak**: consecutive changes of a field by one device. `streak_base` is the revision the
//!   streak started from; a device's own sequential offline edits all carry that base and must
//!   not conflict with each other. The rule needs no history (O(1) per field).
//! - **Conflict** ([`Conflict`]): every concurrent candidate value of a field; the field's
//!   `value` is the deterministic provisional winner (largest HLC, then device id, then op id).
//! - **Resolution** ([`Resolution`]): the record of who resolved a conflict, choosing what, why,
//!   and from which candidates — kept on the field until its next change (the op log keeps it
//!   forever).
//! - **OR-set** ([`OrSet`]): a set field; each element carries the ids of the `add` ops that put
//!   it there ("tags"). A remove deletes only the tags its device had seen.
//! - **Section signature** ([`SectionSignature`]): freezes a section.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::hlc::Hlc;
use crate::ids::{DeviceId, EntityId, OpId};
use crate::value::Value;

/// The state of one entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityState {
    /// The entity.
    pub id: EntityId,
    /// Template type given at creation.
    pub entity_type: String,
    /// The `create` op, so a replayed create is recognised as a duplicate.
    pub created_by: OpId,
    /// Deleted; every later op is rejected.
    pub tombstoned: bool,
    /// Scalar fields by key.
    pub fields: BTreeMap<String, FieldState>,
    /// Set fields by key. A key is either scalar or set, never both.
    pub sets: BTreeMap<String, OrSet>,
    /// Signatures by section name.
    pub signatures: BTreeMap<String, SectionSignature>,
    /// Signatures withdrawn by their signers, oldest first (the audit trail of `withdraw`).
    /// Absent on the wire while empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withdrawals: Vec<Withdrawal>,
}

impl EntityState {
    /// Whether the section of this name has been signed.
    pub fn is_signed(&self, section: &str) -> bool {
        self.signatures.contains_key(section)
    }

    /// The current value of a scalar field (the provisional winner while conflicted).
    pub fn value(&self, field: &str) -> Option<&Value> {
        self.fields.get(field).map(|f| &f.value)
    }

    /// The elements of a set field, in canonical order.
    pub fn elements(&self, field: &str) -> Vec<&Value> {
        self.sets
            .get(field)
            .map(|s| s.elements.values().map(|e| &e.value).collect())
            .unwrap_or_default()
    }
}

/// The state of one scalar field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldState {
    /// Current value; while conflicted, the provisional winner's value.
    pub value: Value,
    /// Revision: 1 after the first write, +1 on every change.
    pub rev: u64,
    /// Device of the op that last changed the field.
    pub last_writer: DeviceId,
    /// The op that last changed the field (a set, resolve or the create).
    pub op: OpId,
    /// HLC of that op.
    pub hlc: Hlc,
    /// Revision the current streak of `last_writer` started from: every revision after it was
    /// written by `last_writer`, so its edits based on `streak_base` or later saw everything.
    pub streak_base: u64,
    /// Concurrent values waiting for a person, if any.
    pub conflict: Option<Conflict>,
    /// How the last conflict was resolved, until the field changes again.
    pub resolution: Option<Resolution>,
}

impl FieldState {
    /// The field's current value as a conflict candidate.
    pub fn as_candidate(&self) -> Candidate {
        Candidate {
            value: self.value.clone(),
            op: self.op,
            device: self.last_writer,
            hlc: self.hlc,
        }
    }
}

/// Concurrent values of one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// Every concurrent value, at most one per device (a device's later edit supersedes its own
    /// earlier one), sorted ascending by (hlc, device, op): the last is the provisional winner.
    pub candidates: Vec<Candidate>,
}

impl Conflict {
    /// Builds a conflict, putting candidates in their canonical order.
    pub fn new(mut candidates: Vec<Candidate>) -> Self {
        candidates.sort_by_key(Candidate::order_key);
        Self { candidates }
    }

    /// The provisional winner: largest HLC, then device id, then op id.
    pub fn winner(&self) -> Option<&Candidate> {
        self.candidates.last()
    }

    /// Whether some candidate holds this value.
    pub fn holds(&self, value: &Value) -> bool {
        self.candidates.iter().any(|c| &c.value == value)
    }
}

/// One concurrent value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// The value.
    pub value: Value,
    /// The op that wrote it.
    pub op: OpId,
    /// Its device.
    pub device: DeviceId,
    /// Its HLC; orders the candidates.
    pub hlc: Hlc,
}

impl Candidate {
    fn order_key(&self) -> (Hlc, DeviceId, OpId) {
        (self.hlc, self.device, self.op)
    }
}

/// Who resolved a conflict, how and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// The `resolve` op.
    pub op: OpId,
    /// Who resolved.
    pub device: DeviceId,
    /// The candidate chosen, if the value is one of them.
    pub chosen_op: Option<OpId>,
    /// Why.
    pub reason: String,
    /// The candidates the person chose from — no value disappears without a trace.
    pub candidates: Vec<Candidate>,
}

/// An add-wins observed-remove set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrSet {
    /// Elements keyed by their canonical JSON (so equal values share one entry).
    pub elements: BTreeMap<String, SetElement>,
}

/// One element of an [`OrSet`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetElement {
    /// The element.
    pub value: Value,
    /// Ids of the `add` ops that put it there and have not been removed.
    pub tags: BTreeSet<OpId>,
}

/// A signature its signer withdrew.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawal {
    /// The section that was signed.
    pub section: String,
    /// The signature as it stood.
    pub signature: SectionSignature,
    /// The `withdraw` op.
    pub op: OpId,
    /// Device that withdrew.
    pub device: DeviceId,
    /// HLC of the `withdraw` op.
    pub hlc: Hlc,
    /// Why.
    pub reason: String,
    /// The server commit sequence number at which the withdrawal took effect.
    pub withdrawn_at_commit: u64,
}

/// A signature on a section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionSignature {
    /// Hash of the section that was signed.
    pub content_hash: String,
    /// The server commit sequence number at which the signature took effect.
    pub signed_at_commit: u64,
    /// The `sign` op.
    pub op: OpId,
    /// Device that signed.
    pub device: DeviceId,
    /// HLC of the `sign` op.
    pub hlc: Hlc,
    /// The opaque signature payload.
    pub signature: Value,
}
