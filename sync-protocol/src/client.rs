//! The device side: a replica of the server's state plus an outbox of pending ops.
//!
//! Vocabulary:
//! - **Confirmed state**: what the device has pulled from the server, applied in commit order.
//!   It only ever moves forward, so the base revisions the device puts on its ops never go
//!   backwards.
//! - **Outbox**: ops made on the device and not yet known to be in the confirmed state. An op is
//!   *queued* until the server acknowledges it (applied, conflict or duplicate), then
//!   *acknowledged* until the pulled feed passes its commit sequence number, then dropped.
//! - **Rejections**: ops the server refused, with the reason, for the UI to show ("the water
//!   resources section was signed before your edit reached the server"). Never silently dropped.
//! - **View** ([`Replica::view`]): the confirmed state with the outbox re-applied on top
//!   (rebase) using the same [`merge`] as the server — what the UI shows.
//!
//! The whole [`Replica`] is serialisable, so a PWA or app persists it as is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::canonical::{HashError, section_hash};
use crate::change::{MissingEntity, apply_change};
use crate::hlc::{Clock, ClockDrift};
use crate::ids::{DeviceId, EntityId, OpId};
use crate::merge::{AllowAll, MergeContext, Outcome, Reject, RejectCode, merge};
use crate::op::{Op, OpBody};
use crate::state::EntityState;
use crate::value::Value;
use crate::wire::{
    MAX_OPS_PER_REQUEST, OpResult, PROTOCOL_VERSION, ProtocolError, SyncRequest, SyncResponse,
    check_version,
};

/// Why the replica refused to make an op or to take a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The op would be rejected by the rules given what the device knows (e.g. the section is
    /// signed, the field is in conflict and needs a resolve).
    #[error("{0}")]
    Rejected(#[from] Reject),
    /// The section cannot be hashed for signing.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// The response speaks another protocol version.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The pulled changes skip an entity's creation.
    #[error(transparent)]
    Feed(#[from] MissingEntity),
}

/// An op in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The op.
    pub op: Op,
    /// `Some(commit_seq)` once the server acknowledged it; it stays in the view until the
    /// pulled feed reaches that commit so the UI never flickers back to the old value.
    pub acknowledged: Option<u64>,
}

/// An op the server refused, kept for the person to see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// The refused op (its value is not lost: the UI can offer to re-apply it).
    pub op: Op,
    /// Machine-readable reason.
    pub code: RejectCode,
    /// Human-readable explanation.
    pub message: String,
}

/// What [`Replica::handle_response`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Ops the server acknowledged in this response.
    pub acknowledged: usize,
    /// Ops the server accepted as conflicting values.
    pub conflicts: usize,
    /// Ops the server rejected (now in [`Replica::rejections`]).
    pub rejected: usize,
    /// Ops held behind a gap (still queued).
    pub held: usize,
    /// Changes applied to the confirmed state.
    pub changes_applied: usize,
    /// The server has more changes: sync again.
    pub has_more: bool,
    /// A pulled HLC was beyond the drift bound (this or another device's clock is wrong).
    pub clock_drift: Option<ClockDrift>,
}

/// A device's replica. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    device: DeviceId,
    clock: Clock,
    next_seq: u64,
    cursor: u64,
    confirmed: BTreeMap<EntityId, EntityState>,
    outbox: Vec<Pending>,
    rejections: Vec<Rejection>,
    /// Views of entities touched by local edits since the last response, so making an op costs
    /// one merge instead of re-applying the whole outbox (O(n) per op, not O(n²) for a long
    /// offline session). Derived data: not serialised, not compared.
    #[serde(skip)]
    view_cache: ViewCache,
}

/// Cached per-entity views (`None`: the entity does not exist in the view).
#[derive(Debug, Clone, Default)]
struct ViewCache(BTreeMap<EntityId, Option<EntityState>>);

impl PartialEq for ViewCache {
    /// Always equal: the cache is derived from the replica's state and never changes its meaning.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ViewCache {}

const PREVIEW: MergeContext<'static> = MergeContext {
    policy: &AllowAll,
    commit_seq: 0,
};

impl Replica {
    /// A fresh replica for a device that has made no ops yet.
    pub fn new(device: DeviceId) -> Self {
        Self {
            device,
            clock: Clock::new(),
            next_seq: 1,
            cursor: 0,
            confirmed: BTreeMap::new(),
            outbox: Vec::new(),
            rejections: Vec::new(),
            view_cache: ViewCache::default(),
        }
    }

    /// This device.
    pub fn device(&self) -> DeviceId {
        self.device
    }

    /// The last commit sequence number applied.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The device's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The confirmed state (pulled from the server).
    pub fn confirmed(&self) -> &BTreeMap<EntityId, EntityState> {
        &self.confirmed
    }

    /// The outbox, oldest first.
    pub fn outbox(&self) -> &[Pending] {
        &self.outbox
    }

    /// Ops the server refused, oldest first.
    pub fn rejections(&self) -> &[Rejection] {
        &self.rejections
    }

