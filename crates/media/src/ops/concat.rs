//! `concat`: the inputs joined in order by ffmpeg's `concat` filter, in one pass. Each input is
//! decoded and normalised first, so inputs with different codecs, sample rates and channel
//! layouts join (seed 004's `concat -c copy` refused them):
//!
//! - audio: resampled to the highest rate among the inputs, to stereo when any input has two
//!   channels or more (else mono), and cut to its stated duration (an AAC decoder hands out a
//!   whole last frame, up to 1024 samples past it), so each part starts at the sample where
//!   the previous one ended; written as FLAC.
//! - video: scaled into the first input's picture size (letterboxed), at its frame rate, with
//!   the audio as above (silence for an input without audio); H.264 and AAC in an MP4.

use std::path::Path;

use serde_json::{Value, json};
use vidsnap_domain::{
    ErrorCode,
    ops::{ConcatOptions, ConcatStreams},
};

use super::{
    OpInput, OpOutput, Produced,
    av::{self, AAC_BITRATE, Media},
};
use crate::{MediaEngine, MediaError, Progress, engine::file_url};

pub(super) async fn run(
    engine: &MediaEngine,
    options: &ConcatOptions,
    inputs: &[OpInput],
    work: &Path,
    progress: &dyn Progress,
) -> Result<OpOutput, MediaError> {
    progress.percent(0);
    let mut parts = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let role = format!("input {} ({})", i + 1, input.file_name);
        let media = av::read(engine, input, &role).await?;
        match options.streams {
            ConcatStreams::Audio => {
                media.need_audio(&role)?;
            }
            ConcatStreams::Video => {
                media.need_video(&role)?;
            }
        }
        parts.push(media);
    }
    let total: f64 = parts.iter().map(|p| part_seconds(p, options.streams)).sum();
    let limits = &engine.config.limits;
    if let Some(max) = limits.max_duration_seconds.filter(|max| total > *max) {
        return Err(MediaError::rejected(
            ErrorCode::TooLong,
            format!("the joined file would last {total:.1} s; the limit is {max} s"),
        ));
    }
    let audio = Audio::for_parts(&parts);
    let (graph, format, maps) = match options.streams {
        ConcatStreams::Audio => (audio_graph(&parts, audio), av::FLAC, vec!["[a]"]),
        ConcatStreams::Video => {
            let (graph, has_audio) = video_graph(&parts, audio);
            let maps = if has_audio {
                vec!["[v]", "[a]"]
            } else {
                vec!["[v]"]
            };
            (graph, av::MP4, maps)
        }
    };
    let path = work.join(format!("joined.{}", format.extension));
    let mut args = Vec::new();
    for input in inputs {
        args.extend(["-i".into(), file_url(&input.path)]);
    }
    args.extend(["-filter_complex".into(), graph.into()]);
    for map in maps {
        args.extend(["-map".into(), map.into()]);
    }
    match options.streams {
        ConcatStreams::Audio => args.extend(["-c:a", "flac"].map(Into::into)),
        ConcatStreams::Video => args.extend(
            ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20"]
                .into_iter()
                .chain(["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", AAC_BITRATE])
                .map(Into::into),
        ),
    }
    args.extend(av::output(format, &path));
    let read: Vec<&Path> = inputs.iter().map(|i| i.path.as_path()).collect();
    av::ffmpeg(engine, args, &read, work, total, total, progress).await?;
    progress.percent(100);

    let described: Vec<Value> = inputs
        .iter()
        .zip(&parts)
        .map(|(input, part)| {
            let stream = part.audio();
            json!({
                "file_name": input.file_name,
                "seconds": part_seconds(part, options.streams),
                "audio_codec": stream.and_then(|a| a.codec.clone()),
                "sample_rate": stream.and_then(|a| a.sample_rate),
                "channels": stream.and_then(|a| a.channels),
                "video_codec": part.video().and_then(|v| v.codec.clone()),
            })
        })
        .collect();
    Ok(OpOutput {
        produced: vec![Produced {
            name: "media".into(),
            path,
            file_name: av::stored_name(&inputs[0], "joined", format),
            content_type: format.content_type.into(),
        }],
        result: Some(json!({
            "streams": options.streams.to_string(),
            "duration": total,
            "sample_rate": audio.rate,
            "channels": av::channel_count(audio.layout),
            "inputs": described,
        })),
    })
}

