//! The embedded SQLite store: one file, WAL journal, foreign keys on.
//!
//! WAL lets readers run beside the single writer; `synchronous = normal` is durable across process
//! crashes in WAL mode (only an OS crash can lose the last transactions), the usual trade for a
//! server on one machine.

use std::{str::FromStr, time::Duration};

use async_trait::async_trait;
use sqlx::{
    Row,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
        SqliteSynchronous,
    },
};
use uuid::Uuid;

use super::common::{
    from_json, impl_common_store, impl_row_decoders, push_id_list, to_i64, to_json, to_u64,
};
use super::*;
use sync_protocol::{EntityId, EntityState, Op, OpId, OpResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite-backed [`Store`].
#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Sync writers queue here, in this process, before they take a pooled connection: a
    /// writer waiting for SQLite's lock inside a connection would starve readers of the pool.
    write_gate: tokio::sync::Mutex<()>,
}

impl SqliteStore {
    /// Open (creating if missing) the database file named by `settings.database_url`.
    pub async fn connect(settings: &Settings) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(&settings.database_url)
            .map_err(|e| StoreError::Other(format!("invalid sqlite url: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let path = options.get_filename();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.database_max_connections)
            .acquire_timeout(settings.acquire_timeout())
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            write_gate: tokio::sync::Mutex::new(()),
        })
    }

    /// A write transaction that holds SQLite's write lock from the start (`BEGIN IMMEDIATE`), so
    /// a read-then-write transaction never fails to upgrade its lock, and writers queue in order.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// The pool, for backend-specific code in this crate (sync, benchmarks).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl_row_decoders!(SqliteRow);

impl_common_store!(SqliteStore, sqlx::Sqlite, "sqlite");
