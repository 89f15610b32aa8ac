//! RabbitMQ (AMQP 0-9-1) as the job queue, behind [`JobQueue`].
//!
//! ## Layout
//!
//! - `mod.rs`: [`AmqpConfig`], [`AmqpQueue`] and its [`JobQueue`] implementation.
//! - `topology.rs`: the names and declarations of the queues and exchanges.
//! - `message.rs`: the job message (JSON) and its properties.
//! - `publisher.rs`: the publishing connection (confirm mode), reopened on demand.
//! - `consumer.rs`: the consuming connection (prefetch, manual ack), reconnecting with backoff,
//!   and the inbox of unclaimed deliveries.
//! - `lease.rs`: claimed jobs: heartbeats, the consumer-timeout hand-over, complete, release,
//!   dead-letter.
//!
//! ## Topology
//!
//! Everything is durable and every message persistent; every name derives from `queue`
//! (`vidsnap.jobs` by default):
//!
//! ```text
//!  enqueue / release ──► {queue}  (quorum queue, consumed) ──► workers
//!     │ due later             ▲        │ rejected, or redelivered delivery_limit times
//!     ▼                       │        ▼
//!  {queue}.retry.{secs} ──────┤     {queue}.dlx (fanout) ──► {queue}.dead
//!  (x-message-ttl, expires)   │        ▲
//!  {queue}.hold.{job}.{lease} ┘        └── dead_letter (reason in x-vidsnap-reason)
//!  (one job past the consumer timeout)
//! ```
//!
//! - `{queue}` holds due jobs. A quorum queue: replicated in a cluster, and it counts
//!   redeliveries (`x-delivery-count`, so [`Lease::deliveries`] is exact) and dead-letters a
//!   message delivered `delivery_limit` times, i.e. a job that kills every worker taking it.
//! - `{queue}.retry.{secs}`: a job due later (a backoff, a release until `at`) waits there for
//!   `secs`, then is dead-lettered into `{queue}` through the default exchange. Delays are
//!   rounded up to four significant bits (never early, at most 1/8 late) so jittered backoffs
//!   share a few queues; each expires when unused for a while.
//! - `{queue}.dlx` and `{queue}.dead`: dead jobs, kept for inspection; [`JobQueue::dead_letter`]
//!   publishes the job with its reason in the `x-vidsnap-reason` header, and anything the
//!   broker dead-letters from `{queue}` ends there too.
//!
//! ## Delivery and acknowledgement
//!
//! Enqueues and every re-publish wait for the broker's confirm (`mandatory`: an unroutable
//! message is an error too). A worker process consumes `{queue}` with `basic.qos` prefetch =
//! its concurrency and manual acks; deliveries wait in a local inbox that [`JobQueue::claim`]
//! pops and [`JobQueue::wait_for_work`] waits on. A job is acked only once its outcome is
//! recorded: `complete` acks, `release` publishes the job due at `at` and then acks,
//! `dead_letter` publishes the dead letter and then acks. Publishing before acking means a crash
//! in between duplicates a job and never loses one. Consuming starts on the first `claim` or
//! `wait_for_work`: processes that only enqueue (the API) never consume.
//!
//! A delivery is the worker's while the consuming channel is open; if the connection drops the
//! broker requeues it, and `heartbeat`, `complete`, `release` and `dead_letter` on its lease
//! return [`PortError::LeaseLost`]. Consuming reconnects with backoff.
//!
//! ## Jobs longer than the consumer timeout
//!
//! RabbitMQ closes a channel whose delivery stays unacked past its `consumer_timeout` (30 min by
//! default), requeueing every job on it while the workers still run them. RabbitMQ 3.10 has no
//! per-queue timeout, so a job is handed over shortly before (`consumer_timeout_seconds` minus
//! a quarter, at most a minute): a copy is published to its own hold queue
//! `{queue}.hold.{job}.{lease}`, whose messages live one lease (the `lease` given to `claim`)
//! and then are dead-lettered into `{queue}`; then the delivery is acked. From then on each
//! heartbeat takes the old copy (`basic.get`), publishes a fresh one, and acks the old one, and
//! the job's end deletes the queue (deleted messages are not dead-lettered). A live worker thus
//! keeps the job out of `{queue}` for as long as it heartbeats, and a dead worker's job returns
//! within one lease, like the database queue's leases; the queue, unused, then expires. Jobs
//! shorter than the timeout keep the plain "ack after the outcome" path. A hand-over that keeps
//! failing (the broker refuses publishes) gives up shortly before the timeout and requeues that
//! one job, whose worker learns at its next heartbeat: better one job redelivered than the
//! channel closed under every job on it. If the publishing channel dies between a heartbeat's
//! fresh copy and the ack of the old one, both copies stay and the old one returns to `{queue}`:
//! a duplicate delivery, as after any crash between publish and ack.
//!
//! ## Caveats
//!
//! - Brokers cannot deduplicate: [`JobQueue::enqueue`] is **not** idempotent per video here. An
//!   enqueue for a video with a job already queued or running adds a second job; processing is
//!   idempotent (the worker settles a delivery for a video already finished), so the cost is a
//!   duplicate delivery, never a second outcome.
//! - [`QueueStats::running`] counts this process's leases only (AMQP does not expose other
//!   consumers' unacked messages); `queued` counts the due jobs in `{queue}`, not the ones
//!   waiting in delay or hold queues; `oldest_queued_seconds` is unknown.
//! - A deleted main queue (an operator's mistake) is declared again by the next publish that
//!   finds it missing (or the next new channel); consumers, cancelled by the broker, reconnect
//!   with backoff. RabbitMQ 3.10 may fail to cancel consumers of a quorum queue declared again
//!   within milliseconds of its deletion: they then receive nothing until they reconnect.
//! - A delivery left unclaimed for 2 s (every worker of the process busy: held jobs no longer
//!   count against the prefetch, so one more arrives; or the process stopped claiming) is
//!   handed back to the broker, re-published at the back of `{queue}`, for other processes.

