//! The job rules, on recipes whose right answer is known by construction.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::*;
use crate::recipe::RecipeDoc;

fn t(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("a time")
}

fn recipe(steps: Value) -> Recipe {
    let doc: RecipeDoc = serde_json::from_value(json!({ "steps": steps })).expect("a document");
    doc.check(&Value::Null).expect("a valid recipe")
}

/// Two parallel steps and one after both.
fn diamond() -> Recipe {
    recipe(json!([
        {"name": "a", "op": "probe"},
        {"name": "b", "op": "thumbnail"},
        {"name": "c", "op": "frames", "after": ["a", "b"]}
    ]))
}

fn job(recipe: Recipe, uploaded: bool, facade: bool) -> (Job, Applied) {
    let video = VideoId::new();
    Job::new(
        JobId::new(),
        UserId::new(),
        None,
        recipe,
        Value::Null,
        BTreeMap::from([("video".to_owned(), JobInput { video, uploaded })]),
        facade.then_some(video),
        3,
        t(0),
    )
}

fn statuses(job: &Job) -> Vec<(&str, StepStatus)> {
    job.steps
        .iter()
        .map(|s| (s.name.as_str(), s.status))
        .collect()
}

fn start(job: &mut Job, step: &str, at: i64) -> u32 {
    let attempt = job.step(step).expect("step").run + 1;
    let applied = job
        .apply(
            Change::Start {
                task: Task {
                    job: job.id,
                    step: step.to_owned(),
                    attempt,
                },
                worker: "w".to_owned(),
                lease_until: t(at + 60),
            },
            t(at),
        )
        .expect("applies");
    match applied.verdict {
        Verdict::Started { attempt } => attempt,
        other => panic!("{step} did not start: {other:?}"),
    }
}

fn finish(job: &mut Job, step: &str, outcome: StepOutcome, at: i64) -> Applied {
    let attempt = job.step(step).expect("step").run;
    job.apply(
        Change::Finish {
            step: step.to_owned(),
            attempt,
            outcome,
        },
        t(at),
    )
    .expect("applies")
}

fn ok() -> StepOutcome {
    StepOutcome::Succeeded {
        artefacts: Vec::new(),
        result: None,
    }
}

fn failure(code: ErrorCode) -> Failure {
    Failure {
        code,
        message: "m".to_owned(),
    }
}

#[test]
fn ready_steps_are_those_whose_inputs_are_there() {
    let (job, applied) = job(diamond(), true, false);
    assert_eq!(
        statuses(&job),
        [
            ("a", StepStatus::Ready),
            ("b", StepStatus::Ready),
            ("c", StepStatus::Waiting)
        ]
    );
    let queued: BTreeSet<&str> = applied.tasks.iter().map(|(t, _)| t.step.as_str()).collect();
    assert_eq!(queued, BTreeSet::from(["a", "b"]));
    assert!(applied.tasks.iter().all(|(task, _)| task.attempt == 1));
    assert_eq!(job.status, JobStatus::Queued);
}

#[test]
fn nothing_runs_before_the_upload_and_everything_follows_it() {
    let (mut job, applied) = job(diamond(), false, true);
    assert!(applied.tasks.is_empty());
    assert_eq!(job.status, JobStatus::Waiting);
    let video = job.inputs["video"].video;
    let applied = job
        .apply(
            Change::InputUploaded {
                video,
                bytes: Some(3),
            },
            t(1),
        )
        .expect("applies");
    assert_eq!(applied.tasks.len(), 2);
    assert_eq!(applied.video[0].to, VideoStatus::Queued);
    assert_eq!(job.status, JobStatus::Queued);
}

#[test]
fn a_downstream_step_waits_for_every_upstream_one() {
    let (mut job, _) = job(diamond(), true, false);
    start(&mut job, "a", 1);
    start(&mut job, "b", 1);
    assert_eq!(job.status, JobStatus::Running);
    let applied = finish(&mut job, "a", ok(), 2);
    assert!(applied.tasks.is_empty(), "c still waits for b");
    let applied = finish(&mut job, "b", ok(), 3);
    assert_eq!(applied.tasks.len(), 1);
    assert_eq!(applied.tasks[0].0.step, "c");
    start(&mut job, "c", 4);
    let applied = finish(&mut job, "c", ok(), 5);
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(applied.finished, Some(JobStatus::Succeeded));
}

