//! Every operation a job step can run, behind one entry point: [`MediaEngine::run`].
//!
//! Each operation is one file here (how it runs) beside its file in `vidsnap-domain`'s `ops`
//! (its options and how they are checked). An operation reads its inputs, writes what it makes
//! into the step's work directory and lists it as [`Produced`] files; storing them, and
//! deciding from [`MediaError::is_retryable`] whether to try again, is the caller's job.
//!
//! # Adding an operation
//! A variant of `vidsnap_domain::Operation` (with its options), a file here with its `run`, and
//! its arm in [`MediaEngine::run`]; the compiler points at the `match` until it is there.

mod av;
mod concat;
mod frames;
mod merge_call;
mod mux;
mod package;
mod probe;
mod qc;
mod scenes;
mod smart_thumbnail;
mod split;
mod storyboard;
mod thumbnail;
mod trim;

use std::path::{Path, PathBuf};

use vidsnap_domain::{ErrorCode, Operation};

use crate::{MediaEngine, MediaError, Progress};

/// The content type of the JSON files operations write.
const JSON: &str = "application/json";

/// What to do when ffmpeg cannot be started.
const INSTALL_FFMPEG_BINARY: &str = "install FFmpeg (Debian/Ubuntu: `apt-get install ffmpeg`, \
     macOS: `brew install ffmpeg`); ffmpeg is taken from beside VIDSNAP_MEDIA__FFPROBE \
     (`--ffprobe`) when that is a path, else from PATH";

/// One input file of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpInput {
    /// A local file; only read.
    pub path: PathBuf,
    /// The name the video was uploaded with: the extension rule reads it and outputs are
    /// named after it (a local copy may be called anything).
    pub file_name: String,
}

/// A file an operation made, to be stored as an artefact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Produced {
    /// What later steps and clients call it: `zip`, `thumbnail`, `manifest`, `probe`,
    /// `frames/frame-000001_00-00-10.000.jpg`.
    pub name: String,
    /// Where it is, inside the work directory.
    pub path: PathBuf,
    /// Its blob name under the step's prefix. Derived from the input's `file_name` for the zip,
    /// so it is for the store, never for a local path.
    pub file_name: String,
    pub content_type: String,
}

impl Produced {
    /// Its size and hex SHA-256, read in blocks (an artefact may be gigabytes): what the worker
    /// and `vidsnap run` record of each artefact.
    pub async fn digest(&self) -> std::io::Result<(u64, String)> {
        use sha2::{Digest, Sha256};
        use tokio::io::AsyncReadExt;

        let mut file = tokio::fs::File::open(&self.path).await?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0; 256 * 1024];
        let mut bytes = 0u64;
        loop {
            let n = file.read(&mut buffer).await?;
            if n == 0 {
                return Ok((bytes, hex::encode(hasher.finalize())));
            }
            bytes += n as u64;
            hasher.update(&buffer[..n]);
        }
    }
}

/// What an operation made.
#[derive(Debug, Clone, PartialEq)]
pub struct OpOutput {
    /// In the order to store them: the zip comes last, since its presence is what a reader of a
    /// video's folder waits for.
    pub produced: Vec<Produced>,
    /// Facts besides the files, e.g. `{"frames": 12, "probe": {...}}`; every operation that
    /// reads a video reports its probe summary as `probe`.
    pub result: Option<serde_json::Value>,
}

impl MediaEngine {
    /// Runs `op` on `inputs`, writing its outputs into `work` (created if missing).
    ///
    /// `work` belongs to the caller, one per run, and holds nothing of anyone else's (inputs
    /// included): the outputs have fixed names in it, and the caller removes it after storing
    /// them, also after a failure or a cancellation, which may leave partial files there.
    /// Nothing is written anywhere else.
    /// `progress` hears [`Progress::percent`] (and, for frame extraction, each frame).
    ///
    /// Bad input is refused with the [`MediaError::Rejected`] codes of validation; any error
    /// says through [`MediaError::is_retryable`] whether to try again.
    pub async fn run(
        &self,
        op: &Operation,
        inputs: &[OpInput],
        work: &Path,
        progress: &dyn Progress,
    ) -> Result<OpOutput, MediaError> {
        let info = op.info();
        if !info.takes(inputs.len()) {
            // The domain checks arity when a recipe is made: this step can never run as given.
            return Err(MediaError::rejected(
                ErrorCode::InvalidArgument,
                format!("{} takes {}, got {}", op.name(), info.arity(), inputs.len()),
            ));
        }
        tokio::fs::create_dir_all(work)
            .await
            .map_err(|e| MediaError::io("creating", work, e))?;
        match op {
            Operation::Probe(options) => {
                probe::run(self, options, &inputs[0], work, progress).await
            }
            Operation::Frames(options) => {
                frames::run(self, options, &inputs[0], work, progress).await
            }
            Operation::Thumbnail(options) => {
                thumbnail::run(self, options, &inputs[0], work, progress).await
            }
            Operation::Qc(options) => qc::run(self, options, &inputs[0], work, progress).await,
            Operation::Package(options) => {
                package::run(self, options, &inputs[0], work, progress).await
            }
            Operation::Storyboard(options) => {
                storyboard::run(self, options, &inputs[0], work, progress).await
            }
            Operation::Scenes(options) => {
                scenes::run(self, options, &inputs[0], work, progress).await
            }
            Operation::SmartThumbnail(options) => {
                smart_thumbnail::run(self, options, &inputs[0], work, progress).await
            }
            Operation::Split(options) => {
                split::run(self, options, &inputs[0], work, progress).await
            }
            Operation::Trim(options) => trim::run(self, options, &inputs[0], work, progress).await,
            Operation::Concat(options) => concat::run(self, options, inputs, work, progress).await,
            Operation::Mux(options) => mux::run(self, options, inputs, work, progress).await,
            Operation::MergeCall(options) => {
                merge_call::run(self, options, inputs, work, progress).await
            }
        }
    }
}

/// The file name without its extension, as the service named outputs before operations.
fn stem(file_name: &str) -> &str {
    file_name
        .rsplit_once('.')
        .map_or(file_name, |(stem, _)| stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_drop_only_the_last_extension() {
        assert_eq!(stem("holiday.mp4"), "holiday");
        assert_eq!(stem("a.b.mkv"), "a.b");
        assert_eq!(stem("noext"), "noext");
    }
}
