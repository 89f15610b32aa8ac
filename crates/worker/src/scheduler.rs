//! Housekeeping that must run somewhere, once or more, but needs no worker slot: enqueueing again
//! the videos whose job was lost; expiring idle upload sessions (their staged bytes and their
//! videos); removing videos whose presigned upload was never used; sweeping the storage of what
//! interrupted writes left and auditing it for blobs without a row (`storage`). It runs in the
//! `scheduler` role (or `all`, or any role with `scheduler.enabled`); several schedulers at once
//! are harmless because every task is idempotent and every deletion conditional (re-checked by
//! the database when it deletes, or by the storage sweep's grace). It also sorts the files of
//! `[watch.sort]` folders (seed 002's bucket workflow, `sort`).

mod sort;
mod storage;

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vidsnap_domain::{BlobStore, JobId, JobQueue, NewTask, Repository};
use vidsnap_jobs::JobService;
use vidsnap_uploads::UploadCore;

pub use sort::Sorted;
use storage::StorageSweep;
pub use storage::{Audit, Orphaned, StorageSweepConfig, StorageSwept};

/// What the scheduler does and how often.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Run the scheduler in this process whatever its role (the `scheduler` and `all` roles
    /// always do).
    pub enabled: bool,
    /// How often to look for `queued` videos whose job was lost (0 disables the sweep).
    pub sweep_seconds: u64,
    /// A video `queued` for longer than this without progress is enqueued again. Longer than
    /// the longest backoff, so a video waiting out its backoff is left alone.
    pub requeue_after_seconds: u64,
    /// How often to remove idle upload sessions (past `[uploads] ttl_seconds` since their last
    /// write) and videos whose presigned upload was never used (0 disables both).
    pub cleanup_seconds: f64,
    /// A video still `awaiting_upload` this long after its presigned upload URL expired (and
    /// with no upload session) is removed: margin for a PUT that started just before expiry.
    pub abandoned_grace_seconds: u64,
    /// How often files of sorted watched folders (`[watch.sort]`, seed 002's bucket workflow)
    /// are decided on, moved and retried (0 disables it).
    pub sort_seconds: f64,
    /// `[scheduler.storage]`: the storage sweep (stale temporaries, orphaned blobs).
    pub storage: StorageSweepConfig,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            sweep_seconds: 60,
            requeue_after_seconds: 900,
            cleanup_seconds: 60.0,
            abandoned_grace_seconds: 3600,
            sort_seconds: 2.0,
            storage: StorageSweepConfig::default(),
        }
    }
}

/// How many of what a cleanup removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// Idle upload sessions (and their staged bytes).
    pub uploads: u64,
    /// Videos still `awaiting_upload`: those of expired sessions and those never uploaded.
    pub videos: u64,
}

/// What the cleanup needs beyond the repository.
struct Cleanup {
    /// Expires idle sessions; `None` where uploads are not served (no staging backend).
    uploads: Option<UploadCore>,
    blobs: Arc<dyn BlobStore>,
    /// How old an `awaiting_upload` video without a session must be to go: the presigned URL's
    /// lifetime plus the grace.
    abandoned_after: Duration,
}

/// Runs the housekeeping loops until shutdown.
pub struct Scheduler {
    config: SchedulerConfig,
    repo: Arc<dyn Repository>,
    queue: Arc<dyn JobQueue>,
    jobs: JobService,
    cleanup: Option<Cleanup>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// At most this many rows per task and sweep: a backlog is worked off over several sweeps.
const BATCH: u32 = 100;

impl Scheduler {
    pub fn new(
        config: SchedulerConfig,
        repo: Arc<dyn Repository>,
        queue: Arc<dyn JobQueue>,
        jobs: JobService,
    ) -> Self {
        Self {
            config,
            repo,
            queue,
            jobs,
            cleanup: None,
        }
    }

    /// Also removes idle upload sessions (through `uploads`) and videos whose presigned upload
    /// URL (valid `upload_url_ttl`) was never used, with their blobs in `blobs`.
    pub fn with_cleanup(
        mut self,
        uploads: Option<UploadCore>,
        blobs: Arc<dyn BlobStore>,
        upload_url_ttl: Duration,
    ) -> Self {
        let abandoned_after =
            upload_url_ttl + Duration::from_secs(self.config.abandoned_grace_seconds);
        self.cleanup = Some(Cleanup {
            uploads,
            blobs,
            abandoned_after,
        });
        self
    }

