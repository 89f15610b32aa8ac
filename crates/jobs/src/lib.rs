//! The job service: every use case that starts, advances or stops a job, written once over the
//! ports, so the HTTP API, the upload transports, the workers, the scheduler and the command
//! line do not each orchestrate repository + queue themselves.
//!
//! # Layout
//! - [`service`]: [`JobService`]: create a job from a recipe (by name or as a document) over
//!   input videos; make the job `/v1/videos` runs for a video; record an upload and start what
//!   waited for it; apply a change and enqueue the tasks it makes ready.
//! - [`watch`]: watched folders: an object that lands in one becomes a video of its owner,
//!   processed by its recipe, outputs beside it.
//! - [`intake`]: job requests from a queue: a message of a known shape (seed 004's
//!   `{"recordingID", "callEndingTimestamp"}`) names a recipe's input files and parameters.
//! - [`error`]: [`JobError`]: a request that cannot become a job (with the JSON path of each
//!   problem) or a port failure.
//!
//! The rules themselves (which steps are ready, what a job's status is) are pure, in
//! `vidsnap_domain::job`; the repository applies them atomically.

pub mod error;
pub mod intake;
pub mod service;
pub mod watch;

pub use error::JobError;
pub use intake::{Intake, Intakes, check_intakes};
pub use service::{JobService, Observer, RecipeSource, Silent, Uploaded};
pub use watch::{Sort, Watch, as_folder, check_watches};
