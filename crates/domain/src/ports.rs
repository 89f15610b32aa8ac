//! The port traits: what the service needs from a database, a blob store and a queue. Backends
//! (SQLite, PostgreSQL; local disk, S3; database queue, SQS, AMQP) implement them; handlers and
//! the worker use only `Arc<dyn Trait>`. Every backend must pass the same contract tests.

use std::{path::Path, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    ApiKey, ApiKeyId, AppendError, Appended, ByteStream, Change, ChangeError, Checksum,
    DeliveryAttempt, EventType, Failure, Job, JobId, JobStatus, Notification, NotificationId,
    Outputs, QcCounts, QcResult, StatusChange, StepEvent, Task, TaskId, Upload, UploadId, User,
    UserId, Video, VideoId, VideoStatus, Webhook, WebhookId, job::Applied,
};

/// Why a port operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The thing does not exist (or belongs to someone else: callers cannot tell).
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was broken (e.g. an e-mail already registered).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The status machine forbids this change; nothing was written.
    #[error("a {from} video cannot become {to}")]
    InvalidTransition { from: VideoStatus, to: VideoStatus },
    /// A queue lease was taken over by another worker (it expired), or an upload's write lease
    /// is no longer held by the caller.
    #[error("lease lost")]
    LeaseLost,
    /// Another writer holds the thing's lease (an upload being written to): try again later.
    #[error("locked by another writer")]
    Locked,
    /// The backend is unreachable or failed; worth retrying.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// A user's change that the job's state does not allow (cancel a finished job, re-run a
    /// step that succeeded); nothing was written.
    #[error("{0}")]
    Refused(String),
}

impl From<ChangeError> for PortError {
    fn from(error: ChangeError) -> Self {
        match error {
            ChangeError::NoSuchStep(_) => Self::NotFound,
            ChangeError::InvalidState(message) => Self::Refused(message),
        }
    }
}

pub type PortResult<T> = Result<T, PortError>;

/// A status change with everything recorded alongside it, applied atomically.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub to: VideoStatus,
    /// Shown in the history.
    pub reason: Option<String>,
    /// Counts a new attempt (entering `processing`).
    pub start_attempt: bool,
    /// A user's retry of a dead or failed video: attempts restart and the cycle advances, so the
    /// next outcome is announced again.
    pub new_cycle: bool,
    /// `Some(None)` clears the error; `None` leaves it.
    pub error: Option<Option<Failure>>,
    pub probe: Option<serde_json::Value>,
    pub outputs: Option<Outputs>,
}