mod consumer;
mod lease;
mod message;
mod publisher;
pub(crate) mod topology;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vidsnap_domain::{
    JobQueue, Lease, NewTask, PortError, PortResult, QueueStats, TaskId, TaskMessage,
};

use self::{
    consumer::Inbox, lease::Slot, message::JobMessage, publisher::Publisher, topology::Names,
};

pub use self::message::REASON_HEADER;

/// RabbitMQ settings: `[queue] kind = "rabbitmq"` and these keys.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpConfig {
    /// The broker: `amqp://user:password@host:5672/vhost` (`%2f` is the vhost `/`), or
    /// `amqps://` for TLS (rustls, the system's trust store).
    pub url: String,
    /// The main queue. Every other queue and exchange is named after it (`{queue}.dead`,
    /// `{queue}.dlx`, `{queue}.retry.{seconds}`, `{queue}.hold.{job}.{lease}`), so deployments
    /// sharing a broker keep apart by choosing different names.
    pub queue: String,
    /// The broker's `consumer_timeout` (RabbitMQ's default: 30 min). Jobs running longer are
    /// handed over to a hold queue before it; must not exceed the broker's setting.
    pub consumer_timeout_seconds: u64,
    /// Broker redeliveries (the worker holding the job died or lost its connection) after which
    /// a job is dead-lettered: a job that crashes every worker must not loop forever. Failures
    /// the worker sees are counted by its own `max_attempts`.
    pub delivery_limit: u32,
    /// How long opening a connection may take.
    pub connect_timeout_seconds: u64,
    /// How long a publish waits for the broker's confirm before it counts as failed.
    pub confirm_timeout_seconds: u64,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            queue: "vidsnap.jobs".to_owned(),
            consumer_timeout_seconds: 1800,
            delivery_limit: 20,
            connect_timeout_seconds: 10,
            confirm_timeout_seconds: 30,
        }
    }
}

