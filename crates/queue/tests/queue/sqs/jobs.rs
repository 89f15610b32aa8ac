//! The job queue on SQS.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use tempfile::TempDir;
use uuid::Uuid;
use vidsnap_domain::{JobQueue, Lease, NewTask, PortError, Repository, Task};
use vidsnap_queue::sqs::{SqsConfig, SqsConfigError, SqsQueue};

use super::moto::{LONG, Moto, PATIENCE, eventually};

fn due_now(task: Task) -> NewTask {
    NewTask {
        task,
        not_before: Utc::now(),
    }
}

/// Claims until a job arrives, waiting with `wait_for_work`.
async fn claim_within(queue: &SqsQueue, lease: Duration) -> Lease {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(lease) = queue.claim("test", lease).await.unwrap() {
            return lease;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no job within {PATIENCE:?}");
        queue.wait_for_work(left.min(Duration::from_secs(2))).await;
    }
}

// --- the shared contract ---------------------------------------------------------------------

/// Two handles (two clients, as two processes would have) on one new queue.
async fn fresh() -> (
    Arc<dyn JobQueue>,
    Arc<dyn JobQueue>,
    Arc<dyn Repository>,
    (Moto, TempDir),
) {
    let moto = Moto::new().await;
    let (main, dead) = moto.queues(5).await;
    let one = moto.job_queue(&main, &dead).await;
    let other = moto.job_queue(&main, &dead).await;
    let (repo, dir) = crate::repository().await;
    (Arc::new(one), Arc::new(other), repo, (moto, dir))
}

vidsnap_queue::queue_contract_tests!(fresh);

