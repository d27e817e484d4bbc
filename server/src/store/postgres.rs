//! The PostgreSQL store, for scale-out: several stateless server replicas over one database.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::{
    Row,
    postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow},
};
use uuid::Uuid;

use super::common::{
    from_json, impl_common_store, impl_row_decoders, push_id_list, to_i64, to_json, to_u64,
};
use super::*;
use sync_protocol::{EntityId, EntityState, Op, OpId, OpResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// PostgreSQL-backed [`Store`].
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    /// Sync writers of this process queue here before they take a pooled connection, so at
    /// most one connection per replica waits on the feed lock (waiting writers would otherwise
    /// hold every connection and starve token checks and pulls).
    write_gate: tokio::sync::Mutex<()>,
}

impl PgStore {
    /// Connect to `settings.database_url`. The pool connects lazily, so a server can start (and
    /// answer `/healthz`, with `/readyz` reporting 503) while the database is still down.
    pub async fn connect(settings: &Settings) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(&settings.database_url)
            .map_err(|e| StoreError::Other(format!("invalid postgres url: {e}")))?
            .application_name("yanshou");
        let pool = PgPoolOptions::new()
            .max_connections(settings.database_max_connections)
            .acquire_timeout(settings.acquire_timeout())
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            write_gate: tokio::sync::Mutex::new(()),
        })
    }

    /// A write transaction holding the change-feed lock: sync transactions take commit sequence
    /// numbers one at a time, so they become visible in order (a reader never sees 11 before 10).
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("select pg_advisory_xact_lock(7365001)")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// A transaction for the login throttle's counters: their row locks suffice (no need to
    /// wait for a sync group commit holding the write lock).
    async fn begin_login(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    /// The pool, for backend-specific code in this crate (sync, benchmarks).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl_row_decoders!(PgRow);

impl_common_store!(PgStore, sqlx::Postgres, "postgres");
