//! Vidsnap's job queue on SQS. See the module documentation of `sqs` for the queues it needs.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use aws_sdk_sqs::{
    Client,
    types::{MessageSystemAttributeName, QueueAttributeName},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use vidsnap_domain::{
    JobQueue, Lease, NewTask, PortError, PortResult, QueueStats, TaskId, TaskMessage,
};

use super::client::{
    MAX_DELAY_SECONDS, MAX_VISIBILITY_SECONDS, MAX_WAIT_SECONDS, SqsClientConfig, SqsConfigError,
    check_queue_url, check_range, receipt_error, send_with_reason, unavailable, visibility_seconds,
};

/// Where the jobs are and how to reach them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqsConfig {
    /// The jobs queue, e.g. `https://sqs.eu-west-1.amazonaws.com/123456789012/vidsnap-jobs`: a
    /// standard queue with a redrive policy to `dead_letter_queue_url`.
    pub queue_url: String,
    /// Where `dead_letter` sends a job (the job's message, with the reason as the `reason`
    /// message attribute); normally also the jobs queue's redrive target.
    pub dead_letter_queue_url: String,
    /// The longest single long poll while waiting for work, in seconds (0 to 20; the worker's
    /// `idle_poll_seconds` bounds it too). A long poll returns as soon as a message arrives, so
    /// longer polls only mean fewer requests.
    #[serde(default = "default_wait_seconds")]
    pub wait_seconds: u32,
    /// See [`SqsClientConfig::region`].
    #[serde(default)]
    pub region: Option<String>,
    /// See [`SqsClientConfig::endpoint`].
    #[serde(default)]
    pub endpoint: Option<String>,
    /// See [`SqsClientConfig::access_key_id`].
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// See [`SqsClientConfig::secret_access_key`].
    #[serde(default)]
    pub secret_access_key: Option<String>,
}

fn default_wait_seconds() -> u32 {
    MAX_WAIT_SECONDS
}

impl SqsConfig {
    /// A configuration for these queues with every default.
    pub fn new(queue_url: impl Into<String>, dead_letter_queue_url: impl Into<String>) -> Self {
        Self {
            queue_url: queue_url.into(),
            dead_letter_queue_url: dead_letter_queue_url.into(),
            wait_seconds: default_wait_seconds(),
            region: None,
            endpoint: None,
            access_key_id: None,
            secret_access_key: None,
        }
    }

    /// The client part of this configuration.
    pub fn client(&self) -> SqsClientConfig {
        SqsClientConfig {
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
        }
    }
}

impl std::fmt::Debug for SqsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsConfig")
            .field("queue_url", &self.queue_url)
            .field("dead_letter_queue_url", &self.dead_letter_queue_url)
            .field("wait_seconds", &self.wait_seconds)
            .field("client", &self.client())
            .finish()
    }
}

/// A message's body: the versioned task (`{"v": "1", "job", "step", "attempt"}`), this copy's
/// id, when it may run, and how often it was claimed before this message was sent (SQS's
/// receive count restarts with every message; `release` sends a new one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct JobMessage {
    id: TaskId,
    #[serde(flatten)]
    task: TaskMessage,
    not_before: DateTime<Utc>,
    #[serde(default)]
    deliveries: u32,
}

