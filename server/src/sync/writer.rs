//! The group-commit writer of sync pushes.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use sync_protocol::{Batch, EntityId, EntityState, Op, OpResult, section_of};
use uuid::Uuid;

use super::policy::{SyncPolicy, scope_of};
use crate::{
    clock::Clock,
    error::{AppError, Result},
    store::{ChangeRow, ConflictRow, EntityRow, Store, StoreError, StoredOp, SyncWrites},
};

/// One device's push, waiting for the writer.
#[derive(Debug)]
pub struct Job {
    pub device: Uuid,
    pub ops: Vec<Op>,
    /// Each op as JSON for the op log, encoded here on the request's thread: the writer, which
    /// every device waits for, only binds it.
    pub op_json: Vec<Arc<str>>,
    pub claims: crate::identity::auth::Claims,
    /// The verdicts on the device signatures the ops carry (checked before the writer).
    pub signatures: super::signatures::SignatureVerdicts,
}

impl Job {
    pub fn new(device: Uuid, ops: Vec<Op>, claims: crate::identity::auth::Claims) -> Result<Self> {
        let op_json = ops
            .iter()
            .map(|op| serde_json::to_string(op).map(Arc::from))
            .collect::<Result<_, _>>()
            .map_err(|e| AppError::Internal(format!("encode op: {e}")))?;
        Ok(Self {
            device,
            ops,
            op_json,
            claims,
            signatures: Default::default(),
        })
    }

    /// The same job with the verdicts on its signatures.
    pub fn with_signatures(mut self, signatures: super::signatures::SignatureVerdicts) -> Self {
        self.signatures = signatures;
        self
    }
}

type Reply = tokio::sync::oneshot::Sender<Result<Vec<OpResult>>>;

/// Group commit: one task per server process writes the queued pushes of many devices in one
/// transaction. A batch costs a fixed number of statements whatever its size, so grouping cuts
/// the per-request transaction cost, and requests keep parsing and authenticating on the other
/// threads while the writer works instead of queueing on the database lock one by one.
/// The queue is transient: a reply is sent only after the commit, so a crash loses nothing the
/// devices were told was stored (they retry and get `duplicate` for what did commit).
#[derive(Debug, Clone)]
pub struct SyncWriter {
    queue: tokio::sync::mpsc::Sender<(Job, Reply)>,
}

/// Ops gathered into one transaction at most (a group never splits a device's batch).
const GROUP_MAX_OPS: usize = 5_000;

impl SyncWriter {
    /// Start the writer task (needs a tokio runtime); ops are stamped as received at `clock`'s
    /// time when their group is written.
    pub fn start(
        store: Arc<dyn Store>,
        departments: Arc<Vec<String>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let (queue, mut rx) = tokio::sync::mpsc::channel::<(Job, Reply)>(4096);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut group = vec![first];
                let mut ops = group[0].0.ops.len();
                while ops < GROUP_MAX_OPS {
                    match rx.try_recv() {
                        Ok(next) => {
                            ops += next.0.ops.len();
                            group.push(next);
                        }
                        Err(_) => break,
                    }
                }
                let (jobs, replies): (Vec<Job>, Vec<Reply>) = group.into_iter().unzip();
                let received_at = clock.now_ms();
                let results = write_group(store.as_ref(), &departments, &jobs, received_at).await;
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(r);
                }
            }
        });
        SyncWriter { queue }
    }

    pub(crate) async fn submit(&self, job: Job) -> Result<Vec<OpResult>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue
            .send((job, tx))
            .await
            .map_err(|_| AppError::Unavailable("sync writer stopped".into()))?;
        rx.await
            .map_err(|_| AppError::Unavailable("sync writer stopped".into()))?
    }
}

fn clone_error(e: &AppError) -> AppError {
    match e {
        AppError::Unavailable(m) => AppError::Unavailable(m.clone()),
        AppError::Conflict { code, message } => AppError::Conflict {
            code: *code,
            message: message.clone(),
        },
        other => AppError::Internal(other.to_string()),
    }
}

