//! A video's life: its status machine, its processing options and what processing produced.
//!
//! Every status change goes through [`VideoStatus::can_become`]; the repositories refuse any
//! other, so nothing (a late duplicate job, a retry request) can move a `succeeded` video back.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{ErrorCode, FrameInterval, FrameMode, ImageFormat, JobId, UserId, VideoId};

/// Where a video is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoStatus {
    /// Created; waiting for its bytes.
    AwaitingUpload,
    /// Uploaded (or due for another attempt); a processing job is queued.
    Queued,
    /// A worker holds its job.
    Processing,
    /// Outputs are stored. Terminal.
    Succeeded,
    /// The last attempt failed; it is queued again if attempts remain, else it becomes `dead`.
    Failed,
    /// No attempts left (or the input can never succeed). Terminal until a user asks to retry.
    Dead,
    /// Stored without processing (`process: false`), its bytes there: jobs may read it. Shown,
    /// never stored (the row stays `awaiting_upload` with `uploaded_at` set), so not in
    /// [`VideoStatus::ALL`].
    Uploaded,
}

impl VideoStatus {
    pub const ALL: [VideoStatus; 6] = [
        Self::AwaitingUpload,
        Self::Queued,
        Self::Processing,
        Self::Succeeded,
        Self::Failed,
        Self::Dead,
    ];

    /// Every status an API answer can show: the stored ones and `uploaded`.
    pub const SHOWN: [VideoStatus; 7] = [
        Self::AwaitingUpload,
        Self::Uploaded,
        Self::Queued,
        Self::Processing,
        Self::Succeeded,
        Self::Failed,
        Self::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingUpload => "awaiting_upload",
            Self::Uploaded => "uploaded",
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The one table of allowed transitions.
    pub fn can_become(self, next: VideoStatus) -> bool {
        use VideoStatus::*;
        matches!(
            (self, next),
            (AwaitingUpload, Queued)
                | (Queued, Processing)
                // A worker that stops (shutdown, lost lease) hands the job back.
                | (Processing, Queued)
                | (Processing, Succeeded)
                | (Processing, Failed)
                // Another attempt after a backoff, or a user's retry.
                | (Failed, Queued)
                | (Failed, Dead)
                | (Dead, Queued)
                // Its job was cancelled before it ran (`POST /v1/jobs/{id}/cancel`).
                | (AwaitingUpload, Dead)
                | (Queued, Dead)
        )
    }

    /// Whether a notification is due on entering this status.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Dead)
    }
}

impl fmt::Display for VideoStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a video's frames are extracted; chosen at creation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VideoOptions {
    pub every: FrameInterval,
    pub mode: FrameMode,
    pub format: ImageFormat,
}

impl Default for VideoOptions {
    fn default() -> Self {
        Self {
            every: FrameInterval::default(),
            mode: FrameMode::Exact,
            format: ImageFormat::Jpg,
        }
    }
}

/// Why an attempt failed, as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
}

/// What a successful run stored, as blob keys beside the video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outputs {
    pub zip_key: String,
    pub zip_bytes: u64,
    pub thumbnail_key: String,
    pub frames: usize,
}

/// A video as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Video {
    pub id: VideoId,
    pub owner: UserId,
    pub file_name: String,
    /// Declared size in bytes, when the client said.
    pub size: Option<u64>,
    pub options: VideoOptions,
    pub status: VideoStatus,
    /// Attempts made in the current cycle.
    pub attempts: u32,
    pub max_attempts: u32,
    /// Incremented by each user retry of a dead video, so its next outcome notifies again.
    pub cycle: u32,
    pub last_error: Option<Failure>,
    /// The ffprobe summary, once probed.
    pub probe: Option<serde_json::Value>,
    pub outputs: Option<Outputs>,
    /// The job `/v1/videos` made to process it (`None` for a video uploaded to be processed
    /// later by jobs of its own). The fields above from `status` on mirror that job.
    pub job: Option<JobId>,
    /// When its bytes were stored.
    pub uploaded_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Video {
    /// `{user}/{video}/{file_name}`: the key of the uploaded bytes; outputs go beside it.
    pub fn source_key(&self) -> String {
        format!("{}/{}/{}", self.owner, self.id, self.file_name)
    }

    /// The folder every blob of this video lives in.
    pub fn prefix(&self) -> String {
        format!("{}/{}/", self.owner, self.id)
    }

    /// The file name without its extension, for output names.
    pub fn stem(&self) -> &str {
        self.file_name
            .rsplit_once('.')
            .map_or(self.file_name.as_str(), |(stem, _)| stem)
    }
}

/// One entry of a video's status history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: VideoStatus,
    pub at: DateTime<Utc>,
    /// The attempt this change belongs to (0 before the first).
    pub attempt: u32,
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::VideoStatus::{self, *};

    #[test]
    fn succeeded_is_final() {
        for next in VideoStatus::ALL {
            assert!(!Succeeded.can_become(next), "succeeded -> {next}");
        }
    }

    #[test]
    fn the_happy_path_and_the_retry_path_are_allowed() {
        for (from, to) in [
            (AwaitingUpload, Queued),
            (Queued, Processing),
            (Processing, Succeeded),
            (Processing, Failed),
            (Failed, Queued),
            (Failed, Dead),
            (Dead, Queued),
        ] {
            assert!(from.can_become(to), "{from} -> {to}");
        }
        assert!(!Failed.can_become(Succeeded));
        assert!(!Queued.can_become(Succeeded));
        assert!(!AwaitingUpload.can_become(Processing));
    }

    #[test]
    fn names_round_trip() {
        for status in VideoStatus::ALL {
            assert_eq!(VideoStatus::parse(status.as_str()), Some(status));
        }
    }
}
