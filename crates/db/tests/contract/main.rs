//! The crate's one integration-test binary: every contract check against SQLite, each on a fresh
//! database file, then what only SQLite needs (reopening, two handles on one file).

mod sqlite;

use std::ops::Deref;

use tempfile::TempDir;
use vidsnap_db::SqliteStore;

/// A store on a new database file, removed with the value.
struct Fresh {
    store: SqliteStore,
    dir: TempDir,
}

impl Deref for Fresh {
    type Target = SqliteStore;
    fn deref(&self) -> &SqliteStore {
        &self.store
    }
}

async fn fresh() -> Fresh {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("vidsnap.db"))
        .await
        .expect("open a fresh database");
    Fresh { store, dir }
}

vidsnap_db::contract_tests!(fresh);
