//! Job queues on message brokers, behind the domain's [`JobQueue`](vidsnap_domain::JobQueue)
//! port, and the consumer of S3 event notifications.
//!
//! Layout:
//! - `amqp/`: RabbitMQ (AMQP 0-9-1) as the job queue.
//! - `sqs/`: Amazon SQS as the job queue, and the S3 event-notification consumer that turns
//!   "object created" events into uploads (`UploadListener`).
//! - `chunks`: upload chunks arriving as AMQP messages (seed 003), stored through the upload
//!   core, each answered on its publisher's reply queue.
//! - `requests`: job requests arriving as AMQP messages (seed 004's `{"recordingID",
//!   "callEndingTimestamp"}`), turned into jobs by a `RequestListener`, retried through delay
//!   queues and dead-lettered with a reason. (On SQS the S3 event consumer takes them.)
//! - `contract` (feature `contract`): the behaviour every `JobQueue` backend shares, run against
//!   the database queue and each broker.

pub mod amqp;
pub mod chunks;
#[cfg(feature = "contract")]
pub mod contract;
pub mod requests;
pub mod sqs;

/// Runs `session` (one connection's worth of consuming; `Ok` once shut down) until it ends well
/// or `shutdown`, waiting 0.25 s doubling to 30 s after each failure: a broker restarting or out
/// of reach is waited for, never given up on.
pub(crate) async fn reconnecting<F, Fut>(
    what: &str,
    queue: &str,
    shutdown: &tokio_util::sync::CancellationToken,
    mut session: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), lapin::Error>>,
{
    let mut backoff = std::time::Duration::from_millis(250);
    while !shutdown.is_cancelled() {
        match session().await {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(%error, queue, retry_in = ?backoff, "{what}: reconnecting")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(std::time::Duration::from_secs(30));
    }
}
