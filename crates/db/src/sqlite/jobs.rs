//! Jobs: creation with their steps, inputs and first events, reads, the listing, and the
//! statements of a change (`crate::jobs` holds its logic, shared with PostgreSQL). A change
//! runs in a `BEGIN IMMEDIATE` transaction, so changes to one job (to any job) take turns.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Row, Sqlite, SqliteConnection, Transaction, sqlite::SqliteRow};
use vidsnap_domain::{
    Change, EventType, Job, JobId, JobStatus, JobUpdate, Page, PortError, PortResult, Step,
    StepEvent, Task, Transition, UserId, Video, VideoId,
};

use super::{
    SqliteStore,
    codec::{self, micros, to_json},
    notifications, videos,
};
use crate::{
    error::{corrupt, port_error},
    event::Subject,
    jobs::{self, JobTx},
};

/// The job, its input index, its steps and the events that made it, in one transaction. An input
/// (or the job's own video) that is missing or another user's is `NotFound`, with nothing
/// stored.
pub(super) async fn create_job(
    store: &SqliteStore,
    job: &Job,
    events: &[StepEvent],
) -> PortResult<()> {
    let mut tx = store.write().await?;
    if let Some(video) = job.video {
        // The video's own job: linked to it unless it has one (a video from before jobs gets
        // its first here), and no other.
        let linked = sqlx::query(
            "UPDATE videos SET job = ?1
             WHERE id = ?2 AND owner = ?3 AND (job IS NULL OR job = ?1)",
        )
        .bind(job.id.to_string())
        .bind(video.to_string())
        .bind(job.owner.to_string())
        .execute(&mut *tx)
        .await
        .map_err(port_error)?;
        if linked.rows_affected() == 0 {
            // Another job got there first (two schedulers sweeping at once): store nothing.
            let exists: Option<(String,)> =
                sqlx::query_as("SELECT id FROM videos WHERE id = ? AND owner = ?")
                    .bind(video.to_string())
                    .bind(job.owner.to_string())
                    .fetch_optional(&mut *tx)
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
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(job.id.to_string())
    .bind(job.owner.to_string())
    .bind(job.recipe_name.as_deref())
    .bind(to_json(&job.recipe)?)
    .bind(to_json(&job.params)?)
    .bind(to_json(&job.inputs)?)
    .bind(job.video.map(|v| v.to_string()))
    .bind(job.status.as_str())
    .bind(i64::from(job.cycle))
    .bind(micros(job.created_at))
    .bind(micros(job.updated_at))
    .execute(&mut *tx)
    .await
    .map_err(port_error)?;
    for (name, input) in &job.inputs {
        // Selecting the video by id and owner checks both in the insert itself.
        let indexed = sqlx::query(
            "INSERT INTO job_inputs (job, name, video)
             SELECT ?1, ?2, id FROM videos WHERE id = ?3 AND owner = ?4",
        )
        .bind(job.id.to_string())
        .bind(name)
        .bind(input.video.to_string())
        .bind(job.owner.to_string())
        .execute(&mut *tx)
        .await
        .map_err(port_error)?;
        if indexed.rows_affected() == 0 {
            return Err(PortError::NotFound);
        }
    }
    for (position, step) in job.steps.iter().enumerate() {
        insert_step(&mut tx, job.id, position, step).await?;
    }
    record_events(&mut tx, job.id, events).await?;
    tx.commit().await.map_err(port_error)
}

async fn insert_step(
    conn: &mut SqliteConnection,
    job: JobId,
    position: usize,
    step: &Step,
) -> PortResult<()> {
    let position = i64::try_from(position).map_err(|e| corrupt("steps.position", e))?;
    sqlx::query(
        "INSERT INTO steps (job, name, position, status, attempts, run, max_attempts, last_error,
                            progress, run_at, lease_until, worker, started_at, finished_at,
                            artefacts, result)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(job.to_string())
    .bind(&step.name)
    .bind(position)
    .bind(step.status.as_str())
    .bind(i64::from(step.attempts))
    .bind(i64::from(step.run))
    .bind(i64::from(step.max_attempts))
    .bind(step.last_error.as_ref().map(to_json).transpose()?)
    .bind(step.progress.map(i64::from))
    .bind(step.run_at.map(micros))
    .bind(step.lease_until.map(micros))
    .bind(step.worker.as_deref())
    .bind(step.started_at.map(micros))
    .bind(step.finished_at.map(micros))
    .bind(to_json(&step.artefacts)?)
    .bind(step.result.as_ref().map(to_json).transpose()?)
    .execute(conn)
    .await
    .map_err(port_error)?;
    Ok(())
}

/// Every column a change can move; `name` and `position` never do.
async fn update_step(conn: &mut SqliteConnection, job: JobId, step: &Step) -> PortResult<()> {
    sqlx::query(
        "UPDATE steps
         SET status = ?, attempts = ?, run = ?, max_attempts = ?, last_error = ?, progress = ?,
             run_at = ?,
             lease_until = ?, worker = ?, started_at = ?, finished_at = ?, artefacts = ?,
             result = ?
         WHERE job = ? AND name = ?",
    )
    .bind(step.status.as_str())
    .bind(i64::from(step.attempts))
    .bind(i64::from(step.run))
    .bind(i64::from(step.max_attempts))
    .bind(step.last_error.as_ref().map(to_json).transpose()?)
    .bind(step.progress.map(i64::from))
    .bind(step.run_at.map(micros))
    .bind(step.lease_until.map(micros))
    .bind(step.worker.as_deref())
    .bind(step.started_at.map(micros))
    .bind(step.finished_at.map(micros))
    .bind(to_json(&step.artefacts)?)
    .bind(step.result.as_ref().map(to_json).transpose()?)
    .bind(job.to_string())
    .bind(&step.name)
    .execute(conn)
    .await
    .map_err(port_error)?;
    Ok(())
}

async fn record_events(
    conn: &mut SqliteConnection,
    job: JobId,
    events: &[StepEvent],
) -> PortResult<()> {
    for event in events {
        sqlx::query(
            "INSERT INTO step_events (job, step, status, attempt, at, reason)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(job.to_string())
        .bind(&event.step)
        .bind(event.status.as_str())
        .bind(i64::from(event.attempt))
        .bind(micros(event.at))
        .bind(event.reason.as_deref())
        .execute(&mut *conn)
        .await
        .map_err(port_error)?;
    }
    Ok(())
}

/// The job row (`owner` checked when given) and its steps, on one connection.
async fn load(conn: &mut SqliteConnection, owner: Option<UserId>, id: JobId) -> PortResult<Job> {
    let row = sqlx::query("SELECT * FROM jobs WHERE id = ?1 AND (?2 IS NULL OR owner = ?2)")
        .bind(id.to_string())
        .bind(owner.map(|o| o.to_string()))
        .fetch_one(&mut *conn)
        .await
        .map_err(port_error)?;
    let steps = sqlx::query("SELECT * FROM steps WHERE job = ? ORDER BY position")
        .bind(id.to_string())
        .fetch_all(&mut *conn)
        .await
        .map_err(port_error)?;
    codec::job(&row, &steps)
}

/// Read in one transaction, so the steps are those of the job row read.
pub(super) async fn job(store: &SqliteStore, owner: Option<UserId>, id: JobId) -> PortResult<Job> {
    let mut tx = store.pool.begin().await.map_err(port_error)?;
    let job = load(&mut tx, owner, id).await?;
    tx.commit().await.map_err(port_error)?;
    Ok(job)
}

/// Newest first, like the videos' listing: the cursor is the last id of the previous page, a
/// malformed one is `NotFound`, a `limit` of 0 is read as 1.
pub(super) async fn jobs(
    store: &SqliteStore,
    owner: UserId,
    status: Option<JobStatus>,
    cursor: Option<&str>,
    limit: u32,
) -> PortResult<Page<Job>> {
    let after = cursor
        .map(|c| c.parse::<JobId>().map_err(|_| PortError::NotFound))
        .transpose()?;
    let limit = limit.max(1);
    let mut tx = store.pool.begin().await.map_err(port_error)?;
    let rows = sqlx::query(
        "SELECT * FROM jobs
         WHERE owner = ?1 AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR id < ?3)
         ORDER BY id DESC
         LIMIT ?4",
    )
    .bind(owner.to_string())
    .bind(status.map(JobStatus::as_str))
    .bind(after.map(|id| id.to_string()))
    // One more than asked tells whether another page exists.
    .bind(i64::from(limit) + 1)
    .fetch_all(&mut *tx)
    .await
    .map_err(port_error)?;
    let ids: Vec<String> = rows
        .iter()
        .take(limit as usize)
        .map(|row| row.try_get("id").map_err(|e| corrupt("jobs.id", e)))
        .collect::<PortResult<_>>()?;
    // Every step of the page in one statement, the ids passed as one JSON array.
    let step_rows = sqlx::query(
        "SELECT * FROM steps WHERE job IN (SELECT value FROM json_each(?))
         ORDER BY job, position",
    )
    .bind(to_json(&ids)?)
    .fetch_all(&mut *tx)
    .await
    .map_err(port_error)?;
    tx.commit().await.map_err(port_error)?;
    let mut steps: BTreeMap<String, Vec<SqliteRow>> = BTreeMap::new();
    for row in step_rows {
        let job: String = row.try_get("job").map_err(|e| corrupt("steps.job", e))?;
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
pub(super) async fn job_events(store: &SqliteStore, id: JobId) -> PortResult<Vec<StepEvent>> {
    let mut conn = store.pool.acquire().await.map_err(port_error)?;
    sqlx::query("SELECT id FROM jobs WHERE id = ?")
        .bind(id.to_string())
        .fetch_one(&mut *conn)
        .await
        .map_err(port_error)?;
    let rows = sqlx::query("SELECT * FROM step_events WHERE job = ? ORDER BY seq")
        .bind(id.to_string())
        .fetch_all(&mut *conn)
        .await
        .map_err(port_error)?;
    codec::all(&rows, codec::step_event)
}

pub(super) async fn change_job(
    store: &SqliteStore,
    owner: Option<UserId>,
    id: JobId,
    change: Change,
) -> PortResult<JobUpdate> {
    let tx = WriteTx(store.write().await?);
    jobs::change_job(tx, owner, id, change).await
}

/// A change's statements, in a transaction that took SQLite's write lock before it read the job:
/// no other writer (in this process or another) can change the job between read and write.
struct WriteTx(Transaction<'static, Sqlite>);

#[async_trait]
impl JobTx for WriteTx {
    async fn lock(&mut self, owner: Option<UserId>, id: JobId) -> PortResult<Job> {
        load(&mut self.0, owner, id).await
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
                "UPDATE jobs SET recipe = ?, inputs = ?, status = ?, cycle = ?, updated_at = ?
                 WHERE id = ?",
            )
            .bind(to_json(&job.recipe)?)
            .bind(to_json(&job.inputs)?)
            .bind(job.status.as_str())
            .bind(i64::from(job.cycle))
            .bind(micros(job.updated_at))
            .bind(job.id.to_string())
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

/// The ids of `ids` that have a row; one statement, the ids bound as one JSON array.
pub(super) async fn existing_jobs(store: &SqliteStore, ids: &[JobId]) -> PortResult<Vec<JobId>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM jobs WHERE id IN (SELECT value FROM json_each(?))")
            .bind(serde_json::Value::from(ids).to_string())
            .fetch_all(&store.pool)
            .await
            .map_err(port_error)?;
    rows.into_iter()
        .map(|(id,)| id.parse().map_err(|e| corrupt("jobs.id", e)))
        .collect()
}

/// The unfinished jobs reading `video` while it is not uploaded.
pub(super) async fn jobs_waiting_for(
    store: &SqliteStore,
    video: VideoId,
) -> PortResult<Vec<JobId>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT jobs.id, jobs.inputs FROM job_inputs JOIN jobs ON jobs.id = job_inputs.job
         WHERE job_inputs.video = ? AND jobs.status IN ('waiting', 'queued', 'running')
         ORDER BY jobs.id",
    )
    .bind(video.to_string())
    .fetch_all(&store.pool)
    .await
    .map_err(port_error)?;
    jobs::waiting_for(rows.iter().map(|(id, inputs)| (id, inputs.as_str())), video)?
        .into_iter()
        .map(|id| id.parse().map_err(|e| corrupt("jobs.id", e)))
        .collect()
}

pub(super) async fn jobs_reading(store: &SqliteStore, video: VideoId) -> PortResult<Vec<JobId>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT jobs.id FROM job_inputs JOIN jobs ON jobs.id = job_inputs.job
         WHERE job_inputs.video = ? AND jobs.status IN ('waiting', 'queued', 'running')
         ORDER BY jobs.id",
    )
    .bind(video.to_string())
    .fetch_all(&store.pool)
    .await
    .map_err(port_error)?;
    rows.into_iter()
        .map(|(id,)| id.parse().map_err(|e| corrupt("jobs.id", e)))
        .collect()
}

/// A ready step's task is its next attempt, due at its `run_at`.
pub(super) async fn overdue_tasks(
    store: &SqliteStore,
    before: DateTime<Utc>,
    limit: u32,
) -> PortResult<Vec<Task>> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT job, name, CASE status WHEN 'ready' THEN run + 1 ELSE run END FROM steps
         WHERE (status = 'ready' AND run_at < ?1) OR (status = 'running' AND lease_until < ?1)
         ORDER BY coalesce(run_at, lease_until) LIMIT ?2",
    )
    .bind(micros(before))
    .bind(i64::from(limit))
    .fetch_all(&store.pool)
    .await
    .map_err(port_error)?;
    rows.into_iter()
        .map(|(job, step, attempt)| {
            Ok(Task {
                job: job.parse().map_err(|e| corrupt("steps.job", e))?,
                step,
                attempt: u32::try_from(attempt).map_err(|e| corrupt("steps.run", e))?,
            })
        })
        .collect()
}

/// Steps, events, input index and notifications go with the job (foreign keys cascade).
pub(super) async fn delete_job(store: &SqliteStore, owner: UserId, id: JobId) -> PortResult<Job> {
    let mut tx = store.write().await?;
    let job = load(&mut tx, Some(owner), id).await?;
    jobs::deletable(&job)?;
    sqlx::query("DELETE FROM jobs WHERE id = ?")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(port_error)?;
    tx.commit().await.map_err(port_error)?;
    Ok(job)
}
