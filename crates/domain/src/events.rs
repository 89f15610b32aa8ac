//! The events announced to users (webhook bodies, e-mails): typed and versioned here, frozen as
//! JSON in the notification outbox when the outcome is recorded.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    Artefact, EventType, Failure, Job, JobId, JobStatus, NotificationId, Outputs, QcOutcome,
    QcResult, QcResultId, StepStatus, Video, VideoId, VideoStatus,
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

/// A `qc.processed`, `qc.failed` or `qc.unable_to_process` body: where the bucket workflow
/// moved a file, and why. `video` has the `id`, `file_name` and `last_error` (the reason) of a
/// `video.*` body, so a receiver reading those reads these too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QcEvent {
    pub id: NotificationId,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub video: QcVideo,
    pub qc: QcSummary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QcVideo {
    pub id: VideoId,
    pub file_name: String,
    pub last_error: Option<Failure>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QcSummary {
    pub result: QcResultId,
    pub outcome: QcOutcome,
    /// Where the file was checked, and where it is now.
    pub key: String,
    pub moved_to: Option<String>,
    pub rating: Option<u8>,
    pub passed: bool,
    /// 0 for the first decision about the file, then one more per retry.
    pub attempt: u32,
}

impl QcEvent {
    pub fn new(id: NotificationId, kind: EventType, at: DateTime<Utc>, result: &QcResult) -> Self {
        Self {
            id,
            kind,
            version: EVENT_VERSION,
            created_at: at,
            video: QcVideo {
                id: result.video,
                file_name: result.file_name.clone(),
                last_error: result.error.clone(),
            },
            qc: QcSummary {
                result: result.id,
                outcome: result.outcome,
                key: result.key.clone(),
                moved_to: result.moved_to.clone(),
                rating: result.rating,
                passed: result.passed,
                attempt: result.attempt,
            },
        }
    }
}

impl EventType {
    /// The event announcing where the bucket workflow moved a file.
    pub fn for_qc(outcome: QcOutcome) -> Self {
        match outcome {
            QcOutcome::Processed => Self::QcProcessed,
            QcOutcome::Failed => Self::QcFailed,
            QcOutcome::UnableToProcess => Self::QcUnableToProcess,
        }
    }

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
