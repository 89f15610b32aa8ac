//! The crate's one integration-test binary: every contract check against each backend, each on
//! its own fresh database (a temp file for SQLite, a scratch database on the test server for
//! PostgreSQL), then what only that backend has to prove.
//!
//! `cargo test -p vidsnap-db --test contract sqlite::` (or `postgres::`) runs one backend. The
//! PostgreSQL half needs a server (`scripts/test-services.sh`) and fails, never skips, without
//! one.

mod postgres;
mod sqlite;