    /// Runs each task at its own interval until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let requeue_every =
            (self.config.sweep_seconds > 0).then(|| Duration::from_secs(self.config.sweep_seconds));
        let cleanup_every = (self.cleanup.is_some() && self.config.cleanup_seconds > 0.0)
            .then(|| Duration::from_secs_f64(self.config.cleanup_seconds));
        let storage_every = (self.cleanup.is_some() && self.config.storage.interval_seconds > 0)
            .then(|| Duration::from_secs(self.config.storage.interval_seconds));
        let sorts = self.jobs.watches().iter().any(|w| w.sort.is_some());
        let sort_every = (sorts && self.cleanup.is_some() && self.config.sort_seconds > 0.0)
            .then(|| Duration::from_secs_f64(self.config.sort_seconds));
        if requeue_every.is_none()
            && cleanup_every.is_none()
            && storage_every.is_none()
            && sort_every.is_none()
        {
            return;
        }
        let (mut next_requeue, mut next_cleanup) = (Instant::now(), Instant::now());
        let (mut next_storage, mut next_sort) = (Instant::now(), Instant::now());
        if sort_every.is_some() {
            // Every series exists from the start, so `increase()` sees the first file after a
            // restart (an alert on `unable_to_process` would miss it otherwise).
            for outcome in vidsnap_domain::QcOutcome::ALL {
                metrics::counter!("vidsnap_qc_outcomes_total", "outcome" => outcome.as_str())
                    .increment(0);
            }
            metrics::counter!("vidsnap_qc_sort_errors_total").increment(0);
        }
        loop {
            let now = Instant::now();
            if let Some(every) = requeue_every
                && now >= next_requeue
            {
                let requeued = self.requeue_lost_jobs().await;
                metrics::counter!("vidsnap_scheduler_requeued_total").increment(requeued);
                next_requeue = now + every;
            }
            if let Some(every) = cleanup_every
                && now >= next_cleanup
            {
                self.clean_up().await;
                next_cleanup = now + every;
            }
            if let Some(every) = storage_every
                && now >= next_storage
            {
                self.sweep_storage(Utc::now()).await;
                next_storage = Instant::now() + every;
            }
            if let Some(every) = sort_every
                && now >= next_sort
            {
                self.sort_watched(Utc::now()).await;
                next_sort = Instant::now() + every;
            }
            let wake = [
                requeue_every.map(|_| next_requeue),
                cleanup_every.map(|_| next_cleanup),
                storage_every.map(|_| next_storage),
                sort_every.map(|_| next_sort),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now);
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Enqueues again the tasks of steps left `ready` without progress (a crash between the
    /// change that made them ready and its enqueue), and makes the job of videos left `queued`
    /// by a version before jobs. Harmless when the task is still queued: the database queue
    /// keeps one per step, and a broker's duplicate is dropped by the worker as stale or busy.
    /// Returns how many it enqueued.
    pub async fn requeue_lost_jobs(&self) -> u64 {
        let before = chrono::Utc::now() - Duration::from_secs(self.config.requeue_after_seconds);
        let mut requeued = 0;
        match self.repo.overdue_tasks(before, BATCH).await {
            Ok(tasks) => {
                for task in tasks {
                    tracing::warn!(job = %task.job, step = %task.step, "ready without progress: enqueueing again");
                    let new = NewTask {
                        task: task.clone(),
                        not_before: chrono::Utc::now(),
                    };
                    match self.queue.enqueue(new).await {
                        Ok(()) => requeued += 1,
                        Err(e) => tracing::warn!(job = %task.job, error = %e, "re-enqueue failed"),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "sweeping ready steps failed"),
        }
        let videos = match self.repo.stale_queued(before, BATCH).await {
            Ok(videos) => videos,
            Err(e) => {
                tracing::warn!(error = %e, "sweeping queued videos failed");
                return requeued;
            }
        };
        for id in videos {
            let video = match self.repo.video(None, id).await {
                Ok(video) => video,
                Err(e) => {
                    tracing::warn!(video = %id, error = %e, "reading a queued video failed");
                    continue;
                }
            };
            tracing::warn!(video = %id, "queued before jobs existed: making its job");
            match self.jobs.create_for_video(JobId::new(), &video).await {
                Ok(_) => requeued += 1,
                Err(e) => tracing::warn!(video = %id, error = %e, "making its job failed"),
            }
        }
        requeued
    }

    /// One cleanup pass: idle upload sessions, then videos never uploaded. Counted in
    /// `vidsnap_scheduler_removed_total{what="upload"|"video"}`.
    pub async fn clean_up(&self) -> Removed {
        let mut removed = self.expire_uploads().await;
        removed.videos += self.remove_abandoned_videos().await;
        metrics::counter!("vidsnap_scheduler_removed_total", "what" => "upload")
            .increment(removed.uploads);
        metrics::counter!("vidsnap_scheduler_removed_total", "what" => "video")
            .increment(removed.videos);
        removed
    }

    /// Upload sessions idle past their expiry, with their staged bytes and their videos still
    /// waiting. A session written to within its lifetime, or being written to now, stays.
    pub async fn expire_uploads(&self) -> Removed {
        let Some(uploads) = self.cleanup.as_ref().and_then(|c| c.uploads.as_ref()) else {
            return Removed::default();
        };
        match uploads.expire(chrono::Utc::now(), BATCH).await {
            Ok(expired) => Removed {
                uploads: expired.uploads,
                videos: expired.videos,
            },
            Err(e) => {
                tracing::warn!(error = %e, "expiring idle uploads failed");
                Removed::default()
            }
        }
    }

    /// Videos created for a presigned upload that never came, past the URL's expiry and the
    /// grace; returns how many went.
    pub async fn remove_abandoned_videos(&self) -> u64 {
        let Some(cleanup) = &self.cleanup else {
            return 0;
        };
        let before = chrono::Utc::now() - cleanup.abandoned_after;
        let candidates = match self.repo.abandoned_videos(before, BATCH).await {
            Ok(videos) => videos,
            Err(e) => {
                tracing::warn!(error = %e, "sweeping videos awaiting their upload failed");
                return 0;
            }
        };
        let mut removed = 0;
        for candidate in candidates {
            let video = match self.repo.delete_abandoned_video(candidate.id, before).await {
                Ok(Some(video)) => video,
                // Uploaded meanwhile, or another scheduler was first.
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(video = %candidate.id, error = %e, "removing a video never uploaded failed");
                    continue;
                }
            };
            if let Err(e) = cleanup.blobs.delete_prefix(&video.prefix()).await {
                tracing::warn!(video = %video.id, error = %e, "deleting the blobs of a video never uploaded failed");
            }
            tracing::info!(video = %video.id, owner = %video.owner, created_at = %video.created_at, "removed a video whose upload never came");
            removed += 1;
        }
        removed
    }
    /// One storage sweep at `now` (`[scheduler.storage]`): the orphan audit, then what
    /// interrupted writes left. Needs [`with_cleanup`](Self::with_cleanup)'s blob store.
    /// One pass of the bucket workflow (`[watch.sort]`): decides on the files whose qc job
    /// ended, moves them, runs failed ones again when due, and finishes interrupted moves.
    pub async fn sort_watched(&self, now: DateTime<Utc>) -> Sorted {
        let Some(cleanup) = &self.cleanup else {
            return Sorted::default();
        };
        sort::Sorter {
            repo: &self.repo,
            blobs: &cleanup.blobs,
            jobs: &self.jobs,
        }
        .sort(now)
        .await
    }

    pub async fn sweep_storage(&self, now: DateTime<Utc>) -> StorageSwept {
        match self.storage_sweep() {
            Some(sweep) => sweep.run(now).await,
            None => StorageSwept::default(),
        }
    }

    /// Only the orphan audit of [`sweep_storage`](Self::sweep_storage).
    pub async fn audit_orphans(&self, now: DateTime<Utc>) -> Audit {
        match self.storage_sweep() {
            Some(sweep) => sweep.audit(now).await,
            None => Audit::default(),
        }
    }

    fn storage_sweep(&self) -> Option<StorageSweep<'_>> {
        let cleanup = self.cleanup.as_ref()?;
        Some(StorageSweep {
            config: &self.config.storage,
            repo: self.repo.as_ref(),
            blobs: cleanup.blobs.as_ref(),
        })
    }
}
