//! The server side of the sync protocol (`sync-protocol/PROTOCOL.md`).
//!
//! Vocabulary:
//! - **push**: the ops a device sends; processed in one transaction by the crate's
//!   `process_batch` (the same function the reference authority in the crate uses), under
//!   [`SyncPolicy`] — who may write which section.
//! - **pull**: changes after the device's cursor, filtered by [`Visibility`], paginated.
//! - **scope**: the township an entity belongs to (its header field `township_id`); township
//!   officers see and write only their township's entities (and county-wide ones).
//! - **section**: the part of a field key before the first `/`. An acceptance record has a header
//!   (`""`, the county office and township), `township` (初验), one section per inspecting
//!   department (its code, e.g. `water_resources`), and `experts`.
//!
//! Field names are not checked against an acceptance template yet (templates arrive with the
//! workflow); sections and rights are.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use serde::Serialize;
use sync_protocol::{
    Batch, Candidate, EntityId, EntityState, Op, OpBody, OpResult, Policy, Reject, RejectCode,
    SyncRequest, section_of,
};
use uuid::Uuid;

use crate::{
    AppState,
    auth::AuthUser,
    error::{AppError, Result},
    store::{
        ChangeRow, ConflictRow, EntityRow, Role, Store, StoreError, StoredOp, SyncWrites,
        Visibility, now_ms,
    },
};

/// Entity types a device may create.
pub const ENTITY_TYPES: &[&str] = &["acceptance_record"];

/// The header field naming the township an entity belongs to.
pub const SCOPE_FIELD: &str = "township_id";

/// Sections that are not department codes.
pub const HEADER_SECTION: &str = "";
pub const TOWNSHIP_SECTION: &str = "township";
pub const EXPERT_SECTION: &str = "experts";

/// Who may write what, for one caller.
#[derive(Debug, Clone)]
pub struct SyncPolicy<'a> {
    pub role: Role,
    pub department: Option<String>,
    pub township: Option<Uuid>,
    /// Codes of the inspecting departments (each owns the section of the same name).
    pub departments: &'a [String],
    /// Scope of each entity the batch touches, as stored before the batch.
    pub scopes: HashMap<EntityId, Option<Uuid>>,
    /// Templates of the touched acceptance records: answers are checked against them.
    pub templates: crate::rounds::TemplatePolicy,
}

impl SyncPolicy<'_> {
    /// May the caller write fields of `section` (and sign it)?
    fn may_write(&self, section: &str) -> Result<(), Reject> {
        let allowed = match section {
            HEADER_SECTION => matches!(
                self.role,
                Role::Admin | Role::CountyOffice | Role::TownshipOfficer
            ),
            TOWNSHIP_SECTION => self.role == Role::TownshipOfficer,
            EXPERT_SECTION => self.role == Role::Expert,
            dept if self.departments.iter().any(|d| d == dept) => {
                self.role == Role::DepartmentInspector && self.department.as_deref() == Some(dept)
            }
            other => {
                return Err(Reject::new(
                    RejectCode::UnknownField,
                    format!("there is no section {other:?} in an acceptance record"),
                ));
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(Reject::new(
                RejectCode::Forbidden,
                format!(
                    "a {} may not change the {} section",
                    self.role,
                    if section.is_empty() {
                        "header"
                    } else {
                        section
                    }
                ),
            ))
        }
    }

    /// Township officers act only within their township.
    fn check_scope(&self, op: &Op) -> Result<(), Reject> {
        let Some(own) = self.township.filter(|_| self.role == Role::TownshipOfficer) else {
            return Ok(());
        };
        let scope = match &op.body {
            OpBody::Create { fields, .. } => fields
                .get(SCOPE_FIELD)
                .and_then(|v| v.as_str())
                .and_then(|s| Uuid::parse_str(s).ok()),
            _ => self.scopes.get(&op.entity).copied().flatten(),
        };
        if scope == Some(own) {
            Ok(())
        } else {
            Err(Reject::new(
                RejectCode::Forbidden,
                "this record belongs to another township",
            ))
        }
    }
}

