//! Storage behind one trait.
//!
//! Vocabulary:
//! - **Store**: everything the server persists (accounts, devices, tokens, organisation data). Held
//!   as `Arc<dyn Store>`; two implementations, [`sqlite::SqliteStore`] (embedded default) and
//!   [`postgres::PgStore`] (scale-out). One conformance suite (`server/tests/store_conformance.rs`)
//!   runs against both.
//! - **StoreError**: backend-neutral; `sqlx::Error` is converted in one place ([`StoreError::from`]),
//!   unique-constraint violations become [`StoreError::Conflict`] carrying the constraint name.
//! - Timestamps are Unix milliseconds (`i64`) in both backends, so no SQL differs just for time types.
//!   The store never reads the clock: every time it writes comes from its caller (`now`, or a
//!   `created_at` of the row).
//!
//! The server keeps no state in process memory that another replica would need: login throttling,
//! refresh tokens and signing keys all live here.

mod common;
pub mod postgres;
// Not used yet: the SQL moves onto it concern by concern.
#[allow(dead_code)]
mod sql;
pub mod sqlite;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use async_trait::async_trait;
use serde::Serialize;
use sync_protocol::{Change, EntityId, EntityState, Op, OpId, OpResult};
use uuid::Uuid;

use crate::{
    config::Settings,
    model::{
        AcceptanceRound, CaseRecord, Department, Device, Mine, MineEvent, NewUser, Role, Specialty,
        Township, User,
    },
};

