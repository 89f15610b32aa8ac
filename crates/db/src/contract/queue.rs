//! The task queue: one live task per job step, leases that expire and are taken over, wake-ups.

use std::time::{Duration, Instant};

use vidsnap_domain::{JobId, JobQueue, Lease, NewTask, PortError, Task};

use super::{eventually, now, seconds};

const HOUR: Duration = Duration::from_secs(3600);

/// Attempt `attempt` of step `step` of `job`, due `offset_seconds` from now.
fn attempt(job: JobId, step: &str, attempt: u32, offset_seconds: i64) -> NewTask {
    NewTask {
        task: Task {
            job,
            step: step.to_owned(),
            attempt,
        },
        not_before: now() + seconds(offset_seconds),
    }
}

/// The first attempt of `job`'s `frames` step.
fn task(job: JobId, offset_seconds: i64) -> NewTask {
    attempt(job, "frames", 1, offset_seconds)
}

async fn claim(queue: &dyn JobQueue, worker: &str) -> Option<Lease> {
    queue.claim(worker, HOUR).await.unwrap()
}

fn assert_lease_lost(result: Result<(), PortError>, what: &str) {
    assert!(
        matches!(result, Err(PortError::LeaseLost)),
        "{what}: expected LeaseLost, got {result:?}"
    );
}

pub async fn enqueue_is_idempotent_per_job_step(queue: &dyn JobQueue) {
    let job = JobId::new();
    queue.enqueue(task(job, 0)).await.unwrap();
    queue.enqueue(task(job, 0)).await.unwrap();
    assert_eq!(queue.stats().await.unwrap().queued, 1);
    // Another step of the job is another task.
    queue
        .enqueue(attempt(job, "thumbnail", 1, 3600))
        .await
        .unwrap();
    assert_eq!(queue.stats().await.unwrap().queued, 2);

    let lease = claim(queue, "w1").await.unwrap();
    assert_eq!(lease.task, task(job, 0).task);
    assert_eq!(lease.deliveries, 1);
    queue.complete(&lease).await.unwrap();
    assert_eq!(queue.stats().await.unwrap().queued, 1);
    queue.enqueue(task(job, 0)).await.unwrap();
    assert_eq!(
        queue.stats().await.unwrap().queued,
        2,
        "a finished task does not absorb it"
    );
    queue
        .complete(&claim(queue, "w1").await.unwrap())
        .await
        .unwrap();

    // A second enqueue of the same attempt makes a queued task due at the earlier of the two
    // times.
    let later = JobId::new();
    queue.enqueue(task(later, 3600)).await.unwrap();
    assert_eq!(claim(queue, "w1").await, None, "not due yet");
    queue.enqueue(task(later, 7200)).await.unwrap();
    assert_eq!(
        claim(queue, "w1").await,
        None,
        "a later time does not postpone it further"
    );
    queue.enqueue(task(later, 0)).await.unwrap();
    let lease = claim(queue, "w1").await.expect("due now");
    assert_eq!(lease.task.job, later);
    queue.complete(&lease).await.unwrap();

    // Another attempt replaces the queued one, with its own time: the newest enqueue names the
    // attempt the step expects (here, attempt 1 again after a re-run).
    let rerun = JobId::new();
    queue.enqueue(attempt(rerun, "frames", 3, 0)).await.unwrap();
    queue
        .enqueue(attempt(rerun, "frames", 1, 3600))
        .await
        .unwrap();
    assert_eq!(claim(queue, "w1").await, None, "at the new attempt's time");
    queue.enqueue(attempt(rerun, "frames", 1, 0)).await.unwrap();
    let lease = claim(queue, "w1").await.expect("due now");
    assert_eq!(lease.task, attempt(rerun, "frames", 1, 0).task);
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running), (1, 1), "the thumbnail waits");
}