impl Policy for SyncPolicy<'_> {
    fn check(&self, entity_type: &str, op: &Op) -> Result<(), Reject> {
        if !ENTITY_TYPES.contains(&entity_type) {
            return Err(Reject::new(
                RejectCode::UnknownField,
                format!("unknown entity type {entity_type:?}"),
            ));
        }
        self.check_scope(op)?;
        match &op.body {
            OpBody::Create { fields, .. } => {
                if !matches!(
                    self.role,
                    Role::Admin | Role::CountyOffice | Role::TownshipOfficer
                ) {
                    return Err(Reject::new(
                        RejectCode::Forbidden,
                        format!("a {} may not create acceptance records", self.role),
                    ));
                }
                for key in fields.keys() {
                    self.may_write(section_of(key))?;
                }
                Ok(())
            }
            OpBody::Tombstone => {
                if matches!(self.role, Role::Admin | Role::CountyOffice) {
                    Ok(())
                } else {
                    Err(Reject::new(
                        RejectCode::Forbidden,
                        format!("a {} may not delete acceptance records", self.role),
                    ))
                }
            }
            OpBody::Sign { section, .. } => self.may_write(section),
            other => match other.field() {
                Some(field) => {
                    self.may_write(section_of(field))?;
                    self.templates.check(op)
                }
                None => Ok(()),
            },
        }
    }
}

/// What the caller may see.
pub fn visibility(caller: &AuthUser) -> Visibility {
    match caller.role() {
        Role::Admin | Role::CountyOffice | Role::DepartmentInspector | Role::Expert => {
            Visibility::All
        }
        Role::TownshipOfficer => match caller.claims.town {
            Some(t) => Visibility::Township(t),
            None => Visibility::Nothing,
        },
        // Mining-right holders are bound to their mines with the workflow; until then, nothing.
        Role::Operator => Visibility::Nothing,
    }
}

fn scope_of(state: &EntityState) -> Option<Uuid> {
    state
        .value(SCOPE_FIELD)
        .and_then(|v| v.as_str())
        .and_then(|s| Uuid::parse_str(s).ok())
}

/// The wire form of `sync_protocol::SyncResponse` (same fields, same order), with the pulled
/// changes passed through as stored JSON.
#[derive(Debug, Serialize)]
pub struct SyncResponseOut {
    pub protocol_version: u32,
    pub results: Vec<OpResult>,
    pub changes: Vec<Box<serde_json::value::RawValue>>,
    pub cursor: u64,
    pub has_more: bool,
}

/// Push then pull, for an authenticated, enrolled device.
pub async fn sync(
    state: &AppState,
    caller: &AuthUser,
    request: SyncRequest,
) -> Result<SyncResponseOut> {
    let device = caller.device().ok_or_else(|| {
        AppError::Forbidden(
            "sync needs a session bound to an enrolled device (log in with device_id)".into(),
        )
    })?;
    if request.device.0 != device {
        return Err(AppError::Forbidden(
            "the request's device is not the device of this session".into(),
        ));
    }
    if request.ops.len() > sync_protocol::wire::MAX_OPS_PER_REQUEST {
        return Err(AppError::invalid_field(
            "ops",
            format!(
                "at most {} ops per request; send the rest in the next",
                sync_protocol::wire::MAX_OPS_PER_REQUEST
            ),
        ));
    }
    let results = if request.ops.is_empty() {
        Vec::new()
    } else {
        push(state, caller, device, &request.ops).await?
    };
    let limit = request
        .pull_limit
        .unwrap_or(sync_protocol::wire::DEFAULT_PULL_LIMIT)
        .clamp(1, sync_protocol::wire::MAX_PULL_LIMIT);
    let page = match state
        .store
        .sync_pull(request.cursor, limit, visibility(caller))
        .await
    {
        Ok(page) => page,
        // The push is committed: answer its results (a retry would only get `duplicate`) and
        // let the device pull again.
        Err(e) if !results.is_empty() => {
            tracing::warn!(error = ?e.to_string(), "pull failed after a committed push");
            crate::store::FeedPage {
                changes: Vec::new(),
                cursor: request.cursor,
                has_more: true,
            }
        }
        Err(e) => return Err(e.into()),
    };
    Ok(SyncResponseOut {
        protocol_version: sync_protocol::PROTOCOL_VERSION,
        results,
        changes: page.changes,
        cursor: page.cursor,
        has_more: page.has_more,
    })
}

