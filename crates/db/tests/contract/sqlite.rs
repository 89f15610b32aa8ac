//! Every contract check against SQLite, each on a fresh database file, then what only SQLite has
//! to prove: the file, reopening, several handles (as several processes would have) on one file,
//! and upgrading a database of an older schema in place.

use std::{collections::HashSet, ops::Deref, sync::Arc, time::Duration};

use tempfile::TempDir;
use vidsnap_db::{SqliteStore, contract, testing};
use vidsnap_domain::{
    JobId, JobQueue, NewTask, NotificationId, PortError, Repository, Task, TaskId, Transition,
    UserId, VideoId, VideoStatus,
    VideoStatus::{Processing, Queued, Succeeded},
};

/// A store on a new database file, removed with the value.
struct Fresh {
    store: SqliteStore,
    dir: TempDir,
}

impl Deref for Fresh {
    type Target = SqliteStore;
    fn deref(&self) -> &SqliteStore {
        &self.store
    }
}

async fn fresh() -> Fresh {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("vidsnap.db"))
        .await
        .expect("open a fresh database");
    Fresh { store, dir }
}

vidsnap_db::contract_tests!(fresh);

#[tokio::test]
async fn open_creates_the_file_in_wal_mode_and_reopens_it() {
    let first = fresh().await;
    let path = first.dir.path().join("vidsnap.db");
    assert!(path.is_file());
    let alice = contract::user("alice@example.com");
    first.create_user(&alice).await.expect("create");
    assert!(
        first.dir.path().join("vidsnap.db-wal").is_file(),
        "journal_mode=WAL keeps a -wal file beside the database"
    );

    // Migrations that already ran are not run again, and the data is there.
    let again = SqliteStore::open(&path).await.expect("reopen");
    assert_eq!(again.user(alice.id).await.expect("read back").id, alice.id);
    again.ping().await.expect("ping");
    again.close().await;
}

