//! The consuming side: one connection, one channel with `basic.qos` prefetch = the worker's
//! concurrency and one manual-ack consumer on the main queue, run by a task that reconnects with
//! backoff. Deliveries wait in the [`Inbox`] until a worker claims them.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures_util::StreamExt;
use lapin::{
    Acker,
    message::Delivery,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
    },
    types::{FieldTable, ShortString},
};
use tokio::{sync::Notify, time::Instant};

use super::{
    AmqpError, Core,
    message::{self, JobMessage},
    publisher::{Role, connect},
};

const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const LONGEST_BACKOFF: Duration = Duration::from_secs(30);

/// How long a delivery may wait unclaimed before it is handed back to the broker. A worker with
/// a free slot claims within milliseconds (`wait_for_work` wakes on arrival); one still waiting
/// after this means every slot is busy (a held job no longer counts against the prefetch, so one
/// more delivery arrives) or the process stopped claiming (shutting down): another process may
/// be idle.
const UNCLAIMED_GRACE: Duration = Duration::from_secs(2);

/// A delivery waiting to be claimed.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) message: JobMessage,
    /// Deliveries of the job, this one included.
    pub(crate) deliveries: u32,
    pub(crate) acker: Acker,
    /// When it arrived: the broker's consumer timeout runs from about then.
    pub(crate) at: Instant,
}

/// Deliveries not yet claimed, and the wake-up of workers waiting for one.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    buffer: Mutex<VecDeque<Received>>,
    arrived: Notify,
}

impl Inbox {
    fn buffer(&self) -> std::sync::MutexGuard<'_, VecDeque<Received>> {
        // The buffer is consistent after every operation: a panic elsewhere cannot break it.
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The oldest delivery whose channel is still open (the others were requeued by the broker).
    pub(crate) fn pop(&self) -> Option<Received> {
        let mut buffer = self.buffer();
        while let Some(received) = buffer.pop_front() {
            if received.acker.usable() {
                return Some(received);
            }
        }
        None
    }

    fn push(&self, received: Received) {
        self.buffer().push_back(received);
        self.arrived.notify_waiters();
    }

    /// Returns when a delivery is waiting, at once if one is, or after `max_wait`.
    pub(crate) async fn wait(&self, max_wait: Duration) {
        let arrived = self.arrived.notified();
        tokio::pin!(arrived);
        // Registered before looking, so a delivery between the look and the wait still wakes it.
        arrived.as_mut().enable();
        if !self.buffer().is_empty() {
            return;
        }
        // Timing out is the ordinary outcome.
        let _ = tokio::time::timeout(max_wait, arrived).await;
    }

    fn oldest(&self) -> Option<Instant> {
        self.buffer().front().map(|received| received.at)
    }

    fn take_older_than(&self, at: Instant) -> Vec<Received> {
        let mut buffer = self.buffer();
        let mut old = Vec::new();
        while buffer.front().is_some_and(|received| received.at <= at) {
            old.extend(buffer.pop_front());
        }
        old
    }

    /// Forgets deliveries whose channel closed: the broker requeued them already.
    fn forget_lost(&self) {
        self.buffer().retain(|received| received.acker.usable());
    }
}

/// Consumes until `core.cancel`, reconnecting with exponential backoff.
pub(crate) async fn run(core: Arc<Core>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let result = session(&core, &mut backoff).await;
        core.inbox.forget_lost();
        if core.cancel.is_cancelled() {
            return;
        }
        if let Err(error) = result {
            tracing::warn!(
                queue = %core.names.main, %error, retry_in = ?backoff,
                "consuming stopped: jobs in flight on it are lost to the broker; reconnecting"
            );
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = core.cancel.cancelled() => return,
        }
        backoff = (backoff * 2).min(LONGEST_BACKOFF);
    }
}

