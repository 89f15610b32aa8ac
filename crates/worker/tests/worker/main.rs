//! The worker around stand-in runners (a panicking one, one that never ends), on a real SQLite
//! repository and queue and a real local blob store: what happens to a step when its run
//! panics or its job is cancelled; and the scheduler's storage sweep (`storage_sweep`).

#![allow(clippy::unwrap_used)]

mod storage_sweep;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use vidsnap_db::{SqliteStore, contract};
use vidsnap_domain::{
    BlobStore, Change, ErrorCode, Job, JobId, JobQueue, JobStatus, Jobs, Operation, Repository,
    StepStatus, UserId, VideoId,
};
use vidsnap_jobs::{JobService, RecipeSource, Silent};
use vidsnap_media::{MediaError, OpInput, OpOutput, Produced, Progress};
use vidsnap_storage::{LocalStore, UrlSigner};
use vidsnap_worker::{StepRunner, Worker, WorkerConfig, backoff::Backoff};

/// What a stand-in runner does on each call.
enum Act {
    Panic,
    Succeed,
    /// Writes a file into the work directory, then waits for ever (until dropped).
    Hang,
    /// Waits for the gate to open, then succeeds.
    Gate(Arc<tokio::sync::Notify>),
}

struct Runner {
    acts: Mutex<Vec<Act>>,
    calls: AtomicUsize,
    scratch: PathBuf,
    /// Set when a hanging run is dropped (its future cancelled).
    dropped: Arc<AtomicBool>,
    /// The work directory of the last run.
    work: Mutex<Option<PathBuf>>,
}

struct OnDrop(Arc<AtomicBool>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl StepRunner for Runner {
    async fn run(
        &self,
        _op: &Operation,
        _inputs: &[OpInput],
        work: &Path,
        _progress: &dyn Progress,
    ) -> Result<OpOutput, MediaError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        *self.work.lock().unwrap() = Some(work.to_path_buf());
        let act = {
            let mut acts = self.acts.lock().unwrap();
            if acts.is_empty() {
                Act::Succeed
            } else {
                acts.remove(0)
            }
        };
        if let Act::Gate(gate) = &act {
            gate.notified().await;
        }
        match act {
            Act::Panic => panic!("an injected panic"),
            Act::Succeed | Act::Gate(_) => {
                let path = work.join("probe.json");
                std::fs::write(&path, b"{}").unwrap();
                Ok(OpOutput {
                    produced: vec![Produced {
                        name: "probe".to_owned(),
                        path,
                        file_name: "probe.json".to_owned(),
                        content_type: "application/json".to_owned(),
                    }],
                    result: None,
                })
            }
            Act::Hang => {
                std::fs::write(work.join("partial.bin"), b"half").unwrap();
                let _guard = OnDrop(Arc::clone(&self.dropped));
                std::future::pending().await
            }
        }
    }

    fn temp_dir(&self) -> Option<&Path> {
        Some(&self.scratch)
    }
}

struct Harness {
    jobs: JobService,
    /// The user and uploaded video every job here reads.
    input: Option<(UserId, VideoId)>,
    store: Arc<SqliteStore>,
    blobs: Arc<dyn BlobStore>,
    runner: Arc<Runner>,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// A worker with one slot (a dead slot would run nothing more), fast heartbeats and backoff.
    async fn start(acts: Vec<Act>) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
        let signer = UrlSigner::new(b"secret".to_vec(), "http://127.0.0.1:9");
        let blobs: Arc<dyn BlobStore> =
            Arc::new(LocalStore::open(dir.path().join("blobs"), signer).unwrap());
        let scratch = dir.path().join("scratch");
        std::fs::create_dir_all(&scratch).unwrap();
        let runner = Arc::new(Runner {
            acts: Mutex::new(acts),
            calls: AtomicUsize::new(0),
            scratch,
            dropped: Arc::new(AtomicBool::new(false)),
            work: Mutex::new(None),
        });
        let jobs = JobService::new(store.clone(), store.clone(), 3, Arc::new(Silent));
        let config = WorkerConfig {
            concurrency: 1,
            idle_poll_seconds: 0.05,
            step_heartbeat_seconds: 0.1,
            backoff: Backoff {
                base_seconds: 0.01,
                factor: 1.0,
                max_seconds: 0.01,
            },
            ..WorkerConfig::default()
        };
        let worker = Arc::new(Worker::new(
            config,
            jobs.clone(),
            store.clone(),
            blobs.clone(),
            runner.clone(),
        ));
        let shutdown = CancellationToken::new();
        tokio::spawn(worker.run(shutdown.clone()));

