//! Jobs: stored and read back whole, owned, listed; every change applied atomically and
//! persisted as returned, stale and racing deliveries writing nothing; a `/v1/videos` job
//! mirrored onto its video; notifications owed once per channel per cycle; the scheduler's reads.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use serde_json::{Value, json};
use vidsnap_domain::{
    Artefact, Change, Channel, ErrorCode, EventType, Failure, Job, JobId, JobInput, JobStatus,
    JobUpdate, Notification, PortError, Recipe, RecipeDoc, Repository, StepOutcome, StepStatus,
    Task, Verdict, Video, VideoId, VideoStatus::*, recipe,
};

use super::{assert_not_found, new_user, new_video, new_webhook, now, seconds, video, walk};

/// A recipe from its steps, checked.
fn recipe(doc: Value) -> Recipe {
    let doc: RecipeDoc = serde_json::from_value(doc).unwrap();
    doc.check(&Value::Null).unwrap()
}

/// Two parallel steps and one after both.
fn diamond() -> Recipe {
    recipe(json!({"steps": [
        {"name": "a", "op": "probe"},
        {"name": "b", "op": "thumbnail"},
        {"name": "c", "op": "frames", "after": ["a", "b"]}
    ]}))
}

fn one_step() -> Recipe {
    recipe(json!({"steps": [{"name": "probe", "op": "probe"}]}))
}

/// A job `Job::new` makes over `inputs` (name, video, uploaded), stored with its events.
async fn new_job(
    repo: &dyn Repository,
    owner: &Video,
    recipe: Recipe,
    inputs: &[(&str, VideoId, bool)],
    facade: bool,
) -> Job {
    let (job, applied) = make_job(owner, recipe, inputs, facade, 3);
    repo.create_job(&job, &applied.events).await.unwrap();
    job
}

/// The job `Job::new` makes for `video`'s owner (and, for a `facade`, for `video` itself).
fn make_job(
    video: &Video,
    recipe: Recipe,
    inputs: &[(&str, VideoId, bool)],
    facade: bool,
    max_attempts: u32,
) -> (Job, vidsnap_domain::Applied) {
    let inputs: BTreeMap<String, JobInput> = inputs
        .iter()
        .map(|&(name, video, uploaded)| (name.to_owned(), JobInput { video, uploaded }))
        .collect();
    Job::new(
        JobId::new(),
        video.owner,
        None,
        recipe,
        Value::Null,
        inputs,
        facade.then_some(video.id),
        max_attempts,
        now(),
    )
}

/// An uploaded video of `owner`'s and a job of `recipe` over it.
async fn uploaded_job(repo: &dyn Repository, owner: vidsnap_domain::UserId, recipe: Recipe) -> Job {
    let clip = new_video(repo, owner, "clip.mp4").await;
    repo.mark_uploaded(clip.id).await.unwrap();
    new_job(repo, &clip, recipe, &[("video", clip.id, true)], false).await
}

/// The next attempt of `step`, as a worker delivering its task would start it.
fn start(job: &Job, step: &str, worker: &str) -> Change {
    Change::Start {
        task: Task {
            job: job.id,
            step: step.to_owned(),
            attempt: job.step(step).unwrap().run + 1,
        },
        worker: worker.to_owned(),
        lease_until: now() + seconds(300),
    }
}

/// The end of `step`'s current attempt.
fn finish(job: &Job, step: &str, outcome: StepOutcome) -> Change {
    Change::Finish {
        step: step.to_owned(),
        attempt: job.step(step).unwrap().run,
        outcome,
    }
}

fn ok() -> StepOutcome {
    StepOutcome::Succeeded {
        artefacts: Vec::new(),
        result: None,
    }
}

fn artefact(name: &str) -> Artefact {
    Artefact {
        name: name.to_owned(),
        key: format!("u/v/{name}"),
        content_type: "application/octet-stream".to_owned(),
        bytes: 3,
        sha256: "ab".repeat(32),
    }
}

/// Applies `change` and checks that it was stored as returned and its events were appended to
/// the history.
async fn apply(repo: &dyn Repository, id: JobId, change: Change) -> JobUpdate {
    let mut history = repo.job_events(id).await.unwrap();
    let update = repo.change_job(None, id, change).await.unwrap();
    assert_eq!(
        repo.job(None, id).await.unwrap(),
        update.job,
        "stored as returned"
    );
    history.extend(update.applied.events.iter().cloned());
    assert_eq!(repo.job_events(id).await.unwrap(), history);
    update
}

