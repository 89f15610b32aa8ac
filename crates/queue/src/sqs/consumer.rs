//! The consumer of S3 event notifications: "object created" records become uploads. The same
//! queue takes job requests (seed 004's `{"recordingID", "callEndingTimestamp"}`): a message
//! that is not an S3 event goes to the [`RequestListener`] when one is set.

use std::{sync::Arc, time::Duration};

use aws_sdk_sqs::{
    Client,
    types::{Message, MessageSystemAttributeName, QueueAttributeName},
};
use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use vidsnap_domain::{
    PortError, PortResult, RequestError, RequestListener, RequestOutcome, UploadListener,
    UploadOutcome, UserId, VideoId,
};

use super::{
    client::{
        MAX_VISIBILITY_SECONDS, MAX_WAIT_SECONDS, SqsClientConfig, SqsConfigError, check_queue_url,
        check_range, receipt_error, send_with_reason, unavailable,
    },
    events::{ObjectCreated, Record, S3Message, parse_message, single_record_message},
};

/// Where the S3 events arrive and how to treat them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3EventsConfig {
    /// The queue the bucket's `s3:ObjectCreated:*` notifications go to: a standard queue with a
    /// redrive policy (to `dead_letter_queue_url`, `maxReceiveCount` e.g. 5), so a message whose
    /// handling keeps failing ends there.
    pub queue_url: String,
    /// Where records that are not uploads of known videos go (as one-record S3 events, with the
    /// `reason` message attribute: `unknown-video`, `bad-key`, `wrong-bucket`,
    /// `not-an-s3-event`), and job requests that can never make a job (as received, with
    /// `reason` `unknown-message` or `invalid-argument`).
    pub dead_letter_queue_url: String,
    /// The longest single long poll, in seconds (1 to 20). A long poll returns as soon as a
    /// message arrives, and shutdown does not wait for it.
    #[serde(default = "default_wait_seconds")]
    pub wait_seconds: u32,
    /// How long a received message stays invisible to other consumers, in seconds; extended
    /// every third of it while the message is being handled. A message left after a transient
    /// failure reappears after at most this.
    #[serde(default = "default_visibility_seconds")]
    pub visibility_seconds: u32,
    /// The bucket uploads go to. When set, records of other buckets are dead-lettered
    /// (`wrong-bucket`).
    #[serde(default)]
    pub bucket: Option<String>,
    /// The storage's key prefix (`[storage] prefix`), removed from event keys; keys outside it
    /// are dead-lettered (`bad-key`).
    #[serde(default)]
    pub key_prefix: Option<String>,
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

fn default_visibility_seconds() -> u32 {
    60
}

impl S3EventsConfig {
    /// A configuration for these queues with every default.
    pub fn new(queue_url: impl Into<String>, dead_letter_queue_url: impl Into<String>) -> Self {
        Self {
            queue_url: queue_url.into(),
            dead_letter_queue_url: dead_letter_queue_url.into(),
            wait_seconds: default_wait_seconds(),
            visibility_seconds: default_visibility_seconds(),
            bucket: None,
            key_prefix: None,
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

impl std::fmt::Debug for S3EventsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3EventsConfig")
            .field("queue_url", &self.queue_url)
            .field("dead_letter_queue_url", &self.dead_letter_queue_url)
            .field("wait_seconds", &self.wait_seconds)
            .field("visibility_seconds", &self.visibility_seconds)
            .field("bucket", &self.bucket)
            .field("key_prefix", &self.key_prefix)
            .field("client", &self.client())
            .finish()
    }
}

/// Messages still being handled at shutdown get this long to finish; then they are left to
/// reappear (handling is idempotent).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Receive failures are retried after a delay doubling from the first to the second.
const RETRY_DELAYS: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

/// What becomes of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    /// Every record's outcome is recorded.
    Delete,
    /// A transient failure: the message reappears after its visibility timeout.
    Leave,
}

/// Consumes S3 event notifications from SQS and tells the [`UploadListener`] about every
/// object created. Messages are handled in batches of up to 10, concurrently.
pub struct S3EventConsumer {
    client: Client,
    queue_url: String,
    dead_letter_queue_url: String,
    wait_seconds: i32,
    visibility_seconds: i32,
    bucket: Option<String>,
    /// Without slashes at either end; empty for none.
    key_prefix: String,
    listener: Arc<dyn UploadListener>,
    requests: Option<Arc<dyn RequestListener>>,
}

impl std::fmt::Debug for S3EventConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3EventConsumer")
            .field("queue_url", &self.queue_url)
            .field("dead_letter_queue_url", &self.dead_letter_queue_url)
            .field("wait_seconds", &self.wait_seconds)
            .field("visibility_seconds", &self.visibility_seconds)
            .field("bucket", &self.bucket)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

