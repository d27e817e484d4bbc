//! The sync log: the op log, entity states, the change feed and the conflict queue.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
};

use async_trait::async_trait;
use serde::Serialize;
use sync_protocol::{Change, EntityId, EntityState, Op, OpId, OpResult};
use uuid::Uuid;

use super::{
    SqlStore, StoreError, StoreResult,
    sql::{Tx, from_json, to_i64, to_json, to_u64},
};

/// What one sync transaction reads before its batches are processed (see `sync-protocol`'s
/// `process_batch`). Everything is read inside the write transaction, so it cannot go stale.
#[derive(Debug, Clone, Default)]
pub struct SyncLoaded {
    /// Each pushing device's last accepted sequence number (absent: a new device, 0).
    pub series: HashMap<Uuid, u64>,
    /// States of the batches' entities that exist.
    pub entities: BTreeMap<EntityId, EntityState>,
    /// Stored results of the batches' ops that were processed before (retries).
    pub prior_results: BTreeMap<OpId, OpResult>,
    /// Per device, the ops stored under the batch's already-used sequence numbers: a retry is
    /// a duplicate only if it is exactly the stored op.
    pub stored_ops: HashMap<Uuid, BTreeMap<u64, Op>>,
    /// The commit sequence number the first new change gets.
    pub next_commit_seq: u64,
}

/// An op to append to the op log with its result.
#[derive(Debug, Clone)]
pub struct StoredOp {
    pub id: OpId,
    pub device: Uuid,
    pub seq: u64,
    pub entity: EntityId,
    /// `OpBody::kind`.
    pub kind: &'static str,
    /// The op as JSON (encoded by the request handler, off the single writer's path).
    pub op_json: Arc<str>,
    pub result: OpResult,
    /// `commit_seq` of the change it made (applied and conflict results).
    pub commit_seq: Option<u64>,
    /// The server's receive time.
    pub received_at: i64,
}

/// An entity state to write back, with the township that scopes its visibility.
#[derive(Debug, Clone)]
pub struct EntityRow {
    pub state: EntityState,
    pub scope: Option<Uuid>,
    pub last_commit: u64,
}

/// A change for the feed, with the scope of its entity.
#[derive(Debug, Clone)]
pub struct ChangeRow {
    pub change: Change,
    pub scope: Option<Uuid>,
}

/// A field in conflict, as listed in the conflict queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ConflictRow {
    #[schema(value_type = Uuid)]
    pub entity: EntityId,
    pub field: String,
    pub section: String,
    pub entity_type: String,
    pub scope: Option<Uuid>,
    /// How many concurrent values wait for a decision.
    pub candidates: u32,
    /// Commit at which the conflict last changed.
    pub since_commit: u64,
}

/// What one sync transaction writes; `results` (one list per batch, in batch order) is handed
/// back to the callers, not stored as such.
#[derive(Debug, Clone, Default)]
pub struct SyncWrites {
    /// New `last_seq` of each device that pushed.
    pub series: Vec<(Uuid, u64)>,
    pub ops: Vec<StoredOp>,
    pub entities: Vec<EntityRow>,
    pub changes: Vec<ChangeRow>,
    /// Entities whose conflict-queue rows are replaced by `conflicts`.
    pub conflicts_of: Vec<EntityId>,
    pub conflicts: Vec<ConflictRow>,
    pub results: Vec<Vec<OpResult>>,
}

/// Which entities a user may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// County-wide roles.
    All,
    /// A township officer: county-wide entities and those of the township.
    Township(Uuid),
    /// Nothing (e.g. a mining-right holder until mines are bound to them).
    Nothing,
}

/// One page of the change feed. Changes stay as the JSON text they were stored as: a pull
/// passes them through without parsing and re-encoding each one.
#[derive(Debug, Clone, Default)]
pub struct FeedPage {
    pub changes: Vec<Box<serde_json::value::RawValue>>,
    /// Where the next pull starts: everything visible up to here was returned.
    pub cursor: u64,
    pub has_more: bool,
}

/// The batch processor a sync transaction runs between its reads and its writes.
pub type SyncProcess<'a> = Box<dyn FnOnce(SyncLoaded) -> SyncWrites + Send + 'a>;

