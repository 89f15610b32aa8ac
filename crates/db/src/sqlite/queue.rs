//! The database job queue: one row per job, leased with a random token so a worker whose lease
//! expired (and was taken over) learns it at its next heartbeat instead of finishing twice.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;
use vidsnap_domain::{JobId, Lease, NewJob, PortError, PortResult, QueueStats, VideoId};

use super::{
    SqliteStore,
    codec::{micros, now},
};
use crate::{
    clock::after,
    error::{corrupt, port_error},
};

/// Idempotent per video. A queued job for the video becomes due at the earlier of the two times;
/// a running one notes the request, and when that run ends (complete or dead-letter) a new job is
/// queued for it: the enqueue may be a user's retry racing the worker's last steps, and must not
/// be lost.
pub(super) async fn enqueue(store: &SqliteStore, job: NewJob) -> PortResult<()> {
    sqlx::query(
        "INSERT INTO jobs (id, video, status, run_at, created_at)
         VALUES (?, ?, 'queued', ?, ?)
         ON CONFLICT (video) WHERE status IN ('queued', 'running')
         DO UPDATE SET
             run_at = CASE WHEN status = 'queued' THEN MIN(run_at, excluded.run_at)
                           ELSE run_at END,
             rerun_at = CASE WHEN status = 'running'
                             THEN MIN(COALESCE(rerun_at, excluded.run_at), excluded.run_at)
                             ELSE rerun_at END",
    )
    .bind(JobId::new().to_string())
    .bind(job.video.to_string())
    .bind(micros(job.not_before))
    .bind(micros(now()))
    .execute(&store.pool)
    .await
    .map_err(port_error)?;
    store.work.notify_one();
    Ok(())
}

/// One statement picks and leases, so it holds SQLite's write lock from start to end: two workers
/// cannot take the same job. Jobs go in `run_at` order; a running job whose lease ran out is
/// taken over at its original place in line.
pub(super) async fn claim(
    store: &SqliteStore,
    worker: &str,
    lease: Duration,
) -> PortResult<Option<Lease>> {
    let at = now();
    let token = Uuid::new_v4().simple().to_string();
    let row: Option<(String, String, i64)> = sqlx::query_as(
        "UPDATE jobs
         SET status = 'running', lease_owner = ?1, lease_token = ?2, lease_until = ?3,
             deliveries = deliveries + 1
         WHERE id = (
             SELECT id FROM jobs
             WHERE (status = 'queued' AND run_at <= ?4)
                OR (status = 'running' AND lease_until <= ?4)
             ORDER BY run_at, id
             LIMIT 1
         )
         RETURNING id, video, deliveries",
    )
    .bind(worker)
    .bind(&token)
    .bind(micros(after(at, lease)))
    .bind(micros(at))
    .fetch_optional(&store.pool)
    .await
    .map_err(port_error)?;
    let Some((job, video, deliveries)) = row else {
        return Ok(None);
    };
    Ok(Some(Lease {
        job: job.parse::<JobId>().map_err(|e| corrupt("jobs.id", e))?,
        video: video
            .parse::<VideoId>()
            .map_err(|e| corrupt("jobs.video", e))?,
        deliveries: u32::try_from(deliveries).map_err(|e| corrupt("jobs.deliveries", e))?,
        token,
    }))
}

/// Runs a statement guarded by the lease (`?1` job id, `?2` token, running); no row changed means
/// the lease is gone.
async fn with_lease(
    store: &SqliteStore,
    query: sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
) -> PortResult<()> {
    let done = query.execute(&store.pool).await.map_err(port_error)?;
    if done.rows_affected() == 0 {
        return Err(PortError::LeaseLost);
    }
    Ok(())
}

pub(super) async fn heartbeat(
    store: &SqliteStore,
    lease: &Lease,
    extend: Duration,
) -> PortResult<()> {
    let query = sqlx::query(
        "UPDATE jobs SET lease_until = ?3
         WHERE id = ?1 AND lease_token = ?2 AND status = 'running'",
    )
    .bind(lease.job.to_string())
    .bind(&lease.token)
    .bind(micros(after(now(), extend)));
    with_lease(store, query).await
}

/// Deletes the job, or queues its successor when an enqueue arrived during the run.
pub(super) async fn complete(store: &SqliteStore, lease: &Lease) -> PortResult<()> {
    end_run(
        store,
        lease,
        sqlx::query(
            "DELETE FROM jobs WHERE id = ?1 AND lease_token = ?2 AND status = 'running'
             RETURNING rerun_at",
        )
        .bind(lease.job.to_string())
        .bind(&lease.token),
    )
    .await
}