#[tokio::test]
async fn open_reports_an_unusable_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("no-such-folder").join("vidsnap.db");
    let error = SqliteStore::open(&missing)
        .await
        .expect_err("no parent folder");
    assert!(error.to_string().contains("no-such-folder"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_on_one_file_never_share_a_task() {
    let first = fresh().await;
    let second = Arc::new(
        SqliteStore::open(&first.dir.path().join("vidsnap.db"))
            .await
            .expect("second handle"),
    );
    let first_store = Arc::new(first.store.clone());
    let tasks = 40;
    for _ in 0..tasks {
        first_store
            .enqueue(NewTask {
                task: Task {
                    job: JobId::new(),
                    step: "frames".to_owned(),
                    attempt: 1,
                },
                not_before: contract::now(),
            })
            .await
            .expect("enqueue");
    }

    let mut workers = Vec::new();
    for n in 0..4 {
        let queue: Arc<dyn JobQueue> = if n % 2 == 0 {
            first_store.clone()
        } else {
            second.clone()
        };
        workers.push(tokio::spawn(async move {
            let mut taken = Vec::new();
            while let Some(lease) = queue
                .claim(&format!("w{n}"), Duration::from_secs(3600))
                .await
                .expect("claim")
            {
                taken.push(lease.id);
            }
            taken
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("worker"));
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), tasks, "every task claimed once");
    assert_eq!(distinct.len(), tasks, "no task claimed twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_outcomes_record_one() {
    let first = fresh().await;
    let second = SqliteStore::open(&first.dir.path().join("vidsnap.db"))
        .await
        .expect("second handle");
    let alice = contract::user("alice@example.com");
    first.create_user(&alice).await.expect("user");
    let clip = contract::video(alice.id, "clip.mp4");
    first.create_video(&clip).await.expect("video");
    first
        .transition(clip.id, Transition::to(Queued))
        .await
        .expect("queued");
    first
        .transition(clip.id, Transition::to(Processing))
        .await
        .expect("processing");

    let mut racers = Vec::new();
    for n in 0..6 {
        let repo: Arc<dyn Repository> = if n % 2 == 0 {
            Arc::new(first.store.clone())
        } else {
            Arc::new(second.clone())
        };
        racers.push(tokio::spawn(async move {
            repo.transition(clip.id, Transition::to(Succeeded)).await
        }));
    }
    let mut won = 0;
    for racer in racers {
        match racer.await.expect("racer") {
            Ok(video) => {
                assert_eq!(video.status, Succeeded);
                won += 1;
            }
            Err(PortError::InvalidTransition { from, to }) => {
                assert_eq!((from, to), (Succeeded, Succeeded));
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(
        first
            .notifications_for(clip.id)
            .await
            .expect("notifications")
            .len(),
        1,
        "one e-mail"
    );
}

/// A database a deployment of migrations 0001 and 0002 left, with a video in every status, an
/// owed notification and a row of the old per-video queue, upgrades in place: every video reads
/// back as a pre-jobs video, the notification is kept and still owed once, the old queue rows
/// are gone, and the videos waiting for processing are the scheduler's to give a job.
#[tokio::test]
async fn a_database_of_migrations_1_and_2_upgrades_in_place() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("vidsnap.db");
    let old = testing::sqlite_schema_until(&path, 2).await;
    let at = contract::now();
    let micros = at.timestamp_micros();
    let alice = UserId::new();
    sqlx::query("INSERT INTO users (id, email, created_at) VALUES (?, 'alice@example.com', ?)")
        .bind(alice.to_string())
        .bind(micros)
        .execute(&old)
        .await
        .expect("a user");
    let mut videos = Vec::new();
    for (n, status) in VideoStatus::ALL.into_iter().enumerate() {
        let id = VideoId::new();
        // Older first, in status order, so the sweep's order is known.
        let updated = micros - 60_000_000 + i64::try_from(n).expect("small");
        sqlx::query(
            "INSERT INTO videos (id, owner, file_name, size, options, status, attempts,
                                 max_attempts, cycle, created_at, updated_at)
             VALUES (?, ?, 'clip.mp4', 1234, '{}', ?, 1, 3, 0, ?, ?)",
        )
        .bind(id.to_string())
        .bind(alice.to_string())
        .bind(status.as_str())
        .bind(updated)
        .bind(updated)
        .execute(&old)
        .await
        .expect("a video");
        videos.push((id, status));
    }
    let processing = videos[2].0;
    sqlx::query(
        "INSERT INTO notifications (id, owner, video, cycle, event, channel, channel_key,
                                    payload, status, next_attempt_at, created_at)
         VALUES (?, ?, ?, 0, 'video.succeeded', '{\"kind\":\"email\",\"to\":\"alice@example.com\"}',
                 'email', '{\"type\":\"video.succeeded\"}', 'pending', ?, ?)",
    )
    .bind(NotificationId::new().to_string())
    .bind(alice.to_string())
    .bind(processing.to_string())
    .bind(micros)
    .bind(micros)
    .execute(&old)
    .await
    .expect("a notification");
    sqlx::query(
        "INSERT INTO jobs (id, video, status, run_at, created_at) VALUES (?, ?, 'queued', ?, ?)",
    )
    .bind(TaskId::new().to_string())
    .bind(videos[1].0.to_string())
    .bind(micros)
    .bind(micros)
    .execute(&old)
    .await
    .expect("an old queue row");
    old.close().await;

    let store = SqliteStore::open(&path).await.expect("the upgrade");
    crate::assert_upgraded(&store, &videos).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_starts_across_stores_start_once() {
    let first = fresh().await;
    let second = SqliteStore::open(&first.dir.path().join("vidsnap.db"))
        .await
        .expect("second handle");
    let stores: [Arc<dyn Repository>; 2] = [Arc::new(first.store.clone()), Arc::new(second)];
    contract::jobs::racing_starts_across_stores(&stores).await;
}
