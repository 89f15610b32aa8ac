//! Webhooks, and the notifications owed for terminal outcomes: created with the outcome, leased to
//! one notifier at a time, retried, and kept as each webhook's delivery log.

use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;
use vidsnap_domain::{
    Channel, DeliveryAttempt, DeliveryStatus, EventType, Notification, NotificationId, PortError,
    PortResult, UserId, VideoId, Webhook, WebhookId,
};

use super::{
    SqliteStore,
    codec::{self, micros, now, to_json},
};
use crate::{
    error::port_error,
    event::{self, Subject},
};

pub(super) async fn create_webhook(store: &SqliteStore, hook: &Webhook) -> PortResult<()> {
    sqlx::query("INSERT INTO webhooks (id, owner, url, secret, created_at) VALUES (?, ?, ?, ?, ?)")
        .bind(hook.id.to_string())
        .bind(hook.owner.to_string())
        .bind(&hook.url)
        .bind(&hook.secret)
        .bind(micros(hook.created_at))
        .execute(&store.pool)
        .await
        .map_err(port_error)?;
    Ok(())
}

/// Oldest first: the order they were registered in.
pub(super) async fn webhooks(store: &SqliteStore, owner: UserId) -> PortResult<Vec<Webhook>> {
    let mut conn = store.pool.acquire().await.map_err(port_error)?;
    owner_webhooks(&mut conn, owner).await
}

async fn owner_webhooks(conn: &mut SqliteConnection, owner: UserId) -> PortResult<Vec<Webhook>> {
    let rows = sqlx::query("SELECT * FROM webhooks WHERE owner = ? ORDER BY id")
        .bind(owner.to_string())
        .fetch_all(conn)
        .await
        .map_err(port_error)?;
    codec::all(&rows, codec::webhook)
}

pub(super) async fn webhook(
    store: &SqliteStore,
    owner: Option<UserId>,
    id: WebhookId,
) -> PortResult<Webhook> {
    let row = sqlx::query("SELECT * FROM webhooks WHERE id = ?1 AND (?2 IS NULL OR owner = ?2)")
        .bind(id.to_string())
        .bind(owner.map(|o| o.to_string()))
        .fetch_one(&store.pool)
        .await
        .map_err(port_error)?;
    codec::webhook(&row)
}

/// Its deliveries go with it, pending ones included: nobody is left to receive them.
pub(super) async fn delete_webhook(
    store: &SqliteStore,
    owner: UserId,
    id: WebhookId,
) -> PortResult<()> {
    let done = sqlx::query("DELETE FROM webhooks WHERE id = ? AND owner = ?")
        .bind(id.to_string())
        .bind(owner.to_string())
        .execute(&store.pool)
        .await
        .map_err(port_error)?;
    if done.rows_affected() == 0 {
        return Err(PortError::NotFound);
    }
    Ok(())
}

/// Creates, inside the outcome's transaction, the notifications it owes: one e-mail and one per
/// webhook of the owner. A notification that already exists for this outcome (same subject,
/// cycle, event and channel) is left alone, so recording an outcome twice announces it once.
pub(super) async fn owe(
    conn: &mut SqliteConnection,
    subject: Subject<'_>,
    event: EventType,
    at: DateTime<Utc>,
) -> PortResult<()> {
    let owner = subject.owner();
    let email: String = sqlx::query_scalar("SELECT email FROM users WHERE id = ?")
        .bind(owner.to_string())
        .fetch_one(&mut *conn)
        .await
        .map_err(port_error)?;
    let hooks = owner_webhooks(conn, owner).await?;
    for (channel, key) in event::channels(&email, &hooks) {
        let id = NotificationId::new();
        let webhook = match &channel {
            Channel::Webhook { webhook, .. } => Some(webhook.to_string()),
            Channel::Email { .. } => None,
        };
        // No conflict target: the subject's own UNIQUE constraint is the one that can fire.
        sqlx::query(
            "INSERT INTO notifications (id, owner, video, job, cycle, event, channel, channel_key,
                                        webhook, payload, status, next_attempt_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'pending', ?11, ?11)
             ON CONFLICT DO NOTHING",
        )
        .bind(id.to_string())
        .bind(owner.to_string())
        .bind(subject.video().map(|v| v.to_string()))
        .bind(subject.job().map(|j| j.to_string()))
        .bind(i64::from(subject.cycle()))
        .bind(event.as_str())
        .bind(to_json(&channel)?)
        .bind(key)
        .bind(webhook)
        .bind(subject.body(id, event, at)?)
        .bind(micros(at))
        .execute(&mut *conn)
        .await
        .map_err(port_error)?;
    }
    Ok(())
}