    /// Takes the rejections once the UI has shown them.
    pub fn take_rejections(&mut self) -> Vec<Rejection> {
        std::mem::take(&mut self.rejections)
    }

    /// Whether nothing is waiting to be sent or confirmed.
    pub fn is_quiet(&self) -> bool {
        self.outbox.is_empty()
    }

    /// The confirmed state with pending ops re-applied: what the UI shows.
    pub fn view(&self) -> BTreeMap<EntityId, EntityState> {
        let mut states = self.confirmed.clone();
        for pending in &self.outbox {
            let op = &pending.op;
            if let Some(effect) = merge(states.get(&op.entity), op, &PREVIEW).effect() {
                states.insert(op.entity, effect.state.clone());
            }
        }
        states
    }

    /// The view of one entity.
    pub fn view_entity(&self, entity: EntityId) -> Option<EntityState> {
        if let Some(cached) = self.view_cache.0.get(&entity) {
            return cached.clone();
        }
        let mut state = self.confirmed.get(&entity).cloned();
        for pending in self.outbox.iter().filter(|p| p.op.entity == entity) {
            if let Some(effect) = merge(state.as_ref(), &pending.op, &PREVIEW).effect() {
                state = Some(effect.state.clone());
            }
        }
        state
    }

    /// Creates an entity with initial fields.
    pub fn create(
        &mut self,
        id: OpId,
        now_ms: u64,
        entity: EntityId,
        entity_type: &str,
        fields: BTreeMap<String, Value>,
    ) -> Result<&Op, ClientError> {
        let body = OpBody::Create {
            entity_type: entity_type.to_owned(),
            fields,
        };
        self.make(id, now_ms, entity, body)
    }

    /// Sets a scalar field, based on the field's confirmed revision.
    ///
    /// Refused while the confirmed field holds a conflict: the person must [`resolve`] it.
    ///
    /// [`resolve`]: Replica::resolve
    pub fn set(
        &mut self,
        id: OpId,
        now_ms: u64,
        entity: EntityId,
        field: &str,
        value: Value,
    ) -> Result<&Op, ClientError> {
        let confirmed = self.confirmed_field(entity, field);
        if confirmed.is_some_and(|f| f.conflict.is_some()) {
            return Err(Reject::new(
                RejectCode::ConflictUnresolved,
                format!("field {field:?} has concurrent values; resolve the conflict first"),
            )
            .into());
        }
        let base_rev = confirmed.map_or(0, |f| f.rev);
        let body = OpBody::Set {
            field: field.to_owned(),
            value,
            base_rev,
        };
        self.make(id, now_ms, entity, body)
    }

    /// Adds an element to a set field.
    pub fn add(
        &mut self,
        id: OpId,
        now_ms: u64,
        entity: EntityId,
        field: &str,
        element: Value,
    ) -> Result<&Op, ClientError> {
        let body = OpBody::Add {
            field: field.to_owned(),
            element,
        };
        self.make(id, now_ms, entity, body)
    }

    /// Removes an element from a set field: exactly the adds of it this device can see.
    pub fn remove(
        &mut self,
        id: OpId,
        now_ms: u64,
        entity: EntityId,
        field: &str,
        element: Value,
    ) -> Result<&Op, ClientError> {
        let observed = self
            .view_entity(entity)
            .and_then(|s| {
                let set = s.sets.get(field)?;
                set.elements
                    .values()
                    .find(|e| e.value == element)
                    .map(|e| e.tags.iter().copied().collect())
            })
            .unwrap_or_default();
        let body = OpBody::Remove {
            field: field.to_owned(),
            element,
            observed,
        };
        self.make(id, now_ms, entity, body)
    }

    /// Deletes an entity.
    pub fn tombstone(
        &mut self,
        id: OpId,
        now_ms: u64,
        entity: EntityId,
    ) -> Result<&Op, ClientError> {
        self.make(id, now_ms, entity, OpBody::Tombstone)
    }

    /// Signs a section as the device shows it (including pending edits, which reach the server
    /// before the signature because the series is ordered).
    pub fn sign(
        &mut self,
        id: OpId,
        now_ms: u64,
        entity: EntityId,
        section: &str,
        signature: Value,
    ) -> Result<&Op, ClientError> {
        self.sign_with(id, now_ms, entity, section, |_| signature)
    }

    /// Like [`Replica::sign`], with the signature made from the section hash the device shows
    /// (a device signature's statement names that hash, PROTOCOL.md §12).
    pub fn sign_with(
        &mut self,
        id: OpId,
        now_ms: u64,
        entity: EntityId,
        section: &str,
        signature: impl FnOnce(&str) -> Value,
    ) -> Result<&Op, ClientError> {
        let state = self.view_entity(entity).ok_or_else(|| {
            Reject::new(
                RejectCode::UnknownEntity,
                format!("entity {entity} does not exist"),
            )
        })?;
        let content_hash = section_hash(&state, section)?;
        let signature = signature(&content_hash);
        let body = OpBody::Sign {
            section: section.to_owned(),
            content_hash,
            signature,
        };
        self.make(id, now_ms, entity, body)
    }

