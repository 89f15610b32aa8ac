//! The database task queue: one row per queued task, at most one live per job step, leased with
//! a random token so a worker whose lease expired (and was taken over) learns it at its next
//! heartbeat instead of finishing twice.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{Row, sqlite::SqliteRow};
use uuid::Uuid;
use vidsnap_domain::{Lease, NewTask, PortError, PortResult, QueueStats, Task, TaskId};

use super::{
    SqliteStore,
    codec::{micros, now},
};
use crate::{
    clock::after,
    error::{corrupt, port_error},
};

/// At most one live task per job step. An enqueue while the step's task is queued is a no-op
/// for the same attempt (due at the earlier of the two times); while it runs, the request is
/// noted, and when that run ends (complete or dead-letter) the requested task is queued: it is
/// the worker queueing the step's next attempt before it acknowledges this one, or a user's
/// re-run racing the run's end, and must not be lost.
///
/// An enqueue naming another attempt than the one waiting replaces it, time and all: every
/// enqueue follows a committed change to the step, so the newest names the attempt the step now
/// expects (after a cancel and re-run, attempt 1 again), and the step judges each delivery anyway.
pub(super) async fn enqueue(store: &SqliteStore, task: NewTask) -> PortResult<()> {
    sqlx::query(
        "INSERT INTO tasks (id, job, step, attempt, status, run_at, created_at)
         VALUES (?, ?, ?, ?, 'queued', ?, ?)
         ON CONFLICT (job, step) WHERE status IN ('queued', 'running')
         DO UPDATE SET
             attempt = CASE WHEN status = 'queued' THEN excluded.attempt ELSE attempt END,
             run_at = CASE WHEN status <> 'queued' THEN run_at
                           WHEN attempt = excluded.attempt THEN MIN(run_at, excluded.run_at)
                           ELSE excluded.run_at END,
             rerun_attempt = CASE WHEN status = 'running' THEN excluded.attempt
                                  ELSE rerun_attempt END,
             rerun_at = CASE WHEN status <> 'running' THEN rerun_at
                             WHEN rerun_attempt = excluded.attempt
                             THEN MIN(rerun_at, excluded.run_at)
                             ELSE excluded.run_at END",
    )
    .bind(TaskId::new().to_string())
    .bind(task.task.job.to_string())
    .bind(&task.task.step)
    .bind(i64::from(task.task.attempt))
    .bind(micros(task.not_before))
    .bind(micros(now()))
    .execute(&store.pool)
    .await
    .map_err(port_error)?;
    store.work.notify_one();
    Ok(())
}

/// One statement picks and leases, so it holds SQLite's write lock from start to end: two workers
/// cannot take the same task. Tasks go in `run_at` order; a running task whose lease ran out is
/// taken over at its original place in line.
pub(super) async fn claim(
    store: &SqliteStore,
    worker: &str,
    lease: Duration,
) -> PortResult<Option<Lease>> {
    let at = now();
    let token = Uuid::new_v4().simple().to_string();
    let row = sqlx::query(
        "UPDATE tasks
         SET status = 'running', lease_owner = ?1, lease_token = ?2, lease_until = ?3,
             deliveries = deliveries + 1
         WHERE id = (
             SELECT id FROM tasks
             WHERE (status = 'queued' AND run_at <= ?4)
                OR (status = 'running' AND lease_until <= ?4)
             ORDER BY run_at, id
             LIMIT 1
         )
         RETURNING id, job, step, attempt, deliveries",
    )
    .bind(worker)
    .bind(&token)
    .bind(micros(after(at, lease)))
    .bind(micros(at))
    .fetch_optional(&store.pool)
    .await
    .map_err(port_error)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let column = |name: &str| {
        row.try_get::<String, _>(name)
            .map_err(|e| corrupt(&format!("tasks.{name}"), e))
    };
    let count = |name: &str| {
        row.try_get::<i64, _>(name)
            .ok()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| corrupt(&format!("tasks.{name}"), "not a count"))
    };
    Ok(Some(Lease {
        id: column("id")?.parse().map_err(|e| corrupt("tasks.id", e))?,
        task: Task {
            job: column("job")?
                .parse()
                .map_err(|e| corrupt("tasks.job", e))?,
            step: column("step")?,
            attempt: count("attempt")?,
        },
        deliveries: count("deliveries")?,
        token,
    }))
}

/// Runs a statement guarded by the lease (`?1` task id, `?2` token, running); no row changed means
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
        "UPDATE tasks SET lease_until = ?3
         WHERE id = ?1 AND lease_token = ?2 AND status = 'running'",
    )
    .bind(lease.id.to_string())
    .bind(&lease.token)
    .bind(micros(after(now(), extend)));
    with_lease(store, query).await
}

/// Deletes the task, or queues the one an enqueue asked for during the run.
pub(super) async fn complete(store: &SqliteStore, lease: &Lease) -> PortResult<()> {
    end_run(
        store,
        sqlx::query(
            "DELETE FROM tasks WHERE id = ?1 AND lease_token = ?2 AND status = 'running'
             RETURNING job, step, rerun_attempt, rerun_at",
        )
        .bind(lease.id.to_string())
        .bind(&lease.token),
    )
    .await
}