/// An enqueue while the step's task runs (the worker queueing the next attempt before it
/// acknowledges this one, a user's re-run racing the run's end) is not lost: the running task
/// stays the only live one for the step, and its end queues the requested one.
pub async fn enqueue_during_a_run_queues_the_next(queue: &dyn JobQueue) {
    let job = JobId::new();
    queue.enqueue(task(job, 0)).await.unwrap();
    let run = claim(queue, "w1").await.unwrap();
    queue.enqueue(attempt(job, "frames", 2, 0)).await.unwrap();
    queue.enqueue(attempt(job, "frames", 2, 0)).await.unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (stats.queued, stats.running),
        (0, 1),
        "one live task per job step"
    );
    assert_eq!(claim(queue, "w2").await, None, "not while it runs");

    queue.complete(&run).await.unwrap();
    let next = claim(queue, "w2")
        .await
        .expect("the next attempt, queued by the completion");
    assert_eq!(next.task, attempt(job, "frames", 2, 0).task);
    assert_eq!(next.deliveries, 1);
    assert_ne!(next.id, run.id);
    assert_eq!(claim(queue, "w2").await, None, "two enqueues, one next run");

    queue.enqueue(attempt(job, "frames", 3, 0)).await.unwrap();
    queue.dead_letter(&next, "gave up").await.unwrap();
    let after_dead = claim(queue, "w3").await.expect("queued by the dead-letter");
    assert_eq!(after_dead.task, attempt(job, "frames", 3, 0).task);

    // The same attempt requested during the run: the release keeps the earlier time.
    queue
        .enqueue(attempt(job, "frames", 3, 3600))
        .await
        .unwrap();
    queue
        .release(&after_dead, now() + seconds(7200))
        .await
        .unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.dead), (1, 0, 1));
    assert_eq!(
        claim(queue, "w3").await,
        None,
        "released until the earlier of the two"
    );
    queue.enqueue(attempt(job, "frames", 3, 0)).await.unwrap();
    let released = claim(queue, "w3").await.unwrap();
    assert_eq!(released.task.attempt, 3);
    // Another attempt requested during the run: the release queues that one, at its time.
    queue.enqueue(attempt(job, "frames", 4, 0)).await.unwrap();
    queue
        .release(&released, now() + seconds(7200))
        .await
        .unwrap();
    let fourth = claim(queue, "w3")
        .await
        .expect("the requested attempt, due now");
    assert_eq!(fourth.task.attempt, 4);
    queue.complete(&fourth).await.unwrap();
    assert_eq!(
        queue.stats().await.unwrap().queued,
        0,
        "the release consumed the request"
    );
}

pub async fn claims_take_the_oldest_due_task(queue: &dyn JobQueue) {
    let (a, b, c, future) = (JobId::new(), JobId::new(), JobId::new(), JobId::new());
    queue.enqueue(task(a, -1)).await.unwrap();
    queue.enqueue(task(b, -3)).await.unwrap();
    queue.enqueue(task(future, 3600)).await.unwrap();
    queue.enqueue(task(c, -2)).await.unwrap();

    let mut leases = Vec::new();
    while let Some(lease) = claim(queue, "w1").await {
        leases.push(lease);
    }
    assert_eq!(
        leases.iter().map(|l| l.task.job).collect::<Vec<_>>(),
        vec![b, c, a],
        "due tasks, oldest first; the future one waits"
    );
    assert!(leases.iter().all(|l| l.deliveries == 1));
    assert_ne!(leases[0].token, leases[1].token);
    assert_ne!(leases[0].id, leases[1].id);
    for lease in &leases {
        queue.complete(lease).await.unwrap();
    }
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.dead), (1, 0, 0));
}

pub async fn expired_leases_are_taken_over(queue: &dyn JobQueue) {
    let job = JobId::new();
    queue.enqueue(task(job, 0)).await.unwrap();
    let first = claim(queue, "w1").await.unwrap();
    assert_eq!(claim(queue, "w2").await, None, "a held lease is not taken");
    queue.heartbeat(&first, HOUR).await.unwrap();

    // The holder goes quiet: its lease runs out 50 ms from now and another worker takes over.
    queue
        .heartbeat(&first, Duration::from_millis(50))
        .await
        .unwrap();
    let second = eventually(
        "the expired lease is reclaimed",
        Duration::from_secs(5),
        || claim(queue, "w2"),
    )
    .await;
    assert_eq!((second.id, &second.task), (first.id, &first.task));
    assert_eq!(second.deliveries, 2, "the takeover is a second delivery");
    assert_ne!(second.token, first.token);

    assert_lease_lost(
        queue.heartbeat(&first, HOUR).await,
        "heartbeat after takeover",
    );
    assert_lease_lost(queue.complete(&first).await, "complete after takeover");
    assert_lease_lost(queue.release(&first, now()).await, "release after takeover");
    assert_lease_lost(
        queue.dead_letter(&first, "late").await,
        "dead-letter after takeover",
    );

    queue.heartbeat(&second, HOUR).await.unwrap();
    queue.complete(&second).await.unwrap();
    assert_lease_lost(queue.complete(&second).await, "completing twice");
    assert_lease_lost(
        queue.heartbeat(&second, HOUR).await,
        "heartbeat after complete",
    );
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.dead), (0, 0, 0));
}

