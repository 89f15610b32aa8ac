//! The port traits, each method handed to the module that owns its tables.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use vidsnap_domain::{
    ApiKey, ApiKeyId, Change, DeliveryAttempt, Job, JobId, JobQueue, JobStatus, JobUpdate, Jobs,
    Lease, NewTask, Notification, NotificationId, Page, PortResult, QueueStats, Repository,
    StatusChange, StepEvent, Task, Transition, Upload, UploadId, User, UserId, Video, VideoId,
    VideoStatus, Webhook, WebhookId,
};

use super::{PgStore, accounts, jobs, notifications, queue, uploads, videos};
use crate::error::port_error;

crate::delegate::delegate_ports!(PgStore);
