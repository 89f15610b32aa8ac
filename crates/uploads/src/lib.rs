//! The resumable upload core: one implementation of upload sessions that every transport (tus,
//! S3 multipart, AMQP chunks) drives, so any API process can continue any upload.
//!
//! # Layout
//! - [`UploadCore`]: create a session with its video, append a piece under the upload's write
//!   lease, report a session's state, terminate it, expire idle ones.
//! - [`UploadSettings`]: the `[uploads]` configuration (session lifetime, lease length).
//! - [`UploadError`]: what a transport turns into its own answers (tus: 404, 409, 410, 413,
//!   423, 460).
//! - `lease`: the write lease's guard (released on every path, renewed while a piece streams).
//!
//! The order of a write is what makes it safe (see the crate README): lease, check the offset,
//! stage and fsync the bytes, record the new offset (compare-and-set), release. Sessions live
//! only in the database ([`Repository`]) and bytes only in the staging backend
//! ([`UploadStaging`]), so no process keeps anything a request to another process would need.

mod lease;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use vidsnap_domain::{
    AppendError, ByteStream, Checksum, PortError, Repository, Upload, UploadId, UploadListener,
    UploadStaging, UserId, Video, VideoStatus,
};

use crate::lease::Lease;

/// How long sessions live and how writers hold them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadSettings {
    /// A session with no write for this long expires: its bytes and its video are removed (by
    /// the scheduler) and it answers 410 Gone meanwhile.
    pub ttl_seconds: u64,
    /// A writer's hold on a session, renewed while its piece streams. A writer that dies blocks
    /// the session for at most this long.
    pub lease_seconds: u64,
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self {
            ttl_seconds: 24 * 3600,
            lease_seconds: 30,
        }
    }
}

impl UploadSettings {
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_seconds)
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_seconds.max(1))
    }
}

/// Why an upload operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// No such session of the caller (another user's is the same).
    #[error("no such upload")]
    NotFound,
    /// The session expired (it is removed soon).
    #[error("the upload has expired")]
    Gone,
    /// Another request is writing to this upload right now.
    #[error("another request is writing to this upload; try again when it has finished")]
    Locked,
    /// The piece does not start where the upload stands.
    #[error("the upload is at offset {expected}, not {offered}")]
    OffsetMismatch { expected: u64, offered: u64 },
    /// The piece is longer than the bytes the upload still expects.
    #[error("the upload expects at most {remaining} more bytes")]
    TooLarge { remaining: u64 },
    /// The piece does not match its checksum; nothing of it was kept.
    #[error("the checksum does not match the bytes received; they were discarded")]
    ChecksumMismatch,
    /// The sender went away mid-piece; `upload` holds what was kept.
    #[error("the body ended early; the upload is at offset {}", upload.uploaded_bytes)]
    Interrupted { upload: Box<Upload> },
    /// The write lease was lost mid-piece (this writer stalled past it and another took over);
    /// nothing of the piece was recorded.
    #[error("the upload was taken over by another writer")]
    LeaseLost,
    #[error(transparent)]
    Port(PortError),
}

impl From<PortError> for UploadError {
    fn from(error: PortError) -> Self {
        match error {
            PortError::NotFound => Self::NotFound,
            PortError::Locked => Self::Locked,
            PortError::LeaseLost => Self::LeaseLost,
            other => Self::Port(other),
        }
    }
}

pub type UploadResult<T> = Result<T, UploadError>;

/// A session to create, with the video it uploads (validated by the transport; its status must
/// be `awaiting_upload`).
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub video: Video,
    pub total_bytes: u64,
    pub metadata: BTreeMap<String, String>,
}

/// What a sweep of idle sessions removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    pub uploads: u64,
    /// Their videos, still `awaiting_upload`.
    pub videos: u64,
}

/// The upload core. Cheap to clone.
#[derive(Clone)]
pub struct UploadCore(Arc<Inner>);

struct Inner {
    repo: Arc<dyn Repository>,
    staging: Arc<dyn UploadStaging>,
    /// Told when an upload is complete: queues the video (`QueueOnUpload`).
    listener: Arc<dyn UploadListener>,
    settings: UploadSettings,
}

impl std::fmt::Debug for UploadCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadCore")
            .field("settings", &self.0.settings)
            .finish_non_exhaustive()
    }
}

