//! The QC report: what ffprobe and the one decoding pass found, judged against the thresholds.
//! Pure: the facts in, `qc.json` out.
//!
//! Seed 002's rating: 0 unreadable, corrupt or no audio/video stream; 1 silent audio only; 2
//! audio only; 3 video only; 4 video with silent audio; 5 video with audio. A file passes when
//! its rating is at least 2, its size check is ok and it decodes without errors, and every
//! check its policy names is ok.

use serde::Serialize;
use serde_json::{Value, json};
use vidsnap_domain::ops::{QcCheck, QcOptions};

use super::metadata::{FieldCounts, Loudness, Range};
use crate::probe::Probe;

/// The version of `qc.json`'s shape.
pub const VERSION: u32 = 1;

/// Integrated loudness ebur128 reports when nothing rose above the absolute gate.
const GATE_LUFS: f64 = -70.0;

/// How far apart two frame durations may be (a share of the usual one) before the frame rate
/// counts as variable: timestamps rounded to a coarse time base wobble by a few percent.
const FRAME_DURATION_TOLERANCE: f64 = 0.1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: QcCheck,
    pub status: Status,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<Range>,
}

impl Check {
    fn new(name: QcCheck, status: Status, message: impl Into<String>) -> Self {
        Self {
            name,
            status,
            message: message.into(),
            value: None,
            ranges: Vec::new(),
        }
    }

    fn ok(name: QcCheck, message: impl Into<String>) -> Self {
        Self::new(name, Status::Ok, message)
    }

    fn value(mut self, value: Value) -> Self {
        self.value = Some(value);
        self
    }
}

/// `qc.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub version: u32,
    pub passed: bool,
    pub rating: u8,
    /// Every check, in [`QcCheck::ALL`]'s order.
    pub checks: Vec<Check>,
    /// The thresholds the checks were made with.
    pub thresholds: Value,
    /// The checks that had to be ok for the file to pass, besides seed 002's rule.
    pub policy: Vec<QcCheck>,
}

impl Report {
    /// The checks with a warning or an error.
    pub fn findings(&self) -> Vec<QcCheck> {
        self.checks
            .iter()
            .filter(|c| c.status != Status::Ok)
            .map(|c| c.name)
            .collect()
    }
}

/// What is known about the file.
#[derive(Debug, Clone)]
pub(super) struct Facts {
    pub size_bytes: u64,
    /// Why ffprobe could not read it, when it could not.
    pub media: Result<Media, String>,
}

/// A file ffprobe could read, and what its decoding pass found.
#[derive(Debug, Clone)]
pub(super) struct Media {
    pub probe: Probe,
    /// The video stream's `field_order` as ffprobe states it (`progressive`, `tt`, …).
    pub field_order: Option<String>,
    /// `None` when there was nothing to decode (no audio or video stream).
    pub decoded: Option<Decoded>,
}

/// The decoding pass, times in seconds from the start of the file.
#[derive(Debug, Clone, Default)]
pub(super) struct Decoded {
    /// Whether ffmpeg ran to the end (exit 0).
    pub finished: bool,
    /// Lines ffmpeg logged at level `error`: decoding errors.
    pub errors: usize,
    /// The last of them, paths removed.
    pub last_error: Option<String>,
    pub black: Vec<Range>,
    pub freeze: Vec<Range>,
    pub silence: Vec<Range>,
    pub fields: FieldCounts,
    /// Every decoded video frame's time, in order.
    pub frame_times: Vec<f64>,
    pub loudness: Option<Loudness>,
}

impl Decoded {
    fn nothing_decoded(&self) -> bool {
        self.frame_times.is_empty() && self.loudness.is_none()
    }

    /// The usual time between frames (the median), when there are two frames.
    fn frame_duration(&self) -> Option<f64> {
        let mut deltas: Vec<f64> = self.frame_times.windows(2).map(|w| w[1] - w[0]).collect();
        deltas.sort_by(f64::total_cmp);
        deltas.get(deltas.len() / 2).copied().filter(|d| *d > 0.0)
    }

