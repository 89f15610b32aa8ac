//! The job service on a real SQLite repository and queue: the upload paths that must start
//! jobs whatever happened before, and one job per video.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use vidsnap_db::{SqliteStore, contract};
use vidsnap_domain::{
    Change, JobId, JobQueue, Jobs, PortError, Repository, StepStatus, Task, UploadOutcome, Video,
};
use vidsnap_jobs::{JobService, Silent};

struct Scratch {
    store: Arc<SqliteStore>,
    jobs: JobService,
    _dir: tempfile::TempDir,
}

async fn scratch() -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let jobs = JobService::new(store.clone(), store.clone(), 3, Arc::new(Silent));
    Scratch {
        store,
        jobs,
        _dir: dir,
    }
}

/// A `/v1/videos` video with the id of its job, as the API stores it, and optionally the job.
async fn video(s: &Scratch, with_job: bool) -> Video {
    let user = contract::user(&format!("{}@example.com", JobId::new()));
    s.store.create_user(&user).await.unwrap();
    let mut video = contract::video(user.id, "clip.mp4");
    video.job = Some(JobId::new());
    s.store.create_video(&video).await.unwrap();
    if with_job {
        s.jobs
            .create_for_video(video.job.unwrap(), &video)
            .await
            .unwrap();
    }
    video
}

async fn step_status(s: &Scratch, video: &Video) -> StepStatus {
    let job = s.store.job(None, video.job.unwrap()).await.unwrap();
    job.steps[0].status
}

#[tokio::test]
async fn an_upload_starts_the_videos_job_once() {
    let s = scratch().await;
    let video = video(&s, true).await;
    assert_eq!(step_status(&s, &video).await, StepStatus::Waiting);
    let first = s.jobs.uploaded(&video, Some(10)).await.unwrap();
    assert_eq!(first.outcome, UploadOutcome::Queued);
    assert_eq!(first.video.status.as_str(), "queued");
    assert_eq!(step_status(&s, &video).await, StepStatus::Ready);
    let again = s.jobs.uploaded(&first.video, Some(10)).await.unwrap();
    assert_eq!(again.outcome, UploadOutcome::Duplicate);
}

#[tokio::test]
async fn a_repeated_notification_starts_what_an_interrupted_one_left_waiting() {
    let s = scratch().await;
    let video = video(&s, true).await;
    // The first notification recorded the upload, then its process died.
    assert!(s.store.mark_uploaded(video.id).await.unwrap());
    let stored = s.store.video(None, video.id).await.unwrap();
    let again = s.jobs.uploaded(&stored, Some(10)).await.unwrap();
    assert_eq!(again.outcome, UploadOutcome::Duplicate);
    assert_eq!(step_status(&s, &video).await, StepStatus::Ready);
    assert_eq!(again.video.status.as_str(), "queued");
}

#[tokio::test]
async fn a_videos_missing_job_is_made_when_its_bytes_arrive() {
    let s = scratch().await;
    // Its job was never stored (or it awaited its upload when jobs came).
    let video = video(&s, false).await;
    let uploaded = s.jobs.uploaded(&video, None).await.unwrap();
    assert_eq!(uploaded.outcome, UploadOutcome::Queued);
    assert_eq!(step_status(&s, &video).await, StepStatus::Ready);
    assert_eq!(uploaded.video.job, video.job);
}

#[tokio::test]
async fn a_video_gets_one_job() {
    let s = scratch().await;
    let video = video(&s, true).await;
    let other = s.jobs.create_for_video(JobId::new(), &video).await;
    assert!(matches!(other, Err(PortError::Conflict(_))), "{other:?}");
    let stored = s.store.video(None, video.id).await.unwrap();
    assert_eq!(stored.job, video.job);
}

#[tokio::test]
async fn a_step_whose_worker_died_is_swept_for_takeover() {
    let s = scratch().await;
    let video = video(&s, true).await;
    s.jobs.uploaded(&video, None).await.unwrap();
    let job = video.job.unwrap();
    let task = Task {
        job,
        step: "frames".to_owned(),
        attempt: 1,
    };
    // Its worker started it with a lease that has run out, and its message is gone.
    let lease = s.store.claim("w", std::time::Duration::from_secs(60)).await;
    s.store.complete(&lease.unwrap().unwrap()).await.unwrap();
    let past = chrono::Utc::now() - chrono::TimeDelta::seconds(5);
    s.store
        .change_job(
            None,
            job,
            Change::Start {
                task: task.clone(),
                worker: "w".to_owned(),
                lease_until: past,
            },
        )
        .await
        .unwrap();
    let overdue = s.store.overdue_tasks(chrono::Utc::now(), 10).await.unwrap();
    assert_eq!(
        overdue,
        [task],
        "the running run, for the next worker to take over"
    );
}

