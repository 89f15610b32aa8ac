//! The worker pool: `concurrency` loops that claim jobs, heartbeat them and shut down gracefully.

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use vidsnap_domain::{BlobStore, JobQueue, Lease, PortError, Repository, Video};
use vidsnap_media::MediaEngine;

use crate::backoff::Backoff;

/// How workers behave.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Jobs processed at once by this process.
    pub concurrency: usize,
    /// A claimed job belongs to this worker for this long unless extended by heartbeats.
    pub lease_seconds: u64,
    /// Longest wait between claim attempts when no wake-up arrives (other processes' enqueues).
    pub idle_poll_seconds: f64,
    /// On shutdown, running jobs may finish within this; then they are handed back.
    pub shutdown_grace_seconds: u64,
    /// Attempts before a video is `dead`.
    pub max_attempts: u32,
    pub backoff: Backoff,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 2,
            lease_seconds: 60,
            idle_poll_seconds: 2.0,
            shutdown_grace_seconds: 20,
            max_attempts: 5,
            backoff: Backoff::default(),
        }
    }
}

/// Called after every status change the worker makes (the API streams them over SSE).
pub type ChangeHook = Arc<dyn Fn(&Video) + Send + Sync>;

/// Processes videos from the queue.
pub struct Worker {
    pub(crate) id: String,
    pub(crate) config: WorkerConfig,
    pub(crate) repo: Arc<dyn Repository>,
    pub(crate) queue: Arc<dyn JobQueue>,
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) media: MediaEngine,
    pub(crate) on_change: ChangeHook,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.id)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub fn new(
        config: WorkerConfig,
        repo: Arc<dyn Repository>,
        queue: Arc<dyn JobQueue>,
        blobs: Arc<dyn BlobStore>,
        media: MediaEngine,
        on_change: ChangeHook,
    ) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
        Self {
            id: format!("{host}-{}", std::process::id()),
            config,
            repo,
            queue,
            blobs,
            media,
            on_change,
        }
    }

    pub(crate) fn lease(&self) -> Duration {
        Duration::from_secs(self.config.lease_seconds.max(1))
    }

    /// Runs the claim loops until `shutdown`; then lets running jobs finish for the grace period
    /// and hands back the rest. Returns when every job is finished or released.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        // Running jobs are cancelled (and released) only after the grace period.
        let abort = CancellationToken::new();
        let tracker = TaskTracker::new();
        for slot in 0..self.config.concurrency.max(1) {
            let worker = Arc::clone(&self);
            let (shutdown, abort) = (shutdown.clone(), abort.clone());
            tracker.spawn(async move { worker.claim_loop(slot, shutdown, abort).await });
        }
        tracker.close();
        shutdown.cancelled().await;
        let grace = Duration::from_secs(self.config.shutdown_grace_seconds);
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!("jobs still running after the grace period: handing them back");
            abort.cancel();
            tracker.wait().await;
        }
    }

    async fn claim_loop(&self, slot: usize, shutdown: CancellationToken, abort: CancellationToken) {
        let idle = Duration::from_secs_f64(self.config.idle_poll_seconds.max(0.01));
        let name = format!("{}/{slot}", self.id);
        while !shutdown.is_cancelled() {
            match self.queue.claim(&name, self.lease()).await {
                Ok(Some(lease)) => self.run_job(lease, &abort).await,
                Ok(None) => {
                    tokio::select! {
                        () = self.queue.wait_for_work(idle) => {}
                        () = shutdown.cancelled() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming a job failed");
                    tokio::select! {
                        () = tokio::time::sleep(idle) => {}
                        () = shutdown.cancelled() => {}
                    }
                }
            }
        }
    }

    /// Runs one job with a heartbeat; a lost lease cancels it.
    async fn run_job(&self, lease: Lease, abort: &CancellationToken) {
        let lost = CancellationToken::new();
        let heartbeat = {
            let (queue, lease, lost) = (Arc::clone(&self.queue), lease.clone(), lost.clone());
            let every = self.lease() / 3;
            let extend = self.lease();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    match queue.heartbeat(&lease, extend).await {
                        Ok(()) => {}
                        Err(PortError::LeaseLost) => {
                            tracing::warn!(job = %lease.job, "lease lost: stopping the job");
                            lost.cancel();
                            return;
                        }
                        // The lease still has two thirds to run: try again next beat.
                        Err(e) => tracing::warn!(job = %lease.job, error = %e, "heartbeat failed"),
                    }
                }
            })
        };
        self.process(&lease, abort, &lost).await;
        heartbeat.abort();
    }
}
