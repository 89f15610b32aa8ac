//! The job queue: one live job per video, leases that expire and are taken over, wake-ups.

use std::time::{Duration, Instant};

use vidsnap_domain::{JobQueue, Lease, NewJob, PortError, VideoId};

use super::{eventually, now, seconds};

const HOUR: Duration = Duration::from_secs(3600);

fn job(video: VideoId, offset_seconds: i64) -> NewJob {
    NewJob {
        video,
        not_before: now() + seconds(offset_seconds),
    }
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

pub async fn enqueue_is_idempotent_per_video(queue: &dyn JobQueue) {
    let video = VideoId::new();
    queue.enqueue(job(video, 0)).await.unwrap();
    queue.enqueue(job(video, 0)).await.unwrap();
    assert_eq!(queue.stats().await.unwrap().queued, 1);

    let lease = claim(queue, "w1").await.unwrap();
    assert_eq!((lease.video, lease.deliveries), (video, 1));
    queue.complete(&lease).await.unwrap();
    assert_eq!(queue.stats().await.unwrap().queued, 0);
    queue.enqueue(job(video, 0)).await.unwrap();
    assert_eq!(
        queue.stats().await.unwrap().queued,
        1,
        "a finished job does not absorb it"
    );
    queue
        .complete(&claim(queue, "w1").await.unwrap())
        .await
        .unwrap();

    // A second enqueue makes a queued job due at the earlier of the two times.
    let later = VideoId::new();
    queue.enqueue(job(later, 3600)).await.unwrap();
    assert_eq!(claim(queue, "w1").await, None, "not due yet");
    queue.enqueue(job(later, 7200)).await.unwrap();
    assert_eq!(
        claim(queue, "w1").await,
        None,
        "a later time does not postpone it further"
    );
    queue.enqueue(job(later, 0)).await.unwrap();
    let lease = claim(queue, "w1").await.expect("due now");
    assert_eq!(lease.video, later);
    assert_eq!(queue.stats().await.unwrap().queued, 0);
}

/// An enqueue while the video's job runs (a user's retry racing the worker's last steps) is not
/// lost: the running job stays the only live one, and its end queues the next run.
pub async fn enqueue_during_a_run_queues_the_next(queue: &dyn JobQueue) {
    let video = VideoId::new();
    queue.enqueue(job(video, 0)).await.unwrap();
    let run = claim(queue, "w1").await.unwrap();
    queue.enqueue(job(video, 0)).await.unwrap();
    queue.enqueue(job(video, 0)).await.unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (stats.queued, stats.running),
        (0, 1),
        "one live job per video"
    );
    assert_eq!(claim(queue, "w2").await, None, "not while it runs");

    queue.complete(&run).await.unwrap();
    let next = claim(queue, "w2")
        .await
        .expect("the next run, queued by the completion");
    assert_eq!((next.video, next.deliveries), (video, 1));
    assert_ne!(next.job, run.job);
    assert_eq!(claim(queue, "w2").await, None, "two enqueues, one next run");

    queue.enqueue(job(video, 0)).await.unwrap();
    queue.dead_letter(&next, "gave up").await.unwrap();
    let after_dead = claim(queue, "w3").await.expect("queued by the dead-letter");
    assert_eq!(after_dead.video, video);

    queue.enqueue(job(video, 3600)).await.unwrap();
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
    queue.enqueue(job(video, 0)).await.unwrap();
    queue
        .complete(&claim(queue, "w3").await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        queue.stats().await.unwrap().queued,
        0,
        "the release consumed the request"
    );
}

pub async fn claims_take_the_oldest_due_job(queue: &dyn JobQueue) {
    let (a, b, c, future) = (
        VideoId::new(),
        VideoId::new(),
        VideoId::new(),
        VideoId::new(),
    );
    queue.enqueue(job(a, -1)).await.unwrap();
    queue.enqueue(job(b, -3)).await.unwrap();
    queue.enqueue(job(future, 3600)).await.unwrap();
    queue.enqueue(job(c, -2)).await.unwrap();

    let mut leases = Vec::new();
    while let Some(lease) = claim(queue, "w1").await {
        leases.push(lease);
    }
    assert_eq!(
        leases.iter().map(|l| l.video).collect::<Vec<_>>(),
        vec![b, c, a],
        "due jobs, oldest first; the future one waits"
    );
    assert!(leases.iter().all(|l| l.deliveries == 1));
    assert_ne!(leases[0].token, leases[1].token);
    assert_ne!(leases[0].job, leases[1].job);
    for lease in &leases {
        queue.complete(lease).await.unwrap();
    }
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.dead), (1, 0, 0));
}

