//! RabbitMQ: the shared queue contract, then what is AMQP's own: confirms and acks, delays,
//! dead letters, prefetch, worker death, lost connections, the consumer-timeout hand-over,
//! malformed messages and processes that only enqueue.
//!
//! The broker is `VIDSNAP_TEST_AMQP_URL` if set, else that key in `.services/env` (written by
//! `scripts/test-services.sh`; `$VIDSNAP_SERVICES_DIR/env` when that is set), else the machine's
//! RabbitMQ on `amqp://guest:guest@127.0.0.1:5672/%2f`. Without a broker every test here fails.
//! Each test uses queues of its own (`vidsnap-test-{uuid}`), deleted when it ends, pass or fail.

#![allow(clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::Utc;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    options::{
        BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
        ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable},
};
use tokio::{
    net::{TcpListener, TcpStream},
    task::{AbortHandle, JoinHandle},
};
use vidsnap_domain::{JobQueue, Lease, NewTask, PortError, Task};
use vidsnap_queue::amqp::{AmqpConfig, AmqpQueue, REASON_HEADER};

/// How long a test waits for something the broker does asynchronously.
const PATIENCE: Duration = Duration::from_secs(30);
/// A lease that never runs out during a test.
const LONG: Duration = Duration::from_secs(300);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

// --- the broker ------------------------------------------------------------------------------

const URL_VAR: &str = "VIDSNAP_TEST_AMQP_URL";

pub(crate) fn broker_url() -> String {
    if let Ok(url) = std::env::var(URL_VAR)
        && !url.is_empty()
    {
        return url;
    }
    let env_file = std::env::var_os("VIDSNAP_SERVICES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.services"))
        .join("env");
    let key = format!("{URL_VAR}=");
    std::fs::read_to_string(env_file)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix(&key).map(|url| url.trim().to_owned()))
        })
        .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

pub(crate) async fn admin_connection(url: &str) -> Connection {
    let connecting = Connection::connect(url, ConnectionProperties::default());
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => panic!(
            "RabbitMQ at {url} does not answer ({error}): these tests need a real broker. Run \
             scripts/test-services.sh (make test does), or set {URL_VAR}, then run them again."
        ),
        Err(_) => panic!(
            "RabbitMQ at {url} did not answer within {CONNECT_TIMEOUT:?}: run \
             scripts/test-services.sh (make test does), or set {URL_VAR}."
        ),
    }
}

/// One test's queue name and every broker object made for it, deleted when dropped (also when
/// the test fails).
struct Scratch {
    url: String,
    name: String,
    admin: Connection,
    /// Hold queues the test made (the main, dead and delay queues are always deleted).
    extra: Mutex<Vec<String>>,
}

impl Scratch {
    async fn new() -> Self {
        let url = broker_url();
        let admin = admin_connection(&url).await;
        Self {
            name: format!("vidsnap-test-{}", uuid::Uuid::new_v4().simple()),
            url,
            admin,
            extra: Mutex::default(),
        }
    }

    fn config(&self) -> AmqpConfig {
        AmqpConfig {
            url: self.url.clone(),
            queue: self.name.clone(),
            ..AmqpConfig::default()
        }
    }

    async fn queue(&self, prefetch: u16) -> AmqpQueue {
        self.queue_with(&self.config(), prefetch).await
    }

    async fn queue_with(&self, config: &AmqpConfig, prefetch: u16) -> AmqpQueue {
        AmqpQueue::connect(config, prefetch)
            .await
            .unwrap_or_else(|e| panic!("connecting the queue: {e:?}"))
    }

    fn track(&self, queue: String) {
        self.extra.lock().unwrap().push(queue);
    }

    fn dead(&self) -> String {
        format!("{}.dead", self.name)
    }

    fn hold(&self, lease: &Lease) -> String {
        format!("{}.hold.{}.{}", self.name, lease.id, lease.token)
    }

    async fn channel(&self) -> Channel {
        self.admin.create_channel().await.unwrap()
    }