impl UploadCore {
    pub fn new(
        repo: Arc<dyn Repository>,
        staging: Arc<dyn UploadStaging>,
        listener: Arc<dyn UploadListener>,
        settings: UploadSettings,
    ) -> Self {
        Self(Arc::new(Inner {
            repo,
            staging,
            listener,
            settings,
        }))
    }

    pub fn settings(&self) -> &UploadSettings {
        &self.0.settings
    }

    /// Stores the video and its session together. An empty upload (0 bytes) is complete at
    /// once: its video is queued like any other.
    pub async fn create(&self, new: NewUpload) -> UploadResult<Upload> {
        let now = Utc::now();
        let upload = Upload {
            id: UploadId::new(),
            owner: new.video.owner,
            video: new.video.id,
            total_bytes: new.total_bytes,
            uploaded_bytes: 0,
            metadata: new.metadata,
            staging: None,
            expires_at: now + self.0.settings.ttl(),
            created_at: now,
            updated_at: now,
        };
        self.0.repo.create_upload(&new.video, &upload).await?;
        metrics::counter!("vidsnap_uploads_total", "event" => "created").increment(1);
        tracing::debug!(upload = %upload.id, video = %upload.video, bytes = upload.total_bytes, "upload created");
        if upload.total_bytes == 0 {
            let empty: ByteStream = Box::pin(futures_util::stream::empty());
            return self
                .append(Some(upload.owner), upload.id, 0, empty, None, Some(0))
                .await;
        }
        Ok(upload)
    }

