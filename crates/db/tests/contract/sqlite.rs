//! Every contract check against SQLite, each on a fresh database file, then what only SQLite has
//! to prove: the file, reopening, and several handles (as several processes would have) on one
//! file.

use std::{collections::HashSet, ops::Deref, sync::Arc, time::Duration};

use tempfile::TempDir;
use vidsnap_db::{SqliteStore, contract};
use vidsnap_domain::{
    JobQueue, NewJob, PortError, Repository, Transition, VideoId,
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
async fn handles_on_one_file_never_share_a_job() {
    let first = fresh().await;
    let second = Arc::new(
        SqliteStore::open(&first.dir.path().join("vidsnap.db"))
            .await
            .expect("second handle"),
    );
    let first_store = Arc::new(first.store.clone());
    let jobs = 40;
    for _ in 0..jobs {
        first_store
            .enqueue(NewJob {
                video: VideoId::new(),
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
                taken.push(lease.job);
            }
            taken
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("worker"));
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), jobs, "every job claimed once");
    assert_eq!(distinct.len(), jobs, "no job claimed twice");
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