impl std::fmt::Debug for AmqpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpConfig")
            .field("url", &redact(&self.url))
            .field("queue", &self.queue)
            .field("consumer_timeout_seconds", &self.consumer_timeout_seconds)
            .field("delivery_limit", &self.delivery_limit)
            .field("connect_timeout_seconds", &self.connect_timeout_seconds)
            .field("confirm_timeout_seconds", &self.confirm_timeout_seconds)
            .finish()
    }
}

/// Why a broker operation failed. Port methods report these as
/// [`PortError::Unavailable`], with the message.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("connecting to {url}")]
    Connect {
        url: String,
        #[source]
        source: lapin::Error,
    },
    #[error("opening a channel")]
    Channel(#[source] lapin::Error),
    #[error("declaring {queue}")]
    Declare {
        queue: String,
        #[source]
        source: lapin::Error,
    },
    #[error("publishing to {target}")]
    Publish {
        target: String,
        #[source]
        source: lapin::Error,
    },
    #[error("the broker refused a message: {0}")]
    Refused(String),
    #[error("unroutable (a queue is missing): {0}")]
    Unroutable(String),
    #[error("consuming {queue}")]
    Consume {
        queue: String,
        #[source]
        source: lapin::Error,
    },
    #[error("the broker cancelled the consumer of {0} (queue deleted?)")]
    Cancelled(String),
    #[error("getting from {queue}")]
    Get {
        queue: String,
        #[source]
        source: lapin::Error,
    },
    #[error("deleting {queue}")]
    Delete {
        queue: String,
        #[source]
        source: lapin::Error,
    },
    #[error("timed out {0}")]
    Timeout(String),
}

/// What the queue's tasks share.
pub(crate) struct Core {
    config: AmqpConfig,
    names: Names,
    /// Unacked deliveries this process takes at most: the worker's concurrency.
    prefetch: u16,
    publisher: Publisher,
    inbox: Inbox,
    slots: Mutex<HashMap<String, Slot>>,
    /// Stops the consumer and the keepers when the queue is closed or dropped.
    cancel: CancellationToken,
}

impl Core {
    fn slots(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        // Every change to the map is a single insert or remove: a panic cannot leave it half-done.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The broker's timeout less a quarter, at most a minute: when a delivery is handed over.
    fn handover_after(&self) -> Duration {
        let timeout = Duration::from_secs(self.config.consumer_timeout_seconds.max(1));
        timeout - (timeout / 4).min(Duration::from_secs(60))
    }

    /// When a hand-over that keeps failing gives up (and requeues the job).
    fn give_up_after(&self) -> Duration {
        let timeout = Duration::from_secs(self.config.consumer_timeout_seconds.max(1));
        timeout - (timeout / 16).min(Duration::from_secs(15))
    }
}

/// The job queue on RabbitMQ. Dropping it (or [`AmqpQueue::close`]) closes its connections:
/// jobs it delivered and did not finish go back to the broker (held ones within one lease).
pub struct AmqpQueue {
    core: Arc<Core>,
    consumer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for AmqpQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpQueue")
            .field("config", &self.core.config)
            .field("prefetch", &self.core.prefetch)
            .finish_non_exhaustive()
    }
}

impl AmqpQueue {
    /// Connects, declares the topology and opens the publishing channel. `prefetch` is the
    /// worker concurrency of this process (unacked jobs it takes at most; 0 counts as 1);
    /// consuming starts only on the first `claim` or `wait_for_work`.
    pub async fn connect(config: &AmqpConfig, prefetch: u16) -> Result<Self, AmqpError> {
        let names = Names::new(&config.queue)?;
        let publisher = Publisher::new(config.clone(), names.clone());
        publisher.channel().await?;
        tracing::info!(url = %redact(&config.url), queue = %config.queue, "connected to RabbitMQ");
        Ok(Self {
            core: Arc::new(Core {
                config: config.clone(),
                names,
                prefetch: prefetch.max(1),
                publisher,
                inbox: Inbox::default(),
                slots: Mutex::new(HashMap::new()),
                cancel: CancellationToken::new(),
            }),
            consumer: Mutex::new(None),
        })
    }

