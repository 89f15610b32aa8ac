//! How database failures read to callers: every backend maps `sqlx::Error` the same way.

use vidsnap_domain::PortError;

/// Why [`SqliteStore::open`](crate::SqliteStore::open) or
/// [`PgStore::connect`](crate::PgStore::connect) failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the database {path}")]
    Connect {
        /// The SQLite file, or the PostgreSQL URL with its password masked.
        path: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot migrate the database {path}")]
    Migrate {
        /// As in `Connect`.
        path: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
}

/// Unique violations are `Conflict`; a missing row, or a reference to one (a foreign key), is
/// `NotFound`; anything else is the backend failing (`Unavailable`, worth retrying).
pub(crate) fn port_error(error: sqlx::Error) -> PortError {
    match error {
        sqlx::Error::RowNotFound => PortError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            PortError::Conflict(db.message().to_owned())
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => PortError::NotFound,
        other => PortError::Unavailable(other.to_string()),
    }
}

/// A stored value this code cannot read back: a bug or a hand-edited database.
pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> PortError {
    PortError::Unavailable(format!("corrupt {what} in the database: {detail}"))
}