impl S3EventConsumer {
    /// Checks the configuration and builds the client; nothing is sent until [`Self::run`].
    pub async fn new(
        config: &S3EventsConfig,
        listener: Arc<dyn UploadListener>,
    ) -> Result<Self, SqsConfigError> {
        check_queue_url("queue_url", &config.queue_url)?;
        check_queue_url("dead_letter_queue_url", &config.dead_letter_queue_url)?;
        check_range("wait_seconds", config.wait_seconds, 1, MAX_WAIT_SECONDS)?;
        check_range(
            "visibility_seconds",
            config.visibility_seconds,
            1,
            MAX_VISIBILITY_SECONDS,
        )?;
        let bucket = config
            .bucket
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(str::to_owned);
        Ok(Self {
            client: config.client().client().await?,
            queue_url: config.queue_url.trim().to_owned(),
            dead_letter_queue_url: config.dead_letter_queue_url.trim().to_owned(),
            // Both were checked to fit.
            wait_seconds: config.wait_seconds as i32,
            visibility_seconds: config.visibility_seconds as i32,
            bucket,
            key_prefix: config
                .key_prefix
                .as_deref()
                .unwrap_or("")
                .trim_matches('/')
                .to_owned(),
            listener,
            requests: None,
        })
    }

    /// The consumer, also turning messages that are not S3 events into jobs (`[[intake]]`).
    #[must_use]
    pub fn with_requests(mut self, requests: Arc<dyn RequestListener>) -> Self {
        self.requests = Some(requests);
        self
    }