    /// Closes both connections; unfinished jobs go back to the broker.
    pub async fn close(&self) {
        self.core.cancel.cancel();
        let consumer = self
            .consumer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(consumer) = consumer
            && let Err(error) = consumer.await
        {
            tracing::warn!(%error, "the consumer task failed");
        }
        self.core.publisher.close().await;
    }

    fn start_consuming(&self) {
        let mut consumer = self.consumer.lock().unwrap_or_else(PoisonError::into_inner);
        if consumer.is_none() && !self.core.cancel.is_cancelled() {
            *consumer = Some(tokio::spawn(consumer::run(Arc::clone(&self.core))));
        }
    }
}

impl Drop for AmqpQueue {
    fn drop(&mut self) {
        // The consumer closes its connection; the keepers end and drop the core, whose
        // publishing connection closes when dropped.
        self.core.cancel.cancel();
    }
}

#[async_trait]
impl JobQueue for AmqpQueue {
    /// Not deduplicated: see the module documentation.
    async fn enqueue(&self, new: NewTask) -> PortResult<()> {
        let job = new.task.job;
        let message = JobMessage {
            id: TaskId::new(),
            task: TaskMessage::V1(new.task),
            not_before: new.not_before,
            deliveries: 0,
        };
        self.core.publish_job(&message).await.map_err(|error| {
            tracing::warn!(%job, %error, "enqueue failed");
            PortError::Unavailable(format!("enqueueing a task of job {job}: {error}"))
        })
    }

    async fn claim(&self, worker: &str, lease: Duration) -> PortResult<Option<Lease>> {
        self.start_consuming();
        let Some(received) = self.core.inbox.pop() else {
            return Ok(None);
        };
        let lease = self.core.lease(received, lease);
        tracing::debug!(worker, job = %lease.id, deliveries = lease.deliveries, "claimed");
        Ok(Some(lease))
    }

    /// A delivery stays the worker's while the consuming channel is open, so `extend` matters
    /// only to held jobs, whose copies live one claim lease whatever `extend` says.
    async fn heartbeat(&self, lease: &Lease, _extend: Duration) -> PortResult<()> {
        self.core.heartbeat(lease).await
    }

    async fn complete(&self, lease: &Lease) -> PortResult<()> {
        self.core.complete(lease).await
    }

    async fn release(&self, lease: &Lease, at: DateTime<Utc>) -> PortResult<()> {
        self.core.release(lease, at).await
    }

    async fn dead_letter(&self, lease: &Lease, reason: &str) -> PortResult<()> {
        self.core.dead_letter(lease, reason).await
    }

    async fn wait_for_work(&self, max_wait: Duration) {
        self.start_consuming();
        self.core.inbox.wait(max_wait).await;
    }

    async fn stats(&self) -> PortResult<QueueStats> {
        let unavailable = |error: AmqpError| {
            tracing::warn!(queue = %self.core.names.main, %error, "queue stats failed");
            PortError::Unavailable(format!("queue stats: {error}"))
        };
        let publisher = &self.core.publisher;
        let queued = publisher
            .count(&self.core.names.main)
            .await
            .map_err(unavailable)?;
        let dead = publisher
            .count(&self.core.names.dead)
            .await
            .map_err(unavailable)?;
        Ok(QueueStats {
            queued,
            running: u64::try_from(self.core.running()).unwrap_or(u64::MAX),
            dead,
            oldest_queued_seconds: None,
        })
    }
}

/// `amqp://user:secret@host/vhost` -> `amqp://user:***@host/vhost`, for logs and errors.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            redact("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact("amqp://127.0.0.1"), "amqp://127.0.0.1");
        let shown = format!("{:?}", AmqpConfig::default());
        assert!(!shown.contains("guest@"), "{shown}");
    }

    #[test]
    fn config_keys_are_checked() {
        let config: AmqpConfig =
            serde_json::from_str(r#"{"queue": "jobs"}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.queue, "jobs");
        assert_eq!(config.consumer_timeout_seconds, 1800);
        assert!(serde_json::from_str::<AmqpConfig>(r#"{"qeue": "jobs"}"#).is_err());
    }
}
