//! `mux`: one file's video and another's audio in one container. The video is copied (same
//! packets); the audio is copied when it is AAC and needs no padding, else encoded to AAC.
//! What happens when the two lengths differ is the caller's choice, stated in the options:
//! `pad` keeps the whole video (audio padded with silence, or cut, to the video's length);
//! `shortest` ends the file with the shorter of the two.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{OperationInfo, Problems, fields::Reader};

pub(super) const INFO: OperationInfo = OperationInfo {
    name: "mux",
    summary: "the first input's video (copied) with the second input's audio (AAC, encoded only \
              if needed), padded to the video or cut to the shorter",
    inputs: 2,
    max_inputs: 2,
    artefacts: &["video"],
};

/// What `mux` does when the audio and the video differ in length.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MuxPolicy {
    /// The output lasts as long as the video: shorter audio is padded with silence, longer
    /// audio is cut.
    #[default]
    Pad,
    /// The output ends with the shorter stream.
    Shortest,
}

impl fmt::Display for MuxPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pad => "pad",
            Self::Shortest => "shortest",
        })
    }
}

impl FromStr for MuxPolicy {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "pad" => Ok(Self::Pad),
            "shortest" => Ok(Self::Shortest),
            other => Err(format!("unknown policy {other:?}: use pad or shortest")),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MuxOptions {
    pub policy: MuxPolicy,
}

pub(super) fn parse(object: &Map<String, Value>, path: &str) -> Result<MuxOptions, Problems> {
    let mut reader = Reader::new(object, path);
    let policy = reader.parsed::<MuxPolicy>("policy", None);
    let options = MuxOptions {
        policy: policy.unwrap_or_default(),
    };
    reader.finish().or(options)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_policy_is_pad_or_shortest() {
        let parse_json = |v: Value| parse(v.as_object().expect("object"), "o");
        assert_eq!(parse_json(json!({})).map(|o| o.policy), Ok(MuxPolicy::Pad));
        assert_eq!(
            parse_json(json!({"policy": "shortest"})).map(|o| o.policy),
            Ok(MuxPolicy::Shortest)
        );
        let fields = parse_json(json!({"policy": "longest"}))
            .expect_err("bad")
            .into_fields();
        assert!(fields["o.policy"].contains("pad or shortest"), "{fields:?}");
    }
}
