//! Vidsnap's metadata repository and database task queue: the [`Repository`] (with its
//! [`Jobs`]) and [`JobQueue`] ports on SQL databases.
//!
//! # Layout
//! - [`sqlite`]: the SQLite backend, [`SqliteStore`] (one file, WAL). Its schema lives in
//!   `migrations/sqlite/`, embedded in the binary and applied by [`SqliteStore::open`].
//! - [`postgres`]: the PostgreSQL backend, [`PgStore`] (a pool, `FOR UPDATE SKIP LOCKED`
//!   claims, LISTEN/NOTIFY wake-ups across processes). Its schema lives in
//!   `migrations/postgres/`, applied by [`PgStore::connect`].
//! - `jobs`: what the `Jobs` port does independently of the dialect, above all `change_job`
//!   (lock, [`Job::apply`], write what changed, mirror a `/v1/videos` job onto its video, owe a
//!   finished job's notifications, commit) over a dialect's `JobTx` statements.
//! - `transition`: what a [`Transition`] does to a video, for every dialect's `transition`.
//! - `error`: how `sqlx` failures become [`PortError`]s (shared by every dialect), and
//!   [`OpenError`].
//! - `event`: what a terminal outcome owes, independent of the dialect: the channels, the typed
//!   event bodies ([`VideoEvent`], [`JobEvent`]) of a video or a job.
//! - `clock`: time at the precision every dialect stores, and lease arithmetic.
//! - `contract` (feature `contract`): the behaviour every backend must show, written once as
//!   async functions over `&dyn Repository` / `&dyn JobQueue`; each backend's tests run them.
//! - `testing` (feature `contract`): the PostgreSQL server tests use, a scratch database per
//!   test, and databases of an older schema for upgrade tests.
//!
//! SQL is written per dialect (`src/<dialect>/`, `migrations/<dialect>/`) and run with runtime
//! queries (`sqlx::query` + `bind`), never the compile-time macros, which check one dialect only.
//! Logic is written once, above the statements: a dialect module binds and maps rows.
//!
//! [`Repository`]: vidsnap_domain::Repository
//! [`Jobs`]: vidsnap_domain::Jobs
//! [`JobQueue`]: vidsnap_domain::JobQueue
//! [`Job::apply`]: vidsnap_domain::Job::apply
//! [`Transition`]: vidsnap_domain::Transition
//! [`PortError`]: vidsnap_domain::PortError
//! [`VideoEvent`]: vidsnap_domain::VideoEvent
//! [`JobEvent`]: vidsnap_domain::JobEvent

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
