//! The containers Vidsnap accepts. A file must pass twice: by its extension (what the user claims)
//! and by its content (what ffprobe finds), so a `.mp4` that is really text or an mp3 is refused.

use std::{fmt, path::Path};

use serde::{Deserialize, Serialize};

/// An accepted video container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Container {
    Mp4,
    Mov,
    Mkv,
    Webm,
    Avi,
    Flv,
    Wmv,
    /// MPEG transport stream: readable, but not accepted unless configured (broadcast captures).
    Ts,
}

impl Container {
    pub const ALL: [Container; 8] = [
        Self::Mp4,
        Self::Mov,
        Self::Mkv,
        Self::Webm,
        Self::Avi,
        Self::Flv,
        Self::Wmv,
        Self::Ts,
    ];

    /// What Vidsnap accepts unless configured otherwise: the seeds' six plus WebM.
    pub const DEFAULT_ACCEPTED: [Container; 7] = [
        Self::Mp4,
        Self::Mov,
        Self::Mkv,
        Self::Webm,
        Self::Avi,
        Self::Flv,
        Self::Wmv,
    ];

    pub fn extension(self) -> &'static str {
        match self {
            Self::Mp4 => "mp4",
            Self::Mov => "mov",
            Self::Mkv => "mkv",
            Self::Webm => "webm",
            Self::Avi => "avi",
            Self::Flv => "flv",
            Self::Wmv => "wmv",
            Self::Ts => "ts",
        }
    }

    /// Whether a file name claims an audio-only format (`.m4a`, `.mp3`, `.wav`, …): not a video
    /// container, but what a recipe other than the frames one may take (`qc` rates audio-only
    /// files 1 and 2).
    pub fn is_audio_file_name(name: &str) -> bool {
        const AUDIO: [&str; 7] = ["m4a", "mp3", "wav", "aac", "flac", "ogg", "opus"];
        Path::new(name)
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| AUDIO.iter().any(|a| a.eq_ignore_ascii_case(e)))
    }

    /// The container a file name claims, by its extension, case-insensitively.
    pub fn from_file_name(name: &str) -> Option<Self> {
        let extension = Path::new(name).extension()?.to_str()?;
        Self::ALL
            .into_iter()
            .find(|c| c.extension().eq_ignore_ascii_case(extension))
    }

    /// Whether ffprobe's `format_name` (a comma-separated list of demuxer names, e.g.
    /// `mov,mp4,m4a,3gp,3g2,mj2` or `matroska,webm`) is a demuxer for this container family.
    /// Families, not exact names: ffprobe cannot tell mp4 from mov, nor mkv from webm.
    pub fn matches_demuxer(self, format_name: &str) -> bool {
        let names: Vec<&str> = format_name.split(',').map(str::trim).collect();
        let family: &[&str] = match self {
            Self::Mp4 | Self::Mov => &["mov", "mp4"],
            Self::Mkv | Self::Webm => &["matroska", "webm"],
            Self::Avi => &["avi"],
            Self::Flv => &["flv"],
            Self::Wmv => &["asf"],
            Self::Ts => &["mpegts"],
        };
        names.iter().any(|n| family.contains(n))
    }

    /// The accepted container whose family ffprobe's `format_name` belongs to, if any.
    pub fn from_demuxer(format_name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.matches_demuxer(format_name))
    }

    /// Extensions as a readable list, for error messages.
    pub fn list(containers: &[Container]) -> String {
        containers
            .iter()
            .map(|c| c.extension())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::str::FromStr for Container {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.extension().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown container {text:?}: use one of {}",
                    Self::list(&Self::ALL)
                )
            })
    }
}

impl fmt::Display for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_is_case_insensitive() {
        assert_eq!(Container::from_file_name("Clip.MP4"), Some(Container::Mp4));
        assert_eq!(Container::from_file_name("a.b.WebM"), Some(Container::Webm));
        assert_eq!(Container::from_file_name("song.mp3"), None);
        assert_eq!(Container::from_file_name("noext"), None);
    }

    #[test]
    fn demuxer_families() {
        assert_eq!(
            Container::from_demuxer("mov,mp4,m4a,3gp,3g2,mj2"),
            Some(Container::Mp4)
        );
        assert!(Container::Mkv.matches_demuxer("matroska,webm"));
        assert!(Container::Wmv.matches_demuxer("asf"));
        assert_eq!(Container::from_demuxer("mp3"), None);
        assert_eq!(Container::from_demuxer("tty"), None);
        assert_eq!(Container::from_demuxer("mpegts"), Some(Container::Ts));
    }
}
