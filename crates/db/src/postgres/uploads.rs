//! Resumable upload sessions: creation with their video, the write lease (compare-and-set on
//! `writer_token`/`writer_until`, one statement each: no transaction stays open while bytes
//! stream), progress, deletion, and the scheduler's sweeps.
//!
//! Under READ COMMITTED a concurrent `UPDATE` of the same row waits for the first to commit,
//! then evaluates its `WHERE` again on the new row: of two writers racing for a free lease, the
//! second finds it taken and updates nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, postgres::PgRow};
use vidsnap_domain::{PortError, PortResult, Upload, UploadId, UserId, Video, VideoId};

use super::{
    PgStore,
    codec::{self, now, to_json, u64_to_i64},
    videos,
};
use crate::{clock::after, error::port_error};

pub(super) async fn create_upload(
    store: &PgStore,
    video: &Video,
    upload: &Upload,
) -> PortResult<()> {
    let mut tx = store.pool.begin().await.map_err(port_error)?;
    videos::insert_video(&mut tx, video).await?;
    sqlx::query(
        "INSERT INTO uploads (id, owner, video, total_bytes, uploaded_bytes, metadata, staging,
                              expires_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(upload.id.as_uuid())
    .bind(upload.owner.as_uuid())
    .bind(upload.video.as_uuid())
    .bind(u64_to_i64(upload.total_bytes, "total_bytes")?)
    .bind(u64_to_i64(upload.uploaded_bytes, "uploaded_bytes")?)
    .bind(to_json(&upload.metadata)?)
    .bind(upload.staging.as_ref().map(to_json).transpose()?)
    .bind(upload.expires_at)
    .bind(upload.created_at)
    .bind(upload.updated_at)
    .execute(&mut *tx)
    .await
    .map_err(port_error)?;
    tx.commit().await.map_err(port_error)
}

pub(super) async fn upload(
    store: &PgStore,
    owner: Option<UserId>,
    id: UploadId,
) -> PortResult<Upload> {
    let row =
        sqlx::query("SELECT * FROM uploads WHERE id = $1 AND ($2::uuid IS NULL OR owner = $2)")
            .bind(id.as_uuid())
            .bind(owner.map(|o| o.as_uuid()))
            .fetch_one(&store.pool)
            .await
            .map_err(port_error)?;
    codec::upload(&row)
}

pub(super) async fn upload_of_video(store: &PgStore, video: VideoId) -> PortResult<Upload> {
    let row = sqlx::query("SELECT * FROM uploads WHERE video = $1")
        .bind(video.as_uuid())
        .fetch_one(&store.pool)
        .await
        .map_err(port_error)?;
    codec::upload(&row)
}

pub(super) async fn lease_upload(
    store: &PgStore,
    owner: Option<UserId>,
    id: UploadId,
    token: &str,
    lease: Duration,
) -> PortResult<Upload> {
    let at = now();
    let row = sqlx::query(
        "UPDATE uploads SET writer_token = $1, writer_until = $2
         WHERE id = $3 AND ($4::uuid IS NULL OR owner = $4)
           AND (writer_until IS NULL OR writer_until <= $5)
         RETURNING *",
    )
    .bind(token)
    .bind(after(at, lease))
    .bind(id.as_uuid())
    .bind(owner.map(|o| o.as_uuid()))
    .bind(at)
    .fetch_optional(&store.pool)
    .await
    .map_err(port_error)?;
    match row {
        Some(row) => codec::upload(&row),
        // Missing (or someone else's) is NotFound; present means another writer holds it.
        None => match upload(store, owner, id).await {
            Ok(_) => Err(PortError::Locked),
            Err(e) => Err(e),
        },
    }
}

pub(super) async fn renew_upload_lease(
    store: &PgStore,
    id: UploadId,
    token: &str,
    lease: Duration,
    ttl: Duration,
) -> PortResult<()> {
    let at = now();
    let done = sqlx::query(
        "UPDATE uploads SET writer_until = $1, expires_at = $2
         WHERE id = $3 AND writer_token = $4",
    )
    .bind(after(at, lease))
    .bind(after(at, ttl))
    .bind(id.as_uuid())
    .bind(token)
    .execute(&store.pool)
    .await
    .map_err(port_error)?;
    if done.rows_affected() == 0 {
        return Err(PortError::LeaseLost);
    }
    Ok(())
}

pub(super) async fn record_upload_progress(
    store: &PgStore,
    id: UploadId,
    token: &str,
    from: u64,
    to: u64,
    staging: Option<&serde_json::Value>,
    ttl: Duration,
) -> PortResult<Upload> {
    let at = now();
    let row = sqlx::query(
        "UPDATE uploads
         SET uploaded_bytes = $1, staging = COALESCE($2, staging), expires_at = $3,
             updated_at = $4
         WHERE id = $5 AND writer_token = $6 AND uploaded_bytes = $7
         RETURNING *",
    )
    .bind(u64_to_i64(to, "uploaded_bytes")?)
    .bind(staging.map(to_json).transpose()?)
    .bind(after(at, ttl))
    .bind(at)
    .bind(id.as_uuid())
    .bind(token)
    .bind(u64_to_i64(from, "uploaded_bytes")?)
    .fetch_optional(&store.pool)
    .await
    .map_err(port_error)?;
    row.as_ref()
        .map(codec::upload)
        .unwrap_or(Err(PortError::LeaseLost))
}

pub(super) async fn release_upload_lease(
    store: &PgStore,
    id: UploadId,
    token: &str,
) -> PortResult<()> {
    sqlx::query(
        "UPDATE uploads SET writer_token = NULL, writer_until = NULL
         WHERE id = $1 AND writer_token = $2",
    )
    .bind(id.as_uuid())
    .bind(token)
    .execute(&store.pool)
    .await
    .map_err(port_error)?;
    Ok(())
}

pub(super) async fn delete_upload(
    store: &PgStore,
    id: UploadId,
    token: &str,
) -> PortResult<(Upload, Option<Video>)> {
    let mut tx = store.pool.begin().await.map_err(port_error)?;
    let row = sqlx::query("DELETE FROM uploads WHERE id = $1 AND writer_token = $2 RETURNING *")
        .bind(id.as_uuid())
        .bind(token)
        .fetch_optional(&mut *tx)
        .await
        .map_err(port_error)?;
    let Some(row) = row else {
        let _ = tx.rollback().await;
        return Err(PortError::LeaseLost);
    };
    let deleted = with_waiting_video(&mut tx, &row).await?;
    tx.commit().await.map_err(port_error)?;
    Ok(deleted)
}

/// The deleted session, and its video deleted too when it was still waiting for its bytes. A
/// video without a job stays `awaiting_upload` once uploaded: `uploaded_at` tells them apart.
async fn with_waiting_video(
    conn: &mut PgConnection,
    row: &PgRow,
) -> PortResult<(Upload, Option<Video>)> {
    let upload = codec::upload(row)?;
    let video = sqlx::query(
        "DELETE FROM videos
         WHERE id = $1 AND status = 'awaiting_upload' AND uploaded_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM job_inputs JOIN jobs ON jobs.id = job_inputs.job
                           WHERE job_inputs.video = videos.id
                             AND jobs.status IN ('waiting', 'queued', 'running')
                             AND (jobs.video IS NULL OR jobs.video <> videos.id))
         RETURNING *",
    )
    .bind(upload.video.as_uuid())
    .fetch_optional(conn)
    .await
    .map_err(port_error)?;
    Ok((upload, video.as_ref().map(codec::video).transpose()?))
}