#[test]
fn a_transient_failure_is_retried_after_the_backoff_then_dead() {
    let (mut job, _) = job(diamond(), true, false);
    start(&mut job, "a", 1);
    let applied = finish(
        &mut job,
        "a",
        StepOutcome::Retry {
            failure: failure(ErrorCode::Timeout),
            at: t(30),
        },
        2,
    );
    assert_eq!(job.step("a").map(|s| s.status), Some(StepStatus::Ready));
    assert_eq!(
        applied.tasks,
        [(
            Task {
                job: job.id,
                step: "a".to_owned(),
                attempt: 2
            },
            t(30)
        )]
    );
    for attempt in 2..=3 {
        assert_eq!(start(&mut job, "a", 40), attempt);
        finish(
            &mut job,
            "a",
            StepOutcome::Retry {
                failure: failure(ErrorCode::Timeout),
                at: t(50),
            },
            41,
        );
    }
    assert_eq!(job.step("a").map(|s| s.status), Some(StepStatus::Dead));
    assert_eq!(job.step("c").map(|s| s.status), Some(StepStatus::Skipped));
    // b is still to run: the job is not over until it is.
    assert_eq!(job.status, JobStatus::Running);
    start(&mut job, "b", 60);
    let applied = finish(&mut job, "b", ok(), 61);
    assert_eq!(job.status, JobStatus::Dead);
    assert_eq!(applied.finished, Some(JobStatus::Dead));
}

#[test]
fn bad_input_fails_at_once_and_skips_downstream() {
    let (mut job, _) = job(diamond(), true, false);
    start(&mut job, "a", 1);
    finish(
        &mut job,
        "a",
        StepOutcome::Abort {
            failure: failure(ErrorCode::NotAVideo),
        },
        2,
    );
    assert_eq!(
        job.step("a").map(|s| (s.status, s.attempts)),
        Some((StepStatus::Failed, 1))
    );
    assert_eq!(job.step("c").map(|s| s.status), Some(StepStatus::Skipped));
    start(&mut job, "b", 3);
    finish(&mut job, "b", ok(), 4);
    assert_eq!(job.status, JobStatus::Failed);
}

#[test]
fn stale_and_duplicate_deliveries_never_run_a_step_twice() {
    let (mut job, applied) = job(diamond(), true, false);
    let task = applied.tasks[0].0.clone();
    let deliver = |job: &mut Job, at: i64| {
        job.apply(
            Change::Start {
                task: task.clone(),
                worker: "w2".to_owned(),
                lease_until: t(at + 60),
            },
            t(at),
        )
        .expect("applies")
        .verdict
    };
    assert_eq!(deliver(&mut job, 1), Verdict::Started { attempt: 1 });
    // The same task again while the first run holds its lease: later, not now.
    assert_eq!(deliver(&mut job, 2), Verdict::Busy { until: t(61) });
    finish(&mut job, &task.step, ok(), 3);
    // After it finished: dropped.
    assert!(matches!(deliver(&mut job, 4), Verdict::Stale { .. }));
    // A report about an attempt that is not running is dropped too.
    let report = job
        .apply(
            Change::Finish {
                step: task.step.clone(),
                attempt: 1,
                outcome: ok(),
            },
            t(5),
        )
        .expect("applies");
    assert!(matches!(report.verdict, Verdict::Stale { .. }));
}

#[test]
fn a_dead_workers_step_is_taken_over_and_counts_an_attempt() {
    let (mut job, applied) = job(diamond(), true, true);
    let task = applied.tasks[0].0.clone();
    start(&mut job, &task.step, 1);
    // Its lease ran out at 61: the redelivery takes over as attempt 2.
    let applied = job
        .apply(
            Change::Start {
                task: task.clone(),
                worker: "w2".to_owned(),
                lease_until: t(200),
            },
            t(100),
        )
        .expect("applies");
    assert_eq!(applied.verdict, Verdict::Started { attempt: 2 });
    assert_eq!(
        applied.video.iter().map(|t| t.to).collect::<Vec<_>>(),
        [VideoStatus::Queued, VideoStatus::Processing]
    );
    // The first worker's late report is stale.
    let late = job
        .apply(
            Change::Finish {
                step: task.step.clone(),
                attempt: 1,
                outcome: ok(),
            },
            t(101),
        )
        .expect("applies");
    assert!(matches!(late.verdict, Verdict::Stale { .. }));
    // Interrupted until no attempts are left: dead, not a crash loop.
    start_over(&mut job, &task, 300);
    let last = job
        .apply(
            Change::Start {
                task: task.clone(),
                worker: "w4".to_owned(),
                lease_until: t(1000),
            },
            t(900),
        )
        .expect("applies");
    assert!(matches!(last.verdict, Verdict::Stale { .. }));
    assert_eq!(
        job.step(&task.step).map(|s| s.status),
        Some(StepStatus::Dead)
    );
    assert_eq!(
        job.step(&task.step)
            .and_then(|s| s.last_error.as_ref())
            .map(|f| f.code),
        Some(ErrorCode::WorkerLost)
    );
}