impl Transition {
    pub fn to(status: VideoStatus) -> Self {
        Self {
            to: status,
            reason: None,
            start_attempt: false,
            new_cycle: false,
            error: None,
            probe: None,
            outputs: None,
        }
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// A page of a listing, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A job after a change, and what the change asks of the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct JobUpdate {
    pub job: Job,
    /// Its `tasks` must be enqueued (after the change committed); its `verdict` says whether a
    /// worker may run the step.
    pub applied: Applied,
}

/// Jobs and their steps. Every method scoped by `owner` treats another user's job exactly like
/// a missing one; `owner: None` is for workers and housekeeping, which act for every user.
///
/// The rules are [`Job::apply`]'s; a repository only loads, applies and writes, atomically.
#[async_trait]
pub trait Jobs: Send + Sync {
    /// Stores a job made by [`Job::new`] with the events that made it; a `/v1/videos` job
    /// (`job.video`) is linked to its video. `Conflict` when its id exists or its video already
    /// has another job (nothing is stored); `NotFound` when an input video does not exist or is
    /// another user's.
    async fn create_job(&self, job: &Job, events: &[StepEvent]) -> PortResult<()>;
    async fn job(&self, owner: Option<UserId>, id: JobId) -> PortResult<Job>;
    /// The owner's jobs, newest first, optionally of one status.
    async fn jobs(
        &self,
        owner: UserId,
        status: Option<JobStatus>,
        cursor: Option<&str>,
        limit: u32,
    ) -> PortResult<Page<Job>>;
    /// The job's history, oldest first.
    async fn job_events(&self, id: JobId) -> PortResult<Vec<StepEvent>>;
    /// In one transaction: loads the job, applies `change` at the repository's clock, writes the
    /// job, its steps and the events, applies the video transitions of a `/v1/videos` job to
    /// its video (one that the video's status no longer allows is skipped), and, when the job
    /// finished, creates the notifications owed (`job.*` per channel, unique per job, cycle,
    /// event and channel; a `/v1/videos` job is announced by its video's `video.*` instead).
    /// A refused user change is `Refused` or `NotFound`, with nothing written; a stale worker
    /// report is not an error but a [`Verdict::Stale`](crate::Verdict::Stale), also with
    /// nothing written.
    async fn change_job(
        &self,
        owner: Option<UserId>,
        id: JobId,
        change: Change,
    ) -> PortResult<JobUpdate>;
    /// Which of `ids` are jobs that exist (of any owner), in no particular order: the orphan
    /// audit asks it of the job folders it finds in storage.
    async fn existing_jobs(&self, ids: &[JobId]) -> PortResult<Vec<JobId>>;
    /// Unfinished jobs that read `video` while it is not uploaded yet.
    async fn jobs_waiting_for(&self, video: VideoId) -> PortResult<Vec<JobId>>;
    /// Unfinished jobs that read `video` (uploaded or not), oldest first.
    async fn jobs_reading(&self, video: VideoId) -> PortResult<Vec<JobId>>;
    /// Tasks of `ready` steps due since before `before`, and of `running` steps whose lease ran
    /// out before it (their worker died, and their message may be gone too), oldest first, at
    /// most `limit`: for the scheduler to enqueue again. A duplicate is dropped as stale or busy;
    /// the one for a dead worker's step takes it over.
    async fn overdue_tasks(&self, before: DateTime<Utc>, limit: u32) -> PortResult<Vec<Task>>;
    /// Deletes the job, its steps and events (its blobs are the caller's); returns it.
    /// `Refused` while a step runs (checked under the job's lock).
    async fn delete_job(&self, owner: UserId, id: JobId) -> PortResult<Job>;
}

/// Metadata storage. Every method scoped by `owner` treats another user's row exactly like a
/// missing one ([`PortError::NotFound`]).
#[async_trait]
pub trait Repository: Jobs + Sorting + Send + Sync {
    /// Whether the database answers.
    async fn ping(&self) -> PortResult<()>;

    // --- users and credentials ---
    /// Fails with `Conflict` when the e-mail (case-insensitive) is taken.
    async fn create_user(&self, user: &User) -> PortResult<()>;
    async fn user(&self, id: UserId) -> PortResult<User>;
    async fn user_by_email(&self, email: &str) -> PortResult<User>;
    /// The user provisioned for an external identity, created on first sight.
    async fn external_user(&self, issuer: &str, subject: &str, email: &str) -> PortResult<User>;
    async fn store_refresh_token(
        &self,
        user: UserId,
        token_sha256: &str,
        expires_at: DateTime<Utc>,
    ) -> PortResult<()>;
    /// Consumes a refresh token (single use: rotation); `NotFound` when unknown, used or expired.
    async fn take_refresh_token(&self, token_sha256: &str) -> PortResult<UserId>;
    /// Records that browser session `id` (valid until `expires_at`) was signed out. Idempotent.
    async fn revoke_session(&self, id: &str, expires_at: DateTime<Utc>) -> PortResult<()>;
    /// Whether browser session `id` was signed out.
    async fn session_revoked(&self, id: &str) -> PortResult<bool>;
    async fn create_api_key(&self, key: &ApiKey) -> PortResult<()>;
    /// An unrevoked key by its secret's hash; records the use.
    async fn api_key_by_secret(&self, secret_sha256: &str) -> PortResult<ApiKey>;
    async fn api_keys(&self, owner: UserId) -> PortResult<Vec<ApiKey>>;
    async fn revoke_api_key(&self, owner: UserId, id: ApiKeyId) -> PortResult<()>;