pub async fn release_and_dead_letter(queue: &dyn JobQueue) {
    let job = JobId::new();
    queue.enqueue(task(job, 0)).await.unwrap();
    let first = claim(queue, "w1").await.unwrap();
    queue.release(&first, now() + seconds(3600)).await.unwrap();
    assert_eq!(claim(queue, "w1").await, None, "released until later");
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running), (1, 0));
    assert_lease_lost(queue.release(&first, now()).await, "releasing twice");
    assert_lease_lost(
        queue.heartbeat(&first, HOUR).await,
        "heartbeat after release",
    );

    queue.enqueue(task(job, 0)).await.unwrap();
    let second = claim(queue, "w1").await.expect("due again");
    assert_eq!((second.id, second.deliveries), (first.id, 2));
    queue.release(&second, now()).await.unwrap();
    let third = claim(queue, "w1").await.expect("released for now");
    assert_eq!(third.deliveries, 3);

    queue.dead_letter(&third, "corrupt input").await.unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.dead), (0, 0, 1));
    assert_eq!(
        claim(queue, "w1").await,
        None,
        "dead tasks are not handed out"
    );
    assert_lease_lost(queue.complete(&third).await, "complete after dead-letter");

    queue.enqueue(task(job, 0)).await.unwrap();
    let fresh = claim(queue, "w1")
        .await
        .expect("a dead task does not block a new one");
    assert_ne!(fresh.id, first.id);
    assert_eq!(fresh.deliveries, 1);
}

pub async fn stats_count_and_age(queue: &dyn JobQueue) {
    let empty = queue.stats().await.unwrap();
    assert_eq!(
        (
            empty.queued,
            empty.running,
            empty.dead,
            empty.oldest_queued_seconds
        ),
        (0, 0, 0, None)
    );
    queue.enqueue(task(JobId::new(), -10)).await.unwrap();
    queue.enqueue(task(JobId::new(), -5)).await.unwrap();
    queue.enqueue(task(JobId::new(), 3600)).await.unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.dead), (3, 0, 0));
    let oldest = stats.oldest_queued_seconds.expect("an oldest due task");
    assert!((10.0..60.0).contains(&oldest), "oldest {oldest}");

    let lease = claim(queue, "w1").await.unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running), (2, 1));
    let oldest = stats.oldest_queued_seconds.expect("an oldest due task");
    assert!((5.0..10.0).contains(&oldest), "oldest {oldest}");

    queue.dead_letter(&lease, "gave up").await.unwrap();
    queue
        .complete(&claim(queue, "w1").await.unwrap())
        .await
        .unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.dead), (1, 0, 1));
    assert_eq!(
        stats.oldest_queued_seconds, None,
        "a task waiting out its backoff is not late"
    );
}

pub async fn wait_for_work_wakes_on_enqueue(queue: &dyn JobQueue) {
    // Nothing queued: it waits, and returns after at most `max_wait`.
    queue.wait_for_work(Duration::from_millis(20)).await;

    let long = Duration::from_secs(30);
    let started = Instant::now();
    let job = JobId::new();
    tokio::join!(queue.wait_for_work(long), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        queue.enqueue(task(job, 0)).await.unwrap();
    });
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "woke after {waited:?}");

    // An enqueue between a worker's empty claim and its wait is not slept through, even for a
    // task due later (the wait does not know it is due later).
    queue
        .complete(&claim(queue, "w1").await.unwrap())
        .await
        .unwrap();
    assert_eq!(claim(queue, "w1").await, None);
    queue.enqueue(task(JobId::new(), 3600)).await.unwrap();
    let started = Instant::now();
    queue.wait_for_work(long).await;
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "woke after {waited:?}");

    // A task already due needs no wake-up at all.
    queue.enqueue(task(JobId::new(), 0)).await.unwrap();
    claim(queue, "w1").await.unwrap();
    queue.enqueue(task(JobId::new(), -1)).await.unwrap();
    let started = Instant::now();
    queue.wait_for_work(long).await;
    queue.wait_for_work(long).await;
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "returned after {waited:?}");
}

/// Without any enqueue to wake it, a worker waiting for work still wakes when a task queued for
/// later falls due, and when a running task's lease runs out (its worker died), long before its
/// `max_wait`.
pub async fn wait_for_work_wakes_when_a_task_or_lease_falls_due(queue: &dyn JobQueue) {
    let long = Duration::from_secs(30);
    // Timed from before the due time is set: a slow enqueue (a loaded machine) must not make an
    // on-time claim look early.
    let started = Instant::now();
    let soon = NewTask {
        not_before: now() + chrono::TimeDelta::milliseconds(500),
        ..task(JobId::new(), 0)
    };
    queue.enqueue(soon.clone()).await.unwrap();
    // A worker's loop: claim, else wait. The enqueue's own wake-up may end one wait early.
    let lease = loop {
        if let Some(lease) = queue.claim("w1", Duration::from_millis(500)).await.unwrap() {
            break lease;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never due");
        queue.wait_for_work(long).await;
    };
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400),
        "claimed before it was due: {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "woke after {waited:?}");
    assert_eq!(lease.task, soon.task);

    // w1 goes quiet; w2, waiting, wakes when the lease runs out and takes the task over.
    let started = Instant::now();
    let takeover = loop {
        if let Some(lease) = claim(queue, "w2").await {
            break lease;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never reclaimable"
        );
        queue.wait_for_work(long).await;
    };
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "woke after {waited:?}");
    assert_eq!((takeover.id, takeover.deliveries), (lease.id, 2));
}
