//! `qc`: a quality-control report (`qc.json`) from one decoding pass: streams, size, decode
//! errors, black, frozen and silent segments, EBU R128 loudness, interlacing, variable frame
//! rate, duration mismatch and rotation, with seed 002's rating (0-5) and pass rule.
//!
//! The thresholds are options with the defaults below; `policy` names the checks that must be
//! `ok` for the file to pass, on top of seed 002's rule.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{OperationInfo, Problems, fields::Reader};

pub(super) const INFO: OperationInfo = OperationInfo {
    name: "qc",
    summary: "a quality-control report from one decoding pass (black, freeze, silence, loudness, \
              interlace, decode errors, …) with seed 002's rating 0-5: qc.json",
    inputs: 1,
    max_inputs: 1,
    artefacts: &["report"],
};

/// The checks of a QC report, by their stable names (in the order a report lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QcCheck {
    Streams,
    Size,
    Decode,
    Black,
    Freeze,
    Silence,
    Loudness,
    LoudnessRange,
    TruePeak,
    Interlace,
    VariableFrameRate,
    DurationMismatch,
    Rotation,
}

impl QcCheck {
    pub const ALL: [QcCheck; 13] = [
        Self::Streams,
        Self::Size,
        Self::Decode,
        Self::Black,
        Self::Freeze,
        Self::Silence,
        Self::Loudness,
        Self::LoudnessRange,
        Self::TruePeak,
        Self::Interlace,
        Self::VariableFrameRate,
        Self::DurationMismatch,
        Self::Rotation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Streams => "streams",
            Self::Size => "size",
            Self::Decode => "decode",
            Self::Black => "black",
            Self::Freeze => "freeze",
            Self::Silence => "silence",
            Self::Loudness => "loudness",
            Self::LoudnessRange => "loudness_range",
            Self::TruePeak => "true_peak",
            Self::Interlace => "interlace",
            Self::VariableFrameRate => "variable_frame_rate",
            Self::DurationMismatch => "duration_mismatch",
            Self::Rotation => "rotation",
        }
    }
}

impl fmt::Display for QcCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for QcCheck {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        Self::ALL
            .into_iter()
            .find(|check| check.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|c| c.as_str()).collect();
                format!("unknown check {text:?}: use {}", names.join(", "))
            })
    }
}

/// One MiB: seed 002's smallest acceptable file.
pub const MIB: u64 = 1024 * 1024;

/// The thresholds of every check, and the policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QcOptions {
    /// Smaller files fail the `size` check (seed 002: 1 MiB).
    pub min_bytes: u64,
    /// Black segments at least this long (seconds) are reported.
    pub black_min_duration: f64,
    /// A pixel darker than this (0-1 of the luma range) is black (ffmpeg's `pix_th`).
    pub black_pixel_threshold: f64,
    /// Frozen segments at least this long (seconds) are reported.
    pub freeze_min_duration: f64,
    /// Frames closer than this (dB of difference) count as the same picture.
    pub freeze_noise_db: f64,
    /// Silent segments at least this long (seconds) are reported.
    pub silence_min_duration: f64,
    /// Audio below this level (dBFS) is silence; a track whose true peak is below it is silent
    /// (seed 002's -60 dB).
    pub silence_db: f64,
    /// The integrated loudness to meet (LUFS, EBU R128: -23).
    pub target_lufs: f64,
    /// How far from the target (LU) still meets it.
    pub lufs_tolerance: f64,
    /// Largest loudness range (LU) before a warning.
    pub max_loudness_range: f64,
    /// Highest true peak (dBTP, EBU R128: -1) before a warning.
    pub max_true_peak: f64,
    /// Largest difference (seconds) between the container's and a stream's duration, and
    /// between the duration and what decodes, before a finding.
    pub max_duration_mismatch: f64,
    /// Share (0-1) of the frames ffmpeg's `idet` finds interlaced above which the content is
    /// called interlaced.
    pub interlace_ratio: f64,
    /// Checks that must be `ok` for the file to pass, besides seed 002's rule.
    pub policy: Vec<QcCheck>,
}

impl Default for QcOptions {
    fn default() -> Self {
        Self {
            min_bytes: MIB,
            black_min_duration: 1.0,
            black_pixel_threshold: 0.10,
            freeze_min_duration: 2.0,
            freeze_noise_db: -60.0,
            silence_min_duration: 2.0,
            silence_db: -60.0,
            target_lufs: -23.0,
            lufs_tolerance: 1.0,
            max_loudness_range: 20.0,
            max_true_peak: -1.0,
            max_duration_mismatch: 0.5,
            interlace_ratio: 0.5,
            policy: Vec::new(),
        }
    }
}