    /// Where decoding ended: the end of the last video frame or audio block.
    pub fn decoded_until(&self) -> f64 {
        let video = self
            .frame_times
            .last()
            .map(|last| last + self.frame_duration().unwrap_or(0.0));
        let audio = self.loudness.map(|l| l.end);
        video.into_iter().chain(audio).fold(0.0, f64::max)
    }
}

/// Decibels of a linear amplitude (`None` for no signal at all).
pub(super) fn decibels(linear: f64) -> Option<f64> {
    (linear > 0.0).then(|| 20.0 * linear.log10())
}

fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

fn rounded(range: &Range) -> Range {
    Range {
        start: round(range.start, 3),
        end: round(range.end, 3),
    }
}

/// The report on `facts`.
pub(super) fn report(options: &QcOptions, facts: &Facts) -> Report {
    let rating = rating(options, facts);
    let checks = QcCheck::ALL
        .into_iter()
        .map(|name| check(name, options, facts, rating))
        .collect::<Vec<_>>();
    let ok = |name: QcCheck| {
        checks
            .iter()
            .any(|c| c.name == name && c.status == Status::Ok)
    };
    let passed = rating >= 2
        && ok(QcCheck::Size)
        && ok(QcCheck::Decode)
        && options.policy.iter().all(|name| ok(*name));
    let mut thresholds = serde_json::to_value(options).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut thresholds {
        map.remove("policy");
    }
    Report {
        version: VERSION,
        passed,
        rating,
        checks,
        thresholds,
        policy: options.policy.clone(),
    }
}

/// Whether the file's audio is silent (seed 002: below -60 dB throughout): its true peak is
/// below `silence_db`, or none of it decoded.
fn silent_audio(options: &QcOptions, media: &Media) -> bool {
    let peak = media
        .decoded
        .as_ref()
        .and_then(|d| d.loudness)
        .and_then(|l| decibels(l.true_peak));
    peak.is_none_or(|db| db < options.silence_db)
}

fn rating(options: &QcOptions, facts: &Facts) -> u8 {
    let Ok(media) = &facts.media else {
        return 0;
    };
    let video = media.probe.video().is_some();
    let audio = media.probe.has_audio();
    let corrupt = media
        .decoded
        .as_ref()
        .is_none_or(|d| !d.finished && d.nothing_decoded());
    if corrupt {
        return 0;
    }
    let silent = audio && silent_audio(options, media);
    match (video, audio, silent) {
        (false, false, _) => 0,
        (false, true, true) => 1,
        (false, true, false) => 2,
        (true, false, _) => 3,
        (true, true, true) => 4,
        (true, true, false) => 5,
    }
}

fn check(name: QcCheck, options: &QcOptions, facts: &Facts, rating: u8) -> Check {
    if name == QcCheck::Size {
        return size(options, facts.size_bytes);
    }
    let media = match &facts.media {
        Ok(media) => media,
        Err(why) => {
            let status = match name {
                QcCheck::Streams | QcCheck::Decode => Status::Error,
                _ => Status::Ok,
            };
            let message = match status {
                Status::Error => format!("not a media file FFmpeg can read ({why})"),
                _ => "not checked: the file cannot be read".to_owned(),
            };
            return Check::new(name, status, message);
        }
    };
    let decoded = media.decoded.clone().unwrap_or_default();
    let probe = &media.probe;
    let has_video = probe.video().is_some();
    let has_audio = probe.has_audio();
    match name {
        QcCheck::Streams => streams(options, media, rating),
        QcCheck::Size => size(options, facts.size_bytes),
        QcCheck::Decode => decode(options, media, &decoded),
        QcCheck::Black if !has_video => Check::ok(name, "no video stream"),
        QcCheck::Black => segments(name, "black", &decoded.black),
        QcCheck::Freeze if !has_video => Check::ok(name, "no video stream"),
        QcCheck::Freeze => {
            // A black screen is also a still one; it is reported once, as black.
            let frozen: Vec<Range> = decoded
                .freeze
                .iter()
                .filter(|f| {
                    !decoded
                        .black
                        .iter()
                        .any(|b| f.start >= b.start - 0.1 && f.end <= b.end + 0.1)
                })
                .copied()
                .collect();
            segments(name, "frozen", &frozen)
        }
        QcCheck::Silence if !has_audio => Check::ok(name, "no audio stream"),
        QcCheck::Silence => segments(name, "silent", &decoded.silence),
        QcCheck::Loudness | QcCheck::LoudnessRange | QcCheck::TruePeak if !has_audio => {
            Check::ok(name, "no audio stream")
        }
        QcCheck::Loudness | QcCheck::LoudnessRange | QcCheck::TruePeak => match decoded.loudness {
            Some(loudness) => self::loudness(name, options, &loudness),
            None => Check::new(name, Status::Warning, "not measured: no audio was decoded"),
        },
        QcCheck::Interlace if !has_video => Check::ok(name, "no video stream"),
        QcCheck::Interlace => interlace(options, media, &decoded),
        QcCheck::VariableFrameRate if !has_video => Check::ok(name, "no video stream"),
        QcCheck::VariableFrameRate => variable_frame_rate(&decoded),
        QcCheck::DurationMismatch => duration_mismatch(options, probe),
        QcCheck::Rotation => match probe.video() {
            None => Check::ok(name, "no video stream"),
            Some(video) => match video.rotation.unwrap_or(0) {
                0 => Check::ok(name, "upright").value(json!(0)),
                degrees => Check::new(
                    name,
                    Status::Warning,
                    format!(
                        "turned {degrees}° clockwise for display (display matrix); players \
                         that ignore it show the picture turned"
                    ),
                )
                .value(json!(degrees)),
            },
        },
    }
}

