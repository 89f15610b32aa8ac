//! The scheduler's storage sweep on a real SQLite repository and a real local blob store: the
//! orphan audit (blobs of videos and jobs without a row, staged bytes of upload sessions without
//! one) and the sweep of temporary files. Ages are made by setting files' modification times and
//! passing `now`, never by waiting.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use vidsnap_db::{SqliteStore, contract};
use vidsnap_domain::{
    JobId, Repository, Upload, UploadId, UserId, VideoId, ports::SweptTemporaries,
};
use vidsnap_jobs::{JobService, RecipeSource, Silent};
use vidsnap_storage::{LocalStore, UrlSigner};
use vidsnap_worker::{
    Scheduler, SchedulerConfig,
    scheduler::{Audit, Orphaned, StorageSweepConfig, StorageSwept},
};

struct Setup {
    store: Arc<SqliteStore>,
    blobs: LocalStore,
    jobs: JobService,
    owner: UserId,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let signer = UrlSigner::new(b"secret".to_vec(), "http://127.0.0.1:9");
    let blobs = LocalStore::open(dir.path().join("blobs"), signer).unwrap();
    let jobs = JobService::new(store.clone(), store.clone(), 3, Arc::new(Silent));
    let owner = contract::user("ana@example.com");
    store.create_user(&owner).await.unwrap();
    Setup {
        store,
        blobs,
        jobs,
        owner: owner.id,
        _dir: dir,
    }
}

impl Setup {
    fn scheduler(&self, storage: StorageSweepConfig) -> Scheduler {
        let config = SchedulerConfig {
            storage,
            ..SchedulerConfig::default()
        };
        Scheduler::new(
            config,
            self.store.clone(),
            self.store.clone(),
            self.jobs.clone(),
        )
        .with_cleanup(
            None,
            Arc::new(self.blobs.clone()),
            Duration::from_secs(3600),
        )
    }

    /// Writes `len` bytes at `key`, last modified at `at`.
    fn blob(&self, key: &str, len: usize, at: DateTime<Utc>) -> PathBuf {
        let path = self.blobs.path_of(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, vec![7; len]).unwrap();
        age(&path, at);
        path
    }
}

fn age(path: &Path, at: DateTime<Utc>) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::from(at)))
        .unwrap();
}

fn session(video: &vidsnap_domain::Video) -> Upload {
    let at = contract::now();
    Upload {
        id: UploadId::new(),
        owner: video.owner,
        video: video.id,
        total_bytes: 100,
        uploaded_bytes: 0,
        metadata: BTreeMap::new(),
        staging: None,
        expires_at: at + TimeDelta::hours(24),
        created_at: at,
        updated_at: at,
    }
}

fn grace_of_an_hour() -> StorageSweepConfig {
    StorageSweepConfig {
        orphan_grace_seconds: 3600,
        temporary_grace_seconds: 3600,
        ..StorageSweepConfig::default()
    }
}

#[tokio::test]
async fn orphans_past_the_grace_are_removed_and_everything_else_kept() {
    let s = setup().await;
    let owner = s.owner;
    let now = Utc::now();
    let old = now - TimeDelta::hours(2);

    // A video with its row: never touched, however old its blobs.
    let kept = contract::video(owner, "kept.mp4");
    s.store.create_video(&kept).await.unwrap();
    let kept_blobs = [
        s.blob(&kept.source_key(), 10, old),
        s.blob(&format!("{owner}/{}/frames/0001.jpg", kept.id), 5, old),
    ];
    // A deleted video whose blobs stayed, and an upload for an id that never existed.
    let deleted = contract::video(owner, "deleted.mp4");
    s.store.create_video(&deleted).await.unwrap();
    s.store.delete_video(owner, deleted.id).await.unwrap();
    s.blob(&deleted.source_key(), 100, old);
    s.blob(&format!("{owner}/{}/image.jpg", deleted.id), 20, old);
    let never = VideoId::new();
    s.blob(&format!("{owner}/{never}/clip.mp4"), 30, old);
    // Without a row but written within the grace, wholly or in part: kept for now.
    let fresh = VideoId::new();
    let fresh_blob = s.blob(&format!("{owner}/{fresh}/clip.mp4"), 1, now);
    let mixed = VideoId::new();
    let mixed_blobs = [
        s.blob(&format!("{owner}/{mixed}/clip.mp4"), 1, old),
        s.blob(
            &format!("{owner}/{mixed}/image.jpg"),
            1,
            now - TimeDelta::minutes(5),
        ),
    ];

    // A job with its row, and the artefacts of one deleted.
    let job = s
        .jobs
        .create(
            owner,
            RecipeSource::Doc(
                serde_json::from_value(json!({"steps": [{"name": "probe", "op": "probe"}]}))
                    .unwrap(),
            ),
            serde_json::Value::Null,
            BTreeMap::from([("video".to_owned(), kept.id)]),
        )
        .await
        .unwrap();
    let job_blob = s.blob(&format!("{}probe/probe.json", job.prefix()), 7, old);
    let gone_job = JobId::new();
    s.blob(&format!("{owner}/jobs/{gone_job}/probe/probe.json"), 8, old);

    // Staged bytes of a live session (however old) and of one that is gone.
    let waiting = contract::video(owner, "waiting.mp4");
    let live = session(&waiting);
    s.store.create_upload(&waiting, &live).await.unwrap();
    let live_staged = s.blob(&format!(".uploads/{}", live.id), 40, old);
    let gone_upload = UploadId::new();
    let gone_staged = s.blob(&format!(".uploads/{gone_upload}"), 50, old);

    // Not laid out by Vidsnap: left alone.
    let strays = [
        s.blob("notes/readme.txt", 1, old),
        s.blob(&format!("{owner}/not-an-id/x.bin"), 1, old),
        s.blob(
            &format!("{}/x.bin", never.to_string().to_uppercase()),
            1,
            old,
        ),
    ];

    let audit = s.scheduler(grace_of_an_hour()).audit_orphans(now).await;
    let all = |found, bytes| Orphaned {
        found,
        bytes,
        removed: found,
        removed_bytes: bytes,
    };
    assert_eq!(
        audit,
        Audit {
            videos: all(2, 150),
            jobs: all(1, 8),
            uploads: all(1, 50),
            young: 2,
        }
    );
    for gone in [deleted.id, never] {
        assert!(
            !s.blobs.path_of(&format!("{owner}/{gone}")).exists(),
            "{gone}"
        );
    }
    assert!(
        !s.blobs
            .path_of(&format!("{owner}/jobs/{gone_job}"))
            .exists()
    );
    assert!(!gone_staged.exists());
    for path in kept_blobs.iter().chain(&mixed_blobs).chain(&strays).chain([
        &fresh_blob,
        &job_blob,
        &live_staged,
    ]) {
        assert!(path.exists(), "{} must be kept", path.display());
    }

    // Nothing is left to find; the young ones are found once they age.
    let again = s.scheduler(grace_of_an_hour()).audit_orphans(now).await;
    assert_eq!(
        again,
        Audit {
            young: 2,
            ..Audit::default()
        }
    );
    let later = s
        .scheduler(grace_of_an_hour())
        .audit_orphans(now + TimeDelta::hours(2))
        .await;
    assert_eq!((later.videos.removed, later.young), (2, 0));
    assert!(kept_blobs.iter().all(|p| p.exists()), "still never touched");
    assert!(job_blob.exists() && live_staged.exists());
}