    /// The session as stored (tus HEAD). `Gone` once expired. A complete session whose video
    /// was never queued (the process died between the last byte and the queueing) is finished
    /// now, so a client asking after its upload is what repairs it.
    pub async fn status(&self, owner: Option<UserId>, id: UploadId) -> UploadResult<Upload> {
        let upload = self.0.repo.upload(owner, id).await?;
        if upload.expires_at <= Utc::now() {
            return Err(UploadError::Gone);
        }
        if upload.is_complete() {
            let video = self.0.repo.video(None, upload.video).await?;
            if video.status == VideoStatus::AwaitingUpload {
                match Lease::take(&self.0, owner, id).await {
                    Ok(lease) => {
                        let finished = self.finish(&lease.upload, &video).await;
                        lease.release().await;
                        finished?;
                    }
                    // Someone is writing (finishing) it right now.
                    Err(UploadError::Locked) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(upload)
    }

    /// Appends `body` at `offset` and returns the session after it. `length`, when the
    /// transport knows it (Content-Length), is checked before a byte is read. The work runs on
    /// a task of its own, so a transport that stops waiting (its client disconnected) cannot
    /// cut it between staging the bytes and recording them.
    pub async fn append(
        &self,
        owner: Option<UserId>,
        id: UploadId,
        offset: u64,
        body: ByteStream,
        checksum: Option<Checksum>,
        length: Option<u64>,
    ) -> UploadResult<Upload> {
        let core = self.clone();
        let task = tokio::spawn(async move {
            core.append_leased(owner, id, offset, body, checksum.as_ref(), length)
                .await
        });
        match task.await {
            Ok(outcome) => outcome,
            Err(e) => Err(UploadError::Port(PortError::Unavailable(format!(
                "the append task failed: {e}"
            )))),
        }
    }

    async fn append_leased(
        &self,
        owner: Option<UserId>,
        id: UploadId,
        offset: u64,
        body: ByteStream,
        checksum: Option<&Checksum>,
        length: Option<u64>,
    ) -> UploadResult<Upload> {
        let lease = Lease::take(&self.0, owner, id).await?;
        let outcome = self
            .append_under(&lease, offset, body, checksum, length)
            .await;
        lease.release().await;
        outcome
    }

    async fn append_under(
        &self,
        lease: &Lease,
        offset: u64,
        body: ByteStream,
        checksum: Option<&Checksum>,
        length: Option<u64>,
    ) -> UploadResult<Upload> {
        let upload = &lease.upload;
        if upload.expires_at <= Utc::now() {
            return Err(UploadError::Gone);
        }
        if offset != upload.uploaded_bytes {
            return Err(UploadError::OffsetMismatch {
                expected: upload.uploaded_bytes,
                offered: offset,
            });
        }
        if length.is_some_and(|length| length > upload.remaining()) {
            return Err(UploadError::TooLarge {
                remaining: upload.remaining(),
            });
        }
        let staged = lease
            .renewed_while(self.0.staging.append(upload, body, checksum))
            .await?;
        let appended = match staged {
            Ok(appended) => appended,
            Err(AppendError::ChecksumMismatch) => return Err(UploadError::ChecksumMismatch),
            Err(AppendError::TooLarge) => {
                return Err(UploadError::TooLarge {
                    remaining: upload.remaining(),
                });
            }
            Err(AppendError::Port(e)) => return Err(UploadError::Port(e)),
        };
        let mut current = upload.clone();
        if appended.bytes > 0 || appended.staging.is_some() {
            current = self
                .0
                .repo
                .record_upload_progress(
                    upload.id,
                    lease.token(),
                    upload.uploaded_bytes,
                    upload.uploaded_bytes + appended.bytes,
                    appended.staging.as_ref(),
                    self.0.settings.ttl(),
                )
                .await?;
            metrics::counter!("vidsnap_upload_bytes_total").increment(appended.bytes);
        }
        if appended.interrupted {
            return Err(UploadError::Interrupted {
                upload: Box::new(current),
            });
        }
        if current.is_complete() {
            let video = self.0.repo.video(None, current.video).await?;
            self.finish(&current, &video).await?;
        }
        Ok(current)
    }

    /// The last byte is in: the staged bytes become the video's source blob and the video is
    /// queued. Both steps are idempotent, so a repeat after a crash finishes the job.
    async fn finish(&self, upload: &Upload, video: &Video) -> UploadResult<()> {
        if video.status != VideoStatus::AwaitingUpload {
            return Ok(());
        }
        let key = video.source_key();
        let size = self.0.staging.complete(upload, &key).await?;
        self.0.listener.uploaded(&key, size).await?;
        metrics::counter!("vidsnap_uploads_total", "event" => "completed").increment(1);
        tracing::info!(upload = %upload.id, video = %video.id, bytes = size, "upload complete: queued");
        Ok(())
    }

    /// Ends a session at the client's request (tus termination): its staged bytes go, and its
    /// video too unless it is already queued (complete uploads are processed as usual).
    pub async fn terminate(&self, owner: Option<UserId>, id: UploadId) -> UploadResult<()> {
        let lease = Lease::take(&self.0, owner, id).await?;
        let deleted = self.0.repo.delete_upload(id, lease.token()).await;
        let (upload, video) = match deleted {
            Ok(deleted) => deleted,
            Err(e) => {
                lease.release().await;
                return Err(e.into());
            }
        };
        lease.forget();
        self.0.staging.abort(&upload).await?;
        metrics::counter!("vidsnap_uploads_total", "event" => "terminated").increment(1);
        tracing::info!(upload = %id, video = %upload.video, video_deleted = video.is_some(), "upload terminated");
        Ok(())
    }

    /// Drops the staged bytes of a session whose rows are already gone (its video was deleted,
    /// which deletes the session with it).
    pub async fn discard(&self, upload: &Upload) -> UploadResult<()> {
        Ok(self.0.staging.abort(upload).await?)
    }

    /// Removes the sessions idle past their expiry at `now` (at most `limit` per call), their
    /// staged bytes, and their videos still `awaiting_upload`. A session being written to, or
    /// written to since it was listed, is kept: the deletion re-checks both in the database, so
    /// several schedulers may sweep at once.
    pub async fn expire(&self, now: DateTime<Utc>, limit: u32) -> UploadResult<Expired> {
        let mut expired = Expired::default();
        for candidate in self.0.repo.expired_uploads(now, limit).await? {
            let Some((upload, video)) =
                self.0.repo.delete_expired_upload(candidate.id, now).await?
            else {
                continue;
            };
            // The row is gone first, so no writer can reach these bytes any more. If this abort
            // fails, the staged file is left behind: logged, for an operator.
            if let Err(e) = self.0.staging.abort(&upload).await {
                tracing::warn!(upload = %upload.id, error = %e, "dropping an expired upload's staged bytes failed");
            }
            tracing::info!(
                upload = %upload.id,
                video = %upload.video,
                received = upload.uploaded_bytes,
                total = upload.total_bytes,
                last_write = %upload.updated_at,
                video_deleted = video.is_some(),
                "expired an idle upload"
            );
            expired.uploads += 1;
            expired.videos += u64::from(video.is_some());
        }
        Ok(expired)
    }
}
