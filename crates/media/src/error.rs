//! The engine's error type. Every variant maps to one stable [`ErrorCode`].

use std::{path::PathBuf, time::Duration};

use vidsnap_domain::ErrorCode;

/// Why a media operation failed. Bad input is [`MediaError::Rejected`]; the rest are about the
/// machine (tools, time, disk) and may succeed on another attempt: [`MediaError::is_retryable`]
/// is the one place that says which.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The input is not something Vidsnap will process; `code` says why.
    #[error("{message}")]
    Rejected { code: ErrorCode, message: String },

    /// A required program could not be started (not installed, not executable); `remedy` is
    /// what the person running Vidsnap can do about it, which depends on the program.
    #[error("{program} could not be started: {remedy}")]
    ToolMissing {
        program: String,
        remedy: &'static str,
    },

    /// A program ran longer than this input allows.
    #[error("{program} did not finish within {limit:?}")]
    Timeout { program: String, limit: Duration },

    /// A program exited unsuccessfully for a reason not attributable to the input.
    #[error("{program} failed ({status}): {stderr_tail}")]
    ToolFailed {
        program: String,
        status: String,
        stderr_tail: String,
    },

    /// Reading or writing a file of ours failed.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The run was cancelled before it finished; nothing was published.
    #[error("interrupted before finishing; no output was written")]
    Interrupted,

    /// An invariant did not hold: a bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl MediaError {
    pub fn rejected(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Rejected {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Whether another attempt, maybe on another machine, could succeed: the worker retries
    /// these (with a backoff, a bounded number of times) and gives up at once on the rest.
    ///
    /// The rule: retry what is about the machine, abort what is about the input.
    /// - Retry: a timeout (a loaded machine; attempts are bounded, so a file that hangs the
    ///   decoder every time is retried only a few times), I/O on our own files (disk full), a
    ///   tool that cannot be started (`ffmpeg-missing`: another worker may have it), a tool
    ///   failing for a reason not put on the input, an interrupted run, an internal error, and
    ///   an input file that is not there: the engine is only handed local copies its caller
    ///   made, so a missing one says nothing about the video.
    /// - Abort: the input can never succeed: not a video, corrupt, no video stream, too large,
    ///   too long, too wide, an unsupported format, invalid options.
    pub fn is_retryable(&self) -> bool {
        let Self::Rejected { code, .. } = self else {
            return true;
        };
        // Every code is listed so that a new one needs a decision here.
        match code {
            ErrorCode::InputNotFound
            | ErrorCode::FfmpegMissing
            | ErrorCode::Timeout
            | ErrorCode::OutputFailed
            | ErrorCode::Interrupted
            | ErrorCode::WorkerLost
            | ErrorCode::Internal => true,
            ErrorCode::InvalidArgument
            | ErrorCode::UnsupportedFormat
            | ErrorCode::NotAVideo
            | ErrorCode::NoVideoStream
            | ErrorCode::CorruptInput
            | ErrorCode::TooLarge
            | ErrorCode::TooLong
            | ErrorCode::DimensionsTooLarge
            | ErrorCode::TooManyFrames
            | ErrorCode::IntervalTooShort
            | ErrorCode::NoAudioStream
            | ErrorCode::TimeOutOfRange => false,
            // The bucket workflow's verdicts on a file: never a media error to retry.
            ErrorCode::MetadataMissing
            | ErrorCode::SidecarInvalid
            | ErrorCode::SidecarDurationMismatch
            | ErrorCode::SidecarSizeMismatch
            | ErrorCode::SidecarCodecMismatch
            | ErrorCode::SidecarResolutionMismatch
            | ErrorCode::QcFailed => false,
        }
    }

    /// The stable code this error is reported with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Rejected { code, .. } => *code,
            Self::ToolMissing { .. } => ErrorCode::FfmpegMissing,
            Self::Timeout { .. } => ErrorCode::Timeout,
            Self::ToolFailed { .. } | Self::Internal(_) => ErrorCode::Internal,
            Self::Io { .. } => ErrorCode::OutputFailed,
            Self::Interrupted => ErrorCode::Interrupted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io_error() -> MediaError {
        MediaError::io(
            "writing",
            "/tmp/x.zip",
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        )
    }

    #[test]
    fn machine_trouble_is_retried() {
        let retried = [
            MediaError::ToolMissing {
                program: "ffprobe".into(),
                remedy: "install it",
            },
            MediaError::Timeout {
                program: "ffprobe".into(),
                limit: Duration::from_secs(1),
            },
            MediaError::ToolFailed {
                program: "ffprobe".into(),
                status: "exit status: 1".into(),
                stderr_tail: String::new(),
            },
            io_error(),
            MediaError::Interrupted,
            MediaError::Internal("bug".into()),
            MediaError::rejected(ErrorCode::InputNotFound, "gone"),
        ];
        for error in retried {
            assert!(error.is_retryable(), "{error:?}");
        }
    }

    #[test]
    fn bad_input_is_never_retried() {
        for code in [
            ErrorCode::InvalidArgument,
            ErrorCode::UnsupportedFormat,
            ErrorCode::NotAVideo,
            ErrorCode::NoVideoStream,
            ErrorCode::CorruptInput,
            ErrorCode::TooLarge,
            ErrorCode::TooLong,
            ErrorCode::DimensionsTooLarge,
            ErrorCode::TooManyFrames,
            ErrorCode::IntervalTooShort,
            ErrorCode::NoAudioStream,
            ErrorCode::TimeOutOfRange,
        ] {
            let error = MediaError::rejected(code, "no");
            assert!(!error.is_retryable(), "{code}");
            assert_eq!(error.code(), code);
        }
    }

    #[test]
    fn the_reported_code_of_a_missing_tool_is_ffmpeg_missing_and_retried() {
        let error = MediaError::ToolMissing {
            program: "ffprobe".into(),
            remedy: "install it",
        };
        assert_eq!(error.code(), ErrorCode::FfmpegMissing);
        // ErrorCode::is_transient says otherwise for the code alone; the error decides.
        assert!(!error.code().is_transient() && error.is_retryable());
    }
}