    // --- videos ---
    async fn create_video(&self, video: &Video) -> PortResult<()>;
    /// `owner: None` is for the worker, which acts for every user.
    async fn video(&self, owner: Option<UserId>, id: VideoId) -> PortResult<Video>;
    async fn videos(
        &self,
        owner: UserId,
        status: Option<VideoStatus>,
        cursor: Option<&str>,
        limit: u32,
    ) -> PortResult<Page<Video>>;
    /// Which of `ids` are videos that exist (of any owner), in no particular order: the orphan
    /// audit asks it of the video folders it finds in storage.
    async fn existing_videos(&self, ids: &[VideoId]) -> PortResult<Vec<VideoId>>;
    async fn history(&self, id: VideoId) -> PortResult<Vec<StatusChange>>;
    /// Applies a transition allowed by [`VideoStatus::can_become`], records it in the history,
    /// and, on entering a terminal status, creates the notifications owed for it (e-mail to the
    /// owner and one per webhook) in the same transaction. Returns the updated video.
    async fn transition(&self, id: VideoId, transition: Transition) -> PortResult<Video>;
    /// Records that the video's bytes are stored, once: `true` the first time, `false` when it
    /// was already marked.
    async fn mark_uploaded(&self, id: VideoId) -> PortResult<bool>;
    /// Deletes the video, its history, its notifications and the jobs made for it by
    /// `/v1/videos`; returns what was deleted.
    async fn delete_video(&self, owner: UserId, id: VideoId) -> PortResult<Video>;
    /// Counts per status, for metrics.
    async fn count_by_status(&self) -> PortResult<Vec<(VideoStatus, u64)>>;
    /// Videos `queued` since before `before` (oldest first, at most `limit`): the ones whose job
    /// may have been lost between their status change and the enqueue, for the sweep to enqueue
    /// again (enqueue is idempotent, so a video that has its job loses nothing).
    async fn stale_queued(&self, before: DateTime<Utc>, limit: u32) -> PortResult<Vec<VideoId>>;