/// Write a group of jobs in one transaction; one result per job.
///
/// The only way one device's push can fail a transaction that others share is an op whose id
/// is already stored (the op log's key): a client bug or a forged request. The group is then
/// written again job by job, so only that device gets the error.
async fn write_group(
    store: &dyn Store,
    departments: &[String],
    jobs: &[Job],
    received_at: i64,
) -> Vec<Result<Vec<OpResult>>> {
    match write_jobs(store, departments, jobs, received_at).await {
        Ok(results) => results.into_iter().map(Ok).collect(),
        Err(StoreError::Conflict { constraint }) if jobs.len() > 1 => {
            tracing::warn!(
                ?constraint,
                jobs = jobs.len(),
                "sync group refused; writing its jobs one by one"
            );
            let mut out = Vec::with_capacity(jobs.len());
            for job in jobs {
                out.push(
                    match write_jobs(store, departments, std::slice::from_ref(job), received_at)
                        .await
                    {
                        Ok(mut results) => Ok(results.pop().unwrap_or_default()),
                        Err(e) => Err(job_error(e)),
                    },
                );
            }
            out
        }
        Err(e) => {
            tracing::warn!(error = ?e.to_string(), jobs = jobs.len(), "sync group failed");
            let e = job_error(e);
            jobs.iter().map(|_| Err(clone_error(&e))).collect()
        }
    }
}

/// The error a device gets when its push could not be written.
fn job_error(e: StoreError) -> AppError {
    match e {
        // The op log's key: `sync_ops_pkey` (PostgreSQL), "… sync_ops.op_id" (SQLite).
        StoreError::Conflict { constraint }
            if constraint.contains("sync_ops_pkey") || constraint.contains("sync_ops.op_id") =>
        {
            tracing::warn!(?constraint, "a sync push reuses a stored op id");
            AppError::Conflict {
                code: crate::error::ErrorCode::OpIdReused,
                message: "an op in this batch has the id of a change the server already holds \
                          under another sequence number; nothing of the batch was saved. Every \
                          change needs its own id: this is a bug in the app, please report it"
                    .into(),
            }
        }
        other => other.into(),
    }
}

async fn write_jobs(
    store: &dyn Store,
    departments: &[String],
    jobs: &[Job],
    received_at: i64,
) -> Result<Vec<Vec<OpResult>>, StoreError> {
    let batches: Vec<(Uuid, &[Op])> = jobs.iter().map(|j| (j.device, j.ops.as_slice())).collect();
    let process = Box::new(move |loaded: crate::store::SyncLoaded| {
        process_group(loaded, departments, jobs, received_at)
    });
    Ok(store
        .sync_batch(&batches, received_at, process)
        .await?
        .results)
}