pub(super) async fn expired_uploads(
    store: &PgStore,
    now: DateTime<Utc>,
    limit: u32,
) -> PortResult<Vec<Upload>> {
    let rows = sqlx::query(
        "SELECT * FROM uploads
         WHERE expires_at < $1 AND (writer_until IS NULL OR writer_until <= $1)
         ORDER BY expires_at LIMIT $2",
    )
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(&store.pool)
    .await
    .map_err(port_error)?;
    codec::all(&rows, codec::upload)
}

/// The condition is checked again by the `DELETE` itself (on the row as committed, after any
/// concurrent writer), so a write that arrived since the listing keeps the session.
pub(super) async fn delete_expired_upload(
    store: &PgStore,
    id: UploadId,
    now: DateTime<Utc>,
) -> PortResult<Option<(Upload, Option<Video>)>> {
    let mut tx = store.pool.begin().await.map_err(port_error)?;
    let row = sqlx::query(
        "DELETE FROM uploads
         WHERE id = $1 AND expires_at < $2 AND (writer_until IS NULL OR writer_until <= $2)
         RETURNING *",
    )
    .bind(id.as_uuid())
    .bind(now)
    .fetch_optional(&mut *tx)
    .await
    .map_err(port_error)?;
    let Some(row) = row else {
        let _ = tx.rollback().await;
        return Ok(None);
    };
    let deleted = with_waiting_video(&mut tx, &row).await?;
    tx.commit().await.map_err(port_error)?;
    Ok(Some(deleted))
}

/// A video uploaded for jobs of its own stays `awaiting_upload` with its bytes stored
/// (`uploaded_at`): it is not abandoned.
pub(super) async fn abandoned_videos(
    store: &PgStore,
    before: DateTime<Utc>,
    limit: u32,
) -> PortResult<Vec<Video>> {
    let rows = sqlx::query(
        "SELECT * FROM videos
         WHERE status = 'awaiting_upload' AND uploaded_at IS NULL AND created_at < $1
           AND NOT EXISTS (SELECT 1 FROM uploads WHERE uploads.video = videos.id)
           AND NOT EXISTS (SELECT 1 FROM job_inputs JOIN jobs ON jobs.id = job_inputs.job
                           WHERE job_inputs.video = videos.id
                             AND jobs.status IN ('waiting', 'queued', 'running')
                             AND (jobs.video IS NULL OR jobs.video <> videos.id))
         ORDER BY created_at LIMIT $2",
    )
    .bind(before)
    .bind(i64::from(limit))
    .fetch_all(&store.pool)
    .await
    .map_err(port_error)?;
    codec::all(&rows, codec::video)
}

/// Racing a `create_upload` for the same video cannot happen (a session is created with its
/// video); racing a transition to `queued` is settled by the row lock the `DELETE` takes.
pub(super) async fn delete_abandoned_video(
    store: &PgStore,
    id: VideoId,
    before: DateTime<Utc>,
) -> PortResult<Option<Video>> {
    let row = sqlx::query(
        "DELETE FROM videos
         WHERE id = $1 AND status = 'awaiting_upload' AND uploaded_at IS NULL
           AND created_at < $2
           AND NOT EXISTS (SELECT 1 FROM uploads WHERE uploads.video = videos.id)
           AND NOT EXISTS (SELECT 1 FROM job_inputs JOIN jobs ON jobs.id = job_inputs.job
                           WHERE job_inputs.video = videos.id
                             AND jobs.status IN ('waiting', 'queued', 'running')
                             AND (jobs.video IS NULL OR jobs.video <> videos.id))
         RETURNING *",
    )
    .bind(id.as_uuid())
    .bind(before)
    .fetch_optional(&store.pool)
    .await
    .map_err(port_error)?;
    row.as_ref().map(codec::video).transpose()
}
