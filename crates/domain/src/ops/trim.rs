//! `trim`: a file cut to `[start, end)`.
//!
//! Audio is always decoded and cut at the sample (then re-encoded); video is cut the way the
//! caller chooses: `reencode` (frame-exact: the first frame is the one shown at `start`) or
//! `copy` (no re-encoding, keyframe-exact: the output starts at the last keyframe at or before
//! `start`, which the result reports as `start_actual`). An `end` past the duration, or a
//! `start` at or past it, fails the step with `time-out-of-range` (never retried); `start >=
//! end` is refused with the options.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{OperationInfo, Problems, fields::Reader, timestamp::Timestamp};

pub(super) const INFO: OperationInfo = OperationInfo {
    name: "trim",
    summary: "the file cut to [start, end): audio at the sample, video frame-exact (reencode) \
              or at a keyframe (copy)",
    inputs: 1,
    max_inputs: 1,
    artefacts: &["media"],
};

/// How the video stream of a trimmed file is cut.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoCut {
    /// Decoded and re-encoded (H.264): the cut is at the exact frame.
    #[default]
    Reencode,
    /// Packets copied: the cut starts at the last keyframe at or before `start`.
    Copy,
}

impl VideoCut {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reencode => "reencode",
            Self::Copy => "copy",
        }
    }
}

impl fmt::Display for VideoCut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VideoCut {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "reencode" => Ok(Self::Reencode),
            "copy" => Ok(Self::Copy),
            other => Err(format!("unknown video cut {other:?}: use reencode or copy")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrimOptions {
    /// The first instant kept (default: the start).
    #[serde(default = "zero")]
    pub start: Timestamp,
    /// The first instant dropped (default: the end of the file).
    #[serde(default)]
    pub end: Option<Timestamp>,
    #[serde(default)]
    pub video: VideoCut,
}

fn zero() -> Timestamp {
    Timestamp::ZERO
}

impl Default for TrimOptions {
    fn default() -> Self {
        Self {
            start: Timestamp::ZERO,
            end: None,
            video: VideoCut::default(),
        }
    }
}

pub(super) fn parse(object: &Map<String, Value>, path: &str) -> Result<TrimOptions, Problems> {
    let mut reader = Reader::new(object, path);
    let start = reader.timestamp("start");
    let end = reader.timestamp("end");
    let video = reader.parsed::<VideoCut>("video", None);
    // A malformed start is reported as such, not compared.
    let start_given = object.get("start").is_some_and(|value| !value.is_null());
    let first = if start_given {
        start
    } else {
        Some(Timestamp::ZERO)
    };
    if let (Some(start), Some(end)) = (first, end)
        && start >= end
    {
        reader.fail(
            "end",
            format!("must be after start ({start}): the range [start, end) is empty"),
        );
    }
    let options = TrimOptions {
        start: start.unwrap_or(Timestamp::ZERO),
        end,
        video: video.unwrap_or_default(),
    };
    reader.finish().or(options)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Operation;

    fn parse_json(value: Value) -> Result<TrimOptions, Problems> {
        parse(value.as_object().expect("object"), "o")
    }

    #[test]
    fn times_take_seconds_and_clock_times() {
        let options =
            parse_json(json!({"start": "00:00:01.5", "end": 3, "video": "copy"})).expect("valid");
        assert_eq!(options.start.seconds(), 1.5);
        assert_eq!(options.end.map(Timestamp::seconds), Some(3.0));
        assert_eq!(options.video, VideoCut::Copy);
        assert_eq!(parse_json(json!({})), Ok(TrimOptions::default()));
    }

    #[test]
    fn an_empty_range_and_bad_values_are_refused_at_their_paths() {
        let fields = parse_json(json!({"start": "00:00:05", "end": "4.5s"}))
            .expect_err("empty")
            .into_fields();
        assert!(fields["o.end"].contains("after start"), "{fields:?}");
        let fields = parse_json(json!({"end": 0}))
            .expect_err("empty")
            .into_fields();
        assert!(fields.contains_key("o.end"), "{fields:?}");
        let fields = parse_json(json!({"start": "1:2", "video": "fast", "speed": 2}))
            .expect_err("bad")
            .into_fields();
        assert_eq!(
            fields.keys().collect::<Vec<_>>(),
            ["o.speed", "o.start", "o.video"]
        );
        assert!(fields["o.start"].contains("HH:MM:SS"), "{fields:?}");
    }

    #[test]
    fn options_round_trip_through_the_operation() {
        let op = Operation::parse("trim", &json!({"start": "00:00:01", "end": 2.5}), "o")
            .expect("valid");
        assert_eq!(op.info().artefacts, ["media"]);
        let again = Operation::parse(op.name(), &op.options(), "o").expect("valid");
        assert_eq!(op, again);
    }
}
