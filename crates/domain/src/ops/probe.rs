//! `probe`: reads the container with ffprobe and checks it against the limits: `probe.json`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{OperationInfo, Problems, fields::Reader};

pub(super) const INFO: OperationInfo = OperationInfo {
    name: "probe",
    summary: "container and stream facts (ffprobe), checked against the limits: probe.json",
    inputs: 1,
    max_inputs: 1,
    artefacts: &["probe"],
};

/// `probe` takes no options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeOptions {}

pub(super) fn parse(object: &Map<String, Value>, path: &str) -> Result<ProbeOptions, Problems> {
    Reader::new(object, path).finish().or(ProbeOptions {})
}
