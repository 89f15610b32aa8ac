//! Claimed jobs: each is a delivery unacked on the consuming channel, or, once it has run close to
//! the broker's consumer timeout, a copy in its own hold queue (see the module doc of `amqp`).
//! Every operation on one lease holds that lease's lock, so a heartbeat, the hand-over and the
//! job's end never interleave.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use lapin::{
    Acker,
    message::BasicGetMessage,
    options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions},
    types::ShortString,
};
use tokio::{sync::Mutex, task::AbortHandle, time::Instant};
use vidsnap_domain::{Lease, PortError, PortResult, TaskMessage};

use super::{AmqpError, Core, consumer::Received, message, message::JobMessage, topology};

/// Between failed hand-over attempts.
const HANDOVER_RETRY: Duration = Duration::from_millis(500);

/// One claimed job.
pub(crate) struct Slot {
    entry: Arc<Mutex<Entry>>,
    /// The task that hands the job over before the consumer timeout.
    keeper: AbortHandle,
}

struct Entry {
    /// The job as it is re-published (release, hold copies, dead letter): its `deliveries` are
    /// the lease's.
    message: JobMessage,
    /// How long a held copy outlives its last heartbeat: the claim's lease.
    hold_ttl: Duration,
    state: State,
}

enum State {
    /// Unacked on the consuming channel: ours while that channel is open.
    Delivered { acker: Acker },
    /// Acked; the job's copy waits in `queue` (unique to this lease), returning to the main
    /// queue unless a heartbeat replaces it in time.
    Held { queue: ShortString },
    /// Lost (the channel closed, the copy expired) or given back: nothing more to do.
    Gone,
}

impl Core {
    /// Makes a delivery a lease, and starts its keeper.
    pub(crate) fn lease(self: &Arc<Self>, received: Received, lease: Duration) -> Lease {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let message = JobMessage {
            deliveries: received.deliveries,
            ..received.message
        };
        let keep_message = message.clone();
        let entry = Arc::new(Mutex::new(Entry {
            message: keep_message,
            hold_ttl: lease.max(Duration::from_secs(1)),
            state: State::Delivered {
                acker: received.acker,
            },
        }));
        let handover_at = received.at + self.handover_after();
        let give_up_at = received.at + self.give_up_after();
        let keeper = tokio::spawn(keep(
            Arc::clone(self),
            Arc::clone(&entry),
            token.clone(),
            handover_at,
            give_up_at,
        ));
        self.slots().insert(
            token.clone(),
            Slot {
                entry,
                keeper: keeper.abort_handle(),
            },
        );
        let TaskMessage::V1(task) = message.task;
        Lease {
            id: message.id,
            task,
            deliveries: message.deliveries,
            token,
        }
    }

    fn entry(&self, lease: &Lease) -> PortResult<Arc<Mutex<Entry>>> {
        self.slots()
            .get(&lease.token)
            .map(|slot| Arc::clone(&slot.entry))
            .ok_or(PortError::LeaseLost)
    }

    /// Removes a lease for good; its keeper stops.
    fn remove(&self, lease: &Lease) -> PortResult<Arc<Mutex<Entry>>> {
        let slot = self
            .slots()
            .remove(&lease.token)
            .ok_or(PortError::LeaseLost)?;
        slot.keeper.abort();
        Ok(slot.entry)
    }

    pub(crate) async fn heartbeat(&self, lease: &Lease) -> PortResult<()> {
        let entry = self.entry(lease)?;
        let mut entry = entry.lock().await;
        let alive = match &entry.state {
            State::Delivered { acker } => Ok(acker.usable()),
            State::Held { queue } => {
                let queue = queue.clone();
                self.refresh_hold(&entry, &queue).await
            }
            State::Gone => Ok(false),
        };
        match alive {
            Ok(true) => Ok(()),
            Ok(false) => {
                tracing::warn!(job = %lease.id, "lease lost: the broker has given the job back");
                entry.state = State::Gone;
                drop(entry);
                let _ = self.remove(lease);
                Err(PortError::LeaseLost)
            }
            Err(error) => Err(unavailable(lease, "heartbeat", &error)),
        }
    }

    /// Replaces the held copy with a fresh one (a new TTL); `false` when the copy was gone (it
    /// expired into the main queue: another worker may run the job now).
    async fn refresh_hold(&self, entry: &Entry, queue: &ShortString) -> Result<bool, AmqpError> {
        // Declaring again resets the queue's expiry, and recreates it (empty) if it expired.
        self.publisher.hold_queue(queue, entry.hold_ttl).await?;
        let Some(head) = self.publisher.get(queue).await? else {
            self.drop_hold(queue).await;
            return Ok(false);
        };
        let (properties, _) = message::properties();
        let published = self
            .publisher
            .publish(&"".into(), queue, &entry.message.body(), properties)
            .await;
        settle_head(head, published.is_ok()).await;
        published.map(|()| true)
    }

