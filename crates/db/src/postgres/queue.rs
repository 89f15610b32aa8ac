//! The database job queue: one row per job, leased with a random token so a worker whose lease
//! expired (and was taken over) learns it at its next heartbeat instead of finishing twice.
//!
//! Every change that makes a job claimable (enqueue, release, a run's end that queues the next)
//! is followed, once committed, by a `pg_notify` on [`CHANNEL`]; every store's listener (see
//! `listener`) then wakes a waiting worker.
//!
//! Lease bookkeeping (claim, heartbeat, complete, release, dead-letter) commits without waiting
//! for the WAL flush (`PgStore::leases`): on this VM a flush takes ~2.4 ms, which capped four
//! workers at ~830 jobs/s. Losing such a commit in a server crash only redelivers a job; the
//! video's status is written durably elsewhere, and enqueues stay durable.
//!
//! The notification is its own statement, after the commit, not part of the change's transaction:
//! a transaction that notifies holds PostgreSQL's cluster-wide notification lock from before its
//! commit until the commit's WAL flush is done, so notifying commits run one flush at a time
//! instead of sharing flushes. On this project's 2-core VM (fdatasync ~2.4 ms), 8 concurrent
//! enqueues ran at ~400/s notifying inside the transaction and ~2,400/s notifying after it. The
//! notification carries no xid and writes no WAL, so it holds that lock only for an instant.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;
use vidsnap_domain::{JobId, Lease, NewJob, PortError, PortResult, QueueStats, VideoId};

use super::{PgStore, codec::now, listener::CHANNEL};
use crate::{
    clock::after,
    error::{corrupt, port_error},
};

/// Idempotent per video. A queued job for the video becomes due at the earlier of the two times;
/// a running one notes the request, and when that run ends (complete or dead-letter) a new job is
/// queued for it: the enqueue may be a user's retry racing the worker's last steps, and must not
/// be lost. `ON CONFLICT` is atomic against a run ending concurrently: it waits for that
/// transaction and then updates the successor or inserts anew.
pub(super) async fn enqueue(store: &PgStore, job: NewJob) -> PortResult<()> {
    sqlx::query(
        "INSERT INTO jobs (id, video, status, run_at, created_at)
         VALUES ($1, $2, 'queued', $3, $4)
         ON CONFLICT (video) WHERE status IN ('queued', 'running')
         DO UPDATE SET
             run_at = CASE WHEN jobs.status = 'queued'
                           THEN LEAST(jobs.run_at, excluded.run_at)
                           ELSE jobs.run_at END,
             rerun_at = CASE WHEN jobs.status = 'running'
                             THEN LEAST(jobs.rerun_at, excluded.run_at)
                             ELSE jobs.rerun_at END",
    )
    .bind(JobId::new().as_uuid())
    .bind(job.video.as_uuid())
    .bind(job.not_before)
    .bind(now())
    .execute(&store.pool)
    .await
    .map_err(port_error)?;
    wake_workers(store).await;
    Ok(())
}

/// Tells every store's listener that a job may be claimable. The change is committed already, so
/// a failure here is not the caller's: workers still find the job at its due time or their
/// `max_wait`.
async fn wake_workers(store: &PgStore) {
    let sent = sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(&store.pool)
        .await;
    if let Err(error) = sent {
        tracing::warn!(channel = CHANNEL, %error, "cannot notify workers of a queued job");
    }
}

/// One statement picks and leases. `FOR UPDATE SKIP LOCKED` makes concurrent claimers (in this
/// process or another) pass over the row another is taking instead of queueing behind it, and
/// the lock re-checks the conditions on the row's latest version, so two workers never take the
/// same job. Jobs go in `run_at` order; a running job whose lease ran out is taken over at its
/// original place in line.
///
/// `run_at <= now` bounds the index scan for running jobs too: a running job's `run_at` is the
/// time it became due, which was before it was claimed.
pub(super) async fn claim(
    store: &PgStore,
    worker: &str,
    lease: Duration,
) -> PortResult<Option<Lease>> {
    let at = now();
    let token = Uuid::new_v4().simple().to_string();
    let row: Option<(Uuid, Uuid, i64)> = sqlx::query_as(
        "UPDATE jobs
         SET status = 'running', lease_owner = $1, lease_token = $2, lease_until = $3,
             deliveries = deliveries + 1
         WHERE id = (
             SELECT id FROM jobs
             WHERE status IN ('queued', 'running') AND run_at <= $4
               AND (status = 'queued' OR lease_until <= $4)
             ORDER BY run_at, id
             LIMIT 1
             FOR UPDATE SKIP LOCKED
         )
         RETURNING id, video, deliveries",
    )
    .bind(worker)
    .bind(&token)
    .bind(after(at, lease))
    .bind(at)
    .fetch_optional(&store.leases)
    .await
    .map_err(port_error)?;
    let Some((job, video, deliveries)) = row else {
        return Ok(None);
    };
    Ok(Some(Lease {
        job: JobId::from_uuid(job),
        video: VideoId::from_uuid(video),
        deliveries: u32::try_from(deliveries).map_err(|e| corrupt("jobs.deliveries", e))?,
        token,
    }))
}

pub(super) async fn heartbeat(store: &PgStore, lease: &Lease, extend: Duration) -> PortResult<()> {
    let done = sqlx::query(
        "UPDATE jobs SET lease_until = $3
         WHERE id = $1 AND lease_token = $2 AND status = 'running'",
    )
    .bind(lease.job.as_uuid())
    .bind(&lease.token)
    .bind(after(now(), extend))
    .execute(&store.leases)
    .await
    .map_err(port_error)?;
    if done.rows_affected() == 0 {
        return Err(PortError::LeaseLost);
    }
    Ok(())
}