impl JobMessage {
    fn body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A received message that is a due job.
#[derive(Debug)]
struct Received {
    job: JobMessage,
    receipt: String,
    /// SQS's `ApproximateReceiveCount`.
    receives: u32,
}

impl Received {
    fn lease(self) -> Lease {
        let TaskMessage::V1(task) = self.job.task;
        Lease {
            id: self.job.id,
            task,
            deliveries: self.job.deliveries.saturating_add(self.receives),
            token: self.receipt,
        }
    }
}

/// What one receive gave.
#[derive(Debug)]
enum Polled {
    Nothing,
    /// A message that is not a due job (hidden until due, or dead-lettered).
    Skipped,
    Due(Received),
}

/// A job `wait_for_work` received, for the next claim.
#[derive(Debug)]
struct Stashed {
    received: Received,
    at: Instant,
}

/// A message `wait_for_work` receives stays invisible this long; the claim that takes it sets
/// the lease.
const STASH_VISIBILITY: Duration = Duration::from_secs(30);
/// A stashed message older than this is left to reappear rather than claimed: its visibility
/// may end before the claim has set the lease.
const STASH_USABLE: Duration = Duration::from_secs(20);
/// A job due within this is due (delays are rounded up to whole seconds anyway).
const DUE_TOLERANCE: chrono::TimeDelta = chrono::TimeDelta::seconds(1);
/// A claim looks at this many messages at most (skipping jobs not due yet and unreadable
/// messages) before saying there is nothing.
const CLAIM_LOOKS: usize = 10;

/// The job queue on SQS: a claim is a receive whose visibility timeout is the lease, the receipt
/// handle is the lease token.
///
/// Delays: SQS delays a message 15 minutes at most. A job due later carries its `not_before`;
/// whoever receives it early makes it invisible for the time left (up to SQS's 12 hours) and
/// skips it. Those early receives count in SQS's `ApproximateReceiveCount` (the redrive
/// policy's count, and [`Lease::deliveries`]); the worker's backoff stays under 15 minutes by
/// default, so they do not happen.
///
/// A lease that expired and was taken over is reported as [`PortError::LeaseLost`] as far as
/// SQS says so: AWS refuses a stale receipt handle's visibility change, but may accept its
/// delete.
#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    dead_letter_queue_url: String,
    wait: Duration,
    /// Messages `wait_for_work` received. A waiter stashes only when the stash is empty, so there
    /// are at most as many as concurrent waiters (one per worker slot).
    stash: Arc<Mutex<VecDeque<Stashed>>>,
}

impl std::fmt::Debug for SqsQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsQueue")
            .field("queue_url", &self.queue_url)
            .field("dead_letter_queue_url", &self.dead_letter_queue_url)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

impl SqsQueue {
    /// Checks the configuration and builds the client; nothing is sent to SQS until the first
    /// operation ([`JobQueue::stats`] checks both queues answer).
    pub async fn new(config: &SqsConfig) -> Result<Self, SqsConfigError> {
        check_queue_url("queue_url", &config.queue_url)?;
        check_queue_url("dead_letter_queue_url", &config.dead_letter_queue_url)?;
        check_range("wait_seconds", config.wait_seconds, 0, MAX_WAIT_SECONDS)?;
        Ok(Self {
            client: config.client().client().await?,
            queue_url: config.queue_url.trim().to_owned(),
            dead_letter_queue_url: config.dead_letter_queue_url.trim().to_owned(),
            wait: Duration::from_secs(u64::from(config.wait_seconds)),
            stash: Arc::default(),
        })
    }

    /// Sends a job, delayed until `not_before` as far as SQS allows.
    async fn send(&self, job: &JobMessage) -> PortResult<()> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(job.body())
            .delay_seconds(delay_seconds(job.not_before, Utc::now()))
            .send()
            .await
            .map_err(|e| unavailable("SendMessage", &e))?;
        Ok(())
    }

    async fn delete(&self, receipt: &str) -> PortResult<()> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| receipt_error("DeleteMessage", &e))?;
        Ok(())
    }

    async fn set_visibility(&self, receipt: &str, seconds: i32) -> PortResult<()> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(|e| receipt_error("ChangeMessageVisibility", &e))?;
        Ok(())
    }

    /// Receives one message invisible for `visibility` seconds, long-polling `wait` seconds.
    /// Jobs not due yet are hidden until they are, unreadable messages dead-lettered: both are
    /// skipped.
    async fn receive(&self, visibility: i32, wait: i32) -> PortResult<Polled> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(1)
            .visibility_timeout(visibility)
            .wait_time_seconds(wait)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| unavailable("ReceiveMessage", &e))?;
        let Some(message) = output.messages.unwrap_or_default().into_iter().next() else {
            return Ok(Polled::Nothing);
        };
        let (Some(receipt), body) = (message.receipt_handle, message.body.unwrap_or_default())
        else {
            return Ok(Polled::Skipped);
        };
        let receives = message
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|count| count.parse().ok())
            .unwrap_or(1);
        let job: JobMessage = match serde_json::from_str(&body) {
            Ok(job) => job,
            Err(e) => {
                self.discard(&receipt, body, &format!("unparseable-job: {e}"))
                    .await;
                return Ok(Polled::Skipped);
            }
        };
        let now = Utc::now();
        if job.not_before - now > DUE_TOLERANCE {
            let hide = (job.not_before - now).to_std().unwrap_or_default();
            // The 12 hours count from this receipt; a little is already gone.
            let hide = visibility_seconds(hide).min(MAX_VISIBILITY_SECONDS as i32 - 60);
            if let Err(e) = self.set_visibility(&receipt, hide).await {
                tracing::warn!(task = %job.id, error = %e, "cannot hide a job that is not due yet");
            }
            return Ok(Polled::Skipped);
        }
        Ok(Polled::Due(Received {
            job,
            receipt,
            receives,
        }))
    }

    /// Moves an unreadable message to the dead-letter queue. Best effort: if that fails it
    /// reappears, and the redrive policy has the last word.
    async fn discard(&self, receipt: &str, body: String, reason: &str) {
        tracing::warn!(reason, "dead-lettering an unreadable job message");
        let sent = send_with_reason(&self.client, &self.dead_letter_queue_url, body, reason).await;
        // Deleted only once it is safely in the dead-letter queue.
        let moved = match sent {
            Ok(()) => self.delete(receipt).await,
            Err(e) => Err(e),
        };
        if let Err(e) = moved {
            tracing::warn!(error = %e, "dead-lettering an unreadable job message failed");
        }
    }

    fn take_stashed(&self) -> Option<Stashed> {
        let mut stash = self.stash.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(stashed) = stash.pop_front() {
            if stashed.at.elapsed() < STASH_USABLE {
                return Some(stashed);
            }
        }
        None
    }

    fn stash_is_empty(&self) -> bool {
        self.stash
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    fn stash(&self, received: Received) {
        self.stash
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(Stashed {
                received,
                at: Instant::now(),
            });
    }

    async fn queue_counts(&self, url: &str) -> PortResult<(u64, u64, u64)> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| unavailable("GetQueueAttributes", &e))?;
        let attributes = output.attributes.unwrap_or_default();
        let count = |name: QueueAttributeName| {
            attributes
                .get(&name)
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok((
            count(QueueAttributeName::ApproximateNumberOfMessages),
            count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
            count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        ))
    }
}

