//! Videos: creation, the owner's listing, the status machine applied atomically with its history
//! and the notifications a terminal outcome owes.

use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;
use vidsnap_domain::{
    Page, PortError, PortResult, StatusChange, Transition, UserId, Video, VideoId, VideoStatus,
};

use super::{
    SqliteStore,
    codec::{self, micros, now, to_json, u64_to_i64},
    notifications,
};
use crate::{
    error::port_error,
    event::{self, Subject},
    transition,
};

/// Stores a new video and the first entry of its history (its initial status, attempt 0).
pub(super) async fn create_video(store: &SqliteStore, video: &Video) -> PortResult<()> {
    let mut tx = store.write().await?;
    insert_video(&mut tx, video).await?;
    tx.commit().await.map_err(port_error)
}

/// The video row and its first history entry, in the caller's transaction.
pub(super) async fn insert_video(conn: &mut SqliteConnection, video: &Video) -> PortResult<()> {
    sqlx::query(
        "INSERT INTO videos (id, owner, file_name, size, options, status, attempts, max_attempts,
                             cycle, last_error, probe, outputs, job, uploaded_at, created_at,
                             updated_at, source_key)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(video.id.to_string())
    .bind(video.owner.to_string())
    .bind(&video.file_name)
    .bind(video.size.map(|s| u64_to_i64(s, "size")).transpose()?)
    .bind(to_json(&video.options)?)
    .bind(video.status.as_str())
    .bind(i64::from(video.attempts))
    .bind(i64::from(video.max_attempts))
    .bind(i64::from(video.cycle))
    .bind(video.last_error.as_ref().map(to_json).transpose()?)
    .bind(video.probe.as_ref().map(to_json).transpose()?)
    .bind(video.outputs.as_ref().map(to_json).transpose()?)
    .bind(video.job.map(|job| job.to_string()))
    .bind(video.uploaded_at.map(micros))
    .bind(micros(video.created_at))
    .bind(micros(video.updated_at))
    .bind(video.source.as_deref())
    .execute(&mut *conn)
    .await
    .map_err(port_error)?;
    record_history(conn, video, None).await
}

pub(super) async fn video(
    store: &SqliteStore,
    owner: Option<UserId>,
    id: VideoId,
) -> PortResult<Video> {
    let row = sqlx::query("SELECT * FROM videos WHERE id = ?1 AND (?2 IS NULL OR owner = ?2)")
        .bind(id.to_string())
        .bind(owner.map(|o| o.to_string()))
        .fetch_one(&store.pool)
        .await
        .map_err(port_error)?;
    codec::video(&row)
}

/// Newest first. The cursor is the last id of the previous page; a malformed one is `NotFound`
/// (the port has no "bad argument" error). A `limit` of 0 is read as 1.
pub(super) async fn videos(
    store: &SqliteStore,
    owner: UserId,
    status: Option<VideoStatus>,
    cursor: Option<&str>,
    limit: u32,
) -> PortResult<Page<Video>> {
    let after = cursor
        .map(|c| c.parse::<VideoId>().map_err(|_| PortError::NotFound))
        .transpose()?;
    let limit = limit.max(1);
    let rows = sqlx::query(
        "SELECT * FROM videos
         WHERE owner = ?1 AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR id < ?3)
         ORDER BY id DESC
         LIMIT ?4",
    )
    .bind(owner.to_string())
    .bind(status.map(VideoStatus::as_str))
    .bind(after.map(|id| id.to_string()))
    // One more than asked tells whether another page exists.
    .bind(i64::from(limit) + 1)
    .fetch_all(&store.pool)
    .await
    .map_err(port_error)?;
    let mut items = codec::all(&rows, codec::video)?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|v| v.id.to_string())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// Oldest first; `NotFound` for an unknown video.
pub(super) async fn history(store: &SqliteStore, id: VideoId) -> PortResult<Vec<StatusChange>> {
    let mut conn = store.pool.acquire().await.map_err(port_error)?;
    sqlx::query("SELECT id FROM videos WHERE id = ?")
        .bind(id.to_string())
        .fetch_one(&mut *conn)
        .await
        .map_err(port_error)?;
    let rows = sqlx::query("SELECT * FROM video_history WHERE video = ? ORDER BY seq")
        .bind(id.to_string())
        .fetch_all(&mut *conn)
        .await
        .map_err(port_error)?;
    codec::all(&rows, codec::status_change)
}

pub(super) async fn transition(
    store: &SqliteStore,
    id: VideoId,
    change: Transition,
) -> PortResult<Video> {
    let mut tx = store.write().await?;
    // An error drops the transaction, which rolls it back: nothing was written anyway.
    let video = transition_in(&mut tx, id, change).await?;
    tx.commit().await.map_err(port_error)?;
    Ok(video)
}

