//! Seed 002's bucket workflow: files dropped into a watched folder are checked by a `qc` job,
//! validated against a metadata sidecar (`a.mp4` + `a.json`) and sorted into outcome folders
//! (`processed/`, `failed/`, `unable_to_process/`). This module holds the pure parts: the
//! sidecar's parser and its comparison with what the probe found, the outcomes, and the result
//! stored for every decision. Moving the files is the scheduler's (`vidsnap-worker`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ErrorCode, Failure, JobId, QcResultId, UserId, VideoId};

/// Where a checked file goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QcOutcome {
    /// It passed and its sidecar matched: moved to the processed folder.
    Processed,
    /// It failed (quality, sidecar, or the job itself): moved to (or kept in) the failed folder,
    /// where it is retried.
    Failed,
    /// It failed every retry: moved to the unable-to-process folder, for good.
    UnableToProcess,
}

impl QcOutcome {
    pub const ALL: [QcOutcome; 3] = [Self::Processed, Self::Failed, Self::UnableToProcess];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processed => "processed",
            Self::Failed => "failed",
            Self::UnableToProcess => "unable_to_process",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == text)
    }
}

/// One decision about one file, stored with every check of its report (the read API's rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QcResult {
    pub id: QcResultId,
    pub owner: UserId,
    pub video: VideoId,
    /// The job whose report was read (`None` never happens today; kept for files decided
    /// without one).
    pub job: Option<JobId>,
    /// The job's cycle: a retry re-runs the job, and each cycle is decided once.
    pub cycle: u32,
    /// 0 for the first decision about this file, then 1, 2...
    pub attempt: u32,
    /// Where the file was when it was checked.
    pub key: String,
    pub file_name: String,
    pub outcome: QcOutcome,
    /// Seed 002's rating, 0-5, when the report was read.
    pub rating: Option<u8>,
    /// The report's verdict (quality only; the sidecar may still fail the file).
    pub passed: bool,
    /// Why it failed: the first problem's code, every problem in the message.
    pub error: Option<Failure>,
    /// The report's checks (`qc.json`'s `checks`), `null` when there was no report.
    pub checks: Value,
    /// The sidecar as read, `null` when there was none.
    pub sidecar: Value,
    /// Where the decision moved the file, if it moved.
    pub moved_to: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Results per outcome over a time range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QcCounts {
    pub processed: u64,
    pub failed: u64,
    pub unable_to_process: u64,
    pub total: u64,
}

impl QcCounts {
    pub fn add(&mut self, outcome: QcOutcome, n: u64) {
        match outcome {
            QcOutcome::Processed => self.processed += n,
            QcOutcome::Failed => self.failed += n,
            QcOutcome::UnableToProcess => self.unable_to_process += n,
        }
        self.total += n;
    }
}

/// A problem found with a sidecar, with its stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub code: ErrorCode,
    pub message: String,
}

impl Mismatch {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Several problems as one failure: the first one's code, every message.
    pub fn failure(problems: &[Mismatch]) -> Option<Failure> {
        let first = problems.first()?;
        Some(Failure {
            code: first.code,
            message: problems
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        })
    }
}

/// A metadata sidecar as seed 002 wrote them: `{"Duration": ..., "File size": ..., "Codec":
/// ..., "Resolution": ...}`. Key names are matched without case, spaces, `_` or `-`
/// (`file_size`, `FileSize`); other keys are kept but not checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sidecar {
    /// Seconds.
    pub duration: f64,
    /// Bytes.
    pub size: u64,
    /// As written (compared through [`codec_family`]).
    pub codec: String,
    /// Width x height, when given.
    pub resolution: Option<(u32, u32)>,
}

/// What the probe of the file found, to compare a sidecar with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaFacts {
    pub duration: Option<f64>,
    pub size: u64,
    /// Every stream's codec, video first.
    pub codecs: Vec<String>,
    /// The first video stream's coded size, and its clockwise rotation.
    pub picture: Option<(u32, u32, u32)>,
}

impl MediaFacts {
    /// Reads the probe summary operations report (`{"size_bytes", "duration", "streams":
    /// [{"kind", "codec", "width", "height", "rotation"}]}`, at the top or under `probe`).
    pub fn from_probe(value: &Value) -> Option<Self> {
        let probe = if value.get("streams").is_some() {
            value
        } else {
            value.get("probe")?
        };
        let streams = probe.get("streams")?.as_array()?;
        let mut facts = Self {
            duration: probe.get("duration").and_then(Value::as_f64),
            size: probe.get("size_bytes").and_then(Value::as_u64).unwrap_or(0),
            ..Self::default()
        };
        let mut ordered: Vec<&Value> = streams.iter().filter(|s| s["kind"] == "video").collect();
        ordered.extend(streams.iter().filter(|s| s["kind"] != "video"));
        for stream in ordered {
            if let Some(codec) = stream["codec"].as_str() {
                facts.codecs.push(codec.to_owned());
            }
            if facts.picture.is_none()
                && stream["kind"] == "video"
                && let (Some(w), Some(h)) = (stream["width"].as_u64(), stream["height"].as_u64())
            {
                let rotation = stream["rotation"].as_u64().unwrap_or(0);
                facts.picture = Some((w as u32, h as u32, rotation as u32));
            }
        }
        Some(facts)
    }
}

