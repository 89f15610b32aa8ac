//! The port traits, each method handed to the module that owns its tables.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use vidsnap_domain::{
    ApiKey, ApiKeyId, Change, DeliveryAttempt, EventType, Job, JobId, JobQueue, JobStatus,
    JobUpdate, Jobs, Lease, Move, NewTask, Notification, NotificationId, Page, PortResult,
    QcCounts, QcResult, QueueStats, Repository, SortItem, Sorting, StatusChange, StepEvent, Task,
    Transition, Upload, UploadId, User, UserId, Video, VideoId, VideoStatus, Webhook, WebhookId,
};

use super::{PgStore, accounts, jobs, notifications, qc, queue, uploads, videos};
use crate::error::port_error;

crate::delegate::delegate_ports!(PgStore);
