//! Vidsnap's metadata repository and database job queue: the [`Repository`] and [`JobQueue`]
//! ports on SQL databases.
//!
//! # Layout
//! - [`sqlite`]: the SQLite backend, [`SqliteStore`] (one file, WAL). Its schema lives in
//!   `migrations/sqlite/`, embedded in the binary and applied by [`SqliteStore::open`].
//! - `error`: how `sqlx` failures become [`PortError`]s (shared by every dialect), and
//!   [`OpenError`].
//! - `event`: what a terminal outcome owes, independent of the dialect: the channels, the frozen
//!   event body.
//! - `contract` (feature `contract`): the behaviour every backend must show, written once as
//!   async functions over `&dyn Repository` / `&dyn JobQueue`; each backend's tests run them.
//!
//! SQL is written per dialect (`src/<dialect>/`, `migrations/<dialect>/`) and run with runtime
//! queries (`sqlx::query` + `bind`), never the compile-time macros, which check one dialect only.
//!
//! [`Repository`]: vidsnap_domain::Repository
//! [`JobQueue`]: vidsnap_domain::JobQueue
//! [`PortError`]: vidsnap_domain::PortError

#[cfg(feature = "contract")]
pub mod contract;
mod error;
mod event;
pub mod sqlite;

pub use error::OpenError;
pub use sqlite::SqliteStore;