/// At most this many bytes of sidecar are read: it is a few fields of JSON.
pub const MAX_SIDECAR_BYTES: u64 = 64 * 1024;

impl Sidecar {
    /// The sidecar of `key`: the same name with `.json` (`uploads/a.mp4` -> `uploads/a.json`).
    pub fn key_for(key: &str) -> String {
        let (dir, name) = key.rsplit_once('/').map_or(("", key), |(d, n)| (d, n));
        let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
        if dir.is_empty() {
            format!("{stem}.json")
        } else {
            format!("{dir}/{stem}.json")
        }
    }

    /// Parses a sidecar; every problem is reported (code `sidecar-invalid`).
    pub fn parse(bytes: &[u8]) -> Result<Self, Vec<Mismatch>> {
        let invalid = |why: String| vec![Mismatch::new(ErrorCode::SidecarInvalid, why)];
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("the sidecar is not JSON: {e}")))?;
        let Value::Object(object) = value else {
            return Err(invalid("the sidecar must be a JSON object".into()));
        };
        let field = |wanted: &str| {
            object.iter().find_map(|(key, value)| {
                let normal: String = key
                    .chars()
                    .filter(|c| c.is_alphanumeric())
                    .flat_map(char::to_lowercase)
                    .collect();
                (normal == wanted).then_some(value)
            })
        };
        let mut problems = Vec::new();
        let mut problem =
            |why: String| problems.push(Mismatch::new(ErrorCode::SidecarInvalid, why));
        let duration = match field("duration") {
            None => {
                problem("the sidecar has no \"Duration\"".into());
                None
            }
            Some(value) => {
                let parsed = parse_duration(value);
                if parsed.is_none() {
                    problem(format!(
                        "\"Duration\" {value} is not a duration (seconds, \"12.5s\" or \"HH:MM:SS.mmm\")"
                    ));
                }
                parsed
            }
        };
        let size = match field("filesize").or_else(|| field("size")) {
            None => {
                problem("the sidecar has no \"File size\"".into());
                None
            }
            Some(value) => {
                let parsed = parse_size(value);
                if parsed.is_none() {
                    problem(format!(
                        "\"File size\" {value} is not a whole number of bytes (1048576, \"1 MiB\")"
                    ));
                }
                parsed
            }
        };
        let codec = match field("codec") {
            Some(Value::String(codec)) if !codec.trim().is_empty() => Some(codec.trim().to_owned()),
            Some(value) => {
                problem(format!(
                    "\"Codec\" {value} must be a codec's name, e.g. \"h264\""
                ));
                None
            }
            None => {
                problem("the sidecar has no \"Codec\"".into());
                None
            }
        };
        let resolution = match field("resolution") {
            None | Some(Value::Null) => None,
            Some(value) => {
                let parsed = parse_resolution(value);
                if parsed.is_none() {
                    problem(format!(
                        "\"Resolution\" {value} is not WIDTHxHEIGHT (\"1920x1080\")"
                    ));
                }
                parsed
            }
        };
        match (duration, size, codec) {
            (Some(duration), Some(size), Some(codec)) if problems.is_empty() => Ok(Self {
                duration,
                size,
                codec,
                resolution,
            }),
            _ => Err(problems),
        }
    }

    /// Every way the file differs from what the sidecar says: duration beyond `tolerance`
    /// seconds, size not exact, codec not among the file's, resolution different (the coded or
    /// the displayed size both match).
    pub fn check(&self, facts: &MediaFacts, tolerance: f64) -> Vec<Mismatch> {
        let mut problems = Vec::new();
        match facts.duration {
            Some(duration) if (duration - self.duration).abs() <= tolerance => {}
            Some(duration) => problems.push(Mismatch::new(
                ErrorCode::SidecarDurationMismatch,
                format!(
                    "the sidecar says {:.3} s, the file lasts {duration:.3} s (tolerance {tolerance} s)",
                    self.duration
                ),
            )),
            None => problems.push(Mismatch::new(
                ErrorCode::SidecarDurationMismatch,
                format!(
                    "the sidecar says {:.3} s, the file's duration cannot be read",
                    self.duration
                ),
            )),
        }
        if facts.size != self.size {
            problems.push(Mismatch::new(
                ErrorCode::SidecarSizeMismatch,
                format!(
                    "the sidecar says {} bytes, the file has {}",
                    self.size, facts.size
                ),
            ));
        }
        let family = codec_family(&self.codec);
        if !facts.codecs.iter().any(|c| codec_family(c) == family) {
            problems.push(Mismatch::new(
                ErrorCode::SidecarCodecMismatch,
                format!(
                    "the sidecar says codec {:?}, the file has {}",
                    self.codec,
                    if facts.codecs.is_empty() {
                        "no readable stream".to_owned()
                    } else {
                        facts.codecs.join(", ")
                    }
                ),
            ));
        }
        if let Some((width, height)) = self.resolution {
            let matches = facts.picture.is_some_and(|(w, h, rotation)| {
                (w, h) == (width, height) || (rotation % 180 == 90 && (h, w) == (width, height))
            });
            if !matches {
                problems.push(Mismatch::new(
                    ErrorCode::SidecarResolutionMismatch,
                    format!(
                        "the sidecar says {width}x{height}, the file's picture is {}",
                        facts
                            .picture
                            .map_or("absent".to_owned(), |(w, h, _)| format!("{w}x{h}"))
                    ),
                ));
            }
        }
        problems
    }
}

