//! The queue contract on the database queue, the embedded default (SQLite) and the scaled-out
//! one (PostgreSQL): the reference the brokers are held to. (The database queue's own, stricter
//! suite is in `crates/db`.)

use std::sync::Arc;

use tempfile::TempDir;
use vidsnap_db::{PgStore, SqliteStore, testing::ScratchDatabase};
use vidsnap_domain::{JobQueue, Repository};

mod sqlite {
    use super::*;

    /// Two handles on one new SQLite queue (one store: the embedded mode is one process), the
    /// same store as the repository, and the directory holding it.
    async fn fresh() -> (
        Arc<dyn JobQueue>,
        Arc<dyn JobQueue>,
        Arc<dyn Repository>,
        TempDir,
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("queue.db"))
            .await
            .expect("open");
        (
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            Arc::new(store),
            dir,
        )
    }

    vidsnap_queue::queue_contract_tests!(fresh);
}

mod postgres {
    use super::*;

    /// Two processes' pools on one scratch PostgreSQL database (dropped with the guard), the
    /// first also as the repository.
    async fn fresh() -> (
        Arc<dyn JobQueue>,
        Arc<dyn JobQueue>,
        Arc<dyn Repository>,
        ScratchDatabase,
    ) {
        let db = ScratchDatabase::create("vidsnap_queue").await;
        let one = PgStore::connect(db.url()).await.expect("connect");
        let other = PgStore::connect(db.url()).await.expect("connect");
        (Arc::new(one.clone()), Arc::new(other), Arc::new(one), db)
    }

    vidsnap_queue::queue_contract_tests!(fresh);
}
