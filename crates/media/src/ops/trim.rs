//! `trim`: a file cut to `[start, end)` in one ffmpeg pass.
//!
//! - Audio only: cut at the sample (`atrim` counts samples) into FLAC, lossless, so the cut is
//!   all that changes.
//! - With video, `reencode`: ffmpeg seeks to `start` and drops what comes before it, so the
//!   first frame is the first at or after `start`; H.264 and AAC in an MP4.
//! - With video, `copy`: the packets from the last keyframe at or before `start` (read from the
//!   packet list, no decoding), so nothing is re-encoded and the cut is keyframe-exact; the
//!   result's `start_actual` says where it fell. The audio is re-encoded from that keyframe, so
//!   it stays in sync with the picture.

use std::path::Path;

use serde_json::json;
use vidsnap_domain::ops::{TrimOptions, VideoCut};

use super::{
    OpInput, OpOutput, Produced,
    av::{self, AAC_BITRATE},
};
use crate::{
    MediaEngine, MediaError, Progress,
    engine::{INSTALL_FFMPEG, file_url},
    frames::Source,
    probe::StreamInfo,
    runner::Invocation,
};

pub(super) async fn run(
    engine: &MediaEngine,
    options: &TrimOptions,
    input: &OpInput,
    work: &Path,
    progress: &dyn Progress,
) -> Result<OpOutput, MediaError> {
    progress.percent(0);
    let media = av::read(engine, input, "the file").await?;
    let duration = media.duration;
    let start = options.start.seconds();
    if start >= duration {
        return Err(av::out_of_range(format!(
            "start {} is at or past the end of the file ({duration:.3} s)",
            options.start
        )));
    }
    let end = match options.end {
        Some(end) if end.seconds() > duration => {
            return Err(av::out_of_range(format!(
                "end {end} is past the end of the file ({duration:.3} s)"
            )));
        }
        Some(end) => end.seconds(),
        None => duration,
    };

    let (args, cut, path, format) = match (media.video(), media.audio()) {
        (None, None) => {
            return Err(MediaError::rejected(
                vidsnap_domain::ErrorCode::NoAudioStream,
                "the file has neither audio nor video",
            ));
        }
        (None, Some(audio)) => {
            let rate = audio.sample_rate.unwrap_or(48_000);
            let path = work.join("trimmed.flac");
            let graph = format!(
                "[0:{}]atrim=start_sample={}:end_sample={},asetpts=PTS-STARTPTS[a]",
                audio.index,
                av::samples(start, rate),
                av::samples(end, rate)
            );
            let mut args = vec!["-i".into(), file_url(&input.path)];
            args.extend(["-filter_complex".into(), graph.into()]);
            args.extend(["-map", "[a]", "-c:a", "flac"].map(Into::into));
            args.extend(av::output(av::FLAC, &path));
            (args, Cut::sample(start), path, av::FLAC)
        }
        (Some(video), audio) => {
            let cut = match options.video {
                VideoCut::Reencode => Cut::frame(start),
                VideoCut::Copy => {
                    Cut::keyframe(keyframe_at(engine, input, &media, video, start).await?)
                }
            };
            let format = match options.video {
                VideoCut::Reencode => av::MP4,
                VideoCut::Copy => av::for_video(video.codec.as_deref()),
            };
            let path = work.join(format!("trimmed.{}", format.extension));
            let seconds = |t: f64| format!("{t:.6}");
            let mut args = vec!["-ss".into(), seconds(cut.start).into()];
            args.extend(["-t".into(), seconds(end - cut.start).into()]);
            args.extend(["-i".into(), file_url(&input.path)]);
            args.extend(["-map".into(), format!("0:{}", video.index).into()]);
            match options.video {
                VideoCut::Reencode => {
                    args.extend(
                        ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18"].map(Into::into),
                    );
                }
                VideoCut::Copy => {
                    args.extend(
                        ["-c:v", "copy", "-avoid_negative_ts", "make_zero"].map(Into::into),
                    );
                }
            }
            if let Some(audio) = audio {
                args.extend(["-map".into(), format!("0:{}", audio.index).into()]);
                args.extend(["-c:a", "aac", "-b:a", AAC_BITRATE].map(Into::into));
            }
            args.extend(av::output(format, &path));
            (args, cut, path, format)
        }
    };
    av::ffmpeg(
        engine,
        args,
        &[&input.path],
        work,
        duration,
        end - cut.start,
        progress,
    )
    .await?;
    progress.percent(100);

    let result = json!({
        "start": start,
        "end": end,
        "start_actual": cut.start,
        "duration": end - cut.start,
        "exact": cut.exact,
        "video": media.video().map(|_| options.video.as_str()),
        "probe": Source { file_name: input.file_name.clone(), probe: media.probe.clone() },
    });
    Ok(OpOutput {
        produced: vec![Produced {
            name: "media".into(),
            path,
            file_name: av::stored_name(input, "trimmed", format),
            content_type: format.content_type.into(),
        }],
        result: Some(result),
    })
}