pub(super) fn parse(object: &Map<String, Value>, path: &str) -> Result<QcOptions, Problems> {
    let mut reader = Reader::new(object, path);
    let d = QcOptions::default();
    // A minimum duration of 0 would report every frame; detectors need some length.
    let duration =
        |reader: &mut Reader<'_>, key: &'static str, default: f64| match reader.seconds(key) {
            Some(s) if s < 0.04 => {
                reader.fail(key, "must be at least 0.04 s (one frame at 25 fps)");
                default
            }
            Some(s) => s,
            None => default,
        };
    let options = QcOptions {
        min_bytes: reader
            .whole("min_bytes", 0..=1 << 40)
            .unwrap_or(d.min_bytes),
        black_min_duration: duration(&mut reader, "black_min_duration", d.black_min_duration),
        black_pixel_threshold: reader
            .number("black_pixel_threshold", 0.0..=1.0)
            .unwrap_or(d.black_pixel_threshold),
        freeze_min_duration: duration(&mut reader, "freeze_min_duration", d.freeze_min_duration),
        freeze_noise_db: reader
            .number("freeze_noise_db", -120.0..=0.0)
            .unwrap_or(d.freeze_noise_db),
        silence_min_duration: duration(&mut reader, "silence_min_duration", d.silence_min_duration),
        silence_db: reader
            .number("silence_db", -120.0..=0.0)
            .unwrap_or(d.silence_db),
        target_lufs: reader
            .number("target_lufs", -70.0..=0.0)
            .unwrap_or(d.target_lufs),
        lufs_tolerance: reader
            .number("lufs_tolerance", 0.0..=70.0)
            .unwrap_or(d.lufs_tolerance),
        max_loudness_range: reader
            .number("max_loudness_range", 0.0..=100.0)
            .unwrap_or(d.max_loudness_range),
        max_true_peak: reader
            .number("max_true_peak", -70.0..=20.0)
            .unwrap_or(d.max_true_peak),
        max_duration_mismatch: reader
            .seconds("max_duration_mismatch")
            .unwrap_or(d.max_duration_mismatch),
        interlace_ratio: reader
            .number("interlace_ratio", 0.0..=1.0)
            .unwrap_or(d.interlace_ratio),
        policy: reader.names::<QcCheck>("policy").unwrap_or_default(),
    };
    reader.finish().or(options)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Operation;

    fn parse_json(value: Value) -> Result<QcOptions, Problems> {
        parse(value.as_object().expect("object"), "o")
    }

    #[test]
    fn defaults_are_seed_002_and_ebu_r128() {
        let options = parse_json(json!({})).expect("valid");
        assert_eq!(options, QcOptions::default());
        assert_eq!(options.min_bytes, 1_048_576);
        assert_eq!(options.silence_db, -60.0);
        assert_eq!((options.target_lufs, options.lufs_tolerance), (-23.0, 1.0));
        assert!(options.policy.is_empty());
    }

    #[test]
    fn policy_is_a_list_or_a_comma_separated_string() {
        let listed = parse_json(json!({"policy": ["black", "silence"]})).expect("valid");
        let written = parse_json(json!({"policy": "black, silence"})).expect("valid");
        assert_eq!(listed.policy, [QcCheck::Black, QcCheck::Silence]);
        assert_eq!(written.policy, listed.policy);
        assert_eq!(
            parse_json(json!({"policy": ""})).map(|o| o.policy),
            Ok(vec![])
        );
    }

    #[test]
    fn unknown_checks_and_bad_thresholds_are_reported_at_their_paths() {
        let fields = parse_json(json!({
            "policy": ["black", "blur"],
            "target_lufs": "loud",
            "black_pixel_threshold": 2,
            "silence_min_duration": 0,
            "min_bytes": -1
        }))
        .expect_err("bad")
        .into_fields();
        assert_eq!(
            fields.keys().collect::<Vec<_>>(),
            [
                "o.black_pixel_threshold",
                "o.min_bytes",
                "o.policy",
                "o.silence_min_duration",
                "o.target_lufs"
            ]
        );
        assert!(fields["o.policy"].contains("blur"), "{fields:?}");
    }

    #[test]
    fn thresholds_take_numbers_and_durations() {
        let options = parse_json(json!({
            "min_bytes": 1000, "target_lufs": -16, "freeze_min_duration": "500ms"
        }))
        .expect("valid");
        assert_eq!(options.min_bytes, 1000);
        assert_eq!(options.target_lufs, -16.0);
        assert_eq!(options.freeze_min_duration, 0.5);
    }

    #[test]
    fn options_round_trip_through_the_operation() {
        let op = Operation::parse("qc", &json!({"policy": "black", "target_lufs": -16}), "o")
            .expect("valid");
        assert_eq!(op.info().artefacts, ["report"]);
        let again = Operation::parse(op.name(), &op.options(), "o").expect("valid");
        assert_eq!(op, again);
    }

    #[test]
    fn check_names_are_stable() {
        for check in QcCheck::ALL {
            assert_eq!(check.as_str().parse::<QcCheck>(), Ok(check));
            assert_eq!(
                serde_json::to_value(check).expect("json"),
                json!(check.as_str())
            );
        }
    }
}
