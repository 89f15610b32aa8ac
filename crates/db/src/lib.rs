//! Vidsnap's metadata repository and database job queue: the [`Repository`] and [`JobQueue`]
//! ports on SQL databases.
//!
//! # Layout
//! - [`sqlite`]: the SQLite backend, [`SqliteStore`] (one file, WAL). Its schema lives in
//!   `migrations/sqlite/`, embedded in the binary and applied by [`SqliteStore::open`].
//! - [`postgres`]: the PostgreSQL backend, [`PgStore`] (a pool, `FOR UPDATE SKIP LOCKED`
//!   claims, LISTEN/NOTIFY wake-ups across processes). Its schema lives in
//!   `migrations/postgres/`, applied by [`PgStore::connect`].
//! - `error`: how `sqlx` failures become [`PortError`]s (shared by every dialect), and
//!   [`OpenError`].
//! - `event`: what a terminal outcome owes, independent of the dialect: the channels, the frozen
//!   event body.
//! - `clock`: time at the precision every dialect stores, and lease arithmetic.
//! - `contract` (feature `contract`): the behaviour every backend must show, written once as
//!   async functions over `&dyn Repository` / `&dyn JobQueue`; each backend's tests run them.
//! - `testing` (feature `contract`): the PostgreSQL server tests use, and a scratch database
//!   per test.
//!
//! SQL is written per dialect (`src/<dialect>/`, `migrations/<dialect>/`) and run with runtime
//! queries (`sqlx::query` + `bind`), never the compile-time macros, which check one dialect only.
//!
//! [`Repository`]: vidsnap_domain::Repository
//! [`JobQueue`]: vidsnap_domain::JobQueue
//! [`PortError`]: vidsnap_domain::PortError

mod clock;
#[cfg(feature = "contract")]
pub mod contract;
mod delegate;
mod error;
mod event;
mod jobs;
pub mod postgres;
pub mod sqlite;
#[cfg(feature = "contract")]
pub mod testing;
mod transition;

pub use error::OpenError;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
