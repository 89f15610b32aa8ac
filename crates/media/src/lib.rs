//! The media engine: everything Vidsnap does to a video file, and the only place a process is
//! spawned.
//!
//! # Layout
//! - [`ops`]: [`MediaEngine::run`], the one entry point for a job step's operation, with one file
//!   per operation (`probe`, `frames`, `thumbnail`, `qc`, `package`, `storyboard`, `scenes`,
//!   `smart_thumbnail`, and the audio/video ones: `split`, `trim`, `concat`, `mux`,
//!   `merge_call`): inputs in, files in the step's work directory and a JSON result out.
//! - [`engine`]: configuration, [`MediaEngine::probe`] and [`MediaEngine::inspect`] (probe +
//!   validation verdict).
//! - [`frames`]: the frames engine (targets, the extractor child, zip, manifest, thumbnail),
//!   shared by the `frames` operation and [`MediaEngine::extract_frames`] (the CLI's).
//! - `extractor`: the parent's side of the extractor child: spec in, frames out, failures blamed
//!   on the input or the machine.
//! - [`extract`]: the in-process FFmpeg-library decoder, which only ever runs inside a child
//!   process (`vidsnap internal-extract`) so a hostile file can crash or hang one job, not us.
//! - [`probe`]: ffprobe JSON into [`probe::Probe`], with the duration fallbacks.
//! - [`validate`]: the acceptance rules shared by CLI, API and workers.
//! - [`runner`]: the process runner: argv only, kill on drop, timeouts, a concurrency bound,
//!   stderr tails.
//! - `error`: [`MediaError`], its stable codes and [`MediaError::is_retryable`], the one rule
//!   for retrying (machine trouble) or giving up (bad input).
//! - `archive`, `workdir`: atomic publication of outputs and per-run scratch directories.

mod archive;
pub mod engine;
mod error;
pub mod extract;
mod extractor;
pub mod frames;
pub mod ops;
pub mod probe;
pub mod runner;
pub mod validate;
mod workdir;

pub use engine::{ExtractorCommand, Inspection, MediaConfig, MediaEngine};
pub use error::MediaError;
pub use frames::{FramesOutput, FramesRequest, Manifest, Progress, Silent};
pub use ops::{OpInput, OpOutput, Produced};
pub use workdir::WorkDir;