    /// `(ready messages, consumers)` of a queue, `None` when it does not exist.
    async fn count(&self, queue: &str) -> Option<(u32, u32)> {
        // A passive declare of a missing queue closes its channel: one channel per look.
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        self.channel()
            .await
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
            .ok()
            .map(|q| (q.message_count(), q.consumer_count()))
    }

    /// Publishes raw bytes to the main queue, confirmed.
    async fn publish_raw(&self, body: &[u8]) {
        let channel = self.channel().await;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let confirm = channel
            .basic_publish(
                "".into(),
                self.name.as_str().into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
    }

    /// Takes the next dead letter: its body and reason.
    async fn next_dead(&self) -> (Vec<u8>, Option<String>) {
        let channel = self.channel().await;
        let message = channel
            .basic_get(self.dead().into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("a dead letter");
        message.ack(BasicAckOptions::default()).await.unwrap();
        let reason = message
            .properties
            .headers()
            .as_ref()
            .and_then(|headers| headers.inner().get(REASON_HEADER).cloned())
            .map(|value| match value {
                AMQPValue::LongString(text) => text.to_string(),
                other => format!("{other:?}"),
            });
        (message.delivery.data.clone(), reason)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let url = self.url.clone();
        let name = self.name.clone();
        let mut queues = vec![name.clone(), format!("{name}.dead")];
        // Every delay queue a delay of up to a minute can use (1..=16 s, then rounded to four
        // significant bits); deleting a missing queue is fine.
        let delays = (1..=16)
            .chain((18..=32).step_by(2))
            .chain((36..=64).step_by(4));
        queues.extend(delays.map(|seconds| format!("{name}.retry.{seconds}")));
        queues.extend(self.extra.lock().unwrap().drain(..));
        // Drop runs inside the test's runtime, which cannot be blocked on: use a runtime of our
        // own on a thread of our own.
        let cleaned = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let connection = admin_connection(&url).await;
                for queue in queues {
                    let channel = connection.create_channel().await.unwrap();
                    let deleted = channel
                        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                        .await;
                    if let Err(error) = deleted {
                        eprintln!("cannot delete the test queue {queue}: {error}");
                    }
                }
                let channel = connection.create_channel().await.unwrap();
                let dlx = format!("{name}.dlx");
                let deleted = channel
                    .exchange_delete(dlx.as_str().into(), ExchangeDeleteOptions::default())
                    .await;
                if let Err(error) = deleted {
                    eprintln!("cannot delete the test exchange {dlx}: {error}");
                }
                let _ = connection.close(200, "done".into()).await;
            });
        })
        .join();
        if cleaned.is_err() {
            eprintln!("cleaning up the test queues of {} failed", self.name);
        }
    }
}

// --- helpers ---------------------------------------------------------------------------------

fn job_due_in(task: Task, delay: Duration) -> NewTask {
    NewTask {
        task,
        not_before: Utc::now() + delay,
    }
}

fn job(task: Task) -> NewTask {
    job_due_in(task, Duration::ZERO)
}

/// Claims (with `lease`) until a job arrives, waiting with `wait_for_work`.
async fn claim_within(queue: &dyn JobQueue, lease: Duration, patience: Duration) -> Lease {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(lease) = queue.claim("w", lease).await.unwrap() {
            return lease;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no job arrived within {patience:?}");
        queue.wait_for_work(left.min(Duration::from_secs(1))).await;
    }
}