/// The sync log.
#[async_trait]
pub trait SyncStore {
    /// The pushes of one or more devices as one transaction (group commit): lock the change
    /// feed for writing (so commit sequence numbers become visible in order), read what
    /// `process` needs, run it, write its result with a fixed number of multi-row statements
    /// (rows stamped `now`), commit.
    async fn sync_batch(
        &self,
        batches: &[(Uuid, &[Op])],
        now: i64,
        process: SyncProcess<'_>,
    ) -> StoreResult<SyncWrites>;
    /// Changes after `cursor` visible to `visibility`, oldest first, at most `limit`.
    async fn sync_pull(
        &self,
        cursor: u64,
        limit: u32,
        visibility: Visibility,
    ) -> StoreResult<FeedPage>;
    /// Unresolved conflicts visible to `visibility`, oldest first.
    async fn sync_conflicts(
        &self,
        visibility: Visibility,
        limit: u32,
    ) -> StoreResult<Vec<ConflictRow>>;
    /// Current states of the given entities (those that exist).
    async fn sync_entities(&self, ids: &[EntityId]) -> StoreResult<Vec<EntityState>>;
    /// The server's own changes to existing entities (e.g. its findings about a record's
    /// photos), in one transaction under the same write lock as device pushes: read the
    /// states of `entities` (those that exist) and the next commit sequence number, run
    /// `process`, write its entities, changes and conflict rows (rows stamped `now`). No op log
    /// or series rows: the server has no device series.
    async fn sync_server_write(
        &self,
        entities: &[EntityId],
        now: i64,
        process: SyncProcess<'_>,
    ) -> StoreResult<SyncWrites>;
}

/// Rows per multi-row statement: far below both backends' parameter limits (SQLite 32,766,
/// PostgreSQL 65,535) at ten columns a row.
const CHUNK: usize = 500;

/// The commit sequence number of the feed's last change (0 when it is empty).
pub(super) const LAST_COMMIT: &str =
    "select coalesce(max(commit_seq), 0) as last from sync_changes";

#[async_trait]
impl SyncStore for SqlStore {
    async fn sync_batch(
        &self,
        batches: &[(Uuid, &[Op])],
        now: i64,
        process: SyncProcess<'_>,
    ) -> StoreResult<SyncWrites> {
        let _gate = self.write_gate.lock().await;
        let mut tx = self.begin_write().await?;
        let loaded = load(&mut tx, batches).await?;
        let mut writes = process(loaded);
        // The feed's JSON is encoded on another thread while the database takes the op log.
        let changes = std::mem::take(&mut writes.changes);
        let encoding = tokio::task::spawn_blocking(move || {
            let json = changes
                .iter()
                .map(|c| to_json(&c.change))
                .collect::<Result<Vec<String>, _>>();
            (changes, json)
        });
        write_series(&mut tx, &writes.series, now).await?;
        write_ops(&mut tx, &writes.ops, now).await?;
        write_entities(&mut tx, &writes.entities, now).await?;
        let (changes, encoded) = encoding
            .await
            .map_err(|e| StoreError::Other(format!("encoding changes: {e}")))?;
        writes.changes = changes;
        write_changes(&mut tx, &writes.changes, &encoded?, now).await?;
        write_conflicts(&mut tx, &writes.conflicts_of, &writes.conflicts, now).await?;
        tx.commit().await?;
        Ok(writes)
    }

    async fn sync_pull(
        &self,
        cursor: u64,
        limit: u32,
        visibility: Visibility,
    ) -> StoreResult<FeedPage> {
        let (see_all, township) = match visibility {
            Visibility::All => (true, None),
            Visibility::Township(t) => (false, Some(t)),
            Visibility::Nothing => (false, None),
        };
        let mut conn = self.db.acquire().await?;
        // Read the feed's end first: commits become visible in order, so every change up to
        // `last` is visible now, and a cursor never skips a change committed meanwhile.
        let row = self.db.query(LAST_COMMIT).fetch_one(&mut conn).await?;
        let last = to_u64(row.get("last")?);
        if visibility == Visibility::Nothing || last <= cursor {
            return Ok(FeedPage {
                changes: Vec::new(),
                // Nothing to see (or nothing new): the device may skip to the feed's end.
                cursor: cursor.max(last),
                has_more: false,
            });
        }
        let rows = self
            .db
            .query(
                "select commit_seq, change_json from sync_changes \
                 where commit_seq > $1 and commit_seq <= $2 \
                 and ($3 or scope is null or scope = $4) \
                 order by commit_seq limit $5",
            )
            .bind(to_i64(cursor))
            .bind(to_i64(last))
            .bind(see_all)
            .bind(township)
            .bind(i64::from(limit) + 1)
            .fetch_all(&mut conn)
            .await?;
        let has_more = rows.len() > limit as usize;
        let mut changes = Vec::with_capacity(rows.len().min(limit as usize));
        let mut last_returned = cursor;
        for row in rows.iter().take(limit as usize) {
            let json: String = row.get("change_json")?;
            last_returned = to_u64(row.get("commit_seq")?);
            changes.push(
                serde_json::value::RawValue::from_string(json).map_err(|e| {
                    StoreError::Other(format!("stored change {last_returned}: {e}"))
                })?,
            );
        }
        let cursor = if has_more { last_returned } else { last };
        Ok(FeedPage {
            changes,
            cursor,
            has_more,
        })
    }

