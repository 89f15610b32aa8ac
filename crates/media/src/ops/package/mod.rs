//! `package`: HLS and DASH from **one** ffmpeg process. The source is decoded once, turned
//! upright, split and scaled into every rendition ([`plan`]); each is encoded with x264 with a
//! keyframe forced at every segment boundary (closed GOP, no scene-cut keyframes), so
//! renditions switch cleanly; ffmpeg's `dash` muxer cuts them into CMAF segments (fragmented
//! MP4: an init segment and numbered media segments per rendition) and describes the same files
//! twice, as a DASH MPD and as HLS playlists ([`playlists`] makes those fit for VOD and checks
//! that every URI stays inside the package).
//!
//! Layout, in `package/` of the work directory and under the step's prefix once stored:
//! `master.m3u8` (HLS), `manifest.mpd` (DASH), `media_{i}.m3u8` (one HLS variant playlist per
//! representation `i`), `stream{i}/init.mp4` and `stream{i}/seg-{n:05}.m4s` (n from 1).
//! Representations are the video renditions largest first, then the audio when there is one.

mod plan;
mod playlists;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::json;
use vidsnap_domain::{ErrorCode, ops::PackageOptions};

use self::plan::{AudioFacts, MASTER, MPD, Plan, STREAM_DIR, SourceFacts};
use super::{OpInput, OpOutput, Produced};
use crate::{
    MediaEngine, MediaError, Progress,
    engine::{file_url, strip_path},
    frames::Source,
    probe::Probe,
    runner::Invocation,
};

/// What to do when ffmpeg cannot be started.
const INSTALL_FFMPEG_BINARY: &str = "install FFmpeg with libx264 (Debian/Ubuntu: `apt-get install \
     ffmpeg`, macOS: `brew install ffmpeg`); ffmpeg is taken from beside VIDSNAP_MEDIA__FFPROBE \
     (`--ffprobe`) when that is a path, else from PATH";

/// The folder of the work directory the package is written in; artefacts are named by their
/// path inside it.
const PACKAGE_DIR: &str = "package";

pub(crate) const HLS_TYPE: &str = "application/vnd.apple.mpegurl";
pub(crate) const DASH_TYPE: &str = "application/dash+xml";
/// A CMAF media segment (RFC 8216 and IANA's `video/iso.segment`); the audio rendition's
/// segments and init segment are `audio/mp4`.
pub(crate) const SEGMENT_TYPE: &str = "video/iso.segment";

pub(super) async fn run(
    engine: &MediaEngine,
    options: &PackageOptions,
    input: &OpInput,
    work: &Path,
    progress: &dyn Progress,
) -> Result<OpOutput, MediaError> {
    progress.percent(0);
    let probe = engine.accept(&input.path, &input.file_name).await?;
    let facts = facts(engine, &input.path, &probe).await?;
    let plan = plan::plan(options, &facts);
    let out = work.join(PACKAGE_DIR);
    for i in 0..plan.streams() {
        let dir = out.join(format!("{STREAM_DIR}{i}"));
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| MediaError::io("creating", &dir, e))?;
    }
    encode(engine, &plan, &input.path, &probe, &out, progress).await?;
    let produced = publishable(&plan, &out).await?;
    progress.percent(100);

    let segments = produced
        .iter()
        .filter(|p| p.file_name.starts_with(&format!("{STREAM_DIR}0/seg-")))
        .count();
    let mut renditions: Vec<serde_json::Value> = plan
        .video
        .iter()
        .enumerate()
        .map(|(i, r)| {
            json!({
                "kind": "video",
                "short_side": r.short_side,
                "width": r.width,
                "height": r.height,
                "kbps": r.kbps,
                "profile": r.profile,
                "frame_rate": plan.output_rate,
                "playlist": plan::variant_playlist(i),
                "dir": format!("{STREAM_DIR}{i}"),
            })
        })
        .collect();
    if let Some(audio) = &plan.audio {
        let i = plan.video.len();
        renditions.push(json!({
            "kind": "audio",
            "channels": audio.channels,
            "kbps": audio.kbps,
            "playlist": plan::variant_playlist(i),
            "dir": format!("{STREAM_DIR}{i}"),
        }));
    }
    Ok(OpOutput {
        produced,
        result: Some(json!({
            "hls": MASTER,
            "dash": MPD,
            "segment": plan.segment,
            "segments": segments,
            "renditions": renditions,
            "probe": Source {
                file_name: input.file_name.clone(),
                probe,
            },
        })),
    })
}

