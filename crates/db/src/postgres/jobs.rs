//! Jobs: creation with their steps, inputs and first events, reads, the listing, and the
//! statements of a change (`crate::jobs` holds its logic, shared with SQLite). A change locks
//! the job's row (`FOR UPDATE`) before it reads, so changes to one job run one after the other,
//! each deciding on the steps the previous one committed; changes to other jobs run beside it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, Row, Transaction, postgres::PgRow};
use uuid::Uuid;
use vidsnap_domain::{
    Change, EventType, Job, JobId, JobStatus, JobUpdate, Page, PortError, PortResult, Step,
    StepEvent, Task, Transition, UserId, Video, VideoId,
};

use super::{
    PgStore,
    codec::{self, to_json},
    notifications, videos,
};
use crate::{
    error::{corrupt, port_error},
    event::Subject,
    jobs::{self, JobTx},
};

/// A read of a job and its steps sees one snapshot: under READ COMMITTED each statement would
/// see its own, and a change committing between them would pair a job row with newer steps.
const SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// The job, its input index, its steps and the events that made it, in one transaction. An input
/// (or the job's own video) that is missing or another user's is `NotFound`, with nothing
/// stored.
pub(super) async fn create_job(store: &PgStore, job: &Job, events: &[StepEvent]) -> PortResult<()> {
    let mut tx = store.pool.begin().await.map_err(port_error)?;
    match insert_job(&mut tx, job, events).await {
        Ok(()) => tx.commit().await.map_err(port_error),
        Err(error) => {
            let _ = tx.rollback().await;
            Err(error)
        }
    }
}