/// Where a cut starts and how exact it is.
struct Cut {
    start: f64,
    /// `sample`, `frame` or `keyframe`: what the result says.
    exact: &'static str,
}

impl Cut {
    fn sample(start: f64) -> Self {
        Self {
            start,
            exact: "sample",
        }
    }

    fn frame(start: f64) -> Self {
        Self {
            start,
            exact: "frame",
        }
    }

    fn keyframe(start: f64) -> Self {
        Self {
            start,
            exact: "keyframe",
        }
    }
}

/// The time (from the file's start) of the last keyframe of `video` at or before `start`, from
/// the packet list (demuxing only).
async fn keyframe_at(
    engine: &MediaEngine,
    input: &OpInput,
    media: &av::Media,
    video: &StreamInfo,
    start: f64,
) -> Result<f64, MediaError> {
    let invocation = Invocation::new(
        &engine.config.ffprobe,
        INSTALL_FFMPEG,
        engine.timeout_for(media.probe.size_bytes as f64 / 5e6),
    )
    .args(["-v", "error", "-hide_banner", "-select_streams"])
    .arg(video.index.to_string())
    .args(["-show_entries", "packet=pts_time,flags", "-of", "csv=p=0"])
    .arg(file_url(&input.path));
    let csv = engine.runner.output(invocation).await?;
    Ok(last_keyframe(
        &String::from_utf8_lossy(&csv),
        media.probe.start_time,
        start,
    ))
}

/// The latest keyframe time at or before `start` in ffprobe's `pts_time,flags` lines, relative
/// to `origin` (the file's start); 0 when none is.
fn last_keyframe(csv: &str, origin: f64, start: f64) -> f64 {
    csv.lines()
        .filter_map(|line| {
            let (time, flags) = line.trim().split_once(',')?;
            let time = time.parse::<f64>().ok()? - origin;
            // A millisecond of slack: times are printed to the microsecond.
            (flags.contains('K') && time <= start + 1e-3).then_some(time)
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keyframe_is_the_last_at_or_before_start() {
        let csv = "0.000000,K__\n0.040000,___\n0.400000,K__\n0.440000,___\n0.800000,K__\n";
        assert_eq!(last_keyframe(csv, 0.0, 0.5), 0.4);
        assert_eq!(last_keyframe(csv, 0.0, 0.4), 0.4);
        assert_eq!(last_keyframe(csv, 0.0, 0.39), 0.0);
        assert_eq!(last_keyframe(csv, 0.0, 9.0), 0.8);
        // Times are from the file's start.
        let shifted = last_keyframe("1.400000,K__\n", 1.0, 0.5);
        assert!((shifted - 0.4).abs() < 1e-9, "{shifted}");
        assert_eq!(last_keyframe("N/A,K__\n", 0.0, 0.5), 0.0);
    }
}