    async fn sync_conflicts(
        &self,
        visibility: Visibility,
        limit: u32,
    ) -> StoreResult<Vec<ConflictRow>> {
        let (see_all, township) = match visibility {
            Visibility::All => (true, None),
            Visibility::Township(t) => (false, Some(t)),
            Visibility::Nothing => return Ok(Vec::new()),
        };
        let rows = self
            .db
            .query(
                "select entity_id, field, section, entity_type, scope, candidates, since_commit \
                 from sync_conflicts where ($1 or scope is null or scope = $2) \
                 order by since_commit, entity_id, field limit $3",
            )
            .bind(see_all)
            .bind(township)
            .bind(i64::from(limit))
            .fetch_all(&self.db)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ConflictRow {
                    entity: EntityId(r.get("entity_id")?),
                    field: r.get("field")?,
                    section: r.get("section")?,
                    entity_type: r.get("entity_type")?,
                    scope: r.get("scope")?,
                    candidates: u32::try_from(r.get::<i32>("candidates")?).unwrap_or(0),
                    since_commit: to_u64(r.get("since_commit")?),
                })
            })
            .collect()
    }

    async fn sync_server_write(
        &self,
        entities: &[EntityId],
        now: i64,
        process: SyncProcess<'_>,
    ) -> StoreResult<SyncWrites> {
        let _gate = self.write_gate.lock().await;
        let mut tx = self.begin_write().await?;
        let mut loaded = SyncLoaded::default();
        load_entities(&mut tx, entities, &mut loaded).await?;
        let row = tx.query(LAST_COMMIT).fetch_one(&mut tx).await?;
        loaded.next_commit_seq = to_u64(row.get("last")?) + 1;
        let writes = process(loaded);
        write_entities(&mut tx, &writes.entities, now).await?;
        let encoded = writes
            .changes
            .iter()
            .map(|c| to_json(&c.change))
            .collect::<Result<Vec<String>, _>>()?;
        write_changes(&mut tx, &writes.changes, &encoded, now).await?;
        write_conflicts(&mut tx, &writes.conflicts_of, &writes.conflicts, now).await?;
        tx.commit().await?;
        Ok(writes)
    }

    async fn sync_entities(&self, ids: &[EntityId]) -> StoreResult<Vec<EntityState>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let mut q = self
                .db
                .query("select state_json from sync_entities where id in ");
            q.push_id_list(chunk.iter().map(|id| id.0));
            for row in q.fetch_all(&self.db).await? {
                out.push(from_json(&row.get::<String>("state_json")?)?);
            }
        }
        Ok(out)
    }
}

/// Read, inside the write transaction, what processing `batches` needs.
async fn load(tx: &mut Tx, batches: &[(Uuid, &[Op])]) -> StoreResult<SyncLoaded> {
    let mut loaded = SyncLoaded::default();

    let mut devices: Vec<Uuid> = batches.iter().map(|(d, _)| *d).collect();
    devices.sort();
    devices.dedup();
    for chunk in devices.chunks(CHUNK) {
        let mut q = tx.query("select device_id, last_seq from sync_series where device_id in ");
        q.push_id_list(chunk.iter().copied());
        for row in q.fetch_all(&mut *tx).await? {
            loaded
                .series
                .insert(row.get("device_id")?, to_u64(row.get("last_seq")?));
        }
    }

    let ids: Vec<EntityId> = batches
        .iter()
        .flat_map(|(_, ops)| sync_protocol::touched_entities(ops))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    load_entities(tx, &ids, &mut loaded).await?;

    // Ops under sequence numbers their device already used: retries (rare).
    for (device, ops) in batches {
        let last_seq = loaded.series.get(device).copied().unwrap_or(0);
        let min_seq = ops.iter().map(|o| o.seq).min().unwrap_or(0);
        if ops.is_empty() || min_seq > last_seq {
            continue;
        }
        let rows = tx
            .query(
                "select op_id, op_json, result_json from sync_ops \
                 where device_id = $1 and seq >= $2 and seq <= $3",
            )
            .bind(*device)
            .bind(to_i64(min_seq))
            .bind(to_i64(last_seq))
            .fetch_all(&mut *tx)
            .await?;
        for row in rows {
            let id = OpId(row.get("op_id")?);
            let op: Op = from_json(&row.get::<String>("op_json")?)?;
            let result: OpResult = from_json(&row.get::<String>("result_json")?)?;
            loaded
                .stored_ops
                .entry(*device)
                .or_default()
                .insert(op.seq, op);
            loaded.prior_results.insert(id, result);
        }
    }

    let row = tx.query(LAST_COMMIT).fetch_one(&mut *tx).await?;
    loaded.next_commit_seq = to_u64(row.get("last")?) + 1;
    Ok(loaded)
}