fn size(options: &QcOptions, bytes: u64) -> Check {
    let name = QcCheck::Size;
    let check = if bytes >= options.min_bytes {
        Check::ok(name, format!("{bytes} bytes"))
    } else {
        Check::new(
            name,
            Status::Error,
            format!(
                "{bytes} bytes, under the minimum of {} bytes",
                options.min_bytes
            ),
        )
    };
    check.value(json!(bytes))
}

fn streams(options: &QcOptions, media: &Media, rating: u8) -> Check {
    let probe = &media.probe;
    let video = probe.video().map(|v| {
        json!({
            "codec": v.codec, "width": v.width, "height": v.height,
            "frame_rate": v.frame_rate.map(|r| round(r, 3)), "pixel_format": v.pixel_format,
            "field_order": media.field_order, "rotation": v.rotation.unwrap_or(0),
        })
    });
    let audio_stream = probe.streams.iter().find(|s| s.kind == "audio");
    let silent = audio_stream.is_some() && silent_audio(options, media);
    let audio = audio_stream.map(|a| {
        json!({"codec": a.codec, "channels": a.channels, "sample_rate": a.sample_rate,
               "silent": silent})
    });
    let value = json!({
        "container": probe.container, "duration": probe.duration.map(|d| round(d, 3)),
        "bit_rate": probe.bit_rate, "video": video, "audio": audio,
    });
    let mut parts = Vec::new();
    if let Some(v) = probe.video() {
        let codec = v.codec.as_deref().unwrap_or("unknown codec");
        let size = match (v.width, v.height) {
            (Some(w), Some(h)) => format!(" {w}x{h}"),
            _ => String::new(),
        };
        let rate = v
            .frame_rate
            .map_or(String::new(), |r| format!(" {} fps", round(r, 3)));
        parts.push(format!("video {codec}{size}{rate}"));
    }
    if let Some(a) = audio_stream {
        let codec = a.codec.as_deref().unwrap_or("unknown codec");
        let channels = a.channels.map_or(String::new(), |c| format!(" {c} ch"));
        let rate = a.sample_rate.map_or(String::new(), |r| format!(" {r} Hz"));
        let silent = if silent { " (silent)" } else { "" };
        parts.push(format!("audio {codec}{channels}{rate}{silent}"));
    }
    let check = if parts.is_empty() {
        Check::new(QcCheck::Streams, Status::Error, "no audio or video stream")
    } else if rating == 0 {
        Check::new(
            QcCheck::Streams,
            Status::Error,
            format!("{}, none of which decodes", parts.join("; ")),
        )
    } else {
        Check::ok(
            QcCheck::Streams,
            format!("rating {rating}: {}", parts.join("; ")),
        )
    };
    check.value(value)
}