/// The transition, its history entry and the notifications it owes, in the caller's write
/// transaction. `InvalidTransition` writes nothing, so the transaction stays usable.
pub(super) async fn transition_in(
    conn: &mut SqliteConnection,
    id: VideoId,
    change: Transition,
) -> PortResult<Video> {
    let row = sqlx::query("SELECT * FROM videos WHERE id = ?")
        .bind(id.to_string())
        .fetch_one(&mut *conn)
        .await
        .map_err(port_error)?;
    let mut video = codec::video(&row)?;
    let at = now();
    transition::apply(&mut video, &change, at)?;
    sqlx::query(
        "UPDATE videos
         SET status = ?, attempts = ?, cycle = ?, last_error = ?, probe = ?, outputs = ?,
             updated_at = ?
         WHERE id = ?",
    )
    .bind(video.status.as_str())
    .bind(i64::from(video.attempts))
    .bind(i64::from(video.cycle))
    .bind(video.last_error.as_ref().map(to_json).transpose()?)
    .bind(video.probe.as_ref().map(to_json).transpose()?)
    .bind(video.outputs.as_ref().map(to_json).transpose()?)
    .bind(micros(at))
    .bind(id.to_string())
    .execute(&mut *conn)
    .await
    .map_err(port_error)?;
    record_history(conn, &video, change.reason.as_deref()).await?;
    if let Some(event) = event::event_for(video.status) {
        notifications::owe(conn, Subject::Video(&video), event, at).await?;
    }
    Ok(video)
}

/// Sets `uploaded_at` only where it is unset, so exactly one caller sees `true`.
pub(super) async fn mark_uploaded(store: &SqliteStore, id: VideoId) -> PortResult<bool> {
    let marked =
        sqlx::query("UPDATE videos SET uploaded_at = ? WHERE id = ? AND uploaded_at IS NULL")
            .bind(micros(now()))
            .bind(id.to_string())
            .execute(&store.pool)
            .await
            .map_err(port_error)?;
    if marked.rows_affected() == 1 {
        return Ok(true);
    }
    video(store, None, id).await.map(|_| false)
}

/// The video's current status, at its current attempt, as of its `updated_at`.
async fn record_history(
    conn: &mut SqliteConnection,
    video: &Video,
    reason: Option<&str>,
) -> PortResult<()> {
    sqlx::query(
        "INSERT INTO video_history (video, status, at, attempt, reason) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(video.id.to_string())
    .bind(video.status.as_str())
    .bind(micros(video.updated_at))
    .bind(i64::from(video.attempts))
    .bind(reason)
    .execute(conn)
    .await
    .map_err(port_error)?;
    Ok(())
}

/// History, notifications and the job `/v1/videos` made for it go with the video (foreign keys
/// cascade); jobs that merely read it stay.
pub(super) async fn delete_video(
    store: &SqliteStore,
    owner: UserId,
    id: VideoId,
) -> PortResult<Video> {
    let row = sqlx::query("DELETE FROM videos WHERE id = ? AND owner = ? RETURNING *")
        .bind(id.to_string())
        .bind(owner.to_string())
        .fetch_one(&store.pool)
        .await
        .map_err(port_error)?;
    codec::video(&row)
}

/// Every status, zeros included, so a metrics gauge falls back to 0 when a status empties.
pub(super) async fn count_by_status(store: &SqliteStore) -> PortResult<Vec<(VideoStatus, u64)>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM videos GROUP BY status")
            .fetch_all(&store.pool)
            .await
            .map_err(port_error)?;
    let mut counts: Vec<(VideoStatus, u64)> = VideoStatus::ALL.iter().map(|&s| (s, 0)).collect();
    for (status, count) in rows {
        let status = VideoStatus::parse(&status)
            .ok_or_else(|| crate::error::corrupt("videos.status", &status))?;
        let count = u64::try_from(count).map_err(|e| crate::error::corrupt("count", e))?;
        if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == status) {
            slot.1 = count;
        }
    }
    Ok(counts)
}

/// Pre-jobs videos, queued or processing when the database was upgraded (their old queue rows
/// were dropped) and never given a job since: the scheduler makes them one. A video with a job
/// is the job's business (`overdue_tasks` covers its lost tasks).
/// The ids of `ids` that have a row; one statement, the ids bound as one JSON array.
pub(super) async fn existing_videos(
    store: &SqliteStore,
    ids: &[VideoId],
) -> PortResult<Vec<VideoId>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM videos WHERE id IN (SELECT value FROM json_each(?))")
            .bind(to_json(&ids)?)
            .fetch_all(&store.pool)
            .await
            .map_err(port_error)?;
    rows.into_iter()
        .map(|(id,)| {
            id.parse()
                .map_err(|e| crate::error::corrupt("videos.id", e))
        })
        .collect()
}

pub(super) async fn stale_queued(
    store: &SqliteStore,
    before: DateTime<Utc>,
    limit: u32,
) -> PortResult<Vec<VideoId>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM videos
         WHERE status IN ('queued', 'processing') AND job IS NULL AND updated_at < ?
         ORDER BY updated_at LIMIT ?",
    )
    .bind(micros(before))
    .bind(i64::from(limit))
    .fetch_all(&store.pool)
    .await
    .map_err(port_error)?;
    rows.into_iter()
        .map(|(id,)| {
            id.parse()
                .map_err(|e| crate::error::corrupt("videos.id", e))
        })
        .collect()
}
