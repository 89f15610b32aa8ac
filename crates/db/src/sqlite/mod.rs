//! The SQLite backend: one file, WAL, a small pool; every read-then-write runs in a
//! `BEGIN IMMEDIATE` transaction so it takes the write lock before it reads.

mod accounts;
mod codec;
mod jobs;
mod notifications;
mod qc;
mod queue;
mod repository;
mod uploads;
mod videos;

use std::{borrow::Cow, path::Path, sync::Arc, time::Duration};

use sqlx::{
    SqlSafeStr, Sqlite, SqlitePool, Transaction,
    migrate::{Migration, MigrationType, Migrator},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use tokio::sync::Notify;
use vidsnap_domain::PortResult;

use crate::error::{OpenError, port_error};

/// Connections in the pool. SQLite writes one at a time anyway; readers run beside the writer.
const POOL_SIZE: u32 = 8;
/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// `migrations/sqlite/`, embedded. A test checks this list against the folder, so a file added
/// there and forgotten here fails the build's tests rather than a deployment.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "uploads",
        include_str!("../../migrations/sqlite/0002_uploads.sql"),
    ),
    (
        3,
        "jobs",
        include_str!("../../migrations/sqlite/0003_jobs.sql"),
    ),
    (
        4,
        "watch",
        include_str!("../../migrations/sqlite/0004_watch.sql"),
    ),
    (
        5,
        "sorting",
        include_str!("../../migrations/sqlite/0005_sorting.sql"),
    ),
    (
        6,
        "sessions",
        include_str!("../../migrations/sqlite/0006_sessions.sql"),
    ),
];

/// The SQLite repository and task queue. Clones share the pool and the queue's wake-up signal,
/// so wrap one in an `Arc` (or clone it) to serve both `Arc<dyn Repository>` and
/// `Arc<dyn JobQueue>`.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Wakes [`JobQueue::wait_for_work`](vidsnap_domain::JobQueue::wait_for_work) on an enqueue
    /// or release through any clone. `notify_one` keeps a permit when nobody waits, so a task
    /// queued between a worker's empty claim and its wait is not slept through.
    work: Arc<Notify>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self, OpenError> {
        let shown = path.display().to_string();
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode, NORMAL loses no committed data on an application crash.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(options)
            .await
            .map_err(|source| OpenError::Connect {
                path: shown.clone(),
                source,
            })?;
        migrator()
            .run(&pool)
            .await
            .map_err(|source| OpenError::Migrate {
                path: shown,
                source,
            })?;
        Ok(Self {
            pool,
            work: Arc::new(Notify::new()),
        })
    }

    /// Waits for open connections to finish and closes them (checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A transaction holding the write lock from its first statement: reads inside it see the
    /// state it will write over, and it never fails half-way with a stale snapshot.
    async fn write(&self) -> PortResult<Transaction<'static, Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(port_error)
    }
}

fn migrator() -> Migrator {
    migrator_until(i64::MAX)
}

/// The migrations up to `last` only: an older deployment's schema, for upgrade tests.
pub(crate) fn migrator_until(last: i64) -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .filter(|&&(version, ..)| version <= last)
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn every_migration_file_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("migrations folder")
            .map(|entry| {
                entry
                    .expect("folder entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        files.sort();
        let embedded: Vec<String> = MIGRATIONS
            .iter()
            .map(|(version, description, _)| format!("{version:04}_{description}.sql"))
            .collect();
        assert_eq!(files, embedded);
    }
}