/// `end` (guarded by the lease: `$1` job id, `$2` token) followed, in the same statement, by the
/// successor a mid-run enqueue asked for (`rerun_at`: `$3` its id, `$4` now). One row, saying
/// whether a successor was queued, when the lease held; none when it was lost. The successor
/// cannot collide with the ended job in the one-live-job index: this statement has already
/// deleted that row or made it dead.
macro_rules! end_run {
    ($end:literal) => {
        concat!(
            "WITH ended AS (",
            $end,
            " RETURNING video, rerun_at),
             next AS (
                 INSERT INTO jobs (id, video, status, run_at, created_at)
                 SELECT $3, video, 'queued', rerun_at, $4 FROM ended WHERE rerun_at IS NOT NULL
                 RETURNING 1
             )
             SELECT EXISTS (SELECT 1 FROM next) FROM ended"
        )
    };
}

/// Deletes the job, or queues its successor when an enqueue arrived during the run.
pub(super) async fn complete(store: &PgStore, lease: &Lease) -> PortResult<()> {
    let sql =
        end_run!("DELETE FROM jobs WHERE id = $1 AND lease_token = $2 AND status = 'running'");
    end_run(store, lease, sql, None).await
}

/// Keeps the job, dead, for inspection; queues a successor when an enqueue arrived during the run.
pub(super) async fn dead_letter(store: &PgStore, lease: &Lease, reason: &str) -> PortResult<()> {
    let sql = end_run!(
        "UPDATE jobs
         SET status = 'dead', last_error = $5, lease_owner = NULL, lease_token = NULL,
             lease_until = NULL
         WHERE id = $1 AND lease_token = $2 AND status = 'running'"
    );
    end_run(store, lease, sql, Some(reason)).await
}

/// Runs an [`end_run!`] statement; `reason` is its `$5`, when it has one.
async fn end_run(
    store: &PgStore,
    lease: &Lease,
    sql: &'static str,
    reason: Option<&str>,
) -> PortResult<()> {
    let mut query = sqlx::query_scalar(sql)
        .bind(lease.job.as_uuid())
        .bind(&lease.token)
        .bind(JobId::new().as_uuid())
        .bind(now());
    if let Some(reason) = reason {
        query = query.bind(reason);
    }
    let requeued: Option<bool> = query
        .fetch_optional(&store.leases)
        .await
        .map_err(port_error)?;
    match requeued {
        None => Err(PortError::LeaseLost),
        Some(requeued) => {
            if requeued {
                wake_workers(store).await;
            }
            Ok(())
        }
    }
}

/// Queued again at `at`, or earlier if an enqueue during the run asked for that.
pub(super) async fn release(store: &PgStore, lease: &Lease, at: DateTime<Utc>) -> PortResult<()> {
    let released = sqlx::query(
        "UPDATE jobs
         SET status = 'queued', run_at = LEAST($3, rerun_at), rerun_at = NULL,
             lease_owner = NULL, lease_token = NULL, lease_until = NULL
         WHERE id = $1 AND lease_token = $2 AND status = 'running'",
    )
    .bind(lease.job.as_uuid())
    .bind(&lease.token)
    .bind(at)
    .execute(&store.leases)
    .await
    .map_err(port_error)?;
    if released.rows_affected() == 0 {
        return Err(PortError::LeaseLost);
    }
    wake_workers(store).await;
    Ok(())
}

/// Sleeps until the earliest moment a job may be claimable (a queued job's `run_at`, a running
/// job's `lease_until`), `max_wait`, or a notification from any store on this database,
/// whichever comes first. A failing database reads as "nothing known": wait the full `max_wait`.
pub(super) async fn wait_for_work(store: &PgStore, max_wait: Duration) {
    let wait = match next_due(store).await {
        Ok(Some(due)) => (due - now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(max_wait),
        Ok(None) | Err(_) => max_wait,
    };
    if wait.is_zero() {
        return;
    }
    // Timing out is the ordinary outcome.
    let _ = tokio::time::timeout(wait, store.wake.work.notified()).await;
}

/// Two index-friendly minimums rather than one over every live job.
async fn next_due(store: &PgStore) -> PortResult<Option<DateTime<Utc>>> {
    sqlx::query_scalar(
        "SELECT LEAST(
             (SELECT MIN(run_at) FROM jobs WHERE status = 'queued'),
             (SELECT MIN(lease_until) FROM jobs WHERE status = 'running')
         )",
    )
    .fetch_one(&store.pool)
    .await
    .map_err(port_error)
}

/// `oldest_queued_seconds` is how long the longest-waiting due job has been due; jobs waiting
/// out a backoff are not late.
pub(super) async fn stats(store: &PgStore) -> PortResult<QueueStats> {
    let at = now();
    let (queued, running, dead, oldest): (i64, i64, i64, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT COUNT(*) FILTER (WHERE status = 'queued'),
                COUNT(*) FILTER (WHERE status = 'running'),
                COUNT(*) FILTER (WHERE status = 'dead'),
                MIN(run_at) FILTER (WHERE status = 'queued' AND run_at <= $1)
         FROM jobs",
    )
    .bind(at)
    .fetch_one(&store.pool)
    .await
    .map_err(port_error)?;
    let count = |n: i64| u64::try_from(n).map_err(|e| corrupt("count", e));
    Ok(QueueStats {
        queued: count(queued)?,
        running: count(running)?,
        dead: count(dead)?,
        oldest_queued_seconds: oldest.map(|o| {
            (at - o)
                .num_microseconds()
                .map_or(f64::MAX, |us| us as f64 / 1e6)
        }),
    })
}