fn start_over(job: &mut Job, task: &Task, at: i64) {
    let applied = job
        .apply(
            Change::Start {
                task: task.clone(),
                worker: "w3".to_owned(),
                lease_until: t(at + 60),
            },
            t(at),
        )
        .expect("applies");
    assert_eq!(applied.verdict, Verdict::Started { attempt: 3 });
}

#[test]
fn cancel_stops_everything_unfinished() {
    let (mut job, _) = job(diamond(), true, false);
    start(&mut job, "a", 1);
    finish(&mut job, "a", ok(), 2);
    start(&mut job, "b", 3);
    let applied = job.apply(Change::Cancel, t(4)).expect("applies");
    assert_eq!(
        statuses(&job),
        [
            ("a", StepStatus::Succeeded),
            ("b", StepStatus::Cancelled),
            ("c", StepStatus::Cancelled)
        ]
    );
    assert_eq!(applied.finished, Some(JobStatus::Cancelled));
    // The running worker's heartbeat learns it.
    let beat = job
        .apply(
            Change::Heartbeat {
                step: "b".to_owned(),
                attempt: 1,
                lease_until: t(90),
                progress: None,
            },
            t(5),
        )
        .expect("applies");
    assert!(matches!(beat.verdict, Verdict::Stale { .. }));
    assert!(job.apply(Change::Cancel, t(6)).is_err(), "already over");
}

#[test]
fn a_rerun_reuses_what_succeeded_and_redoes_what_follows() {
    let (mut job, _) = job(diamond(), true, false);
    start(&mut job, "a", 1);
    finish(&mut job, "a", ok(), 2);
    start(&mut job, "b", 3);
    finish(
        &mut job,
        "b",
        StepOutcome::Abort {
            failure: failure(ErrorCode::CorruptInput),
        },
        4,
    );
    assert_eq!(job.status, JobStatus::Failed);
    let edited = Operation::parse("thumbnail", &json!({"at": 0}), "o").expect("valid");
    let applied = job
        .apply(
            Change::Rerun {
                step: "b".to_owned(),
                op: Some(edited.clone()),
            },
            t(5),
        )
        .expect("applies");
    assert_eq!(
        statuses(&job),
        [
            ("a", StepStatus::Succeeded),
            ("b", StepStatus::Ready),
            ("c", StepStatus::Waiting)
        ]
    );
    assert_eq!(applied.tasks.len(), 1);
    assert_eq!(job.cycle, 1);
    assert_eq!(job.recipe.step("b").map(|s| &s.op), Some(&edited));
    assert_eq!(job.step("b").map(|s| s.attempts), Some(0));
    // Only a step that ended badly can be re-run, and with options of its own operation.
    assert!(
        job.apply(
            Change::Rerun {
                step: "a".to_owned(),
                op: None
            },
            t(6)
        )
        .is_err()
    );
    assert!(
        job.apply(
            Change::Rerun {
                step: "zz".to_owned(),
                op: None
            },
            t(6)
        )
        .is_err()
    );
}

#[test]
fn a_repeat_runs_a_succeeded_step_again_but_never_a_running_one() {
    let (mut job, _) = job(diamond(), true, false);
    start(&mut job, "a", 1);
    assert!(
        job.apply(
            Change::Repeat {
                step: "a".to_owned()
            },
            t(2)
        )
        .is_err(),
        "a running step is not repeated"
    );
    finish(&mut job, "a", ok(), 2);
    let applied = job
        .apply(
            Change::Repeat {
                step: "a".to_owned(),
            },
            t(3),
        )
        .expect("a succeeded step is repeated");
    assert_eq!(job.cycle, 1);
    assert_eq!(applied.tasks.len(), 1, "the step runs again");
    assert_eq!(job.step("a").map(|s| s.status), Some(StepStatus::Ready));
    // `b` does not follow `a` and is left as it was; `c` follows both and waits again.
    assert_eq!(
        statuses(&job),
        [
            ("a", StepStatus::Ready),
            ("b", StepStatus::Ready),
            ("c", StepStatus::Waiting)
        ]
    );
}

