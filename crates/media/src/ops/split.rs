//! `split`: the video stream and the audio stream of a file as two files in one ffmpeg pass,
//! both stream-copied: the same packets, the same codec parameters. The video goes in an MP4
//! (Matroska when its codec cannot), the audio in its codec's usual file (`.m4a` for AAC,
//! `.mp3`, `.wav` for PCM, `.ogg` for Opus, else `.mka`).

use std::path::Path;

use serde_json::json;
use vidsnap_domain::ops::SplitOptions;

use super::{OpInput, OpOutput, Produced, av};
use crate::{MediaEngine, MediaError, Progress, engine::file_url, frames::Source};

pub(super) async fn run(
    engine: &MediaEngine,
    _options: &SplitOptions,
    input: &OpInput,
    work: &Path,
    progress: &dyn Progress,
) -> Result<OpOutput, MediaError> {
    progress.percent(0);
    let media = av::read(engine, input, "the file").await?;
    let video = media.need_video("the file")?;
    let audio = media.need_audio("the file")?;
    let video_format = av::for_video(video.codec.as_deref());
    let audio_format = av::for_audio(audio.codec.as_deref());
    let video_path = work.join(format!("video.{}", video_format.extension));
    let audio_path = work.join(format!("audio.{}", audio_format.extension));

    let mut args = vec!["-i".into(), file_url(&input.path)];
    args.extend(["-map".into(), format!("0:{}", video.index).into()]);
    args.extend(["-c".into(), "copy".into()]);
    args.extend(av::output(video_format, &video_path));
    args.extend(["-map".into(), format!("0:{}", audio.index).into()]);
    args.extend(["-c".into(), "copy".into()]);
    args.extend(av::output(audio_format, &audio_path));
    av::ffmpeg(
        engine,
        args,
        &[&input.path],
        work,
        media.duration,
        media.duration,
        progress,
    )
    .await?;
    progress.percent(100);

    let result = json!({
        "video": {"codec": video.codec, "stream": video.index, "container": video_format.muxer},
        "audio": {"codec": audio.codec, "stream": audio.index, "container": audio_format.muxer},
        "probe": Source { file_name: input.file_name.clone(), probe: media.probe.clone() },
    });
    Ok(OpOutput {
        produced: vec![
            Produced {
                name: "video".into(),
                path: video_path,
                file_name: av::stored_name(input, "video", video_format),
                content_type: video_format.content_type.into(),
            },
            Produced {
                name: "audio".into(),
                path: audio_path,
                file_name: av::stored_name(input, "audio", audio_format),
                content_type: audio_format.content_type.into(),
            },
        ],
        result: Some(result),
    })
}
