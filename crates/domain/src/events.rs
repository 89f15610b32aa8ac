//! The events announced to users (webhook bodies, e-mails): typed and versioned here, frozen as
//! JSON in the notification outbox when the outcome is recorded.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    Artefact, EventType, Failure, Job, JobId, JobStatus, NotificationId, Outputs, StepStatus,
    Video, VideoId, VideoStatus,
};

/// The version of the event bodies below. A receiver can rely on every field of a version; a new
/// field is added without a new version, a changed or removed one makes a new version.
pub const EVENT_VERSION: u32 = 1;

/// A `video.succeeded` or `video.dead` body (`/v1/videos` users).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoEvent {
    /// The notification's id: the same on every delivery attempt, for deduplication.
    pub id: NotificationId,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub video: VideoSummary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoSummary {
    pub id: VideoId,
    pub file_name: String,
    pub status: VideoStatus,
    pub attempts: u32,
    pub last_error: Option<Failure>,
    pub outputs: Option<Outputs>,
}

/// A `job.succeeded`, `job.failed` or `job.dead` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    pub id: NotificationId,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub job: JobSummary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSummary {
    pub id: JobId,
    pub recipe_name: Option<String>,
    pub status: JobStatus,
    pub cycle: u32,
    /// Input name -> video id.
    pub inputs: std::collections::BTreeMap<String, VideoId>,
    pub steps: Vec<StepSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSummary {
    pub name: String,
    pub op: String,
    pub status: StepStatus,
    pub attempts: u32,
    pub last_error: Option<Failure>,
    /// Names, keys, sizes and digests (download links are on `GET /v1/jobs/{id}`).
    pub artefacts: Vec<Artefact>,
}

impl VideoEvent {
    pub fn new(id: NotificationId, kind: EventType, at: DateTime<Utc>, video: &Video) -> Self {
        Self {
            id,
            kind,
            version: EVENT_VERSION,
            created_at: at,
            video: VideoSummary {
                id: video.id,
                file_name: video.file_name.clone(),
                status: video.status,
                attempts: video.attempts,
                last_error: video.last_error.clone(),
                outputs: video.outputs.clone(),
            },
        }
    }
}

impl JobEvent {
    pub fn new(id: NotificationId, kind: EventType, at: DateTime<Utc>, job: &Job) -> Self {
        Self {
            id,
            kind,
            version: EVENT_VERSION,
            created_at: at,
            job: JobSummary {
                id: job.id,
                recipe_name: job.recipe_name.clone(),
                status: job.status,
                cycle: job.cycle,
                inputs: job
                    .inputs
                    .iter()
                    .map(|(name, input)| (name.clone(), input.video))
                    .collect(),
                steps: job
                    .steps
                    .iter()
                    .map(|step| StepSummary {
                        name: step.name.clone(),
                        op: job
                            .recipe
                            .step(&step.name)
                            .map_or("", |spec| spec.op.name())
                            .to_owned(),
                        status: step.status,
                        attempts: step.attempts,
                        last_error: step.last_error.clone(),
                        artefacts: step.artefacts.clone(),
                    })
                    .collect(),
            },
        }
    }
}

impl EventType {
    /// The event announcing a job's terminal status; `None` for a cancel (the user asked).
    pub fn for_job(status: JobStatus) -> Option<Self> {
        match status {
            JobStatus::Succeeded => Some(Self::JobSucceeded),
            JobStatus::Failed => Some(Self::JobFailed),
            JobStatus::Dead => Some(Self::JobDead),
            _ => None,
        }
    }
}
