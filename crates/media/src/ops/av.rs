//! What the audio/video operations (`split`, `trim`, `concat`, `mux`, `merge_call`) share:
//! reading an input of any common audio or video format, the container an output goes in, and
//! one ffmpeg pass with its progress.
//!
//! Their inputs are not only videos (a call centre's recording is a WAV or an MP3), so they are
//! not held to the accepted video containers; they are held to the size and duration limits.

use std::{ffi::OsString, path::Path};

use vidsnap_domain::ErrorCode;

use super::{INSTALL_FFMPEG_BINARY, OpInput, stem};
use crate::{
    MediaEngine, MediaError, Progress,
    engine::{file_size, file_url, strip_path},
    probe::{Probe, StreamInfo},
    runner::Invocation,
    validate,
};

/// The bit rate of every AAC encoding: transparent for speech and music in stereo.
pub(super) const AAC_BITRATE: &str = "128k";

/// An input that was probed and fits the limits.
#[derive(Debug, Clone)]
pub(super) struct Media {
    pub probe: Probe,
    /// Seconds: the container's, else the first audio stream's.
    pub duration: f64,
}

impl Media {
    pub fn video(&self) -> Option<&StreamInfo> {
        self.probe.video()
    }

    pub fn audio(&self) -> Option<&StreamInfo> {
        self.probe.streams.iter().find(|s| s.kind == "audio")
    }

    /// The video stream, or `no-video-stream` naming the input (`role`: "the recording").
    pub fn need_video(&self, role: &str) -> Result<&StreamInfo, MediaError> {
        self.video().ok_or_else(|| {
            MediaError::rejected(
                ErrorCode::NoVideoStream,
                format!("{role} has no video stream"),
            )
        })
    }

    /// The audio stream, or `no-audio-stream` naming the input.
    pub fn need_audio(&self, role: &str) -> Result<&StreamInfo, MediaError> {
        self.audio().ok_or_else(|| {
            MediaError::rejected(
                ErrorCode::NoAudioStream,
                format!("{role} has no audio stream"),
            )
        })
    }

    /// How long the first audio stream lasts: its own duration when the container states it
    /// (decoders hand out a whole last frame, up to 1024 samples past it), else the file's.
    pub fn audio_duration(&self) -> f64 {
        self.audio()
            .and_then(|a| a.duration)
            .filter(|d| *d > 0.0)
            .map_or(self.duration, |d| d.min(self.duration))
    }

    /// How long the video stream lasts, likewise.
    pub fn video_duration(&self) -> f64 {
        self.video()
            .and_then(|v| v.duration)
            .filter(|d| *d > 0.0)
            .map_or(self.duration, |d| d.min(self.duration))
    }
}

/// Probes `input` (`role` names it in messages: "the call audio", "input 2") and checks it
/// against the size and duration limits.
pub(super) async fn read(
    engine: &MediaEngine,
    input: &OpInput,
    role: &str,
) -> Result<Media, MediaError> {
    let limits = &engine.config.limits;
    let size = file_size(&input.path).await?;
    validate::check_size(size, limits).map_err(|e| named(e, role))?;
    let probe = engine.probe_media(&input.path).await?.map_err(|reason| {
        MediaError::rejected(
            ErrorCode::NotAVideo,
            format!("{role} is not an audio or video file FFmpeg can read ({reason})"),
        )
    })?;
    let first_audio = probe.streams.iter().find(|s| s.kind == "audio");
    let duration = probe
        .duration
        .or_else(|| first_audio.and_then(|a| a.duration))
        .filter(|d| *d > 0.0)
        .ok_or_else(|| {
            MediaError::rejected(
                ErrorCode::CorruptInput,
                format!("{role} states no duration, in its container or its streams"),
            )
        })?;
    if let Some(max) = limits.max_duration_seconds.filter(|max| duration > *max) {
        return Err(MediaError::rejected(
            ErrorCode::TooLong,
            format!("{role} lasts {duration:.1} s; the limit is {max} s"),
        ));
    }
    Ok(Media { probe, duration })
}

