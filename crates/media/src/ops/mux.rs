//! `mux`: the first input's video (copied) with the second input's audio, in one pass.
//!
//! The output lasts `D`: the video's length (`pad`) or the shorter of the two (`shortest`).
//! The audio is copied when it is AAC and reaches `D` (cut at `D`, to the AAC frame); else it is
//! encoded to AAC, cut at the sample of `D` and padded with silence up to it. A video cut short
//! (`shortest` with shorter audio) ends at the last frame before `D`.

use std::path::Path;

use serde_json::json;
use vidsnap_domain::ops::{MuxOptions, MuxPolicy};

use super::{
    OpInput, OpOutput, Produced,
    av::{self, AAC_BITRATE},
};
use crate::{MediaEngine, MediaError, Progress, engine::file_url, frames::Source};

pub(super) async fn run(
    engine: &MediaEngine,
    options: &MuxOptions,
    inputs: &[OpInput],
    work: &Path,
    progress: &dyn Progress,
) -> Result<OpOutput, MediaError> {
    let (video_input, audio_input) = (&inputs[0], &inputs[1]);
    progress.percent(0);
    let picture = av::read(engine, video_input, "the video input").await?;
    let sound = av::read(engine, audio_input, "the audio input").await?;
    let video = picture.need_video("the video input")?;
    let audio = sound.need_audio("the audio input")?;
    let video_seconds = picture.video_duration();
    let audio_seconds = sound.audio_duration();
    let duration = match options.policy {
        MuxPolicy::Pad => video_seconds,
        MuxPolicy::Shortest => video_seconds.min(audio_seconds),
    };
    // Copying cannot pad: audio shorter than the output (by more than a millisecond) is encoded.
    let copy_audio = audio.codec.as_deref() == Some("aac") && audio_seconds + 1e-3 >= duration;

    let format = av::for_video(video.codec.as_deref());
    let path = work.join(format!("muxed.{}", format.extension));
    let mut args = vec!["-i".into(), file_url(&video_input.path)];
    args.extend(["-i".into(), file_url(&audio_input.path)]);
    args.extend(["-map".into(), format!("0:{}", video.index).into()]);
    args.extend(["-c:v".into(), "copy".into()]);
    if copy_audio {
        args.extend(["-map".into(), format!("1:{}", audio.index).into()]);
        args.extend(["-c:a".into(), "copy".into()]);
    } else {
        let rate = av::aac_rate(audio.sample_rate);
        let end = av::samples(duration, rate);
        let graph = format!(
            "[1:{}]aresample={rate}:async=1:first_pts=0,atrim=end_sample={end},\
             apad=whole_len={end}[a]",
            audio.index
        );
        args.extend(["-filter_complex".into(), graph.into()]);
        args.extend(["-map", "[a]", "-c:a", "aac", "-b:a", AAC_BITRATE].map(Into::into));
    }
    args.extend(["-t".into(), format!("{duration:.6}").into()]);
    args.extend(av::output(format, &path));
    let read = [video_input.path.as_path(), audio_input.path.as_path()];
    av::ffmpeg(
        engine,
        args,
        &read,
        work,
        picture.duration + sound.duration,
        duration,
        progress,
    )
    .await?;
    progress.percent(100);

    let result = json!({
        "policy": options.policy.to_string(),
        "duration": duration,
        "video_seconds": video_seconds,
        "audio_seconds": audio_seconds,
        "audio": if copy_audio { "copied" } else { "encoded" },
        "padded_seconds": (duration - audio_seconds).max(0.0),
        "container": format.muxer,
        "probe": Source { file_name: video_input.file_name.clone(), probe: picture.probe.clone() },
    });
    Ok(OpOutput {
        produced: vec![Produced {
            name: "video".into(),
            path,
            file_name: av::stored_name(video_input, "muxed", format),
            content_type: format.content_type.into(),
        }],
        result: Some(result),
    })
}
