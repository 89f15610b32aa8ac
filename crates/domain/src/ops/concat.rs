//! `concat`: files joined end to end, in the order of the step's inputs.
//!
//! Inputs need not match: each is decoded and normalised first (audio to one sample rate, the
//! highest among the inputs, and one channel layout, stereo when any input has two channels or
//! more; video to the first input's size and frame rate, letterboxed), so a call recorded at
//! 8 kHz mono joins a 48 kHz stereo track, where seed 004's `concat -c copy` failed.
//! `streams: audio` joins the inputs' audio into a FLAC file (lossless, so a later step encodes
//! it once); `streams: video` joins pictures and sound into an MP4 (H.264, AAC), an input
//! without audio contributing silence.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{OperationInfo, Problems, fields::Reader};

/// The most files one `concat` step joins: every one is an ffmpeg input held open at once.
pub const MAX_CONCAT_INPUTS: usize = 16;

pub(super) const INFO: OperationInfo = OperationInfo {
    name: "concat",
    summary: "2 to 16 files joined in order, normalised first (sample rate, channels, codec, \
              picture size): audio as FLAC, or video as MP4",
    inputs: 2,
    max_inputs: MAX_CONCAT_INPUTS,
    artefacts: &["media"],
};

/// What a `concat` step joins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConcatStreams {
    /// The audio of each input (a video's picture is ignored): a FLAC file.
    #[default]
    Audio,
    /// Picture and sound of each input: an MP4 file.
    Video,
}

impl fmt::Display for ConcatStreams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Audio => "audio",
            Self::Video => "video",
        })
    }
}

impl FromStr for ConcatStreams {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "audio" => Ok(Self::Audio),
            "video" => Ok(Self::Video),
            other => Err(format!("unknown streams {other:?}: use audio or video")),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConcatOptions {
    pub streams: ConcatStreams,
}

pub(super) fn parse(object: &Map<String, Value>, path: &str) -> Result<ConcatOptions, Problems> {
    let mut reader = Reader::new(object, path);
    let streams = reader.parsed::<ConcatStreams>("streams", None);
    let options = ConcatOptions {
        streams: streams.unwrap_or_default(),
    };
    reader.finish().or(options)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn streams_default_to_audio() {
        let parse_json = |v: Value| parse(v.as_object().expect("object"), "o");
        assert_eq!(parse_json(json!({})), Ok(ConcatOptions::default()));
        assert_eq!(
            parse_json(json!({"streams": "video"})).map(|o| o.streams),
            Ok(ConcatStreams::Video)
        );
        let fields = parse_json(json!({"streams": "both"}))
            .expect_err("bad")
            .into_fields();
        assert!(fields["o.streams"].contains("audio or video"), "{fields:?}");
    }
}