/// Run every job of a group in order over shared entity states (a later job sees what an
/// earlier one did), then derive the rows to store.
pub(crate) fn process_group(
    mut loaded: crate::store::SyncLoaded,
    departments: &[String],
    jobs: &[Job],
    received_at: i64,
) -> SyncWrites {
    let mut writes = SyncWrites::default();
    let mut changed: std::collections::BTreeSet<EntityId> = std::collections::BTreeSet::new();
    let mut next_commit_seq = loaded.next_commit_seq;
    let mut changes = Vec::new();
    let no_seqs = BTreeMap::new();
    // Jobs of each device still to come in this group.
    let mut pending: HashMap<Uuid, usize> = HashMap::new();
    for job in jobs {
        *pending.entry(job.device).or_default() += 1;
    }
    for job in jobs {
        let touched = sync_protocol::touched_entities(&job.ops);
        let entities: BTreeMap<EntityId, EntityState> = touched
            .iter()
            .filter_map(|id| loaded.entities.remove(id).map(|s| (*id, s)))
            .collect();
        let policy = SyncPolicy {
            role: job.claims.role,
            department: job.claims.dept.clone(),
            township: job.claims.town,
            departments,
            scopes: entities.iter().map(|(id, s)| (*id, scope_of(s))).collect(),
            templates: super::templates::TemplatePolicy::from_states(entities.values()),
            signatures: &job.signatures,
        };
        let device = job.device;
        let last_seq = loaded.series.get(&device).copied().unwrap_or(0);
        let outcome = sync_protocol::process_batch(Batch {
            device: sync_protocol::DeviceId(device),
            series: sync_protocol::SeriesState { last_seq },
            entities,
            ops: &job.ops,
            policy: &policy,
            next_commit_seq,
            prior_results: &loaded.prior_results,
            stored_ops: loaded.stored_ops.get(&device).unwrap_or(&no_seqs),
        });
        next_commit_seq = outcome.next_commit_seq;
        loaded.series.insert(device, outcome.series.last_seq);
        writes.series.push((device, outcome.series.last_seq));
        let stored_before = writes.ops.len();
        for (((op, op_json), result), keep) in job
            .ops
            .iter()
            .zip(&job.op_json)
            .zip(&outcome.results)
            .zip(&outcome.stored)
        {
            let commit_seq = match result {
                OpResult::Applied { commit_seq, .. } | OpResult::Conflict { commit_seq, .. } => {
                    Some(*commit_seq)
                }
                _ => None,
            };
            if *keep {
                writes.ops.push(StoredOp {
                    id: op.id,
                    device: op.device.0,
                    seq: op.seq,
                    entity: op.entity,
                    kind: op.body.kind(),
                    op_json: op_json.clone(),
                    result: result.clone(),
                    commit_seq,
                    received_at,
                });
            }
        }
        // Later jobs of the same device in this group must see this job's ops as stored,
        // exactly as a later transaction would: a retry of a rejected op (e.g. a request sent
        // twice) gets the rejection again, never `duplicate`, which would make the phone drop
        // the value. (Only the same device can retry these ops.)
        let later = pending.get_mut(&device).map_or(0, |n| {
            *n -= 1;
            *n
        });
        if later > 0 {
            for stored in &writes.ops[stored_before..] {
                loaded
                    .prior_results
                    .insert(stored.id, stored.result.clone());
            }
            for (op, _) in job.ops.iter().zip(&outcome.stored).filter(|(_, s)| **s) {
                loaded
                    .stored_ops
                    .entry(device)
                    .or_default()
                    .insert(op.seq, op.clone());
            }
        }
        changed.extend(outcome.changed.iter().copied());
        changes.extend(outcome.changes);
        loaded.entities.extend(outcome.entities);
        writes.results.push(outcome.results);
    }
    // A device listed twice in one group keeps its last series value.
    writes.series.reverse();
    let mut seen = std::collections::HashSet::new();
    writes.series.retain(|(d, _)| seen.insert(*d));

    let mut last_commit: HashMap<EntityId, u64> = HashMap::new();
    for c in &changes {
        last_commit.insert(c.entity, c.commit_seq);
    }
    let mut scopes = HashMap::new();
    for id in &changed {
        let Some(state) = loaded.entities.get(id) else {
            continue;
        };
        let scope = scope_of(state);
        scopes.insert(*id, scope);
        let commit = last_commit.get(id).copied().unwrap_or(0);
        writes.conflicts_of.push(*id);
        for (field, f) in &state.fields {
            if let Some(c) = &f.conflict {
                writes.conflicts.push(ConflictRow {
                    entity: *id,
                    field: field.clone(),
                    section: section_of(field).to_owned(),
                    entity_type: state.entity_type.clone(),
                    scope,
                    candidates: u32::try_from(c.candidates.len()).unwrap_or(u32::MAX),
                    since_commit: commit,
                });
            }
        }
        writes.entities.push(EntityRow {
            state: state.clone(),
            scope,
            last_commit: commit,
        });
    }
    writes.changes = changes
        .into_iter()
        .map(|change| ChangeRow {
            scope: scopes.get(&change.entity).copied().flatten(),
            change,
        })
        .collect();
    writes
}