async fn insert_job(conn: &mut PgConnection, job: &Job, events: &[StepEvent]) -> PortResult<()> {
    if let Some(video) = job.video {
        // The video's own job: linked to it unless it has one (a video from before jobs gets
        // its first here), and no other.
        let linked = sqlx::query(
            "UPDATE videos SET job = $1
             WHERE id = $2 AND owner = $3 AND (job IS NULL OR job = $1)",
        )
        .bind(job.id.as_uuid())
        .bind(video.as_uuid())
        .bind(job.owner.as_uuid())
        .execute(&mut *conn)
        .await
        .map_err(port_error)?;
        if linked.rows_affected() == 0 {
            // Another job got there first (two schedulers sweeping at once): store nothing.
            let exists: Option<(Uuid,)> =
                sqlx::query_as("SELECT id FROM videos WHERE id = $1 AND owner = $2")
                    .bind(video.as_uuid())
                    .bind(job.owner.as_uuid())
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(port_error)?;
            return Err(match exists {
                Some(_) => PortError::Conflict("the video has another job".to_owned()),
                None => PortError::NotFound,
            });
        }
    }
    sqlx::query(
        "INSERT INTO jobs (id, owner, recipe_name, recipe, params, inputs, video, status, cycle,
                           created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(job.id.as_uuid())
    .bind(job.owner.as_uuid())
    .bind(job.recipe_name.as_deref())
    .bind(to_json(&job.recipe)?)
    .bind(to_json(&job.params)?)
    .bind(to_json(&job.inputs)?)
    .bind(job.video.map(|v| v.as_uuid()))
    .bind(job.status.as_str())
    .bind(i64::from(job.cycle))
    .bind(job.created_at)
    .bind(job.updated_at)
    .execute(&mut *conn)
    .await
    .map_err(port_error)?;
    for (name, input) in &job.inputs {
        // Selecting the video by id and owner checks both in the insert itself.
        let indexed = sqlx::query(
            "INSERT INTO job_inputs (job, name, video)
             SELECT $1, $2, id FROM videos WHERE id = $3 AND owner = $4",
        )
        .bind(job.id.as_uuid())
        .bind(name)
        .bind(input.video.as_uuid())
        .bind(job.owner.as_uuid())
        .execute(&mut *conn)
        .await
        .map_err(port_error)?;
        if indexed.rows_affected() == 0 {
            return Err(PortError::NotFound);
        }
    }
    for (position, step) in job.steps.iter().enumerate() {
        let position = i64::try_from(position).map_err(|e| corrupt("steps.position", e))?;
        sqlx::query(
            "INSERT INTO steps (job, name, position, status, attempts, run, max_attempts, last_error,
                                progress, run_at, lease_until, worker, started_at, finished_at,
                                artefacts, result)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(job.id.as_uuid())
        .bind(&step.name)
        .bind(position)
        .bind(step.status.as_str())
        .bind(i64::from(step.attempts))
        .bind(i64::from(step.run))
        .bind(i64::from(step.max_attempts))
        .bind(step.last_error.as_ref().map(to_json).transpose()?)
        .bind(step.progress.map(i64::from))
        .bind(step.run_at)
        .bind(step.lease_until)
        .bind(step.worker.as_deref())
        .bind(step.started_at)
        .bind(step.finished_at)
        .bind(to_json(&step.artefacts)?)
        .bind(step.result.as_ref().map(to_json).transpose()?)
        .execute(&mut *conn)
        .await
        .map_err(port_error)?;
    }
    record_events(conn, job.id, events).await
}

/// Every column a change can move; `name` and `position` never do.
async fn update_step(conn: &mut PgConnection, job: JobId, step: &Step) -> PortResult<()> {
    sqlx::query(
        "UPDATE steps
         SET status = $1, attempts = $2, run = $3, max_attempts = $4, last_error = $5,
             progress = $6, run_at = $7, lease_until = $8, worker = $9, started_at = $10,
             finished_at = $11, artefacts = $12, result = $13
         WHERE job = $14 AND name = $15",
    )
    .bind(step.status.as_str())
    .bind(i64::from(step.attempts))
    .bind(i64::from(step.run))
    .bind(i64::from(step.max_attempts))
    .bind(step.last_error.as_ref().map(to_json).transpose()?)
    .bind(step.progress.map(i64::from))
    .bind(step.run_at)
    .bind(step.lease_until)
    .bind(step.worker.as_deref())
    .bind(step.started_at)
    .bind(step.finished_at)
    .bind(to_json(&step.artefacts)?)
    .bind(step.result.as_ref().map(to_json).transpose()?)
    .bind(job.as_uuid())
    .bind(&step.name)
    .execute(conn)
    .await
    .map_err(port_error)?;
    Ok(())
}

async fn record_events(
    conn: &mut PgConnection,
    job: JobId,
    events: &[StepEvent],
) -> PortResult<()> {
    for event in events {
        sqlx::query(
            "INSERT INTO step_events (job, step, status, attempt, at, reason)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(job.as_uuid())
        .bind(&event.step)
        .bind(event.status.as_str())
        .bind(i64::from(event.attempt))
        .bind(event.at)
        .bind(event.reason.as_deref())
        .execute(&mut *conn)
        .await
        .map_err(port_error)?;
    }
    Ok(())
}

/// The job row (`owner` checked when given) and its steps, on one connection; `lock` takes the
/// row lock every change takes first.
async fn load(
    conn: &mut PgConnection,
    owner: Option<UserId>,
    id: JobId,
    lock: bool,
) -> PortResult<Job> {
    let sql = if lock {
        "SELECT * FROM jobs WHERE id = $1 AND ($2::uuid IS NULL OR owner = $2) FOR UPDATE"
    } else {
        "SELECT * FROM jobs WHERE id = $1 AND ($2::uuid IS NULL OR owner = $2)"
    };
    let row = sqlx::query(sql)
        .bind(id.as_uuid())
        .bind(owner.map(|o| o.as_uuid()))
        .fetch_one(&mut *conn)
        .await
        .map_err(port_error)?;
    let steps = sqlx::query("SELECT * FROM steps WHERE job = $1 ORDER BY position")
        .bind(id.as_uuid())
        .fetch_all(&mut *conn)
        .await
        .map_err(port_error)?;
    codec::job(&row, &steps)
}

pub(super) async fn job(store: &PgStore, owner: Option<UserId>, id: JobId) -> PortResult<Job> {
    let mut tx = store.pool.begin_with(SNAPSHOT).await.map_err(port_error)?;
    let job = load(&mut tx, owner, id, false).await;
    let _ = tx.rollback().await;
    job
}

/// Newest first, like the videos' listing: the cursor is the last id of the previous page, a
/// malformed one is `NotFound`, a `limit` of 0 is read as 1.
pub(super) async fn jobs(
    store: &PgStore,
    owner: UserId,
    status: Option<JobStatus>,
    cursor: Option<&str>,
    limit: u32,
) -> PortResult<Page<Job>> {
    let after = cursor
        .map(|c| c.parse::<JobId>().map_err(|_| PortError::NotFound))
        .transpose()?;
    let limit = limit.max(1);
    let mut tx = store.pool.begin_with(SNAPSHOT).await.map_err(port_error)?;
    let rows = sqlx::query(
        "SELECT * FROM jobs
         WHERE owner = $1 AND ($2::text IS NULL OR status = $2) AND ($3::uuid IS NULL OR id < $3)
         ORDER BY id DESC
         LIMIT $4",
    )
    .bind(owner.as_uuid())
    .bind(status.map(JobStatus::as_str))
    .bind(after.map(|id| id.as_uuid()))
    // One more than asked tells whether another page exists.
    .bind(i64::from(limit) + 1)
    .fetch_all(&mut *tx)
    .await
    .map_err(port_error)?;
    let ids: Vec<Uuid> = rows
        .iter()
        .take(limit as usize)
        .map(|row| row.try_get("id").map_err(|e| corrupt("jobs.id", e)))
        .collect::<PortResult<_>>()?;
    // Every step of the page in one statement.
    let step_rows = sqlx::query("SELECT * FROM steps WHERE job = ANY($1) ORDER BY job, position")
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(port_error)?;
    let _ = tx.rollback().await;
    let mut steps: BTreeMap<Uuid, Vec<PgRow>> = BTreeMap::new();
    for row in step_rows {
        let job: Uuid = row.try_get("job").map_err(|e| corrupt("steps.job", e))?;
        steps.entry(job).or_default().push(row);
    }
    let items = rows
        .iter()
        .zip(&ids)
        .map(|(row, id)| codec::job(row, steps.get(id).map_or(&[], Vec::as_slice)))
        .collect::<PortResult<Vec<_>>>()?;
    let next_cursor = if rows.len() > limit as usize {
        items.last().map(|job| job.id.to_string())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// Oldest first; `NotFound` for an unknown job.
pub(super) async fn job_events(store: &PgStore, id: JobId) -> PortResult<Vec<StepEvent>> {
    let mut conn = store.pool.acquire().await.map_err(port_error)?;
    sqlx::query("SELECT id FROM jobs WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_one(&mut *conn)
        .await
        .map_err(port_error)?;
    let rows = sqlx::query("SELECT * FROM step_events WHERE job = $1 ORDER BY seq")
        .bind(id.as_uuid())
        .fetch_all(&mut *conn)
        .await
        .map_err(port_error)?;
    codec::all(&rows, codec::step_event)
}

pub(super) async fn change_job(
    store: &PgStore,
    owner: Option<UserId>,
    id: JobId,
    change: Change,
) -> PortResult<JobUpdate> {
    let tx = LockTx(store.pool.begin().await.map_err(port_error)?);
    jobs::change_job(tx, owner, id, change).await
}

/// A change's statements, in a transaction holding the job's row lock from the first read.
struct LockTx(Transaction<'static, Postgres>);

#[async_trait]
impl JobTx for LockTx {
    async fn lock(&mut self, owner: Option<UserId>, id: JobId) -> PortResult<Job> {
        load(&mut self.0, owner, id, true).await
    }

    async fn save(
        &mut self,
        job: &Job,
        row: bool,
        steps: &[usize],
        events: &[StepEvent],
    ) -> PortResult<()> {
        if row {
            sqlx::query(
                "UPDATE jobs SET recipe = $1, inputs = $2, status = $3, cycle = $4, updated_at = $5
                 WHERE id = $6",
            )
            .bind(to_json(&job.recipe)?)
            .bind(to_json(&job.inputs)?)
            .bind(job.status.as_str())
            .bind(i64::from(job.cycle))
            .bind(job.updated_at)
            .bind(job.id.as_uuid())
            .execute(&mut *self.0)
            .await
            .map_err(port_error)?;
        }
        for &i in steps {
            update_step(&mut self.0, job.id, &job.steps[i]).await?;
        }
        record_events(&mut self.0, job.id, events).await
    }

    async fn transition(&mut self, video: VideoId, change: Transition) -> PortResult<Video> {
        videos::transition_in(&mut self.0, video, change).await
    }

    async fn owe(&mut self, job: &Job, event: EventType, at: DateTime<Utc>) -> PortResult<()> {
        notifications::owe(&mut self.0, Subject::Job(job), event, at).await
    }

    async fn commit(self) -> PortResult<()> {
        self.0.commit().await.map_err(port_error)
    }

    async fn rollback(self) {
        let _ = self.0.rollback().await;
    }
}

/// The ids of `ids` that have a row.
pub(super) async fn existing_jobs(store: &PgStore, ids: &[JobId]) -> PortResult<Vec<JobId>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = ids.iter().map(JobId::as_uuid).collect();
    let found: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM jobs WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(&store.pool)
        .await
        .map_err(port_error)?;
    Ok(found.into_iter().map(JobId::from_uuid).collect())
}

/// The unfinished jobs reading `video` while it is not uploaded.
pub(super) async fn jobs_waiting_for(store: &PgStore, video: VideoId) -> PortResult<Vec<JobId>> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT DISTINCT jobs.id, jobs.inputs FROM job_inputs JOIN jobs ON jobs.id = job_inputs.job
         WHERE job_inputs.video = $1 AND jobs.status IN ('waiting', 'queued', 'running')
         ORDER BY jobs.id",
    )
    .bind(video.as_uuid())
    .fetch_all(&store.pool)
    .await
    .map_err(port_error)?;
    let waiting = jobs::waiting_for(
        rows.iter().map(|(id, inputs)| (*id, inputs.as_str())),
        video,
    )?;
    Ok(waiting.into_iter().map(JobId::from_uuid).collect())
}

pub(super) async fn jobs_reading(store: &PgStore, video: VideoId) -> PortResult<Vec<JobId>> {
    let rows: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT DISTINCT jobs.id FROM job_inputs JOIN jobs ON jobs.id = job_inputs.job
         WHERE job_inputs.video = $1 AND jobs.status IN ('waiting', 'queued', 'running')
         ORDER BY jobs.id",
    )
    .bind(video.as_uuid())
    .fetch_all(&store.pool)
    .await
    .map_err(port_error)?;
    Ok(rows.into_iter().map(|(id,)| JobId::from_uuid(id)).collect())
}

/// A ready step's task is its next attempt, due at its `run_at`.
pub(super) async fn overdue_tasks(
    store: &PgStore,
    before: DateTime<Utc>,
    limit: u32,
) -> PortResult<Vec<Task>> {
    let rows: Vec<(Uuid, String, i64)> = sqlx::query_as(
        "SELECT job, name, CASE status WHEN 'ready' THEN run + 1 ELSE run END FROM steps
         WHERE (status = 'ready' AND run_at < $1) OR (status = 'running' AND lease_until < $1)
         ORDER BY coalesce(run_at, lease_until) LIMIT $2",
    )
    .bind(before)
    .bind(i64::from(limit))
    .fetch_all(&store.pool)
    .await
    .map_err(port_error)?;
    rows.into_iter()
        .map(|(job, step, attempt)| {
            Ok(Task {
                job: JobId::from_uuid(job),
                step,
                attempt: u32::try_from(attempt).map_err(|e| corrupt("steps.run", e))?,
            })
        })
        .collect()
}

/// Steps, events, input index and notifications go with the job (foreign keys cascade). The row
/// lock makes a change in progress finish first.
pub(super) async fn delete_job(store: &PgStore, owner: UserId, id: JobId) -> PortResult<Job> {
    let mut tx = store.pool.begin().await.map_err(port_error)?;
    let job = match load(&mut tx, Some(owner), id, true).await.and_then(|job| {
        jobs::deletable(&job)?;
        Ok(job)
    }) {
        Ok(job) => job,
        Err(error) => {
            let _ = tx.rollback().await;
            return Err(error);
        }
    };
    sqlx::query("DELETE FROM jobs WHERE id = $1")
        .bind(id.as_uuid())
        .execute(&mut *tx)
        .await
        .map_err(port_error)?;
    tx.commit().await.map_err(port_error)?;
    Ok(job)
}
