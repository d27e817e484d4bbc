//! Ops: the unit of change a device makes and the server merges.
//!
//! Vocabulary:
//! - **Op** ([`Op`]): one field-level change to one entity, stamped with its device, its
//!   position in that device's **series** (`seq`, 1, 2, 3 … without gaps), an [`Hlc`] and a
//!   client-made [`OpId`].
//! - **Field key**: `"<section>/<name>"`, e.g. `"water_resources/item14.result"`. The
//!   **section** is the part before the first `/` ([`section_of`]); a key without `/` belongs
//!   to the header section `""`. Sections are the unit of signing: each department signs its
//!   own section of the acceptance table.
//! - **Scalar field**: holds one [`Value`], changed by `set` and `resolve`; concurrent sets
//!   become a conflict.
//! - **Set field**: an add-wins observed-remove set (OR-set) of values, changed by `add` and
//!   `remove`; it never conflicts (e.g. the photo ids attached to an item).
//! - **Base revision** (`base_rev`): the revision of the field as the device last *confirmed*
//!   it from the server when it made the edit; 0 for a field it has never seen.
//!
//! Wire form: a flat JSON object with the common keys and a `"kind"` tag, e.g.
//! `{"id":…,"device":…,"seq":3,"hlc":{"wall_ms":…,"counter":0},"entity":…,"kind":"set",
//! "field":"water_resources/item14.result","value":"pass","base_rev":2}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hlc::Hlc;
use crate::ids::{DeviceId, EntityId, OpId};
use crate::value::Value;

/// One change made by one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Unique id, made by the device.
    pub id: OpId,
    /// The device that made the op — the only writer of this op's series.
    pub device: DeviceId,
    /// Position in the device's series: 1, 2, 3 … without gaps, so the server can tell a retry
    /// (already seen) from a lost op (gap).
    pub seq: u64,
    /// When, in the device's hybrid logical time; orders concurrent values.
    pub hlc: Hlc,
    /// The entity changed.
    pub entity: EntityId,
    /// What changes.
    #[serde(flatten)]
    pub body: OpBody,
}

/// What an op does. Tagged by `"kind"` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OpBody {
    /// Creates the entity with initial scalar fields (each starts at revision 1).
    Create {
        /// Template type, e.g. `"acceptance_table"`; the server's policy checks it.
        entity_type: String,
        /// Initial scalar fields.
        fields: BTreeMap<String, Value>,
    },
    /// Sets a scalar field.
    Set {
        /// Field key `"<section>/<name>"`.
        field: String,
        /// New value.
        value: Value,
        /// The field revision, as last confirmed by the server, that this edit was based on.
        base_rev: u64,
    },
    /// Adds an element to a set field (add wins over a concurrent remove).
    Add {
        /// Field key.
        field: String,
        /// Element to add.
        element: Value,
    },
    /// Removes an element from a set field.
    Remove {
        /// Field key.
        field: String,
        /// Element to remove.
        element: Value,
        /// The ids of the `add` ops of this element that the device had seen. Only these are
        /// removed, so an add the device had not seen (a concurrent add) survives: that is what
        /// makes the set add-wins without keeping history.
        observed: Vec<OpId>,
    },
    /// Deletes the entity (kept as a tombstone; later ops on it are rejected).
    Tombstone,
    /// Signs a section, freezing it.
    Sign {
        /// Section name (the part of field keys before the first `/`).
        section: String,
        /// Lowercase hex SHA-256 of the section as the signer saw it
        /// ([`section_hash`](crate::canonical::section_hash)); must match the server's.
        content_hash: String,
        /// Opaque signature payload (signer, stroke image blob ref, device signature …); the
        /// protocol stores it, the server's policy may verify it.
        signature: Value,
    },
    /// Withdraws the signer's own signature of a section (audited, with the reason): the
    /// section can change again and must be signed again.
    Withdraw {
        /// The signed section.
        section: String,
        /// Why — kept with the withdrawn signature. Must not be empty.
        reason: String,
    },
    /// Resolves a conflicted scalar field; itself audited.
    Resolve {
        /// Field key.
        field: String,
        /// The value chosen (a candidate's value, or a new one typed by the person).
        value: Value,
        /// The revision of the conflicted field the person looked at; must be current.
        base_rev: u64,
        /// Which candidate was chosen, if the value is one of them.
        chosen_op: Option<OpId>,
        /// Why — shown in the audit trail. Must not be empty.
        reason: String,
    },
}

impl OpBody {
    /// The wire name of the op kind (`"set"`, `"sign"` …).
    pub fn kind(&self) -> &'static str {
        match self {
            OpBody::Create { .. } => "create",
            OpBody::Set { .. } => "set",
            OpBody::Add { .. } => "add",
            OpBody::Remove { .. } => "remove",
            OpBody::Tombstone => "tombstone",
            OpBody::Sign { .. } => "sign",
            OpBody::Withdraw { .. } => "withdraw",
            OpBody::Resolve { .. } => "resolve",
        }
    }

    /// The field key the op touches, for `set`, `add`, `remove` and `resolve`.
    pub fn field(&self) -> Option<&str> {
        match self {
            OpBody::Set { field, .. }
            | OpBody::Add { field, .. }
            | OpBody::Remove { field, .. }
            | OpBody::Resolve { field, .. } => Some(field),
            OpBody::Create { .. }
            | OpBody::Tombstone
            | OpBody::Sign { .. }
            | OpBody::Withdraw { .. } => None,
        }
    }

    /// The section the op touches: the field's section, or the signed section.
    pub fn section(&self) -> Option<&str> {
        match self {
            OpBody::Sign { section, .. } | OpBody::Withdraw { section, .. } => Some(section),
            other => other.field().map(section_of),
        }
    }
}

/// The section of a field key: the part before the first `/`, or `""` (header) if none.
pub fn section_of(field: &str) -> &str {
    field.split_once('/').map_or("", |(section, _)| section)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_is_the_part_before_the_first_slash() {
        assert_eq!(
            section_of("water_resources/item14.result"),
            "water_resources"
        );
        assert_eq!(section_of("a/b/c"), "a");
        assert_eq!(section_of("mine_name"), "");
    }
}
