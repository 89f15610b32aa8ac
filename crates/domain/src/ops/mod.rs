//! The operations a recipe step can run, and their options as a recipe writes them.
//!
//! Each operation is one file here (what its options are and how they are checked) and one file in
//! `vidsnap-media`'s `ops` (how it runs). Options are parsed by hand from the JSON object rather
//! than through serde so that every problem is reported at its own JSON path
//! (`steps[1].options.every`), all of them at once.
//!
//! # Adding an operation
//! A file here with its options type and `parse`, a variant of [`Operation`], and a file in
//! `vidsnap-media/src/ops/`.

mod concat;
mod fields;
mod frames;
mod merge_call;
mod mux;
mod package;
mod probe;
mod qc;
mod scenes;
mod smart_thumbnail;
mod split;
mod storyboard;
mod thumbnail;
mod timestamp;
mod trim;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use concat::{ConcatOptions, ConcatStreams, MAX_CONCAT_INPUTS};
pub use fields::Problems;
pub use frames::FramesOptions;
pub use merge_call::MergeCallOptions;
pub use mux::{MuxOptions, MuxPolicy};
pub use package::{
    H264Profile, MAX_RUNGS, PackageOptions, Preset, Rung, SEGMENT_SECONDS, SHORT_SIDES, VIDEO_KBPS,
    default_ladder,
};
pub use probe::ProbeOptions;
pub use qc::{MIB, QcCheck, QcOptions};
pub use scenes::{MAX_SCENES, ScenesOptions};
pub use smart_thumbnail::{MAX_CANDIDATES, SmartThumbnailOptions};
pub use split::SplitOptions;
pub use storyboard::{MAX_SPRITE_SIDE, MAX_SPRITES, MAX_TILES_PER_SPRITE, StoryboardOptions};
pub use thumbnail::ThumbnailOptions;
pub use timestamp::Timestamp;
pub use trim::{TrimOptions, VideoCut};

/// An operation with its checked options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "options", rename_all = "snake_case")]
pub enum Operation {
    /// Reads the container with ffprobe and validates it: `probe.json`.
    Probe(ProbeOptions),
    /// A frame every N seconds, zipped, with a manifest and a thumbnail (seed 000's job).
    Frames(FramesOptions),
    /// One frame at a given time, clamped to the duration.
    Thumbnail(ThumbnailOptions),
    /// A quality-control report from one decoding pass, with seed 002's rating: `qc.json`.
    Qc(QcOptions),
    /// HLS and DASH from one encode: a ladder of H.264 renditions and AAC audio in CMAF
    /// segments, `master.m3u8` and `manifest.mpd`.
    Package(PackageOptions),
    /// Tiles every N seconds on sprite sheets, with a WebVTT map for scrubbing previews.
    Storyboard(StoryboardOptions),
    /// The frames where a new shot starts, with their scores, in the frames manifest format.
    Scenes(ScenesOptions),
    /// The best poster frame among evenly spaced candidates, with a score per candidate.
    SmartThumbnail(SmartThumbnailOptions),
    /// The video stream and the audio stream as two files, stream-copied.
    Split(SplitOptions),
    /// The file cut to `[start, end)`.
    Trim(TrimOptions),
    /// Files joined in order, normalised first.
    Concat(ConcatOptions),
    /// One input's video (copied) with another's audio.
    Mux(MuxOptions),
    /// Seed 004's merge of a call's audio into a screen recording, in one pass.
    MergeCall(MergeCallOptions),
}

/// What an operation is called in a recipe, and what it needs and makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationInfo {
    pub name: &'static str,
    pub summary: &'static str,
    /// How many inputs the step takes at least (each a video or an artefact).
    pub inputs: usize,
    /// How many inputs it takes at most: `inputs` unless the operation joins a list.
    pub max_inputs: usize,
    /// The artefacts every run makes, by name: what later steps may take as inputs.
    pub artefacts: &'static [&'static str],
}

impl OperationInfo {
    /// Whether a step of this operation may have `count` inputs.
    pub fn takes(&self, count: usize) -> bool {
        (self.inputs..=self.max_inputs).contains(&count)
    }

    /// `"1 input"`, `"2 inputs"`, `"2 to 16 inputs"`: for messages.
    pub fn arity(&self) -> String {
        match (self.inputs, self.max_inputs) {
            (1, 1) => "1 input".to_owned(),
            (low, high) if low == high => format!("{low} inputs"),
            (low, high) => format!("{low} to {high} inputs"),
        }
    }
}

impl Operation {
    /// Every operation, for `GET /v1/recipes` and the docs.
    pub const ALL: [OperationInfo; 13] = [
        probe::INFO,
        frames::INFO,
        thumbnail::INFO,
        qc::INFO,
        package::INFO,
        storyboard::INFO,
        scenes::INFO,
        smart_thumbnail::INFO,
        split::INFO,
        trim::INFO,
        concat::INFO,
        mux::INFO,
        merge_call::INFO,
    ];

