//! What a frame-extraction request is made of, and which times it samples.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// Seconds between two sampled frames; always finite and strictly positive.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct FrameInterval(f64);

/// Why a [`FrameInterval`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntervalError {
    #[error("interval {0:?} is not a duration: use e.g. 10s, 1.5s, 500ms or 2m")]
    Malformed(String),
    #[error("interval must be greater than zero")]
    NotPositive,
    #[error("interval must be at least 1ms (a frame at 1000 fps)")]
    TooShort,
}

impl FrameInterval {
    /// The interval the seeds used by default.
    pub const DEFAULT_SECONDS: f64 = 10.0;
    /// The shortest interval accepted anywhere: one frame at 1000 fps. (Once a video is probed,
    /// the engine also refuses an interval shorter than one of its frames.)
    pub const MIN_SECONDS: f64 = 0.001;

    pub fn from_seconds(seconds: f64) -> Result<Self, IntervalError> {
        if !seconds.is_finite() || seconds <= 0.0 {
            return Err(IntervalError::NotPositive);
        }
        // A hair of tolerance: "1ms" parses to 0.001 * 1.0, which may round below 0.001.
        if seconds < Self::MIN_SECONDS * (1.0 - 1e-9) {
            return Err(IntervalError::TooShort);
        }
        Ok(Self(seconds))
    }

    pub fn seconds(self) -> f64 {
        self.0
    }
}

impl Default for FrameInterval {
    fn default() -> Self {
        Self(Self::DEFAULT_SECONDS)
    }
}

impl TryFrom<f64> for FrameInterval {
    type Error = IntervalError;
    fn try_from(seconds: f64) -> Result<Self, Self::Error> {
        Self::from_seconds(seconds)
    }
}

impl From<FrameInterval> for f64 {
    fn from(interval: FrameInterval) -> f64 {
        interval.0
    }
}

impl FromStr for FrameInterval {
    type Err = IntervalError;

    /// Accepts a plain number of seconds or one with a unit: `ms`, `s`, `m`, `h`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        // A plain number of seconds, scientific notation included ("1e-3").
        if let Ok(seconds) = trimmed.parse::<f64>() {
            return Self::from_seconds(seconds);
        }
        let malformed = || IntervalError::Malformed(text.to_owned());
        let split = trimmed
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let value: f64 = number.trim().parse().map_err(|_| malformed())?;
        let scale = match unit.trim() {
            "" | "s" | "sec" => 1.0,
            "ms" => 0.001,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            _ => return Err(malformed()),
        };
        Self::from_seconds(value * scale)
    }
}

impl fmt::Display for FrameInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0)
    }
}

/// How many frames [`target_times`] gives, computed without building them:
/// ceil(duration / N), at least 1.
pub fn frame_count(duration_seconds: f64, interval: FrameInterval) -> u64 {
    let count = (duration_seconds.max(0.0) / interval.seconds()).ceil();
    if count.is_finite() {
        (count as u64).max(1)
    } else {
        u64::MAX
    }
}

/// The target times for a video: t = 0, N, 2N, ... strictly below the duration, i.e.
/// ceil(duration / N) frames, and always at least the frame at 0 (a video shorter than N, or one
/// whose duration is zero, still yields its first frame). Lazy: nothing is built up front, however
/// many frames are asked for.
pub fn target_times(duration_seconds: f64, interval: FrameInterval) -> TargetTimes {
    TargetTimes {
        duration: duration_seconds,
        every: interval,
        next: 0,
    }
}

/// The sequence [`target_times`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TargetTimes {
    duration: f64,
    every: FrameInterval,
    /// Index of the next time.
    next: u64,
}

impl TargetTimes {
    /// How many times the whole sequence holds (from its start).
    pub fn total(&self) -> u64 {
        frame_count(self.duration, self.every)
    }
}

impl Iterator for TargetTimes {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        // Multiplying (rather than accumulating) keeps 0.1 * 30 from drifting to 2.9999999.
        let t = self.next as f64 * self.every.seconds();
        if self.next > 0 && t >= self.duration {
            return None;
        }
        self.next += 1;
        Some(t)
    }
}

/// Which frame stands for a target time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FrameMode {
    /// The frame shown at t: the last frame whose presentation time is <= t.
    #[default]
    Exact,
    /// The keyframe at or before t (cheaper: no decoding past the keyframe).
    Keyframe,
}

impl FrameMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Keyframe => "keyframe",
        }
    }
}

impl FromStr for FrameMode {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "exact" => Ok(Self::Exact),
            "keyframe" | "key" => Ok(Self::Keyframe),
            other => Err(format!("unknown mode {other:?}: use exact or keyframe")),
        }
    }
}

impl fmt::Display for FrameMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The image format frames are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    #[default]
    Jpg,
    Png,
    Webp,
}

impl ImageFormat {
    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpg => "jpg",
            Self::Png => "png",
            Self::Webp => "webp",
        }
    }

    pub fn mime_type(self) -> &'static str {
        match self {
            Self::Jpg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
        }
    }
}

impl FromStr for ImageFormat {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" => Ok(Self::Jpg),
            "png" => Ok(Self::Png),
            "webp" => Ok(Self::Webp),
            other => Err(format!(
                "unknown image format {other:?}: use jpg, png or webp"
            )),
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

/// Image quality from 1 (smallest) to 100 (best), the same scale for every lossy format.
/// PNG is lossless and ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Quality(u8);

impl Quality {
    /// 95 maps to JPEG `-q:v 3`, the setting measured in `FRAMES.md`: visually lossless at about
    /// 16 ms per 1080p frame.
    pub const DEFAULT: Quality = Quality(95);

