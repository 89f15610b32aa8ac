//! Jobs: one run of a [`Recipe`] over the job's input videos, made of steps with their own
//! status, attempts, error, progress and artefacts.
//!
//! Everything here is pure: [`Job::apply`] takes a [`Change`] (an input uploaded, a worker
//! starting or finishing a step, a cancel, a re-run) and says what it did, which tasks to
//! enqueue, which events to record and, for a `/v1/videos` job, which video transitions follow.
//! The repositories load a job, call `apply` and write the result in one transaction, so the
//! rules live once, here, whatever the database.
//!
//! Step statuses: `waiting` (for inputs or upstream steps) -> `ready` (a task is queued, maybe
//! for after a backoff) -> `running` -> `succeeded`, or on a failure: back to `ready` when the
//! failure is transient and attempts remain, `dead` when none remain, `failed` at once when the
//! input can never succeed. The steps downstream of a `failed` or `dead` step are `skipped`; a
//! cancel makes every unfinished step `cancelled`. `failed`, `dead` and `cancelled` steps can
//! be re-run (with everything downstream of them).
//!
//! `status.rs` holds the two status enums and the table of step transitions; `mirror.rs` how a
//! `/v1/videos` job's changes become its video's status changes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use self::mirror::{Gate, video_failure};
pub use self::status::{JobStatus, StepStatus};
use crate::{
    ErrorCode, Failure, JobId, Transition, UserId, VideoId, VideoStatus,
    ops::Operation,
    recipe::{InputRef, Recipe},
};

/// A stored output of a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artefact {
    /// What later steps and clients call it (`zip`, `thumbnail`, `frames/000001.jpg`).
    pub name: String,
    /// Its blob key, under the job's prefix.
    pub key: String,
    pub content_type: String,
    pub bytes: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
}

/// A named input of the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInput {
    pub video: VideoId,
    /// Its bytes are stored: steps reading it may run.
    pub uploaded: bool,
}

/// One step's run state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    pub status: StepStatus,
    /// Attempts started in the current cycle.
    pub attempts: u32,
    /// Runs started in all cycles: what a [`Task`]'s `attempt` names. It never goes back (a
    /// re-run resets `attempts`, not this), so a report from a run of an earlier cycle can never
    /// pass for one of the current cycle.
    #[serde(default)]
    pub run: u32,
    pub max_attempts: u32,
    pub last_error: Option<Failure>,
    /// 0-100 while running, where the operation can tell.
    pub progress: Option<u8>,
    /// A ready step's task is due then (a backoff after a failure).
    pub run_at: Option<DateTime<Utc>>,
    /// A running step belongs to its worker until then (extended by heartbeats); after it, the
    /// worker is presumed dead and the next delivery takes over.
    pub lease_until: Option<DateTime<Utc>>,
    pub worker: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub artefacts: Vec<Artefact>,
    /// What the operation reported besides its files (a probe summary, a frame count).
    pub result: Option<serde_json::Value>,
}

impl Step {
    fn new(name: &str, max_attempts: u32) -> Self {
        Self {
            name: name.to_owned(),
            status: StepStatus::Waiting,
            attempts: 0,
            run: 0,
            max_attempts,
            last_error: None,
            progress: None,
            run_at: None,
            lease_until: None,
            worker: None,
            started_at: None,
            finished_at: None,
            artefacts: Vec::new(),
            result: None,
        }
    }

    /// Back to its state before any attempt (a re-run); its run count goes on.
    fn reset(&mut self, status: StepStatus) {
        let fresh = Self::new(&self.name, self.max_attempts);
        *self = Self {
            status,
            run: self.run,
            ..fresh
        };
    }
}

/// A unit of queued work: run number `attempt` of step `step` of job `job` (the step's
/// [`Step::run`] once started). The repository checks it against the step before the step runs,
/// so a stale or duplicate delivery is dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Task {
    pub job: JobId,
    pub step: String,
    pub attempt: u32,
}

/// What a worker reports when a step's run ends.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    Succeeded {
        artefacts: Vec<Artefact>,
        result: Option<serde_json::Value>,
    },
    /// Machine or network trouble: another attempt may succeed, not before `at`.
    Retry { failure: Failure, at: DateTime<Utc> },
    /// The input can never succeed.
    Abort { failure: Failure },
    /// The worker stopped (shutdown) before an outcome: the attempt does not count.
    HandedBack,
}

