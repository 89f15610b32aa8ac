//! Amazon SQS, in two roles.
//!
//! **The job queue** ([`SqsQueue`], a [`JobQueue`](vidsnap_domain::JobQueue)): one message per
//! job, body `{"job", "video", "not_before", "deliveries"}`. A claim receives one message with
//! the lease as its visibility timeout and the receipt handle as the lease token; heartbeats
//! change the visibility; `complete` deletes; `release` sends the job again (delayed up to SQS's
//! 15 minutes, the rest of a longer delay kept in `not_before`) and deletes the original;
//! `dead_letter` sends the job to the dead-letter queue with a `reason` message attribute and
//! deletes the original. `wait_for_work` long-polls and keeps what it receives for the next
//! claim, so idle workers neither sleep-poll nor spin; a long poll returns as soon as a message
//! arrives, so the worker's `idle_poll_seconds` can be raised to 20 with SQS at no cost in
//! latency (fewer requests).
//!
//! **The S3 event consumer** ([`S3EventConsumer`]): the bucket's `s3:ObjectCreated:*`
//! notifications arrive on a queue as S3 event JSON (optionally inside an SNS envelope); every
//! record's form-URL-decoded key goes to an [`UploadListener`](vidsnap_domain::UploadListener),
//! which queues the video's processing. Keys that are not uploads of known videos, and bodies
//! that are not S3 events, go to the events' dead-letter queue with a `reason` attribute. A
//! message is deleted only once every record's outcome is recorded, and its visibility is
//! extended while it is being handled.
//!
//! # What the queues need
//!
//! - **Standard queues.** FIFO queues are refused: they have no per-message delay, and a
//!   deduplication id per video would swallow a retry's re-enqueue within five minutes. Standard
//!   queues deliver at least once and may, rarely, deliver a message twice; both roles are
//!   idempotent (a job for a video that is no longer `queued` is completed without work; a
//!   repeated upload event is `Duplicate`). `enqueue` is not deduplicated per video as the
//!   database queue is: two enqueues of one video make two messages, the second one harmless.
//! - **A dead-letter queue each**, given as `dead_letter_queue_url`: where `dead_letter` (jobs)
//!   and unusable records (events) go, with the reason as the message attribute `reason`.
//! - **A redrive policy on each main queue** (`RedrivePolicy` with `deadLetterTargetArn` = that
//!   dead-letter queue and a `maxReceiveCount`, e.g. 5): messages whose consumer keeps dying or
//!   failing are moved there by SQS. A job's `release` sends a new message, so only deliveries
//!   that ended without an outcome (crashes, lost leases) count towards `maxReceiveCount`; the
//!   worker's own attempts and backoff are not limited by it.
//! - **The visibility timeout** is set per receive (the worker's lease; `visibility_seconds` for
//!   events), so the queue's default does not matter. SQS caps a message's visibility at
//!   12 hours from its receipt: a job cannot hold a message longer.
//! - **The events queue's access policy** must let `s3.amazonaws.com` `sqs:SendMessage` (with
//!   `aws:SourceArn` = the bucket's ARN), and the bucket's notification configuration sends
//!   `s3:ObjectCreated:*` to it. S3 sends an `s3:TestEvent` when the configuration is saved; it
//!   is deleted and logged.
//!
//! Credentials come from the configuration when given, else from the AWS environment
//! (`AWS_ACCESS_KEY_ID`…, profiles, web identity as with EKS IRSA, container credentials, EC2
//! instance metadata). `endpoint` points the client at moto, LocalStack or ElasticMQ.

mod client;
mod consumer;
pub mod events;
mod queue;

pub use client::{SqsClientConfig, SqsConfigError};
pub use consumer::{S3EventConsumer, S3EventsConfig};
pub use queue::{SqsConfig, SqsQueue};
