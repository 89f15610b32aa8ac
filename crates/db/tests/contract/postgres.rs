//! Every contract check against PostgreSQL, each in its own scratch database on the test server,
//! then what only PostgreSQL has to prove: connecting and migrating, and several stores on one
//! database (as several processes would have: separate pools, separate listeners) never sharing
//! a task or a notification, waking each other's workers, and surviving a lost listener; and
//! upgrading a database of an older schema in place.

use std::{
    collections::HashSet,
    ops::Deref,
    sync::Arc,
    time::{Duration, Instant},
};

use sqlx::{Connection, PgConnection};
use vidsnap_db::{
    PgStore, contract,
    testing::{self, ScratchDatabase},
};
use vidsnap_domain::{
    JobId, JobQueue, NewTask, NotificationId, PortError, Repository, Task, TaskId, Transition,
    UserId, VideoId, VideoStatus,
    VideoStatus::{Processing, Queued, Succeeded},
};

/// A store on a new database, dropped with the value (the store first: fields drop in order).
struct Fresh {
    store: PgStore,
    db: ScratchDatabase,
}

impl Deref for Fresh {
    type Target = PgStore;
    fn deref(&self) -> &PgStore {
        &self.store
    }
}

impl Fresh {
    /// Another store on the same database: what a second process would have.
    async fn another(&self) -> PgStore {
        PgStore::connect(self.db.url())
            .await
            .expect("a second store on the database")
    }

    /// A plain connection, for looking behind the store's back.
    async fn connection(&self) -> PgConnection {
        PgConnection::connect(self.db.url())
            .await
            .expect("a plain connection")
    }
}

async fn fresh() -> Fresh {
    let db = ScratchDatabase::create("vidsnap_test").await;
    let store = PgStore::connect(db.url())
        .await
        .expect("connect to a scratch database");
    Fresh { store, db }
}

vidsnap_db::contract_tests!(fresh);

/// A task of a job of its own, due now.
fn due_now() -> NewTask {
    NewTask {
        task: Task {
            job: JobId::new(),
            step: "frames".to_owned(),
            attempt: 1,
        },
        not_before: contract::now(),
    }
}

#[tokio::test]
async fn connect_migrates_once_and_reconnects() {
    let first = fresh().await;
    let alice = contract::user("alice@example.com");
    first.create_user(&alice).await.expect("create");

    // Migrations that already ran are not run again, and the data is there.
    let again = first.another().await;
    assert_eq!(again.user(alice.id).await.expect("read back").id, alice.id);
    again.ping().await.expect("ping");
    let mut conn = first.connection().await;
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .expect("the migrations table");
    assert_eq!(
        applied,
        vec![
            (1, true),
            (2, true),
            (3, true),
            (4, true),
            (5, true),
            (6, true)
        ]
    );
    again.close().await;

    // Processes starting together on an empty database: one migrates, the others wait for it.
    let empty = ScratchDatabase::create("vidsnap_test").await;
    let url = empty.url().to_owned();
    let starts = (0..3).map(|_| {
        let url = url.clone();
        async move { PgStore::connect(&url).await }
    });
    let stores: Vec<PgStore> = connect_all(starts).await;
    stores[0].ping().await.expect("ping");
    for store in &stores {
        store.close().await;
    }
}

/// Awaits every connect, each on its own task so they really run at once.
async fn connect_all<F>(futures: impl Iterator<Item = F>) -> Vec<PgStore>
where
    F: Future<Output = Result<PgStore, vidsnap_db::OpenError>> + Send + 'static,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut stores = Vec::new();
    for task in tasks {
        stores.push(task.await.expect("task").expect("concurrent connect"));
    }
    stores
}