/// SQS's delay for a message due at `at`: whole seconds rounded up, at most 15 minutes.
fn delay_seconds(at: DateTime<Utc>, now: DateTime<Utc>) -> i32 {
    let delay = (at - now).to_std().unwrap_or_default();
    if delay.is_zero() {
        0
    } else {
        visibility_seconds(delay).min(MAX_DELAY_SECONDS as i32)
    }
}

#[async_trait]
impl JobQueue for SqsQueue {
    /// Sends a new task. Not deduplicated (see the module documentation).
    async fn enqueue(&self, new: NewTask) -> PortResult<()> {
        self.send(&JobMessage {
            id: TaskId::new(),
            task: TaskMessage::V1(new.task),
            not_before: new.not_before,
            deliveries: 0,
        })
        .await
    }

    async fn claim(&self, _worker: &str, lease: Duration) -> PortResult<Option<Lease>> {
        let visibility = visibility_seconds(lease);
        while let Some(stashed) = self.take_stashed() {
            // Its visibility was the stash's: make it the lease. A failure means its stash
            // visibility ran out and it went back to the queue.
            match self
                .set_visibility(&stashed.received.receipt, visibility)
                .await
            {
                Ok(()) => return Ok(Some(stashed.received.lease())),
                Err(PortError::LeaseLost) => {}
                Err(e) => return Err(e),
            }
        }
        for _ in 0..CLAIM_LOOKS {
            match self.receive(visibility, 0).await? {
                Polled::Nothing => return Ok(None),
                Polled::Due(received) => return Ok(Some(received.lease())),
                Polled::Skipped => {}
            }
        }
        Ok(None)
    }

    async fn heartbeat(&self, lease: &Lease, extend: Duration) -> PortResult<()> {
        self.set_visibility(&lease.token, visibility_seconds(extend))
            .await
    }

    async fn complete(&self, lease: &Lease) -> PortResult<()> {
        self.delete(&lease.token).await
    }

    /// Sends the job again, due at `at`, then deletes the claimed message (a crash between the
    /// two leaves a duplicate, which processing tolerates).
    async fn release(&self, lease: &Lease, at: DateTime<Utc>) -> PortResult<()> {
        self.send(&JobMessage {
            id: lease.id,
            task: TaskMessage::V1(lease.task.clone()),
            not_before: at,
            deliveries: lease.deliveries,
        })
        .await?;
        self.delete(&lease.token).await
    }

    async fn dead_letter(&self, lease: &Lease, reason: &str) -> PortResult<()> {
        let job = JobMessage {
            id: lease.id,
            task: TaskMessage::V1(lease.task.clone()),
            not_before: Utc::now(),
            deliveries: lease.deliveries,
        };
        send_with_reason(
            &self.client,
            &self.dead_letter_queue_url,
            job.body(),
            reason,
        )
        .await?;
        self.delete(&lease.token).await
    }

