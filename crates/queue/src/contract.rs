//! The behaviour every [`JobQueue`] backend shares, written once and run against each (the
//! database queue on SQLite, RabbitMQ, SQS): a job is delivered to one worker at a time, comes
//! back when released, stays away when dead-lettered, and wakes waiting workers.
//!
//! Each check takes two handles on the same queue, as two processes would have. Brokers differ
//! in what they cannot promise (per-video enqueue idempotency, exact counts), so those checks
//! live with each backend's own tests.

// Contract checks fail by panicking, like the tests that run them.
#![allow(clippy::unwrap_used)]

use std::{
    future::Future,
    time::{Duration, Instant},
};

use chrono::Utc;
use vidsnap_domain::{JobQueue, Lease, NewJob, QueueStats, VideoId};

/// A lease long enough that it never runs out during a check.
const LEASE: Duration = Duration::from_secs(300);
/// How long a check waits for something a broker does asynchronously.
const PATIENCE: Duration = Duration::from_secs(30);

fn due_now(video: VideoId) -> NewJob {
    NewJob {
        video,
        not_before: Utc::now(),
    }
}

/// Claims until a job arrives (brokers deliver asynchronously), waiting with `wait_for_work`.
pub async fn claim_within(queue: &dyn JobQueue, worker: &str, patience: Duration) -> Lease {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(lease) = queue.claim(worker, LEASE).await.unwrap() {
            return lease;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no job arrived within {patience:?}");
        queue.wait_for_work(left.min(Duration::from_secs(1))).await;
    }
}

/// Claims for `period` and panics if anything arrives.
async fn nothing_within(queue: &dyn JobQueue, worker: &str, period: Duration, why: &str) {
    let deadline = Instant::now() + period;
    loop {
        if let Some(lease) = queue.claim(worker, LEASE).await.unwrap() {
            panic!("{why}: got {lease:?}");
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        queue.wait_for_work(left).await;
    }
}

/// Polls `stats` until `check` holds (broker counts lag behind).
async fn stats_until(queue: &dyn JobQueue, what: &str, check: impl Fn(&QueueStats) -> bool) {
    eventually(what, || async {
        let stats = queue.stats().await.unwrap();
        check(&stats).then_some(())
    })
    .await;
}

/// Retries `attempt` (with short pauses) until it yields, for at most [`PATIENCE`].
async fn eventually<T, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Enqueued once, delivered once, to one worker; gone once completed.
pub async fn a_job_is_delivered_to_one_worker(one: &dyn JobQueue, other: &dyn JobQueue) {
    let video = VideoId::new();
    one.enqueue(due_now(video)).await.unwrap();
    let lease = claim_within(other, "w1", PATIENCE).await;
    assert_eq!(lease.video, video);
    assert_eq!(lease.deliveries, 1, "a first delivery");
    nothing_within(
        one,
        "w2",
        Duration::from_secs(1),
        "a held job is not handed to another worker",
    )
    .await;
    other.heartbeat(&lease, LEASE).await.unwrap();
    other.complete(&lease).await.unwrap();
    nothing_within(one, "w2", Duration::from_secs(1), "a completed job is gone").await;
    stats_until(other, "nothing queued or running", |s| {
        s.queued == 0 && s.running == 0
    })
    .await;
}

/// A released job comes back once due, as a further delivery of the same video.
pub async fn released_jobs_come_back_when_due(one: &dyn JobQueue, other: &dyn JobQueue) {
    let video = VideoId::new();
    one.enqueue(due_now(video)).await.unwrap();
    let first = claim_within(one, "w1", PATIENCE).await;
    let delay = Duration::from_secs(2);
    let released_at = Instant::now();
    one.release(&first, Utc::now() + delay).await.unwrap();

    let second = claim_within(other, "w2", PATIENCE).await;
    assert!(
        released_at.elapsed() >= delay - Duration::from_millis(200),
        "handed out {:?} after a release for {delay:?}",
        released_at.elapsed()
    );
    assert_eq!(second.video, video);
    assert_eq!(second.deliveries, 2, "the release counts as a delivery");
    other.complete(&second).await.unwrap();
}

/// A dead-lettered job is counted as dead and never handed out again.
pub async fn dead_letters_stay_dead(one: &dyn JobQueue, other: &dyn JobQueue) {
    let video = VideoId::new();
    one.enqueue(due_now(video)).await.unwrap();
    let lease = claim_within(one, "w1", PATIENCE).await;
    one.dead_letter(&lease, "corrupt input").await.unwrap();
    stats_until(other, "the dead job is counted", |s| s.dead >= 1).await;
    nothing_within(
        other,
        "w2",
        Duration::from_secs(1),
        "a dead job is not handed out",
    )
    .await;
}

/// A worker waiting for work wakes when another process enqueues, long before its wait ends.
pub async fn waiting_workers_wake_on_enqueue(one: &dyn JobQueue, other: &dyn JobQueue) {
    // Start consuming (brokers subscribe on first use), then wait with nothing queued.
    assert!(one.claim("w1", LEASE).await.unwrap().is_none());
    let max_wait = Duration::from_secs(60);
    let video = VideoId::new();
    let started = Instant::now();
    let (_, ()) = tokio::join!(one.wait_for_work(max_wait), async {
        other.enqueue(due_now(video)).await.unwrap();
    });
    assert!(
        started.elapsed() < max_wait / 2,
        "woke after {:?}: by the enqueue, not the time limit",
        started.elapsed()
    );
    let lease = claim_within(one, "w1", PATIENCE).await;
    assert_eq!(lease.video, video);
    one.complete(&lease).await.unwrap();
}

/// Runs every check above, each on a fresh queue from `fresh`, which returns two handles on one
/// new queue and a guard that removes the queue when dropped.
#[macro_export]
macro_rules! queue_contract_tests {
    ($fresh:path) => {
        $crate::queue_contract_tests!(@each $fresh,
            a_job_is_delivered_to_one_worker,
            released_jobs_come_back_when_due,
            dead_letters_stay_dead,
            waiting_workers_wake_on_enqueue,
        );
    };
    (@each $fresh:path, $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (one, other, _guard) = $fresh().await;
                $crate::contract::$check(&*one, &*other).await;
            }
        )+
    };
}