/// Applies `change`, which must leave the job and its history as they were.
async fn apply_nothing(repo: &dyn Repository, id: JobId, change: Change) -> JobUpdate {
    let (job, history) = (
        repo.job(None, id).await.unwrap(),
        repo.job_events(id).await.unwrap(),
    );
    let update = repo.change_job(None, id, change).await.unwrap();
    assert_eq!(update.job, job);
    assert_eq!(repo.job(None, id).await.unwrap(), job, "nothing written");
    assert_eq!(repo.job_events(id).await.unwrap(), history);
    update
}

/// Every notification owed and not yet claimed, claimed.
async fn claim_all(repo: &dyn Repository) -> Vec<Notification> {
    let mut claimed = Vec::new();
    while let Some(n) = repo
        .claim_notification("n", now() + seconds(3600))
        .await
        .unwrap()
    {
        claimed.push(n);
    }
    claimed
}

pub async fn jobs_read_back_as_created(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let main = new_video(repo, alice.id, "main.mp4").await;
    let extra = new_video(repo, alice.id, "extra.mp4").await;
    repo.mark_uploaded(main.id).await.unwrap();
    let params = json!({"every": "2.5s", "at": 0});
    let preview = recipe::builtin("preview").unwrap().check(&params).unwrap();
    let (job, applied) = Job::new(
        JobId::new(),
        alice.id,
        Some("preview".to_owned()),
        preview,
        params,
        BTreeMap::from([(
            "video".to_owned(),
            JobInput {
                video: main.id,
                uploaded: true,
            },
        )]),
        None,
        3,
        now(),
    );
    assert!(!applied.events.is_empty());
    repo.create_job(&job, &applied.events).await.unwrap();
    assert_eq!(repo.job(Some(alice.id), job.id).await.unwrap(), job);
    assert_eq!(repo.job(None, job.id).await.unwrap(), job);
    assert_eq!(repo.job_events(job.id).await.unwrap(), applied.events);
    assert!(matches!(
        repo.create_job(&job, &applied.events).await,
        Err(PortError::Conflict(_))
    ));

    // Several inputs, one not uploaded, and steps that wait for it.
    let two = recipe(json!({
        "inputs": ["main", "extra"],
        "steps": [
            {"name": "a", "op": "probe", "inputs": ["main"]},
            {"name": "b", "op": "probe", "inputs": ["extra"], "retry": {"max_attempts": 5}}
        ]
    }));
    let waiting = new_job(
        repo,
        &main,
        two,
        &[("main", main.id, true), ("extra", extra.id, false)],
        false,
    )
    .await;
    let stored = repo.job(None, waiting.id).await.unwrap();
    assert_eq!(stored, waiting);
    assert_eq!(
        stored
            .steps
            .iter()
            .map(|s| (s.name.as_str(), s.status, s.max_attempts))
            .collect::<Vec<_>>(),
        [("a", StepStatus::Ready, 3), ("b", StepStatus::Waiting, 5)],
        "in recipe order"
    );
}

