//! Resumable uploads: a session that receives a video's bytes in pieces, from any transport (tus,
//! S3 multipart, AMQP chunks) and through any API process, because everything about it lives in
//! the database.
//!
//! Invariants every transport relies on:
//! - bytes are acknowledged only after they are durably staged and `uploaded_bytes` records them;
//! - one writer at a time per upload (a lease on the row), never a global lock;
//! - staged bytes beyond `uploaded_bytes` are garbage from a writer that died: the next append
//!   discards them before writing.

use std::{collections::BTreeMap, fmt, io, pin::Pin};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_core::Stream;
use serde::{Deserialize, Serialize};

use crate::{UploadId, UserId, VideoId};

/// An upload session as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upload {
    pub id: UploadId,
    pub owner: UserId,
    /// The video created with the session (`awaiting_upload` until the last byte arrives).
    pub video: VideoId,
    /// The full size, declared at creation (tus `Upload-Length`).
    pub total_bytes: u64,
    /// Bytes durably staged and acknowledged: where the next piece must start.
    pub uploaded_bytes: u64,
    /// What the client said about the file at creation (tus `Upload-Metadata`, decoded): the
    /// file name and processing options, kept to be shown back.
    pub metadata: BTreeMap<String, String>,
    /// The staging backend's own state (an S3 multipart upload id and its parts, say); opaque
    /// to everything else. `None` until the backend records something.
    pub staging: Option<serde_json::Value>,
    /// Past this the session is gone: it is pushed forward by every write, so only an idle
    /// session expires.
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Upload {
    pub fn is_complete(&self) -> bool {
        self.uploaded_bytes == self.total_bytes
    }

    /// Bytes still expected.
    pub fn remaining(&self) -> u64 {
        self.total_bytes.saturating_sub(self.uploaded_bytes)
    }
}

/// A hash a client sends with a piece of an upload (tus `Upload-Checksum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumAlgorithm {
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    pub const ALL: [ChecksumAlgorithm; 2] = [Self::Sha1, Self::Sha256];

    /// The name in tus headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(name))
    }

    /// Bytes in a digest of this algorithm.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }
}

impl fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The expected digest of one piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    pub digest: Vec<u8>,
}

/// A piece's bytes as they arrive. An `Err` item means the sender went away mid-piece.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// What an append stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    /// Bytes durably added at the upload's offset (0 for an empty piece, or an interrupted one
    /// that carried a checksum: nothing unverified is kept).
    pub bytes: u64,
    /// The backend's new state for [`Upload::staging`], when it changed.
    pub staging: Option<serde_json::Value>,
    /// The body ended early (the sender went away): `bytes` is what arrived before.
    pub interrupted: bool,
}

/// Why an append stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The piece's digest is not the one sent with it; its bytes were discarded.
    #[error("the checksum does not match the bytes received")]
    ChecksumMismatch,
    /// The piece is longer than the bytes the upload still expects; its bytes were discarded.
    #[error("more bytes than the upload's length")]
    TooLarge,
    #[error(transparent)]
    Port(#[from] crate::PortError),
}
