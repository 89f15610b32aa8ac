//! `thumbnail`: the frame shown at a given time (default 1 s), clamped to the duration.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{OperationInfo, Problems, fields::Reader};
use crate::{ImageFormat, Quality};

pub(super) const INFO: OperationInfo = OperationInfo {
    name: "thumbnail",
    summary: "the frame shown at `at` seconds (default 1), clamped to the duration",
    inputs: 1,
    max_inputs: 1,
    artefacts: &["thumbnail"],
};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThumbnailOptions {
    /// Seconds from the start; past the end means the last frame.
    pub at: f64,
    pub format: ImageFormat,
    pub quality: Quality,
    pub max_width: Option<u32>,
}

impl Default for ThumbnailOptions {
    fn default() -> Self {
        Self {
            at: 1.0,
            format: ImageFormat::Jpg,
            quality: Quality::DEFAULT,
            max_width: None,
        }
    }
}

pub(super) fn parse(object: &Map<String, Value>, path: &str) -> Result<ThumbnailOptions, Problems> {
    let mut reader = Reader::new(object, path);
    let defaults = ThumbnailOptions::default();
    let at = reader.seconds("at");
    let format = reader.parsed::<ImageFormat>("format", None);
    let quality = reader
        .whole("quality", 1..=100)
        .and_then(|q| Quality::new(q as u8).ok());
    let max_width = reader.whole("max_width", 16..=16384).map(|w| w as u32);
    let options = ThumbnailOptions {
        at: at.unwrap_or(defaults.at),
        format: format.unwrap_or(defaults.format),
        quality: quality.unwrap_or(defaults.quality),
        max_width,
    };
    reader.finish().or(options)
}
