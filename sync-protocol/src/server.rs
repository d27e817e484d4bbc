//! An in-memory reference server: the executable spec of the authority.
//!
//! [`Authority`] keeps everything the real server keeps in its database — entity states,
//! per-device series, stored op results, the op log and the change feed — in memory, and runs
//! the same [`process_batch`] the real server runs. It is used by the tests and examples; it is
//! deliberately *not* a second copy of the rules.

use std::collections::{BTreeMap, BTreeSet};

use crate::batch::{Batch, process_batch, touched_entities};
use crate::change::{Change, page};
use crate::ids::{DeviceId, EntityId, OpId};
use crate::merge::{AllowAll, Policy};
use crate::op::Op;
use crate::series::SeriesState;
use crate::state::EntityState;
use crate::wire::{
    DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT, OpResult, PROTOCOL_VERSION, ProtocolError, SyncRequest,
    SyncResponse, check_request, check_version,
};

/// The authority: assigns commit sequence numbers and decides every op.
#[derive(Debug, Clone)]
pub struct Authority<P = AllowAll> {
    policy: P,
    entities: BTreeMap<EntityId, EntityState>,
    series: BTreeMap<DeviceId, SeriesState>,
    results: BTreeMap<OpId, OpResult>,
    log: Vec<(Op, OpResult)>,
    feed: Vec<Change>,
    next_commit_seq: u64,
}

impl Default for Authority<AllowAll> {
    fn default() -> Self {
        Self::new(AllowAll)
    }
}

impl<P: Policy> Authority<P> {
    /// An empty authority with a policy.
    pub fn new(policy: P) -> Self {
        Self {
            policy,
            entities: BTreeMap::new(),
            series: BTreeMap::new(),
            results: BTreeMap::new(),
            log: Vec::new(),
            feed: Vec::new(),
            next_commit_seq: 1,
        }
    }

    /// Handles one sync round trip: push, then pull.
    ///
    /// The device is taken from the request; a real server takes it from authentication and
    /// rejects a request whose `device` differs.
    pub fn handle(&mut self, request: &SyncRequest) -> Result<SyncResponse, ProtocolError> {
        check_version(request.protocol_version)?;
        check_request(request)?;
        let results = self.push(request.device, &request.ops)?;
        let limit = request
            .pull_limit
            .unwrap_or(DEFAULT_PULL_LIMIT)
            .min(MAX_PULL_LIMIT);
        let page = page(&self.feed, request.cursor, limit);
        Ok(SyncResponse {
            protocol_version: PROTOCOL_VERSION,
            results,
            changes: page.changes.to_vec(),
            cursor: page.cursor,
            has_more: page.has_more,
        })
    }

    /// Processes pushed ops the way the real server does in one transaction.
    ///
    /// An op taking a new place in the series with an op id the authority already holds (or
    /// that an earlier op of the batch has) refuses the whole push, as the real server's op log
    /// key does: nothing is stored, and the device keeps every op.
    pub fn push(&mut self, device: DeviceId, ops: &[Op]) -> Result<Vec<OpResult>, ProtocolError> {
        let entities = touched_entities(ops)
            .into_iter()
            .filter_map(|id| self.entities.get(&id).map(|s| (id, s.clone())))
            .collect();
        let prior_results = ops
            .iter()
            .filter_map(|op| self.results.get(&op.id).map(|r| (op.id, r.clone())))
            .collect();
        let stored_ops = self
            .log
            .iter()
            .filter(|(op, _)| op.device == device)
            .map(|(op, _)| (op.seq, op.clone()))
            .collect();
        let outcome = process_batch(Batch {
            device,
            series: self.series.get(&device).copied().unwrap_or_default(),
            entities,
            ops,
            policy: &self.policy,
            next_commit_seq: self.next_commit_seq,
            prior_results: &prior_results,
            stored_ops: &stored_ops,
        });
        let mut new_ids = BTreeSet::new();
        for (op, stored) in ops.iter().zip(&outcome.stored) {
            if *stored && (self.results.contains_key(&op.id) || !new_ids.insert(op.id)) {
                return Err(ProtocolError::OpIdReused(op.id));
            }
        }
        self.series.insert(device, outcome.series);
        for ((op, result), stored) in ops.iter().zip(&outcome.results).zip(&outcome.stored) {
            if *stored {
                self.results.insert(op.id, result.clone());
                self.log.push((op.clone(), result.clone()));
            }
        }
        for id in &outcome.changed {
            if let Some(state) = outcome.entities.get(id) {
                self.entities.insert(*id, state.clone());
            }
        }
        self.feed.extend(outcome.changes);
        self.next_commit_seq = outcome.next_commit_seq;
        Ok(outcome.results)
    }

    /// The current state of an entity.
    pub fn entity(&self, id: EntityId) -> Option<&EntityState> {
        self.entities.get(&id)
    }

    /// All entity states.
    pub fn entities(&self) -> &BTreeMap<EntityId, EntityState> {
        &self.entities
    }

    /// The whole change feed.
    pub fn feed(&self) -> &[Change] {
        &self.feed
    }

    /// Every processed op with its result, in processing order (the audit log).
    pub fn log(&self) -> &[(Op, OpResult)] {
        &self.log
    }

    /// The stored result of an op.
    pub fn result(&self, op: OpId) -> Option<&OpResult> {
        self.results.get(&op)
    }

    /// A device's series.
    pub fn series(&self, device: DeviceId) -> SeriesState {
        self.series.get(&device).copied().unwrap_or_default()
    }
}
