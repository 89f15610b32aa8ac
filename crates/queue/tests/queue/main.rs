//! The broker queues against real servers: RabbitMQ on the machine, moto for SQS; and property
//! tests of what arrives from them (S3 event JSON, chunk headers), which need neither.

use std::sync::Arc;

use tempfile::TempDir;
use vidsnap_domain::{JobId, Repository, Task};

mod amqp;
mod chunks;
mod database;
mod props;
mod sqs;

/// A task of a job that exists nowhere: the queues carry tasks without looking at them.
fn task() -> Task {
    Task {
        job: JobId::new(),
        step: "frames".to_owned(),
        attempt: 1,
    }
}

/// A new SQLite repository (the contract's checks that follow a delivery to its step), and the
/// directory holding it.
async fn repository() -> (Arc<dyn Repository>, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = vidsnap_db::SqliteStore::open(&dir.path().join("jobs.db"))
        .await
        .expect("open");
    (Arc::new(store), dir)
}
