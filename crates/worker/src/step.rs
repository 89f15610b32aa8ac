//! One claimed task, start to end: check the delivery against its step, fetch the inputs, run
//! the operation, store the artefacts, record the outcome. Every path ends with the queue
//! message completed or released (or, on a lost lease, left to its new holder).

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use chrono::Utc;
use tokio_util::{sync::CancellationToken, task::AbortOnDropHandle};
use vidsnap_domain::{
    Artefact, Change, ErrorCode, Failure, InputRef, Job, Lease, Operation, PortError, StepOutcome,
    Verdict, Video,
};
use vidsnap_media::{MediaEngine, MediaError, OpInput, OpOutput, Progress, WorkDir};

use crate::Worker;

/// What runs an operation: the media engine, or a stand-in in tests (one that panics, say).
#[async_trait]
pub trait StepRunner: Send + Sync {
    async fn run(
        &self,
        op: &Operation,
        inputs: &[OpInput],
        work: &Path,
        progress: &dyn Progress,
    ) -> Result<OpOutput, MediaError>;

    /// Where scratch directories go (`None`: the system's temp dir).
    fn temp_dir(&self) -> Option<&Path>;
}

#[async_trait]
impl StepRunner for MediaEngine {
    async fn run(
        &self,
        op: &Operation,
        inputs: &[OpInput],
        work: &Path,
        progress: &dyn Progress,
    ) -> Result<OpOutput, MediaError> {
        MediaEngine::run(self, op, inputs, work, progress).await
    }

    fn temp_dir(&self) -> Option<&Path> {
        self.config().temp_dir.as_deref()
    }
}

/// Why a run stopped without an outcome of its own.
enum Stop {
    /// Shutdown: hand the step back; the attempt does not count.
    Shutdown,
    /// Another worker may own the step now: write nothing.
    LeaseLost,
    /// The job was cancelled (or the step re-queued): the run is moot.
    Cancelled,
}

/// Progress in percent, shared between the operation and the step heartbeat.
#[derive(Debug, Default)]
struct Percent {
    value: AtomicU8,
}

impl Progress for Percent {
    fn percent(&self, value: u8) {
        self.value.store(value.min(100), Ordering::Relaxed);
    }
}

impl Worker {
    /// Processes one claimed task.
    pub(crate) async fn process(
        &self,
        lease: &Lease,
        abort: &CancellationToken,
        lost: &CancellationToken,
        started: &std::sync::atomic::AtomicU32,
    ) {
        let task = &lease.task;
        let start = Change::Start {
            task: task.clone(),
            worker: self.id.clone(),
            lease_until: Utc::now() + self.lease(),
        };
        let update = match self.jobs.change(None, task.job, start).await {
            Ok(update) => update,
            Err(PortError::NotFound) => {
                // Deleted while queued: nothing to do.
                let _ = self.queue.complete(lease).await;
                return;
            }
            Err(e) => {
                tracing::warn!(job = %task.job, error = %e, "cannot start the step; retrying later");
                let _ = self
                    .queue
                    .release(lease, Utc::now() + self.config.backoff.delay(1))
                    .await;
                return;
            }
        };
        let attempt = match update.applied.verdict {
            Verdict::Started { attempt } => {
                started.store(attempt, Ordering::SeqCst);
                attempt
            }
            Verdict::Busy { until } => {
                // Another worker runs it: look again once its lease would have run out.
                let at = until + chrono::TimeDelta::seconds(1);
                let _ = self.queue.release(lease, at).await;
                return;
            }
            Verdict::Stale { why } => {
                tracing::debug!(job = %task.job, step = %task.step, attempt = task.attempt, %why, "stale delivery dropped");
                let _ = self.queue.complete(lease).await;
                return;
            }
            Verdict::Applied => {
                let _ = self.queue.complete(lease).await;
                return;
            }
        };
        let job = update.job;
        let progress = Arc::new(Percent::default());
        let cancelled = CancellationToken::new();
        let _beat = self.step_heartbeat(&job, &task.step, attempt, &progress, &cancelled);

        let started = Instant::now();
        let outcome = tokio::select! {
            result = self.run_step(&job, &task.step, &*progress) => Ok(result),
            () = abort.cancelled() => Err(Stop::Shutdown),
            () = lost.cancelled() => Err(Stop::LeaseLost),
            () = cancelled.cancelled() => Err(Stop::Cancelled),
        };
        let seconds = started.elapsed().as_secs_f64();
        let outcome = match outcome {
            Ok(Ok((artefacts, result))) => {
                metrics::histogram!("vidsnap_job_seconds", "outcome" => "succeeded")
                    .record(seconds);
                StepOutcome::Succeeded { artefacts, result }
            }
            Ok(Err(Failed { failure, retry })) => {
                metrics::histogram!("vidsnap_job_seconds", "outcome" => "failed").record(seconds);
                if retry {
                    StepOutcome::Retry {
                        failure,
                        at: Utc::now() + self.config.backoff.delay(attempt),
                    }
                } else {
                    StepOutcome::Abort { failure }
                }
            }
            Err(Stop::Shutdown) => {
                tracing::info!(job = %job.id, step = %task.step, "shutting down: handing the step back");
                StepOutcome::HandedBack
            }
            Err(Stop::LeaseLost) => {
                tracing::warn!(job = %job.id, step = %task.step, "lease lost: leaving the step to its new owner");
                return;
            }
            Err(Stop::Cancelled) => {
                tracing::info!(job = %job.id, step = %task.step, "cancelled: the run stopped");
                // Cancelled because the job was deleted (with its video): what the run stored
                // before it stopped belongs to nobody.
                if let Err(PortError::NotFound) = self.jobs.repo().job(None, job.id).await {
                    let prefix = job.artefact_prefix(&task.step);
                    if let Err(e) = self.blobs.delete_prefix(&prefix).await {
                        tracing::warn!(%prefix, error = %e, "removing a deleted job's outputs failed; the storage sweep will");
                    }
                }
                let _ = self.queue.complete(lease).await;
                return;
            }
        };
        self.finish(lease, attempt, outcome).await;
    }