    pub(crate) async fn complete(&self, lease: &Lease) -> PortResult<()> {
        self.finish(lease, "complete", Ending::Complete).await
    }

    pub(crate) async fn release(&self, lease: &Lease, at: DateTime<Utc>) -> PortResult<()> {
        self.finish(lease, "release", Ending::Release(at)).await
    }

    pub(crate) async fn dead_letter(&self, lease: &Lease, reason: &str) -> PortResult<()> {
        self.finish(lease, "dead-letter", Ending::Dead(reason))
            .await
    }

    /// Ends a lease: publishes what the ending leaves behind (nothing, the released job, the
    /// dead letter), then gives up the delivery or the held copy. Publishing first means a
    /// failure in between duplicates the job rather than losing it.
    async fn finish(&self, lease: &Lease, what: &str, ending: Ending<'_>) -> PortResult<()> {
        let entry = self.remove(lease)?;
        let mut entry = entry.lock().await;
        let state = std::mem::replace(&mut entry.state, State::Gone);
        match state {
            State::Gone => Err(PortError::LeaseLost),
            State::Delivered { acker } => {
                if !acker.usable() {
                    return Err(PortError::LeaseLost);
                }
                if let Err(error) = self.publish_ending(&entry.message, &ending).await {
                    return self
                        .settle_unpublished(lease, &acker, &ending, &error)
                        .await;
                }
                match acker.ack(BasicAckOptions::default()).await {
                    Ok(true) => Ok(()),
                    Ok(false) | Err(_) => {
                        tracing::warn!(job = %lease.id, "{what}: the delivery was lost meanwhile (the broker redelivers it)");
                        Err(PortError::LeaseLost)
                    }
                }
            }
            State::Held { queue } => {
                let head = match self.publisher.get(&queue).await {
                    Ok(head) => head,
                    Err(error) => return Err(unavailable(lease, what, &error)),
                };
                let Some(head) = head else {
                    tracing::warn!(job = %lease.id, "{what}: the held copy had expired into the main queue");
                    self.drop_hold(&queue).await;
                    return Err(PortError::LeaseLost);
                };
                let published = self.publish_ending(&entry.message, &ending).await;
                settle_head(head, published.is_ok()).await;
                match published {
                    Ok(()) => {
                        self.drop_hold(&queue).await;
                        Ok(())
                    }
                    // The copy stays: the job returns within one lease.
                    Err(error) => Err(unavailable(lease, what, &error)),
                }
            }
        }
    }

    async fn publish_ending(&self, job: &JobMessage, ending: &Ending<'_>) -> Result<(), AmqpError> {
        match ending {
            Ending::Complete => Ok(()),
            Ending::Release(at) => {
                let released = JobMessage {
                    not_before: *at,
                    ..job.clone()
                };
                self.publish_job(&released).await
            }
            Ending::Dead(reason) => {
                let properties = message::dead_properties(reason);
                self.publisher
                    .publish(&self.names.dlx, &"".into(), &job.body(), properties)
                    .await
            }
        }
    }

    /// A delivery whose ending could not be published must still be settled: left unacked, it
    /// would reach the consumer timeout, which closes the channel and requeues every job on it.
    async fn settle_unpublished(
        &self,
        lease: &Lease,
        acker: &Acker,
        ending: &Ending<'_>,
        error: &AmqpError,
    ) -> PortResult<()> {
        let (settled, result) = match ending {
            // A dead letter without its reason still ends where dead letters go.
            Ending::Dead(reason) => {
                tracing::error!(job = %lease.id, %error, %reason, "cannot publish the dead letter: rejecting the delivery into the dead-letter exchange (its reason is only in this log)");
                let settled = acker.reject(BasicRejectOptions { requeue: false }).await;
                (settled, Ok(()))
            }
            Ending::Release(_) | Ending::Complete => {
                tracing::warn!(job = %lease.id, %error, "cannot publish the released job: requeueing the delivery (due now)");
                let settled = acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await;
                (settled, Err(unavailable(lease, "release", error)))
            }
        };
        match settled {
            Ok(true) => result,
            Ok(false) | Err(_) => Err(PortError::LeaseLost),
        }
    }