    pub fn new(value: u8) -> Result<Self, String> {
        if (1..=100).contains(&value) {
            Ok(Self(value))
        } else {
            Err(format!("quality must be between 1 and 100, got {value}"))
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }

    /// The MJPEG quantiser scale (2 = best .. 31 = worst) this quality maps to.
    pub fn jpeg_qscale(self) -> u8 {
        let worst = 31.0;
        let span = 29.0;
        (worst - (f64::from(self.0) - 1.0) * span / 99.0).round() as u8
    }
}

impl Default for Quality {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<u8> for Quality {
    type Error = String;
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Quality> for u8 {
    fn from(quality: Quality) -> u8 {
        quality.0
    }
}

impl FromStr for Quality {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let value: u8 = text
            .trim()
            .parse()
            .map_err(|_| format!("quality must be a whole number from 1 to 100, got {text:?}"))?;
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every(seconds: f64) -> FrameInterval {
        FrameInterval::from_seconds(seconds).expect("positive")
    }

    fn times(duration: f64, seconds: f64) -> Vec<f64> {
        target_times(duration, every(seconds)).collect()
    }

    #[test]
    fn targets_follow_ceil_rule() {
        assert_eq!(times(61.0, 20.0), vec![0.0, 20.0, 40.0, 60.0]);
        assert_eq!(times(60.0, 20.0), vec![0.0, 20.0, 40.0]);
        assert_eq!(times(60.5, 20.0).len(), 4);
    }

    #[test]
    fn frame_counts_match_the_targets_without_building_them() {
        for (duration, seconds) in [
            (61.0, 20.0),
            (60.0, 20.0),
            (3.0, 0.1),
            (0.0, 10.0),
            (3.0, 10.0),
        ] {
            assert_eq!(
                frame_count(duration, every(seconds)),
                times(duration, seconds).len() as u64,
                "{duration} s every {seconds} s"
            );
        }
        assert_eq!(frame_count(3.0, every(0.001)), 3_000);
        assert_eq!(target_times(3.0, every(0.001)).count(), 3_000);
        // Lazy: a four-hour video at the shortest interval is not built up front.
        let mut long = target_times(4.0 * 3600.0, every(0.001));
        assert_eq!(long.total(), 14_400_000);
        assert_eq!(long.nth(2), Some(0.002));
    }

    #[test]
    fn an_interval_below_a_millisecond_is_refused() {
        assert_eq!(
            FrameInterval::from_seconds(1e-9),
            Err(IntervalError::TooShort)
        );
        assert_eq!(
            "0.000000001s".parse::<FrameInterval>(),
            Err(IntervalError::TooShort)
        );
        assert_eq!(
            "0.5ms".parse::<FrameInterval>(),
            Err(IntervalError::TooShort)
        );
        assert_eq!("1ms".parse::<FrameInterval>().map(f64::from), Ok(0.001));
        // Scientific notation is a number of seconds too.
        assert_eq!(
            "1e-9".parse::<FrameInterval>(),
            Err(IntervalError::TooShort)
        );
        assert_eq!("2.5e1".parse::<FrameInterval>().map(f64::from), Ok(25.0));
        assert_eq!(
            "inf".parse::<FrameInterval>(),
            Err(IntervalError::NotPositive)
        );
    }

    #[test]
    fn interval_longer_than_video_gives_one_frame() {
        assert_eq!(times(3.0, 10.0), vec![0.0]);
        assert_eq!(times(0.0, 10.0), vec![0.0]);
    }

    #[test]
    fn fractional_intervals_do_not_drift() {
        let times = times(3.0, 0.1);
        assert_eq!(times.len(), 30);
        assert!((times[29] - 2.9).abs() < 1e-9);
    }

    #[test]
    fn interval_parsing() {
        assert_eq!("10s".parse::<FrameInterval>().map(f64::from), Ok(10.0));
        assert_eq!("10".parse::<FrameInterval>().map(f64::from), Ok(10.0));
        assert_eq!("1.5s".parse::<FrameInterval>().map(f64::from), Ok(1.5));
        assert_eq!("500ms".parse::<FrameInterval>().map(f64::from), Ok(0.5));
        assert_eq!("2m".parse::<FrameInterval>().map(f64::from), Ok(120.0));
        assert_eq!(
            "0s".parse::<FrameInterval>(),
            Err(IntervalError::NotPositive)
        );
        assert_eq!(
            "-5s".parse::<FrameInterval>(),
            Err(IntervalError::NotPositive)
        );
        assert!(matches!(
            "ten".parse::<FrameInterval>(),
            Err(IntervalError::Malformed(_))
        ));
        assert!(matches!(
            "10 parsecs".parse::<FrameInterval>(),
            Err(IntervalError::Malformed(_))
        ));
    }

    #[test]
    fn quality_scale() {
        assert_eq!(Quality::DEFAULT.jpeg_qscale(), 3);
        assert_eq!(Quality::new(100).map(Quality::jpeg_qscale), Ok(2));
        assert_eq!(Quality::new(1).map(Quality::jpeg_qscale), Ok(31));
        assert!(Quality::new(0).is_err());
        assert!("101".parse::<Quality>().is_err());
    }

    #[test]
    fn formats_and_modes_parse_case_insensitively() {
        assert_eq!("JPEG".parse::<ImageFormat>(), Ok(ImageFormat::Jpg));
        assert_eq!("WebP".parse::<ImageFormat>(), Ok(ImageFormat::Webp));
        assert_eq!("Keyframe".parse::<FrameMode>(), Ok(FrameMode::Keyframe));
        assert!("gif".parse::<ImageFormat>().is_err());
    }
}