/// The oldest due pending notification nobody holds (or whose holder's lease ran out), leased in
/// one statement so two notifiers never take the same one.
pub(super) async fn claim_notification(
    store: &SqliteStore,
    worker: &str,
    lease_until: DateTime<Utc>,
) -> PortResult<Option<Notification>> {
    let row = sqlx::query(
        "UPDATE notifications SET lease_owner = ?1, lease_until = ?2
         WHERE id = (
             SELECT id FROM notifications
             WHERE status = 'pending' AND next_attempt_at <= ?3
               AND (lease_until IS NULL OR lease_until <= ?3)
             ORDER BY id
             LIMIT 1
         )
         RETURNING *",
    )
    .bind(worker)
    .bind(micros(lease_until))
    .bind(micros(now()))
    .fetch_optional(&store.pool)
    .await
    .map_err(port_error)?;
    row.as_ref().map(codec::notification).transpose()
}

/// Releases the lease with the outcome: delivered, pending again at `retry_at`, or failed.
pub(super) async fn record_delivery(
    store: &SqliteStore,
    id: NotificationId,
    attempt: &DeliveryAttempt,
) -> PortResult<()> {
    let at = now();
    let (status, next_attempt_at, delivered_at) = match (attempt.ok, attempt.retry_at) {
        (true, _) => (DeliveryStatus::Delivered, None, Some(micros(at))),
        (false, Some(retry)) => (DeliveryStatus::Pending, Some(micros(retry)), None),
        (false, None) => (DeliveryStatus::Failed, None, None),
    };
    let done = sqlx::query(
        "UPDATE notifications
         SET status = ?, attempts = attempts + 1, last_error = ?, last_status_code = ?,
             next_attempt_at = COALESCE(?, next_attempt_at),
             delivered_at = COALESCE(?, delivered_at),
             lease_owner = NULL, lease_until = NULL
         WHERE id = ?",
    )
    .bind(status.as_str())
    .bind(attempt.error.as_deref())
    .bind(attempt.status_code.map(i64::from))
    .bind(next_attempt_at)
    .bind(delivered_at)
    .bind(id.to_string())
    .execute(&store.pool)
    .await
    .map_err(port_error)?;
    if done.rows_affected() == 0 {
        return Err(PortError::NotFound);
    }
    Ok(())
}

/// Newest first; `NotFound` when the webhook is not the owner's.
pub(super) async fn deliveries(
    store: &SqliteStore,
    owner: UserId,
    webhook: WebhookId,
) -> PortResult<Vec<Notification>> {
    let mut conn = store.pool.acquire().await.map_err(port_error)?;
    sqlx::query("SELECT id FROM webhooks WHERE id = ? AND owner = ?")
        .bind(webhook.to_string())
        .bind(owner.to_string())
        .fetch_one(&mut *conn)
        .await
        .map_err(port_error)?;
    let rows = sqlx::query("SELECT * FROM notifications WHERE webhook = ? ORDER BY id DESC")
        .bind(webhook.to_string())
        .fetch_all(&mut *conn)
        .await
        .map_err(port_error)?;
    codec::all(&rows, codec::notification)
}

/// Oldest first; empty for an unknown video. Only the video's own (`video.*`): a job reading it
/// is another subject.
pub(super) async fn notifications_for(
    store: &SqliteStore,
    video: VideoId,
) -> PortResult<Vec<Notification>> {
    let rows = sqlx::query("SELECT * FROM notifications WHERE video = ? ORDER BY id")
        .bind(video.to_string())
        .fetch_all(&store.pool)
        .await
        .map_err(port_error)?;
    codec::all(&rows, codec::notification)
}

/// Pending, due now, unleased. Attempts keep counting: the log shows every try.
pub(super) async fn redeliver(
    store: &SqliteStore,
    owner: UserId,
    id: NotificationId,
) -> PortResult<Notification> {
    let row = sqlx::query(
        "UPDATE notifications
         SET status = 'pending', next_attempt_at = ?, lease_owner = NULL, lease_until = NULL
         WHERE id = ? AND owner = ?
         RETURNING *",
    )
    .bind(micros(now()))
    .bind(id.to_string())
    .bind(owner.to_string())
    .fetch_one(&store.pool)
    .await
    .map_err(port_error)?;
    codec::notification(&row)
}
