//! The database task queue: one row per queued task, at most one live per job step, leased with
//! a random token so a worker whose lease expired (and was taken over) learns it at its next
//! heartbeat instead of finishing twice.
//!
//! Every change that makes a task claimable (enqueue, release, a run's end that queues the next)
//! is followed, once committed, by a `pg_notify` on [`CHANNEL`]; every store's listener (see
//! `listener`) then wakes a waiting worker.
//!
//! Lease bookkeeping (claim, heartbeat, complete, release, dead-letter) commits without waiting
//! for the WAL flush (`PgStore::leases`): on this VM a flush takes ~2.4 ms, which capped four
//! workers at ~830 jobs/s. Losing such a commit in a server crash only redelivers a task; the
//! step's status is written durably elsewhere, and enqueues stay durable.
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
use vidsnap_domain::{JobId, Lease, NewTask, PortError, PortResult, QueueStats, Task, TaskId};

use super::{PgStore, codec::now, listener::CHANNEL};
use crate::{
    clock::after,
    error::{corrupt, port_error},
};

/// At most one live task per job step. An enqueue while the step's task is queued is a no-op
/// for the same attempt (due at the earlier of the two times); while it runs, the request is
/// noted, and when that run ends (complete or dead-letter) the requested task is queued: it is
/// the worker queueing the step's next attempt before it acknowledges this one, or a user's
/// re-run racing the run's end, and must not be lost. `ON CONFLICT` is atomic against a run
/// ending concurrently: it waits for that transaction and then updates the successor or inserts
/// anew.
///
/// An enqueue naming another attempt than the one waiting replaces it, time and all: every
/// enqueue follows a committed change to the step, so the newest names the attempt the step now
/// expects (after a cancel and re-run, attempt 1 again), and the step judges each delivery anyway.
pub(super) async fn enqueue(store: &PgStore, task: NewTask) -> PortResult<()> {
    sqlx::query(
        "INSERT INTO tasks (id, job, step, attempt, status, run_at, created_at)
         VALUES ($1, $2, $3, $4, 'queued', $5, $6)
         ON CONFLICT (job, step) WHERE status IN ('queued', 'running')
         DO UPDATE SET
             attempt = CASE WHEN tasks.status = 'queued' THEN excluded.attempt
                            ELSE tasks.attempt END,
             run_at = CASE WHEN tasks.status <> 'queued' THEN tasks.run_at
                           WHEN tasks.attempt = excluded.attempt
                           THEN LEAST(tasks.run_at, excluded.run_at)
                           ELSE excluded.run_at END,
             rerun_attempt = CASE WHEN tasks.status = 'running' THEN excluded.attempt
                                  ELSE tasks.rerun_attempt END,
             rerun_at = CASE WHEN tasks.status <> 'running' THEN tasks.rerun_at
                             WHEN tasks.rerun_attempt = excluded.attempt
                             THEN LEAST(tasks.rerun_at, excluded.run_at)
                             ELSE excluded.run_at END",
    )
    .bind(TaskId::new().as_uuid())
    .bind(task.task.job.as_uuid())
    .bind(&task.task.step)
    .bind(i64::from(task.task.attempt))
    .bind(task.not_before)
    .bind(now())
    .execute(&store.pool)
    .await
    .map_err(port_error)?;
    wake_workers(store).await;
    Ok(())
}

/// Tells every store's listener that a task may be claimable. The change is committed already,
/// so a failure here is not the caller's: workers still find the task at its due time or their
/// `max_wait`.
async fn wake_workers(store: &PgStore) {
    let sent = sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(&store.pool)
        .await;
    if let Err(error) = sent {
        tracing::warn!(channel = CHANNEL, %error, "cannot notify workers of a queued task");
    }
}

/// One statement picks and leases. `FOR UPDATE SKIP LOCKED` makes concurrent claimers (in this
/// process or another) pass over the row another is taking instead of queueing behind it, and
/// the lock re-checks the conditions on the row's latest version, so two workers never take the
/// same task. Tasks go in `run_at` order; a running task whose lease ran out is taken over at its
/// original place in line.
///
/// `run_at <= now` bounds the index scan for running tasks too: a running task's `run_at` is the
/// time it became due, which was before it was claimed.
pub(super) async fn claim(
    store: &PgStore,
    worker: &str,
    lease: Duration,
) -> PortResult<Option<Lease>> {
    let at = now();
    let token = Uuid::new_v4().simple().to_string();
    let row: Option<(Uuid, Uuid, String, i64, i64)> = sqlx::query_as(
        "UPDATE tasks
         SET status = 'running', lease_owner = $1, lease_token = $2, lease_until = $3,
             deliveries = deliveries + 1
         WHERE id = (
             SELECT id FROM tasks
             WHERE status IN ('queued', 'running') AND run_at <= $4
               AND (status = 'queued' OR lease_until <= $4)
             ORDER BY run_at, id
             LIMIT 1
             FOR UPDATE SKIP LOCKED
         )
         RETURNING id, job, step, attempt, deliveries",
    )
    .bind(worker)
    .bind(&token)
    .bind(after(at, lease))
    .bind(at)
    .fetch_optional(&store.leases)
    .await
    .map_err(port_error)?;
    let Some((id, job, step, attempt, deliveries)) = row else {
        return Ok(None);
    };
    let count = |n: i64, what| u32::try_from(n).map_err(|e| corrupt(what, e));
    Ok(Some(Lease {
        id: TaskId::from_uuid(id),
        task: Task {
            job: JobId::from_uuid(job),
            step,
            attempt: count(attempt, "tasks.attempt")?,
        },
        deliveries: count(deliveries, "tasks.deliveries")?,
        token,
    }))
}