/// Keeps the task, dead, for inspection; queues the one an enqueue asked for during the run.
pub(super) async fn dead_letter(
    store: &SqliteStore,
    lease: &Lease,
    reason: &str,
) -> PortResult<()> {
    end_run(
        store,
        sqlx::query(
            "UPDATE tasks
             SET status = 'dead', last_error = ?3, lease_owner = NULL, lease_token = NULL,
                 lease_until = NULL
             WHERE id = ?1 AND lease_token = ?2 AND status = 'running'
             RETURNING job, step, rerun_attempt, rerun_at",
        )
        .bind(lease.id.to_string())
        .bind(&lease.token)
        .bind(reason),
    )
    .await
}

/// Runs `end` (which must return the task's `job`, `step`, `rerun_attempt` and `rerun_at`) and,
/// in the same transaction, queues the task a mid-run enqueue asked for. It cannot collide with
/// the ended task in the one-live-task index: `end` has already deleted that row or made it dead.
async fn end_run(
    store: &SqliteStore,
    end: sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
) -> PortResult<()> {
    let mut tx = store.write().await?;
    let Some(row) = end.fetch_optional(&mut *tx).await.map_err(port_error)? else {
        return Err(PortError::LeaseLost);
    };
    let rerun = rerun(&row)?;
    if let Some((attempt, run_at)) = rerun {
        sqlx::query(
            "INSERT INTO tasks (id, job, step, attempt, status, run_at, created_at)
             VALUES (?, ?, ?, ?, 'queued', ?, ?)",
        )
        .bind(TaskId::new().to_string())
        .bind(
            row.try_get::<String, _>("job")
                .map_err(|e| corrupt("tasks.job", e))?,
        )
        .bind(
            row.try_get::<String, _>("step")
                .map_err(|e| corrupt("tasks.step", e))?,
        )
        .bind(attempt)
        .bind(run_at)
        .bind(micros(now()))
        .execute(&mut *tx)
        .await
        .map_err(port_error)?;
    }
    tx.commit().await.map_err(port_error)?;
    if rerun.is_some() {
        store.work.notify_one();
    }
    Ok(())
}

/// The attempt and due time a mid-run enqueue asked for, if one did.
fn rerun(row: &SqliteRow) -> PortResult<Option<(i64, i64)>> {
    let attempt: Option<i64> = row
        .try_get("rerun_attempt")
        .map_err(|e| corrupt("tasks.rerun_attempt", e))?;
    let at: Option<i64> = row
        .try_get("rerun_at")
        .map_err(|e| corrupt("tasks.rerun_at", e))?;
    Ok(attempt.zip(at))
}

/// Queued again at `at`, or, when an enqueue during the run asked for a task, that one: at the
/// earlier of the two times for the same attempt, at its own time for another (the newest
/// request names the attempt, as in [`enqueue`]).
pub(super) async fn release(
    store: &SqliteStore,
    lease: &Lease,
    at: DateTime<Utc>,
) -> PortResult<()> {
    let query = sqlx::query(
        "UPDATE tasks
         SET status = 'queued',
             run_at = CASE WHEN rerun_attempt IS NULL THEN ?3
                           WHEN rerun_attempt = attempt THEN MIN(?3, rerun_at)
                           ELSE rerun_at END,
             attempt = COALESCE(rerun_attempt, attempt),
             rerun_at = NULL, rerun_attempt = NULL,
             lease_owner = NULL, lease_token = NULL, lease_until = NULL
         WHERE id = ?1 AND lease_token = ?2 AND status = 'running'",
    )
    .bind(lease.id.to_string())
    .bind(&lease.token)
    .bind(micros(at));
    with_lease(store, query).await?;
    store.work.notify_one();
    Ok(())
}

/// Sleeps until the earliest moment a task may be claimable (a queued task's `run_at`, a running
/// task's `lease_until`), `max_wait`, or an enqueue/release through this store, whichever comes
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
         FROM tasks WHERE status IN ('queued', 'running')",
    )
    .fetch_one(&store.pool)
    .await
    .map_err(port_error)?;
    due.map(|d| DateTime::from_timestamp_micros(d).ok_or_else(|| corrupt("tasks.run_at", d)))
        .transpose()
}

/// `oldest_queued_seconds` is how long the longest-waiting due task has been due; tasks waiting
/// out a backoff are not late.
pub(super) async fn stats(store: &SqliteStore) -> PortResult<QueueStats> {
    let at = now();
    let (queued, running, dead, oldest): (i64, i64, i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(CASE WHEN status = 'queued' THEN 1 END),
                COUNT(CASE WHEN status = 'running' THEN 1 END),
                COUNT(CASE WHEN status = 'dead' THEN 1 END),
                MIN(CASE WHEN status = 'queued' AND run_at <= ?1 THEN run_at END)
         FROM tasks",
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