fn named(error: MediaError, role: &str) -> MediaError {
    match error {
        MediaError::Rejected { code, message } => {
            MediaError::rejected(code, format!("{role}: {message}"))
        }
        other => other,
    }
}

/// `time-out-of-range`: a time in the options that the input does not reach.
pub(super) fn out_of_range(message: String) -> MediaError {
    MediaError::rejected(ErrorCode::TimeOutOfRange, message)
}

/// A container an output is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Format {
    /// ffmpeg's muxer (`-f`).
    pub muxer: &'static str,
    pub extension: &'static str,
    pub content_type: &'static str,
}

pub(super) const MP4: Format = Format {
    muxer: "mp4",
    extension: "mp4",
    content_type: "video/mp4",
};
pub(super) const MATROSKA: Format = Format {
    muxer: "matroska",
    extension: "mkv",
    content_type: "video/x-matroska",
};
/// Lossless audio: a trimmed or joined track is encoded once more, by whoever uses it.
pub(super) const FLAC: Format = Format {
    muxer: "flac",
    extension: "flac",
    content_type: "audio/flac",
};

/// Video codecs an MP4 file can carry as they are.
const MP4_VIDEO: [&str; 6] = ["h264", "hevc", "av1", "vp9", "mpeg4", "mpeg2video"];

/// MP4 when the video codec fits in it, else Matroska (which takes any).
pub(super) fn for_video(codec: Option<&str>) -> Format {
    match codec {
        Some(codec) if MP4_VIDEO.contains(&codec) => MP4,
        _ => MATROSKA,
    }
}

/// The usual file for an audio codec copied as it is; Matroska audio for anything else.
pub(super) fn for_audio(codec: Option<&str>) -> Format {
    let (muxer, extension, content_type) = match codec.unwrap_or_default() {
        "aac" | "alac" => ("mp4", "m4a", "audio/mp4"),
        "mp3" => ("mp3", "mp3", "audio/mpeg"),
        "flac" => return FLAC,
        "opus" | "vorbis" => ("ogg", "ogg", "audio/ogg"),
        "pcm_s16le" | "pcm_s24le" | "pcm_s32le" | "pcm_u8" | "pcm_f32le" | "pcm_alaw"
        | "pcm_mulaw" => ("wav", "wav", "audio/wav"),
        _ => ("matroska", "mka", "audio/x-matroska"),
    };
    Format {
        muxer,
        extension,
        content_type,
    }
}

/// `-f MUXER [-movflags +faststart] file:PATH`: an output of a pass. MP4s get their index in
/// front, so a player can start before the whole file is there.
pub(super) fn output(format: Format, path: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["-f".into(), format.muxer.into()];
    if format.muxer == "mp4" {
        args.extend(["-movflags".into(), "+faststart".into()]);
    }
    args.push(file_url(path));
    args
}

/// The name an output is stored under: the input's name with a suffix (`call-merged.mp4`).
pub(super) fn stored_name(input: &OpInput, suffix: &str, format: Format) -> String {
    format!("{}-{suffix}.{}", stem(&input.file_name), format.extension)
}

/// The channel layout audio is normalised to: mono stays mono, anything more becomes stereo.
pub(super) fn layout(channels: Option<u32>) -> &'static str {
    match channels {
        Some(1) => "mono",
        _ => "stereo",
    }
}

pub(super) fn channel_count(layout: &str) -> u32 {
    if layout == "mono" { 1 } else { 2 }
}

/// The sample rate audio is encoded at: the source's when AAC takes it, else 48 kHz.
pub(super) fn aac_rate(rate: Option<u32>) -> u32 {
    rate.filter(|r| (8_000..=96_000).contains(r))
        .unwrap_or(48_000)
}

/// The number of samples in `seconds` at `rate`, to the nearest: where a cut falls.
pub(super) fn samples(seconds: f64, rate: u32) -> u64 {
    (seconds * f64::from(rate)).round().max(0.0) as u64
}