fn decode(options: &QcOptions, media: &Media, decoded: &Decoded) -> Check {
    let name = QcCheck::Decode;
    if media.decoded.is_none() {
        return Check::new(name, Status::Error, "nothing to decode");
    }
    let until = decoded.decoded_until();
    let value = json!({"errors": decoded.errors, "decoded_until": round(until, 3)});
    let mut problems = Vec::new();
    let mut ranges = Vec::new();
    if !decoded.finished {
        problems.push("FFmpeg stopped before the end".to_owned());
    }
    if decoded.errors > 0 {
        problems.push(format!(
            "{} decoding error{}",
            decoded.errors,
            if decoded.errors == 1 { "" } else { "s" }
        ));
    }
    // What decodes must reach the stated end: a truncated file decodes cleanly up to where it
    // was cut, and the container still states the full duration.
    let tolerance = options
        .max_duration_mismatch
        .max(2.0 * decoded.frame_duration().unwrap_or(0.0));
    if let Some(duration) = media.probe.duration
        && duration - until > tolerance
    {
        problems.push(format!(
            "decoding stopped at {:.2} s of {duration:.2} s",
            until
        ));
        ranges.push(rounded(&Range {
            start: until,
            end: duration,
        }));
    }
    if problems.is_empty() {
        return Check::ok(name, "decodes without errors").value(value);
    }
    let mut message = problems.join("; ");
    if let Some(last) = &decoded.last_error {
        message.push_str(&format!(" (last: {last})"));
    }
    Check {
        ranges,
        ..Check::new(name, Status::Error, message).value(value)
    }
}

fn segments(name: QcCheck, what: &str, ranges: &[Range]) -> Check {
    let total: f64 = ranges.iter().map(Range::seconds).sum();
    if ranges.is_empty() {
        return Check::ok(name, format!("no {what} segment")).value(json!(0.0));
    }
    let listed: Vec<String> = ranges
        .iter()
        .map(|r| format!("{:.2}-{:.2} s", r.start, r.end))
        .collect();
    Check {
        ranges: ranges.iter().map(rounded).collect(),
        ..Check::new(
            name,
            Status::Warning,
            format!(
                "{} {what} segment{}, {total:.2} s in all: {}",
                ranges.len(),
                if ranges.len() == 1 { "" } else { "s" },
                listed.join(", ")
            ),
        )
        .value(json!(round(total, 3)))
    }
}

fn loudness(name: QcCheck, options: &QcOptions, loudness: &Loudness) -> Check {
    match name {
        QcCheck::Loudness => {
            let lufs = round(loudness.integrated, 2);
            if lufs <= GATE_LUFS {
                return Check::new(
                    name,
                    Status::Warning,
                    format!("silent: nothing above the {GATE_LUFS} LUFS gate"),
                )
                .value(json!(lufs));
            }
            let off = lufs - options.target_lufs;
            let (target, tolerance) = (options.target_lufs, options.lufs_tolerance);
            let check = if off.abs() <= tolerance {
                Check::ok(
                    name,
                    format!("{lufs:.1} LUFS, within {tolerance} LU of the target {target} LUFS"),
                )
            } else {
                let side = if off > 0.0 { "above" } else { "below" };
                Check::new(
                    name,
                    Status::Warning,
                    format!(
                        "{lufs:.1} LUFS: {:.1} LU {side} the target {target} LUFS (±{tolerance})",
                        off.abs()
                    ),
                )
            };
            check.value(json!(lufs))
        }
        QcCheck::LoudnessRange => {
            let lra = round(loudness.range, 2);
            let max = options.max_loudness_range;
            let check = if lra <= max {
                Check::ok(name, format!("{lra:.1} LU, at most {max} LU"))
            } else {
                Check::new(
                    name,
                    Status::Warning,
                    format!("{lra:.1} LU, over the maximum of {max} LU"),
                )
            };
            check.value(json!(lra))
        }
        _ => {
            let Some(db) = decibels(loudness.true_peak) else {
                return Check::ok(name, "no signal");
            };
            let db = round(db, 2);
            let max = options.max_true_peak;
            let check = if db <= max {
                Check::ok(name, format!("{db:.1} dBTP, at most {max} dBTP"))
            } else {
                Check::new(
                    name,
                    Status::Warning,
                    format!("{db:.1} dBTP, over the maximum of {max} dBTP"),
                )
            };
            check.value(json!(db))
        }
    }
}