/// Claims for `period` and panics if anything arrives.
async fn nothing_within(queue: &dyn JobQueue, period: Duration, why: &str) {
    let deadline = Instant::now() + period;
    loop {
        if let Some(lease) = queue.claim("w", LONG).await.unwrap() {
            panic!("{why}: got {lease:?}");
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        queue.wait_for_work(left).await;
    }
}

/// Retries `attempt` every 50 ms until it yields, for at most [`PATIENCE`].
async fn eventually<T, Fut>(what: &str, mut attempt: impl FnMut() -> Fut) -> T
where
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_lease_lost(result: Result<(), PortError>, what: &str) {
    assert!(
        matches!(result, Err(PortError::LeaseLost)),
        "{what}: expected LeaseLost, got {result:?}"
    );
}

// --- the shared contract ---------------------------------------------------------------------

mod contract {
    use std::sync::Arc;

    use tempfile::TempDir;
    use vidsnap_domain::{JobQueue, Repository};

    use super::Scratch;

    /// Two processes' handles (prefetch 2 each) on one new queue, and a repository.
    async fn fresh() -> (
        Arc<dyn JobQueue>,
        Arc<dyn JobQueue>,
        Arc<dyn Repository>,
        (Scratch, TempDir),
    ) {
        let scratch = Scratch::new().await;
        let one = Arc::new(scratch.queue(2).await);
        let other = Arc::new(scratch.queue(2).await);
        let (repo, dir) = crate::repository().await;
        (one, other, repo, (scratch, dir))
    }

    vidsnap_queue::queue_contract_tests!(fresh);
}

// --- AMQP's own ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_acked_only_when_completed() {
    let scratch = Scratch::new().await;
    let queue = scratch.queue(2).await;
    let task = crate::task();
    queue.enqueue(job(task.clone())).await.unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.dead), (1, 0, 0));

    let lease = claim_within(&queue, LONG, PATIENCE).await;
    assert_eq!((&lease.task, lease.deliveries), (&task, 1));
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.dead), (0, 1, 0));
    queue.heartbeat(&lease, LONG).await.unwrap();
    queue.complete(&lease).await.unwrap();
    assert_lease_lost(queue.complete(&lease).await, "completing twice");
    assert_lease_lost(
        queue.heartbeat(&lease, LONG).await,
        "heartbeat after complete",
    );
    assert_lease_lost(
        queue.release(&lease, Utc::now()).await,
        "release after complete",
    );
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.dead), (0, 0, 0));

    // Acked, not merely delivered: closing the connection requeues nothing.
    queue.close().await;
    // The broker drops the consumer asynchronously: wait for that, then nothing is back.
    let messages = eventually("the consumer gone", || async {
        match scratch.count(&scratch.name).await {
            Some((messages, 0)) => Some(messages),
            _ => None,
        }
    })
    .await;
    assert_eq!(messages, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_to_claim_is_none_and_waiting_ends() {
    let scratch = Scratch::new().await;
    let queue = scratch.queue(1).await;
    assert_eq!(queue.claim("w", LONG).await.unwrap(), None);
    let started = Instant::now();
    queue.wait_for_work(Duration::from_millis(300)).await;
    let waited = started.elapsed();
    assert!(
        (Duration::from_millis(250)..Duration::from_secs(5)).contains(&waited),
        "waited {waited:?} for nothing"
    );
    assert_eq!(queue.claim("w", LONG).await.unwrap(), None);
    queue.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_jobs_wait_in_delay_queues() {
    let scratch = Scratch::new().await;
    let queue = scratch.queue(1).await;
    let task = crate::task();

    let enqueued = Instant::now();
    queue
        .enqueue(job_due_in(task.clone(), Duration::from_millis(900)))
        .await
        .unwrap();
    assert_eq!(queue.stats().await.unwrap().queued, 0, "not due yet");
    let first = claim_within(&queue, LONG, PATIENCE).await;
    assert!(
        enqueued.elapsed() >= Duration::from_millis(900),
        "delivered {:?} after an enqueue due in 900 ms",
        enqueued.elapsed()
    );
    assert_eq!((&first.task, first.deliveries), (&task, 1));

    let delay = Duration::from_secs(2);
    let released = Instant::now();
    queue
        .release(&first, Utc::now() + chrono::TimeDelta::seconds(2))
        .await
        .unwrap();
    assert_lease_lost(
        queue.heartbeat(&first, LONG).await,
        "heartbeat after release",
    );
    nothing_within(
        &queue,
        delay - Duration::from_millis(300),
        "released until later",
    )
    .await;
    let second = claim_within(&queue, LONG, PATIENCE).await;
    assert!(
        released.elapsed() >= delay,
        "delivered {:?} after a release for {delay:?}",
        released.elapsed()
    );
    assert_eq!((second.id, second.deliveries), (first.id, 2));

    queue.release(&second, Utc::now()).await.unwrap();
    let third = claim_within(&queue, LONG, Duration::from_secs(5)).await;
    assert_eq!(
        (third.id, third.deliveries),
        (first.id, 3),
        "released for now"
    );
    queue.complete(&third).await.unwrap();
    queue.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_keep_their_reason() {
    let scratch = Scratch::new().await;
    let queue = scratch.queue(1).await;
    let task = crate::task();
    queue.enqueue(job(task.clone())).await.unwrap();
    let lease = claim_within(&queue, LONG, PATIENCE).await;
    queue
        .dead_letter(&lease, "corrupt-input: no video frames")
        .await
        .unwrap();
    assert_lease_lost(queue.complete(&lease).await, "complete after dead-letter");
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.dead), (0, 0, 1));
    nothing_within(&queue, Duration::from_millis(500), "dead jobs stay dead").await;

    let (body, reason) = scratch.next_dead().await;
    assert_eq!(reason.as_deref(), Some("corrupt-input: no video frames"));
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["job"], task.job.to_string());
    assert_eq!(body["id"], lease.id.to_string());
    assert_eq!(body["deliveries"], 1);
    queue.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_job_stays_with_its_worker_and_a_dead_workers_job_moves_on() {
    let scratch = Scratch::new().await;
    let first = scratch.queue(1).await;
    let second = scratch.queue(1).await;
    let task = crate::task();
    first.enqueue(job(task.clone())).await.unwrap();
    let lease = claim_within(&first, LONG, PATIENCE).await;
    nothing_within(
        &second,
        Duration::from_secs(1),
        "another worker gets a held job",
    )
    .await;

    // The first worker dies: its connection closes and the broker hands the job on.
    drop(first);
    let again = claim_within(&second, LONG, PATIENCE).await;
    assert_eq!((again.id, &again.task), (lease.id, &task));
    assert_eq!(again.deliveries, 2, "the redelivery counts");
    assert_ne!(again.token, lease.token);
    second.complete(&again).await.unwrap();
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_bounds_what_a_process_takes() {
    let scratch = Scratch::new().await;
    let api = scratch.queue(1).await;
    for _ in 0..3 {
        api.enqueue(job(crate::task())).await.unwrap();
    }
    let busy = scratch.queue(2).await;
    let one = claim_within(&busy, LONG, PATIENCE).await;
    let two = claim_within(&busy, LONG, PATIENCE).await;
    nothing_within(&busy, Duration::from_secs(1), "a third job with prefetch 2").await;
    assert_eq!(busy.stats().await.unwrap().running, 2);
    assert_eq!(
        scratch.count(&scratch.name).await.map(|(ready, _)| ready),
        Some(1),
        "the third job waits in the broker"
    );

    let idle = scratch.queue(1).await;
    let three = claim_within(&idle, LONG, PATIENCE).await;
    assert!(![one.id, two.id].contains(&three.id));
    busy.complete(&one).await.unwrap();
    busy.complete(&two).await.unwrap();
    idle.complete(&three).await.unwrap();
    for queue in [api, busy, idle] {
        queue.close().await;
    }
}

/// A job running past the broker's consumer timeout is handed over to a hold queue: no other
/// worker gets it while its worker heartbeats, and it completes once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_outliving_the_consumer_timeout_are_held_by_heartbeats() {
    let scratch = Scratch::new().await;
    let config = AmqpConfig {
        consumer_timeout_seconds: 2,
        ..scratch.config()
    };
    let holder = scratch.queue_with(&config, 2).await;
    let other = scratch.queue(1).await;
    let lease_time = Duration::from_secs(1);
    let beat = lease_time / 3;
    holder.enqueue(job(crate::task())).await.unwrap();
    let lease = claim_within(&holder, lease_time, PATIENCE).await;
    let hold = scratch.hold(&lease);
    scratch.track(hold.clone());
    let claimed = Instant::now();

    // Five seconds of heartbeats: the hand-over (at 1.5 s) and about a dozen copy rotations,
    // five times the copies' lifetime. Neither the other process nor the holder's free slot
    // sees the job again.
    let mut held = false;
    while claimed.elapsed() < Duration::from_secs(5) {
        other.wait_for_work(beat).await;
        assert_eq!(
            other.claim("w", LONG).await.unwrap(),
            None,
            "a held job leaked"
        );
        assert_eq!(
            holder.claim("w", LONG).await.unwrap(),
            None,
            "a held job leaked"
        );
        holder.heartbeat(&lease, lease_time).await.unwrap();
        held |= scratch.count(&hold).await == Some((1, 0));
    }
    assert!(held, "the job was never handed over to {hold}");
    assert_eq!(scratch.count(&hold).await, Some((1, 0)), "one copy, held");
    assert_eq!(
        scratch.count(&scratch.name).await.map(|(ready, _)| ready),
        Some(0)
    );

    holder.complete(&lease).await.unwrap();
    assert_eq!(scratch.count(&hold).await, None, "the hold queue is gone");
    assert_lease_lost(holder.complete(&lease).await, "completing twice");
    nothing_within(
        &other,
        Duration::from_secs(2),
        "a completed held job came back",
    )
    .await;
    let stats = holder.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.dead), (0, 0, 0));
    holder.close().await;
    other.close().await;
}

