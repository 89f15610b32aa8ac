//! The bucket workflow's records: the watched videos to sort, each decision with the move and the
//! notifications it starts, and the read API's queries.

use chrono::{DateTime, Utc};
use sqlx::Row;
use vidsnap_domain::{
    EventType, Move, Page, PortError, PortResult, QcCounts, QcOutcome, QcResult, QcResultId,
    SortItem, UserId, Video, VideoId,
};

use super::{
    PgStore,
    codec::{self, now, to_json},
    notifications,
};
use crate::{error::port_error, event::Subject};

pub(super) async fn sort_candidates(
    store: &PgStore,
    folders: &[String],
    limit: u32,
) -> PortResult<Vec<SortItem>> {
    // One `starts_with` per folder: a prefix test with no LIKE wildcards to escape.
    let under: String = (0..folders.len())
        .map(|i| format!(" OR starts_with(source_key, ${})", i + 2))
        .collect();
    let sql = format!(
        "SELECT * FROM videos
         WHERE moving_from IS NOT NULL OR (source_key IS NOT NULL AND (false{under}))
         ORDER BY id LIMIT $1"
    );
    // Only placeholders are formatted in: the folders are bound.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(i64::from(limit.max(1)));
    for folder in folders {
        query = query.bind(folder);
    }
    let rows = query.fetch_all(&store.pool).await.map_err(port_error)?;
    rows.iter()
        .map(|row| {
            Ok(SortItem {
                video: codec::video(row)?,
                moving_from: row.try_get("moving_from").map_err(port_error)?,
            })
        })
        .collect()
}

pub(super) async fn video_by_source(store: &PgStore, key: &str) -> PortResult<Video> {
    let row = sqlx::query("SELECT * FROM videos WHERE source_key = $1 OR moving_from = $1 LIMIT 1")
        .bind(key)
        .fetch_one(&store.pool)
        .await
        .map_err(port_error)?;
    codec::video(&row)
}

pub(super) async fn record_qc_result(
    store: &PgStore,
    result: &QcResult,
    moving: Option<&Move>,
    event: Option<EventType>,
) -> PortResult<bool> {
    let mut tx = store.pool.begin().await.map_err(port_error)?;
    let inserted = sqlx::query(
        "INSERT INTO qc_results (id, owner, video, job, cycle, attempt, key, file_name, outcome,
                                 rating, passed, error, checks, sidecar, moved_to, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
         ON CONFLICT (video, attempt) DO NOTHING",
    )
    .bind(result.id.as_uuid())
    .bind(result.owner.as_uuid())
    .bind(result.video.as_uuid())
    .bind(result.job.map(|j| j.as_uuid()))
    .bind(i64::from(result.cycle))
    .bind(i64::from(result.attempt))
    .bind(&result.key)
    .bind(&result.file_name)
    .bind(result.outcome.as_str())
    .bind(result.rating.map(i64::from))
    .bind(result.passed)
    .bind(result.error.as_ref().map(to_json).transpose()?)
    .bind(to_json(&result.checks)?)
    .bind(to_json(&result.sidecar)?)
    .bind(result.moved_to.as_deref())
    .bind(result.created_at)
    .execute(&mut *tx)
    .await
    .map_err(port_error)?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    if let Some(moving) = moving {
        let moved = sqlx::query(
            "UPDATE videos SET source_key = $1, moving_from = $2, updated_at = $3
             WHERE id = $4 AND source_key = $2",
        )
        .bind(&moving.to)
        .bind(&moving.from)
        .bind(now())
        .bind(result.video.as_uuid())
        .execute(&mut *tx)
        .await
        .map_err(port_error)?;
        if moved.rows_affected() == 0 {
            return Err(PortError::Conflict(format!(
                "video {} is no longer at {}",
                result.video, moving.from
            )));
        }
        if let Some((job, old, new)) = &moving.outputs {
            sqlx::query("UPDATE steps SET artefacts = replace(artefacts, $1, $2) WHERE job = $3")
                .bind(to_json(old)?.trim_end_matches('"').to_owned())
                .bind(to_json(new)?.trim_end_matches('"').to_owned())
                .bind(job.as_uuid())
                .execute(&mut *tx)
                .await
                .map_err(port_error)?;
        }
    }
    if let Some(event) = event {
        notifications::owe(&mut tx, Subject::Qc(result), event, result.created_at).await?;
    }
    tx.commit().await.map_err(port_error)?;
    Ok(true)
}

pub(super) async fn finish_move(store: &PgStore, video: VideoId) -> PortResult<()> {
    sqlx::query("UPDATE videos SET moving_from = NULL WHERE id = $1")
        .bind(video.as_uuid())
        .execute(&store.pool)
        .await
        .map_err(port_error)?;
    Ok(())
}

pub(super) async fn qc_results_of(store: &PgStore, video: VideoId) -> PortResult<Vec<QcResult>> {
    let rows = sqlx::query("SELECT * FROM qc_results WHERE video = $1 ORDER BY attempt")
        .bind(video.as_uuid())
        .fetch_all(&store.pool)
        .await
        .map_err(port_error)?;
    codec::all(&rows, codec::qc_result)
}

/// Oldest first. The cursor is the last id of the previous page; a malformed one is `NotFound`.
pub(super) async fn qc_results(
    store: &PgStore,
    owner: UserId,
    begin: DateTime<Utc>,
    end: DateTime<Utc>,
    cursor: Option<&str>,
    limit: u32,
) -> PortResult<Page<QcResult>> {
    let after = cursor
        .map(|c| c.parse::<QcResultId>().map_err(|_| PortError::NotFound))
        .transpose()?;
    let limit = limit.max(1);
    let rows = sqlx::query(
        "SELECT * FROM qc_results
         WHERE owner = $1 AND created_at >= $2 AND created_at < $3
               AND ($4::uuid IS NULL OR id > $4)
         ORDER BY id LIMIT $5",
    )
    .bind(owner.as_uuid())
    .bind(begin)
    .bind(end)
    .bind(after.map(|id| id.as_uuid()))
    .bind(i64::from(limit) + 1)
    .fetch_all(&store.pool)
    .await
    .map_err(port_error)?;
    let mut items = codec::all(&rows, codec::qc_result)?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|r| r.id.to_string())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

pub(super) async fn count_qc_results(
    store: &PgStore,
    owner: UserId,
    begin: DateTime<Utc>,
    end: DateTime<Utc>,
) -> PortResult<QcCounts> {
    let rows = sqlx::query(
        "SELECT outcome, COUNT(*) AS n FROM qc_results
         WHERE owner = $1 AND created_at >= $2 AND created_at < $3 GROUP BY outcome",
    )
    .bind(owner.as_uuid())
    .bind(begin)
    .bind(end)
    .fetch_all(&store.pool)
    .await
    .map_err(port_error)?;
    let mut counts = QcCounts::default();
    for row in rows {
        let outcome: String = row.try_get("outcome").map_err(port_error)?;
        let n: i64 = row.try_get("n").map_err(port_error)?;
        if let Some(outcome) = QcOutcome::parse(&outcome) {
            counts.add(outcome, u64::try_from(n).unwrap_or(0));
        }
    }
    Ok(counts)
}
