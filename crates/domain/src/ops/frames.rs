//! `frames`: a frame every N seconds (seed 000), packed into a zip with a manifest; the first
//! frame is also kept as the thumbnail.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{OperationInfo, Problems, fields::Reader};
use crate::{FrameInterval, FrameMode, ImageFormat, Quality};

pub(super) const INFO: OperationInfo = OperationInfo {
    name: "frames",
    summary: "a frame every `every` seconds (exact or keyframe), zipped with a manifest; the first \
              frame is also the thumbnail",
    inputs: 1,
    max_inputs: 1,
    // With `images`, also `manifest` and `frames/{entry}` per frame; not for other steps to read.
    artefacts: &["zip", "thumbnail"],
};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FramesOptions {
    pub every: FrameInterval,
    pub mode: FrameMode,
    pub format: ImageFormat,
    pub quality: Quality,
    /// Frames wider than this are scaled down (aspect kept); `None` keeps the stored size.
    pub max_width: Option<u32>,
    /// Also store the manifest and each frame as artefacts of their own, so a client can show
    /// a frame without unzipping. `/v1/videos` turns it off: its folder holds only the zip and
    /// the thumbnail beside the video, as the seeds did.
    pub images: bool,
}

impl Default for FramesOptions {
    fn default() -> Self {
        Self {
            every: FrameInterval::default(),
            mode: FrameMode::Exact,
            format: ImageFormat::Jpg,
            quality: Quality::DEFAULT,
            max_width: None,
            images: true,
        }
    }
}

pub(super) fn parse(object: &Map<String, Value>, path: &str) -> Result<FramesOptions, Problems> {
    let mut reader = Reader::new(object, path);
    let defaults = FramesOptions::default();
    let every = reader.parsed::<FrameInterval>(
        "every",
        Some(|n| FrameInterval::from_seconds(n).map_err(|e| e.to_string())),
    );
    let mode = reader.parsed::<FrameMode>("mode", None);
    let format = reader.parsed::<ImageFormat>("format", None);
    let quality = reader
        .whole("quality", 1..=100)
        .and_then(|q| Quality::new(q as u8).ok());
    let max_width = reader.whole("max_width", 16..=16384).map(|w| w as u32);
    let images = reader.boolean("images");
    let options = FramesOptions {
        every: every.unwrap_or(defaults.every),
        mode: mode.unwrap_or(defaults.mode),
        format: format.unwrap_or(defaults.format),
        quality: quality.unwrap_or(defaults.quality),
        max_width,
        images: images.unwrap_or(defaults.images),
    };
    reader.finish().or(options)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse_json(value: Value) -> Result<FramesOptions, Problems> {
        parse(value.as_object().expect("object"), "o")
    }

    #[test]
    fn defaults_are_the_seeds() {
        let options = parse_json(json!({})).expect("valid");
        assert_eq!(options, FramesOptions::default());
        assert_eq!(options.every.seconds(), 10.0);
    }

    #[test]
    fn every_takes_numbers_and_durations() {
        assert_eq!(
            parse_json(json!({"every": 2})).map(|o| o.every.seconds()),
            Ok(2.0)
        );
        assert_eq!(
            parse_json(json!({"every": "500ms"})).map(|o| o.every.seconds()),
            Ok(0.5)
        );
        assert!(parse_json(json!({"every": -1})).is_err());
        assert!(parse_json(json!({"every": true})).is_err());
    }
}
