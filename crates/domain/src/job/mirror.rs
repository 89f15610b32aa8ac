//! The video a `/v1/videos` job processes follows the job: its changes are collected as
//! candidates, each with the condition under which it holds ([`Gate`]), and kept or dropped once
//! the change is done. A video has one status for the whole job, so with several steps it
//! follows the job, not each step.

use super::{Applied, Job, JobStatus, StepStatus};
use crate::{ErrorCode, Failure, Outputs, Transition, VideoStatus};

/// When a video transition mirrors a job's change. A video has one status for the whole job, so
/// with several steps it follows the job, not each step: `processing` while any runs, back to
/// `queued` only when none does, terminal only when the job is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Gate {
    Always,
    /// No step other than this one is running.
    NoOtherRunning(String),
    /// The job is now terminal (a failure's `failed` -> `dead`).
    JobTerminal,
    /// The job now succeeded (outputs are filled in from every step's artefacts).
    JobSucceeded,
    /// A step is ready or running (a re-run whose input is not uploaded leaves the video as it
    /// is: it is queued when the upload comes).
    SomethingReady,
}

impl Applied {
    /// A candidate video transition, kept if `gate` holds once the change is done.
    pub(super) fn mirror(&mut self, gate: Gate, transition: Transition) {
        self.mirror.push((gate, transition));
    }
}

impl Job {
    /// Keeps the mirror's candidates whose condition holds now, and adds the terminal change a
    /// job reached through another step (one failed earlier, the last one just ended) or a
    /// cancel.
    pub(super) fn mirror_video(&self, applied: &mut Applied) {
        let running_besides = |step: &str| {
            self.steps
                .iter()
                .any(|s| s.name != step && s.status == StepStatus::Running)
        };
        let mut terminal_mirrored = false;
        for (gate, mut transition) in std::mem::take(&mut applied.mirror) {
            let keep = match &gate {
                Gate::Always => true,
                Gate::NoOtherRunning(step) => !running_besides(step),
                Gate::JobTerminal => self.status.is_terminal(),
                Gate::JobSucceeded => self.status == JobStatus::Succeeded,
                Gate::SomethingReady => self
                    .steps
                    .iter()
                    .any(|s| matches!(s.status, StepStatus::Ready | StepStatus::Running)),
            };
            if !keep {
                continue;
            }
            if gate == Gate::JobSucceeded {
                transition.outputs = self.video_outputs();
                transition.probe = self
                    .steps
                    .iter()
                    .filter_map(|s| s.result.as_ref()?.get("probe").cloned())
                    .next();
            }
            terminal_mirrored |= matches!(gate, Gate::JobTerminal | Gate::JobSucceeded);
            applied.video.push(transition);
        }
        if let Some(status) = applied.finished
            && !terminal_mirrored
        {
            let failure = match status {
                JobStatus::Cancelled => Some((
                    Failure {
                        code: ErrorCode::Interrupted,
                        message: "the job was cancelled".to_owned(),
                    },
                    "cancelled".to_owned(),
                )),
                JobStatus::Failed | JobStatus::Dead => self
                    .steps
                    .iter()
                    .filter(|s| matches!(s.status, StepStatus::Failed | StepStatus::Dead))
                    .find_map(|s| s.last_error.clone())
                    .map(|failure| {
                        let reason = if status == JobStatus::Failed {
                            format!("{} cannot succeed on another attempt", failure.code)
                        } else {
                            "no attempts left".to_owned()
                        };
                        (failure, reason)
                    }),
                _ => None,
            };
            if let Some((failure, reason)) = failure {
                let mut failed = Transition::to(VideoStatus::Failed).reason(failure.code.as_str());
                failed.error = Some(Some(failure.clone()));
                applied.video.push(failed);
                // Carries the error too: a video cancelled while queued goes straight to dead.
                let mut dead = Transition::to(VideoStatus::Dead).reason(reason);
                dead.error = Some(Some(failure));
                applied.video.push(dead);
            }
        }
    }

    /// The `/v1/videos` outputs: the zip and thumbnail of the job's frames step.
    fn video_outputs(&self) -> Option<Outputs> {
        self.steps.iter().find_map(|step| {
            let zip = step.artefacts.iter().find(|a| a.name == "zip")?;
            let thumbnail = step.artefacts.iter().find(|a| a.name == "thumbnail")?;
            let frames = step
                .result
                .as_ref()
                .and_then(|r| r.get("frames"))
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0) as usize;
            Some(Outputs {
                zip_key: zip.key.clone(),
                zip_bytes: zip.bytes,
                thumbnail_key: thumbnail.key.clone(),
                frames,
            })
        })
    }
}

/// The video transitions that mirror a failed attempt: `failed`, then `queued` again after the
/// backoff, or `dead` (at once when `aborted`: the input can never succeed).
pub(super) fn video_failure(
    failure: &Failure,
    retry_in: Option<chrono::TimeDelta>,
    aborted: bool,
) -> Vec<Transition> {
    let mut failed = Transition::to(VideoStatus::Failed).reason(failure.code.as_str());
    failed.error = Some(Some(failure.clone()));
    match retry_in {
        Some(delay) => {
            let seconds = delay.num_milliseconds().max(0) as f64 / 1000.0;
            vec![
                failed,
                Transition::to(VideoStatus::Queued).reason(format!("retry in {seconds:.1} s")),
            ]
        }
        None => {
            let reason = if aborted {
                format!("{} cannot succeed on another attempt", failure.code)
            } else {
                "no attempts left".to_owned()
            };
            vec![failed, Transition::to(VideoStatus::Dead).reason(reason)]
        }
    }
}