// --- SQS's own --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_claim_complete() {
    let moto = Moto::new().await;
    let (main, dead) = moto.queues(5).await;
    let queue = moto.job_queue(&main, &dead).await;
    let task = crate::task();
    queue.enqueue(due_now(task.clone())).await.unwrap();
    let lease = claim_within(&queue, LONG).await;
    assert_eq!((&lease.task, lease.deliveries), (&task, 1));
    queue.heartbeat(&lease, LONG).await.unwrap();
    queue.complete(&lease).await.unwrap();
    moto.drained(&main, "the completed job is deleted").await;
    assert!(
        matches!(
            queue.heartbeat(&lease, LONG).await,
            Err(PortError::LeaseLost)
        ),
        "a completed job's lease is gone"
    );
    let forged = Lease {
        token: "not-a-receipt-handle".into(),
        ..lease
    };
    assert!(matches!(
        queue.heartbeat(&forged, LONG).await,
        Err(PortError::LeaseLost)
    ));
    assert_eq!(queue.claim("test", LONG).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_released_with_a_delay_waits_for_it() {
    let moto = Moto::new().await;
    let (main, dead) = moto.queues(5).await;
    let queue = moto.job_queue(&main, &dead).await;
    let task = crate::task();
    queue.enqueue(due_now(task.clone())).await.unwrap();
    let first = claim_within(&queue, LONG).await;
    let delay = Duration::from_secs(3);
    let released = Instant::now();
    queue.release(&first, Utc::now() + delay).await.unwrap();
    assert_eq!(
        queue.claim("test", LONG).await.unwrap(),
        None,
        "not before its time"
    );
    assert_eq!(moto.counts(&main).await, (0, 0, 1), "one delayed message");
    let second = claim_within(&queue, LONG).await;
    assert!(
        released.elapsed() >= delay - Duration::from_millis(500),
        "claimed {:?} after a release for {delay:?}",
        released.elapsed()
    );
    assert_eq!(
        (&second.task, second.id, second.deliveries),
        (&task, first.id, 2)
    );
    queue.complete(&second).await.unwrap();
}

/// A job due later than SQS can delay a message (here: a body sent without a delay) is hidden
/// by whoever receives it early, and claimed once due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_not_due_yet_is_hidden_until_due() {
    let moto = Moto::new().await;
    let (main, dead) = moto.queues(5).await;
    let queue = moto.job_queue(&main, &dead).await;
    let task = crate::task();
    let due = Utc::now() + chrono::TimeDelta::seconds(3);
    let body = serde_json::json!({"v": "1", "id": Uuid::now_v7(), "job": task.job, "step": task.step, "attempt": task.attempt, "not_before": due});
    moto.send(&main, &body.to_string()).await;
    assert_eq!(queue.claim("test", LONG).await.unwrap(), None);
    assert_eq!(moto.counts(&main).await, (0, 1, 0), "hidden, not claimed");
    let lease = claim_within(&queue, LONG).await;
    assert!(Utc::now() >= due - chrono::TimeDelta::milliseconds(1000));
    // The early receive counts: SQS counts receives, whatever became of them.
    assert_eq!((&lease.task, lease.deliveries), (&task, 2));
    queue.complete(&lease).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_reaches_the_dlq_with_its_reason() {
    let moto = Moto::new().await;
    let (main, dead) = moto.queues(5).await;
    let queue = moto.job_queue(&main, &dead).await;
    let task = crate::task();
    queue.enqueue(due_now(task.clone())).await.unwrap();
    let lease = claim_within(&queue, LONG).await;
    queue
        .dead_letter(&lease, "not-a-video: the file is text")
        .await
        .unwrap();
    moto.drained(&main, "the job left the queue").await;
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.dead), (0, 0, 1));
    let letters = moto.dead_letters(&dead, 1).await;
    let (body, reason) = &letters[0];
    assert_eq!(reason, "not-a-video: the file is text");
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["job"], task.job.to_string());
    assert_eq!(body["id"], lease.id.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_hold_a_job_past_its_lease() {
    let moto = Moto::new().await;
    let (main, dead) = moto.queues(5).await;
    let holder = moto.job_queue(&main, &dead).await;
    let other = moto.job_queue(&main, &dead).await;
    holder.enqueue(due_now(crate::task())).await.unwrap();
    let lease_time = Duration::from_secs(3);
    let lease = claim_within(&holder, lease_time).await;
    let held = Instant::now();
    // Twice the lease, extended every third of it: the passage of time is what is tested.
    while held.elapsed() < lease_time * 2 {
        tokio::time::sleep(lease_time / 3).await;
        holder.heartbeat(&lease, lease_time).await.unwrap();
        assert_eq!(
            other.claim("other", LONG).await.unwrap(),
            None,
            "held after {:?}",
            held.elapsed()
        );
    }
    holder.complete(&lease).await.unwrap();
    assert_eq!(other.claim("other", LONG).await.unwrap(), None);
    moto.drained(&main, "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_redelivered_to_another_consumer() {
    let moto = Moto::new().await;
    let (main, dead) = moto.queues(5).await;
    let crashed = moto.job_queue(&main, &dead).await;
    let other = moto.job_queue(&main, &dead).await;
    let task = crate::task();
    crashed.enqueue(due_now(task.clone())).await.unwrap();
    let first = claim_within(&crashed, Duration::from_secs(1)).await;
    let second = claim_within(&other, LONG).await;
    assert_eq!((&second.task, second.id), (&task, first.id));
    assert_eq!(second.deliveries, 2);
    assert_ne!(second.token, first.token);
    other.complete(&second).await.unwrap();
    moto.drained(&main, "completed by the new owner").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_moves_a_never_completed_job_to_its_dlq() {
    let moto = Moto::new().await;
    let (main, dead) = moto.queues(2).await;
    let queue = moto.job_queue(&main, &dead).await;
    let task = crate::task();
    queue.enqueue(due_now(task.clone())).await.unwrap();
    // Two workers die holding it.
    for delivery in 1..=2 {
        let lease = claim_within(&queue, Duration::from_secs(1)).await;
        assert_eq!((&lease.task, lease.deliveries), (&task, delivery));
    }
    // SQS moves it at the next receive after its visibility ends.
    eventually("the job is redriven to the dead-letter queue", || async {
        assert_eq!(queue.claim("test", LONG).await.unwrap(), None);
        (queue.stats().await.unwrap().dead == 1).then_some(())
    })
    .await;
    let letters = moto.dead_letters(&dead, 1).await;
    assert!(letters[0].0.contains(&task.job.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_queued_running_and_dead() {
    let moto = Moto::new().await;
    let (main, dead) = moto.queues(5).await;
    let queue = moto.job_queue(&main, &dead).await;
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.dead), (0, 0, 0));
    queue.enqueue(due_now(crate::task())).await.unwrap();
    queue
        .enqueue(NewTask {
            task: crate::task(),
            not_before: Utc::now() + chrono::TimeDelta::minutes(10),
        })
        .await
        .unwrap();
    queue.enqueue(due_now(crate::task())).await.unwrap();
    let running = claim_within(&queue, LONG).await;
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (stats.queued, stats.running, stats.dead),
        (2, 1, 0),
        "one visible and one delayed"
    );
    assert_eq!(stats.oldest_queued_seconds, None);
    queue.dead_letter(&running, "corrupt-input").await.unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.dead), (2, 0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_messages_are_dead_lettered() {
    let moto = Moto::new().await;
    let (main, dead) = moto.queues(5).await;
    let queue = moto.job_queue(&main, &dead).await;
    moto.send(&main, "not a job").await;
    let task = crate::task();
    queue.enqueue(due_now(task.clone())).await.unwrap();
    let lease = claim_within(&queue, LONG).await;
    assert_eq!(lease.task, task, "the claim skipped the unreadable message");
    queue.complete(&lease).await.unwrap();
    let letters = moto.dead_letters(&dead, 1).await;
    assert_eq!(letters[0].0, "not a job");
    assert!(letters[0].1.starts_with("unparseable-job"), "{letters:?}");
    moto.drained(&main, "nothing left").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_work_waits_when_idle_and_hands_over_what_it_receives() {
    let moto = Moto::new().await;
    let (main, dead) = moto.queues(5).await;
    let queue = moto.job_queue(&main, &dead).await;
    let other = moto.job_queue(&main, &dead).await;
    let started = Instant::now();
    queue.wait_for_work(Duration::from_secs(2)).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(10),
        "waited {waited:?} for 2 s"
    );
    // What a wait receives is kept for the next claim, out of others' reach.
    let task = crate::task();
    other.enqueue(due_now(task.clone())).await.unwrap();
    queue.wait_for_work(PATIENCE).await;
    assert_eq!(other.claim("other", LONG).await.unwrap(), None);
    let lease = queue.claim("test", Duration::from_secs(60)).await.unwrap();
    assert_eq!(lease.map(|l| l.task), Some(task));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_queues_are_refused() {
    let config = SqsConfig::new(
        "https://sqs.us-east-1.amazonaws.com/123456789012/jobs.fifo",
        "https://sqs.us-east-1.amazonaws.com/123456789012/dead",
    );
    assert!(matches!(
        SqsQueue::new(&config).await,
        Err(SqsConfigError::Fifo(_))
    ));
}