    pub fn info(&self) -> &'static OperationInfo {
        match self {
            Self::Probe(_) => &Self::ALL[0],
            Self::Frames(_) => &Self::ALL[1],
            Self::Thumbnail(_) => &Self::ALL[2],
            Self::Qc(_) => &Self::ALL[3],
            Self::Package(_) => &Self::ALL[4],
            Self::Storyboard(_) => &Self::ALL[5],
            Self::Scenes(_) => &Self::ALL[6],
            Self::SmartThumbnail(_) => &Self::ALL[7],
            Self::Split(_) => &Self::ALL[8],
            Self::Trim(_) => &Self::ALL[9],
            Self::Concat(_) => &Self::ALL[10],
            Self::Mux(_) => &Self::ALL[11],
            Self::MergeCall(_) => &Self::ALL[12],
        }
    }

    pub fn name(&self) -> &'static str {
        self.info().name
    }

    /// The operation `op` with `options` (a JSON object, or null for the defaults). Problems are
    /// reported under `path` (`steps[0].options`).
    pub fn parse(op: &str, options: &Value, path: &str) -> Result<Self, Problems> {
        let empty = Map::new();
        let object = match options {
            Value::Null => &empty,
            Value::Object(object) => object,
            _ => return Err(Problems::one(path, "must be an object")),
        };
        match op {
            "probe" => probe::parse(object, path).map(Self::Probe),
            "frames" => frames::parse(object, path).map(Self::Frames),
            "thumbnail" => thumbnail::parse(object, path).map(Self::Thumbnail),
            "qc" => qc::parse(object, path).map(Self::Qc),
            "package" => package::parse(object, path).map(Self::Package),
            "storyboard" => storyboard::parse(object, path).map(Self::Storyboard),
            "scenes" => scenes::parse(object, path).map(Self::Scenes),
            "smart_thumbnail" => smart_thumbnail::parse(object, path).map(Self::SmartThumbnail),
            "split" => split::parse(object, path).map(Self::Split),
            "trim" => trim::parse(object, path).map(Self::Trim),
            "concat" => concat::parse(object, path).map(Self::Concat),
            "mux" => mux::parse(object, path).map(Self::Mux),
            "merge_call" => merge_call::parse(object, path).map(Self::MergeCall),
            other => {
                let known: Vec<&str> = Self::ALL.iter().map(|info| info.name).collect();
                Err(Problems::one(
                    path.rsplit_once('.')
                        .map_or("op", |(head, _)| head)
                        .to_owned()
                        + ".op",
                    format!(
                        "unknown operation {other:?}: use one of {}",
                        known.join(", ")
                    ),
                ))
            }
        }
    }

    /// The options as JSON (what `parse` reads back).
    pub fn options(&self) -> Value {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut tagged)) => tagged.remove("options").unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn options_round_trip_through_parse() {
        let op = Operation::parse(
            "frames",
            &json!({"every": "2.5s", "mode": "keyframe", "format": "png"}),
            "o",
        )
        .expect("valid");
        let again = Operation::parse(op.name(), &op.options(), "o").expect("valid");
        assert_eq!(op, again);
    }

    #[test]
    fn every_operation_is_listed_once_under_its_name() {
        for (i, info) in Operation::ALL.iter().enumerate() {
            assert!(
                info.inputs >= 1 && info.inputs <= info.max_inputs,
                "{}",
                info.name
            );
            assert!(
                Operation::ALL[..i]
                    .iter()
                    .all(|other| other.name != info.name),
                "{} twice",
                info.name
            );
            // Every operation but merge_call (call_end is required) parses without options.
            if let Ok(op) = Operation::parse(info.name, &Value::Null, "o") {
                assert_eq!(op.info(), info);
            }
        }
        let info = Operation::ALL
            .iter()
            .find(|i| i.name == "concat")
            .expect("concat");
        assert!(info.takes(2) && info.takes(MAX_CONCAT_INPUTS) && !info.takes(1));
        assert_eq!(info.arity(), "2 to 16 inputs");
    }

    #[test]
    fn unknown_operations_are_named() {
        let problems = Operation::parse("transmogrify", &Value::Null, "steps[2].options")
            .expect_err("unknown");
        let fields = problems.into_fields();
        assert!(fields["steps[2].op"].contains("transmogrify"), "{fields:?}");
    }

    #[test]
    fn every_problem_is_reported_at_its_path() {
        let problems = Operation::parse(
            "frames",
            &json!({"every": "0s", "format": "gif", "colour": true}),
            "steps[0].options",
        )
        .expect_err("bad");
        let fields = problems.into_fields();
        assert_eq!(
            fields.keys().collect::<Vec<_>>(),
            [
                "steps[0].options.colour",
                "steps[0].options.every",
                "steps[0].options.format"
            ]
        );
    }
}
