//! What a video must be before Vidsnap spends time on it: an accepted container, within bounds.

use serde::{Deserialize, Serialize};

use crate::Container;

/// Configurable acceptance rules. A `None` bound means unbounded. Defaults are generous for people
/// and tight enough that one upload cannot occupy a worker for hours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Accepted containers, checked by extension and by content.
    pub containers: Vec<Container>,
    /// Largest accepted file, in bytes.
    pub max_bytes: Option<u64>,
    /// Longest accepted video, in seconds.
    pub max_duration_seconds: Option<f64>,
    /// Widest accepted picture, in stored pixels.
    pub max_width: Option<u32>,
    /// Tallest accepted picture, in stored pixels.
    pub max_height: Option<u32>,
    /// Most frames one frames step may extract (duration / interval): one request must not be
    /// able to ask for billions.
    pub max_frames: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            containers: Container::DEFAULT_ACCEPTED.to_vec(),
            max_bytes: Some(10 * 1024 * 1024 * 1024),
            max_duration_seconds: Some(4.0 * 3600.0),
            max_width: Some(7680),
            max_height: Some(4320),
            max_frames: Some(10_000),
        }
    }
}