fn interlace(options: &QcOptions, media: &Media, decoded: &Decoded) -> Check {
    let name = QcCheck::Interlace;
    let counts = decoded.fields;
    let ratio = counts.interlaced_ratio();
    let flagged = matches!(
        media.field_order.as_deref(),
        Some("tt" | "bb" | "tb" | "bt")
    );
    let detected = ratio.is_some_and(|r| r > options.interlace_ratio);
    let value = json!({
        "field_order": media.field_order, "ratio": ratio.map(|r| round(r, 3)),
        "tff": counts.tff, "bff": counts.bff, "progressive": counts.progressive,
        "undetermined": counts.undetermined,
    });
    let seen = format!(
        "{} of {} frames look interlaced",
        counts.interlaced(),
        counts.interlaced() + counts.progressive + counts.undetermined
    );
    let check = match (flagged, detected) {
        (false, false) => Check::ok(name, format!("progressive: {seen}")),
        (true, _) => Check::new(
            name,
            Status::Warning,
            format!(
                "interlaced: the stream states field order {}; {seen}",
                media.field_order.as_deref().unwrap_or_default()
            ),
        ),
        (false, true) => Check::new(
            name,
            Status::Warning,
            format!("interlaced content in a stream not flagged so: {seen}"),
        ),
    };
    check.value(value)
}

fn variable_frame_rate(decoded: &Decoded) -> Check {
    let name = QcCheck::VariableFrameRate;
    let (Some(usual), times) = (decoded.frame_duration(), &decoded.frame_times) else {
        return Check::ok(name, "too few frames to tell");
    };
    let deltas: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let tolerance = (usual * FRAME_DURATION_TOLERANCE).max(0.001);
    let off = deltas
        .iter()
        .filter(|d| (*d - usual).abs() > tolerance)
        .count();
    let (shortest, longest) = deltas
        .iter()
        .filter(|d| **d > 0.0)
        .fold((f64::MAX, 0.0f64), |(lo, hi), d| (lo.min(*d), hi.max(*d)));
    let span = times[times.len() - 1] - times[0];
    let value = json!({
        "average_fps": (span > 0.0).then(|| round(deltas.len() as f64 / span, 3)),
        "min_fps": (longest > 0.0).then(|| round(1.0 / longest, 3)),
        "max_fps": (shortest < f64::MAX).then(|| round(1.0 / shortest, 3)),
        "irregular_frames": off,
    });
    // A frame dropped here and there is not a variable rate: more than 1% of them must differ.
    let check = if off >= 2 && off * 100 > deltas.len() {
        Check::new(
            name,
            Status::Warning,
            format!(
                "variable: {off} of {} frame durations differ from the usual {:.2} ms",
                deltas.len(),
                usual * 1000.0
            ),
        )
    } else {
        Check::ok(name, format!("constant: {:.3} fps", 1.0 / usual))
    };
    check.value(value)
}

fn duration_mismatch(options: &QcOptions, probe: &Probe) -> Check {
    let name = QcCheck::DurationMismatch;
    let streams: Vec<(String, f64)> = probe
        .streams
        .iter()
        .filter(|s| !s.attached_picture && matches!(s.kind.as_str(), "video" | "audio"))
        .filter_map(|s| s.duration.map(|d| (format!("{} #{}", s.kind, s.index), d)))
        .collect();
    let Some(container) = probe.duration else {
        return Check::ok(name, "no duration stated");
    };
    let worst = streams
        .iter()
        .map(|(_, d)| (d - container).abs())
        .fold(0.0, f64::max);
    let listed: Vec<String> = std::iter::once(format!("container {container:.3} s"))
        .chain(streams.iter().map(|(n, d)| format!("{n} {d:.3} s")))
        .collect();
    let check = if worst <= options.max_duration_mismatch {
        Check::ok(name, listed.join(", "))
    } else {
        Check::new(
            name,
            Status::Warning,
            format!(
                "{:.3} s apart (more than {} s): {}",
                worst,
                options.max_duration_mismatch,
                listed.join(", ")
            ),
        )
    };
    check.value(json!(round(worst, 3)))
}

#[cfg(test)]
mod tests;
