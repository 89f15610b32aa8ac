//! Job requests over AMQP: a producer publishes a JSON message (seed 004's
//! `{"recordingID": "r-17", "callEndingTimestamp": "00:00:14"}`) to a queue, and the
//! [`RequestListener`] (the configured `[[intake]]`s) turns it into a job.
//!
//! ```text
//!  producer ──► {queue} (quorum) ──► consumer ──► job created: ack
//!                  ▲                    │ retry (an input not stored yet, a backend down)
//!                  │                    ▼
//!   {queue}.retry.{secs} ◄── copy with x-vidsnap-attempts + 1, then ack
//!                                       │ refused, or attempts exhausted
//!                                       ▼
//!                 {queue}.dlx (fanout) ──► {queue}.dead   (reason in x-vidsnap-reason)
//! ```
//!
//! A message is acked only after its outcome is recorded: the job stored, its retry copy or its
//! dead letter confirmed by the broker. A consumer that dies before that leaves the message to
//! the broker, which delivers it again; the job's id is derived from the message and when it
//! was first taken (`x-vidsnap-sent-at`, kept on retry copies), so the second delivery finds
//! the job made and makes no other.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties,
    message::Delivery,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        BasicRejectOptions, ConfirmSelectOptions,
    },
    types::{AMQPValue, FieldTable, LongString, ShortString},
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use vidsnap_domain::{RequestError, RequestListener, RequestOutcome};

use crate::{
    amqp::{
        REASON_HEADER,
        topology::{self, Names},
    },
    chunks::header_number,
};

/// The header counting a request's tries before this copy.
pub const ATTEMPTS_HEADER: &str = "x-vidsnap-attempts";
/// The header with when the request was first taken (milliseconds since the epoch).
pub const SENT_AT_HEADER: &str = "x-vidsnap-sent-at";

/// Where job requests arrive (`[requests]`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestConfig {
    /// The broker: `amqp://user:password@host:5672/vhost`.
    pub url: String,
    /// The quorum queue producers publish requests to; `{queue}.dead` keeps the refused ones.
    pub queue: String,
    /// Requests handled at once.
    pub prefetch: u16,
    /// Tries of a request that keeps meeting a passing failure before it is dead-lettered
    /// (`retries-exhausted`), like an SQS queue's `maxReceiveCount`.
    pub max_attempts: u32,
    /// The wait before a retried request is tried again.
    pub retry_delay_seconds: u64,
}

impl Default for RequestConfig {
    fn default() -> Self {
        Self {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            queue: "vidsnap.requests".into(),
            prefetch: 4,
            max_attempts: 5,
            retry_delay_seconds: 30,
        }
    }
}

impl std::fmt::Debug for RequestConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestConfig")
            .field("url", &crate::amqp::redact(&self.url))
            .field("queue", &self.queue)
            .field("prefetch", &self.prefetch)
            .field("max_attempts", &self.max_attempts)
            .field("retry_delay_seconds", &self.retry_delay_seconds)
            .finish()
    }
}

/// Consumes job requests until shutdown, reconnecting after broker failures.
pub struct RequestConsumer {
    config: RequestConfig,
    names: Names,
    listener: Arc<dyn RequestListener>,
}

impl std::fmt::Debug for RequestConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestConsumer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What became of one delivery.
enum Settled {
    /// Recorded: ack it.
    Done,
    /// Nothing recorded (the broker failed us): hand it back.
    Requeue,
}

impl RequestConsumer {
    /// Checks the queue name; nothing is sent until [`Self::run`].
    pub fn new(
        config: RequestConfig,
        listener: Arc<dyn RequestListener>,
    ) -> Result<Self, crate::amqp::AmqpError> {
        let names = Names::new(&config.queue)?;
        Ok(Self {
            config,
            names,
            listener,
        })
    }

    /// Runs until `shutdown`; requests being handled when it comes are finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        crate::reconnecting("request consumer", &self.config.queue, &shutdown, || {
            self.session(&shutdown)
        })
        .await;
    }

    /// One connection's worth of consuming; `Ok` when shut down.
    async fn session(&self, shutdown: &CancellationToken) -> Result<(), lapin::Error> {
        let properties =
            ConnectionProperties::default().with_connection_name("vidsnap requests".into());
        let connection = Connection::connect(&self.config.url, properties).await?;
        let channel = connection.create_channel().await?;
        // Declared with no delivery limit of its own that matters: tries are counted in the
        // copies' headers. The broker's limit only stops a request that kills its consumer.
        topology::declare(&channel, &self.names, self.config.max_attempts.max(1) * 4).await?;
        channel
            .basic_qos(
                self.config.prefetch.max(1),
                BasicQosOptions { global: false },
            )
            .await?;
        let publisher = connection.create_channel().await?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let mut deliveries = channel
            .basic_consume(
                self.names.main.clone(),
                ShortString::from(format!(
                    "vidsnap-requests-{}",
                    uuid::Uuid::new_v4().simple()
                )),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(queue = %self.config.queue, "consuming job requests");
        let tasks = tokio_util::task::TaskTracker::new();
        let outcome = loop {
            tokio::select! {
                () = shutdown.cancelled() => break Ok(()),
                next = deliveries.next() => match next {
                    Some(Ok(delivery)) => {
                        let handler = Handler {
                            config: self.config.clone(),
                            names: self.names.clone(),
                            listener: Arc::clone(&self.listener),
                            publisher: publisher.clone(),
                        };
                        tasks.spawn(async move { handler.handle(delivery).await });
                    }
                    Some(Err(error)) => break Err(error),
                    None => break Ok(()),
                },
            }
        };
        tasks.close();
        tasks.wait().await;
        let _ = connection.close(200, "done".into()).await;
        outcome
    }
}