pub async fn other_users_jobs_are_not_found(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let bob = new_user(repo, "bob@example.com").await;
    let job = uploaded_job(repo, alice.id, diamond()).await;

    assert_not_found(
        repo.job(Some(bob.id), job.id).await,
        "bob reads alice's job",
    );
    assert_not_found(
        repo.change_job(Some(bob.id), job.id, Change::Cancel).await,
        "bob cancels alice's job",
    );
    assert_not_found(
        repo.delete_job(bob.id, job.id).await,
        "bob deletes alice's job",
    );
    assert!(
        repo.jobs(bob.id, None, None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(repo.job(None, job.id).await.unwrap(), job, "untouched");
    let cancelled = repo
        .change_job(Some(alice.id), job.id, Change::Cancel)
        .await
        .unwrap();
    assert_eq!(cancelled.job.status, JobStatus::Cancelled);

    assert_not_found(repo.job(None, JobId::new()).await, "an unknown job");
    assert_not_found(
        repo.job_events(JobId::new()).await,
        "an unknown job's history",
    );
    assert_not_found(
        repo.change_job(None, JobId::new(), Change::Cancel).await,
        "a change to an unknown job",
    );

    // A job reads only its owner's videos, and is made for its owner's video only.
    let bobs = new_video(repo, bob.id, "bob.mp4").await;
    let alices = new_video(repo, alice.id, "alice.mp4").await;
    for (what, owner, inputs, facade) in [
        (
            "bob's input",
            &alices,
            vec![("video", bobs.id, false)],
            false,
        ),
        (
            "an unknown input",
            &alices,
            vec![("video", VideoId::new(), false)],
            false,
        ),
        (
            "a job made for bob's video",
            &bobs,
            vec![("video", alices.id, false)],
            true,
        ),
    ] {
        let (mut job, applied) = make_job(owner, one_step(), &inputs, facade, 3);
        job.owner = alice.id;
        assert_not_found(repo.create_job(&job, &applied.events).await, what);
        assert_not_found(repo.job(None, job.id).await, "nothing half-created");
    }
    let (mut orphan, applied) = make_job(&alices, one_step(), &[], false, 3);
    orphan.owner = vidsnap_domain::UserId::new();
    assert_not_found(
        repo.create_job(&orphan, &applied.events).await,
        "a job for an unknown user",
    );
}

pub async fn jobs_are_paged_newest_first(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let bob = new_user(repo, "bob@example.com").await;
    let mut jobs = Vec::new();
    for _ in 0..5 {
        jobs.push(uploaded_job(repo, alice.id, diamond()).await);
    }
    uploaded_job(repo, bob.id, diamond()).await;
    jobs.reverse();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = repo
            .jobs(alice.id, None, cursor.as_deref(), 2)
            .await
            .unwrap();
        pages += 1;
        assert!(page.items.len() <= 2);
        seen.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 10, "the cursor never ends");
    }
    assert_eq!(seen, jobs, "every job once, whole, newest first");
    assert_eq!(pages, 3);
    let whole = repo.jobs(alice.id, None, None, 5).await.unwrap();
    assert_eq!(whole.items.len(), 5);
    assert_eq!(whole.next_cursor, None, "an exactly full page is the last");
    assert_not_found(
        repo.jobs(alice.id, None, Some("not-an-id"), 5).await,
        "a malformed cursor",
    );

    for job in [&jobs[1], &jobs[3]] {
        repo.change_job(None, job.id, Change::Cancel).await.unwrap();
    }
    let cancelled = repo
        .jobs(alice.id, Some(JobStatus::Cancelled), None, 1)
        .await
        .unwrap();
    assert_eq!(cancelled.items.len(), 1);
    assert_eq!(cancelled.items[0].id, jobs[1].id);
    assert_eq!(cancelled.items[0].status, JobStatus::Cancelled);
    let rest = repo
        .jobs(
            alice.id,
            Some(JobStatus::Cancelled),
            cancelled.next_cursor.as_deref(),
            1,
        )
        .await
        .unwrap();
    assert_eq!(
        rest.items.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![jobs[3].id]
    );
    assert_eq!(rest.next_cursor, None);
    let queued = repo
        .jobs(alice.id, Some(JobStatus::Queued), None, 10)
        .await
        .unwrap();
    assert_eq!(queued.items.len(), 3);
    assert!(
        repo.jobs(alice.id, Some(JobStatus::Succeeded), None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

pub async fn changes_are_applied_and_persisted(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let job = uploaded_job(repo, alice.id, diamond()).await;
    assert_eq!(job.status, JobStatus::Queued);

    let started = apply(repo, job.id, start(&job, "a", "w1")).await;
    assert_eq!(started.applied.verdict, Verdict::Started { attempt: 1 });
    let job = started.job;
    assert_eq!(job.status, JobStatus::Running);
    assert_eq!(job.step("a").unwrap().worker.as_deref(), Some("w1"));

    let beat = apply(
        repo,
        job.id,
        Change::Heartbeat {
            step: "a".to_owned(),
            attempt: 1,
            lease_until: now() + seconds(600),
            progress: Some(40),
        },
    )
    .await;
    assert_eq!(beat.job.step("a").unwrap().progress, Some(40));

    let result = json!({"probe": {"duration": 12.5, "streams": [1, 2]}});
    let done = apply(
        repo,
        job.id,
        finish(
            &beat.job,
            "a",
            StepOutcome::Succeeded {
                artefacts: vec![artefact("probe.json")],
                result: Some(result.clone()),
            },
        ),
    )
    .await;
    let a = done.job.step("a").unwrap();
    assert_eq!(a.status, StepStatus::Succeeded);
    assert_eq!(a.artefacts, vec![artefact("probe.json")]);
    assert_eq!(a.result, Some(result));
    assert_eq!(done.applied.finished, None);

    let b = apply(repo, job.id, start(&done.job, "b", "w2")).await.job;
    let retry_at = now() + seconds(60);
    let failure = Failure {
        code: ErrorCode::Timeout,
        message: "ffmpeg ran too long".to_owned(),
    };
    let retried = apply(
        repo,
        job.id,
        finish(
            &b,
            "b",
            StepOutcome::Retry {
                failure: failure.clone(),
                at: retry_at,
            },
        ),
    )
    .await;
    let b = retried.job.step("b").unwrap();
    assert_eq!(
        (b.status, b.attempts, b.run_at),
        (StepStatus::Ready, 1, Some(retry_at))
    );
    assert_eq!(b.last_error, Some(failure));
    assert_eq!(
        retried.applied.tasks,
        vec![(
            Task {
                job: job.id,
                step: "b".to_owned(),
                attempt: 2
            },
            retry_at
        )]
    );

    let cancelled = apply(repo, job.id, Change::Cancel).await;
    assert_eq!(cancelled.job.status, JobStatus::Cancelled);
    assert_eq!(cancelled.applied.finished, Some(JobStatus::Cancelled));
    assert_eq!(
        cancelled
            .job
            .steps
            .iter()
            .map(|s| s.status)
            .collect::<Vec<_>>(),
        [
            StepStatus::Succeeded,
            StepStatus::Cancelled,
            StepStatus::Cancelled
        ]
    );

    // A re-run with new options for its operation: the recipe is stored edited.
    let op = vidsnap_domain::Operation::parse("thumbnail", &json!({"at": 0}), "o").unwrap();
    let rerun = apply(
        repo,
        job.id,
        Change::Rerun {
            step: "b".to_owned(),
            op: Some(op.clone()),
        },
    )
    .await;
    assert_eq!(rerun.job.cycle, 1);
    assert_eq!(rerun.job.status, JobStatus::Running);
    assert_eq!(rerun.job.recipe.step("b").map(|s| &s.op), Some(&op));
    assert_eq!(
        rerun
            .job
            .steps
            .iter()
            .map(|s| (s.status, s.attempts))
            .collect::<Vec<_>>(),
        [
            (StepStatus::Succeeded, 1),
            (StepStatus::Ready, 0),
            (StepStatus::Waiting, 0)
        ]
    );
    assert_eq!(rerun.applied.tasks.len(), 1);
}

pub async fn refused_changes_write_nothing(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let job = uploaded_job(repo, alice.id, one_step()).await;
    let job = apply(repo, job.id, start(&job, "probe", "w1")).await.job;
    let job = apply(repo, job.id, finish(&job, "probe", ok())).await.job;
    assert_eq!(job.status, JobStatus::Succeeded);
    let history = repo.job_events(job.id).await.unwrap();

    for (change, what) in [
        (Change::Cancel, "cancel a finished job"),
        (
            Change::Rerun {
                step: "probe".to_owned(),
                op: None,
            },
            "re-run a step that succeeded",
        ),
    ] {
        let refused = repo.change_job(None, job.id, change).await;
        assert!(
            matches!(refused, Err(PortError::Refused(_))),
            "{what}: {refused:?}"
        );
    }
    assert_not_found(
        repo.change_job(
            None,
            job.id,
            Change::Rerun {
                step: "nope".to_owned(),
                op: None,
            },
        )
        .await,
        "re-run an unknown step",
    );
    assert_eq!(repo.job(None, job.id).await.unwrap(), job);
    assert_eq!(repo.job_events(job.id).await.unwrap(), history);
    assert!(claim_all(repo).await.iter().all(|n| n.cycle == 0));
}

/// At-least-once delivery: a task delivered again while its attempt runs waits (`Busy`), and
/// one delivered after it finished, or a late report about it, is dropped (`Stale`). Neither
/// writes anything.
pub async fn a_stale_start_writes_nothing(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let job = uploaded_job(repo, alice.id, one_step()).await;
    let first = start(&job, "probe", "w1");
    let running = apply(repo, job.id, first.clone()).await.job;
    let lease_until = running.step("probe").unwrap().lease_until.unwrap();

    let busy = apply_nothing(repo, job.id, start(&job, "probe", "w2")).await;
    assert_eq!(busy.applied.verdict, Verdict::Busy { until: lease_until });

    apply(repo, job.id, finish(&running, "probe", ok())).await;
    let stale = apply_nothing(repo, job.id, first).await;
    assert!(
        matches!(stale.applied.verdict, Verdict::Stale { .. }),
        "{:?}",
        stale.applied.verdict
    );
    assert!(stale.applied.tasks.is_empty());
    let late = apply_nothing(repo, job.id, finish(&running, "probe", ok())).await;
    assert!(matches!(late.applied.verdict, Verdict::Stale { .. }));
    assert_eq!(
        repo.job(None, job.id).await.unwrap().steps[0].attempts,
        1,
        "the step ran once"
    );
}

/// Deliveries of one task racing each other: exactly one starts the step, the others are told
/// it is busy.
pub async fn racing_starts_start_once(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let job = uploaded_job(repo, alice.id, one_step()).await;
    let deliver =
        |worker: &'static str| repo.change_job(None, job.id, start(&job, "probe", worker));
    let results = tokio::join!(
        deliver("a"),
        deliver("b"),
        deliver("c"),
        deliver("d"),
        deliver("e"),
        deliver("f")
    );
    let results = [
        results.0, results.1, results.2, results.3, results.4, results.5,
    ];
    let verdicts: Vec<Verdict> = results
        .into_iter()
        .map(|r| r.unwrap().applied.verdict)
        .collect();
    let started = verdicts
        .iter()
        .filter(|v| **v == Verdict::Started { attempt: 1 })
        .count();
    assert_eq!(started, 1, "{verdicts:?}");
    assert!(
        verdicts
            .iter()
            .all(|v| matches!(v, Verdict::Started { .. } | Verdict::Busy { .. })),
        "{verdicts:?}"
    );
    let stored = repo.job(None, job.id).await.unwrap();
    assert_eq!(
        (stored.steps[0].status, stored.steps[0].attempts),
        (StepStatus::Running, 1)
    );
    let running = repo
        .job_events(job.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.status == StepStatus::Running)
        .count();
    assert_eq!(running, 1, "one start recorded");
}

/// [`racing_starts_start_once`] across stores on one database (separate pools, as separate
/// processes have), each delivery on a task of its own: for each backend's own tests.
pub async fn racing_starts_across_stores(stores: &[Arc<dyn Repository>]) {
    let repo = &*stores[0];
    let alice = new_user(repo, "alice@example.com").await;
    let job = uploaded_job(repo, alice.id, one_step()).await;
    let racers: Vec<_> = (0..6)
        .map(|n| {
            let repo = stores[n % stores.len()].clone();
            let change = start(&job, "probe", &format!("w{n}"));
            tokio::spawn(async move { repo.change_job(None, job_id(&change), change).await })
        })
        .collect();
    let mut started = 0;
    for racer in racers {
        match racer.await.unwrap().unwrap().applied.verdict {
            Verdict::Started { attempt } => {
                assert_eq!(attempt, 1);
                started += 1;
            }
            Verdict::Busy { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(started, 1);
    assert_eq!(repo.job(None, job.id).await.unwrap().steps[0].attempts, 1);
}

/// The job a `Start` is for.
fn job_id(change: &Change) -> JobId {
    match change {
        Change::Start { task, .. } => task.job,
        other => panic!("not a start: {other:?}"),
    }
}

/// A delivery that finds the step's worker dead (its lease ran out) with no attempts left makes
/// the step `dead` and is itself stale: that outcome is written, or the step would stay running.
pub async fn a_dead_workers_last_attempt_is_recorded(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let clip = new_video(repo, alice.id, "clip.mp4").await;
    repo.mark_uploaded(clip.id).await.unwrap();
    let (job, applied) = make_job(&clip, one_step(), &[("video", clip.id, true)], false, 1);
    repo.create_job(&job, &applied.events).await.unwrap();
    let lapsed = Change::Start {
        task: Task {
            job: job.id,
            step: "probe".to_owned(),
            attempt: 1,
        },
        worker: "w1".to_owned(),
        lease_until: now() - seconds(1),
    };
    apply(repo, job.id, lapsed.clone()).await;
    let taken = apply(repo, job.id, lapsed).await;
    assert!(
        matches!(taken.applied.verdict, Verdict::Stale { .. }),
        "{:?}",
        taken.applied.verdict
    );
    assert_eq!(taken.job.steps[0].status, StepStatus::Dead);
    assert_eq!(taken.job.status, JobStatus::Dead);
    let owed = claim_all(repo).await;
    assert_eq!(owed.len(), 1, "the owner's e-mail");
    assert_eq!(owed[0].event, EventType::JobDead);
}

pub async fn a_videos_job_mirrors_its_video(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let hook = new_webhook(repo, alice.id, "https://alice.example/hook").await;
    let job_id = JobId::new();
    let clip = Video {
        job: Some(job_id),
        ..video(alice.id, "clip.mp4")
    };
    repo.create_video(&clip).await.unwrap();
    let frames = recipe::builtin("frames")
        .unwrap()
        .check(&Value::Null)
        .unwrap();
    let (mut job, applied) = make_job(&clip, frames, &[("video", clip.id, false)], true, 3);
    job.id = job_id;
    repo.create_job(&job, &applied.events).await.unwrap();
    assert_eq!(job.status, JobStatus::Waiting);
    assert_eq!(repo.video(None, clip.id).await.unwrap().job, Some(job_id));

    assert!(repo.mark_uploaded(clip.id).await.unwrap());
    assert_eq!(repo.jobs_waiting_for(clip.id).await.unwrap(), vec![job_id]);
    let uploaded = apply(
        repo,
        job_id,
        Change::InputUploaded {
            video: clip.id,
            bytes: None,
        },
    )
    .await;
    assert_eq!(uploaded.applied.tasks.len(), 1);
    assert_eq!(repo.video(None, clip.id).await.unwrap().status, Queued);
    assert!(repo.jobs_waiting_for(clip.id).await.unwrap().is_empty());

    let started = apply(repo, job_id, start(&uploaded.job, "frames", "w1")).await;
    let processing = repo.video(None, clip.id).await.unwrap();
    assert_eq!((processing.status, processing.attempts), (Processing, 1));

    let done = apply(
        repo,
        job_id,
        finish(
            &started.job,
            "frames",
            StepOutcome::Succeeded {
                artefacts: vec![artefact("zip"), artefact("thumbnail")],
                result: Some(json!({"frames": 4, "probe": {"duration": 3.0}})),
            },
        ),
    )
    .await;
    assert_eq!(done.applied.finished, Some(JobStatus::Succeeded));
    let succeeded = repo.video(None, clip.id).await.unwrap();
    assert_eq!(succeeded.status, Succeeded);
    let outputs = succeeded.outputs.expect("outputs");
    assert_eq!((outputs.zip_key.as_str(), outputs.frames), ("u/v/zip", 4));
    assert_eq!(succeeded.probe, Some(json!({"duration": 3.0})));
    assert_eq!(
        repo.history(clip.id)
            .await
            .unwrap()
            .iter()
            .map(|c| c.status)
            .collect::<Vec<_>>(),
        [AwaitingUpload, Queued, Processing, Succeeded]
    );

    // Announced as the video's outcome, once per channel, never as a job's.
    let owed = repo.notifications_for(clip.id).await.unwrap();
    assert_eq!(owed.len(), 2, "the e-mail and the webhook");
    assert!(owed.iter().all(|n| n.event == EventType::VideoSucceeded));
    assert!(
        owed.iter()
            .all(|n| n.payload["video"]["status"] == "succeeded")
    );
    assert_eq!(repo.deliveries(alice.id, hook.id).await.unwrap().len(), 1);
    assert_eq!(claim_all(repo).await.len(), 2, "nothing else is owed");

    // A transition the video's status no longer allows is skipped; the job goes on.
    let other = new_video(repo, alice.id, "other.mp4").await;
    repo.mark_uploaded(other.id).await.unwrap();
    let mirrored = new_job(repo, &other, one_step(), &[("video", other.id, true)], true).await;
    walk(repo, other.id, &[Queued, Processing, Failed, Dead]).await;
    let skipped = apply(repo, mirrored.id, start(&mirrored, "probe", "w1")).await;
    assert_eq!(skipped.applied.verdict, Verdict::Started { attempt: 1 });
    assert_eq!(repo.video(None, other.id).await.unwrap().status, Dead);
}

pub async fn a_finished_job_notifies_once_per_channel_per_cycle(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let bob = new_user(repo, "bob@example.com").await;
    let one = new_webhook(repo, alice.id, "https://alice.example/one").await;
    let two = new_webhook(repo, alice.id, "https://alice.example/two").await;
    new_webhook(repo, bob.id, "https://bob.example/hook").await;
    let job = uploaded_job(repo, alice.id, one_step()).await;
    let input = job.inputs["video"].video;

    let job = apply(repo, job.id, start(&job, "probe", "w1")).await.job;
    let failed = apply(
        repo,
        job.id,
        finish(
            &job,
            "probe",
            StepOutcome::Abort {
                failure: Failure {
                    code: ErrorCode::NotAVideo,
                    message: "not a video".to_owned(),
                },
            },
        ),
    )
    .await;
    assert_eq!(failed.applied.finished, Some(JobStatus::Failed));
    let job = apply(
        repo,
        job.id,
        Change::Rerun {
            step: "probe".to_owned(),
            op: None,
        },
    )
    .await
    .job;
    let job = apply(repo, job.id, start(&job, "probe", "w1")).await.job;
    let done = apply(repo, job.id, finish(&job, "probe", ok())).await;
    assert_eq!(done.applied.finished, Some(JobStatus::Succeeded));

    // A cancelled job is the user's doing: nothing is announced.
    let cancelled = uploaded_job(repo, alice.id, one_step()).await;
    repo.change_job(None, cancelled.id, Change::Cancel)
        .await
        .unwrap();

    let owed = claim_all(repo).await;
    let mut outcomes: Vec<(u32, EventType, String)> = owed
        .iter()
        .map(|n| {
            let channel = match &n.channel {
                Channel::Email { to } => to.clone(),
                Channel::Webhook { url, .. } => url.clone(),
            };
            (n.cycle, n.event, channel)
        })
        .collect();
    outcomes.sort_by(|a, b| (a.0, a.1.as_str(), &a.2).cmp(&(b.0, b.1.as_str(), &b.2)));
    let expected: Vec<(u32, EventType, String)> =
        [(0, EventType::JobFailed), (1, EventType::JobSucceeded)]
            .into_iter()
            .flat_map(|(cycle, event)| {
                ["alice@example.com", &one.url, &two.url].map(|to| (cycle, event, to.to_owned()))
            })
            .collect();
    assert_eq!(outcomes, expected, "one per channel per cycle");
    for n in &owed {
        assert_eq!(n.owner, alice.id);
        assert_eq!(n.video, input, "the job's first input");
        assert_eq!(n.payload["id"], n.id.to_string());
        assert_eq!(n.payload["type"], n.event.as_str());
        assert_eq!(n.payload["version"], 1);
        assert_eq!(n.payload["job"]["id"], job.id.to_string());
        assert_eq!(n.payload["job"]["cycle"], n.cycle);
        assert_eq!(n.payload["job"]["inputs"]["video"], input.to_string());
    }
    let log = repo.deliveries(alice.id, one.id).await.unwrap();
    assert_eq!(
        log.iter().map(|n| n.event).collect::<Vec<_>>(),
        [EventType::JobSucceeded, EventType::JobFailed],
        "the webhook's log, newest first"
    );
    assert!(
        repo.notifications_for(input).await.unwrap().is_empty(),
        "the job's, not its input video's"
    );
}

pub async fn jobs_waiting_for_an_upload(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let main = new_video(repo, alice.id, "main.mp4").await;
    let extra = new_video(repo, alice.id, "extra.mp4").await;
    let reads_main = new_job(repo, &main, one_step(), &[("video", main.id, false)], false).await;
    let two = recipe(json!({
        "inputs": ["main", "extra"],
        "steps": [
            {"name": "a", "op": "probe", "inputs": ["main"]},
            {"name": "b", "op": "probe", "inputs": ["extra"]}
        ]
    }));
    let reads_both = new_job(
        repo,
        &main,
        two,
        &[("main", main.id, false), ("extra", extra.id, true)],
        false,
    )
    .await;
    let given_up = new_job(repo, &main, one_step(), &[("video", main.id, false)], false).await;
    repo.change_job(None, given_up.id, Change::Cancel)
        .await
        .unwrap();

    let waiting: BTreeSet<JobId> = repo
        .jobs_waiting_for(main.id)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(waiting, BTreeSet::from([reads_main.id, reads_both.id]));
    assert!(
        repo.jobs_waiting_for(extra.id).await.unwrap().is_empty(),
        "already uploaded for the job that reads it"
    );
    assert!(
        repo.jobs_waiting_for(VideoId::new())
            .await
            .unwrap()
            .is_empty()
    );

    apply(
        repo,
        reads_main.id,
        Change::InputUploaded {
            video: main.id,
            bytes: None,
        },
    )
    .await;
    assert_eq!(
        repo.jobs_waiting_for(main.id).await.unwrap(),
        vec![reads_both.id]
    );
}

pub async fn overdue_tasks_are_ready_steps_past_due(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let job = uploaded_job(repo, alice.id, diamond()).await;
    let waiting = new_video(repo, alice.id, "waiting.mp4").await;
    new_job(
        repo,
        &waiting,
        diamond(),
        &[("video", waiting.id, false)],
        false,
    )
    .await;
    let task = |step: &str, attempt: u32| Task {
        job: job.id,
        step: step.to_owned(),
        attempt,
    };
    let overdue = |before, limit| async move {
        let mut tasks = repo.overdue_tasks(before, limit).await.unwrap();
        tasks.sort_by(|a, b| a.step.cmp(&b.step));
        tasks
    };

    let soon = now() + seconds(1);
    assert_eq!(overdue(soon, 10).await, [task("a", 1), task("b", 1)]);
    assert_eq!(overdue(soon, 1).await.len(), 1);
    assert!(
        overdue(job.created_at, 10).await.is_empty(),
        "not before their due time"
    );

    let running = apply(repo, job.id, start(&job, "a", "w1")).await.job;
    assert_eq!(overdue(soon, 10).await, [task("b", 1)], "a runs");
    apply(
        repo,
        job.id,
        finish(
            &running,
            "a",
            StepOutcome::Retry {
                failure: Failure {
                    code: ErrorCode::Timeout,
                    message: "slow".to_owned(),
                },
                at: now() + seconds(3600),
            },
        ),
    )
    .await;
    assert_eq!(
        overdue(soon, 10).await,
        [task("b", 1)],
        "a waits out its backoff"
    );
    assert_eq!(
        overdue(now() + seconds(7200), 10).await,
        [task("a", 2), task("b", 1)]
    );
}

pub async fn existing_jobs_are_told_from_missing_and_deleted_ones(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let kept = uploaded_job(repo, alice.id, one_step()).await;
    let deleted = uploaded_job(repo, alice.id, one_step()).await;
    repo.delete_job(alice.id, deleted.id).await.unwrap();
    let never = JobId::new();

    assert_eq!(
        repo.existing_jobs(&[never, kept.id, deleted.id])
            .await
            .unwrap(),
        vec![kept.id]
    );
    assert!(repo.existing_jobs(&[]).await.unwrap().is_empty());
    let many: Vec<JobId> = (0..500).map(|_| JobId::new()).chain([kept.id]).collect();
    assert_eq!(repo.existing_jobs(&many).await.unwrap(), vec![kept.id]);
}

pub async fn deleting_a_job_takes_its_steps_and_events(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let bob = new_user(repo, "bob@example.com").await;
    let job = uploaded_job(repo, alice.id, one_step()).await;
    let job = apply(repo, job.id, start(&job, "probe", "w1")).await.job;
    let job = apply(repo, job.id, finish(&job, "probe", ok())).await.job;
    let kept = uploaded_job(repo, alice.id, one_step()).await;
    // A running job is not deleted: its worker would store into a folder already gone.
    let running = uploaded_job(repo, alice.id, one_step()).await;
    let running = apply(repo, running.id, start(&running, "probe", "w2"))
        .await
        .job;
    assert!(
        matches!(
            repo.delete_job(alice.id, running.id).await,
            Err(PortError::Refused(_))
        ),
        "a running job"
    );
    apply(repo, running.id, Change::Cancel).await;

    assert_not_found(repo.delete_job(bob.id, job.id).await, "bob deletes alice's");
    assert_eq!(repo.delete_job(alice.id, job.id).await.unwrap(), job);
    assert_not_found(repo.job(None, job.id).await, "a deleted job");
    assert_not_found(repo.job_events(job.id).await, "a deleted job's history");
    assert_not_found(repo.delete_job(alice.id, job.id).await, "deleting twice");
    assert_eq!(
        claim_all(repo).await,
        Vec::new(),
        "its notifications went with it"
    );
    let input = job.inputs["video"].video;
    repo.video(None, input).await.unwrap();
    assert_eq!(repo.job(None, kept.id).await.unwrap(), kept);
    assert_eq!(
        repo.overdue_tasks(now() + seconds(1), 10)
            .await
            .unwrap()
            .iter()
            .map(|t| t.job)
            .collect::<Vec<_>>(),
        [kept.id]
    );
}

pub async fn deleting_a_video_takes_its_own_job_only(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let clip = new_video(repo, alice.id, "clip.mp4").await;
    let own = new_job(repo, &clip, one_step(), &[("video", clip.id, false)], true).await;
    let reader = new_job(repo, &clip, one_step(), &[("video", clip.id, false)], false).await;

    repo.delete_video(alice.id, clip.id).await.unwrap();
    assert_not_found(repo.job(None, own.id).await, "the video's own job");
    assert_eq!(
        repo.job(None, reader.id).await.unwrap(),
        reader,
        "a job that reads it stays, naming it"
    );
    assert!(repo.jobs_waiting_for(clip.id).await.unwrap().is_empty());
}