#[tokio::test]
async fn connect_reports_an_unreachable_server_without_its_password() {
    let started = Instant::now();
    let error = PgStore::connect("postgres://vidsnap:hunter2@127.0.0.1:1/vidsnap")
        .await
        .expect_err("nothing listens on port 1");
    let shown = error.to_string();
    assert!(shown.contains("127.0.0.1:1/vidsnap"), "{shown}");
    assert!(!format!("{error:?}").contains("hunter2"), "{error:?}");
    let cause = std::error::Error::source(&error)
        .expect("the cause")
        .to_string();
    assert!(cause.to_lowercase().contains("refused"), "{cause}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a refused connection fails at once, not after the pool's retries"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_on_one_database_never_share_a_task() {
    let first = fresh().await;
    let second = first.another().await;
    let tasks = 200;
    for _ in 0..tasks {
        first.enqueue(due_now()).await.expect("enqueue");
    }
    let stores: [Arc<dyn JobQueue>; 2] = [Arc::new(first.store.clone()), Arc::new(second)];

    let mut workers = Vec::new();
    for n in 0..8 {
        let queue = stores[n % 2].clone();
        workers.push(tokio::spawn(async move {
            let mut taken = Vec::new();
            while let Some(lease) = queue
                .claim(&format!("w{n}"), Duration::from_secs(3600))
                .await
                .expect("claim")
            {
                taken.push(lease.id);
                queue.complete(&lease).await.expect("complete");
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
    let stats = first.stats().await.expect("stats");
    assert_eq!((stats.queued, stats.running, stats.dead), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_on_one_database_never_share_a_notification() {
    let first = fresh().await;
    let second = first.another().await;
    let alice = contract::user("alice@example.com");
    first.create_user(&alice).await.expect("user");
    let videos = 30;
    for n in 0..videos {
        let clip = contract::video(alice.id, &format!("clip{n}.mp4"));
        first.create_video(&clip).await.expect("video");
        for to in [Queued, Processing, Succeeded] {
            first
                .transition(clip.id, Transition::to(to))
                .await
                .expect("transition");
        }
    }
    let stores: [Arc<dyn Repository>; 2] = [Arc::new(first.store.clone()), Arc::new(second)];
    let mut notifiers = Vec::new();
    for n in 0..6 {
        let repo = stores[n % 2].clone();
        notifiers.push(tokio::spawn(async move {
            let mut taken = Vec::new();
            let hour = contract::now() + chrono::TimeDelta::hours(1);
            while let Some(notification) = repo
                .claim_notification(&format!("n{n}"), hour)
                .await
                .expect("claim")
            {
                taken.push(notification.id);
            }
            taken
        }));
    }
    let mut all = Vec::new();
    for notifier in notifiers {
        all.extend(notifier.await.expect("notifier"));
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), videos, "one e-mail per video, each claimed once");
    assert_eq!(distinct.len(), videos, "none claimed twice");
}

/// The worker in one store sleeps on an empty queue; a task queued through another store (another
/// process) wakes it through LISTEN/NOTIFY, long before its `max_wait`.
#[tokio::test]
async fn a_task_queued_through_another_store_wakes_a_waiting_worker() {
    let first = fresh().await;
    let second = first.another().await;
    assert_wakes_on_enqueue(&first, &second).await;
}

async fn assert_wakes_on_enqueue(waiter: &PgStore, enqueuer: &PgStore) {
    let delay = Duration::from_millis(200);
    let started = Instant::now();
    tokio::join!(waiter.wait_for_work(Duration::from_secs(30)), async {
        tokio::time::sleep(delay).await;
        // Due in an hour: only the notification, not the due time, can end the wait.
        enqueuer
            .enqueue(NewTask {
                not_before: contract::now() + chrono::TimeDelta::hours(1),
                ..due_now()
            })
            .await
            .expect("enqueue");
    });
    let waited = started.elapsed();
    assert!(waited >= delay, "it waited for the enqueue: {waited:?}");
    assert!(waited < Duration::from_secs(5), "woke after {waited:?}");
}

/// The listening connection is killed (a server restart, a proxy's idle timeout): the store
/// listens again on a new one and wake-ups keep working.
#[tokio::test]
async fn the_listener_listens_again_after_losing_its_connection() {
    let first = fresh().await;
    let second = first.another().await;
    let mut conn = first.connection().await;
    let listeners = "SELECT pid FROM pg_stat_activity
                     WHERE datname = current_database() AND application_name = 'vidsnap-listener'
                       AND state = 'idle' AND query ILIKE 'LISTEN%'";
    let before: Vec<i32> = eventually_rows(&mut conn, listeners, |pids| pids.len() == 2).await;
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'vidsnap-listener'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("terminate the listeners");
    assert_eq!(killed, vec![true, true]);

    let after = eventually_rows(&mut conn, listeners, |pids| {
        pids.len() == 2 && pids.iter().all(|pid| !before.contains(pid))
    })
    .await;
    assert_eq!(after.len(), 2);
    // The reconnection wakes a waiter once (notifications may have been missed): use that up.
    first.wait_for_work(Duration::from_millis(300)).await;
    assert_wakes_on_enqueue(&first, &second).await;
}

/// Polls `sql` (one `int4` column) until `done` accepts its rows, for at most 10 s.
async fn eventually_rows(
    conn: &mut PgConnection,
    sql: &'static str,
    done: impl Fn(&[i32]) -> bool,
) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows: Vec<i32> = sqlx::query_scalar(sql)
            .fetch_all(&mut *conn)
            .await
            .expect("pg_stat_activity");
        if done(&rows) {
            return rows;
        }
        assert!(Instant::now() < deadline, "listeners now: {rows:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_outcomes_record_one() {
    let first = fresh().await;
    let second = first.another().await;
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
    assert_eq!(first.history(clip.id).await.expect("history").len(), 4);
}

/// A database a deployment of migrations 0001 and 0002 left, with a video in every status, an
/// owed notification and a row of the old per-video queue, upgrades in place (see
/// `assert_upgraded`).
#[tokio::test]
async fn a_database_of_migrations_1_and_2_upgrades_in_place() {
    let db = ScratchDatabase::create("vidsnap_test").await;
    let old = testing::postgres_schema_until(db.url(), 2).await;
    let at = contract::now();
    let alice = UserId::new();
    sqlx::query("INSERT INTO users (id, email, created_at) VALUES ($1, 'alice@example.com', $2)")
        .bind(alice.as_uuid())
        .bind(at)
        .execute(&old)
        .await
        .expect("a user");
    let mut videos = Vec::new();
    for (n, status) in VideoStatus::ALL.into_iter().enumerate() {
        let id = VideoId::new();
        // Older first, in status order, so the sweep's order is known.
        let updated = at - chrono::TimeDelta::seconds(60)
            + chrono::TimeDelta::microseconds(i64::try_from(n).expect("small"));
        sqlx::query(
            "INSERT INTO videos (id, owner, file_name, size, options, status, attempts,
                                 max_attempts, cycle, created_at, updated_at)
             VALUES ($1, $2, 'clip.mp4', 1234, '{}', $3, 1, 3, 0, $4, $4)",
        )
        .bind(id.as_uuid())
        .bind(alice.as_uuid())
        .bind(status.as_str())
        .bind(updated)
        .execute(&old)
        .await
        .expect("a video");
        videos.push((id, status));
    }
    sqlx::query(
        "INSERT INTO notifications (id, owner, video, cycle, event, channel, channel_key,
                                    payload, status, next_attempt_at, created_at)
         VALUES ($1, $2, $3, 0, 'video.succeeded', '{\"kind\":\"email\",\"to\":\"alice@example.com\"}',
                 'email', '{\"type\":\"video.succeeded\"}', 'pending', $4, $4)",
    )
    .bind(NotificationId::new().as_uuid())
    .bind(alice.as_uuid())
    .bind(videos[2].0.as_uuid())
    .bind(at)
    .execute(&old)
    .await
    .expect("a notification");
    sqlx::query(
        "INSERT INTO jobs (id, video, status, run_at, created_at) VALUES ($1, $2, 'queued', $3, $3)",
    )
    .bind(TaskId::new().as_uuid())
    .bind(videos[1].0.as_uuid())
    .bind(at)
    .execute(&old)
    .await
    .expect("an old queue row");
    old.close().await;

    let store = PgStore::connect(db.url()).await.expect("the upgrade");
    crate::assert_upgraded(&store, &videos).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_starts_across_stores_start_once() {
    let first = fresh().await;
    let second = first.another().await;
    let stores: [Arc<dyn Repository>; 2] = [Arc::new(first.store.clone()), Arc::new(second)];
    contract::jobs::racing_starts_across_stores(&stores).await;
}