    /// Records the outcome, then settles the queue message.
    async fn finish(&self, lease: &Lease, attempt: u32, outcome: StepOutcome) {
        let task = &lease.task;
        // What this run stored, in case the job is gone by the time it is recorded.
        let stored: Vec<String> = match &outcome {
            StepOutcome::Succeeded { artefacts, .. } => {
                artefacts.iter().map(|a| a.key.clone()).collect()
            }
            _ => Vec::new(),
        };
        let finish = Change::Finish {
            step: task.step.clone(),
            attempt,
            outcome,
        };
        match self.jobs.change(None, task.job, finish).await {
            // Recorded, or no longer ours to record (cancelled, taken over).
            Ok(_) => {
                let _ = self.queue.complete(lease).await;
            }
            // Deleted (with its video) while this run stored its outputs: nobody owns them now.
            Err(PortError::NotFound) => {
                for key in &stored {
                    if let Err(e) = self.blobs.delete(key).await {
                        tracing::warn!(%key, error = %e, "removing a deleted job's output failed; the storage sweep will");
                    }
                }
                let _ = self.queue.complete(lease).await;
            }
            Err(e) => {
                // The step stays `running` until its lease runs out; the redelivery takes over.
                tracing::warn!(job = %task.job, error = %e, "recording the outcome failed; retrying");
                let _ = self
                    .queue
                    .release(lease, Utc::now() + self.config.backoff.delay(1))
                    .await;
            }
        }
    }

    /// The step's run `run` after its task panicked: a failure worth another attempt. A panic
    /// before the step started (`run` 0) hands the task back for later.
    pub(crate) async fn panicked(&self, lease: &Lease, run: u32, why: &str) {
        if run == 0 {
            let _ = self
                .queue
                .release(lease, Utc::now() + self.config.backoff.delay(1))
                .await;
            return;
        }
        let outcome = StepOutcome::Retry {
            failure: Failure {
                code: ErrorCode::Internal,
                message: format!("{why} (a bug: see the worker's log)"),
            },
            at: Utc::now() + self.config.backoff.delay(run),
        };
        self.finish(lease, run, outcome).await;
    }