/// Read the states of `ids` (those that exist) into `loaded`.
async fn load_entities(tx: &mut Tx, ids: &[EntityId], loaded: &mut SyncLoaded) -> StoreResult<()> {
    for chunk in ids.chunks(CHUNK) {
        let mut q = tx.query("select state_json from sync_entities where id in ");
        q.push_id_list(chunk.iter().map(|id| id.0));
        for row in q.fetch_all(&mut *tx).await? {
            let state: EntityState = from_json(&row.get::<String>("state_json")?)?;
            loaded.entities.insert(state.id, state);
        }
    }
    Ok(())
}

async fn write_series(tx: &mut Tx, series: &[(Uuid, u64)], now: i64) -> StoreResult<()> {
    for chunk in series.chunks(CHUNK) {
        let mut q =
            tx.query("insert into sync_series (device_id, last_seq, created_at, updated_at) ");
        q.push_values(chunk, |row, (device, last_seq)| {
            row.bind(*device)
                .bind(to_i64(*last_seq))
                .bind(now)
                .bind(now);
        });
        q.push(
            " on conflict (device_id) do update set last_seq = excluded.last_seq, \
             updated_at = excluded.updated_at",
        );
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

async fn write_ops(tx: &mut Tx, ops: &[StoredOp], now: i64) -> StoreResult<()> {
    for chunk in ops.chunks(CHUNK) {
        let encoded = chunk
            .iter()
            .map(|s| to_json(&s.result))
            .collect::<StoreResult<Vec<_>>>()?;
        let mut q = tx.query(
            "insert into sync_ops (op_id, device_id, seq, entity_id, kind, op_json, \
             result_json, commit_seq, received_at, created_at) ",
        );
        q.push_values(chunk.iter().zip(encoded), |row, (s, result_json)| {
            row.bind(s.id.0)
                .bind(s.device)
                .bind(to_i64(s.seq))
                .bind(s.entity.0)
                .bind(s.kind)
                .bind(&*s.op_json)
                .bind(result_json)
                .bind(s.commit_seq.map(to_i64))
                .bind(s.received_at)
                .bind(now);
        });
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

async fn write_entities(tx: &mut Tx, entities: &[EntityRow], now: i64) -> StoreResult<()> {
    for chunk in entities.chunks(CHUNK) {
        let encoded = chunk
            .iter()
            .map(|e| to_json(&e.state))
            .collect::<StoreResult<Vec<_>>>()?;
        let mut q = tx.query(
            "insert into sync_entities (id, entity_type, scope, state_json, last_commit, \
             created_at, updated_at) ",
        );
        q.push_values(chunk.iter().zip(encoded), |row, (e, json)| {
            row.bind(e.state.id.0)
                .bind(e.state.entity_type.as_str())
                .bind(e.scope)
                .bind(json)
                .bind(to_i64(e.last_commit))
                .bind(now)
                .bind(now);
        });
        q.push(
            " on conflict (id) do update set state_json = excluded.state_json, \
             scope = excluded.scope, last_commit = excluded.last_commit, \
             updated_at = excluded.updated_at",
        );
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

async fn write_changes(
    tx: &mut Tx,
    changes: &[ChangeRow],
    encoded: &[String],
    now: i64,
) -> StoreResult<()> {
    for (chunk, encoded) in changes.chunks(CHUNK).zip(encoded.chunks(CHUNK)) {
        let mut q = tx.query(
            "insert into sync_changes (commit_seq, entity_id, entity_type, scope, \
             change_json, created_at) ",
        );
        q.push_values(chunk.iter().zip(encoded), |row, (c, json)| {
            row.bind(to_i64(c.change.commit_seq))
                .bind(c.change.entity.0)
                .bind(c.change.entity_type.as_str())
                .bind(c.scope)
                .bind(json.as_str())
                .bind(now);
        });
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

async fn write_conflicts(
    tx: &mut Tx,
    of: &[EntityId],
    conflicts: &[ConflictRow],
    now: i64,
) -> StoreResult<()> {
    for chunk in of.chunks(CHUNK) {
        let mut q = tx.query("delete from sync_conflicts where entity_id in ");
        q.push_id_list(chunk.iter().map(|id| id.0));
        q.execute(&mut *tx).await?;
    }
    for chunk in conflicts.chunks(CHUNK) {
        let mut q = tx.query(
            "insert into sync_conflicts (entity_id, field, section, entity_type, scope, \
             candidates, since_commit, created_at) ",
        );
        q.push_values(chunk, |row, c| {
            row.bind(c.entity.0)
                .bind(c.field.as_str())
                .bind(c.section.as_str())
                .bind(c.entity_type.as_str())
                .bind(c.scope)
                .bind(i32::try_from(c.candidates).unwrap_or(i32::MAX))
                .bind(to_i64(c.since_commit))
                .bind(now);
        });
        q.execute(&mut *tx).await?;
    }
    Ok(())
}
