//! The queue contract on the database queue (SQLite), the embedded default: the reference the
//! brokers are held to. (The database queue's own, stricter suite is in `crates/db`.)

use std::sync::Arc;

use tempfile::TempDir;
use vidsnap_db::SqliteStore;
use vidsnap_domain::{JobQueue, Repository};

/// Two handles on one new SQLite queue (one store: the embedded mode is one process), the same
/// store as the repository, and the directory holding it.
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