/// Backend-neutral storage error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness or foreign-key rule was broken; `constraint` names it so the HTTP layer can
    /// map it to a precise client error.
    #[error("conflict on {constraint}")]
    Conflict { constraint: String },
    /// The database cannot be reached (connection refused, pool timeout, closed pool).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) => {
                if db.is_unique_violation() || db.is_foreign_key_violation() {
                    // SQLite reports no constraint name; its message names the columns instead.
                    let constraint = db
                        .constraint()
                        .map(str::to_owned)
                        .unwrap_or_else(|| db.message().to_owned());
                    StoreError::Conflict { constraint }
                } else {
                    StoreError::Other(db.to_string())
                }
            }
            sqlx::Error::Io(e) => StoreError::Unavailable(e.to_string()),
            sqlx::Error::PoolTimedOut => {
                StoreError::Unavailable("connection pool timed out".into())
            }
            sqlx::Error::PoolClosed => StoreError::Unavailable("connection pool closed".into()),
            sqlx::Error::Tls(e) => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Protocol(e) => StoreError::Unavailable(e),
            other => StoreError::Other(other.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Other(format!("migration failed: {e}"))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A stored refresh token (only its SHA-256 hash is kept).
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshToken {
    pub id: Uuid,
    /// All tokens rotated from one login share a family; reuse of a rotated token revokes it.
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub device_id: Option<Uuid>,
    pub token_hash: Vec<u8>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// The token signing key (ES256), generated on first start and shared by all replicas.
#[derive(Debug, Clone, PartialEq)]
pub struct SigningKey {
    pub kid: String,
    pub private_pkcs8_pem: String,
    pub created_at: i64,
}

/// Whether a token's subject may still act: checked on every authenticated request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrincipalStatus {
    pub user_disabled: bool,
    /// `None` when the token names no device or the device does not exist.
    pub device_revoked: Option<bool>,
}

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

/// Builds the record entity of a new round once its number and commit sequence are known.
pub type RoundEntity<'a> =
    Box<dyn FnOnce(&AcceptanceRound, u64) -> StoreResult<(EntityState, Change)> + Send + 'a>;

/// Persistence for everything the server keeps.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Apply pending migrations.
    async fn migrate(&self) -> StoreResult<()>;
    /// A cheap round trip to the database (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    // Organisation
    async fn list_departments(&self) -> StoreResult<Vec<Department>>;
    async fn list_specialties(&self) -> StoreResult<Vec<Specialty>>;
    async fn list_townships(&self) -> StoreResult<Vec<Township>>;
    async fn create_township(&self, township: &Township) -> StoreResult<()>;

    // Users
    async fn create_user(&self, user: &NewUser) -> StoreResult<User>;
    async fn get_user(&self, id: Uuid) -> StoreResult<User>;
    async fn get_user_by_username(&self, username: &str) -> StoreResult<User>;
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    async fn set_user_disabled(&self, id: Uuid, disabled: bool) -> StoreResult<()>;
    async fn set_user_password(&self, id: Uuid, password_hash: &str) -> StoreResult<()>;
    /// Is the user disabled, and (if given) is the device revoked or not this user's?
    async fn principal_status(
        &self,
        user_id: Uuid,
        device_id: Option<Uuid>,
    ) -> StoreResult<PrincipalStatus>;

    // Login throttling (fixed windows keyed by `account:NAME`, `addr:IP`, …)
    /// Forget every window of `key` (a correct password clears its account-and-address pair).
    async fn clear_login_failures(&self, key: &str) -> StoreResult<()>;
    /// Reserve one login attempt against every counter in `counters` (key, window start, limit)
    /// in one transaction, before the password is checked: each counter is incremented only if
    /// it is below its limit, else nothing is incremented and the index of the first full
    /// counter is returned. Parallel attempts therefore cannot all pass the check. A reserved
    /// attempt counts as a failure until [`Store::release_login_attempt`] takes it back.
    /// A new counter row is stamped `now`.
    async fn reserve_login_attempt(
        &self,
        counters: &[(&str, i64, u32)],
        now: i64,
    ) -> StoreResult<Option<usize>>;
    /// Take back a reserved attempt (the password was right): decrement each (key, window start).
    async fn release_login_attempt(&self, counters: &[(&str, i64)]) -> StoreResult<()>;

    // Signing keys
    /// Insert `candidate` unless a key already exists; return the key in force (the oldest).
    /// Safe when several replicas start at once: all end up with the same key.
    async fn get_or_create_signing_key(&self, candidate: &SigningKey) -> StoreResult<SigningKey>;

    // Refresh tokens
    async fn insert_refresh_token(&self, token: &RefreshToken) -> StoreResult<()>;
    async fn get_refresh_token_by_hash(&self, hash: &[u8]) -> StoreResult<RefreshToken>;
    /// Mark a token used, atomically: `false` if it was already used (a replay or a race).
    async fn mark_refresh_token_used(&self, id: Uuid, now: i64) -> StoreResult<bool>;
    async fn revoke_refresh_family(&self, family_id: Uuid, now: i64) -> StoreResult<()>;

    // Devices
    async fn create_device(&self, device: &Device) -> StoreResult<()>;
    async fn get_device(&self, id: Uuid) -> StoreResult<Device>;
    async fn list_devices(&self, user_id: Option<Uuid>) -> StoreResult<Vec<Device>>;
    /// Revoke a device and every refresh-token family bound to it.
    async fn revoke_device(&self, id: Uuid, now: i64) -> StoreResult<()>;

    // Sync
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

    // Campaigns and mines
    /// Store a campaign file unless one with this id exists (stamped `now`); returns the stored
    /// (title, source).
    async fn ensure_campaign(
        &self,
        id: &str,
        title: &str,
        source: &str,
        now: i64,
    ) -> StoreResult<(String, String)>;
    async fn get_campaign(&self, id: &str) -> StoreResult<(String, String)>;
    /// Insert mines atomically (all or none); a duplicate licence number is a `Conflict`.
    async fn create_mines(&self, mines: &[Mine]) -> StoreResult<()>;
    async fn get_mine(&self, id: Uuid) -> StoreResult<Mine>;
    /// All mines, or those of one township.
    async fn list_mines(&self, township: Option<Uuid>) -> StoreResult<Vec<Mine>>;
    /// Mines bound to a mining-right holder's account.
    async fn list_mines_of_holder(&self, user: Uuid) -> StoreResult<Vec<Mine>>;
    /// Bind a mine to its holder's account (`None` unbinds) at `now`; `NotFound` if the mine
    /// is unknown.
    async fn set_mine_holder(&self, mine: Uuid, user: Option<Uuid>, now: i64) -> StoreResult<()>;
    /// Replace a mine's facts if it is still at `expected_version`, and record the event and
    /// the case record the transition produces (the announcement's text), in one transaction:
    /// either all of it is stored or nothing. A stale version is a `Conflict` (someone else
    /// moved the mine meanwhile).
    async fn transition_mine(
        &self,
        id: Uuid,
        expected_version: i64,
        facts: &crate::model::MineFacts,
        event: &MineEvent,
        record: Option<&CaseRecord>,
    ) -> StoreResult<()>;
    async fn list_mine_events(&self, mine_id: Uuid) -> StoreResult<Vec<MineEvent>>;
    async fn add_case_record(&self, record: &CaseRecord) -> StoreResult<()>;
    async fn list_case_records(&self, mine_id: Uuid) -> StoreResult<Vec<CaseRecord>>;

    // Acceptance rounds
    /// Open the next round of a mine in one write transaction: number it (previous = the
    /// latest round), store the template source if new, and create its record entity in the
    /// sync feed (`make` receives the round and the commit sequence number to use). The rows
    /// it writes are stamped with the round's `created_at`.
    async fn create_round(
        &self,
        round: AcceptanceRound,
        template_source: &str,
        scope: Option<Uuid>,
        make: RoundEntity<'_>,
    ) -> StoreResult<AcceptanceRound>;
    async fn list_rounds(&self, mine_id: Uuid) -> StoreResult<Vec<AcceptanceRound>>;
    async fn get_round(&self, id: Uuid) -> StoreResult<AcceptanceRound>;
    async fn get_template_source(&self, template_ref: &str) -> StoreResult<String>;
    /// Store a template version unless one with this `id@version` exists (versions are
    /// immutable: a changed template is a new version), stamped `now`. Returns the stored
    /// source.
    async fn ensure_template(
        &self,
        template_ref: &str,
        source: &str,
        now: i64,
    ) -> StoreResult<String>;
    /// Every stored template version as (ref, source).
    async fn list_templates(&self) -> StoreResult<Vec<(String, String)>>;
}

/// Open the store named by `settings.database_url`.
pub async fn connect(settings: &Settings) -> StoreResult<Arc<dyn Store>> {
    if settings.database_url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(settings).await?))
    } else {
        Ok(Arc::new(postgres::PgStore::connect(settings).await?))
    }
}
