//! An upload completing queues processing: the link between storage and the queue, shared by the
//! local store's upload route, the explicit `POST /v1/videos/{id}/uploaded`, and (scaled out) S3
//! event notifications.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use vidsnap_domain::{
    JobQueue, NewJob, PortError, PortResult, Repository, Transition, UploadListener, UploadOutcome,
    Video, VideoId, VideoStatus,
};

use crate::events::VideoEvents;

/// Moves an uploaded video to `queued` and enqueues its job. Idempotent: a repeated event for
/// a video already queued (or further) changes nothing.
#[derive(Clone)]
pub struct QueueOnUpload {
    pub repo: Arc<dyn Repository>,
    pub queue: Arc<dyn JobQueue>,
    pub events: VideoEvents,
}

impl QueueOnUpload {
    /// Queues `video` if it is still waiting for its upload.
    pub async fn queue_video(&self, video: &Video, size: u64) -> PortResult<Video> {
        Ok(self.queue_once(video, size).await?.0)
    }

    /// Queues `video` if it is still waiting for its upload; says whether this call did it.
    async fn queue_once(&self, video: &Video, size: u64) -> PortResult<(Video, UploadOutcome)> {
        if video.status != VideoStatus::AwaitingUpload {
            return Ok((video.clone(), UploadOutcome::Duplicate));
        }
        let reason = format!("upload complete ({size} bytes)");
        let queued = match self
            .repo
            .transition(video.id, Transition::to(VideoStatus::Queued).reason(reason))
            .await
        {
            Ok(v) => v,
            // A concurrent event got there first.
            Err(PortError::InvalidTransition { .. }) => {
                let now = self.repo.video(None, video.id).await?;
                return Ok((now, UploadOutcome::Duplicate));
            }
            Err(e) => return Err(e),
        };
        self.events.publish(&queued);
        // If this enqueue is lost (crash just before it), the video stays `queued` without a job;
        // the workers' sweep (`WorkerConfig::requeue_after_seconds`) enqueues it again.
        self.queue
            .enqueue(NewJob {
                video: video.id,
                not_before: Utc::now(),
            })
            .await?;
        Ok((queued, UploadOutcome::Queued))
    }
}

impl std::fmt::Debug for QueueOnUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueOnUpload").finish_non_exhaustive()
    }
}

#[async_trait]
impl UploadListener for QueueOnUpload {
    /// Keys are `{user}/{video}/{file_name}`; anything else is not an upload of ours.
    async fn uploaded(&self, key: &str, size: u64) -> PortResult<UploadOutcome> {
        // Resumable uploads stage pieces under `.uploads/{upload}/` (vidsnap-storage's S3
        // staging writes an object per piece): their events are not uploads, nor unknown keys.
        if key.starts_with(".uploads/") {
            return Ok(UploadOutcome::NotAnUpload);
        }
        let mut parts = key.splitn(3, '/');
        let (Some(_user), Some(video), Some(file)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(PortError::NotFound);
        };
        let id: VideoId = video.parse().map_err(|_| PortError::NotFound)?;
        let video = self.repo.video(None, id).await?;
        if file.is_empty() || !key.starts_with(&format!("{}/", video.owner)) {
            return Err(PortError::NotFound);
        }
        if video.source_key() != key {
            return Ok(UploadOutcome::NotAnUpload);
        }
        Ok(self.queue_once(&video, size).await?.1)
    }
}