/// A worker that dies holding a job past the consumer timeout gives it back within one lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holders_job_returns_within_a_lease() {
    let scratch = Scratch::new().await;
    let config = AmqpConfig {
        consumer_timeout_seconds: 2,
        ..scratch.config()
    };
    let holder = scratch.queue_with(&config, 1).await;
    let other = scratch.queue(1).await;
    let lease_time = Duration::from_secs(1);
    holder.enqueue(job(crate::task())).await.unwrap();
    let lease = claim_within(&holder, lease_time, PATIENCE).await;
    let hold = scratch.hold(&lease);
    scratch.track(hold.clone());
    eventually("the hand-over", || async {
        holder.heartbeat(&lease, lease_time).await.unwrap();
        (scratch.count(&hold).await == Some((1, 0))).then_some(())
    })
    .await;

    holder.close().await;
    let died = Instant::now();
    let again = claim_within(&other, LONG, PATIENCE).await;
    let returned_after = died.elapsed();
    assert_eq!(again.id, lease.id);
    assert_eq!(again.deliveries, 2);
    assert!(
        returned_after < lease_time * 3,
        "returned {returned_after:?} after its holder died, with a {lease_time:?} lease"
    );
    other.complete(&again).await.unwrap();
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_loses_the_lease_and_consuming_recovers() {
    let scratch = Scratch::new().await;
    let proxy = Proxy::start(&scratch.url).await;
    let config = AmqpConfig {
        url: proxy.url.clone(),
        ..scratch.config()
    };
    let queue = scratch.queue_with(&config, 1).await;
    let task = crate::task();
    queue.enqueue(job(task.clone())).await.unwrap();
    let lease = claim_within(&queue, LONG, PATIENCE).await;

    proxy.sever();
    eventually("the lease is lost", || async {
        match queue.heartbeat(&lease, LONG).await {
            Err(PortError::LeaseLost) => Some(()),
            Ok(()) => None,
            Err(other) => panic!("heartbeat: {other:?}"),
        }
    })
    .await;
    assert_lease_lost(queue.complete(&lease).await, "complete after the loss");

    // Both connections come back: the job is delivered again, and enqueues work.
    let again = claim_within(&queue, LONG, PATIENCE).await;
    assert_eq!((again.id, again.deliveries), (lease.id, 2));
    queue.complete(&again).await.unwrap();
    queue.enqueue(job(crate::task())).await.unwrap();
    queue
        .complete(&claim_within(&queue, LONG, PATIENCE).await)
        .await
        .unwrap();
    queue.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_kills_every_worker_ends_dead() {
    let scratch = Scratch::new().await;
    let config = AmqpConfig {
        delivery_limit: 1,
        ..scratch.config()
    };
    let api = scratch.queue_with(&config, 1).await;
    api.enqueue(job(crate::task())).await.unwrap();
    let mut deliveries = Vec::new();
    for _ in 0..2 {
        let worker = scratch.queue_with(&config, 1).await;
        deliveries.push(claim_within(&worker, LONG, PATIENCE).await.deliveries);
        worker.close().await;
    }
    assert_eq!(deliveries, [1, 2]);
    eventually("the poison job is dead", || async {
        (api.stats().await.unwrap().dead == 1).then_some(())
    })
    .await;
    let worker = scratch.queue_with(&config, 1).await;
    nothing_within(&worker, Duration::from_secs(1), "a poison job came back").await;
    let (_, reason) = scratch.next_dead().await;
    assert_eq!(reason, None, "dead-lettered by the broker, not by a worker");
    api.close().await;
    worker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_dead_lettered() {
    let scratch = Scratch::new().await;
    let queue = scratch.queue(1).await;
    scratch.publish_raw(b"{not a job").await;
    nothing_within(&queue, Duration::from_millis(500), "a malformed job").await;
    eventually("the malformed message is dead", || async {
        (queue.stats().await.unwrap().dead == 1).then_some(())
    })
    .await;
    let (body, reason) = scratch.next_dead().await;
    assert_eq!(body, b"{not a job");
    let reason = reason.expect("a reason");
    assert!(reason.starts_with("malformed job message"), "{reason}");

    // The consumer carries on.
    queue.enqueue(job(crate::task())).await.unwrap();
    let lease = claim_within(&queue, LONG, PATIENCE).await;
    queue.complete(&lease).await.unwrap();
    queue.close().await;
}

/// An operator deletes the queue: consumers are cancelled and keep trying, and the next enqueue
/// declares it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_queue_is_declared_again() {
    let scratch = Scratch::new().await;
    let api = scratch.queue(1).await;
    let worker = scratch.queue(1).await;
    eventually("the worker consumes", || async {
        assert_eq!(worker.claim("w", LONG).await.unwrap(), None);
        (scratch.count(&scratch.name).await == Some((0, 1))).then_some(())
    })
    .await;
    scratch
        .channel()
        .await
        .queue_delete(scratch.name.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    // The scenario, not a synchronisation: the next enqueue comes a while after the delete. (A
    // quorum queue declared again within milliseconds of its deletion can leave RabbitMQ 3.10's
    // consumers attached to nothing, uncancelled.)
    nothing_within(&worker, Duration::from_secs(1), "a deleted queue").await;

    let task = crate::task();
    api.enqueue(job(task.clone())).await.unwrap();
    let lease = claim_within(&worker, LONG, PATIENCE).await;
    assert_eq!(lease.task, task);
    worker.complete(&lease).await.unwrap();
    api.close().await;
    worker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_only_enqueues_never_consumes() {
    let scratch = Scratch::new().await;
    let api = scratch.queue(4).await;
    api.enqueue(job(crate::task())).await.unwrap();
    api.enqueue(job(crate::task())).await.unwrap();
    let stats = api.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running), (2, 0));
    assert_eq!(
        scratch.count(&scratch.name).await,
        Some((2, 0)),
        "no consumer, both jobs ready"
    );
    api.close().await;
}

// --- a TCP proxy whose connections can be cut --------------------------------------------------

/// Forwards connections to the broker, so a test can cut them as a network failure would.
struct Proxy {
    url: String,
    links: Arc<Mutex<Vec<AbortHandle>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(broker_url: &str) -> Self {
        let (scheme, rest) = broker_url.split_once("://").unwrap();
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((userinfo, host)) => (format!("{userinfo}@"), host),
            None => (String::new(), authority),
        };
        let upstream = if host.contains(':') {
            host.to_owned()
        } else {
            format!("{host}:5672")
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "{scheme}://{userinfo}{}{path}",
            listener.local_addr().unwrap()
        );
        let links: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = tokio::spawn({
            let links = Arc::clone(&links);
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    let upstream = upstream.clone();
                    let link = tokio::spawn(async move {
                        if let Ok(mut broker) = TcpStream::connect(&upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
                        }
                    });
                    links.lock().unwrap().push(link.abort_handle());
                }
            }
        });
        Self { url, links, accept }
    }

    /// Cuts every connection made so far; new ones still go through.
    fn sever(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.sever();
    }
}