pub async fn expired_leases_are_taken_over(queue: &dyn JobQueue) {
    let video = VideoId::new();
    queue.enqueue(job(video, 0)).await.unwrap();
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
    assert_eq!((second.job, second.video), (first.job, video));
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
    let video = VideoId::new();
    queue.enqueue(job(video, 0)).await.unwrap();
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

    queue.enqueue(job(video, 0)).await.unwrap();
    let second = claim(queue, "w1").await.expect("due again");
    assert_eq!((second.job, second.deliveries), (first.job, 2));
    queue.release(&second, now()).await.unwrap();
    let third = claim(queue, "w1").await.expect("released for now");
    assert_eq!(third.deliveries, 3);

    queue.dead_letter(&third, "corrupt input").await.unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.dead), (0, 0, 1));
    assert_eq!(
        claim(queue, "w1").await,
        None,
        "dead jobs are not handed out"
    );
    assert_lease_lost(queue.complete(&third).await, "complete after dead-letter");

    queue.enqueue(job(video, 0)).await.unwrap();
    let fresh = claim(queue, "w1")
        .await
        .expect("a dead job does not block a new one");
    assert_ne!(fresh.job, first.job);
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
    queue.enqueue(job(VideoId::new(), -10)).await.unwrap();
    queue.enqueue(job(VideoId::new(), -5)).await.unwrap();
    queue.enqueue(job(VideoId::new(), 3600)).await.unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.dead), (3, 0, 0));
    let oldest = stats.oldest_queued_seconds.expect("an oldest due job");
    assert!((10.0..60.0).contains(&oldest), "oldest {oldest}");

    let lease = claim(queue, "w1").await.unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running), (2, 1));
    let oldest = stats.oldest_queued_seconds.expect("an oldest due job");
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
        "a job waiting out its backoff is not late"
    );
}

pub async fn wait_for_work_wakes_on_enqueue(queue: &dyn JobQueue) {
    // Nothing queued: it waits, and returns after at most `max_wait`.
    queue.wait_for_work(Duration::from_millis(20)).await;

    let long = Duration::from_secs(30);
    let started = Instant::now();
    let video = VideoId::new();
    tokio::join!(queue.wait_for_work(long), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        queue.enqueue(job(video, 0)).await.unwrap();
    });
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "woke after {waited:?}");

    // An enqueue between a worker's empty claim and its wait is not slept through, even for a
    // job due later (the wait does not know it is due later).
    queue
        .complete(&claim(queue, "w1").await.unwrap())
        .await
        .unwrap();
    assert_eq!(claim(queue, "w1").await, None);
    queue.enqueue(job(VideoId::new(), 3600)).await.unwrap();
    let started = Instant::now();
    queue.wait_for_work(long).await;
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "woke after {waited:?}");

    // A job already due needs no wake-up at all.
    queue.enqueue(job(VideoId::new(), 0)).await.unwrap();
    claim(queue, "w1").await.unwrap();
    queue.enqueue(job(VideoId::new(), -1)).await.unwrap();
    let started = Instant::now();
    queue.wait_for_work(long).await;
    queue.wait_for_work(long).await;
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "returned after {waited:?}");
}

/// Without any enqueue to wake it, a worker waiting for work still wakes when a job queued for
/// later falls due, and when a running job's lease runs out (its worker died), long before its
/// `max_wait`.
pub async fn wait_for_work_wakes_when_a_job_or_lease_falls_due(queue: &dyn JobQueue) {
    let long = Duration::from_secs(30);
    let soon = NewJob {
        video: VideoId::new(),
        not_before: now() + chrono::TimeDelta::milliseconds(500),
    };
    queue.enqueue(soon).await.unwrap();
    // A worker's loop: claim, else wait. The enqueue's own wake-up may end one wait early.
    let started = Instant::now();
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
    assert_eq!(lease.video, soon.video);

    // w1 goes quiet; w2, waiting, wakes when the lease runs out and takes the job over.
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
    assert_eq!((takeover.job, takeover.deliveries), (lease.job, 2));
}
