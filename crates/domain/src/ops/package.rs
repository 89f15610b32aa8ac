//! `package`: adaptive streaming from one encode. A ladder of H.264 renditions (and one AAC
//! audio rendition) cut into CMAF segments that both an HLS master playlist and a DASH MPD
//! describe: `master.m3u8` and `manifest.mpd`.
//!
//! A rung is named by the short side of the displayed picture (720 is 1280x720 landscape and
//! 720x1280 portrait); rungs larger than the source are left out when the job runs, never
//! upscaled. The options here are what a recipe asks for; what a given video gets is decided by
//! `vidsnap-media`'s `ops::package` from its probe.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{OperationInfo, Problems, fields::Reader};

pub(super) const INFO: OperationInfo = OperationInfo {
    name: "package",
    summary: "HLS and DASH from one encode: an H.264 ladder (default 1080/720/480/360, never \
              upscaled) and AAC audio in CMAF segments, master.m3u8 and manifest.mpd",
    inputs: 1,
    max_inputs: 1,
    // Also every playlist and segment, named by its path in the layout; not for other steps.
    artefacts: &["hls", "dash"],
};

/// The most rungs a ladder may have: each is an encoder running beside the others.
pub const MAX_RUNGS: usize = 8;
/// The smallest and largest short side a rung may ask for (pixels).
pub const SHORT_SIDES: std::ops::RangeInclusive<u32> = 96..=2160;
/// The video bit rates a rung may ask for (kb/s).
pub const VIDEO_KBPS: std::ops::RangeInclusive<u32> = 50..=50_000;
/// Segment lengths (seconds) one may ask for: players buffer a few segments, so longer ones
/// delay the start, and shorter ones cost a keyframe each.
pub const SEGMENT_SECONDS: std::ops::RangeInclusive<f64> = 1.0..=20.0;

/// The H.264 profile of a rendition: `high` for HD, `main` below, `baseline` for very old
/// devices only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum H264Profile {
    Baseline,
    Main,
    High,
}

impl H264Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Main => "main",
            Self::High => "high",
        }
    }
}

impl FromStr for H264Profile {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "baseline" => Ok(Self::Baseline),
            "main" => Ok(Self::Main),
            "high" => Ok(Self::High),
            other => Err(format!(
                "unknown H.264 profile {other:?}: use baseline, main or high"
            )),
        }
    }
}

/// x264's speed/quality presets: slower ones make smaller files at the same quality for more
/// CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    Ultrafast,
    Superfast,
    Veryfast,
    Faster,
    Fast,
    Medium,
    Slow,
    Slower,
    Veryslow,
}

impl Preset {
    pub const ALL: [Preset; 9] = [
        Self::Ultrafast,
        Self::Superfast,
        Self::Veryfast,
        Self::Faster,
        Self::Fast,
        Self::Medium,
        Self::Slow,
        Self::Slower,
        Self::Veryslow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ultrafast => "ultrafast",
            Self::Superfast => "superfast",
            Self::Veryfast => "veryfast",
            Self::Faster => "faster",
            Self::Fast => "fast",
            Self::Medium => "medium",
            Self::Slow => "slow",
            Self::Slower => "slower",
            Self::Veryslow => "veryslow",
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Preset {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|p| p.as_str()).collect();
                format!("unknown preset {text:?}: use {}", names.join(", "))
            })
    }
}

/// One rung of the ladder as asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rung {
    /// The short side of the displayed picture, even: 720 is 1280x720 or 720x1280.
    pub short_side: u32,
    /// The average video bit rate (kb/s); peaks stay within 110% of it (Apple's authoring
    /// specification for VOD).
    pub kbps: u32,
    pub profile: H264Profile,
}

impl Rung {
    /// A rung with the default bit rate and profile for its size: Apple's HLS authoring
    /// specification's figures for 30 fps where it has the size (1080: 6000, 720: 3000 kb/s),
    /// else scaled with the picture's area from 720p's, to the nearest 50 kb/s.
    pub fn sized(short_side: u32) -> Self {
        let kbps = match short_side {
            1080 => 6000,
            720 => 3000,
            480 => 1400,
            360 => 800,
            other => {
                let area = (f64::from(other) / 720.0).powi(2);
                ((3000.0 * area / 50.0).round() as u32 * 50).clamp(100, *VIDEO_KBPS.end())
            }
        };
        Self {
            short_side,
            kbps,
            profile: if short_side >= 720 {
                H264Profile::High
            } else {
                H264Profile::Main
            },
        }
    }
}

