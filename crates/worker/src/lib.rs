//! The worker: claims tasks and runs the steps of jobs.
//!
//! # Layout
//! - [`claim`]: [`Worker`], its configuration and the claim loops (concurrency, a task per
//!   claimed step as its panic boundary, queue heartbeats, graceful shutdown).
//! - [`step`]: one claimed task: the delivery checked against its step, inputs fetched, the
//!   operation run through a [`StepRunner`] (the media engine), artefacts stored with their
//!   digests, the outcome recorded (retry or abort, decided where the failure happened), and a
//!   step heartbeat that carries progress and notices a cancel.
//! - [`backoff`]: exponential backoff with jitter.
//! - [`scheduler`]: housekeeping loops (re-enqueueing lost tasks, expiring idle upload sessions,
//!   removing videos never uploaded), the `scheduler` role.

pub mod backoff;
pub mod claim;
pub mod scheduler;
pub mod step;
pub mod watch;

pub use claim::{Worker, WorkerConfig};
pub use scheduler::{Removed, Scheduler, SchedulerConfig};
pub use step::StepRunner;
pub use watch::FolderWatcher;
