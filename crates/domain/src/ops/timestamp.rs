//! A time into a media file, as the audio/video operations take it: seconds (`12.5`, `"12.5"`,
//! `"1.5s"`, `"500ms"`, `"2m"`) or a clock time `HH:MM:SS(.mmm)` (`"00:00:12"`, as seed 004's
//! `callEndingTimestamp` was written).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// The latest time an option may name: 100 hours, far beyond any accepted input (the duration
/// limit defaults to 4 h), and small enough that every time is exact to the microsecond.
pub const MAX_SECONDS: f64 = 100.0 * 3600.0;

/// Seconds from the start of a file, `0 <= t <= MAX_SECONDS`. Written back as a number of
/// seconds, which [`Timestamp::from_str`] and option parsing both read.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Timestamp(f64);

/// What every time option says when it cannot be read.
pub(crate) const TIMESTAMP_RULE: &str =
    "must be a time: seconds (12.5, \"12.5s\", \"500ms\") or HH:MM:SS(.mmm) (\"00:00:12.500\")";

impl Timestamp {
    pub const ZERO: Timestamp = Timestamp(0.0);

    pub fn from_seconds(seconds: f64) -> Result<Self, String> {
        if seconds.is_finite() && (0.0..=MAX_SECONDS).contains(&seconds) {
            Ok(Self(seconds))
        } else {
            Err(format!(
                "{TIMESTAMP_RULE}, from 0 to {} hours",
                MAX_SECONDS / 3600.0
            ))
        }
    }

    pub fn seconds(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Timestamp {
    type Error = String;
    fn try_from(seconds: f64) -> Result<Self, String> {
        Self::from_seconds(seconds)
    }
}

impl From<Timestamp> for f64 {
    fn from(t: Timestamp) -> f64 {
        t.0
    }
}

impl FromStr for Timestamp {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let seconds = if text.contains(':') {
            clock(text)
        } else {
            super::fields::parse_seconds(text)
        };
        seconds.map_or_else(|| Err(TIMESTAMP_RULE.to_owned()), Self::from_seconds)
    }
}

/// `HH:MM:SS` or `HH:MM:SS.fff` (hours of any width, minutes and seconds of two digits below 60).
fn clock(text: &str) -> Option<f64> {
    let mut parts = text.split(':');
    let (hours, minutes, seconds) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, "0"));
    if !digits(hours) || minutes.len() != 2 || !digits(minutes) || whole.len() != 2 {
        return None;
    }
    if !digits(whole) || !digits(fraction) {
        return None;
    }
    let (hours, minutes, whole): (f64, f64, f64) = (
        hours.parse().ok()?,
        minutes.parse().ok()?,
        whole.parse().ok()?,
    );
    if minutes >= 60.0 || whole >= 60.0 {
        return None;
    }
    let fraction: f64 = format!("0.{fraction}").parse().ok()?;
    Some(hours * 3600.0 + minutes * 60.0 + whole + fraction)
}

/// `HH:MM:SS.mmm`, as logs and messages show a time.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = (self.0 * 1000.0).round() as u64;
        let (hours, rest) = (millis / 3_600_000, millis % 3_600_000);
        let (minutes, rest) = (rest / 60_000, rest % 60_000);
        write!(
            f,
            "{hours:02}:{minutes:02}:{:02}.{:03}",
            rest / 1000,
            rest % 1000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(text: &str) -> Result<f64, String> {
        text.parse::<Timestamp>().map(Timestamp::seconds)
    }

    #[test]
    fn clock_times_and_seconds_are_read() {
        assert_eq!(seconds("00:00:12"), Ok(12.0));
        assert_eq!(seconds("00:00:14"), Ok(14.0), "seed 004's example");
        assert_eq!(seconds("01:02:03.250"), Ok(3723.25));
        assert_eq!(seconds("100:00:00"), Ok(MAX_SECONDS));
        assert_eq!(seconds("12.5"), Ok(12.5));
        assert_eq!(seconds(" 1.5s "), Ok(1.5));
        assert_eq!(seconds("500ms"), Ok(0.5));
        assert_eq!(seconds("2m"), Ok(120.0));
        assert_eq!(seconds("0"), Ok(0.0));
    }

    #[test]
    fn malformed_times_are_refused() {
        for text in [
            "",
            "12:00",
            "0:0:12",
            "00:60:00",
            "00:00:60",
            "00:00:1x",
            "-1",
            "-00:00:01",
            "00:00:12.",
            "00:00:12.5.1",
            "1:2:3:4",
            "twelve",
            "nan",
            "inf",
            "100:00:01",
            "00:00:+1",
        ] {
            assert!(seconds(text).is_err(), "{text:?} was read");
        }
        assert!(Timestamp::from_seconds(-0.1).is_err());
        assert!(Timestamp::from_seconds(f64::NAN).is_err());
    }

    #[test]
    fn written_as_seconds_and_shown_as_a_clock() {
        let t: Timestamp = "00:01:02.5".parse().expect("valid");
        assert_eq!(
            serde_json::to_value(t).expect("json"),
            serde_json::json!(62.5)
        );
        assert_eq!(t.to_string(), "00:01:02.500");
        let back: Timestamp = serde_json::from_value(serde_json::json!(62.5)).expect("read");
        assert_eq!(back, t);
        assert!(serde_json::from_value::<Timestamp>(serde_json::json!(-1)).is_err());
    }
}