/// A codec's name folded to one spelling per format: `H.264`, `avc1` and `x264` are `h264`.
pub fn codec_family(name: &str) -> String {
    let folded: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .flat_map(|c| c.to_lowercase())
        .collect();
    let family = match folded.as_str() {
        "h264" | "avc" | "avc1" | "x264" | "mpeg4avc" | "mpeg4part10" => "h264",
        "h265" | "hevc" | "hvc1" | "hev1" | "x265" => "hevc",
        "vp09" | "vp9" => "vp9",
        "av01" | "av1" => "av1",
        "mp4a" | "aac" | "aaclc" => "aac",
        "mp3" | "mpeg1layer3" | "mpeglayer3" => "mp3",
        other => other,
    };
    family.to_owned()
}

fn parse_duration(value: &Value) -> Option<f64> {
    let seconds = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(text) => {
            let text = text.trim();
            if text.contains(':') {
                let parts: Vec<&str> = text.split(':').collect();
                if parts.len() > 3 {
                    return None;
                }
                let mut total = 0.0;
                for (i, part) in parts.iter().enumerate() {
                    let part: f64 = part.trim().parse().ok()?;
                    if part < 0.0 || (i > 0 && part >= 60.0) {
                        return None;
                    }
                    total = total * 60.0 + part;
                }
                total
            } else {
                text.strip_suffix('s')
                    .unwrap_or(text)
                    .trim()
                    .parse::<f64>()
                    .ok()?
            }
        }
        _ => return None,
    };
    (seconds.is_finite() && seconds >= 0.0).then_some(seconds)
}

fn parse_size(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(text) => {
            let text = text.trim();
            let split = text
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(text.len());
            let (number, unit) = text.split_at(split);
            let unit = unit.trim().to_ascii_lowercase();
            let scale: u64 = match unit.as_str() {
                "" | "b" | "byte" | "bytes" => 1,
                "kb" => 1_000,
                "kib" => 1 << 10,
                "mb" => 1_000_000,
                "mib" => 1 << 20,
                "gb" => 1_000_000_000,
                "gib" => 1 << 30,
                _ => return None,
            };
            if let Ok(whole) = number.parse::<u64>() {
                return whole.checked_mul(scale);
            }
            // A fraction of a unit must still be a whole number of bytes.
            let (int, frac) = number.split_once('.')?;
            let digits = u32::try_from(frac.len()).ok().filter(|d| *d <= 9)?;
            let denominator = 10u64.pow(digits);
            let numerator = format!("{int}{frac}").parse::<u64>().ok()?;
            let bytes = numerator.checked_mul(scale)?;
            (bytes % denominator == 0).then_some(bytes / denominator)
        }
        _ => None,
    }
}

fn parse_resolution(value: &Value) -> Option<(u32, u32)> {
    match value {
        Value::String(text) => {
            let lower = text.trim().to_ascii_lowercase().replace('×', "x");
            let (w, h) = lower.split_once('x')?;
            let (w, h) = (w.trim().parse().ok()?, h.trim().parse().ok()?);
            (w > 0 && h > 0).then_some((w, h))
        }
        Value::Object(object) => {
            let w = object.get("width")?.as_u64()?;
            let h = object.get("height")?.as_u64()?;
            Some((u32::try_from(w).ok()?, u32::try_from(h).ok()?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
