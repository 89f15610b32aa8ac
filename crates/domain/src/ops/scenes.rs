//! `scenes`: the frames where a new shot starts, with the score that made each one a cut, in
//! the frames manifest format (zipped, and each frame and the manifest as artefacts).
//!
//! A frame's score is how different it is from the frame before, on ffmpeg's scale for
//! `select='gt(scene,T)'` (0: the same picture, 1: nothing in common). Cuts closer than
//! `min_gap` seconds are one cut, the stronger; at most `max_scenes` are kept, the strongest.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{OperationInfo, Problems, fields::Reader};
use crate::{ImageFormat, Quality};

pub(super) const INFO: OperationInfo = OperationInfo {
    name: "scenes",
    summary: "the frames where a new shot starts (score above `threshold`, at least `min_gap` s \
              apart), with their scores and times, zipped with a manifest",
    inputs: 1,
    max_inputs: 1,
    // With `images`, also `frames/{entry}` per cut; not for other steps to read.
    artefacts: &["zip", "manifest"],
};

/// The most cuts one run may keep (`max_scenes`).
pub const MAX_SCENES: u32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScenesOptions {
    /// A frame whose score is above this starts a new scene (0-1; ffmpeg users write 0.3-0.4).
    pub threshold: f64,
    /// Seconds: a cut this close after another is the same cut (flashes, dissolves); the
    /// stronger of the two is kept.
    pub min_gap: f64,
    /// Keep at most this many cuts, the strongest; the manifest says how many were dropped.
    pub max_scenes: u32,
    pub format: ImageFormat,
    pub quality: Quality,
    /// Frames wider than this are scaled down (aspect kept); `None` keeps the stored size.
    pub max_width: Option<u32>,
    /// Also store each frame as an artefact of its own (`frames/{entry}`), as `frames` does.
    pub images: bool,
}

impl Default for ScenesOptions {
    fn default() -> Self {
        Self {
            threshold: 0.3,
            min_gap: 1.0,
            max_scenes: 100,
            format: ImageFormat::Jpg,
            quality: Quality::DEFAULT,
            max_width: None,
            images: true,
        }
    }
}

pub(super) fn parse(object: &Map<String, Value>, path: &str) -> Result<ScenesOptions, Problems> {
    let mut reader = Reader::new(object, path);
    let d = ScenesOptions::default();
    let threshold = match reader.number("threshold", 0.0..=1.0) {
        Some(0.0) => {
            reader.fail("threshold", "must be above 0: every frame would be a cut");
            None
        }
        other => other,
    };
    let min_gap = reader.seconds("min_gap");
    let max_scenes = reader
        .whole("max_scenes", 1..=u64::from(MAX_SCENES))
        .map(|n| n as u32);
    let format = reader.parsed::<ImageFormat>("format", None);
    let quality = reader
        .whole("quality", 1..=100)
        .and_then(|q| Quality::new(q as u8).ok());
    let max_width = reader.whole("max_width", 16..=16384).map(|w| w as u32);
    let images = reader.boolean("images");
    let options = ScenesOptions {
        threshold: threshold.unwrap_or(d.threshold),
        min_gap: min_gap.unwrap_or(d.min_gap),
        max_scenes: max_scenes.unwrap_or(d.max_scenes),
        format: format.unwrap_or(d.format),
        quality: quality.unwrap_or(d.quality),
        max_width,
        images: images.unwrap_or(d.images),
    };
    reader.finish().or(options)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Operation;

    fn parse_json(value: Value) -> Result<ScenesOptions, Problems> {
        parse(value.as_object().expect("object"), "o")
    }

    #[test]
    fn defaults_are_ffmpegs_usual_threshold_and_a_second_apart() {
        let options = parse_json(json!({})).expect("valid");
        assert_eq!(options, ScenesOptions::default());
        assert_eq!((options.threshold, options.min_gap), (0.3, 1.0));
    }

    #[test]
    fn thresholds_gaps_and_limits_are_checked_at_their_paths() {
        let options = parse_json(json!({"threshold": 0.45, "min_gap": "500ms", "max_scenes": 12}))
            .expect("valid");
        assert_eq!(
            (options.threshold, options.min_gap, options.max_scenes),
            (0.45, 0.5, 12)
        );
        let fields = parse_json(json!({
            "threshold": 0, "min_gap": -1, "max_scenes": 1001, "max_width": 8
        }))
        .expect_err("bad")
        .into_fields();
        assert_eq!(
            fields.keys().collect::<Vec<_>>(),
            ["o.max_scenes", "o.max_width", "o.min_gap", "o.threshold"]
        );
        assert!(fields["o.max_scenes"].contains("1000"), "{fields:?}");
        assert!(parse_json(json!({"threshold": 1.5})).is_err());
    }

    #[test]
    fn options_round_trip_through_the_operation() {
        let op = Operation::parse("scenes", &json!({"threshold": 0.2, "images": false}), "o")
            .expect("valid");
        assert_eq!(op.info().artefacts, ["zip", "manifest"]);
        let again = Operation::parse(op.name(), &op.options(), "o").expect("valid");
        assert_eq!(op, again);
    }
}
