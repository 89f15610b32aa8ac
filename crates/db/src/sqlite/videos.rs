//! Videos: creation, the owner's listing, the status machine applied atomically with its history
//! and the notifications a terminal outcome owes.

use vidsnap_domain::{
    Page, PortError, PortResult, StatusChange, Transition, UserId, Video, VideoId, VideoStatus,
};

use super::{
    SqliteStore,
    codec::{self, micros, now, to_json, u64_to_i64},
    notifications,
};
use crate::{error::port_error, event};

/// Stores a new video and the first entry of its history (its initial status, attempt 0).
pub(super) async fn create_video(store: &SqliteStore, video: &Video) -> PortResult<()> {
    let mut tx = store.write().await?;
    insert_video(&mut tx, video).await?;
    tx.commit().await.map_err(port_error)
}

/// The video row and its first history entry, in the caller's transaction.
pub(super) async fn insert_video(
    conn: &mut sqlx::SqliteConnection,
    video: &Video,
) -> PortResult<()> {
    sqlx::query(
        "INSERT INTO videos (id, owner, file_name, size, options, status, attempts, max_attempts,
                             cycle, last_error, probe, outputs, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    .bind(micros(video.created_at))
    .bind(micros(video.updated_at))
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
    let row = sqlx::query("SELECT * FROM videos WHERE id = ?")
        .bind(id.to_string())
        .fetch_one(&mut *tx)
        .await
        .map_err(port_error)?;
    let mut video = codec::video(&row)?;
    if !video.status.can_become(change.to) {
        // Dropping the transaction rolls it back: nothing was written anyway.
        return Err(PortError::InvalidTransition {
            from: video.status,
            to: change.to,
        });
    }
    let at = now();
    if change.new_cycle {
        video.attempts = 0;
        video.cycle = video.cycle.saturating_add(1);
    }
    if change.start_attempt {
        video.attempts = video.attempts.saturating_add(1);
    }
    video.status = change.to;
    video.updated_at = at;
    if let Some(error) = change.error {
        video.last_error = error;
    }
    if let Some(probe) = change.probe {
        video.probe = Some(probe);
    }
    if let Some(outputs) = change.outputs {
        video.outputs = Some(outputs);
    }
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
    .execute(&mut *tx)
    .await
    .map_err(port_error)?;
    record_history(&mut tx, &video, change.reason.as_deref()).await?;
    if let Some(event) = event::event_for(video.status) {
        notifications::owe(&mut tx, &video, event, at).await?;
    }
    tx.commit().await.map_err(port_error)?;
    Ok(video)
}

/// The video's current status, at its current attempt, as of its `updated_at`.
async fn record_history(
    conn: &mut sqlx::SqliteConnection,
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

/// History and notifications go with the video (foreign keys cascade).
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

pub(super) async fn stale_queued(
    store: &SqliteStore,
    before: chrono::DateTime<chrono::Utc>,
    limit: u32,
) -> PortResult<Vec<VideoId>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM videos WHERE status = 'queued' AND updated_at < ?
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