    /// Long-polls for a message (at most `wait_seconds` per request) and keeps it for the next
    /// claim, which sets its visibility to the lease. A kept message nobody claims (the worker
    /// shut down), or one a poll returns after this future was dropped, stays invisible for 30 s
    /// and then reappears, one receive further towards the redrive policy's `maxReceiveCount`.
    async fn wait_for_work(&self, max_wait: Duration) {
        let deadline = Instant::now() + max_wait;
        loop {
            if !self.stash_is_empty() {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            // Whole seconds: SQS long polls are.
            let wait = left.min(self.wait).as_secs();
            if wait == 0 {
                tokio::time::sleep(left).await;
                return;
            }
            let visibility = visibility_seconds(STASH_VISIBILITY);
            // `wait` <= 20, so the cast is exact.
            match self.receive(visibility, wait as i32).await {
                Ok(Polled::Due(received)) => {
                    self.stash(received);
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "waiting for work failed");
                    tokio::time::sleep(deadline.saturating_duration_since(Instant::now())).await;
                    return;
                }
            }
        }
    }

    /// `queued` counts visible and delayed messages (jobs hidden until a `not_before` more than
    /// 15 minutes away count as `running`), `running` the messages in flight, `dead` the
    /// dead-letter queue's messages. SQS's figures are approximate; there is no oldest age.
    async fn stats(&self) -> PortResult<QueueStats> {
        let (main, dead) = tokio::join!(
            self.queue_counts(&self.queue_url),
            self.queue_counts(&self.dead_letter_queue_url)
        );
        let ((visible, delayed, in_flight), (dead_visible, dead_delayed, dead_in_flight)) =
            (main?, dead?);
        Ok(QueueStats {
            queued: visible + delayed,
            running: in_flight,
            dead: dead_visible + dead_delayed + dead_in_flight,
            oldest_queued_seconds: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys_and_defaults() {
        let config: SqsConfig = serde_json::from_value(serde_json::json!({
            "queue_url": "https://sqs.eu-west-1.amazonaws.com/1/jobs",
            "dead_letter_queue_url": "https://sqs.eu-west-1.amazonaws.com/1/jobs-dead",
            "region": "eu-west-1",
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.wait_seconds, 20);
        assert_eq!(config.client().region.as_deref(), Some("eu-west-1"));
        assert_eq!(config.client().endpoint, None);
        let unknown = serde_json::from_value::<SqsConfig>(serde_json::json!({
            "queue_url": "q", "dead_letter_queue_url": "d", "visibility": 3,
        }));
        assert!(unknown.is_err(), "unknown keys are refused");
    }

    #[test]
    fn delays_are_whole_seconds_up_to_fifteen_minutes() {
        let now = Utc::now();
        let after = |ms: i64| delay_seconds(now + chrono::TimeDelta::milliseconds(ms), now);
        assert_eq!(after(-5_000), 0);
        assert_eq!(after(0), 0);
        assert_eq!(after(1), 1);
        assert_eq!(after(2_500), 3);
        assert_eq!(after(900_000), 900);
        assert_eq!(after(3_600_000), 900);
    }

    fn sample() -> TaskMessage {
        TaskMessage::V1(vidsnap_domain::Task {
            job: vidsnap_domain::JobId::new(),
            step: "frames".to_owned(),
            attempt: 2,
        })
    }

    #[test]
    fn message_bodies() {
        let job = JobMessage {
            id: TaskId::new(),
            task: sample(),
            not_before: Utc::now(),
            deliveries: 2,
        };
        let back: JobMessage = serde_json::from_str(&job.body()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, job);
        // Hand-written bodies without `deliveries`.
        let TaskMessage::V1(task) = &job.task;
        let body = format!(
            r#"{{"v":"1","id":"{}","job":"{}","step":"frames","attempt":2,"not_before":"2026-01-01T00:00:00Z"}}"#,
            job.id, task.job
        );
        let old: JobMessage = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(old.deliveries, 0);
    }

    #[test]
    fn leases_count_earlier_deliveries() {
        let received = Received {
            job: JobMessage {
                id: TaskId::new(),
                task: sample(),
                not_before: Utc::now(),
                deliveries: 3,
            },
            receipt: "handle".into(),
            receives: 2,
        };
        let lease = received.lease();
        assert_eq!((lease.deliveries, lease.token.as_str()), (5, "handle"));
    }
}
