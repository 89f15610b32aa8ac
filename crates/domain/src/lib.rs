//! Vidsnap's vocabulary: the types every other crate speaks in.
//!
//! # Layout
//! - [`error_code`]: the stable, kebab-case codes every failure is reported with (CLI, API, jobs).
//! - [`frames`]: what a frame-extraction request is made of: interval, mode, image format, quality,
//!   and the rule that turns a duration into target times.
//! - [`container`]: the video containers Vidsnap accepts, by extension and by content.
//! - [`limits`]: the configurable bounds a video must fit (size, duration, dimensions).
//! - [`ids`]: typed UUID identifiers.
//! - [`recipe`]: recipes as written and checked (names, inputs, cycles, options, parameters),
//!   and the built-in ones.
//! - [`ops`]: the operations a step can run, one file each, with their options.
//! - [`job`]: jobs made of steps: the pure rules for readiness, status, retries, cancels and
//!   re-runs that every repository applies.
//! - [`video`]: the video status machine (the one table of allowed transitions), options, outputs.
//! - [`sorting`]: seed 002's bucket workflow: the metadata sidecar and its checks, the outcomes
//!   (`processed`, `failed`, `unable_to_process`) and the result stored for each decision.
//! - [`events`]: the typed, versioned bodies of `video.*`, `job.*` and `qc.*` notifications.
//! - [`account`]: users, API keys, webhooks, notifications.
//! - [`upload`]: resumable upload sessions (any transport, any API process), checksums, and
//!   what staging a piece of one returns.
//! - [`ports`]: the traits backends implement: `Repository`, `JobQueue`, `BlobStore`,
//!   `UploadListener`, `UploadStaging`.
//!
//! Nothing here performs I/O; parsing user input into these types is where bad input is refused.

pub mod account;
pub mod container;
pub mod error_code;
pub mod events;
pub mod frames;
pub mod ids;
pub mod job;
pub mod limits;
pub mod ops;
pub mod ports;
pub mod recipe;
pub mod sorting;
pub mod upload;
pub mod video;

pub use account::{
    ApiKey, Channel, DeliveryAttempt, DeliveryStatus, EventType, Notification, User, Webhook,
};
pub use container::Container;
pub use error_code::ErrorCode;
pub use events::{JobEvent, QcEvent, VideoEvent};
pub use frames::{
    FrameInterval, FrameMode, ImageFormat, Quality, TargetTimes, frame_count, target_times,
};
pub use ids::{
    ApiKeyId, JobId, NotificationId, QcResultId, TaskId, UploadId, UserId, VideoId, WebhookId,
};
pub use job::{
    Applied, Artefact, Change, ChangeError, Job, JobInput, JobStatus, Step, StepEvent, StepOutcome,
    StepStatus, Task, Verdict,
};
pub use limits::Limits;
pub use ops::{Operation, Problems};
pub use ports::{
    BlobStore, DirectMultipart, JobQueue, JobUpdate, Jobs, Lease, Move, MultipartStarted, NewTask,
    Page, PortError, PortResult, PresignedRequest, QueueStats, Repository, RequestError,
    RequestListener, RequestOutcome, SortItem, Sorting, TaskMessage, Transition, UploadListener,
    UploadOutcome, UploadStaging, UploadedPart,
};
pub use recipe::{InputRef, Recipe, RecipeDoc, StepSpec};
pub use sorting::{MediaFacts, Mismatch, QcCounts, QcOutcome, QcResult, Sidecar};
pub use upload::{AppendError, Appended, ByteStream, Checksum, ChecksumAlgorithm, Upload};
pub use video::{Failure, Outputs, StatusChange, Video, VideoOptions, VideoStatus};