    // --- webhooks and notifications ---
    async fn create_webhook(&self, hook: &Webhook) -> PortResult<()>;
    async fn webhooks(&self, owner: UserId) -> PortResult<Vec<Webhook>>;
    async fn webhook(&self, owner: Option<UserId>, id: WebhookId) -> PortResult<Webhook>;
    async fn delete_webhook(&self, owner: UserId, id: WebhookId) -> PortResult<()>;
    /// Leases the next due pending notification to `worker` until `lease_until`.
    async fn claim_notification(
        &self,
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> PortResult<Option<Notification>>;
    /// Records an attempt: delivered, retry later, or failed for good.
    async fn record_delivery(
        &self,
        id: NotificationId,
        attempt: &DeliveryAttempt,
    ) -> PortResult<()>;
    /// A webhook's delivery log, newest first.
    async fn deliveries(&self, owner: UserId, webhook: WebhookId) -> PortResult<Vec<Notification>>;
    /// Every notification of a video (for tests and support).
    async fn notifications_for(&self, video: VideoId) -> PortResult<Vec<Notification>>;
    /// Makes a notification pending again, due now.
    async fn redeliver(&self, owner: UserId, id: NotificationId) -> PortResult<Notification>;

    // --- resumable uploads ---
    // An upload has one writer at a time: a lease on its row (`writer_token`, `writer_until`),
    // taken by compare-and-set, never a lock held across a transaction. Writes to the session
    // (progress, deletion) name the lease's token and fail with `LeaseLost` when it is no longer
    // theirs, so a writer whose lease expired (it stalled, its process died) cannot overwrite
    // what the next one did.
    /// Stores `video` (with its first history entry, as [`create_video`](Self::create_video))
    /// and `upload`, its session, atomically. `Conflict` when either id exists, `NotFound` for
    /// an unknown owner.
    async fn create_upload(&self, video: &Video, upload: &Upload) -> PortResult<()>;
    /// `owner: None` is for housekeeping, which acts for every user.
    async fn upload(&self, owner: Option<UserId>, id: UploadId) -> PortResult<Upload>;
    /// The session a video was created with; `NotFound` when it has none (left).
    async fn upload_of_video(&self, video: VideoId) -> PortResult<Upload>;
    /// Takes the upload's write lease for `token` until `lease` from now, when nobody holds an
    /// unexpired one, and returns the session as of that moment. `Locked` when another writer
    /// holds it; `NotFound` when missing or another user's.
    async fn lease_upload(
        &self,
        owner: Option<UserId>,
        id: UploadId,
        token: &str,
        lease: Duration,
    ) -> PortResult<Upload>;
    /// Extends a held lease to `lease` from now and the session's expiry to `ttl` from now (a
    /// long write is activity too). `LeaseLost` when `token` no longer holds it.
    async fn renew_upload_lease(
        &self,
        id: UploadId,
        token: &str,
        lease: Duration,
        ttl: Duration,
    ) -> PortResult<()>;
    /// Records that the upload now holds `to` bytes (it held `from`), with the staging
    /// backend's new state when `Some`, and pushes its expiry to `ttl` from now. The lease stays
    /// held. `LeaseLost` when `token` does not hold the lease or the offset is not `from`.
    async fn record_upload_progress(
        &self,
        id: UploadId,
        token: &str,
        from: u64,
        to: u64,
        staging: Option<&serde_json::Value>,
        ttl: Duration,
    ) -> PortResult<Upload>;
    /// Gives the lease up; nothing happens when `token` does not hold it (any more).
    async fn release_upload_lease(&self, id: UploadId, token: &str) -> PortResult<()>;
    /// Deletes the session, and its video too while that is still `awaiting_upload` and no
    /// other unfinished job reads it (a video already queued is processed as usual), in one
    /// transaction; returns what was deleted.
    /// `LeaseLost` unless `token` holds the lease.
    async fn delete_upload(&self, id: UploadId, token: &str)
    -> PortResult<(Upload, Option<Video>)>;
    /// Sessions whose expiry is before `now` and that nobody is writing to (no unexpired
    /// lease), oldest expiry first, at most `limit`.
    async fn expired_uploads(&self, now: DateTime<Utc>, limit: u32) -> PortResult<Vec<Upload>>;
    /// Deletes the session as [`delete_upload`](Self::delete_upload) does, but only if it is
    /// still expired at `now` and not being written to: `None` (nothing deleted) otherwise, or
    /// when it is already gone. Safe to race: exactly one caller deletes it.
    async fn delete_expired_upload(
        &self,
        id: UploadId,
        now: DateTime<Utc>,
    ) -> PortResult<Option<(Upload, Option<Video>)>>;
    /// Videos `awaiting_upload` created before `before` that have no upload session (their
    /// presigned PUT was never used) and that no unfinished job but their own reads, oldest
    /// first, at most `limit`.
    async fn abandoned_videos(&self, before: DateTime<Utc>, limit: u32) -> PortResult<Vec<Video>>;
    /// Deletes the video if it is still `awaiting_upload`, created before `before` and without
    /// an upload session; `None` otherwise. Safe to race, like
    /// [`delete_expired_upload`](Self::delete_expired_upload).
    async fn delete_abandoned_video(
        &self,
        id: VideoId,
        before: DateTime<Utc>,
    ) -> PortResult<Option<Video>>;
}

/// A watched video the bucket workflow looks at, with the key its object is being moved from.
#[derive(Debug, Clone, PartialEq)]
pub struct SortItem {
    pub video: Video,
    /// Set between a decision that moves the object and the end of the move: the object (and its
    /// sidecar and outputs) may still be there, the copy under `video.source` may be partial.
    pub moving_from: Option<String>,
}

/// What a decision moves: the video's object (and what sits beside it) from one key to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub from: String,
    pub to: String,
    /// The job whose artefacts sit beside the object (`{dir}/{stem}-qc.json`): their keys in the
    /// job follow the object, from the prefix `.0` to `.1`.
    pub outputs: Option<(JobId, String, String)>,
}

/// The bucket workflow's records (seed 002): which watched videos to sort, their decisions, and
/// the read API's queries over them.
#[async_trait]
pub trait Sorting: Send + Sync {
    /// Watched videos whose object is under one of `folders` (each ending in `/`), and every
    /// video with a move in progress, oldest first, at most `limit`.
    async fn sort_candidates(&self, folders: &[String], limit: u32) -> PortResult<Vec<SortItem>>;
    /// The video registered for the object at `key`, or being moved away from it: a key taken
    /// either way is not a new file.
    async fn video_by_source(&self, key: &str) -> PortResult<Video>;
    /// Records a decision, with the notifications `event` owes, and (with `moving`) points the
    /// video at its new key, with `moving_from` set until [`finish_move`](Self::finish_move).
    /// All or nothing; `false` (and nothing changed) when the video's decision `result.attempt`
    /// exists already, so racing schedulers decide once.
    async fn record_qc_result(
        &self,
        result: &QcResult,
        moving: Option<&Move>,
        event: Option<EventType>,
    ) -> PortResult<bool>;
    /// The move recorded for `video` is done: every object is at its new key.
    async fn finish_move(&self, video: VideoId) -> PortResult<()>;
    /// Every decision about `video`, oldest first.
    async fn qc_results_of(&self, video: VideoId) -> PortResult<Vec<QcResult>>;
    /// The owner's decisions made in `[begin, end)`, oldest first, a page at a time.
    async fn qc_results(
        &self,
        owner: UserId,
        begin: DateTime<Utc>,
        end: DateTime<Utc>,
        cursor: Option<&str>,
        limit: u32,
    ) -> PortResult<Page<QcResult>>;
    /// How many of the owner's decisions in `[begin, end)` had each outcome.
    async fn count_qc_results(
        &self,
        owner: UserId,
        begin: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> PortResult<QcCounts>;
}

/// A task to queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTask {
    pub task: Task,
    /// Not to be claimed before this (backoff).
    pub not_before: DateTime<Utc>,
}

/// The queue message body: a [`Task`], versioned so a newer worker can still read what an older
/// API queued (and refuse, visibly, what it cannot read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum TaskMessage {
    #[serde(rename = "1")]
    V1(Task),
}