    /// Publishes a job due at its `not_before`: to the main queue, or to the delay queue that
    /// makes it due then.
    pub(crate) async fn publish_job(&self, job: &JobMessage) -> Result<(), AmqpError> {
        let delay = (job.not_before - Utc::now()).to_std().unwrap_or_default();
        let queue = match topology::delay_bucket(delay) {
            None => self.names.main.clone(),
            Some(seconds) => self.publisher.delay_queue(seconds).await?,
        };
        let (properties, _) = message::properties();
        self.publisher
            .publish(&"".into(), &queue, &job.body(), properties)
            .await
    }

    /// Moves a delivery about to reach the consumer timeout into its hold queue: a copy there
    /// first, then the ack. `Ok` also when there is nothing (left) to hand over.
    async fn hand_over(&self, entry: &mut Entry, token: &str) -> Result<(), AmqpError> {
        let State::Delivered { acker } = &entry.state else {
            return Ok(());
        };
        if !acker.usable() {
            return Ok(());
        }
        let queue = self.names.hold(entry.message.id, token);
        self.publisher.hold_queue(&queue, entry.hold_ttl).await?;
        let (properties, _) = message::properties();
        self.publisher
            .publish(&"".into(), &queue, &entry.message.body(), properties)
            .await?;
        match acker.ack(BasicAckOptions::default()).await {
            Ok(true) => {
                tracing::info!(job = %entry.message.id, hold = %queue, "running past the consumer timeout: the job is held by heartbeats from now on");
                entry.state = State::Held { queue };
            }
            // Lost meanwhile: the broker requeued the delivery, so the copy must go.
            Ok(false) | Err(_) => {
                self.drop_hold(&queue).await;
                entry.state = State::Gone;
            }
        }
        Ok(())
    }

    /// Deletes a hold queue with whatever is in it (deleted messages are not dead-lettered).
    async fn drop_hold(&self, queue: &ShortString) {
        if let Err(error) = self.publisher.delete(queue).await {
            // It expires by itself once unused; its copy, if any, returns to the main queue.
            tracing::warn!(%queue, %error, "cannot delete a hold queue");
        }
    }

    /// Leases held by this process.
    pub(crate) fn running(&self) -> usize {
        self.slots().len()
    }
}

enum Ending<'a> {
    Complete,
    Release(DateTime<Utc>),
    Dead(&'a str),
}

/// Acks the hold queue's old copy once its replacement (or the job's ending) is published; puts
/// it back otherwise, keeping its expiry.
async fn settle_head(head: BasicGetMessage, replaced: bool) {
    let settled = if replaced {
        head.delivery.acker.ack(BasicAckOptions::default()).await
    } else {
        let requeue = BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        };
        head.delivery.acker.nack(requeue).await
    };
    if let Err(error) = settled {
        // The channel closed: the broker puts the old copy back itself.
        tracing::debug!(%error, "settling a held copy");
    }
}

fn unavailable(lease: &Lease, what: &str, error: &AmqpError) -> PortError {
    tracing::warn!(job = %lease.id, %error, "{what} failed");
    PortError::Unavailable(format!("{what} of job {}: {error}", lease.id))
}

/// Sleeps until the hand-over time, then hands the job over, retrying until the give-up time.
/// A job that cannot be handed over by then is requeued (its worker learns at its next
/// heartbeat): better one job redelivered than the consumer timeout closing the channel under
/// every job on it.
async fn keep(
    core: Arc<Core>,
    entry: Arc<Mutex<Entry>>,
    token: String,
    handover_at: Instant,
    give_up_at: Instant,
) {
    tokio::select! {
        () = tokio::time::sleep_until(handover_at) => {}
        () = core.cancel.cancelled() => return,
    }
    loop {
        {
            let mut entry = entry.lock().await;
            match core.hand_over(&mut entry, &token).await {
                Ok(()) => return,
                Err(error) if Instant::now() >= give_up_at => {
                    tracing::error!(job = %entry.message.id, %error, "cannot hand the job over before the consumer timeout: requeueing it");
                    if let State::Delivered { acker } = &entry.state {
                        let requeue = BasicNackOptions {
                            requeue: true,
                            ..BasicNackOptions::default()
                        };
                        let _ = acker.nack(requeue).await;
                    }
                    entry.state = State::Gone;
                    return;
                }
                Err(error) => {
                    tracing::warn!(job = %entry.message.id, %error, "handing the job over failed; retrying");
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(HANDOVER_RETRY) => {}
            () = core.cancel.cancelled() => return,
        }
    }
}