    /// Tells the database the step is alive (with its progress) every few seconds, and cancels
    /// the run when the answer is that the step is no longer this attempt's (a cancel).
    fn step_heartbeat(
        &self,
        job: &Job,
        step: &str,
        attempt: u32,
        progress: &Arc<Percent>,
        cancelled: &CancellationToken,
    ) -> AbortOnDropHandle<()> {
        let every = Duration::from_secs_f64(self.config.step_heartbeat_seconds.max(0.05));
        let (jobs, id, step) = (self.jobs.clone(), job.id, step.to_owned());
        let (progress, cancelled, lease) = (Arc::clone(progress), cancelled.clone(), self.lease());
        AbortOnDropHandle::new(tokio::spawn(async move {
            let mut reported = None;
            loop {
                tokio::time::sleep(every).await;
                let now = progress.value.load(Ordering::Relaxed);
                let beat = Change::Heartbeat {
                    step: step.clone(),
                    attempt,
                    lease_until: Utc::now() + lease,
                    progress: (reported != Some(now)).then_some(now),
                };
                match jobs.change(None, id, beat).await {
                    Ok(update) if matches!(update.applied.verdict, Verdict::Stale { .. }) => {
                        cancelled.cancel();
                        return;
                    }
                    Ok(_) => reported = Some(now),
                    Err(PortError::NotFound) => {
                        cancelled.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(job = %id, error = %e, "step heartbeat failed"),
                }
            }
        }))
    }

    /// Fetch the inputs, run, store the artefacts.
    async fn run_step(
        &self,
        job: &Job,
        step: &str,
        progress: &dyn Progress,
    ) -> Result<(Vec<Artefact>, Option<serde_json::Value>), Failed> {
        let spec = job
            .recipe
            .step(step)
            .ok_or_else(|| Failed::abort(ErrorCode::Internal, format!("no step {step:?}")))?;
        let scratch = WorkDir::create(self.runner.temp_dir()).map_err(Failed::media)?;
        let mut inputs = Vec::new();
        // The job's input videos as read for this run.
        let mut videos = Vec::new();
        for (i, input) in spec.inputs.iter().enumerate() {
            let dir = scratch.path().join(format!("in-{i}"));
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| Failed::retry(ErrorCode::OutputFailed, format!("scratch: {e}")))?;
            let (input, video) = self.fetch(job, input, &dir).await?;
            inputs.push(input);
            videos.extend(video);
        }
        let work = scratch.path().join("out");
        tokio::fs::create_dir_all(&work)
            .await
            .map_err(|e| Failed::retry(ErrorCode::OutputFailed, format!("scratch: {e}")))?;
        let started = Instant::now();
        let output = self
            .runner
            .run(&spec.op, &inputs, &work, progress)
            .await
            .map_err(Failed::media)?;
        metrics::histogram!("vidsnap_media_seconds", "op" => spec.op.name())
            .record(started.elapsed().as_secs_f64());

        let prefix = job.artefact_prefix(step);
        // A watched folder's video: its one step's outputs go beside the object that landed.
        let beside = match job.video {
            Some(id) if job.steps.len() == 1 => videos
                .into_iter()
                .find(|video| video.id == id && video.source.is_some()),
            _ => None,
        };
        // The zip last: its presence is what a reader of the folder waits for.
        let mut produced = output.produced;
        produced.sort_by_key(|p| p.name == "zip");
        let mut artefacts = Vec::with_capacity(produced.len());
        for item in produced {
            let key = beside
                .as_ref()
                .and_then(|video| video.beside(&item.file_name))
                .unwrap_or_else(|| format!("{prefix}{}", item.file_name));
            let (_, sha256) = item.digest().await.map_err(|e| {
                Failed::retry(
                    ErrorCode::OutputFailed,
                    format!("reading {}: {e}", item.name),
                )
            })?;
            let bytes = self
                .blobs
                .put_file(&key, &item.path, &item.content_type)
                .await
                .map_err(|e| Failed::port(&format!("storing the {} artefact", item.name), e))?;
            artefacts.push(Artefact {
                name: item.name,
                key,
                content_type: item.content_type,
                bytes,
                sha256,
            });
        }
        Ok((artefacts, output.result))
    }

    /// An input as a local file: a job input's video, or an upstream step's artefact.
    /// The video, for a job input, is returned too (what the run knows of it).
    async fn fetch(
        &self,
        job: &Job,
        input: &InputRef,
        dir: &Path,
    ) -> Result<(OpInput, Option<Video>), Failed> {
        let mut read = None;
        let (key, file_name) = match input {
            InputRef::Job(name) => {
                let video = job.inputs.get(name).ok_or_else(|| {
                    Failed::abort(ErrorCode::Internal, format!("no input {name:?}"))
                })?;
                let video = self
                    .jobs
                    .repo()
                    .video(None, video.video)
                    .await
                    .map_err(|e| Failed::port("reading the input video", e))?;
                let found = (video.source_key(), video.file_name.clone());
                read = Some(video);
                found
            }
            InputRef::Artefact { step, artefact } => {
                let found = job
                    .step(step)
                    .and_then(|s| s.artefacts.iter().find(|a| &a.name == artefact))
                    .ok_or_else(|| {
                        Failed::abort(
                            ErrorCode::Internal,
                            format!("step {step:?} has no artefact {artefact:?}"),
                        )
                    })?;
                let name = found.key.rsplit('/').next().unwrap_or(artefact).to_owned();
                (found.key.clone(), name)
            }
        };
        let path: PathBuf = self
            .blobs
            .local_copy(&key, dir)
            .await
            .map_err(|e| Failed::port("reading an input", e))?;
        Ok((OpInput { path, file_name }, read))
    }
}

/// A run that failed, and whether another attempt may succeed.
struct Failed {
    failure: Failure,
    retry: bool,
}

impl Failed {
    fn retry(code: ErrorCode, message: String) -> Self {
        Self {
            failure: Failure { code, message },
            retry: true,
        }
    }

    fn abort(code: ErrorCode, message: String) -> Self {
        Self {
            failure: Failure { code, message },
            retry: false,
        }
    }

    /// Decided where it happened: the media engine knows bad input from machine trouble.
    fn media(error: MediaError) -> Self {
        Self {
            retry: error.is_retryable(),
            failure: Failure {
                code: error.code(),
                message: error.to_string(),
            },
        }
    }

    /// Storage and database trouble is worth another attempt; a missing input is not. The
    /// backend's own words are logged, never recorded: the error is shown to users.
    fn port(action: &str, error: PortError) -> Self {
        let retry = !matches!(error, PortError::NotFound);
        tracing::warn!(%error, "{action} failed");
        let (code, message) = if retry {
            (
                ErrorCode::OutputFailed,
                format!("{action}: the storage or the database is unavailable"),
            )
        } else {
            (ErrorCode::InputNotFound, format!("{action}: it is gone"))
        };
        Self {
            failure: Failure { code, message },
            retry,
        }
    }
}