/// Something that happens to a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// An input video's bytes are stored.
    InputUploaded {
        video: VideoId,
        /// Its size, when the transport said (shown in the history).
        bytes: Option<u64>,
    },
    /// A worker wants to run `task`.
    Start {
        task: Task,
        worker: String,
        lease_until: DateTime<Utc>,
    },
    /// A worker is still running `step` (attempt `attempt`).
    Heartbeat {
        step: String,
        attempt: u32,
        lease_until: DateTime<Utc>,
        progress: Option<u8>,
    },
    /// A worker finished `step`'s attempt `attempt`.
    Finish {
        step: String,
        attempt: u32,
        outcome: StepOutcome,
    },
    Cancel,
    /// Runs `step` again (with new options for it, when given), and everything downstream.
    Rerun {
        step: String,
        op: Option<Operation>,
    },
    /// Runs a finished `step` again whatever its outcome, succeeded included, and everything
    /// downstream: the bucket workflow's retry of a file whose report said it failed.
    Repeat {
        step: String,
    },
}

/// What a change did.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Applied,
    /// The step is now running this attempt.
    Started {
        attempt: u32,
    },
    /// The delivery or report is not about the step as it is now (finished, re-queued,
    /// cancelled, another attempt): nothing changed; acknowledge and drop it.
    Stale {
        why: String,
    },
    /// Another worker holds the step until `until`: try the delivery again then.
    Busy {
        until: DateTime<Utc>,
    },
}

/// A line of a job's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepEvent {
    pub step: String,
    pub status: StepStatus,
    pub attempt: u32,
    pub at: DateTime<Utc>,
    pub reason: Option<String>,
}

/// Everything [`Job::apply`] asks the caller to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub verdict: Verdict,
    /// Queue these after the transaction commits.
    pub tasks: Vec<(Task, DateTime<Utc>)>,
    pub events: Vec<StepEvent>,
    /// The job entered this terminal status with this change (notifications are owed).
    pub finished: Option<JobStatus>,
    /// For a `/v1/videos` job: the video's status changes that mirror this change, in order.
    pub video: Vec<Transition>,
    /// The mirror's candidates, each kept only if its condition holds once the change is done.
    mirror: Vec<(Gate, Transition)>,
}

/// Why a user's change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("the job has no step {0:?}")]
    NoSuchStep(String),
    #[error("{0}")]
    InvalidState(String),
}

