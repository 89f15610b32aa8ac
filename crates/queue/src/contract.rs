//! The behaviour every [`JobQueue`] backend shares, written once and run against each (the
//! database queue on SQLite, RabbitMQ, SQS): a job is delivered to one worker at a time, comes
//! back when released, stays away when dead-lettered, and wakes waiting workers.
//!
//! Each check takes two handles on the same queue, as two processes would have, and a
//! repository (SQLite) for the checks that follow a delivery to its step. Brokers differ in what
//! they cannot promise (deduplicated enqueues, exact counts), so those checks live with each
//! backend's own tests; what every backend must give is that a duplicate or stale delivery never
//! runs a step twice at once.

// Contract checks fail by panicking, like the tests that run them.
#![allow(clippy::unwrap_used)]

use std::{
    future::Future,
    time::{Duration, Instant},
};

use chrono::Utc;
use vidsnap_domain::{
    Change, Job, JobId, JobInput, JobQueue, Lease, NewTask, QueueStats, RecipeDoc, Repository,
    Task, User, UserId, Verdict, Video, VideoId, VideoOptions, VideoStatus,
};

/// A lease long enough that it never runs out during a check.
const LEASE: Duration = Duration::from_secs(300);
/// How long a check waits for something a broker does asynchronously.
const PATIENCE: Duration = Duration::from_secs(30);

/// A task of a job that exists nowhere: the queue carries it without looking.
fn task() -> Task {
    Task {
        job: JobId::new(),
        step: "frames".to_owned(),
        attempt: 1,
    }
}

