//! The PostgreSQL backend: a connection pool shared by every clone, plus one connection per store
//! that `LISTEN`s for queued tasks, so a worker in any process wakes as soon as a task is queued
//! in any other.
//!
//! Claims (tasks and notifications) are single `UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP
//! LOCKED) RETURNING` statements; transitions lock the video row, and job changes the job row
//! (`SELECT … FOR UPDATE`), in a transaction; everything else is one statement, but for reads of
//! jobs with their steps, which take one snapshot (REPEATABLE READ, read only). The isolation
//! level is otherwise PostgreSQL's default, READ COMMITTED: row locks, not snapshots, make
//! read-then-write operations safe.
//!
//! Times written by this backend come from the application's clock, like SQLite's: processes on
//! several hosts need synchronised clocks (NTP) for leases and due times to mean the same thing.

mod accounts;
mod codec;
mod jobs;
mod listener;
mod notifications;
mod qc;
mod queue;
mod repository;
mod uploads;
mod videos;

use std::{borrow::Cow, str::FromStr, sync::Arc};

use sqlx::{
    Connection, PgConnection, PgPool, SqlSafeStr,
    migrate::{Migration, MigrationType, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio::{sync::Notify, task::AbortHandle};

use crate::error::OpenError;

/// Connections in the pool, per store (per process, usually). Workers hold one only for the
/// length of a statement, so a few serve many; the server's `max_connections` (100 by default)
/// bounds the sum over every process.
const POOL_SIZE: u32 = 10;
/// Connections for lease bookkeeping (short statements; a worker holds none while it works).
const LEASE_POOL_SIZE: u32 = 5;
/// How the pool's connections show in `pg_stat_activity`, unless the URL names its own.
const APPLICATION_NAME: &str = "vidsnap";

/// `migrations/postgres/`, embedded. A test checks this list against the folder, so a file added
/// there and forgotten here fails the build's tests rather than a deployment.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "uploads",
        include_str!("../../migrations/postgres/0002_uploads.sql"),
    ),
    (
        3,
        "jobs",
        include_str!("../../migrations/postgres/0003_jobs.sql"),
    ),
    (
        4,
        "watch",
        include_str!("../../migrations/postgres/0004_watch.sql"),
    ),
    (
        5,
        "sorting",
        include_str!("../../migrations/postgres/0005_sorting.sql"),
    ),
    (
        6,
        "sessions",
        include_str!("../../migrations/postgres/0006_sessions.sql"),
    ),
];

/// The PostgreSQL repository and task queue. Clones share the pool and the queue's wake-ups (one
/// listening connection), so wrap one in an `Arc` (or clone it) to serve both
/// `Arc<dyn Repository>` and `Arc<dyn JobQueue>`. Dropping the last clone stops the listener.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Connections whose commits do not wait for the WAL flush (`synchronous_commit = off`), for
    /// the queue's lease bookkeeping only: claim, heartbeat, complete, release, dead-letter. A
    /// PostgreSQL crash can undo the last fraction of a second of those, and each undone one is
    /// a redelivery, which at-least-once processing already settles: the video's own status,
    /// written durably through `pool`, is what counts. Enqueues stay durable.
    leases: PgPool,
    wake: Arc<Wake>,
}

/// What every clone shares for `wait_for_work`.
#[derive(Debug)]
struct Wake {
    /// Woken once per notification on the tasks channel (from this process or another).
    /// `notify_one` keeps a permit when nobody waits, so a task queued between a worker's empty
    /// claim and its wait is not slept through.
    work: Arc<Notify>,
    /// The listening task, stopped with the last clone.
    listener: AbortHandle,
}

impl Drop for Wake {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`, with
    /// libpq's query parameters such as `sslmode` or `application_name`), brings its schema up
    /// to date, and starts listening for queued tasks. Several processes may connect at once:
    /// migrations run under an advisory lock.
    pub async fn connect(url: &str) -> Result<Self, OpenError> {
        let shown = redact(url);
        let connect_error = |source| OpenError::Connect {
            path: shown.clone(),
            source,
        };
        let options = PgConnectOptions::from_str(url).map_err(connect_error)?;
        let options = match options.get_application_name() {
            Some(_) => options,
            None => options.application_name(APPLICATION_NAME),
        };
        // One connection first, alone: an unreachable server or a wrong password fails here with
        // its own error at once, where the pool would retry a refused connection for its whole
        // acquire timeout and then report only that it timed out.
        PgConnection::connect_with(&options)
            .await
            .map_err(connect_error)?
            .close()
            .await
            .map_err(connect_error)?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(options.clone())
            .await
            .map_err(connect_error)?;
        let leases = PgPoolOptions::new()
            .max_connections(LEASE_POOL_SIZE)
            .connect_lazy_with(options.clone().options([("synchronous_commit", "off")]));
        migrator()
            .run(&pool)
            .await
            .map_err(|source| OpenError::Migrate {
                path: shown.clone(),
                source,
            })?;
        let work = Arc::new(Notify::new());
        let listener = listener::start(&options, work.clone())
            .await
            .map_err(connect_error)?;
        Ok(Self {
            pool,
            leases,
            wake: Arc::new(Wake { work, listener }),
        })
    }

    /// Stops listening and waits for the pool's connections to be returned and closed.
    pub async fn close(&self) {
        self.wake.listener.abort();
        self.leases.close().await;
        self.pool.close().await;
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

/// `url` with any password masked (in the user part or a `password=` parameter), for messages.
pub(crate) fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut shown = match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
                    let mask = if user.len() < userinfo.len() {
                        ":***"
                    } else {
                        ""
                    };
                    format!("{scheme}://{user}{mask}@{host}{path}")
                }
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some(("password", _)) => "password=***".to_owned(),
                _ => param.to_owned(),
            })
            .collect();
        shown.push('?');
        shown.push_str(&params.join("&"));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::{MIGRATIONS, redact};

    #[test]
    fn every_migration_file_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres");
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

    #[test]
    fn messages_never_show_a_password() {
        for (url, shown) in [
            (
                "postgres://vidsnap:s3cr%40t@db.internal:5432/vidsnap",
                "postgres://vidsnap:***@db.internal:5432/vidsnap",
            ),
            (
                "postgres://vidsnap:pw@db/vidsnap?sslmode=require&password=pw2",
                "postgres://vidsnap:***@db/vidsnap?sslmode=require&password=***",
            ),
            (
                "postgres://postgres@127.0.0.1:5432/postgres",
                "postgres://postgres@127.0.0.1:5432/postgres",
            ),
            (
                "postgres:///vidsnap?host=/run/postgresql",
                "postgres:///vidsnap?host=/run/postgresql",
            ),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact(url), shown, "{url}");
        }
    }
}