struct Handler {
    config: RequestConfig,
    names: Names,
    listener: Arc<dyn RequestListener>,
    publisher: Channel,
}

impl Handler {
    async fn handle(&self, delivery: Delivery) {
        let settled = self.settle(&delivery).await;
        let acked = match settled {
            Settled::Done => delivery.acker.ack(BasicAckOptions::default()).await,
            Settled::Requeue => {
                delivery
                    .acker
                    .reject(BasicRejectOptions { requeue: true })
                    .await
            }
        };
        if let Err(error) = acked {
            // The broker delivers it again; the job's id makes that harmless.
            tracing::warn!(%error, "cannot settle a job request");
        }
    }

    async fn settle(&self, delivery: &Delivery) -> Settled {
        let headers = delivery.properties.headers().as_ref();
        let attempts = header_number(headers, ATTEMPTS_HEADER).unwrap_or(0);
        let sent_at = header_number(headers, SENT_AT_HEADER)
            .and_then(|ms| i64::try_from(ms).ok())
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .or_else(|| {
                delivery
                    .properties
                    .timestamp()
                    .and_then(|s| i64::try_from(s).ok())
                    .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
            })
            .unwrap_or_else(Utc::now);
        let body = String::from_utf8_lossy(&delivery.data);
        match self.listener.requested(&body, sent_at).await {
            Ok(RequestOutcome::Created(job)) => {
                tracing::info!(%job, "job request: job created");
                count("created");
                Settled::Done
            }
            Ok(RequestOutcome::Duplicate(job)) => {
                tracing::info!(%job, "job request delivered again: its job exists");
                count("duplicate");
                Settled::Done
            }
            Err(RequestError::Refused { reason, message }) => {
                tracing::warn!(reason, why = %message, "dead-lettering a job request");
                count(reason);
                self.dead_letter(delivery, reason).await
            }
            Err(RequestError::Retry(why))
                if attempts + 1 >= u64::from(self.config.max_attempts) =>
            {
                tracing::warn!(%why, attempts = attempts + 1, "job request failed every try: dead-lettering it");
                count("retries-exhausted");
                self.dead_letter(delivery, "retries-exhausted").await
            }
            Err(RequestError::Retry(why)) => {
                tracing::warn!(%why, attempt = attempts + 1, "job request: trying again later");
                count("retry");
                self.retry(delivery, attempts + 1, sent_at).await
            }
        }
    }

    /// Publishes a copy due after the retry delay, counting this try.
    async fn retry(&self, delivery: &Delivery, attempts: u64, sent_at: DateTime<Utc>) -> Settled {
        let seconds =
            topology::delay_bucket(Duration::from_secs(self.config.retry_delay_seconds.max(1)))
                .unwrap_or(1);
        let queue = match topology::declare_delay(&self.publisher, &self.names, seconds).await {
            Ok(queue) => queue,
            Err(error) => {
                tracing::warn!(%error, "cannot declare a job request's delay queue");
                return Settled::Requeue;
            }
        };
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(
            ATTEMPTS_HEADER.into(),
            AMQPValue::LongLongInt(i64::try_from(attempts).unwrap_or(i64::MAX)),
        );
        headers.insert(
            SENT_AT_HEADER.into(),
            AMQPValue::LongLongInt(sent_at.timestamp_millis()),
        );
        let properties = delivery.properties.clone().with_headers(headers);
        self.publish(&ShortString::from(""), &queue, delivery, properties)
            .await
    }

    /// Publishes the request as received, with `reason`, to the dead-letter exchange.
    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Settled {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(
            REASON_HEADER.into(),
            AMQPValue::LongString(LongString::from(reason)),
        );
        let properties = delivery.properties.clone().with_headers(headers);
        self.publish(
            &self.names.dlx,
            &ShortString::from(""),
            delivery,
            properties,
        )
        .await
    }

    async fn publish(
        &self,
        exchange: &ShortString,
        routing_key: &ShortString,
        delivery: &Delivery,
        properties: BasicProperties,
    ) -> Settled {
        let confirm = self
            .publisher
            .basic_publish(
                exchange.clone(),
                routing_key.clone(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &delivery.data,
                properties.with_delivery_mode(2),
            )
            .await;
        let confirmed = match confirm {
            Ok(confirm) => confirm.await,
            Err(error) => Err(error),
        };
        match confirmed {
            Ok(Confirmation::Ack(None)) => Settled::Done,
            Ok(other) => {
                tracing::warn!(?other, %exchange, %routing_key, "a job request's copy was not taken");
                Settled::Requeue
            }
            Err(error) => {
                tracing::warn!(%error, %exchange, %routing_key, "cannot publish a job request's copy");
                Settled::Requeue
            }
        }
    }
}

/// Counts a job request's outcome (`vidsnap_job_requests_total`), on either transport.
pub(crate) fn count(outcome: &'static str) {
    metrics::counter!("vidsnap_job_requests_total", "outcome" => outcome).increment(1);
}
