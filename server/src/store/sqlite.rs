//! The embedded SQLite store: one file, WAL journal, foreign keys on.
//!
//! WAL lets readers run beside the single writer. `synchronous = full`: every commit is synced
//! to disk before it is acknowledged, so an op a phone was told is applied survives a power cut
//! too (`normal` survives only a process crash, and the phone forgets an op once it is
//! acknowledged and pulled). The group commit makes that one fsync per group, not per device.
//!
//! Checkpoints (copying the WAL back into the database file, with its fsyncs) run on a
//! [background task](Checkpointer), not in the transaction that happens to cross SQLite's
//! auto-checkpoint threshold: under sync load that inline checkpoint took 40% of the single
//! writer's time, and every device waiting on the group commit waited for it too.

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    Row,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
    },
};

use super::{Backend, SqlStore, StoreError, StoreResult, sql};
use crate::config::Settings;

pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Open (creating if missing) the database file named by `settings.database_url`.
pub async fn connect(settings: &Settings) -> StoreResult<SqlStore> {
    let options = SqliteConnectOptions::from_str(&settings.database_url)
        .map_err(|e| StoreError::Other(format!("invalid sqlite url: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
        // Checkpoints are the background task's job (see the module docs).
        .pragma("wal_autocheckpoint", "0")
        // After a checkpoint lets the WAL restart, its file shrinks back to this size.
        .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string());
    let path = options.get_filename();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(settings.database_max_connections)
        .acquire_timeout(settings.acquire_timeout())
        .connect_with(options.clone())
        .await?;
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(settings.acquire_timeout())
        .connect_with(options.pragma("cache_size", format!("-{WRITER_CACHE_KIB}")))
        .await?;
    let write_gate = Arc::new(tokio::sync::Mutex::new(()));
    Ok(SqlStore {
        backend: Backend::Sqlite(Writer {
            _checkpointer: Checkpointer::start(pool.clone(), write_gate.clone()),
            writer,
        }),
        db: sql::Pool::Sqlite(pool),
        write_gate,
    })
}

/// SQLite's side of the write path.
#[derive(Debug)]
pub(super) struct Writer {
    /// The one connection of the sync writer (and the other `BEGIN IMMEDIATE` transactions),
    /// with a page cache large enough for the indexes a group commit touches: with SQLite's
    /// default 2 MiB it re-read them from the WAL for every group, a fifth of its write time.
    /// Readers keep the default cache, so memory grows by this one cache only.
    writer: SqlitePool,
    /// Held for its `Drop`: stops the task with the store.
    _checkpointer: Checkpointer,
}

impl Writer {
    /// A write transaction on the writer connection that holds SQLite's write lock from the
    /// start (`BEGIN IMMEDIATE`), so a read-then-write transaction never fails to upgrade its
    /// lock, and writers queue in order.
    pub(super) async fn begin_write(&self) -> StoreResult<sql::Tx> {
        Ok(sql::Tx::Sqlite(
            self.writer.begin_with("BEGIN IMMEDIATE").await?,
        ))
    }
}

/// Page cache of the writer connection, KiB.
const WRITER_CACHE_KIB: u32 = 32 * 1024;

/// How long a connection waits for SQLite's locks.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes the WAL file is truncated to after a restart.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// How often the checkpointer looks at the WAL.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

/// WAL pages (4 KiB) after which the checkpointer makes the WAL start again from its beginning.
///
/// A passive checkpoint copies the WAL into the database but cannot rewind it: the WAL only
/// restarts when a writer begins while no reader is using it, and with devices pulling all the
/// time that moment rarely comes (the WAL grew past 350 MiB in a one-minute load, and every page
/// lookup walks its index). Past this size the checkpointer takes the writers' gate and runs a
/// `RESTART` checkpoint, which waits (briefly: pulls are short) until the readers have moved on.
const WAL_RESTART_PAGES: i64 = 16_384;

/// How long a `RESTART` checkpoint waits for readers before it gives up until the next round.
const RESTART_BUSY_TIMEOUT_MS: u64 = 250;

/// The task that checkpoints the WAL in the background; stopped when the store is dropped.
#[derive(Debug)]
struct Checkpointer {
    task: tokio::task::JoinHandle<()>,
}

impl Checkpointer {
    fn start(pool: SqlitePool, write_gate: Arc<tokio::sync::Mutex<()>>) -> Self {
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut restart_pages = WAL_RESTART_PAGES;
            while !pool.is_closed() {
                tick.tick().await;
                match checkpoint(&pool, &write_gate, restart_pages).await {
                    // After a restart the WAL rewinds only when the next transaction writes;
                    // until then its size is unchanged and must not trigger another restart.
                    Ok((log, _)) if log >= restart_pages => restart_pages = log + 1,
                    Ok(_) => restart_pages = WAL_RESTART_PAGES,
                    Err(e) if !pool.is_closed() => {
                        tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
                    }
                    Err(_) => {}
                }
            }
        });
        Self { task }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One checkpoint round: `PASSIVE`, then `RESTART` if the WAL holds `restart_pages` or more.
/// Returns (WAL pages, pages checkpointed) as the last checkpoint reported them.
async fn checkpoint(
    pool: &SqlitePool,
    write_gate: &tokio::sync::Mutex<()>,
    restart_pages: i64,
) -> Result<(i64, i64), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let row = sqlx::query("pragma wal_checkpoint(passive)")
        .fetch_one(&mut *conn)
        .await?;
    let (log, done): (i64, i64) = (row.try_get(1)?, row.try_get(2)?);
    if log < restart_pages {
        return Ok((log, done));
    }
    // Writers of this process queue on the gate instead of sleeping in SQLite's busy handler.
    let _gate = write_gate.lock().await;
    sqlx::query(&format!("pragma busy_timeout = {RESTART_BUSY_TIMEOUT_MS}"))
        .execute(&mut *conn)
        .await?;
    let restarted = sqlx::query("pragma wal_checkpoint(restart)")
        .fetch_one(&mut *conn)
        .await;
    sqlx::query(&format!(
        "pragma busy_timeout = {}",
        BUSY_TIMEOUT.as_millis()
    ))
    .execute(&mut *conn)
    .await?;
    let row = restarted?;
    let busy: i64 = row.try_get(0)?;
    if busy != 0 {
        tracing::debug!(wal_pages = log, "WAL restart postponed: readers still busy");
    }
    Ok((row.try_get(1)?, row.try_get(2)?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use uuid::Uuid;

    use super::*;

    /// The reader pool, the writer pool and the write gate of a SQLite store.
    fn parts(store: &SqlStore) -> (&SqlitePool, &SqlitePool, &tokio::sync::Mutex<()>) {
        match (&store.db, &store.backend) {
            (sql::Pool::Sqlite(pool), Backend::Sqlite(w)) => (pool, &w.writer, &store.write_gate),
            _ => panic!("not a SQLite store"),
        }
    }

    /// An acknowledged op must be on disk, power cut included (the phone forgets it once it is
    /// acknowledged and pulled): every connection, the writer first, syncs each commit.
    #[tokio::test]
    async fn commits_are_synced_to_disk() {
        let dir = std::env::temp_dir().join(format!("yanshou-sync-{}", Uuid::new_v4().simple()));
        let settings = Settings {
            database_url: format!("sqlite://{}/t.db", dir.display()),
            ..Settings::default()
        };
        let store = connect(&settings).await.unwrap();
        let (pool, writer, _) = parts(&store);
        for pool in [writer, pool] {
            let mut conn = pool.acquire().await.unwrap();
            let level: i64 = sqlx::query_scalar("pragma synchronous")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(level, 2, "synchronous = full");
        }
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Committing never checkpoints (that would stall the group commit); the background task
    /// copies the WAL into the database file soon after.
    #[tokio::test]
    async fn the_wal_is_checkpointed_in_the_background_not_by_commits() {
        let dir = std::env::temp_dir().join(format!("yanshou-ckpt-{}", Uuid::new_v4().simple()));
        let settings = Settings {
            database_url: format!("sqlite://{}/t.db", dir.display()),
            ..Settings::default()
        };
        let store = connect(&settings).await.unwrap();
        let (pool, _, write_gate) = parts(&store);
        let mut conn = pool.acquire().await.unwrap();
        let auto: i64 = sqlx::query_scalar("pragma wal_autocheckpoint")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(auto, 0, "connections must not checkpoint when they commit");
        sqlx::query("create table filler (x blob not null)")
            .execute(&mut *conn)
            .await
            .unwrap();
        // 8 MiB in one transaction: far past SQLite's default 1,000-page threshold.
        sqlx::query(
            "with recursive n(i) as (select 1 union all select i + 1 from n where i < 2048) \
             insert into filler select randomblob(4096) from n",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        drop(conn);
        let db_file = dir.join("t.db");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let len = std::fs::metadata(&db_file).unwrap().len();
            if len >= 8 * 1024 * 1024 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the database file is still {len} bytes: no background checkpoint"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The background task may hold the checkpoint lock at this moment (then -1, -1).
        let checkpoint_now = |restart_pages| async move {
            loop {
                let (log, done) = checkpoint(pool, write_gate, restart_pages).await.unwrap();
                if log >= 0 {
                    return (log, done);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let (log, done) = checkpoint_now(i64::MAX).await;
        assert_eq!(log, done, "every WAL page is in the database file");
        assert!(
            log >= 2048,
            "passive checkpoints do not rewind the WAL: {log} pages"
        );
        // Past the restart threshold the WAL starts again from its beginning.
        checkpoint_now(1).await;
        sqlx::query("insert into filler values (x'00')")
            .execute(pool)
            .await
            .unwrap();
        let (log, _) = checkpoint_now(i64::MAX).await;
        assert!(log < 10, "the WAL restarted: {log} pages");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
