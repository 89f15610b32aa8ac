//! SQLite's representation of domain values: ids as text, times as integer microseconds, JSON as
//! text, counters as `INTEGER`. Every read that can meet a malformed value says which column.

use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use sqlx::{Decode, Row, Sqlite, Type, sqlite::SqliteRow};
use uuid::Uuid;
use vidsnap_domain::{
    ApiKey, ApiKeyId, Channel, DeliveryStatus, EventType, Job, JobId, JobStatus, Notification,
    NotificationId, PortError, PortResult, QcOutcome, QcResult, QcResultId, StatusChange, Step,
    StepEvent, StepStatus, Upload, UploadId, User, UserId, Video, VideoId, VideoStatus, Webhook,
    WebhookId,
};

use crate::{error::corrupt, event};

pub(super) use crate::clock::now;

pub(super) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(super) fn to_json(value: &impl Serialize) -> PortResult<String> {
    serde_json::to_string(value).map_err(|e| PortError::Unavailable(format!("cannot encode: {e}")))
}

pub(super) fn u64_to_i64(value: u64, what: &str) -> PortResult<i64> {
    i64::try_from(value)
        .map_err(|_| PortError::Unavailable(format!("{what} {value} is too large to store")))
}

fn get<'r, T>(row: &'r SqliteRow, column: &str) -> PortResult<T>
where
    T: Decode<'r, Sqlite> + Type<Sqlite>,
{
    row.try_get(column).map_err(|e| corrupt(column, e))
}

fn uuid(row: &SqliteRow, column: &str) -> PortResult<Uuid> {
    let text: String = get(row, column)?;
    Uuid::parse_str(&text).map_err(|e| corrupt(column, e))
}

fn opt_uuid(row: &SqliteRow, column: &str) -> PortResult<Option<Uuid>> {
    let text: Option<String> = get(row, column)?;
    text.map(|t| Uuid::parse_str(&t).map_err(|e| corrupt(column, e)))
        .transpose()
}

fn time(row: &SqliteRow, column: &str) -> PortResult<DateTime<Utc>> {
    let value: i64 = get(row, column)?;
    DateTime::from_timestamp_micros(value).ok_or_else(|| corrupt(column, value))
}

fn opt_time(row: &SqliteRow, column: &str) -> PortResult<Option<DateTime<Utc>>> {
    let value: Option<i64> = get(row, column)?;
    value
        .map(|v| DateTime::from_timestamp_micros(v).ok_or_else(|| corrupt(column, v)))
        .transpose()
}

fn u32_col(row: &SqliteRow, column: &str) -> PortResult<u32> {
    let value: i64 = get(row, column)?;
    u32::try_from(value).map_err(|e| corrupt(column, e))
}

fn json<T: DeserializeOwned>(row: &SqliteRow, column: &str) -> PortResult<T> {
    let text: String = get(row, column)?;
    serde_json::from_str(&text).map_err(|e| corrupt(column, e))
}

fn opt_json<T: DeserializeOwned>(row: &SqliteRow, column: &str) -> PortResult<Option<T>> {
    let text: Option<String> = get(row, column)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(column, e)))
        .transpose()
}

pub(super) fn status(row: &SqliteRow, column: &str) -> PortResult<VideoStatus> {
    let text: String = get(row, column)?;
    VideoStatus::parse(&text).ok_or_else(|| corrupt(column, text))
}

pub(super) fn user(row: &SqliteRow) -> PortResult<User> {
    Ok(User {
        id: UserId::from_uuid(uuid(row, "id")?),
        email: get(row, "email")?,
        password_hash: get(row, "password_hash")?,
        external_issuer: get(row, "external_issuer")?,
        external_subject: get(row, "external_subject")?,
        created_at: time(row, "created_at")?,
    })
}