/// A claimed task. Whoever holds it must heartbeat before `lease` runs out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The queue message.
    pub id: TaskId,
    pub task: Task,
    /// How many times this task has been claimed, this one included.
    pub deliveries: u32,
    /// Backend-specific proof of ownership (a lease token, an SQS receipt handle, an AMQP tag).
    pub token: String,
}

/// Queue figures for metrics and autoscaling.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct QueueStats {
    pub queued: u64,
    pub running: u64,
    pub dead: u64,
    pub oldest_queued_seconds: Option<f64>,
}

/// The task queue. At-least-once: a task can be delivered twice (a worker died, a lease expired,
/// the scheduler enqueued it again), so the worker checks each delivery against its step
/// ([`Change::Start`]) and drops the stale ones.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Queues a task. The database queue keeps at most one pending message per job step (a
    /// second enqueue while one is pending is a no-op, one while it runs is queued after it);
    /// brokers may hold duplicates.
    async fn enqueue(&self, task: NewTask) -> PortResult<()>;
    /// Takes the next due job for `lease`; `None` when nothing is due.
    async fn claim(&self, worker: &str, lease: Duration) -> PortResult<Option<Lease>>;
    /// Extends a lease; `LeaseLost` when it already expired and was taken over.
    async fn heartbeat(&self, lease: &Lease, extend: Duration) -> PortResult<()>;
    /// The job is finished (its outcome is recorded): remove it.
    async fn complete(&self, lease: &Lease) -> PortResult<()>;
    /// Hands the job back, due at `at` (a transient failure's backoff, or now on shutdown).
    async fn release(&self, lease: &Lease, at: DateTime<Utc>) -> PortResult<()>;
    /// Gives the job up with a reason (kept for inspection).
    async fn dead_letter(&self, lease: &Lease, reason: &str) -> PortResult<()>;
    /// Returns once a job may be due: immediately after an enqueue in this process, or after
    /// `max_wait` at most. Workers call it between claims instead of sleeping.
    async fn wait_for_work(&self, max_wait: Duration);
    async fn stats(&self) -> PortResult<QueueStats>;
}

/// A presigned HTTP request a client performs itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresignedRequest {
    pub method: String,
    pub url: String,
    /// Headers the client must send as given.
    pub headers: Vec<(String, String)>,
    pub expires_at: DateTime<Utc>,
}

