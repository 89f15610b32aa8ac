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
    /// Where its bytes are when they did not come through an upload: the key of an object that
    /// landed in a watched folder (outputs then go beside it). `None`: `{owner}/{id}/{file_name}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Video {
    /// A new video of `owner`, waiting for its bytes, with the id of the job that will process
    /// it (made when they arrive).
    pub fn awaiting_upload(
        owner: UserId,
        file_name: String,
        size: Option<u64>,
        options: VideoOptions,
        max_attempts: u32,
        now: DateTime<Utc>,
    ) -> Video {
        Video {
            id: VideoId::new(),
            owner,
            file_name,
            size,
            options,
            status: VideoStatus::AwaitingUpload,
            attempts: 0,
            max_attempts,
            cycle: 0,
            last_error: None,
            probe: None,
            outputs: None,
            job: Some(JobId::new()),
            uploaded_at: None,
            source: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The key of the video's bytes: `{user}/{video}/{file_name}` for an upload (outputs go
    /// beside it), the object's own key for a watched folder's.
    pub fn source_key(&self) -> String {
        match &self.source {
            Some(key) => key.clone(),
            None => format!("{}/{}/{}", self.owner, self.id, self.file_name),
        }
    }

    /// For a watched folder's video, the key of an output named `file_name` beside its object,
    /// as seed 000 wrote them: `{folder}/{stem}-{file_name}` (`clip-image.jpg` beside
    /// `clip.mp4`; a name that starts with the stem already, such as `clip-images.zip`, is kept).
    /// `None` for an uploaded video, whose outputs have a folder of their own.
    pub fn beside(&self, file_name: &str) -> Option<String> {
        let source = self.source.as_deref()?;
        let (folder, name) = source
            .rsplit_once('/')
            .map_or(("", source), |(f, n)| (f, n));
        // The object's own name, which a sorted file's move may have made unique.
        let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
        let name = if file_name.starts_with(&format!("{stem}-")) {
            file_name.to_owned()
        } else {
            format!("{stem}-{file_name}")
        };
        Some(if folder.is_empty() {
            name
        } else {
            format!("{folder}/{name}")
        })
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
    fn a_watched_videos_outputs_go_beside_its_object_named_after_it() {
        let mut video = super::Video {
            id: crate::VideoId::new(),
            owner: crate::UserId::new(),
            file_name: "clip one+é.mp4".into(),
            size: None,
            options: super::VideoOptions::default(),
            status: AwaitingUpload,
            attempts: 0,
            max_attempts: 1,
            cycle: 0,
            last_error: None,
            probe: None,
            outputs: None,
            job: None,
            uploaded_at: None,
            source: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        };
        assert_eq!(video.beside("image.jpg"), None);
        assert!(video.source_key().ends_with("/clip one+é.mp4"));
        video.source = Some("inbox/today/clip one+é.mp4".into());
        assert_eq!(video.source_key(), "inbox/today/clip one+é.mp4");
        assert_eq!(
            video.beside("image.jpg").as_deref(),
            Some("inbox/today/clip one+é-image.jpg")
        );
        assert_eq!(
            video.beside("clip one+é-images.zip").as_deref(),
            Some("inbox/today/clip one+é-images.zip")
        );
        video.source = Some("top.mov".into());
        video.file_name = "top.mov".into();
        assert_eq!(video.beside("image.png").as_deref(), Some("top-image.png"));
    }

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