#[test]
fn a_handed_back_attempt_does_not_count() {
    let (mut job, _) = job(diamond(), true, true);
    start(&mut job, "a", 1);
    let applied = finish(&mut job, "a", StepOutcome::HandedBack, 2);
    assert_eq!(
        job.step("a").map(|s| (s.status, s.attempts)),
        Some((StepStatus::Ready, 0))
    );
    // A new run number: the handed-back run's own reports are stale from now on.
    assert_eq!(applied.tasks[0].0.attempt, 2);
    assert_eq!(applied.video[0].to, VideoStatus::Queued);
}

#[test]
fn the_video_mirror_follows_the_old_status_machine() {
    // A /v1/videos job: one frames step over its video.
    let frames = recipe(json!([{"name": "frames", "op": "frames"}]));
    let (mut job, _) = job(frames, false, true);
    let video = job.inputs["video"].video;
    let mut status = VideoStatus::AwaitingUpload;
    follow(
        &mut status,
        &job.apply(
            Change::InputUploaded {
                video,
                bytes: Some(3),
            },
            t(1),
        )
        .expect("applies"),
    );
    follow(&mut status, &deliver(&mut job, 1, 2));
    follow(
        &mut status,
        &finish(
            &mut job,
            "frames",
            StepOutcome::Retry {
                failure: failure(ErrorCode::OutputFailed),
                at: t(10),
            },
            3,
        ),
    );
    assert_eq!(status, VideoStatus::Queued);
    follow(&mut status, &deliver(&mut job, 2, 11));
    let artefact = |name: &str| Artefact {
        name: name.to_owned(),
        key: format!("k/{name}"),
        content_type: "x".to_owned(),
        bytes: 3,
        sha256: String::new(),
    };
    let done = finish(
        &mut job,
        "frames",
        StepOutcome::Succeeded {
            artefacts: vec![artefact("zip"), artefact("thumbnail")],
            result: Some(json!({"frames": 4, "probe": {"duration": 3.0}})),
        },
        12,
    );
    follow(&mut status, &done);
    assert_eq!(status, VideoStatus::Succeeded);
    let outputs = done
        .video
        .last()
        .and_then(|t| t.outputs.clone())
        .expect("outputs");
    assert_eq!((outputs.zip_key.as_str(), outputs.frames), ("k/zip", 4));
}

fn follow(status: &mut VideoStatus, applied: &Applied) {
    for transition in &applied.video {
        assert!(
            status.can_become(transition.to),
            "{status} -> {}",
            transition.to
        );
        *status = transition.to;
    }
}

fn deliver(job: &mut Job, attempt: u32, at: i64) -> Applied {
    let task = Task {
        job: job.id,
        step: "frames".to_owned(),
        attempt,
    };
    let applied = job
        .apply(
            Change::Start {
                task,
                worker: "w".to_owned(),
                lease_until: t(at + 60),
            },
            t(at),
        )
        .expect("applies");
    assert_eq!(applied.verdict, Verdict::Started { attempt });
    applied
}

#[test]
fn only_allowed_step_transitions() {
    use StepStatus::*;
    for next in StepStatus::ALL {
        assert!(!Skipped.can_become(next) || next == Waiting);
        assert!(
            !Waiting.can_become(Running),
            "a step is queued before it runs"
        );
    }
    assert!(!Succeeded.can_become(Ready));
    for status in StepStatus::ALL {
        assert_eq!(StepStatus::parse(status.as_str()), Some(status));
    }
    for status in JobStatus::ALL {
        assert_eq!(JobStatus::parse(status.as_str()), Some(status));
    }
}

/// Applies the mirror as the repositories do: a transition the video's status does not allow is
/// skipped. Returns every status the video passed through.
fn mirror_as_stored(status: &mut VideoStatus, applied: &Applied, seen: &mut Vec<VideoStatus>) {
    for transition in &applied.video {
        if status.can_become(transition.to) {
            *status = transition.to;
            seen.push(*status);
        }
    }
}