pub(super) fn api_key(row: &SqliteRow) -> PortResult<ApiKey> {
    Ok(ApiKey {
        id: ApiKeyId::from_uuid(uuid(row, "id")?),
        owner: UserId::from_uuid(uuid(row, "owner")?),
        name: get(row, "name")?,
        prefix: get(row, "prefix")?,
        secret_sha256: get(row, "secret_sha256")?,
        created_at: time(row, "created_at")?,
        last_used_at: opt_time(row, "last_used_at")?,
        revoked_at: opt_time(row, "revoked_at")?,
    })
}

pub(super) fn video(row: &SqliteRow) -> PortResult<Video> {
    let size: Option<i64> = get(row, "size")?;
    Ok(Video {
        id: VideoId::from_uuid(uuid(row, "id")?),
        owner: UserId::from_uuid(uuid(row, "owner")?),
        file_name: get(row, "file_name")?,
        size: size
            .map(|s| u64::try_from(s).map_err(|e| corrupt("size", e)))
            .transpose()?,
        options: json(row, "options")?,
        status: status(row, "status")?,
        attempts: u32_col(row, "attempts")?,
        max_attempts: u32_col(row, "max_attempts")?,
        cycle: u32_col(row, "cycle")?,
        last_error: opt_json(row, "last_error")?,
        probe: opt_json(row, "probe")?,
        outputs: opt_json(row, "outputs")?,
        job: opt_uuid(row, "job")?.map(JobId::from_uuid),
        uploaded_at: opt_time(row, "uploaded_at")?,
        source: get(row, "source_key")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

/// A job from its row and its steps' rows (in recipe order).
pub(super) fn job(row: &SqliteRow, steps: &[SqliteRow]) -> PortResult<Job> {
    let status: String = get(row, "status")?;
    Ok(Job {
        id: JobId::from_uuid(uuid(row, "id")?),
        owner: UserId::from_uuid(uuid(row, "owner")?),
        recipe_name: get(row, "recipe_name")?,
        recipe: json(row, "recipe")?,
        params: json(row, "params")?,
        inputs: json(row, "inputs")?,
        video: opt_uuid(row, "video")?.map(VideoId::from_uuid),
        status: JobStatus::parse(&status).ok_or_else(|| corrupt("jobs.status", &status))?,
        cycle: u32_col(row, "cycle")?,
        steps: all(steps, step)?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn step_status(row: &SqliteRow, column: &str) -> PortResult<StepStatus> {
    let text: String = get(row, column)?;
    StepStatus::parse(&text).ok_or_else(|| corrupt(column, text))
}

fn step(row: &SqliteRow) -> PortResult<Step> {
    let progress: Option<i64> = get(row, "progress")?;
    Ok(Step {
        name: get(row, "name")?,
        status: step_status(row, "status")?,
        attempts: u32_col(row, "attempts")?,
        run: u32_col(row, "run")?,
        max_attempts: u32_col(row, "max_attempts")?,
        last_error: opt_json(row, "last_error")?,
        progress: progress
            .map(|p| u8::try_from(p).map_err(|e| corrupt("progress", e)))
            .transpose()?,
        run_at: opt_time(row, "run_at")?,
        lease_until: opt_time(row, "lease_until")?,
        worker: get(row, "worker")?,
        started_at: opt_time(row, "started_at")?,
        finished_at: opt_time(row, "finished_at")?,
        artefacts: json(row, "artefacts")?,
        result: opt_json(row, "result")?,
    })
}

pub(super) fn step_event(row: &SqliteRow) -> PortResult<StepEvent> {
    Ok(StepEvent {
        step: get(row, "step")?,
        status: step_status(row, "status")?,
        attempt: u32_col(row, "attempt")?,
        at: time(row, "at")?,
        reason: get(row, "reason")?,
    })
}

fn u64_col(row: &SqliteRow, column: &str) -> PortResult<u64> {
    let value: i64 = get(row, column)?;
    u64::try_from(value).map_err(|e| corrupt(column, e))
}

pub(super) fn upload(row: &SqliteRow) -> PortResult<Upload> {
    Ok(Upload {
        id: UploadId::from_uuid(uuid(row, "id")?),
        owner: UserId::from_uuid(uuid(row, "owner")?),
        video: VideoId::from_uuid(uuid(row, "video")?),
        total_bytes: u64_col(row, "total_bytes")?,
        uploaded_bytes: u64_col(row, "uploaded_bytes")?,
        metadata: json(row, "metadata")?,
        staging: opt_json(row, "staging")?,
        expires_at: time(row, "expires_at")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

pub(super) fn status_change(row: &SqliteRow) -> PortResult<StatusChange> {
    Ok(StatusChange {
        status: status(row, "status")?,
        at: time(row, "at")?,
        attempt: u32_col(row, "attempt")?,
        reason: get(row, "reason")?,
    })
}

pub(super) fn webhook(row: &SqliteRow) -> PortResult<Webhook> {
    Ok(Webhook {
        id: WebhookId::from_uuid(uuid(row, "id")?),
        owner: UserId::from_uuid(uuid(row, "owner")?),
        url: get(row, "url")?,
        secret: get(row, "secret")?,
        created_at: time(row, "created_at")?,
    })
}

pub(super) fn notification(row: &SqliteRow) -> PortResult<Notification> {
    let event: String = get(row, "event")?;
    let status: String = get(row, "status")?;
    let code: Option<i64> = get(row, "last_status_code")?;
    let channel: Channel = json(row, "channel")?;
    let payload: serde_json::Value = json(row, "payload")?;
    let video = match opt_uuid(row, "video")? {
        Some(video) => VideoId::from_uuid(video),
        None => event::job_event_video(&payload).ok_or_else(|| corrupt("payload", "no input"))?,
    };
    Ok(Notification {
        id: NotificationId::from_uuid(uuid(row, "id")?),
        owner: UserId::from_uuid(uuid(row, "owner")?),
        video,
        job: opt_uuid(row, "job")?.map(JobId::from_uuid),
        cycle: u32_col(row, "cycle")?,
        event: EventType::parse(&event).ok_or_else(|| corrupt("event", &event))?,
        channel,
        payload,
        status: DeliveryStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        attempts: u32_col(row, "attempts")?,
        last_error: get(row, "last_error")?,
        last_status_code: code
            .map(|c| u16::try_from(c).map_err(|e| corrupt("last_status_code", e)))
            .transpose()?,
        next_attempt_at: time(row, "next_attempt_at")?,
        created_at: time(row, "created_at")?,
        delivered_at: opt_time(row, "delivered_at")?,
    })
}

/// Maps every row, failing on the first unreadable one.
pub(super) fn all<T>(
    rows: &[SqliteRow],
    map: impl Fn(&SqliteRow) -> PortResult<T>,
) -> PortResult<Vec<T>> {
    rows.iter().map(map).collect()
}

pub(super) fn qc_result(row: &SqliteRow) -> PortResult<QcResult> {
    let outcome: String = get(row, "outcome")?;
    let rating: Option<i64> = get(row, "rating")?;
    Ok(QcResult {
        id: QcResultId::from_uuid(uuid(row, "id")?),
        owner: UserId::from_uuid(uuid(row, "owner")?),
        video: VideoId::from_uuid(uuid(row, "video")?),
        job: opt_uuid(row, "job")?.map(JobId::from_uuid),
        cycle: u32_col(row, "cycle")?,
        attempt: u32_col(row, "attempt")?,
        key: get(row, "key")?,
        file_name: get(row, "file_name")?,
        outcome: QcOutcome::parse(&outcome).ok_or_else(|| corrupt("outcome", &outcome))?,
        rating: rating
            .map(|r| u8::try_from(r).map_err(|e| corrupt("rating", e)))
            .transpose()?,
        passed: get(row, "passed")?,
        error: opt_json(row, "error")?,
        checks: json(row, "checks")?,
        sidecar: json(row, "sidecar")?,
        moved_to: get(row, "moved_to")?,
        created_at: time(row, "created_at")?,
    })
}