/// The default ladder: 1080p, 720p, 480p and 360p.
pub fn default_ladder() -> Vec<Rung> {
    [1080, 720, 480, 360].into_iter().map(Rung::sized).collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PackageOptions {
    /// The renditions to make, largest first; those larger than the source are left out.
    pub ladder: Vec<Rung>,
    /// Seconds per segment: every rendition has a keyframe at each multiple of it.
    pub segment: f64,
    /// The audio rendition's bit rate for stereo (kb/s); mono gets half.
    pub audio_kbps: u32,
    pub preset: Preset,
}

impl Default for PackageOptions {
    fn default() -> Self {
        Self {
            ladder: default_ladder(),
            segment: 4.0,
            audio_kbps: 128,
            preset: Preset::Veryfast,
        }
    }
}

pub(super) fn parse(object: &Map<String, Value>, path: &str) -> Result<PackageOptions, Problems> {
    let mut reader = Reader::new(object, path);
    let d = PackageOptions::default();
    let ladder = match reader.value("ladder").map(ladder) {
        Some(Ok(ladder)) => ladder,
        Some(Err(message)) => {
            // Reported at `ladder` itself, so that a ladder given as a recipe parameter is
            // reported at the parameter.
            reader.fail("ladder", message);
            d.ladder.clone()
        }
        None => d.ladder.clone(),
    };
    let segment = match reader.seconds("segment") {
        Some(s) if SEGMENT_SECONDS.contains(&s) => s,
        Some(_) => {
            reader.fail(
                "segment",
                format!(
                    "must be from {} to {} seconds",
                    SEGMENT_SECONDS.start(),
                    SEGMENT_SECONDS.end()
                ),
            );
            d.segment
        }
        None => d.segment,
    };
    let options = PackageOptions {
        ladder,
        segment,
        audio_kbps: reader
            .whole("audio_kbps", 32..=512)
            .map_or(d.audio_kbps, |n| n as u32),
        preset: reader.parsed::<Preset>("preset", None).unwrap_or(d.preset),
    };
    reader.finish().or(options)
}

/// A ladder from a list (`[720, 480]`, `[{"short_side": 720, "kbps": 2500}]`), one number, or
/// a comma-separated string (`"720,480"`, as a command-line parameter gives it); largest first.
fn ladder(value: &Value) -> Result<Vec<Rung>, String> {
    let items: Vec<Value> = match value {
        Value::Array(items) => items.clone(),
        Value::String(text) => text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| Value::String(t.to_owned()))
            .collect(),
        Value::Number(_) => vec![value.clone()],
        _ => {
            return Err(
                "must be a list of rungs (short sides, or {\"short_side\", \"kbps\", \
                 \"profile\"}) or a comma-separated string such as \"720,480\""
                    .to_owned(),
            );
        }
    };
    if items.is_empty() {
        return Err("must hold at least one rung".to_owned());
    }
    if items.len() > MAX_RUNGS {
        return Err(format!("at most {MAX_RUNGS} rungs, not {}", items.len()));
    }
    let mut problems = Vec::new();
    let mut rungs: Vec<Rung> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match rung(item) {
            Ok(rung) if rungs.iter().any(|r| r.short_side == rung.short_side) => {
                problems.push(format!(
                    "rung {}: {} is listed twice",
                    i + 1,
                    rung.short_side
                ));
            }
            Ok(rung) => rungs.push(rung),
            Err(message) => problems.push(format!("rung {}: {message}", i + 1)),
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    rungs.sort_by_key(|rung| std::cmp::Reverse(rung.short_side));
    Ok(rungs)
}

fn rung(value: &Value) -> Result<Rung, String> {
    let whole = |value: &Value| -> Option<u64> {
        match value {
            Value::Number(n) => n.as_u64(),
            Value::String(text) => text.trim().trim_end_matches('p').parse().ok(),
            _ => None,
        }
    };
    let short_side = |value: &Value| -> Result<u32, String> {
        match whole(value).and_then(|n| u32::try_from(n).ok()) {
            Some(n) if SHORT_SIDES.contains(&n) && n % 2 == 0 => Ok(n),
            _ => Err(format!(
                "the short side must be an even number of pixels from {} to {}",
                SHORT_SIDES.start(),
                SHORT_SIDES.end()
            )),
        }
    };
    let Value::Object(fields) = value else {
        return short_side(value).map(Rung::sized);
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !["short_side", "kbps", "profile"].contains(&k.as_str()))
    {
        return Err(format!(
            "unknown field {unknown:?}: use short_side, kbps, profile"
        ));
    }
    let mut rung = Rung::sized(short_side(
        fields.get("short_side").unwrap_or(&Value::Null),
    )?);
    if let Some(kbps) = fields.get("kbps").filter(|v| !v.is_null()) {
        rung.kbps = whole(kbps)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| VIDEO_KBPS.contains(n))
            .ok_or_else(|| {
                format!(
                    "kbps must be a whole number from {} to {}",
                    VIDEO_KBPS.start(),
                    VIDEO_KBPS.end()
                )
            })?;
    }
    if let Some(profile) = fields.get("profile").filter(|v| !v.is_null()) {
        rung.profile = profile
            .as_str()
            .ok_or_else(|| "profile must be a string".to_owned())?
            .parse()?;
    }
    Ok(rung)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Operation;

    fn parse_json(value: Value) -> Result<PackageOptions, Problems> {
        parse(value.as_object().expect("object"), "o")
    }

    fn sides(options: &PackageOptions) -> Vec<u32> {
        options.ladder.iter().map(|r| r.short_side).collect()
    }

    #[test]
    fn defaults_are_four_rungs_of_four_second_segments() {
        let options = parse_json(json!({})).expect("valid");
        assert_eq!(options, PackageOptions::default());
        assert_eq!(sides(&options), [1080, 720, 480, 360]);
        let kbps: Vec<u32> = options.ladder.iter().map(|r| r.kbps).collect();
        assert_eq!(kbps, [6000, 3000, 1400, 800]);
        assert_eq!(options.ladder[0].profile, H264Profile::High);
        assert_eq!(options.ladder[3].profile, H264Profile::Main);
        assert_eq!((options.segment, options.audio_kbps), (4.0, 128));
    }

    #[test]
    fn a_ladder_is_a_list_a_number_or_a_comma_separated_string() {
        let listed = parse_json(json!({"ladder": [480, 720]})).expect("valid");
        assert_eq!(sides(&listed), [720, 480], "largest first");
        let written = parse_json(json!({"ladder": "720, 480p"})).expect("valid");
        assert_eq!(written.ladder, listed.ladder);
        let one = parse_json(json!({"ladder": 240})).expect("valid");
        assert_eq!(one.ladder, [Rung::sized(240)]);
        assert_eq!(one.ladder[0].kbps, 350, "scaled from 720p's by area");
        let detailed = parse_json(json!({"ladder": [
            {"short_side": 720, "kbps": 2500, "profile": "main"}, {"short_side": 360}
        ]}))
        .expect("valid");
        assert_eq!(
            detailed.ladder,
            [
                Rung {
                    short_side: 720,
                    kbps: 2500,
                    profile: H264Profile::Main
                },
                Rung::sized(360)
            ]
        );
    }

    #[test]
    fn bad_ladders_are_field_errors_at_the_ladder() {
        let too_many: Vec<u32> = (0..=MAX_RUNGS as u32).map(|i| 200 + 2 * i).collect();
        for (ladder, expected) in [
            (json!(too_many), "at most 8 rungs"),
            (json!([]), "at least one"),
            (
                json!([721]),
                "rung 1: the short side must be an even number",
            ),
            (json!([720, 2]), "rung 2: the short side"),
            (json!([720, 720]), "rung 2: 720 is listed twice"),
            (json!("720,big"), "rung 2"),
            (json!([{"short_side": 720, "kbps": 1}]), "kbps must be"),
            (
                json!([{"short_side": 720, "profile": "extended"}]),
                "extended",
            ),
            (
                json!([{"short_side": 720, "fps": 60}]),
                "unknown field \"fps\"",
            ),
            (json!([{"kbps": 900}]), "the short side"),
            (json!(true), "must be a list"),
        ] {
            let fields = parse_json(json!({"ladder": ladder}))
                .expect_err("refused")
                .into_fields();
            assert_eq!(fields.keys().collect::<Vec<_>>(), ["o.ladder"], "{ladder}");
            assert!(
                fields["o.ladder"].contains(expected),
                "{ladder}: {fields:?}"
            );
        }
    }

    #[test]
    fn segment_audio_and_preset_are_checked() {
        let options =
            parse_json(json!({"segment": "2s", "audio_kbps": 96, "preset": "fast"})).expect("ok");
        assert_eq!(
            (options.segment, options.audio_kbps, options.preset),
            (2.0, 96, Preset::Fast)
        );
        let fields = parse_json(json!({
            "segment": 0.5, "audio_kbps": 8, "preset": "placebo", "crf": 20
        }))
        .expect_err("bad")
        .into_fields();
        assert_eq!(
            fields.keys().collect::<Vec<_>>(),
            ["o.audio_kbps", "o.crf", "o.preset", "o.segment"]
        );
        assert!(fields["o.crf"].contains("ladder"), "{fields:?}");
    }

    #[test]
    fn options_round_trip_through_the_operation() {
        let op = Operation::parse(
            "package",
            &json!({"ladder": [{"short_side": 540, "kbps": 2000}, 360], "segment": 6}),
            "o",
        )
        .expect("valid");
        assert_eq!(op.info().artefacts, ["hls", "dash"]);
        let again = Operation::parse(op.name(), &op.options(), "o").expect("valid");
        assert_eq!(op, again);
    }
}
