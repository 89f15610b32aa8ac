//! `split`: a file's video stream and its audio stream as two files, both stream-copied (no
//! re-encoding, so the same packets and the same codec). A file without one of them is refused
//! (`no-video-stream`, `no-audio-stream`): a step makes the same artefacts every time.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{OperationInfo, Problems, fields::Reader};

pub(super) const INFO: OperationInfo = OperationInfo {
    name: "split",
    summary: "the video stream and the audio stream as two files, stream-copied (no re-encoding)",
    inputs: 1,
    max_inputs: 1,
    artefacts: &["video", "audio"],
};

/// `split` takes no options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitOptions {}

pub(super) fn parse(object: &Map<String, Value>, path: &str) -> Result<SplitOptions, Problems> {
    Reader::new(object, path).finish().or(SplitOptions {})
}