    /// The ARN of the queue this consumer reads (what a bucket notification must name).
    pub async fn queue_arn(&self) -> PortResult<String> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| unavailable("GetQueueAttributes", &e))?;
        output
            .attributes
            .unwrap_or_default()
            .remove(&QueueAttributeName::QueueArn)
            .ok_or_else(|| PortError::Unavailable("the queue has no QueueArn attribute".into()))
    }

    /// Long-polls the queue and handles what arrives until `shutdown`. Never gives up: SQS
    /// failures are logged and retried after a delay (1 s doubling to 30 s). On shutdown it
    /// returns at once when idle; messages being handled get a few seconds to finish.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(queue = %self.queue_url, "consuming S3 event notifications");
        let mut delay = RETRY_DELAYS.0;
        loop {
            let received = tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                received = self.receive() => received,
            };
            let messages = match received {
                Ok(messages) => {
                    delay = RETRY_DELAYS.0;
                    messages
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?delay, "receiving S3 events failed");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(RETRY_DELAYS.1);
                    continue;
                }
            };
            let handled = join_all(messages.into_iter().map(|m| self.handle(m)));
            let deadline = async {
                shutdown.cancelled().await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            };
            tokio::select! {
                _ = handled => {}
                () = deadline => {
                    tracing::warn!("shutting down: leaving S3 events being handled to reappear");
                    return;
                }
            }
        }
    }

    async fn receive(&self) -> PortResult<Vec<Message>> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(self.visibility_seconds)
            .wait_time_seconds(self.wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| unavailable("ReceiveMessage", &e))?;
        Ok(output.messages.unwrap_or_default())
    }

    /// Handles one message, keeping it invisible meanwhile, and deletes it once settled.
    async fn handle(&self, message: Message) {
        let id = message.message_id.unwrap_or_default();
        let receives = message
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .cloned()
            .unwrap_or_default();
        let Some(receipt) = message.receipt_handle else {
            return;
        };
        // When SQS first took the message: the same on every delivery.
        let sent_at = message
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
            .and_then(|millis| millis.parse::<i64>().ok())
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .unwrap_or_else(Utc::now);
        let body = message.body.unwrap_or_default();
        let settled = tokio::select! {
            settled = self.settle(&id, body, sent_at) => settled,
            () = self.keep_invisible(&id, &receipt) => Settled::Leave,
        };
        match settled {
            Settled::Delete => {
                let deleted = self
                    .client
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(&receipt)
                    .send()
                    .await;
                if let Err(e) = deleted {
                    // It comes back and is handled again: harmless, uploads are idempotent.
                    let e = receipt_error("DeleteMessage", &e);
                    tracing::warn!(message = %id, error = %e, "cannot delete a handled S3 event");
                }
            }
            Settled::Leave => {
                tracing::warn!(message = %id, receives, "message left for redelivery");
            }
        }
    }

    /// Extends the message's visibility every third of it, forever (the caller stops it).
    async fn keep_invisible(&self, id: &str, receipt: &str) {
        let every = Duration::from_secs(self.visibility_seconds.unsigned_abs().into()) / 3;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let extended = self
                .client
                .change_message_visibility()
                .queue_url(&self.queue_url)
                .receipt_handle(receipt)
                .visibility_timeout(self.visibility_seconds)
                .send()
                .await;
            if let Err(e) = extended {
                let e = receipt_error("ChangeMessageVisibility", &e);
                tracing::warn!(message = %id, error = %e, "cannot extend an S3 event's visibility");
            }
        }
    }

    /// Handles every record of a message body.
    async fn settle(&self, id: &str, body: String, sent_at: DateTime<Utc>) -> Settled {
        match parse_message(&body) {
            Err(_)
                if !is_s3_shaped(&body)
                    && let Some(requests) = &self.requests =>
            {
                self.request(requests.as_ref(), id, body, sent_at).await
            }
            Err(e) => {
                tracing::warn!(message = %id, error = %e, "dead-lettering a message that is not an S3 event");
                self.dead_letter(body, "not-an-s3-event").await
            }
            Ok(S3Message::Test) => {
                tracing::info!(message = %id, "S3 test event: the notification configuration works");
                count("test-event");
                Settled::Delete
            }
            Ok(S3Message::Records(records)) => {
                let mut settled = Settled::Delete;
                for record in records {
                    if self.record(record).await == Settled::Leave {
                        settled = Settled::Leave;
                    }
                }
                settled
            }
        }
    }

    /// Hands a job request to the listener: `Delete` once it made its job or was dead-lettered.
    async fn request(
        &self,
        requests: &dyn RequestListener,
        id: &str,
        body: String,
        sent_at: DateTime<Utc>,
    ) -> Settled {
        match requests.requested(&body, sent_at).await {
            Ok(RequestOutcome::Created(job)) => {
                tracing::info!(message = %id, %job, "job request: job created");
                crate::requests::count("created");
                Settled::Delete
            }
            Ok(RequestOutcome::Duplicate(job)) => {
                tracing::info!(message = %id, %job, "job request delivered again: its job exists");
                crate::requests::count("duplicate");
                Settled::Delete
            }
            Err(RequestError::Refused { reason, message }) => {
                tracing::warn!(message = %id, reason, why = %message, "dead-lettering a job request");
                crate::requests::count(reason);
                self.dead_letter(body, reason).await
            }
            Err(RequestError::Retry(why)) => {
                tracing::warn!(message = %id, %why, "job request left for redelivery");
                crate::requests::count("retry");
                Settled::Leave
            }
        }
    }

    /// Handles one record: `Delete` when its outcome is recorded.
    async fn record(&self, record: Record) -> Settled {
        let created = match record {
            Record::Created(created) => created,
            Record::Other { event_name } => {
                tracing::debug!(event = %event_name, "ignoring an S3 event that is no upload");
                count("ignored");
                return Settled::Delete;
            }
            Record::Malformed { raw, why } => {
                tracing::warn!(why, "dead-lettering a malformed S3 event record");
                return self
                    .dead_letter(single_record_message(&raw), "not-an-s3-event")
                    .await;
            }
        };
        let key = match self.upload_key(&created) {
            Ok(key) => key,
            Err(reason) => return self.refuse(&created, reason).await,
        };
        match self.listener.uploaded(key, created.size).await {
            Ok(outcome) => {
                let label = match outcome {
                    UploadOutcome::Queued => "queued",
                    UploadOutcome::Duplicate => "duplicate",
                    UploadOutcome::NotAnUpload => "not-an-upload",
                };
                if outcome == UploadOutcome::Queued {
                    tracing::info!(key, size = created.size, outcome = label, "S3 upload event");
                } else {
                    // Repeated events, and the outputs written beside each video.
                    tracing::debug!(key, size = created.size, outcome = label, "S3 upload event");
                }
                count(label);
                Settled::Delete
            }
            Err(PortError::NotFound) => self.refuse(&created, not_found_reason(key)).await,
            Err(e) => {
                tracing::warn!(key, error = %e, "handling an S3 upload event failed; it will be retried");
                count("error");
                Settled::Leave
            }
        }
    }

    /// The key relative to the storage prefix, or why the record is not an upload of ours.
    fn upload_key<'a>(&self, created: &'a ObjectCreated) -> Result<&'a str, &'static str> {
        if self.bucket.as_ref().is_some_and(|b| *b != created.bucket) {
            return Err("wrong-bucket");
        }
        strip_prefix(&created.key, &self.key_prefix).ok_or("bad-key")
    }

    async fn refuse(&self, created: &ObjectCreated, reason: &'static str) -> Settled {
        tracing::warn!(
            key = %created.key,
            bucket = %created.bucket,
            outcome = reason,
            "S3 upload event dead-lettered"
        );
        self.dead_letter(single_record_message(&created.raw), reason)
            .await
    }

    /// Sends `body` to the dead-letter queue: `Delete` once it is there.
    async fn dead_letter(&self, body: String, reason: &'static str) -> Settled {
        match send_with_reason(&self.client, &self.dead_letter_queue_url, body, reason).await {
            Ok(()) => {
                count(reason);
                Settled::Delete
            }
            Err(e) => {
                tracing::warn!(reason, error = %e, "dead-lettering an S3 event failed");
                count("error");
                Settled::Leave
            }
        }
    }
}

