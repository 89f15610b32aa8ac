//! Claim throughput of the PostgreSQL task queue, on no-op tasks (each of a job of its own): for
//! each worker count, a fresh database, `--jobs` tasks enqueued first (8 enqueuers), then that
//! many workers, each in a loop of `claim` + `complete` through one shared `PgStore` (one pool, as
//! one worker process has), as fast as they can. Prints claims per second; `bench/queue` runs it.
//!
//! ```text
//! cargo run --release -p vidsnap-db --features contract --example queue_bench -- \
//!     [--jobs 20000] [--workers 1,2,4,8] [--synchronous-commit off]
//! ```
//!
//! The server is the tests' (`VIDSNAP_TEST_POSTGRES_URL`, `.services/env`, 127.0.0.1:5432).
//! `--synchronous-commit off` sets it for the bench's connections only, to show how much of the
//! cost is waiting for each commit's WAL flush.

use std::{
    error::Error,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use sqlx::{Connection, PgConnection};
use vidsnap_db::{PgStore, testing::ScratchDatabase};
use vidsnap_domain::{JobId, JobQueue, NewTask, Task};

const ENQUEUERS: usize = 8;
const LEASE: Duration = Duration::from_secs(300);

struct Args {
    jobs: usize,
    workers: Vec<usize>,
    synchronous_commit_off: bool,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        jobs: 20_000,
        workers: vec![1, 2, 4, 8],
        synchronous_commit_off: false,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let mut value = || given.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--jobs" => args.jobs = value()?.parse().map_err(|e| format!("--jobs: {e}"))?,
            "--workers" => {
                args.workers = value()?
                    .split(',')
                    .map(|n| n.trim().parse().map_err(|e| format!("--workers: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            "--synchronous-commit" => match value()?.as_str() {
                "on" => args.synchronous_commit_off = false,
                "off" => args.synchronous_commit_off = true,
                other => return Err(format!("--synchronous-commit: on or off, not {other}")),
            },
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: queue_bench [--jobs N] [--workers 1,2,4,8] \
                     [--synchronous-commit on|off]"
                ));
            }
        }
    }
    if args.jobs == 0 || args.workers.contains(&0) {
        return Err("--jobs and --workers must be positive".to_owned());
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = args()?;
    describe_server(&args).await?;
    println!(
        "{:>7}  {:>9}  {:>11}  {:>9}  {:>18}",
        "workers", "jobs", "enqueue/s", "claims/s", "ms per claim+done"
    );
    for &workers in &args.workers {
        let run = run(&args, workers).await?;
        println!(
            "{workers:>7}  {:>9}  {:>11.0}  {:>9.0}  {:>18.2}",
            args.jobs,
            args.jobs as f64 / run.enqueue.as_secs_f64(),
            args.jobs as f64 / run.claim.as_secs_f64(),
            // Each worker's average time per job: the round trips, the commits, the waits.
            run.claim.as_secs_f64() * 1e3 * workers as f64 / args.jobs as f64,
        );
    }
    Ok(())
}

/// What the figures depend on: the server, its durability settings, the machine.
async fn describe_server(args: &Args) -> Result<(), Box<dyn Error>> {
    let server = vidsnap_db::testing::postgres_server_url();
    let mut conn = PgConnection::connect(&server).await?;
    let (version, fsync, sync_commit): (String, String, String) = sqlx::query_as(
        "SELECT current_setting('server_version'), current_setting('fsync'),
                current_setting('synchronous_commit')",
    )
    .fetch_one(&mut conn)
    .await?;
    conn.close().await?;
    let sync_commit = if args.synchronous_commit_off {
        "off (for the bench's connections)".to_owned()
    } else {
        sync_commit
    };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "PostgreSQL {version} (fsync={fsync}, synchronous_commit={sync_commit}); {cpus} CPUs \
         shared by the server and this client; a fresh database per row"
    );
    Ok(())
}

struct Run {
    enqueue: Duration,
    claim: Duration,
}

async fn run(args: &Args, workers: usize) -> Result<Run, Box<dyn Error>> {
    let db = ScratchDatabase::create("vidsnap_bench").await;
    let mut url = db.url().to_owned();
    if args.synchronous_commit_off {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("options[synchronous_commit]=off");
    }
    let store = Arc::new(PgStore::connect(&url).await?);

    let started = Instant::now();
    let mut enqueuers = Vec::new();
    for n in 0..ENQUEUERS {
        let store = store.clone();
        let count = args.jobs / ENQUEUERS + usize::from(n < args.jobs % ENQUEUERS);
        enqueuers.push(tokio::spawn(async move {
            for _ in 0..count {
                store
                    .enqueue(NewTask {
                        task: Task {
                            job: JobId::new(),
                            step: "bench".to_owned(),
                            attempt: 1,
                        },
                        not_before: chrono::Utc::now(),
                    })
                    .await?;
            }
            Ok::<(), vidsnap_domain::PortError>(())
        }));
    }
    for enqueuer in enqueuers {
        enqueuer.await??;
    }
    let enqueue = started.elapsed();

    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..workers {
        let (store, done, jobs) = (store.clone(), done.clone(), args.jobs);
        tasks.push(tokio::spawn(async move {
            let worker = format!("bench-{n}");
            while done.load(Ordering::Relaxed) < jobs {
                match store.claim(&worker, LEASE).await? {
                    Some(lease) => {
                        store.complete(&lease).await?;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    // The last jobs are all held by other workers.
                    None => tokio::task::yield_now().await,
                }
            }
            Ok::<(), vidsnap_domain::PortError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let claim = started.elapsed();
    let stats = store.stats().await?;
    assert_eq!((stats.queued, stats.running), (0, 0), "every job done once");
    store.close().await;
    drop(db);
    Ok(Run { enqueue, claim })
}
