//! `merge_call`: seed 004's merge in one ffmpeg pass. Inputs: the call centre's audio, then the
//! screen recording (video with audio). The output is an MP4 (Matroska when the recording's
//! video codec cannot go into MP4) whose video is the recording's, copied, and whose audio is
//! the call audio on `[0, call_end)` (padded with silence when shorter, cut when longer)
//! followed by the recording's own audio from `call_end` to its end, so the post-call audio
//! stays in sync with the picture. The audio takes the recording's sample rate and channels
//! (the call is resampled and up-mixed) and is encoded once, to AAC.
//!
//! `call_end` past the end of the recording fails the step with `time-out-of-range`, never
//! retried; a malformed one is refused with the options.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{OperationInfo, Problems, fields::Reader, timestamp::Timestamp};

pub(super) const INFO: OperationInfo = OperationInfo {
    name: "merge_call",
    summary: "call audio then a recording's own audio from `call_end`, under the recording's \
              video (copied), in one pass: inputs call audio, recording",
    inputs: 2,
    max_inputs: 2,
    artefacts: &["video"],
};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeCallOptions {
    /// Where, in the recording, the call ended and its own audio takes over.
    pub call_end: Timestamp,
}

pub(super) fn parse(object: &Map<String, Value>, path: &str) -> Result<MergeCallOptions, Problems> {
    let mut reader = Reader::new(object, path);
    let call_end = reader.required_timestamp("call_end");
    let problems = reader.finish();
    match call_end {
        Some(call_end) if problems.is_empty() => Ok(MergeCallOptions { call_end }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Operation;

    fn parse_json(value: Value) -> Result<MergeCallOptions, Problems> {
        parse(value.as_object().expect("object"), "o")
    }

    #[test]
    fn call_end_is_required_and_read_as_a_time() {
        assert_eq!(
            parse_json(json!({"call_end": "00:00:14"})).map(|o| o.call_end.seconds()),
            Ok(14.0)
        );
        assert_eq!(
            parse_json(json!({"call_end": 12.25})).map(|o| o.call_end.seconds()),
            Ok(12.25)
        );
        for bad in [
            json!({}),
            json!({"call_end": null}),
            json!({"call_end": "12:00"}),
        ] {
            let fields = parse_json(bad.clone()).expect_err("refused").into_fields();
            assert_eq!(fields.keys().collect::<Vec<_>>(), ["o.call_end"], "{bad}");
            assert!(fields["o.call_end"].contains("HH:MM:SS"), "{fields:?}");
        }
        let fields = parse_json(json!({"call_end": 1, "at": 2}))
            .expect_err("refused")
            .into_fields();
        assert!(fields["o.at"].contains("use call_end"), "{fields:?}");
    }

    #[test]
    fn options_round_trip_through_the_operation() {
        let op =
            Operation::parse("merge_call", &json!({"call_end": "00:01:02.5"}), "o").expect("valid");
        assert_eq!(op.options(), json!({"call_end": 62.5}));
        let again = Operation::parse(op.name(), &op.options(), "o").expect("valid");
        assert_eq!(op, again);
        assert_eq!(op.info().inputs, 2);
    }
}
