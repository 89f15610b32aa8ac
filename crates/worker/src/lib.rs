//! The worker: claims jobs and turns uploaded videos into frames.
//!
//! # Layout
//! - [`pool`]: [`Worker`], its configuration and the claim loops (concurrency, heartbeats,
//!   graceful shutdown).
//! - `pipeline`: processing one claimed job and recording its outcome.
//! - [`backoff`]: exponential backoff with jitter.
//! - [`scheduler`]: housekeeping loops (re-enqueueing lost jobs, expiring idle upload sessions,
//!   removing videos never uploaded), the `scheduler` role.

pub mod backoff;
mod pipeline;
pub mod pool;
pub mod scheduler;

pub use pool::{Worker, WorkerConfig};
pub use scheduler::{Removed, Scheduler, SchedulerConfig};
