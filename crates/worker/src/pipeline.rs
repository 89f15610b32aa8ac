//! One job, start to end, and the recording of its outcome.

use std::time::Instant;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use vidsnap_domain::{
    ErrorCode, Failure, Lease, Outputs, PortError, Quality, Transition, Video, VideoStatus,
};
use vidsnap_media::{FramesRequest, MediaError, Silent, WorkDir};

use crate::Worker;

/// Why a run stopped without an outcome of its own.
enum Stop {
    /// Shutdown: hand the job back untouched by failure.
    Shutdown,
    /// Another worker owns the job now: write nothing.
    LeaseLost,
}

impl Worker {
    /// Processes one claimed job. Never panics on bad input; every path ends with the job
    /// completed, released or dead-lettered (or, on a lost lease, left to its new owner).
    pub(crate) async fn process(
        &self,
        lease: &Lease,
        abort: &CancellationToken,
        lost: &CancellationToken,
    ) {
        let video = match self.prepare(lease).await {
            Ok(Some(video)) => video,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(video = %lease.video, error = %e, "cannot start the job; retrying later");
                let _ = self
                    .queue
                    .release(lease, Utc::now() + self.config.backoff.delay(1))
                    .await;
                return;
            }
        };
        let started = Instant::now();
        let outcome = tokio::select! {
            result = self.pipeline(&video) => Ok(result),
            () = abort.cancelled() => Err(Stop::Shutdown),
            () = lost.cancelled() => Err(Stop::LeaseLost),
        };
        let seconds = started.elapsed().as_secs_f64();
        match outcome {
            Ok(Ok((outputs, probe))) => {
                metrics::histogram!("vidsnap_job_seconds", "outcome" => "succeeded")
                    .record(seconds);
                self.succeed(lease, &video, outputs, probe).await;
            }
            Ok(Err(failure)) => {
                metrics::histogram!("vidsnap_job_seconds", "outcome" => "failed").record(seconds);
                self.fail(lease, &video, failure).await;
            }
            Err(Stop::Shutdown) => {
                tracing::info!(video = %video.id, "shutting down: handing the job back");
                self.change(
                    video.id,
                    Transition::to(VideoStatus::Queued).reason("worker shut down"),
                )
                .await;
                let _ = self.queue.release(lease, Utc::now()).await;
            }
            Err(Stop::LeaseLost) => {
                tracing::warn!(video = %video.id, "lease lost: leaving the video to its new owner");
            }
        }
    }

    /// Moves the video to `processing` for this attempt, or settles a duplicate delivery.
    async fn prepare(&self, lease: &Lease) -> Result<Option<Video>, PortError> {
        let video = match self.repo.video(None, lease.video).await {
            Ok(video) => video,
            Err(PortError::NotFound) => {
                // Deleted while queued: nothing to do.
                self.queue.complete(lease).await?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        match video.status {
            // Already settled by an earlier delivery of this job: one outcome only.
            VideoStatus::Succeeded | VideoStatus::Dead | VideoStatus::AwaitingUpload => {
                self.queue.complete(lease).await?;
                return Ok(None);
            }
            // A worker died holding it (its lease expired): start over.
            VideoStatus::Processing | VideoStatus::Failed => {
                let reason = "the previous attempt was interrupted";
                self.transition(video.id, Transition::to(VideoStatus::Queued).reason(reason))
                    .await?;
            }
            VideoStatus::Queued => {}
        }
        let mut start = Transition::to(VideoStatus::Processing);
        start.start_attempt = true;
        start.reason = Some(format!("worker {}", self.id));
        Ok(Some(self.transition(video.id, start).await?))
    }

    /// Validate, probe, extract, store. Returns the outputs and the probe, or why not.
    async fn pipeline(&self, video: &Video) -> Result<(Outputs, serde_json::Value), Failure> {
        let scratch =
            WorkDir::create(self.media.config().temp_dir.as_deref()).map_err(media_failure)?;
        let source = self
            .blobs
            .local_copy(&video.source_key(), scratch.path())
            .await
            .map_err(|e| storage_failure("reading the upload", e))?;
        let request = FramesRequest {
            input: source,
            out_dir: scratch.path().join("out"),
            interval: video.options.every,
            mode: video.options.mode,
            format: video.options.format,
            quality: Quality::DEFAULT,
            max_width: None,
        };
        let started = Instant::now();
        let output = self
            .media
            .extract_frames(&request, &Silent)
            .await
            .map_err(media_failure)?;
        metrics::histogram!("vidsnap_media_seconds").record(started.elapsed().as_secs_f64());

        let zip_key = format!("{}{}-images.zip", video.prefix(), video.stem());
        let thumbnail_key = format!(
            "{}image.{}",
            video.prefix(),
            video.options.format.extension()
        );
        // The thumbnail first: the zip's presence is what a reader of the folder waits for,
        // and the outputs only become visible through the API once both are stored.
        self.blobs
            .put_file(
                &thumbnail_key,
                &output.thumbnail,
                video.options.format.mime_type(),
            )
            .await
            .map_err(|e| storage_failure("storing the thumbnail", e))?;
        let zip_bytes = self
            .blobs
            .put_file(&zip_key, &output.zip, "application/zip")
            .await
            .map_err(|e| storage_failure("storing the zip", e))?;
        let probe = serde_json::to_value(&output.manifest.source).unwrap_or_default();
        Ok((
            Outputs {
                zip_key,
                zip_bytes,
                thumbnail_key,
                frames: output.manifest.frames.len(),
            },
            probe,
        ))
    }

    async fn succeed(
        &self,
        lease: &Lease,
        video: &Video,
        outputs: Outputs,
        probe: serde_json::Value,
    ) {
        let mut done = Transition::to(VideoStatus::Succeeded);
        done.outputs = Some(outputs);
        done.probe = Some(probe);
        done.error = Some(None);
        match self.transition(video.id, done).await {
            // Already settled (a duplicate delivery won the race): still one outcome.
            Ok(_) | Err(PortError::InvalidTransition { .. }) | Err(PortError::NotFound) => {
                let _ = self.queue.complete(lease).await;
            }
            Err(e) => {
                tracing::warn!(video = %video.id, error = %e, "recording success failed; retrying");
                let _ = self
                    .queue
                    .release(lease, Utc::now() + self.config.backoff.delay(1))
                    .await;
            }
        }
    }

    async fn fail(&self, lease: &Lease, video: &Video, failure: Failure) {
        let attempt = video.attempts;
        let retry = failure.code.is_transient() && attempt < self.config.max_attempts;
        let mut failed = Transition::to(VideoStatus::Failed).reason(format!(
            "attempt {attempt} of {}: {}",
            self.config.max_attempts, failure.code
        ));
        failed.error = Some(Some(failure.clone()));
        if let Err(e) = self.transition(video.id, failed).await {
            tracing::warn!(video = %video.id, error = %e, "recording the failure failed; retrying");
            let _ = self
                .queue
                .release(lease, Utc::now() + self.config.backoff.delay(1))
                .await;
            return;
        }
        if retry {
            let delay = self.config.backoff.delay(attempt);
            let at = Utc::now() + delay;
            let reason = format!("retry in {:.1} s", delay.as_secs_f64());
            self.change(video.id, Transition::to(VideoStatus::Queued).reason(reason))
                .await;
            let _ = self.queue.release(lease, at).await;
        } else {
            let reason = if failure.code.is_transient() {
                "no attempts left".to_owned()
            } else {
                format!("{} cannot succeed on another attempt", failure.code)
            };
            self.change(
                video.id,
                Transition::to(VideoStatus::Dead).reason(reason.clone()),
            )
            .await;
            let _ = self
                .queue
                .dead_letter(lease, &format!("{}: {}", failure.code, failure.message))
                .await;
        }
    }

    async fn transition(
        &self,
        id: vidsnap_domain::VideoId,
        t: Transition,
    ) -> Result<Video, PortError> {
        let video = self.repo.transition(id, t).await?;
        (self.on_change)(&video);
        Ok(video)
    }

    /// A transition whose failure is logged: the job's own record (queue) carries on.
    async fn change(&self, id: vidsnap_domain::VideoId, t: Transition) {
        if let Err(e) = self.transition(id, t).await {
            tracing::warn!(video = %id, error = %e, "status change failed");
        }
    }
}

fn media_failure(error: MediaError) -> Failure {
    Failure {
        code: error.code(),
        message: error.to_string(),
    }
}

fn storage_failure(action: &str, error: PortError) -> Failure {
    Failure {
        code: ErrorCode::OutputFailed,
        message: format!("{action}: {error}"),
    }
}