/// The parts of ffprobe's JSON that [`crate::probe::parse`] leaves out.
#[derive(Debug, Default, Deserialize)]
struct Extra {
    #[serde(default)]
    streams: Vec<ExtraStream>,
}

#[derive(Debug, Deserialize)]
struct ExtraStream {
    index: u32,
    sample_aspect_ratio: Option<String>,
}

/// What decides the renditions: the probe, and the pixels' aspect (which it leaves out).
async fn facts(
    engine: &MediaEngine,
    input: &Path,
    probe: &Probe,
) -> Result<SourceFacts, MediaError> {
    let video = probe
        .video()
        .ok_or_else(|| MediaError::Internal("accepted without a video stream".into()))?;
    let (Some(width), Some(height)) = (video.width, video.height) else {
        return Err(MediaError::rejected(
            ErrorCode::CorruptInput,
            "the video stream states no picture size",
        ));
    };
    let extra: Extra = match engine.ffprobe_json(input, probe.size_bytes).await? {
        Ok(json) => serde_json::from_str(&json).unwrap_or_default(),
        Err(_) => Extra::default(),
    };
    let sample_aspect = extra
        .streams
        .iter()
        .find(|s| s.index == video.index)
        .and_then(|s| s.sample_aspect_ratio.as_deref())
        .and_then(ratio)
        .unwrap_or(1.0);
    let audio = probe
        .streams
        .iter()
        .find(|s| s.kind == "audio")
        .map(|s| AudioFacts {
            index: s.index,
            channels: s.channels.unwrap_or(2),
            sample_rate: s.sample_rate,
        });
    Ok(SourceFacts {
        video: video.index,
        width,
        height,
        sample_aspect,
        rotation: video.rotation.unwrap_or(0),
        frame_rate: video.frame_rate,
        bit_rate: probe.bit_rate,
        audio,
    })
}

/// `16:15` -> 1.0666; `0:1` (unknown) and `N/A` -> None.
fn ratio(text: &str) -> Option<f64> {
    let (num, den) = text.split_once(':')?;
    let (num, den): (f64, f64) = (num.parse().ok()?, den.parse().ok()?);
    Some(num / den).filter(|r| r.is_finite() && *r > 0.0)
}

