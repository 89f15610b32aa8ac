//! Test support: which PostgreSQL server the tests use, a scratch database per test (or per bench
//! run) so tests never see each other's rows and run in parallel, and databases of an older
//! schema for upgrade tests ([`sqlite_schema_until`], [`postgres_schema_until`]).
//!
//! The server is `VIDSNAP_TEST_POSTGRES_URL` if set, else that key in `.services/env` (written by
//! `scripts/test-services.sh`; `$VIDSNAP_SERVICES_DIR/env` when that is set), else
//! [`DEFAULT_POSTGRES_URL`]. The URL must name a role that may create databases. A server that
//! does not answer fails the test, saying how to start one: the tests never skip.

// Test support fails by panicking, like the tests it serves.
#![allow(clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use sqlx::{
    AssertSqlSafe, Connection, Executor, PgConnection, PgPool, SqlitePool,
    sqlite::SqliteConnectOptions,
};

use crate::postgres::redact;

/// The variable (and `.services/env` key) naming the test server.
pub const POSTGRES_URL_VAR: &str = "VIDSNAP_TEST_POSTGRES_URL";
/// The machine's own PostgreSQL with trust authentication, when nothing else is said.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// How long connecting to the server may take before the test fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The test server's URL: the environment, then `.services/env`, then the default.
pub fn postgres_server_url() -> String {
    if let Ok(url) = std::env::var(POSTGRES_URL_VAR)
        && !url.is_empty()
    {
        return url;
    }
    let env_file = services_dir().join("env");
    if let Ok(text) = std::fs::read_to_string(&env_file) {
        let key = format!("{POSTGRES_URL_VAR}=");
        if let Some(url) = text.lines().find_map(|line| line.strip_prefix(&key)) {
            return url.trim().to_owned();
        }
    }
    DEFAULT_POSTGRES_URL.to_owned()
}

fn services_dir() -> PathBuf {
    std::env::var_os("VIDSNAP_SERVICES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.services"))
}

/// A database made for one test on the test server, dropped (best effort: a killed process
/// leaves it behind) when the value is. Drop the stores using it first: the drop ends any
/// connection still open to it.
#[derive(Debug)]
pub struct ScratchDatabase {
    name: String,
    url: String,
    server: String,
}

impl ScratchDatabase {
    /// Creates `<prefix>_<uuid>` on the test server. Panics, saying how to start a server, when
    /// none answers.
    pub async fn create(prefix: &str) -> Self {
        assert!(
            prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "a database name prefix is lower-case letters, digits and underscores: {prefix}"
        );
        let server = postgres_server_url();
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut conn = admin_connection(&server).await;
        conn.execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot create the database {name} on {}: {e}",
                    redact(&server)
                )
            });
        let _ = conn.close().await;
        Self {
            url: with_database(&server, &name),
            name,
            server,
        }
    }

    /// The database's URL, for [`PgStore::connect`](crate::PgStore::connect).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on: use a runtime of our own
        // on a thread of our own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut conn =
                    tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(&server))
                        .await
                        .map_err(|_| "timed out connecting".to_owned())?
                        .map_err(|e| e.to_string())?;
                conn.execute(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .await
                .map_err(|e| e.to_string())?;
                let _ = conn.close().await;
                Ok::<(), String>(())
            })
        })
        .join();
        if let Ok(Err(error)) | Err(error) = dropped.map_err(|_| "panicked".to_owned()) {
            eprintln!(
                "warning: cannot drop the test database {}: {error}",
                self.name
            );
        }
    }
}

/// Creates (if missing) the SQLite database at `path` with the migrations up to `last` only, as
/// a deployment of that version left it, and returns a pool on it to fill with that version's
/// rows. Close it before opening a store, which applies the rest.
pub async fn sqlite_schema_until(path: &Path, last: i64) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = SqlitePool::connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    crate::sqlite::migrator_until(last)
        .run(&pool)
        .await
        .unwrap_or_else(|e| panic!("cannot migrate {} to {last}: {e}", path.display()));
    pool
}

/// As [`sqlite_schema_until`], on the PostgreSQL database at `url` (a [`ScratchDatabase`]).
pub async fn postgres_schema_until(url: &str, last: i64) -> PgPool {
    let pool = PgPool::connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", redact(url)));
    crate::postgres::migrator_until(last)
        .run(&pool)
        .await
        .unwrap_or_else(|e| panic!("cannot migrate {} to {last}: {e}", redact(url)));
    pool
}

/// A connection to the server's administrative database, or a panic saying how to get a server.
async fn admin_connection(server: &str) -> PgConnection {
    let outcome = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(server)).await;
    let error = match outcome {
        Ok(Ok(conn)) => return conn,
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!("no answer within {CONNECT_TIMEOUT:?}"),
    };
    panic!(
        "cannot reach the test PostgreSQL server at {} ({error}).\n\
         Start one with scripts/test-services.sh (it reuses a server on 127.0.0.1:5432 or starts \
         its own, and writes {POSTGRES_URL_VAR} to .services/env), or set {POSTGRES_URL_VAR}. \
         The PostgreSQL tests never skip.",
        redact(server)
    )
}

/// `server` with its database replaced by `name`, keeping credentials and parameters.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut url = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        // A `dbname` parameter would override the path.
        let kept: Vec<&str> = query
            .split('&')
            .filter(|param| !param.starts_with("dbname="))
            .collect();
        if !kept.is_empty() {
            url.push('?');
            url.push_str(&kept.join("&"));
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_scratch_url_keeps_everything_but_the_database() {
        for (server, url) in [
            (
                "postgres://postgres@127.0.0.1:5432/postgres",
                "postgres://postgres@127.0.0.1:5432/t1",
            ),
            ("postgres://u:p@h:1", "postgres://u:p@h:1/t1"),
            (
                "postgres://u@h/db?sslmode=disable&dbname=x",
                "postgres://u@h/t1?sslmode=disable",
            ),
            (
                "postgres:///postgres?host=/run/postgresql",
                "postgres:///t1?host=/run/postgresql",
            ),
        ] {
            assert_eq!(with_database(server, "t1"), url, "{server}");
        }
    }
}