/// One ffmpeg pass: `args` after the common ones, run in `work` (every output is named with a
/// path in it), `input_seconds` of media read (for the time allowed), `output_seconds` written
/// (for the percentage, said from 0 to 99; the operation says 100 when its files are there).
///
/// A failure is about the machine (retried) unless ffmpeg says the input is damaged, which is
/// `corrupt-input` (not retried).
pub(super) async fn ffmpeg(
    engine: &MediaEngine,
    args: Vec<OsString>,
    inputs: &[&Path],
    work: &Path,
    input_seconds: f64,
    output_seconds: f64,
    progress: &dyn Progress,
) -> Result<(), MediaError> {
    let invocation = Invocation::new(
        engine.ffmpeg_program(),
        INSTALL_FFMPEG_BINARY,
        engine.timeout_for(input_seconds),
    )
    .current_dir(work)
    .args(["-nostdin", "-hide_banner", "-nostats", "-v", "error", "-y"])
    .args(["-progress", "pipe:1"])
    .args(args);
    let mut running = engine.runner.start(invocation).await?;
    let mut said = 0;
    while let Some(line) = running.next_line().await? {
        // `-progress` writes `key=value` blocks; out_time_us is how far the outputs got.
        let Some(micros) = line
            .strip_prefix("out_time_us=")
            .and_then(|v| v.trim().parse::<f64>().ok())
        else {
            continue;
        };
        if output_seconds > 0.0 {
            let percent = (micros / 1e6 / output_seconds * 100.0).clamp(0.0, 99.0) as u8;
            if percent > said {
                said = percent;
                progress.percent(percent);
            }
        }
    }
    let finished = running.wait().await?;
    if finished.status.success() {
        return Ok(());
    }
    let damaged = [
        "Invalid data found when processing input",
        "moov atom not found",
    ]
    .iter()
    .any(|sign| finished.stderr_tail.contains(sign));
    // Killed by a signal (the OOM killer, an operator) or a full disk is about the machine.
    let machine = finished.status.code().is_none()
        || finished.stderr_tail.contains("No space left on device");
    if damaged && !machine {
        let mut reason = finished.stderr_tail.lines().last().unwrap_or("").to_owned();
        for input in inputs {
            reason = strip_path(&reason, input);
        }
        return Err(MediaError::rejected(
            ErrorCode::CorruptInput,
            format!("FFmpeg cannot read the input: {reason}"),
        ));
    }
    Err(finished.into_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_go_in_a_container_that_takes_their_codec() {
        assert_eq!(for_video(Some("h264")), MP4);
        assert_eq!(for_video(Some("vp8")), MATROSKA);
        assert_eq!(for_video(None), MATROSKA);
        assert_eq!(for_audio(Some("aac")).extension, "m4a");
        assert_eq!(for_audio(Some("pcm_s16le")).extension, "wav");
        assert_eq!(for_audio(Some("opus")).muxer, "ogg");
        assert_eq!(for_audio(Some("amr_nb")).extension, "mka");
    }

    #[test]
    fn layouts_rates_and_samples() {
        assert_eq!(layout(Some(1)), "mono");
        assert_eq!(layout(Some(6)), "stereo");
        assert_eq!(layout(None), "stereo");
        assert_eq!(aac_rate(Some(8_000)), 8_000);
        assert_eq!(aac_rate(Some(192_000)), 48_000);
        assert_eq!(samples(12.0, 48_000), 576_000);
        assert_eq!(samples(0.1, 44_100), 4_410);
    }

    #[test]
    fn stored_names_keep_the_input_s_stem() {
        let input = OpInput {
            path: "/tmp/x".into(),
            file_name: "screen.recording.webm".into(),
        };
        assert_eq!(
            stored_name(&input, "merged", MATROSKA),
            "screen.recording-merged.mkv"
        );
    }
}