/// One run of a recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub owner: UserId,
    /// The built-in recipe it was made from, if any.
    pub recipe_name: Option<String>,
    /// The checked recipe, with any options edited by re-runs.
    pub recipe: Recipe,
    pub params: serde_json::Value,
    pub inputs: BTreeMap<String, JobInput>,
    /// Set for the job `/v1/videos` made for a video: its status mirrors onto the video, its
    /// artefacts are stored beside the video, and it is announced with `video.*` events.
    pub video: Option<VideoId>,
    pub status: JobStatus,
    /// Advanced by each re-run, so the next outcome is announced again.
    pub cycle: u32,
    pub steps: Vec<Step>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Job {
    /// A new job: every step `waiting`, then those whose inputs are there `ready` (their tasks
    /// are in the returned [`Applied`]). `max_attempts` applies where the recipe sets none.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: JobId,
        owner: UserId,
        recipe_name: Option<String>,
        recipe: Recipe,
        params: serde_json::Value,
        inputs: BTreeMap<String, JobInput>,
        video: Option<VideoId>,
        max_attempts: u32,
        now: DateTime<Utc>,
    ) -> (Self, Applied) {
        let steps = recipe
            .steps
            .iter()
            .map(|spec| Step::new(&spec.name, spec.max_attempts.unwrap_or(max_attempts).max(1)))
            .collect();
        let mut job = Self {
            id,
            owner,
            recipe_name,
            recipe,
            params,
            inputs,
            video,
            status: JobStatus::Waiting,
            cycle: 0,
            steps,
            created_at: now,
            updated_at: now,
        };
        let mut applied = Applied::new(Verdict::Applied);
        job.advance(now, &mut applied);
        job.status = job.derive_status();
        (job, applied)
    }

    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }

    /// The blob folder a step's artefacts go in: beside the video for a one-step `/v1/videos`
    /// job (the seeds' layout: the zip and the thumbnail next to the upload), in a folder per
    /// step beside it for a video's recipe of several steps (their file names may be the same),
    /// else `{owner}/jobs/{job}/{step}/`.
    pub fn artefact_prefix(&self, step: &str) -> String {
        match self.video {
            Some(video) if self.steps.len() == 1 => format!("{}/{video}/", self.owner),
            Some(video) => format!("{}/{video}/{step}/", self.owner),
            None => format!("{}/jobs/{}/{step}/", self.owner, self.id),
        }
    }

    /// Every blob of the job (for deletion).
    pub fn prefix(&self) -> String {
        format!("{}/jobs/{}/", self.owner, self.id)
    }

    /// The job's status as its steps and inputs make it.
    pub fn derive_status(&self) -> JobStatus {
        let any = |status: StepStatus| self.steps.iter().any(|s| s.status == status);
        if self.steps.iter().all(|s| s.status.is_terminal()) {
            return if any(StepStatus::Cancelled) {
                JobStatus::Cancelled
            } else if any(StepStatus::Failed) {
                JobStatus::Failed
            } else if any(StepStatus::Dead) {
                JobStatus::Dead
            } else {
                JobStatus::Succeeded
            };
        }
        let started = self
            .steps
            .iter()
            .any(|s| s.status == StepStatus::Running || s.attempts > 0 || s.status.is_terminal());
        if started {
            JobStatus::Running
        } else if any(StepStatus::Ready) {
            JobStatus::Queued
        } else {
            JobStatus::Waiting
        }
    }

    /// Whether `step` could run now: every job input it reads is uploaded and every upstream
    /// step succeeded.
    fn inputs_ready(&self, spec: &crate::recipe::StepSpec) -> bool {
        let inputs_there = spec.inputs.iter().all(|input| match input {
            InputRef::Job(name) => self.inputs.get(name).is_some_and(|i| i.uploaded),
            InputRef::Artefact { .. } => true,
        });
        inputs_there
            && spec.upstream().iter().all(|up| {
                self.step(up)
                    .is_some_and(|s| s.status == StepStatus::Succeeded)
            })
    }

    /// Makes `ready` every waiting step whose inputs are there, and `skipped` every waiting
    /// step downstream of a failed, dead or skipped one.
    fn advance(&mut self, now: DateTime<Utc>, applied: &mut Applied) {
        let specs = self.recipe.steps.clone();
        for spec in &specs {
            let Some(i) = self.index(&spec.name) else {
                continue;
            };
            if self.steps[i].status != StepStatus::Waiting {
                continue;
            }
            let broken = spec.upstream().iter().any(|up| {
                self.step(up).is_some_and(|s| {
                    matches!(
                        s.status,
                        StepStatus::Failed | StepStatus::Dead | StepStatus::Skipped
                    )
                })
            });
            if broken {
                self.set(
                    i,
                    StepStatus::Skipped,
                    now,
                    Some("an upstream step did not succeed"),
                    applied,
                );
                self.steps[i].finished_at = Some(now);
            } else if self.inputs_ready(spec) {
                self.set(i, StepStatus::Ready, now, None, applied);
                self.steps[i].run_at = Some(now);
                applied.tasks.push((self.task(i), now));
            }
        }
    }

    /// The task for the step's next attempt.
    fn task(&self, i: usize) -> Task {
        Task {
            job: self.id,
            step: self.steps[i].name.clone(),
            attempt: self.steps[i].run + 1,
        }
    }

    fn set(
        &mut self,
        i: usize,
        status: StepStatus,
        now: DateTime<Utc>,
        reason: Option<&str>,
        applied: &mut Applied,
    ) {
        let step = &mut self.steps[i];
        debug_assert!(
            step.status == status || step.status.can_become(status),
            "{} -> {status}",
            step.status
        );
        step.status = status;
        applied.events.push(StepEvent {
            step: step.name.clone(),
            status,
            attempt: step.attempts,
            at: now,
            reason: reason.map(str::to_owned),
        });
    }

    /// Applies `change` at `now`. User changes that make no sense in the job's state are
    /// refused; worker reports that are out of date are [`Verdict::Stale`], not errors.
    pub fn apply(&mut self, change: Change, now: DateTime<Utc>) -> Result<Applied, ChangeError> {
        let before = self.status;
        let mut applied = Applied::new(Verdict::Applied);
        match change {
            Change::InputUploaded { video, bytes } => {
                for input in self.inputs.values_mut() {
                    if input.video == video {
                        input.uploaded = true;
                    }
                }
                self.advance(now, &mut applied);
                if let Some(first) = applied.events.first()
                    && first.status == StepStatus::Ready
                {
                    applied.mirror(
                        Gate::Always,
                        Transition::to(VideoStatus::Queued).reason(match bytes {
                            Some(n) => format!("upload complete ({n} bytes)"),
                            None => "upload complete".to_owned(),
                        }),
                    );
                }
            }
            Change::Start {
                task,
                worker,
                lease_until,
            } => self.start(task, worker, lease_until, now, &mut applied),
            Change::Heartbeat {
                step,
                attempt,
                lease_until,
                progress,
            } => {
                let current = self.running(&step, attempt);
                match current {
                    Ok(i) => {
                        let step = &mut self.steps[i];
                        step.lease_until = Some(lease_until);
                        if progress.is_some() {
                            step.progress = progress;
                        }
                    }
                    Err(why) => applied.verdict = Verdict::Stale { why },
                }
            }
            Change::Finish {
                step,
                attempt,
                outcome,
            } => match self.running(&step, attempt) {
                Ok(i) => self.finish(i, outcome, now, &mut applied),
                Err(why) => applied.verdict = Verdict::Stale { why },
            },
            Change::Cancel => {
                if before.is_terminal() {
                    return Err(ChangeError::InvalidState(format!(
                        "the job is already {before}"
                    )));
                }
                for i in 0..self.steps.len() {
                    if !self.steps[i].status.is_terminal() {
                        self.set(
                            i,
                            StepStatus::Cancelled,
                            now,
                            Some("cancelled"),
                            &mut applied,
                        );
                        let step = &mut self.steps[i];
                        step.finished_at = Some(now);
                        step.lease_until = None;
                        step.run_at = None;
                    }
                }
            }
            Change::Rerun { step, op } => self.rerun(&step, op, false, now, &mut applied)?,
            Change::Repeat { step } => self.rerun(&step, None, true, now, &mut applied)?,
        }
        self.status = self.derive_status();
        if self.status != before || !applied.events.is_empty() {
            self.updated_at = now;
        }
        if self.status.is_terminal() && !before.is_terminal() {
            applied.finished = Some(self.status);
        }
        if self.video.is_some() {
            self.mirror_video(&mut applied);
        }
        Ok(applied)
    }

    /// The step `name` if it is running attempt `attempt`; else why the report is stale.
    fn running(&self, name: &str, attempt: u32) -> Result<usize, String> {
        let i = self
            .index(name)
            .ok_or_else(|| format!("the job has no step {name:?}"))?;
        let step = &self.steps[i];
        if step.status != StepStatus::Running {
            return Err(format!("the step is {}", step.status));
        }
        if step.run != attempt {
            return Err(format!(
                "run {attempt} is not current (run {} is)",
                step.run
            ));
        }
        Ok(i)
    }

    fn start(
        &mut self,
        task: Task,
        worker: String,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
        applied: &mut Applied,
    ) {
        let Some(i) = self.index(&task.step) else {
            applied.verdict = Verdict::Stale {
                why: format!("the job has no step {:?}", task.step),
            };
            return;
        };
        let step = &self.steps[i];
        let takeover = match step.status {
            StepStatus::Ready if task.attempt == step.run + 1 => false,
            StepStatus::Ready => {
                applied.verdict = Verdict::Stale {
                    why: format!(
                        "attempt {} is not the next one ({})",
                        task.attempt,
                        step.run + 1
                    ),
                };
                return;
            }
            // A delivery of the running attempt (or an older one) while it runs.
            StepStatus::Running if task.attempt <= step.run => {
                match step.lease_until {
                    Some(until) if until > now => {
                        applied.verdict = Verdict::Busy { until };
                        return;
                    }
                    // Its worker stopped heartbeating: presumed dead.
                    _ => true,
                }
            }
            other => {
                applied.verdict = Verdict::Stale {
                    why: format!("the step is {other}"),
                };
                return;
            }
        };
        if takeover {
            if step.attempts >= step.max_attempts {
                let failure = Failure {
                    code: ErrorCode::WorkerLost,
                    message: format!(
                        "the worker running attempt {} stopped (it crashed or was killed) and no \
                         attempts are left",
                        step.attempts
                    ),
                };
                self.steps[i].last_error = Some(failure.clone());
                self.set(i, StepStatus::Dead, now, Some("no attempts left"), applied);
                self.steps[i].finished_at = Some(now);
                self.steps[i].lease_until = None;
                // What can no longer run is skipped.
                self.advance(now, applied);
                applied.verdict = Verdict::Stale {
                    why: "no attempts left after an interrupted attempt".to_owned(),
                };
                // The video mirror: its last attempt (still `processing`) failed, then dead.
                for transition in video_failure(&failure, None, false) {
                    applied.mirror(Gate::JobTerminal, transition);
                }
                return;
            }
            applied.mirror(
                Gate::NoOtherRunning(task.step.clone()),
                Transition::to(VideoStatus::Queued).reason("the previous attempt was interrupted"),
            );
            self.steps[i].status = StepStatus::Ready;
        }
        let step = &mut self.steps[i];
        step.attempts += 1;
        step.run += 1;
        step.worker = Some(worker.clone());
        step.lease_until = Some(lease_until);
        step.started_at = Some(now);
        step.finished_at = None;
        step.progress = None;
        step.run_at = None;
        let run = step.run;
        let reason = if takeover {
            format!("worker {worker} (took over: the previous attempt's worker stopped)")
        } else {
            format!("worker {worker}")
        };
        self.set(i, StepStatus::Running, now, Some(&reason), applied);
        applied.verdict = Verdict::Started { attempt: run };
        let mut processing =
            Transition::to(VideoStatus::Processing).reason(format!("worker {worker}"));
        processing.start_attempt = true;
        applied.mirror(Gate::Always, processing);
    }

    fn finish(
        &mut self,
        i: usize,
        outcome: StepOutcome,
        now: DateTime<Utc>,
        applied: &mut Applied,
    ) {
        let attempt = self.steps[i].attempts;
        let max = self.steps[i].max_attempts;
        {
            let step = &mut self.steps[i];
            step.lease_until = None;
            step.worker = None;
        }
        match outcome {
            StepOutcome::Succeeded { artefacts, result } => {
                {
                    let step = &mut self.steps[i];
                    step.artefacts = artefacts;
                    step.result = result.clone();
                    step.last_error = None;
                    step.progress = Some(100);
                    step.finished_at = Some(now);
                }
                self.set(i, StepStatus::Succeeded, now, None, applied);
                let mut done = Transition::to(VideoStatus::Succeeded);
                done.error = Some(None);
                applied.mirror(Gate::JobSucceeded, done);
                self.advance(now, applied);
            }
            StepOutcome::Retry { failure, at } if attempt < max => {
                let reason = format!("attempt {attempt} of {max}: {}", failure.code);
                self.steps[i].last_error = Some(failure.clone());
                applied.events.push(StepEvent {
                    step: self.steps[i].name.clone(),
                    status: StepStatus::Failed,
                    attempt,
                    at: now,
                    reason: Some(reason),
                });
                let delay = (at - now).num_milliseconds().max(0) as f64 / 1000.0;
                self.set(
                    i,
                    StepStatus::Ready,
                    now,
                    Some(&format!("retry in {delay:.1} s")),
                    applied,
                );
                self.steps[i].run_at = Some(at);
                applied.tasks.push((self.task(i), at));
                let name = self.steps[i].name.clone();
                for transition in video_failure(&failure, Some(at - now), false) {
                    applied.mirror(Gate::NoOtherRunning(name.clone()), transition);
                }
            }
            StepOutcome::Retry { failure, .. } => {
                self.steps[i].last_error = Some(failure.clone());
                self.steps[i].finished_at = Some(now);
                self.set(i, StepStatus::Dead, now, Some("no attempts left"), applied);
                for transition in video_failure(&failure, None, false) {
                    applied.mirror(Gate::JobTerminal, transition);
                }
                // What can no longer run is skipped.
                self.advance(now, applied);
            }
            StepOutcome::Abort { failure } => {
                let reason = format!("{} cannot succeed on another attempt", failure.code);
                self.steps[i].last_error = Some(failure.clone());
                self.steps[i].finished_at = Some(now);
                self.set(i, StepStatus::Failed, now, Some(&reason), applied);
                for transition in video_failure(&failure, None, true) {
                    applied.mirror(Gate::JobTerminal, transition);
                }
                // What can no longer run is skipped.
                self.advance(now, applied);
            }
            StepOutcome::HandedBack => {
                let step = &mut self.steps[i];
                step.attempts = step.attempts.saturating_sub(1);
                step.progress = None;
                step.run_at = Some(now);
                self.set(i, StepStatus::Ready, now, Some("worker shut down"), applied);
                applied.tasks.push((self.task(i), now));
                let name = self.steps[i].name.clone();
                applied.mirror(
                    Gate::NoOtherRunning(name),
                    Transition::to(VideoStatus::Queued).reason("worker shut down"),
                );
            }
        }
    }

    fn rerun(
        &mut self,
        name: &str,
        op: Option<Operation>,
        succeeded_too: bool,
        now: DateTime<Utc>,
        applied: &mut Applied,
    ) -> Result<(), ChangeError> {
        let i = self
            .index(name)
            .ok_or_else(|| ChangeError::NoSuchStep(name.to_owned()))?;
        let status = self.steps[i].status;
        let repeatable = succeeded_too && status == StepStatus::Succeeded;
        if !repeatable
            && !matches!(
                status,
                StepStatus::Failed | StepStatus::Dead | StepStatus::Cancelled
            )
        {
            return Err(ChangeError::InvalidState(format!(
                "only a failed, dead or cancelled step can be re-run; {name:?} is {status}"
            )));
        }
        if let Some(op) = op {
            let spec = self
                .recipe
                .steps
                .iter_mut()
                .find(|s| s.name == name)
                .ok_or_else(|| ChangeError::NoSuchStep(name.to_owned()))?;
            if spec.op.name() != op.name() {
                return Err(ChangeError::InvalidState(format!(
                    "step {name:?} runs {}, not {}",
                    spec.op.name(),
                    op.name()
                )));
            }
            spec.op = op;
        }
        // Downstream steps start over; other unfinished steps of a cancelled job do too.
        let downstream: Vec<String> = self
            .recipe
            .downstream(name)
            .into_iter()
            .map(str::to_owned)
            .collect();
        self.cycle += 1;
        self.steps[i].reset(StepStatus::Waiting);
        self.set(i, StepStatus::Waiting, now, Some("re-run"), applied);
        for j in 0..self.steps.len() {
            let step = &self.steps[j];
            let again = downstream.contains(&step.name)
                || matches!(step.status, StepStatus::Cancelled | StepStatus::Skipped)
                    && self.status == JobStatus::Cancelled;
            if again && step.status != StepStatus::Waiting {
                self.steps[j].reset(StepStatus::Waiting);
                self.set(
                    j,
                    StepStatus::Waiting,
                    now,
                    Some("re-run upstream"),
                    applied,
                );
            }
        }
        let mut queued = Transition::to(VideoStatus::Queued).reason("retry requested");
        queued.new_cycle = true;
        queued.error = Some(None);
        applied.mirror(Gate::SomethingReady, queued);
        self.advance(now, applied);
        Ok(())
    }
}

impl Applied {
    fn new(verdict: Verdict) -> Self {
        Self {
            verdict,
            tasks: Vec::new(),
            events: Vec::new(),
            finished: None,
            video: Vec::new(),
            mirror: Vec::new(),
        }
    }
}

mod mirror;
mod status;
#[cfg(test)]
mod tests;
