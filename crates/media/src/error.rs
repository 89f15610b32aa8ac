//! The engine's error type. Every variant maps to one stable [`ErrorCode`].

use std::{path::PathBuf, time::Duration};

use vidsnap_domain::ErrorCode;

/// Why a media operation failed. Bad input is [`MediaError::Rejected`]; the rest are about the
/// machine (tools, time, disk) and may succeed on another attempt.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The input is not something Vidsnap will process; `code` says why.
    #[error("{message}")]
    Rejected { code: ErrorCode, message: String },

    /// A required program is not installed.
    #[error(
        "{program} was not found: install FFmpeg (Debian/Ubuntu: `apt-get install ffmpeg`, \
         macOS: `brew install ffmpeg`) or set VIDSNAP_MEDIA__{env} to its path"
    )]
    ToolMissing { program: String, env: &'static str },

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