    /// Resolves a conflicted field, based on its confirmed revision.
    #[allow(clippy::too_many_arguments)]
    pub fn resolve(
        &mut self,
        id: OpId,
        now_ms: u64,
        entity: EntityId,
        field: &str,
        value: Value,
        chosen_op: Option<OpId>,
        reason: &str,
    ) -> Result<&Op, ClientError> {
        let base_rev = self.confirmed_field(entity, field).map_or(0, |f| f.rev);
        let body = OpBody::Resolve {
            field: field.to_owned(),
            value,
            base_rev,
            chosen_op,
            reason: reason.to_owned(),
        };
        self.make(id, now_ms, entity, body)
    }

    /// The next request: queued ops (oldest first, at most [`MAX_OPS_PER_REQUEST`]) and the
    /// cursor.
    pub fn build_request(&self, pull_limit: Option<u32>) -> SyncRequest {
        SyncRequest {
            protocol_version: PROTOCOL_VERSION,
            device: self.device,
            ops: self
                .outbox
                .iter()
                .filter(|p| p.acknowledged.is_none())
                .take(MAX_OPS_PER_REQUEST)
                .map(|p| p.op.clone())
                .collect(),
            cursor: self.cursor,
            pull_limit,
        }
    }

    /// Takes a response: settles the outbox and applies the pulled changes.
    ///
    /// Safe with duplicated, late or reordered responses: results for ops no longer queued and
    /// changes at or below the cursor are ignored.
    pub fn handle_response(
        &mut self,
        response: &SyncResponse,
        now_ms: u64,
    ) -> Result<SyncReport, ClientError> {
        check_version(response.protocol_version)?;
        self.view_cache.0.clear();
        let mut report = SyncReport {
            has_more: response.has_more,
            ..SyncReport::default()
        };
        for result in &response.results {
            let Some(index) = self
                .outbox
                .iter()
                .position(|p| p.op.id == result.op() && p.acknowledged.is_none())
            else {
                continue;
            };
            match result {
                OpResult::Applied { commit_seq, .. } => {
                    self.outbox[index].acknowledged = Some(*commit_seq);
                    report.acknowledged += 1;
                }
                OpResult::Conflict { commit_seq, .. } => {
                    self.outbox[index].acknowledged = Some(*commit_seq);
                    report.acknowledged += 1;
                    report.conflicts += 1;
                }
                OpResult::Duplicate { .. } => {
                    self.outbox.remove(index);
                    report.acknowledged += 1;
                }
                OpResult::Rejected { code, message, .. } => {
                    let pending = self.outbox.remove(index);
                    self.rejections.push(Rejection {
                        op: pending.op,
                        code: *code,
                        message: message.clone(),
                    });
                    report.rejected += 1;
                }
                OpResult::Gap { .. } => report.held += 1,
            }
        }
        for change in &response.changes {
            if change.commit_seq <= self.cursor {
                continue;
            }
            apply_change(&mut self.confirmed, change)?;
            self.cursor = change.commit_seq;
            report.changes_applied += 1;
            if let Err(drift) = self.clock.observe(change.hlc, now_ms) {
                report.clock_drift = Some(drift);
            }
        }
        self.cursor = self.cursor.max(response.cursor);
        let cursor = self.cursor;
        self.outbox
            .retain(|p| p.acknowledged.is_none_or(|commit| commit > cursor));
        Ok(report)
    }

    fn confirmed_field(&self, entity: EntityId, field: &str) -> Option<&crate::state::FieldState> {
        self.confirmed.get(&entity)?.fields.get(field)
    }

    /// Stamps an op, checks it against the view with the shared rules, and queues it.
    fn make(
        &mut self,
        id: OpId,
        now_ms: u64,
        entity: EntityId,
        body: OpBody,
    ) -> Result<&Op, ClientError> {
        // Tick a copy: a refused op must not advance the clock or consume a sequence number.
        let mut clock = self.clock;
        let op = Op {
            id,
            device: self.device,
            seq: self.next_seq,
            hlc: clock.tick(now_ms),
            entity,
            body,
        };
        if !self.view_cache.0.contains_key(&entity) {
            let view = self.view_entity(entity);
            self.view_cache.0.insert(entity, view);
        }
        let current = self.view_cache.0.get(&entity).and_then(Option::as_ref);
        let next = match merge(current, &op, &PREVIEW) {
            Outcome::Rejected(reject) => return Err(reject.into()),
            Outcome::Duplicate => {
                return Err(Reject::new(
                    RejectCode::InvalidOp,
                    format!("op id {id} was already used"),
                )
                .into());
            }
            Outcome::Applied(effect) | Outcome::Conflict(effect) => effect.state,
        };
        self.view_cache.0.insert(entity, Some(next));
        self.clock = clock;
        self.next_seq += 1;
        self.outbox.push(Pending {
            op,
            acknowledged: None,
        });
        let pending = self.outbox.last().expect("an op was just pushed");
        Ok(&pending.op)
    }
}
