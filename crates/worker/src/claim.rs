//! The worker pool: `concurrency` loops that claim tasks and run each in a task of its own (the
//! panic boundary: a panicking step fails its attempt, and the slot lives on), heartbeat them and
//! shut down gracefully.

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use tokio_util::{
    sync::CancellationToken,
    task::{AbortOnDropHandle, TaskTracker},
};
use vidsnap_domain::{BlobStore, JobQueue, Lease, PortError};
use vidsnap_jobs::JobService;

use crate::{backoff::Backoff, step::StepRunner};

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
    /// Attempts before a step is `dead`, where its recipe sets none (also the `max_attempts`
    /// of `/v1/videos`): the one retry limit, copied into each step when its job is created.
    pub max_attempts: u32,
    /// How often a running step tells the database it is alive, with its progress: a cancel is
    /// noticed within this.
    pub step_heartbeat_seconds: f64,
    /// How often a watched local folder is scanned for new files, in seconds (a file is taken
    /// once it is unchanged between two scans).
    pub watch_poll_seconds: f64,
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
            step_heartbeat_seconds: 2.0,
            watch_poll_seconds: 2.0,
            backoff: Backoff::default(),
        }
    }
}

/// Runs steps from the queue.
pub struct Worker {
    pub(crate) id: String,
    pub(crate) config: WorkerConfig,
    pub(crate) jobs: JobService,
    pub(crate) queue: Arc<dyn JobQueue>,
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) runner: Arc<dyn StepRunner>,
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
        jobs: JobService,
        queue: Arc<dyn JobQueue>,
        blobs: Arc<dyn BlobStore>,
        runner: Arc<dyn StepRunner>,
    ) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
        Self {
            id: format!("{host}-{}", std::process::id()),
            config,
            jobs,
            queue,
            blobs,
            runner,
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
            tracker.spawn(worker.claim_loop(slot, shutdown, abort));
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

    async fn claim_loop(
        self: Arc<Self>,
        slot: usize,
        shutdown: CancellationToken,
        abort: CancellationToken,
    ) {
        let idle = Duration::from_secs_f64(self.config.idle_poll_seconds.max(0.01));
        let name = format!("{}/{slot}", self.id);
        while !shutdown.is_cancelled() {
            match self.queue.claim(&name, self.lease()).await {
                Ok(Some(lease)) => Arc::clone(&self).run_task(lease, &abort).await,
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

    /// Runs one task in a task of its own, with a queue heartbeat. A panic inside ends the
    /// attempt as a failure (retried); the heartbeat is dropped with the task either way, so a
    /// crashed step never keeps its lease alive.
    async fn run_task(self: Arc<Self>, lease: Lease, abort: &CancellationToken) {
        let lost = CancellationToken::new();
        let heartbeat = {
            let (queue, lease, lost) = (Arc::clone(&self.queue), lease.clone(), lost.clone());
            let every = self.lease() / 3;
            let extend = self.lease();
            AbortOnDropHandle::new(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    match queue.heartbeat(&lease, extend).await {
                        Ok(()) => {}
                        Err(PortError::LeaseLost) => {
                            tracing::warn!(task = %lease.id, "lease lost: stopping the step");
                            lost.cancel();
                            return;
                        }
                        // The lease still has two thirds to run: try again next beat.
                        Err(e) => tracing::warn!(task = %lease.id, error = %e, "heartbeat failed"),
                    }
                }
            }))
        };
        // The run number the step started with, once it did: what a panic's failure names.
        let started = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let run = {
            let (worker, lease, abort, lost, started) = (
                Arc::clone(&self),
                lease.clone(),
                abort.clone(),
                lost.clone(),
                Arc::clone(&started),
            );
            tokio::spawn(async move { worker.process(&lease, &abort, &lost, &started).await })
        };
        if let Err(error) = run.await {
            drop(heartbeat);
            let why = if error.is_panic() {
                "the step panicked"
            } else {
                "the step was cancelled"
            };
            tracing::error!(job = %lease.task.job, step = %lease.task.step, "{why}: failing the attempt");
            let run = started.load(std::sync::atomic::Ordering::SeqCst);
            self.panicked(&lease, run, why).await;
        }
    }
}