fn count(outcome: &'static str) {
    metrics::counter!("vidsnap_s3_events_total", "outcome" => outcome).increment(1);
}

/// Whether `body` looks like an S3 event or SNS envelope (malformed or not): those are never
/// job requests, and keep being dead-lettered as `not-an-s3-event`.
fn is_s3_shaped(body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body).is_ok_and(|v| {
        let text = |field: &str| v.get(field).and_then(serde_json::Value::as_str);
        v.get("Records").is_some()
            || text("Type") == Some("Notification")
            || text("Event").is_some_and(|e| e.starts_with("s3:"))
    })
}

/// `key` without `prefix/`; `None` when it is outside the prefix. An empty prefix keeps every
/// key.
fn strip_prefix<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(key);
    }
    key.strip_prefix(prefix)?.strip_prefix('/')
}

/// Why the listener did not know an upload key: `unknown-video` for a well-formed
/// `{user}/{video}/{file}` key, `bad-key` for anything else.
fn not_found_reason(key: &str) -> &'static str {
    let mut parts = key.splitn(3, '/');
    let well_formed = matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(user), Some(video), Some(file))
            if user.parse::<UserId>().is_ok()
                && video.parse::<VideoId>().is_ok()
                && !file.is_empty()
    );
    if well_formed {
        "unknown-video"
    } else {
        "bad-key"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys_and_defaults() {
        let config: S3EventsConfig = serde_json::from_value(serde_json::json!({
            "queue_url": "https://sqs.eu-west-1.amazonaws.com/1/uploads",
            "dead_letter_queue_url": "https://sqs.eu-west-1.amazonaws.com/1/uploads-dead",
            "secret_access_key": "s", "access_key_id": "a",
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((config.wait_seconds, config.visibility_seconds), (20, 60));
        assert_eq!(config.client().secret_access_key.as_deref(), Some("s"));
        assert_eq!((config.bucket, config.key_prefix), (None, None));
        let unknown = serde_json::from_value::<S3EventsConfig>(serde_json::json!({
            "queue_url": "q", "dead_letter_queue_url": "d", "prefix": "p",
        }));
        assert!(unknown.is_err(), "unknown keys are refused");
    }

    #[test]
    fn s3_shaped_bodies_are_never_job_requests() {
        for body in [
            r#"{"Records": "oops"}"#,
            r#"{"Type": "Notification", "Message": "{}"}"#,
            r#"{"Event": "s3:TestEvent"}"#,
        ] {
            assert!(is_s3_shaped(body), "{body}");
        }
        for body in [
            r#"{"recordingID": "r-1", "callEndingTimestamp": "00:00:14"}"#,
            r#"{"Type": "call", "Event": "ended"}"#,
            "not json",
        ] {
            assert!(!is_s3_shaped(body), "{body}");
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(strip_prefix("u/v/f.mp4", ""), Some("u/v/f.mp4"));
        assert_eq!(strip_prefix("prod/u/v/f.mp4", "prod"), Some("u/v/f.mp4"));
        assert_eq!(
            strip_prefix("a/b/prod/u/v/f.mp4", "a/b/prod"),
            Some("u/v/f.mp4")
        );
        assert_eq!(strip_prefix("production/u/v/f.mp4", "prod"), None);
        assert_eq!(strip_prefix("u/v/f.mp4", "prod"), None);
    }

    #[test]
    fn reasons_for_keys_the_listener_does_not_know() {
        let (user, video) = (UserId::new(), VideoId::new());
        assert_eq!(
            not_found_reason(&format!("{user}/{video}/clip one.mp4")),
            "unknown-video"
        );
        assert_eq!(
            not_found_reason(&format!("{user}/{video}/frames/1.jpg")),
            "unknown-video"
        );
        for key in [
            "clip.mp4".to_owned(),
            "a/b/c.mp4".to_owned(),
            format!("{user}/{video}/"),
            format!("{user}/{video}"),
            format!("{user}/not-a-uuid/clip.mp4"),
        ] {
            assert_eq!(not_found_reason(&key), "bad-key", "{key}");
        }
    }
}