#[tokio::test]
async fn report_only_finds_orphans_and_removes_nothing() {
    let s = setup().await;
    let now = Utc::now();
    let old = now - TimeDelta::hours(2);
    let orphan = s.blob(&format!("{}/{}/clip.mp4", s.owner, VideoId::new()), 9, old);
    let staged = s.blob(&format!(".uploads/{}", UploadId::new()), 4, old);

    let config = StorageSweepConfig {
        remove_orphans: false,
        ..grace_of_an_hour()
    };
    let audit = s.scheduler(config.clone()).audit_orphans(now).await;
    let reported = |bytes| Orphaned {
        found: 1,
        bytes,
        ..Orphaned::default()
    };
    assert_eq!(audit.videos, reported(9));
    assert_eq!(audit.uploads, reported(4));
    assert!(orphan.exists() && staged.exists(), "report only");
    // Found again at the next audit, as long as they stay.
    assert_eq!(s.scheduler(config).audit_orphans(now).await, audit);
}

#[tokio::test]
async fn a_grace_of_zero_takes_every_orphan_at_once() {
    let s = setup().await;
    let orphan = s.blob(
        &format!("{}/{}/clip.mp4", s.owner, VideoId::new()),
        3,
        Utc::now() - TimeDelta::seconds(1),
    );
    let config = StorageSweepConfig {
        orphan_grace_seconds: 0,
        ..StorageSweepConfig::default()
    };
    let audit = s.scheduler(config).audit_orphans(Utc::now()).await;
    assert_eq!(audit.videos.removed, 1);
    assert!(!orphan.exists());
}

#[tokio::test]
async fn the_sweep_removes_interrupted_writes_and_keeps_writes_in_progress() {
    let s = setup().await;
    let now = Utc::now();
    let video = contract::video(s.owner, "clip.mp4");
    s.store.create_video(&video).await.unwrap();
    let folder = format!("{}/{}", s.owner, video.id);
    let interrupted = s.blob(
        &format!("{folder}/.upload-a.partial"),
        1000,
        now - TimeDelta::hours(2),
    );
    let in_progress = s.blob(
        &format!("{folder}/.upload-b.partial"),
        10,
        now - TimeDelta::minutes(1),
    );
    let source = s.blob(&video.source_key(), 5, now - TimeDelta::hours(2));

    let swept = s.scheduler(grace_of_an_hour()).sweep_storage(now).await;
    assert_eq!(
        swept.temporaries,
        SweptTemporaries {
            files: 1,
            bytes: 1000,
            multipart_uploads: 0
        }
    );
    assert_eq!(swept.orphans, Audit::default(), "the video has its row");
    assert!(!interrupted.exists());
    assert!(in_progress.exists() && source.exists());
}

#[tokio::test]
async fn without_a_blob_store_the_sweep_does_nothing() {
    let s = setup().await;
    let orphan = s.blob(
        &format!("{}/{}/clip.mp4", s.owner, VideoId::new()),
        3,
        Utc::now() - TimeDelta::hours(2),
    );
    let scheduler = Scheduler::new(
        SchedulerConfig::default(),
        s.store.clone(),
        s.store.clone(),
        s.jobs.clone(),
    );
    assert_eq!(
        scheduler.sweep_storage(Utc::now()).await,
        StorageSwept::default()
    );
    assert!(orphan.exists());
}
