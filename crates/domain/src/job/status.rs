//! Where a step is and where a job is: the names on the wire, and the one table of allowed step
//! transitions.

use serde::{Deserialize, Serialize};

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Waiting,
    Ready,
    Running,
    Succeeded,
    /// The input can never succeed with these options (bad input): not retried.
    Failed,
    /// Every attempt failed on a transient problem.
    Dead,
    /// An upstream step failed or died: never ran.
    Skipped,
    Cancelled,
}

impl StepStatus {
    pub const ALL: [StepStatus; 8] = [
        Self::Waiting,
        Self::Ready,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Dead,
        Self::Skipped,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Ready => "ready",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Dead => "dead",
            Self::Skipped => "skipped",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Nothing more happens to the step unless a user re-runs it.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Dead | Self::Skipped | Self::Cancelled
        )
    }

    /// The one table of allowed step transitions.
    pub fn can_become(self, next: StepStatus) -> bool {
        use StepStatus::*;
        matches!(
            (self, next),
            (Waiting, Ready)
                | (Waiting, Skipped)
                | (Waiting, Cancelled)
                | (Ready, Running)
                | (Ready, Cancelled)
                // A transient failure with attempts left, or a worker handing it back.
                | (Running, Ready)
                | (Running, Succeeded)
                | (Running, Failed)
                | (Running, Dead)
                | (Running, Cancelled)
                // A worker died holding it and the next one gave up for good.
                | (Ready, Dead)
                // Re-runs: the step itself, and what is downstream of it.
                | (Failed, Ready)
                | (Dead, Ready)
                | (Cancelled, Ready)
                | (Failed, Waiting)
                | (Dead, Waiting)
                | (Cancelled, Waiting)
                | (Skipped, Waiting)
                | (Succeeded, Waiting)
        )
    }
}

impl std::fmt::Display for StepStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a job is, derived from its steps ([`Job::derive_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// An input video has not been uploaded yet.
    Waiting,
    /// Steps are ready; none has started.
    Queued,
    Running,
    Succeeded,
    /// A step failed on input that can never succeed.
    Failed,
    /// A step ran out of attempts.
    Dead,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 7] = [
        Self::Waiting,
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Dead,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Dead | Self::Cancelled
        )
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
