//! `smart_thumbnail`: the best poster frame among `candidates` evenly spaced ones: not black,
//! not a flat card, not blurred, not in the middle of a fade or a cut. A manifest lists every
//! candidate with its measures and score, and says why the one chosen was.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{OperationInfo, Problems, fields::Reader};
use crate::{ImageFormat, Quality};

pub(super) const INFO: OperationInfo = OperationInfo {
    name: "smart_thumbnail",
    summary: "the best poster frame among `candidates` evenly spaced ones (not black, not \
              blurred, not a fade), with a manifest scoring each candidate",
    inputs: 1,
    max_inputs: 1,
    artefacts: &["thumbnail", "manifest"],
};

/// The most candidates one run may measure.
pub const MAX_CANDIDATES: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmartThumbnailOptions {
    /// How many frames are measured, at the middles of as many equal parts of the video (never
    /// the very first or last frame, where black and fades are).
    pub candidates: u32,
    /// A frame whose mean brightness (0-1) is below this is black and never chosen while
    /// another is not.
    pub black_threshold: f64,
    pub format: ImageFormat,
    pub quality: Quality,
    pub max_width: Option<u32>,
}

impl Default for SmartThumbnailOptions {
    fn default() -> Self {
        Self {
            candidates: 10,
            black_threshold: 0.1,
            format: ImageFormat::Jpg,
            quality: Quality::DEFAULT,
            max_width: None,
        }
    }
}

pub(super) fn parse(
    object: &Map<String, Value>,
    path: &str,
) -> Result<SmartThumbnailOptions, Problems> {
    let mut reader = Reader::new(object, path);
    let d = SmartThumbnailOptions::default();
    let candidates = reader
        .whole("candidates", 1..=u64::from(MAX_CANDIDATES))
        .map(|n| n as u32);
    let black_threshold = reader.number("black_threshold", 0.0..=1.0);
    let format = reader.parsed::<ImageFormat>("format", None);
    let quality = reader
        .whole("quality", 1..=100)
        .and_then(|q| Quality::new(q as u8).ok());
    let max_width = reader.whole("max_width", 16..=16384).map(|w| w as u32);
    let options = SmartThumbnailOptions {
        candidates: candidates.unwrap_or(d.candidates),
        black_threshold: black_threshold.unwrap_or(d.black_threshold),
        format: format.unwrap_or(d.format),
        quality: quality.unwrap_or(d.quality),
        max_width,
    };
    reader.finish().or(options)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Operation;

    fn parse_json(value: Value) -> Result<SmartThumbnailOptions, Problems> {
        parse(value.as_object().expect("object"), "o")
    }

    #[test]
    fn defaults_measure_ten_candidates() {
        let options = parse_json(json!({})).expect("valid");
        assert_eq!(options, SmartThumbnailOptions::default());
        assert_eq!(options.candidates, 10);
    }

    #[test]
    fn candidates_are_bounded() {
        let fields = parse_json(json!({"candidates": 101, "black_threshold": 2}))
            .expect_err("bad")
            .into_fields();
        assert_eq!(
            fields.keys().collect::<Vec<_>>(),
            ["o.black_threshold", "o.candidates"]
        );
        assert!(fields["o.candidates"].contains("100"), "{fields:?}");
        assert!(parse_json(json!({"candidates": 0})).is_err());
        assert_eq!(
            parse_json(json!({"candidates": 3, "max_width": 640})).map(|o| o.candidates),
            Ok(3)
        );
    }

    #[test]
    fn options_round_trip_through_the_operation() {
        let op =
            Operation::parse("smart_thumbnail", &json!({"candidates": 4}), "o").expect("valid");
        assert_eq!(op.info().artefacts, ["thumbnail", "manifest"]);
        let again = Operation::parse(op.name(), &op.options(), "o").expect("valid");
        assert_eq!(op, again);
    }
}
