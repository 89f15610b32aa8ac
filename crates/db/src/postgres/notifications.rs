//! Webhooks, and the notifications owed for terminal outcomes: created with the outcome, leased to
//! one notifier at a time, retried, and kept as each webhook's delivery log.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use vidsnap_domain::{
    Channel, DeliveryAttempt, DeliveryStatus, EventType, Notification, NotificationId, PortError,
    PortResult, UserId, VideoId, Webhook, WebhookId,
};

use super::{
    PgStore,
    codec::{self, now, to_json},
};
use crate::{
    error::port_error,
    event::{self, Subject},
};

pub(super) async fn create_webhook(store: &PgStore, hook: &Webhook) -> PortResult<()> {
    sqlx::query(
        "INSERT INTO webhooks (id, owner, url, secret, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(hook.id.as_uuid())
    .bind(hook.owner.as_uuid())
    .bind(&hook.url)
    .bind(&hook.secret)
    .bind(hook.created_at)
    .execute(&store.pool)
    .await
    .map_err(port_error)?;
    Ok(())
}

/// Oldest first: the order they were registered in.
pub(super) async fn webhooks(store: &PgStore, owner: UserId) -> PortResult<Vec<Webhook>> {
    let mut conn = store.pool.acquire().await.map_err(port_error)?;
    owner_webhooks(&mut conn, owner).await
}

async fn owner_webhooks(conn: &mut PgConnection, owner: UserId) -> PortResult<Vec<Webhook>> {
    let rows = sqlx::query("SELECT * FROM webhooks WHERE owner = $1 ORDER BY id")
        .bind(owner.as_uuid())
        .fetch_all(conn)
        .await
        .map_err(port_error)?;
    codec::all(&rows, codec::webhook)
}

pub(super) async fn webhook(
    store: &PgStore,
    owner: Option<UserId>,
    id: WebhookId,
) -> PortResult<Webhook> {
    let row =
        sqlx::query("SELECT * FROM webhooks WHERE id = $1 AND ($2::uuid IS NULL OR owner = $2)")
            .bind(id.as_uuid())
            .bind(owner.map(|o| o.as_uuid()))
            .fetch_one(&store.pool)
            .await
            .map_err(port_error)?;
    codec::webhook(&row)
}

/// Its deliveries go with it, pending ones included: nobody is left to receive them.
pub(super) async fn delete_webhook(
    store: &PgStore,
    owner: UserId,
    id: WebhookId,
) -> PortResult<()> {
    let done = sqlx::query("DELETE FROM webhooks WHERE id = $1 AND owner = $2")
        .bind(id.as_uuid())
        .bind(owner.as_uuid())
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
    conn: &mut PgConnection,
    subject: Subject<'_>,
    event: EventType,
    at: DateTime<Utc>,
) -> PortResult<()> {
    let owner = subject.owner();
    let email: String = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(owner.as_uuid())
        .fetch_one(&mut *conn)
        .await
        .map_err(port_error)?;
    let hooks = owner_webhooks(conn, owner).await?;
    for (channel, key) in event::channels(&email, &hooks) {
        let id = NotificationId::new();
        let webhook = match &channel {
            Channel::Webhook { webhook, .. } => Some(webhook.as_uuid()),
            Channel::Email { .. } => None,
        };
        // No conflict target: the subject's own UNIQUE constraint is the one that can fire.
        sqlx::query(
            "INSERT INTO notifications (id, owner, video, job, cycle, event, channel, channel_key,
                                        webhook, payload, status, next_attempt_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', $11, $11)
             ON CONFLICT DO NOTHING",
        )
        .bind(id.as_uuid())
        .bind(owner.as_uuid())
        .bind(subject.video().map(|v| v.as_uuid()))
        .bind(subject.job().map(|j| j.as_uuid()))
        .bind(i64::from(subject.cycle()))
        .bind(event.as_str())
        .bind(to_json(&channel)?)
        .bind(key)
        .bind(webhook)
        .bind(subject.body(id, event, at)?)
        .bind(at)
        .execute(&mut *conn)
        .await
        .map_err(port_error)?;
    }
    Ok(())
}

/// The oldest due pending notification nobody holds (or whose holder's lease ran out), leased in
/// one statement. `SKIP LOCKED` lets concurrent notifiers pass over a row another is leasing
/// instead of queueing behind it; the row lock re-checks the conditions on the latest version,
/// so two notifiers never take the same one.
pub(super) async fn claim_notification(
    store: &PgStore,
    worker: &str,
    lease_until: DateTime<Utc>,
) -> PortResult<Option<Notification>> {
    let row = sqlx::query(
        "UPDATE notifications SET lease_owner = $1, lease_until = $2
         WHERE id = (
             SELECT id FROM notifications
             WHERE status = 'pending' AND next_attempt_at <= $3
               AND (lease_until IS NULL OR lease_until <= $3)
             ORDER BY id
             LIMIT 1
             FOR UPDATE SKIP LOCKED
         )
         RETURNING *",
    )
    .bind(worker)
    .bind(lease_until)
    .bind(now())
    .fetch_optional(&store.pool)
    .await
    .map_err(port_error)?;
    row.as_ref().map(codec::notification).transpose()
}

/// Releases the lease with the outcome: delivered, pending again at `retry_at`, or failed.
pub(super) async fn record_delivery(
    store: &PgStore,
    id: NotificationId,
    attempt: &DeliveryAttempt,
) -> PortResult<()> {
    let at = now();
    let (status, next_attempt_at, delivered_at) = match (attempt.ok, attempt.retry_at) {
        (true, _) => (DeliveryStatus::Delivered, None, Some(at)),
        (false, Some(retry)) => (DeliveryStatus::Pending, Some(retry), None),
        (false, None) => (DeliveryStatus::Failed, None, None),
    };
    let done = sqlx::query(
        "UPDATE notifications
         SET status = $1, attempts = attempts + 1, last_error = $2, last_status_code = $3,
             next_attempt_at = COALESCE($4, next_attempt_at),
             delivered_at = COALESCE($5, delivered_at),
             lease_owner = NULL, lease_until = NULL
         WHERE id = $6",
    )
    .bind(status.as_str())
    .bind(attempt.error.as_deref())
    .bind(attempt.status_code.map(i64::from))
    .bind(next_attempt_at)
    .bind(delivered_at)
    .bind(id.as_uuid())
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
    store: &PgStore,
    owner: UserId,
    webhook: WebhookId,
) -> PortResult<Vec<Notification>> {
    let mut conn = store.pool.acquire().await.map_err(port_error)?;
    sqlx::query("SELECT id FROM webhooks WHERE id = $1 AND owner = $2")
        .bind(webhook.as_uuid())
        .bind(owner.as_uuid())
        .fetch_one(&mut *conn)
        .await
        .map_err(port_error)?;
    let rows = sqlx::query("SELECT * FROM notifications WHERE webhook = $1 ORDER BY id DESC")
        .bind(webhook.as_uuid())
        .fetch_all(&mut *conn)
        .await
        .map_err(port_error)?;
    codec::all(&rows, codec::notification)
}

/// Oldest first; empty for an unknown video. Only the video's own (`video.*`): a job reading it
/// is another subject.
pub(super) async fn notifications_for(
    store: &PgStore,
    video: VideoId,
) -> PortResult<Vec<Notification>> {
    let rows = sqlx::query("SELECT * FROM notifications WHERE video = $1 ORDER BY id")
        .bind(video.as_uuid())
        .fetch_all(&store.pool)
        .await
        .map_err(port_error)?;
    codec::all(&rows, codec::notification)
}

/// Pending, due now, unleased. Attempts keep counting: the log shows every try.
pub(super) async fn redeliver(
    store: &PgStore,
    owner: UserId,
    id: NotificationId,
) -> PortResult<Notification> {
    let row = sqlx::query(
        "UPDATE notifications
         SET status = 'pending', next_attempt_at = $1, lease_owner = NULL, lease_until = NULL
         WHERE id = $2 AND owner = $3
         RETURNING *",
    )
    .bind(now())
    .bind(id.as_uuid())
    .bind(owner.as_uuid())
    .fetch_one(&store.pool)
    .await
    .map_err(port_error)?;
    codec::notification(&row)
}
