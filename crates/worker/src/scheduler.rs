//! Housekeeping that must run somewhere, once or more, but needs no worker slot: enqueueing again
//! the videos whose job was lost. It runs in the `scheduler` role (or `all`, or any role with
//! `scheduler.enabled`); several schedulers at once are harmless because every task is
//! idempotent.

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use vidsnap_domain::{JobQueue, NewJob, Repository};

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
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            sweep_seconds: 60,
            requeue_after_seconds: 900,
        }
    }
}

/// Runs the housekeeping loops until shutdown.
pub struct Scheduler {
    config: SchedulerConfig,
    repo: Arc<dyn Repository>,
    queue: Arc<dyn JobQueue>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    pub fn new(
        config: SchedulerConfig,
        repo: Arc<dyn Repository>,
        queue: Arc<dyn JobQueue>,
    ) -> Self {
        Self {
            config,
            repo,
            queue,
        }
    }

    /// Sweeps every `sweep_seconds` until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        if self.config.sweep_seconds == 0 {
            return;
        }
        let every = Duration::from_secs(self.config.sweep_seconds);
        loop {
            let requeued = self.requeue_lost_jobs().await;
            metrics::counter!("vidsnap_scheduler_requeued_total").increment(requeued);
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Enqueues again the videos left `queued` without progress (a crash between a status
    /// change and its enqueue). Harmless when a job still exists: processing is idempotent,
    /// and the database queue keeps one pending job per video. Returns how many it enqueued.
    pub async fn requeue_lost_jobs(&self) -> u64 {
        let before = chrono::Utc::now() - Duration::from_secs(self.config.requeue_after_seconds);
        let videos = match self.repo.stale_queued(before, 100).await {
            Ok(videos) => videos,
            Err(e) => {
                tracing::warn!(error = %e, "sweeping queued videos failed");
                return 0;
            }
        };
        let mut requeued = 0;
        for video in videos {
            tracing::warn!(%video, "queued without progress: enqueueing again");
            let job = NewJob {
                video,
                not_before: chrono::Utc::now(),
            };
            match self.queue.enqueue(job).await {
                Ok(()) => requeued += 1,
                Err(e) => tracing::warn!(%video, error = %e, "re-enqueue failed"),
            }
        }
        requeued
    }
}
