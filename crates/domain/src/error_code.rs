//! Stable error codes. A code, once published, keeps its meaning: scripts and API clients match on it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What went wrong, as a stable kebab-case code shared by the CLI, the API and job records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// A command-line or request argument is malformed (e.g. a zero interval).
    InvalidArgument,
    /// The input path does not exist or cannot be opened.
    InputNotFound,
    /// The extension or the real container is not one Vidsnap accepts.
    UnsupportedFormat,
    /// The content is not a video at all: empty, text, audio-only formats, garbage.
    NotAVideo,
    /// The container is readable but holds no video stream (cover art does not count).
    NoVideoStream,
    /// The container is readable but its video cannot be decoded, or has no duration at all.
    CorruptInput,
    /// The file is larger than the configured limit.
    TooLarge,
    /// The video is longer than the configured limit.
    TooLong,
    /// The picture is wider or taller than the configured limit.
    DimensionsTooLarge,
    /// The options would extract more frames than the configured limit (`limits.max_frames`).
    TooManyFrames,
    /// The interval between frames is shorter than one frame of the video.
    IntervalTooShort,
    /// An audio operation's input has no audio stream (`split`, `concat`, `mux`, `merge_call`).
    NoAudioStream,
    /// A time in the options lies outside the input: a trim's end past the duration, a
    /// `call_end` past the end of the recording.
    TimeOutOfRange,
    /// `ffmpeg` or `ffprobe` is not installed or not executable.
    FfmpegMissing,
    /// A media tool ran past the time allowed for this input.
    Timeout,
    /// Writing an output failed (disk full, permissions).
    OutputFailed,
    /// The worker running the step stopped (crashed, was killed, lost its machine) on its last
    /// attempt: a step that keeps taking its worker down ends here, not in a crash loop.
    WorkerLost,
    /// The run was interrupted (Ctrl-C, shutdown) before it finished; nothing was published.
    Interrupted,
    /// A bug or an unexpected condition; the message says what, the logs say more.
    Internal,
    /// (bucket workflow) The file's metadata sidecar (`a.json` beside `a.mp4`) did not arrive
    /// within the wait.
    MetadataMissing,
    /// (bucket workflow) The sidecar is not JSON, or lacks or misspells a field.
    SidecarInvalid,
    /// (bucket workflow) The file's duration is not the sidecar's, within the tolerance.
    SidecarDurationMismatch,
    /// (bucket workflow) The file's size in bytes is not exactly the sidecar's.
    SidecarSizeMismatch,
    /// (bucket workflow) None of the file's streams has the sidecar's codec.
    SidecarCodecMismatch,
    /// (bucket workflow) The file's picture size is not the sidecar's resolution.
    SidecarResolutionMismatch,
    /// (bucket workflow) The file failed quality control (seed 002's rule, or the policy).
    QcFailed,
}

impl ErrorCode {
    /// Every code, for documentation and exhaustive tests.
    pub const ALL: [ErrorCode; 26] = [
        Self::InvalidArgument,
        Self::InputNotFound,
        Self::UnsupportedFormat,
        Self::NotAVideo,
        Self::NoVideoStream,
        Self::CorruptInput,
        Self::TooLarge,
        Self::TooLong,
        Self::DimensionsTooLarge,
        Self::TooManyFrames,
        Self::IntervalTooShort,
        Self::NoAudioStream,
        Self::TimeOutOfRange,
        Self::FfmpegMissing,
        Self::Timeout,
        Self::OutputFailed,
        Self::WorkerLost,
        Self::Interrupted,
        Self::Internal,
        Self::MetadataMissing,
        Self::SidecarInvalid,
        Self::SidecarDurationMismatch,
        Self::SidecarSizeMismatch,
        Self::SidecarCodecMismatch,
        Self::SidecarResolutionMismatch,
        Self::QcFailed,
    ];

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid-argument",
            Self::InputNotFound => "input-not-found",
            Self::UnsupportedFormat => "unsupported-format",
            Self::NotAVideo => "not-a-video",
            Self::NoVideoStream => "no-video-stream",
            Self::CorruptInput => "corrupt-input",
            Self::TooLarge => "too-large",
            Self::TooLong => "too-long",
            Self::DimensionsTooLarge => "dimensions-too-large",
            Self::TooManyFrames => "too-many-frames",
            Self::IntervalTooShort => "interval-too-short",
            Self::NoAudioStream => "no-audio-stream",
            Self::TimeOutOfRange => "time-out-of-range",
            Self::FfmpegMissing => "ffmpeg-missing",
            Self::Timeout => "timeout",
            Self::OutputFailed => "output-failed",
            Self::WorkerLost => "worker-lost",
            Self::Interrupted => "interrupted",
            Self::Internal => "internal",
            Self::MetadataMissing => "metadata-missing",
            Self::SidecarInvalid => "sidecar-invalid",
            Self::SidecarDurationMismatch => "sidecar-duration-mismatch",
            Self::SidecarSizeMismatch => "sidecar-size-mismatch",
            Self::SidecarCodecMismatch => "sidecar-codec-mismatch",
            Self::SidecarResolutionMismatch => "sidecar-resolution-mismatch",
            Self::QcFailed => "qc-failed",
        }
    }

    /// Whether the same input could succeed on another attempt. Bad input never can.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::Timeout | Self::OutputFailed | Self::Interrupted | Self::Internal
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_and_as_str_agree() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).expect("serialize");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, code);
        }
    }

    #[test]
    fn bad_input_is_never_transient() {
        for code in [
            ErrorCode::UnsupportedFormat,
            ErrorCode::NotAVideo,
            ErrorCode::NoVideoStream,
            ErrorCode::NoAudioStream,
            ErrorCode::TimeOutOfRange,
            ErrorCode::CorruptInput,
            ErrorCode::TooLarge,
        ] {
            assert!(!code.is_transient(), "{code}");
        }
    }
}
