//! The PostgreSQL store, for scale-out: several stateless server replicas over one database.

use std::{str::FromStr, sync::Arc};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{Backend, SqlStore, StoreError, StoreResult, sql};
use crate::config::Settings;

pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connect to `settings.database_url`. The pool connects lazily, so a server can start (and
/// answer `/healthz`, with `/readyz` reporting 503) while the database is still down.
pub async fn connect(settings: &Settings) -> StoreResult<SqlStore> {
    let options = PgConnectOptions::from_str(&settings.database_url)
        .map_err(|e| StoreError::Other(format!("invalid postgres url: {e}")))?
        .application_name("yanshou");
    let pool = PgPoolOptions::new()
        .max_connections(settings.database_max_connections)
        .acquire_timeout(settings.acquire_timeout())
        .connect_lazy_with(options);
    Ok(SqlStore {
        db: sql::Pool::Postgres(pool),
        // At most one connection per replica waits on the feed lock.
        write_gate: Arc::new(tokio::sync::Mutex::new(())),
        backend: Backend::Postgres,
    })
}

/// A write transaction holding the change-feed lock: sync transactions take commit sequence
/// numbers one at a time, so they become visible in order (a reader never sees 11 before 10).
pub(super) async fn begin_write(pool: &PgPool) -> StoreResult<sql::Tx> {
    let mut tx = pool.begin().await?;
    sqlx::query("select pg_advisory_xact_lock(7365001)")
        .execute(&mut *tx)
        .await?;
    Ok(sql::Tx::Postgres(tx))
}
