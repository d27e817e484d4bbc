//! Storage behind one trait.
//!
//! Vocabulary:
//! - **Store**: everything the server persists (accounts, devices, tokens, organisation data,
//!   mines, rounds, the sync log). Held as `Arc<dyn Store>`; [`Store`] gathers one trait per
//!   concern, each with its SQL in its own file: [`CatalogStore`] (`catalog.rs`: departments,
//!   specialties, townships, campaigns, templates), [`IdentityStore`] (`identity.rs`: users, login
//!   throttle, signing key, refresh tokens, devices), [`SyncStore`] (`sync.rs`), [`MineStore`]
//!   (`mines.rs`: mines, transitions, events, case records), [`RoundStore`] (`rounds.rs`) and
//!   [`UploadStore`] (`uploads.rs`: resumable photo uploads) and [`PhotoStore`] (`photos.rs`:
//!   ingested photos and the records they belong to) and [`EvidenceStore`] (`evidence.rs`: the
//!   photos and documents a mine's holder files as evidence of the rectification).
//!   Calling any of their methods on `dyn Store` needs no import.
//! - **SqlStore**: the one implementation. Its SQL is written once over the backend-dispatch
//!   layer in `sql.rs` (see there why not generic code); `sqlite.rs` (embedded default) and
//!   `postgres.rs` (scale-out) hold what differs: connecting, migrations, how a write transaction
//!   takes the write lock, SQLite's checkpointer. One conformance suite
//!   (`server/tests/store_conformance.rs`) runs against both.
//! - **StoreError**: backend-neutral; `sqlx::Error` is converted in one place ([`StoreError::from`]),
//!   unique-constraint violations become [`StoreError::Conflict`] carrying the constraint name.
//! - Timestamps are Unix milliseconds (`i64`) in both backends, so no SQL differs just for time types.
//!   The store never reads the clock: every time it writes comes from its caller (`now`, or a
//!   `created_at` of the row).
//!
//! The server keeps no state in process memory that another replica would need: login throttling,
//! refresh tokens and signing keys all live here.

mod catalog;
mod evidence;
mod identity;
mod mines;
mod photos;
pub mod postgres;
mod rounds;
mod sql;
pub mod sqlite;
mod sync;
mod uploads;

use std::sync::Arc;

use async_trait::async_trait;

pub use self::{
    catalog::CatalogStore,
    evidence::{EvidenceStore, MineEvidence},
    identity::{IdentityStore, PrincipalStatus, RefreshToken, SigningKey},
    mines::MineStore,
    photos::{Photo, PhotoStore, StoredThumb},
    rounds::{RoundEntity, RoundStore},
    sync::{
        ChangeRow, ConflictRow, EntityRow, FeedPage, StoredOp, SyncLoaded, SyncProcess, SyncStore,
        SyncWrites, Visibility,
    },
    uploads::{Upload, UploadStore},
};
use crate::config::Settings;

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

/// Open the store named by `settings.database_url`.
pub async fn connect(settings: &Settings) -> StoreResult<Arc<dyn Store>> {
    if settings.database_url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::connect(settings).await?))
    } else {
        Ok(Arc::new(postgres::connect(settings).await?))
    }
}

/// Persistence for everything the server keeps: every concern's trait, plus the database itself.
#[async_trait]
pub trait Store:
    CatalogStore
    + IdentityStore
    + SyncStore
    + MineStore
    + RoundStore
    + UploadStore
    + PhotoStore
    + EvidenceStore
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
{
    /// Apply pending migrations.
    async fn migrate(&self) -> StoreResult<()>;
    /// A cheap round trip to the database (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
}

/// The store over either backend: one copy of the SQL (in the concern modules), with the
/// backend's own behaviour behind [`Backend`].
#[derive(Debug)]
pub struct SqlStore {
    /// Readers, and writes that need no write lock.
    db: sql::Pool,
    /// Write transactions of this process queue here before they take a pooled connection: a
    /// writer waiting for the database's write lock inside a connection would hold it and starve
    /// readers (token checks, pulls) of the pool.
    write_gate: Arc<tokio::sync::Mutex<()>>,
    backend: Backend,
}

/// What differs between the backends at run time.
#[derive(Debug)]
enum Backend {
    Sqlite(sqlite::Writer),
    Postgres,
}

impl SqlStore {
    /// A write transaction holding the backend's write lock (the change feed's order): SQLite's
    /// `BEGIN IMMEDIATE` on its writer connection, PostgreSQL's advisory transaction lock.
    /// Callers take [`SqlStore::write_gate`] first.
    async fn begin_write(&self) -> StoreResult<sql::Tx> {
        match (&self.backend, &self.db) {
            (Backend::Sqlite(w), _) => w.begin_write().await,
            (Backend::Postgres, sql::Pool::Postgres(p)) => postgres::begin_write(p).await,
            (Backend::Postgres, sql::Pool::Sqlite(_)) => Err(StoreError::Other(
                "a PostgreSQL store over a SQLite pool".into(),
            )),
        }
    }

    /// A transaction for the login throttle's counters: SQLite writes on its writer like every
    /// write; PostgreSQL's row locks suffice (no need to wait for a group commit holding the
    /// write lock).
    async fn begin_login(&self) -> StoreResult<sql::Tx> {
        match &self.backend {
            Backend::Sqlite(w) => w.begin_write().await,
            Backend::Postgres => self.db.begin().await,
        }
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn migrate(&self) -> StoreResult<()> {
        match &self.db {
            sql::Pool::Sqlite(p) => sqlite::MIGRATOR.run(p).await?,
            sql::Pool::Postgres(p) => postgres::MIGRATOR.run(p).await?,
        }
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        self.db.query("select 1").execute(&self.db).await?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}