/// Two upload notifications at once (the client's `POST …/uploaded` and the S3 event, or moto's
/// two events for one multipart upload): one starts the job, the other changes nothing.
async fn racing_notifications_start_the_job_once(repo: &Arc<dyn Repository>, jobs: &JobService) {
    let user = contract::user(&format!("{}@example.com", JobId::new()));
    repo.create_user(&user).await.unwrap();
    let mut video = contract::video(user.id, "clip.mp4");
    video.job = Some(JobId::new());
    repo.create_video(&video).await.unwrap();
    jobs.create_for_video(video.job.unwrap(), &video)
        .await
        .unwrap();
    let (one, other) = tokio::join!(
        jobs.uploaded(&video, Some(10)),
        jobs.uploaded(&video, Some(10))
    );
    let mut outcomes = [one.unwrap().outcome, other.unwrap().outcome];
    outcomes.sort_by_key(|o| *o == UploadOutcome::Duplicate);
    assert_eq!(outcomes, [UploadOutcome::Queued, UploadOutcome::Duplicate]);
    let ready = repo
        .job_events(video.job.unwrap())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.status == StepStatus::Ready)
        .count();
    assert_eq!(ready, 1, "the step was made ready once");
    let history = repo.history(video.id).await.unwrap();
    let queued = history
        .iter()
        .filter(|h| h.status.as_str() == "queued")
        .count();
    assert_eq!(queued, 1, "{history:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_notifications_on_sqlite() {
    let s = scratch().await;
    let repo: Arc<dyn Repository> = s.store.clone();
    for _ in 0..5 {
        racing_notifications_start_the_job_once(&repo, &s.jobs).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_notifications_on_postgres() {
    let db = vidsnap_db::testing::ScratchDatabase::create("vidsnap_jobs").await;
    let store = vidsnap_db::PgStore::connect(db.url()).await.unwrap();
    let repo: Arc<dyn Repository> = Arc::new(store.clone());
    let queue: Arc<dyn JobQueue> = Arc::new(store);
    let jobs = JobService::new(repo.clone(), queue, 3, Arc::new(Silent));
    for _ in 0..5 {
        racing_notifications_start_the_job_once(&repo, &jobs).await;
    }
}

#[tokio::test]
async fn a_watched_folder_takes_its_media_once_and_leaves_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let owner = contract::user("qc@example.com");
    store.create_user(&owner).await.unwrap();
    let watch = |prefix: &str, recipe: &str, extensions: &[&str]| vidsnap_jobs::Watch {
        prefix: prefix.to_owned(),
        owner: "qc@example.com".to_owned(),
        recipe: recipe.to_owned(),
        params: serde_json::Value::Null,
        extensions: extensions.iter().map(|e| (*e).to_owned()).collect(),
        sort: None,
    };
    let watches = vec![
        watch("inbox/", "frames", &[]),
        watch("audio-qc", "qc", &["mp4", ".M4A", "wav"]),
    ];
    let jobs = JobService::new(store.clone(), store.clone(), 3, Arc::new(Silent));
    vidsnap_jobs::check_watches(&jobs, &watches).unwrap();
    let jobs = jobs.with_watches(watches);
    let listener: &dyn vidsnap_domain::UploadListener = &jobs;
    for (key, expected) in [
        // The default: accepted video containers only.
        ("inbox/clip.mp4", UploadOutcome::Queued),
        ("inbox/clip.mp4", UploadOutcome::Duplicate),
        ("inbox/song.m4a", UploadOutcome::NotAnUpload),
        ("inbox/clip-images.zip", UploadOutcome::NotAnUpload),
        ("inbox/.hidden.mp4", UploadOutcome::NotAnUpload),
        // A folder that lists its extensions: audio too, case-insensitively.
        ("audio-qc/call.M4a", UploadOutcome::Queued),
        ("audio-qc/take 2+é.wav", UploadOutcome::Queued),
        ("audio-qc/clip.mov", UploadOutcome::NotAnUpload),
        ("audio-qc/call-qc.json", UploadOutcome::NotAnUpload),
    ] {
        assert_eq!(
            listener.uploaded(key, 1000).await.unwrap(),
            expected,
            "{key}"
        );
    }
    let listed = store.videos(owner.id, None, None, 10).await.unwrap();
    let mut sources: Vec<String> = listed.items.iter().map(|v| v.source_key()).collect();
    sources.sort();
    assert_eq!(
        sources,
        [
            "audio-qc/call.M4a",
            "audio-qc/take 2+é.wav",
            "inbox/clip.mp4"
        ]
    );
}