/// Blob storage. Keys are `/`-separated relative paths (`{user}/{video}/{file}`). Writes are
/// atomic: a blob is either absent or complete.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Whether the store answers.
    async fn ping(&self) -> PortResult<()>;
    /// Size of a blob; `NotFound` when absent.
    async fn size(&self, key: &str) -> PortResult<u64>;
    /// Stores a local file under `key`, replacing any previous blob.
    async fn put_file(&self, key: &str, path: &Path, content_type: &str) -> PortResult<u64>;
    /// The blob as a local file: the blob itself when the store is a local disk (read in place),
    /// otherwise a copy written to `scratch`.
    async fn local_copy(&self, key: &str, scratch: &Path) -> PortResult<std::path::PathBuf>;
    /// Deletes every blob whose key starts with `prefix`.
    async fn delete_prefix(&self, prefix: &str) -> PortResult<()>;
    /// Deletes one blob; a missing one is not an error.
    async fn delete(&self, key: &str) -> PortResult<()>;
    /// Copies blob `from` to `to`, replacing any blob there; `NotFound` when `from` is absent.
    /// The copy appears whole or not at all. (S3: one CopyObject, so at most 5 GB.)
    async fn copy(&self, from: &str, to: &str) -> PortResult<()>;
    /// A URL the client can PUT the blob's bytes to, until `expires`.
    async fn presign_put(&self, key: &str, expires: Duration) -> PortResult<PresignedRequest>;
    /// A URL the client can GET the blob from, until `expires`.
    async fn presign_get(&self, key: &str, expires: Duration) -> PortResult<PresignedRequest>;

    // --- housekeeping: the scheduler's sweep of temporaries and its orphan audit ---
    /// The names of the folders directly inside the folder `prefix` (`""` for the top; `a/b`
    /// and `a/b/` are the same folder), in no particular order. A missing folder has none.
    async fn folders(&self, prefix: &str) -> PortResult<Vec<String>>;
    /// Every blob in the folder `prefix` and below, the temporary files of unfinished writes
    /// included, in no particular order. A missing folder has none.
    async fn list(&self, prefix: &str) -> PortResult<Vec<ListedBlob>>;
    /// Removes what interrupted writes left behind and nothing can finish any more: temporary
    /// files not written to since `written_before` (local disk: a write in progress touches
    /// its file all the time), multipart uploads started before `started_before` that no
    /// resumable upload's staging names (S3: a live upload can be old). Never a blob, never
    /// bytes staged for a resumable upload (see [`staged_uploads`](Self::staged_uploads)).
    async fn sweep_temporaries(
        &self,
        written_before: DateTime<Utc>,
        started_before: DateTime<Utc>,
    ) -> PortResult<SweptTemporaries>;
    /// The resumable uploads whose bytes are staged in this store (by the [`UploadStaging`]
    /// beside it), whether or not their session still exists.
    async fn staged_uploads(&self) -> PortResult<Vec<StagedUpload>>;
    /// Removes what is staged for `upload` (on S3 its multipart upload is aborted too), for a
    /// session that no longer exists: [`UploadStaging::abort`] without the session.
    /// Idempotent: nothing staged is success.
    async fn discard_staged(&self, upload: UploadId) -> PortResult<()>;
}

/// A blob as [`BlobStore::list`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedBlob {
    /// Its key (without the store's own prefix).
    pub key: String,
    pub size: u64,
    /// When it was last written.
    pub modified: DateTime<Utc>,
}

/// What [`BlobStore::sweep_temporaries`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweptTemporaries {
    /// Temporary files of writes that never finished (local disk).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Multipart uploads aborted (S3); the size of their parts is not known.
    pub multipart_uploads: u64,
}

/// A resumable upload's staged bytes, as [`BlobStore::staged_uploads`] finds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedUpload {
    pub upload: UploadId,
    /// Bytes staged outside a multipart upload (on S3 the parts already uploaded are not
    /// counted: S3 does not list them with the objects).
    pub bytes: u64,
    /// The last write to them.
    pub modified: DateTime<Utc>,
}

/// Where an upload's bytes wait until its last byte arrives, then become the video's blob.
/// Implementations: local disk (appends to a file, renamed into place), S3 (multipart parts,
/// completed at the end). The caller holds the upload's write lease around every call and
/// records progress only after `append` returned, so:
/// - `append` must make its bytes durable before it returns (nothing is acknowledged that a
///   crash could lose), and must first discard anything staged beyond `upload.uploaded_bytes`
///   (left by a writer that died before recording it);
/// - bytes of a piece that fails (checksum mismatch, too long, a storage error) must not
///   remain: after an error the staged bytes are those `upload.uploaded_bytes` says.
#[async_trait]
pub trait UploadStaging: Send + Sync {
    /// Appends `body` at `upload.uploaded_bytes`. Refuses (`TooLarge`, storing nothing) a body
    /// longer than `upload.remaining()`. With a `checksum`, the piece is kept only when its
    /// digest matches (`ChecksumMismatch` otherwise, and an interrupted body keeps nothing);
    /// without one, an interrupted body keeps what arrived (tus: store as much as possible).
    /// Must stream: never hold a whole piece in memory.
    async fn append(
        &self,
        upload: &Upload,
        body: ByteStream,
        checksum: Option<&Checksum>,
    ) -> Result<Appended, AppendError>;
    /// Turns the complete staged bytes into the blob `key` (atomically: absent or complete)
    /// and returns its size. Idempotent: when the staged bytes are already gone and `key`
    /// holds the upload's size, that is success (a retry after a crash).
    async fn complete(&self, upload: &Upload, key: &str) -> PortResult<u64>;
    /// Drops whatever is staged for the upload. Idempotent: nothing staged is success.
    async fn abort(&self, upload: &Upload) -> PortResult<()>;
}