/// One connection's worth of consuming; `Ok` only when cancelled.
async fn session(core: &Core, backoff: &mut Duration) -> Result<(), AmqpError> {
    let connection = connect(&core.config, Role::Consume).await?;
    let channel = connection
        .create_channel()
        .await
        .map_err(AmqpError::Channel)?;
    channel
        .basic_qos(core.prefetch, BasicQosOptions { global: false })
        .await
        .map_err(AmqpError::Channel)?;
    let tag = ShortString::from(format!("vidsnap-{}", uuid::Uuid::new_v4().simple()));
    let queue = core.names.main.clone();
    let consume_error = |source| AmqpError::Consume {
        queue: queue.to_string(),
        source,
    };
    let mut consumer = channel
        .basic_consume(
            queue.clone(),
            tag,
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(consume_error)?;
    *backoff = FIRST_BACKOFF;
    tracing::info!(%queue, prefetch = core.prefetch, "consuming");
    loop {
        // A delivery nobody claims goes back to the broker for other processes; it must never
        // come near the consumer timeout either, which would close the channel and requeue every
        // job running on it.
        let grace = UNCLAIMED_GRACE.min(core.handover_after());
        let stale_at = core.inbox.oldest().map(|at| at + grace);
        tokio::select! {
            () = core.cancel.cancelled() => {
                let closing = connection.close(200, "shutting down".into());
                if let Ok(Err(error)) = tokio::time::timeout(Duration::from_secs(5), closing).await {
                    tracing::debug!(%error, "closing the consuming connection");
                }
                return Ok(());
            }
            next = consumer.next() => match next {
                Some(Ok(delivery)) => receive(core, delivery).await,
                Some(Err(source)) => return Err(consume_error(source)),
                None => return Err(AmqpError::Cancelled(queue.to_string())),
            },
            () = sleep_until(stale_at) => {
                for received in core.inbox.take_older_than(Instant::now() - grace) {
                    give_back(core, received).await;
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Buffers a job, or dead-letters a message that is not one (never requeued: it would come
/// back forever).
async fn receive(core: &Core, delivery: Delivery) {
    match serde_json::from_slice::<JobMessage>(&delivery.data) {
        Ok(message) => core.inbox.push(Received {
            deliveries: message::deliveries(&message, &delivery),
            message,
            acker: delivery.acker,
            at: Instant::now(),
        }),
        Err(error) => {
            let reason = format!("malformed job message: {error}");
            let id = delivery.properties.message_id().clone();
            tracing::error!(queue = %core.names.main, message_id = ?id, %reason, "dead-lettering it");
            let properties = message::dead_properties(&reason);
            let published = core
                .publisher
                .publish(&core.names.dlx, &"".into(), &delivery.data, properties)
                .await;
            let settled = match published {
                Ok(()) => delivery.acker.ack(BasicAckOptions::default()).await,
                Err(error) => {
                    tracing::warn!(%error, "cannot dead-letter it with its reason: rejecting it into the dead-letter exchange");
                    delivery
                        .acker
                        .reject(BasicRejectOptions { requeue: false })
                        .await
                }
            };
            if let Err(error) = settled {
                tracing::warn!(%error, "settling a malformed message failed; the broker keeps it");
            }
        }
    }
}

/// Returns an unclaimed delivery to the broker as a fresh message at the back of the main queue
/// (a requeue would count as a redelivery), or requeues it if publishing fails.
async fn give_back(core: &Core, received: Received) {
    if !received.acker.usable() {
        return;
    }
    tracing::debug!(job = %received.message.id, "unclaimed: handing it back to the broker");
    let (properties, _) = message::properties();
    let published = core
        .publisher
        .publish(
            &"".into(),
            &core.names.main,
            &received.message.body(),
            properties,
        )
        .await;
    let settled = match published {
        Ok(()) => received.acker.ack(BasicAckOptions::default()).await,
        Err(error) => {
            tracing::warn!(job = %received.message.id, %error, "cannot republish it: requeueing it");
            received
                .acker
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await
        }
    };
    if let Err(error) = settled {
        tracing::warn!(job = %received.message.id, %error, "settling an unclaimed delivery failed");
    }
}