/// How long a part lasts in the joined file: its audio's length when joining audio, its
/// video's when joining video.
fn part_seconds(part: &Media, streams: ConcatStreams) -> f64 {
    match streams {
        ConcatStreams::Audio => part.audio_duration(),
        ConcatStreams::Video => part.video_duration(),
    }
}

/// The audio every part is normalised to.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Audio {
    rate: u32,
    layout: &'static str,
}

impl Audio {
    /// The highest sample rate among the parts, and stereo when any part has two channels.
    fn for_parts(parts: &[Media]) -> Self {
        let streams = || parts.iter().filter_map(Media::audio);
        let rate = streams().filter_map(|a| a.sample_rate).max();
        let stereo = streams().any(|a| a.channels.unwrap_or(2) >= 2);
        Self {
            rate: av::aac_rate(rate),
            layout: if stereo { "stereo" } else { "mono" },
        }
    }

    /// Part `i`'s audio, normalised and cut to `seconds` (and padded with silence up to them
    /// when `pad`: a video's sound must last as long as its picture), labelled `[a{i}]`.
    ///
    /// Not padded otherwise: a stated duration may be an estimate (an MP3's, from its bit rate,
    /// is often longer than what decodes), so it only ever cuts what a decoder adds.
    fn chain(self, i: usize, part: &Media, seconds: f64, pad: bool) -> String {
        let Audio { rate, layout } = self;
        let end = av::samples(seconds, rate);
        let padding = if pad {
            format!(",apad=whole_len={end}")
        } else {
            String::new()
        };
        match part.audio() {
            Some(stream) => format!(
                "[{i}:{}]aresample={rate}:async=1:first_pts=0,\
                 aformat=sample_fmts=s16:channel_layouts={layout},\
                 atrim=end_sample={end}{padding}[a{i}]",
                stream.index
            ),
            None => format!(
                "anullsrc=r={rate}:cl={layout},atrim=end_sample={end},\
                 aformat=sample_fmts=s16:channel_layouts={layout}[a{i}]"
            ),
        }
    }
}

fn audio_graph(parts: &[Media], audio: Audio) -> String {
    let mut chains: Vec<String> = parts
        .iter()
        .enumerate()
        .map(|(i, part)| audio.chain(i, part, part.audio_duration(), false))
        .collect();
    let labels: String = (0..parts.len()).map(|i| format!("[a{i}]")).collect();
    chains.push(format!("{labels}concat=n={}:v=0:a=1[a]", parts.len()));
    chains.join(";")
}

/// The video graph (`[v]`, and `[a]` when any part has audio) and whether there is audio.
fn video_graph(parts: &[Media], audio: Audio) -> (String, bool) {
    let first = parts.first().and_then(Media::video);
    // Even dimensions: H.264 in 4:2:0 needs them.
    let even = |n: Option<u32>, default: u32| (n.unwrap_or(default).max(2) / 2) * 2;
    let width = even(first.and_then(|v| v.width), 1280);
    let height = even(first.and_then(|v| v.height), 720);
    let fps = first
        .and_then(|v| v.frame_rate)
        .filter(|r| *r <= 120.0)
        .unwrap_or(25.0);
    let has_audio = parts.iter().any(|p| p.audio().is_some());
    let mut chains = Vec::new();
    let mut labels = String::new();
    for (i, part) in parts.iter().enumerate() {
        let index = part.video().map_or(0, |v| v.index);
        chains.push(format!(
            "[{i}:{index}]scale={width}:{height}:force_original_aspect_ratio=decrease,\
             pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={fps},format=yuv420p,\
             setpts=PTS-STARTPTS[v{i}]"
        ));
        labels.push_str(&format!("[v{i}]"));
        if has_audio {
            chains.push(audio.chain(i, part, part.video_duration(), true));
            labels.push_str(&format!("[a{i}]"));
        }
    }
    let streams = if has_audio {
        "v=1:a=1[v][a]"
    } else {
        "v=1:a=0[v]"
    };
    chains.push(format!("{labels}concat=n={}:{streams}", parts.len()));
    (chains.join(";"), has_audio)
}