fn due_now(task: &Task) -> NewTask {
    NewTask {
        task: task.clone(),
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
pub async fn a_job_is_delivered_to_one_worker(
    one: &dyn JobQueue,
    other: &dyn JobQueue,
    _: &dyn Repository,
) {
    let task = task();
    one.enqueue(due_now(&task)).await.unwrap();
    let lease = claim_within(other, "w1", PATIENCE).await;
    assert_eq!(lease.task, task, "the task comes back as it was sent");
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
pub async fn released_jobs_come_back_when_due(
    one: &dyn JobQueue,
    other: &dyn JobQueue,
    _: &dyn Repository,
) {
    let task = task();
    one.enqueue(due_now(&task)).await.unwrap();
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
    assert_eq!(second.task, task);
    assert_eq!(second.deliveries, 2, "the release counts as a delivery");
    other.complete(&second).await.unwrap();
}

/// A dead-lettered job is counted as dead and never handed out again.
pub async fn dead_letters_stay_dead(one: &dyn JobQueue, other: &dyn JobQueue, _: &dyn Repository) {
    one.enqueue(due_now(&task())).await.unwrap();
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
pub async fn waiting_workers_wake_on_enqueue(
    one: &dyn JobQueue,
    other: &dyn JobQueue,
    _: &dyn Repository,
) {
    // Start consuming (brokers subscribe on first use), then wait with nothing queued.
    assert!(one.claim("w1", LEASE).await.unwrap().is_none());
    let max_wait = Duration::from_secs(60);
    let task = task();
    let started = Instant::now();
    let (_, ()) = tokio::join!(one.wait_for_work(max_wait), async {
        other.enqueue(due_now(&task)).await.unwrap();
    });
    assert!(
        started.elapsed() < max_wait / 2,
        "woke after {:?}: by the enqueue, not the time limit",
        started.elapsed()
    );
    let lease = claim_within(one, "w1", PATIENCE).await;
    assert_eq!(lease.task, task);
    one.complete(&lease).await.unwrap();
}

/// A task enqueued twice (the scheduler's sweep racing the first enqueue, a broker's redelivery)
/// runs its step once: the delivery that finds it running is told to come back later, and one
/// that finds it finished is dropped. Whatever the queue delivers, the repository decides.
pub async fn duplicate_and_stale_deliveries_run_a_step_once(
    one: &dyn JobQueue,
    other: &dyn JobQueue,
    repo: &dyn Repository,
) {
    let job = stored_job(repo).await;
    let task = Task {
        job: job.id,
        step: "probe".to_owned(),
        attempt: 1,
    };
    one.enqueue(due_now(&task)).await.unwrap();
    other.enqueue(due_now(&task)).await.unwrap();

    let first = claim_within(one, "w1", PATIENCE).await;
    assert_eq!(first.task, task);
    let start = |worker: &str| Change::Start {
        task: task.clone(),
        worker: worker.to_owned(),
        lease_until: Utc::now() + LEASE,
    };
    let started = repo.change_job(None, job.id, start("w1")).await.unwrap();
    assert_eq!(started.applied.verdict, Verdict::Started { attempt: 1 });

    // Brokers hand out the duplicate; the database queue kept one message for the step.
    if let Some(second) = claim_once_within(other, "w2", Duration::from_secs(3)).await {
        let verdict = repo.change_job(None, job.id, start("w2")).await.unwrap();
        assert!(
            matches!(verdict.applied.verdict, Verdict::Busy { .. }),
            "a duplicate while the step runs must wait: {:?}",
            verdict.applied.verdict
        );
        other.complete(&second).await.unwrap();
    }
    let finish = Change::Finish {
        step: "probe".to_owned(),
        attempt: 1,
        outcome: vidsnap_domain::StepOutcome::Succeeded {
            artefacts: Vec::new(),
            result: None,
        },
    };
    repo.change_job(None, job.id, finish).await.unwrap();
    one.complete(&first).await.unwrap();

    // The same task delivered after the step finished: stale, acknowledged, gone.
    other.enqueue(due_now(&task)).await.unwrap();
    let late = claim_within(other, "w3", PATIENCE).await;
    let verdict = repo.change_job(None, job.id, start("w3")).await.unwrap();
    assert!(
        matches!(verdict.applied.verdict, Verdict::Stale { .. }),
        "{:?}",
        verdict.applied.verdict
    );
    other.complete(&late).await.unwrap();
    let stored = repo.job(None, job.id).await.unwrap();
    assert_eq!(stored.steps[0].attempts, 1, "the step ran once");
}

/// One claim attempt that waits up to `period` for a delivery.
async fn claim_once_within(queue: &dyn JobQueue, worker: &str, period: Duration) -> Option<Lease> {
    let deadline = Instant::now() + period;
    loop {
        if let Some(lease) = queue.claim(worker, LEASE).await.unwrap() {
            return Some(lease);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        queue.wait_for_work(left).await;
    }
}

/// A stored user, uploaded video and one-step (`probe`) job over it.
async fn stored_job(repo: &dyn Repository) -> Job {
    let now = Utc::now();
    let user = User {
        id: UserId::new(),
        email: format!("{}@example.com", UserId::new()),
        password_hash: None,
        external_issuer: None,
        external_subject: None,
        created_at: now,
    };
    repo.create_user(&user).await.unwrap();
    let video = Video {
        id: VideoId::new(),
        owner: user.id,
        file_name: "clip.mp4".to_owned(),
        size: None,
        options: VideoOptions::default(),
        status: VideoStatus::AwaitingUpload,
        attempts: 0,
        max_attempts: 5,
        cycle: 0,
        last_error: None,
        probe: None,
        outputs: None,
        job: None,
        uploaded_at: None,
        source: None,
        created_at: now,
        updated_at: now,
    };
    repo.create_video(&video).await.unwrap();
    repo.mark_uploaded(video.id).await.unwrap();
    let doc: RecipeDoc =
        serde_json::from_value(serde_json::json!({"steps": [{"name": "probe", "op": "probe"}]}))
            .unwrap();
    let recipe = doc.check(&serde_json::Value::Null).unwrap();
    let inputs = [(
        "video".to_owned(),
        JobInput {
            video: video.id,
            uploaded: true,
        },
    )]
    .into();
    let (job, applied) = Job::new(
        JobId::new(),
        user.id,
        None,
        recipe,
        serde_json::Value::Null,
        inputs,
        None,
        3,
        now,
    );
    repo.create_job(&job, &applied.events).await.unwrap();
    job
}

/// Runs every check above, each on a fresh queue from `fresh`, which returns two handles on one
/// new queue, a repository and a guard that removes the queue when dropped.
#[macro_export]
macro_rules! queue_contract_tests {
    ($fresh:path) => {
        $crate::queue_contract_tests!(@each $fresh,
            a_job_is_delivered_to_one_worker,
            released_jobs_come_back_when_due,
            dead_letters_stay_dead,
            waiting_workers_wake_on_enqueue,
            duplicate_and_stale_deliveries_run_a_step_once,
        );
    };
    (@each $fresh:path, $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (one, other, repo, _guard) = $fresh().await;
                $crate::contract::$check(&*one, &*other, &*repo).await;
            }
        )+
    };
}