/// The one ffmpeg process, its progress read from `-progress`.
async fn encode(
    engine: &MediaEngine,
    plan: &Plan,
    input: &Path,
    probe: &Probe,
    out: &Path,
    progress: &dyn Progress,
) -> Result<(), MediaError> {
    // Without a stated duration, allow for a low bit rate (100 kB/s) over the whole file.
    let duration = probe.duration.unwrap_or(probe.size_bytes as f64 / 100e3);
    // Encoding costs more than decoding: one allowance per rendition besides the decode's.
    let timeout = engine.timeout_for(duration * (1 + plan.streams()) as f64);
    let invocation = Invocation::new(engine.ffmpeg_program(), INSTALL_FFMPEG_BINARY, timeout)
        .current_dir(out)
        .args(["-nostdin", "-hide_banner", "-nostats", "-v", "error"])
        .args(["-progress", "pipe:1", "-noautorotate", "-i"])
        .arg(file_url(input))
        .args(plan.output_args());
    let mut running = engine.runner.start(invocation).await?;
    let mut said = 0;
    while let Some(line) = running.next_line().await? {
        // `-progress` writes `key=value` blocks; out_time_us is how far the output got.
        let Some(micros) = line
            .strip_prefix("out_time_us=")
            .and_then(|v| v.trim().parse::<f64>().ok())
        else {
            continue;
        };
        if let Some(duration) = probe.duration.filter(|d| *d > 0.0) {
            let percent = (micros / 1e6 / duration * 100.0).clamp(0.0, 99.0) as u8;
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
    // Killed by a signal (the OOM killer, an operator) or a full disk is about the machine;
    // a decoder's complaint is about the file, which was accepted but does not decode.
    let about_the_file = finished.status.code().is_some()
        && !finished.stderr_tail.contains("No space left on device")
        && ["Invalid data found", "Error while decoding", "corrupt"]
            .iter()
            .any(|sign| finished.stderr_tail.contains(sign));
    if about_the_file {
        let last = finished.stderr_tail.lines().last().unwrap_or_default();
        return Err(MediaError::rejected(
            ErrorCode::CorruptInput,
            format!("the video does not decode: {}", strip_path(last, input)),
        ));
    }
    Err(finished.into_error())
}

/// Every file of the package, playlists rewritten for VOD and every URI checked: segments first,
/// then the variant playlists, the MPD, and the master playlist last, whose presence says the
/// package is whole.
async fn publishable(plan: &Plan, out: &Path) -> Result<Vec<Produced>, MediaError> {
    let read = |name: String| {
        let path = out.join(&name);
        async move {
            let text = tokio::fs::read_to_string(&path)
                .await
                .map_err(|e| MediaError::io("reading", &path, e))?;
            Ok::<_, MediaError>((path, text))
        }
    };
    let write = |path: PathBuf, text: String| async move {
        tokio::fs::write(&path, text)
            .await
            .map_err(|e| MediaError::io("writing", &path, e))
    };
    let broken =
        |what: &str| MediaError::Internal(format!("ffmpeg's package is not whole: {what}"));

    let mut segments = Vec::new();
    let mut variants = Vec::new();
    for i in 0..plan.streams() {
        let audio = i >= plan.video.len();
        let name = plan::variant_playlist(i);
        let (path, text) = read(name.clone()).await?;
        let text = playlists::vod_variant(&text);
        for uri in playlists::hls_uris(&text) {
            let file = out.join(&uri);
            if !playlists::is_inside(&uri) || !file.is_file() {
                return Err(broken(&format!("{name} refers to {uri:?}")));
            }
            let content_type = match (audio, uri.ends_with(".m4s")) {
                (true, _) => "audio/mp4",
                (false, true) => SEGMENT_TYPE,
                (false, false) => "video/mp4",
            };
            segments.push(produced(uri.clone(), file, content_type));
        }
        write(path.clone(), text).await?;
        variants.push(produced(name, path, HLS_TYPE));
    }

    let (mpd_path, mpd) = read(MPD.to_owned()).await?;
    if let Some(bad) = playlists::dash_templates(&mpd)
        .into_iter()
        .find(|t| !playlists::is_inside(t))
    {
        return Err(broken(&format!("{MPD} refers to {bad:?}")));
    }
    let (master_path, master) = read(MASTER.to_owned()).await?;
    let master = playlists::vod_master(&master);
    let listed = playlists::hls_uris(&master);
    if listed.len() != plan.streams() || listed.iter().any(|uri| !out.join(uri).is_file()) {
        return Err(broken(&format!("{MASTER} lists {listed:?}")));
    }
    write(master_path.clone(), master).await?;

    let mut all = segments;
    all.extend(variants);
    let mut dash = produced(MPD.to_owned(), mpd_path, DASH_TYPE);
    dash.name = "dash".into();
    all.push(dash);
    let mut hls = produced(MASTER.to_owned(), master_path, HLS_TYPE);
    hls.name = "hls".into();
    all.push(hls);
    Ok(all)
}

/// A file of the package, named by its path in the layout.
fn produced(file_name: String, path: PathBuf, content_type: &str) -> Produced {
    Produced {
        name: file_name.clone(),
        path,
        file_name,
        content_type: content_type.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_aspect_ratios() {
        assert_eq!(ratio("1:1"), Some(1.0));
        assert_eq!(ratio("4:3"), Some(4.0 / 3.0));
        assert_eq!(ratio("0:1"), None);
        assert_eq!(ratio("N/A"), None);
    }
}