pub(super) async fn heartbeat(store: &PgStore, lease: &Lease, extend: Duration) -> PortResult<()> {
    let done = sqlx::query(
        "UPDATE tasks SET lease_until = $3
         WHERE id = $1 AND lease_token = $2 AND status = 'running'",
    )
    .bind(lease.id.as_uuid())
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

/// `end` (guarded by the lease: `$1` task id, `$2` token) followed, in the same statement, by the
/// task a mid-run enqueue asked for (`rerun_attempt` at `rerun_at`: `$3` its id, `$4` now). One
/// row, saying whether a task was queued, when the lease held; none when it was lost. The new
/// task cannot collide with the ended one in the one-live-task index: this statement has already
/// deleted that row or made it dead.
macro_rules! end_run {
    ($end:literal) => {
        concat!(
            "WITH ended AS (",
            $end,
            " RETURNING job, step, rerun_attempt, rerun_at),
             next AS (
                 INSERT INTO tasks (id, job, step, attempt, status, run_at, created_at)
                 SELECT $3, job, step, rerun_attempt, 'queued', rerun_at, $4 FROM ended
                 WHERE rerun_attempt IS NOT NULL
                 RETURNING 1
             )
             SELECT EXISTS (SELECT 1 FROM next) FROM ended"
        )
    };
}

/// Deletes the task, or queues the one an enqueue asked for during the run.
pub(super) async fn complete(store: &PgStore, lease: &Lease) -> PortResult<()> {
    let sql =
        end_run!("DELETE FROM tasks WHERE id = $1 AND lease_token = $2 AND status = 'running'");
    end_run(store, lease, sql, None).await
}

/// Keeps the task, dead, for inspection; queues the one an enqueue asked for during the run.
pub(super) async fn dead_letter(store: &PgStore, lease: &Lease, reason: &str) -> PortResult<()> {
    let sql = end_run!(
        "UPDATE tasks
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
        .bind(lease.id.as_uuid())
        .bind(&lease.token)
        .bind(TaskId::new().as_uuid())
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

/// Queued again at `at`, or, when an enqueue during the run asked for a task, that one: at the
/// earlier of the two times for the same attempt, at its own time for another (the newest
/// request names the attempt, as in [`enqueue`]).
pub(super) async fn release(store: &PgStore, lease: &Lease, at: DateTime<Utc>) -> PortResult<()> {
    let released = sqlx::query(
        "UPDATE tasks
         SET status = 'queued',
             run_at = CASE WHEN rerun_attempt IS NULL THEN $3
                           WHEN rerun_attempt = attempt THEN LEAST($3, rerun_at)
                           ELSE rerun_at END,
             attempt = COALESCE(rerun_attempt, attempt),
             rerun_at = NULL, rerun_attempt = NULL,
             lease_owner = NULL, lease_token = NULL, lease_until = NULL
         WHERE id = $1 AND lease_token = $2 AND status = 'running'",
    )
    .bind(lease.id.as_uuid())
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

/// Sleeps until the earliest moment a task may be claimable (a queued task's `run_at`, a running
/// task's `lease_until`), `max_wait`, or a notification from any store on this database,
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

/// Two index-friendly minimums rather than one over every live task.
async fn next_due(store: &PgStore) -> PortResult<Option<DateTime<Utc>>> {
    sqlx::query_scalar(
        "SELECT LEAST(
             (SELECT MIN(run_at) FROM tasks WHERE status = 'queued'),
             (SELECT MIN(lease_until) FROM tasks WHERE status = 'running')
         )",
    )
    .fetch_one(&store.pool)
    .await
    .map_err(port_error)
}

/// `oldest_queued_seconds` is how long the longest-waiting due task has been due; tasks waiting
/// out a backoff are not late.
pub(super) async fn stats(store: &PgStore) -> PortResult<QueueStats> {
    let at = now();
    let (queued, running, dead, oldest): (i64, i64, i64, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT COUNT(*) FILTER (WHERE status = 'queued'),
                COUNT(*) FILTER (WHERE status = 'running'),
                COUNT(*) FILTER (WHERE status = 'dead'),
                MIN(run_at) FILTER (WHERE status = 'queued' AND run_at <= $1)
         FROM tasks",
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