/// What an upload notification turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadOutcome {
    /// The video's upload: it is now `queued` and its job enqueued.
    Queued,
    /// The video was already past `awaiting_upload` (a repeated event): nothing changed.
    Duplicate,
    /// Another blob beside a known video (one of its outputs): nothing to do.
    NotAnUpload,
}

/// What a job request taken from a queue became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// A new job, queued.
    Created(JobId),
    /// The job this message made already (a redelivered message): nothing changed.
    Duplicate(JobId),
}

/// Why a job request was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// It can never make a job (its shape, a malformed parameter): dead-letter it now with
    /// `reason`, a stable code (`unknown-message`, `invalid-argument`).
    #[error("{reason}: {message}")]
    Refused {
        reason: &'static str,
        message: String,
    },
    /// It may make one later (an input not stored yet, a backend down): leave it to the queue
    /// to deliver again, and to dead-letter once its deliveries run out.
    #[error("{0}")]
    Retry(String),
}

/// Turns queue messages into jobs (seed 004's `{"recordingID", "callEndingTimestamp"}`): the
/// queue consumers call it with each message that is not theirs to interpret otherwise.
#[async_trait]
pub trait RequestListener: Send + Sync {
    /// `body` as received; `sent_at`, when the queue first took the message (the same on every
    /// redelivery), names the job with the body, so a message delivered twice makes one job.
    async fn requested(
        &self,
        body: &str,
        sent_at: DateTime<Utc>,
    ) -> Result<RequestOutcome, RequestError>;
}

/// Told when a blob has been uploaded through a presigned URL (the local store's upload route,
/// or an S3 event notification), so processing can start. `NotFound` when the key is not
/// `{user}/{video}/{file}` of a known video.
#[async_trait]
pub trait UploadListener: Send + Sync {
    async fn uploaded(&self, key: &str, size: u64) -> PortResult<UploadOutcome>;

    /// Whether bytes for `key` are still wanted, asked before a byte of a presigned PUT is
    /// written: `NotFound` when the video is gone (deleted after its URL was handed out),
    /// `Refused` when its upload already arrived (a second PUT would replace a source its
    /// outputs describe). A key that is not a video's upload is not the listener's to refuse.
    async fn expects(&self, _key: &str) -> PortResult<()> {
        Ok(())
    }
}

/// How a client's direct multipart upload started: the id to name it by and the size of its
/// parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartStarted {
    pub upload_id: String,
    /// Every part but the last must have exactly this size (at least 5 MiB).
    pub part_bytes: u64,
}

/// A part a client uploaded: its number and the ETag the store answered its PUT with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedPart {
    pub number: u32,
    pub etag: String,
}

/// Multipart uploads a client sends straight to the object store, part by part, through
/// presigned URLs (files too big for one PUT): the server starts, completes and aborts them, the
/// bytes never pass through it. The store binds an upload id to its key: an id started for
/// another key, or aborted, is `NotFound` (one completed may be either that or, completed again,
/// the same blob).
#[async_trait]
pub trait DirectMultipart: Send + Sync {
    /// Starts a multipart upload of `key`.
    async fn start(&self, key: &str) -> PortResult<MultipartStarted>;
    /// A request the client can PUT part `number` (1 to 10,000) with, until `expires`; the
    /// answer's `ETag` header is what [`complete`](Self::complete) needs.
    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        expires: Duration,
    ) -> PortResult<PresignedRequest>;
    /// Makes the parts, numbered 1, 2, … in order, the blob `key` (atomically: absent or
    /// complete) and returns its size. `Conflict` when the store refuses them (an ETag that is
    /// not its part's, a part other than the last below the minimum size); nothing changes then
    /// and the client may complete again with the right parts.
    async fn complete(&self, key: &str, upload_id: &str, parts: &[UploadedPart])
    -> PortResult<u64>;
    /// Drops the upload and its parts. Idempotent: an unknown upload is success.
    async fn abort(&self, key: &str, upload_id: &str) -> PortResult<()>;
}
