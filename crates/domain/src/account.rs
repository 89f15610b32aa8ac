//! People and machines: users, API keys, refresh tokens, webhooks, and the notifications owed to
//! them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{ApiKeyId, JobId, NotificationId, UserId, VideoId, WebhookId};

/// An account. Password users have a hash; users provisioned from an external identity provider
/// (OIDC) have an issuer and subject instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    /// Lower-cased; unique.
    pub email: String,
    /// Argon2id PHC string; `None` for external identities.
    #[serde(skip_serializing)]
    pub password_hash: Option<String>,
    pub external_issuer: Option<String>,
    pub external_subject: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A machine client's credential. The secret is shown once at creation; only its SHA-256 is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub owner: UserId,
    pub name: String,
    /// The first characters of the secret, to recognise a key in a list.
    pub prefix: String,
    /// Hex SHA-256 of the whole secret.
    #[serde(skip_serializing)]
    pub secret_sha256: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// An endpoint a user registered to receive signed event posts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: WebhookId,
    pub owner: UserId,
    pub url: String,
    /// The HMAC key for `Vidsnap-Signature`; shown once at creation.
    #[serde(skip_serializing)]
    pub secret: String,
    pub created_at: DateTime<Utc>,
}

/// What happened, as announced to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "video.succeeded")]
    VideoSucceeded,
    #[serde(rename = "video.dead")]
    VideoDead,
    #[serde(rename = "job.succeeded")]
    JobSucceeded,
    #[serde(rename = "job.failed")]
    JobFailed,
    #[serde(rename = "job.dead")]
    JobDead,
    /// The bucket workflow moved a file to the processed folder.
    #[serde(rename = "qc.processed")]
    QcProcessed,
    /// The bucket workflow moved a file to the failed folder (it will be retried).
    #[serde(rename = "qc.failed")]
    QcFailed,
    /// The bucket workflow gave up on a file after its retries.
    #[serde(rename = "qc.unable_to_process")]
    QcUnableToProcess,
}

impl EventType {
    pub const ALL: [EventType; 8] = [
        Self::VideoSucceeded,
        Self::VideoDead,
        Self::JobSucceeded,
        Self::JobFailed,
        Self::JobDead,
        Self::QcProcessed,
        Self::QcFailed,
        Self::QcUnableToProcess,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::VideoSucceeded => "video.succeeded",
            Self::VideoDead => "video.dead",
            Self::JobSucceeded => "job.succeeded",
            Self::JobFailed => "job.failed",
            Self::JobDead => "job.dead",
            Self::QcProcessed => "qc.processed",
            Self::QcFailed => "qc.failed",
            Self::QcUnableToProcess => "qc.unable_to_process",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

/// Where a notification goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Channel {
    Email { to: String },
    Webhook { webhook: WebhookId, url: String },
}

/// Delivery state of a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// Every attempt failed; a user may ask for redelivery.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One notification owed: exactly one per (video, cycle, event, channel), created in the same
/// transaction as the terminal status change it announces, so a crash cannot lose it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub id: NotificationId,
    pub owner: UserId,
    /// The video it is about: the video of a `video.*` event, the first input of a `job.*` one.
    pub video: VideoId,
    /// The job of a `job.*` event.
    pub job: Option<JobId>,
    pub cycle: u32,
    pub event: EventType,
    pub channel: Channel,
    /// The event body, frozen when the outcome was recorded: the same bytes on every attempt.
    pub payload: serde_json::Value,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// HTTP status of the last webhook attempt.
    pub last_status_code: Option<u16>,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    pub ok: bool,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    /// When to try again after a failure; `None` gives up (status `failed`).
    pub retry_at: Option<DateTime<Utc>>,
}