async fn push(
    state: &AppState,
    caller: &AuthUser,
    device: Uuid,
    ops: &[Op],
) -> Result<Vec<OpResult>> {
    state
        .sync_writer
        .submit(Job::new(device, ops.to_vec(), caller.claims.clone())?)
        .await
}

/// One device's push, waiting for the writer.
#[derive(Debug)]
pub struct Job {
    pub device: Uuid,
    pub ops: Vec<Op>,
    /// Each op as JSON for the op log, encoded here on the request's thread: the writer, which
    /// every device waits for, only binds it.
    pub op_json: Vec<Arc<str>>,
    pub claims: crate::auth::Claims,
}

impl Job {
    pub fn new(device: Uuid, ops: Vec<Op>, claims: crate::auth::Claims) -> Result<Self> {
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
        })
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
    /// Start the writer task (needs a tokio runtime).
    pub fn start(store: Arc<dyn Store>, departments: Arc<Vec<String>>) -> Self {
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
                let results = write_group(store.as_ref(), &departments, &jobs).await;
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(r);
                }
            }
        });
        SyncWriter { queue }
    }

    async fn submit(&self, job: Job) -> Result<Vec<OpResult>> {
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
) -> Vec<Result<Vec<OpResult>>> {
    match write_jobs(store, departments, jobs).await {
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
                    match write_jobs(store, departments, std::slice::from_ref(job)).await {
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
) -> Result<Vec<Vec<OpResult>>, StoreError> {
    let batches: Vec<(Uuid, &[Op])> = jobs.iter().map(|j| (j.device, j.ops.as_slice())).collect();
    let received_at = now_ms();
    let process = Box::new(move |loaded: crate::store::SyncLoaded| {
        process_group(loaded, departments, jobs, received_at)
    });
    Ok(store.sync_batch(&batches, process).await?.results)
}

/// Run every job of a group in order over shared entity states (a later job sees what an
/// earlier one did), then derive the rows to store.
fn process_group(
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
            templates: crate::rounds::TemplatePolicy::from_states(entities.values()),
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

/// One field waiting for a person to choose among concurrent values.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConflictItem {
    #[schema(value_type = Uuid)]
    pub entity: EntityId,
    pub entity_type: String,
    pub field: String,
    pub section: String,
    /// The field revision a `resolve` op must be based on.
    pub rev: u64,
    /// Every concurrent value (oldest first; the last is the provisional winner).
    #[schema(value_type = Vec<Object>)]
    pub candidates: Vec<Candidate>,
    pub since_commit: u64,
}

/// Unresolved conflicts the caller can see and resolve: those in sections the sync policy lets
/// the caller write (a `resolve` op is checked by the same [`SyncPolicy::may_write`]), so the
/// list never offers a conflict whose resolution would come back `forbidden`.
pub async fn conflicts(state: &AppState, caller: &AuthUser) -> Result<Vec<ConflictItem>> {
    let rows = state.store.sync_conflicts(visibility(caller), 1000).await?;
    let policy = SyncPolicy {
        role: caller.role(),
        department: caller.claims.dept.clone(),
        township: caller.claims.town,
        departments: &state.inspecting_departments,
        scopes: HashMap::new(),
        templates: crate::rounds::TemplatePolicy::default(),
    };
    let mine = |row: &ConflictRow| policy.may_write(&row.section).is_ok();
    let rows: Vec<ConflictRow> = rows.into_iter().filter(|r| mine(r)).collect();
    let mut ids: Vec<EntityId> = rows.iter().map(|r| r.entity).collect();
    ids.sort();
    ids.dedup();
    let states: HashMap<EntityId, EntityState> = state
        .store
        .sync_entities(&ids)
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let field = states.get(&row.entity)?.fields.get(&row.field)?;
            let conflict = field.conflict.as_ref()?;
            Some(ConflictItem {
                entity: row.entity,
                entity_type: row.entity_type,
                field: row.field,
                section: row.section,
                rev: field.rev,
                candidates: conflict.candidates.clone(),
                since_commit: row.since_commit,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn claims(dept: &str) -> crate::auth::Claims {
        crate::auth::Claims {
            iss: "i".into(),
            aud: "a".into(),
            sub: Uuid::nil(),
            iat: 0,
            nbf: 0,
            exp: 0,
            typ: "access".into(),
            role: Role::DepartmentInspector,
            dept: Some(dept.into()),
            town: None,
            spec: None,
            did: None,
        }
    }

    /// A request sent twice lands as two jobs of one group: the second copy must get the
    /// first's rejection again, not `duplicate` (the phone would drop the value).
    #[test]
    fn a_job_repeated_in_one_group_gets_the_rejection_again() {
        let device = Uuid::from_u128(5);
        let entity = EntityId(Uuid::from_u128(9));
        let office = sync_protocol::DeviceId(Uuid::from_u128(1));
        let create = Op {
            id: sync_protocol::OpId(Uuid::from_u128(100)),
            device: office,
            seq: 1,
            hlc: sync_protocol::Hlc::new(1, 0),
            entity,
            body: OpBody::Create {
                entity_type: "acceptance_record".into(),
                fields: BTreeMap::new(),
            },
        };
        let state = match sync_protocol::merge(
            None,
            &create,
            &sync_protocol::MergeContext {
                policy: &sync_protocol::AllowAll,
                commit_seq: 1,
            },
        ) {
            sync_protocol::Outcome::Applied(e) => e.state,
            other => panic!("{other:?}"),
        };
        let op = |n: u128, seq: u64, field: &str| Op {
            id: sync_protocol::OpId(Uuid::from_u128(n)),
            device: sync_protocol::DeviceId(device),
            seq,
            hlc: sync_protocol::Hlc::new(10 + seq, 0),
            entity,
            body: OpBody::Set {
                field: field.into(),
                value: sync_protocol::Value::from("1"),
                base_rev: 0,
            },
        };
        let ops = vec![
            op(201, 1, "forestry/19.cover"),
            op(202, 2, "water_resources/14.length"),
        ];
        let job = || Job::new(device, ops.clone(), claims("forestry")).unwrap();
        let loaded = crate::store::SyncLoaded {
            entities: BTreeMap::from([(entity, state)]),
            next_commit_seq: 2,
            ..Default::default()
        };
        let writes = process_group(
            loaded,
            &["forestry".into(), "water_resources".into()],
            &[job(), job()],
            0,
        );
        assert!(matches!(writes.results[0][0], OpResult::Applied { .. }));
        assert!(matches!(
            writes.results[0][1],
            OpResult::Rejected {
                code: RejectCode::Forbidden,
                ..
            }
        ));
        assert!(matches!(writes.results[1][0], OpResult::Duplicate { .. }));
        assert!(
            matches!(
                writes.results[1][1],
                OpResult::Rejected {
                    code: RejectCode::Forbidden,
                    ..
                }
            ),
            "{:?}",
            writes.results[1][1]
        );
        assert_eq!(writes.ops.len(), 2, "each op stored once");
        assert_eq!(writes.series, vec![(device, 2)]);
    }

    /// The pass-through response must be byte for byte what the protocol crate would encode.
    #[test]
    fn response_out_encodes_like_the_protocol_response() {
        let fixture: sync_protocol::SyncResponse = serde_json::from_str(include_str!(
            "../../sync-protocol/fixtures/sync_response.json"
        ))
        .unwrap();
        let out = SyncResponseOut {
            protocol_version: fixture.protocol_version,
            results: fixture.results.clone(),
            changes: fixture
                .changes
                .iter()
                .map(|c| serde_json::value::to_raw_value(c).unwrap())
                .collect(),
            cursor: fixture.cursor,
            has_more: fixture.has_more,
        };
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            serde_json::to_string(&fixture).unwrap()
        );
    }
}