        Harness {
            jobs,
            input: None,
            store,
            blobs: blobs.clone(),
            runner,
            shutdown,
            _dir: dir,
        }
        .with_input(blobs)
        .await
    }

    /// Stores the user and uploaded video every job here reads.
    async fn with_input(mut self, blobs: Arc<dyn BlobStore>) -> Harness {
        let user = contract::user("ana@example.com");
        self.store.create_user(&user).await.unwrap();
        let video = contract::video(user.id, "clip.mp4");
        self.store.create_video(&video).await.unwrap();
        let source = self._dir.path().join("clip.mp4");
        std::fs::write(&source, b"bytes").unwrap();
        blobs
            .put_file(&video.source_key(), &source, "video/mp4")
            .await
            .unwrap();
        self.store.mark_uploaded(video.id).await.unwrap();
        self.input = Some((user.id, video.id));
        self
    }

    async fn job(&self) -> Job {
        let (owner, video) = self.input.unwrap();
        let doc =
            serde_json::from_value(json!({"steps": [{"name": "probe", "op": "probe"}]})).unwrap();
        self.jobs
            .create(
                owner,
                RecipeSource::Doc(doc),
                serde_json::Value::Null,
                BTreeMap::from([("video".to_owned(), video)]),
            )
            .await
            .unwrap()
    }

    /// Polls the job until `check` holds (at most 20 s).
    async fn until(&self, job: &Job, what: &str, check: impl Fn(&Job) -> bool) -> Job {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = self.store.job(None, job.id).await.unwrap();
            if check(&now) {
                return now;
            }
            assert!(Instant::now() < deadline, "{what}: {now:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_step_fails_its_attempt_and_the_slot_lives_on() {
    let harness = Harness::start(vec![Act::Panic]).await;
    let job = harness.job().await;
    let done = harness
        .until(&job, "the retry succeeds", |j| j.status.is_terminal())
        .await;
    // One slot: the retry could only run if the panic left the slot alive.
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.steps[0].attempts, 2, "the panic cost one attempt");
    assert_eq!(harness.runner.calls.load(Ordering::SeqCst), 2);
    let history = harness.store.job_events(job.id).await.unwrap();
    let failed = history
        .iter()
        .find(|e| e.status == StepStatus::Failed)
        .expect("the failed attempt is in the history");
    assert!(
        failed
            .reason
            .as_deref()
            .unwrap_or("")
            .contains(ErrorCode::Internal.as_str()),
        "{failed:?}"
    );
    // And the slot takes the next job too.
    let next = harness.job().await;
    let next = harness
        .until(&next, "the next job", |j| j.status.is_terminal())
        .await;
    assert_eq!(next.status, JobStatus::Succeeded);
    harness.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_stops_the_running_step_and_removes_its_scratch() {
    let harness = Harness::start(vec![Act::Hang]).await;
    let job = harness.job().await;
    harness
        .until(&job, "the step runs", |j| {
            j.steps[0].status == StepStatus::Running
        })
        .await;
    let work = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(work) = harness.runner.work.lock().unwrap().clone()
                && work.join("partial.bin").exists()
            {
                break work;
            }
            assert!(Instant::now() < deadline, "the run never wrote");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let cancelled_at = Instant::now();
    harness
        .jobs
        .change(None, job.id, Change::Cancel)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let scratch_empty = || {
        std::fs::read_dir(&harness.runner.scratch)
            .unwrap()
            .next()
            .is_none()
    };
    // The scratch directory goes as a whole (the work directory inside it first).
    while !harness.runner.dropped.load(Ordering::SeqCst) || work.exists() || !scratch_empty() {
        assert!(
            Instant::now() < deadline,
            "the run was not stopped and cleaned within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stopped_in = cancelled_at.elapsed();
    let after = harness.store.job(None, job.id).await.unwrap();
    assert_eq!(after.status, JobStatus::Cancelled);
    assert_eq!(after.steps[0].status, StepStatus::Cancelled);
    assert!(after.steps[0].artefacts.is_empty());
    assert!(
        std::fs::read_dir(&harness.runner.scratch)
            .unwrap()
            .next()
            .is_none(),
        "nothing left in the scratch area"
    );
    eprintln!("stopped {stopped_in:?} after the cancel");
    harness.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_queued_before_jobs_existed_gets_its_job_from_the_scheduler() {
    use vidsnap_domain::{Transition, VideoStatus};
    use vidsnap_worker::{Scheduler, SchedulerConfig};

    let harness = Harness::start(Vec::new()).await;
    let (owner, _) = harness.input.unwrap();
    // As an older version left it: queued, with no job.
    let video = contract::video(owner, "old.mp4");
    harness.store.create_video(&video).await.unwrap();
    harness
        .store
        .transition(video.id, Transition::to(VideoStatus::Queued))
        .await
        .unwrap();
    let config = SchedulerConfig {
        requeue_after_seconds: 0,
        ..SchedulerConfig::default()
    };
    let scheduler = Scheduler::new(
        config,
        harness.store.clone(),
        harness.store.clone(),
        harness.jobs.clone(),
    );
    assert_eq!(scheduler.requeue_lost_jobs().await, 1);
    let linked = harness.store.video(None, video.id).await.unwrap();
    let job = linked.job.expect("the video is linked to its new job");
    // A second sweep makes no second job: the video has its job now (it may queue that job's
    // step again, which is harmless).
    scheduler.requeue_lost_jobs().await;
    let again = harness.store.video(None, video.id).await.unwrap();
    assert_eq!(again.job, Some(job));
    let job = harness.store.job(None, job).await.unwrap();
    assert_eq!(job.video, Some(video.id));
    assert_eq!(job.steps[0].name, "frames");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_a_run_stores_after_its_video_was_deleted_are_removed() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let harness = Harness::start(vec![Act::Gate(Arc::clone(&gate))]).await;
    let (owner, _) = harness.input.unwrap();
    // A video with a job of its own (as /v1/videos makes them), uploaded.
    let mut video = contract::video(owner, "own.mp4");
    video.job = Some(JobId::new());
    harness.store.create_video(&video).await.unwrap();
    let source = harness._dir.path().join("own.mp4");
    std::fs::write(&source, b"bytes").unwrap();
    harness
        .blobs
        .put_file(&video.source_key(), &source, "video/mp4")
        .await
        .unwrap();
    harness.store.mark_uploaded(video.id).await.unwrap();
    let video = harness.store.video(None, video.id).await.unwrap();
    let job = harness
        .jobs
        .create_for_video(video.job.unwrap(), &video)
        .await
        .unwrap();
    harness
        .until(&job, "the step runs", |j| {
            j.steps[0].status == StepStatus::Running
        })
        .await;
    // Deleted (rows, then blobs, as the API does) while the run is still working.
    harness.store.delete_video(owner, video.id).await.unwrap();
    harness.blobs.delete_prefix(&video.prefix()).await.unwrap();
    gate.notify_one();
    // The run ends and its task is settled; what it stored is gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = harness.store.stats().await.unwrap();
        if stats.queued == 0 && stats.running == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the task was never settled: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let folder = harness._dir.path().join("blobs").join(video.prefix());
    let left: Vec<_> = std::fs::read_dir(&folder)
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "outputs of a deleted video: {left:?}");
    harness.shutdown.cancel();
}