/// Keeps the job, dead, for inspection; queues a successor when an enqueue arrived during the run.
pub(super) async fn dead_letter(
    store: &SqliteStore,
    lease: &Lease,
    reason: &str,
) -> PortResult<()> {
    end_run(
        store,
        lease,
        sqlx::query(
            "UPDATE jobs
             SET status = 'dead', last_error = ?3, lease_owner = NULL, lease_token = NULL,
                 lease_until = NULL
             WHERE id = ?1 AND lease_token = ?2 AND status = 'running'
             RETURNING rerun_at",
        )
        .bind(lease.job.to_string())
        .bind(&lease.token)
        .bind(reason),
    )
    .await
}

/// Runs `end` (which must return the job's `rerun_at`) and, in the same transaction,
/// queues the successor a mid-run enqueue asked for.
async fn end_run(
    store: &SqliteStore,
    lease: &Lease,
    end: sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
) -> PortResult<()> {
    let mut tx = store.write().await?;
    let Some(row) = end.fetch_optional(&mut *tx).await.map_err(port_error)? else {
        return Err(PortError::LeaseLost);
    };
    let rerun_at: Option<i64> = row
        .try_get("rerun_at")
        .map_err(|e| corrupt("jobs.rerun_at", e))?;
    if let Some(run_at) = rerun_at {
        sqlx::query(
            "INSERT INTO jobs (id, video, status, run_at, created_at)
             VALUES (?, ?, 'queued', ?, ?)",
        )
        .bind(JobId::new().to_string())
        .bind(lease.video.to_string())
        .bind(run_at)
        .bind(micros(now()))
        .execute(&mut *tx)
        .await
        .map_err(port_error)?;
    }
    tx.commit().await.map_err(port_error)?;
    if rerun_at.is_some() {
        store.work.notify_one();
    }
    Ok(())
}

/// Queued again at `at`, or earlier if an enqueue during the run asked for that.
pub(super) async fn release(
    store: &SqliteStore,
    lease: &Lease,
    at: DateTime<Utc>,
) -> PortResult<()> {
    let query = sqlx::query(
        "UPDATE jobs
         SET status = 'queued', run_at = MIN(?3, COALESCE(rerun_at, ?3)), rerun_at = NULL,
             lease_owner = NULL, lease_token = NULL, lease_until = NULL
         WHERE id = ?1 AND lease_token = ?2 AND status = 'running'",
    )
    .bind(lease.job.to_string())
    .bind(&lease.token)
    .bind(micros(at));
    with_lease(store, query).await?;
    store.work.notify_one();
    Ok(())
}

/// Sleeps until the earliest moment a job may be claimable (a queued job's `run_at`, a running
/// job's `lease_until`), `max_wait`, or an enqueue/release through this store, whichever comes
/// first. A failing database reads as "nothing known": wait the full `max_wait`.
pub(super) async fn wait_for_work(store: &SqliteStore, max_wait: Duration) {
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
    let _ = tokio::time::timeout(wait, store.work.notified()).await;
}

async fn next_due(store: &SqliteStore) -> PortResult<Option<DateTime<Utc>>> {
    let due: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(CASE WHEN status = 'queued' THEN run_at ELSE lease_until END)
         FROM jobs WHERE status IN ('queued', 'running')",
    )
    .fetch_one(&store.pool)
    .await
    .map_err(port_error)?;
    due.map(|d| DateTime::from_timestamp_micros(d).ok_or_else(|| corrupt("jobs.run_at", d)))
        .transpose()
}

/// `oldest_queued_seconds` is how long the longest-waiting due job has been due; jobs waiting
/// out a backoff are not late.
pub(super) async fn stats(store: &SqliteStore) -> PortResult<QueueStats> {
    let at = now();
    let (queued, running, dead, oldest): (i64, i64, i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(CASE WHEN status = 'queued' THEN 1 END),
                COUNT(CASE WHEN status = 'running' THEN 1 END),
                COUNT(CASE WHEN status = 'dead' THEN 1 END),
                MIN(CASE WHEN status = 'queued' AND run_at <= ?1 THEN run_at END)
         FROM jobs",
    )
    .bind(micros(at))
    .fetch_one(&store.pool)
    .await
    .map_err(port_error)?;
    let count = |n: i64| u64::try_from(n).map_err(|e| corrupt("count", e));
    Ok(QueueStats {
        queued: count(queued)?,
        running: count(running)?,
        dead: count(dead)?,
        oldest_queued_seconds: oldest.map(|o| (micros(at) - o) as f64 / 1e6),
    })
}
