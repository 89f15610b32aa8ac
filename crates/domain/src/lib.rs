//! Vidsnap's vocabulary: the types every other crate speaks in.
//!
//! # Layout
//! - [`error_code`]: the stable, kebab-case codes every failure is reported with (CLI, API, jobs).
//! - [`frames`]: what a frame-extraction request is made of: interval, mode, image format, quality,
//!   and the rule that turns a duration into target times.
//! - [`container`]: the video containers Vidsnap accepts, by extension and by content.
//! - [`limits`]: the configurable bounds a video must fit (size, duration, dimensions).
//!
//! Nothing here performs I/O; parsing user input into these types is where bad input is refused.

pub mod container;
pub mod error_code;
pub mod frames;
pub mod limits;

pub use container::Container;
pub use error_code::ErrorCode;
pub use frames::{FrameInterval, FrameMode, ImageFormat, Quality, target_times};
pub use limits::Limits;