#[test]
fn a_video_follows_its_whole_job_not_each_step() {
    let (mut job, _) = job(diamond(), false, true);
    let video = job.inputs["video"].video;
    let mut status = VideoStatus::AwaitingUpload;
    let mut seen = Vec::new();
    let uploaded = job
        .apply(Change::InputUploaded { video, bytes: None }, t(1))
        .expect("applies");
    mirror_as_stored(&mut status, &uploaded, &mut seen);
    for step in ["a", "b"] {
        let started = job
            .apply(
                Change::Start {
                    task: Task {
                        job: job.id,
                        step: step.to_owned(),
                        attempt: 1,
                    },
                    worker: "w".to_owned(),
                    lease_until: t(60),
                },
                t(2),
            )
            .expect("applies");
        mirror_as_stored(&mut status, &started, &mut seen);
    }
    // a fails while b runs: the video stays processing.
    let retry = finish(
        &mut job,
        "a",
        StepOutcome::Retry {
            failure: failure(ErrorCode::Timeout),
            at: t(5),
        },
        3,
    );
    mirror_as_stored(&mut status, &retry, &mut seen);
    assert_eq!(status, VideoStatus::Processing);
    // b succeeds: not the job, so not the video.
    mirror_as_stored(&mut status, &finish(&mut job, "b", ok(), 4), &mut seen);
    assert_eq!(status, VideoStatus::Processing);
    assert_eq!(start(&mut job, "a", 6), 2);
    mirror_as_stored(&mut status, &finish(&mut job, "a", ok(), 7), &mut seen);
    start(&mut job, "c", 8);
    let artefact = |name: &str| Artefact {
        name: name.to_owned(),
        key: format!("k/{name}"),
        content_type: "x".to_owned(),
        bytes: 3,
        sha256: String::new(),
    };
    let done = finish(
        &mut job,
        "c",
        StepOutcome::Succeeded {
            artefacts: vec![artefact("zip"), artefact("thumbnail")],
            result: Some(json!({"frames": 2})),
        },
        9,
    );
    mirror_as_stored(&mut status, &done, &mut seen);
    assert_eq!(
        seen,
        [
            VideoStatus::Queued,
            VideoStatus::Processing,
            VideoStatus::Succeeded
        ]
    );
    let outputs = done
        .video
        .iter()
        .find_map(|t| t.outputs.clone())
        .expect("the frames step's outputs");
    assert_eq!(outputs.frames, 2);
}

#[test]
fn a_video_dies_with_its_job_when_the_last_step_ends() {
    let (mut job, _) = job(diamond(), true, true);
    start(&mut job, "a", 1);
    start(&mut job, "b", 1);
    // a can never succeed, but b still runs: the video is not dead yet.
    let aborted = finish(
        &mut job,
        "a",
        StepOutcome::Abort {
            failure: failure(ErrorCode::CorruptInput),
        },
        2,
    );
    assert!(aborted.video.iter().all(|t| t.to != VideoStatus::Dead));
    // b ends: the job is failed, and the video dead with a's error.
    let ended = finish(&mut job, "b", ok(), 3);
    let statuses: Vec<VideoStatus> = ended.video.iter().map(|t| t.to).collect();
    assert_eq!(statuses, [VideoStatus::Failed, VideoStatus::Dead]);
    assert_eq!(
        ended.video[0].error.clone().flatten().map(|f| f.code),
        Some(ErrorCode::CorruptInput)
    );
    // A cancelled video job ends its video too.
    let (mut other, _) = self::job(diamond(), true, true);
    let cancelled = other.apply(Change::Cancel, t(4)).expect("applies");
    let mut status = VideoStatus::Queued;
    mirror_as_stored(&mut status, &cancelled, &mut Vec::new());
    assert_eq!(status, VideoStatus::Dead);
}

#[test]
fn a_run_of_an_earlier_cycle_cannot_report_for_the_next() {
    let (mut job, _) = job(diamond(), true, false);
    let old = start(&mut job, "a", 1);
    job.apply(Change::Cancel, t(2)).expect("applies");
    job.apply(
        Change::Rerun {
            step: "a".to_owned(),
            op: None,
        },
        t(3),
    )
    .expect("applies");
    let new = start(&mut job, "a", 4);
    assert_ne!(new, old, "a new run number");
    assert_eq!(
        job.step("a").map(|s| s.attempts),
        Some(1),
        "attempts restart"
    );
    // The cancelled run's worker has not noticed yet: its reports are stale.
    for change in [
        Change::Heartbeat {
            step: "a".to_owned(),
            attempt: old,
            lease_until: t(90),
            progress: None,
        },
        Change::Finish {
            step: "a".to_owned(),
            attempt: old,
            outcome: ok(),
        },
    ] {
        let applied = job.apply(change, t(5)).expect("applies");
        assert!(
            matches!(applied.verdict, Verdict::Stale { .. }),
            "{applied:?}"
        );
    }
    assert_eq!(job.step("a").map(|s| s.status), Some(StepStatus::Running));
}
