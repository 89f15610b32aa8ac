//! `merge_call`: seed 004's split, cut, concat and mux as **one** ffmpeg pass. The recording's
//! video is copied; one filter graph builds the audio and it is encoded once, to AAC:
//!
//! ```text
//! call  -> resample, layout -> first call_end s, padded with silence to call_end -+
//!                                                                                 +-> concat -> AAC
//! recording audio -> resample, layout, its timeline from 0 -> call_end to end ----+
//! ```
//!
//! Cuts are counted in samples at the output rate (the recording's), so the join lands on the
//! sample of `call_end` and the post-call audio keeps its place against the picture. A
//! recording without audio gets silence after the call.

use std::path::Path;

use serde_json::json;
use vidsnap_domain::ops::MergeCallOptions;

use super::{
    OpInput, OpOutput, Produced,
    av::{self, AAC_BITRATE},
};
use crate::{MediaEngine, MediaError, Progress, engine::file_url, frames::Source};

pub(super) async fn run(
    engine: &MediaEngine,
    options: &MergeCallOptions,
    inputs: &[OpInput],
    work: &Path,
    progress: &dyn Progress,
) -> Result<OpOutput, MediaError> {
    let (call_input, recording_input) = (&inputs[0], &inputs[1]);
    progress.percent(0);
    let call = av::read(engine, call_input, "the call audio").await?;
    let recording = av::read(engine, recording_input, "the recording").await?;
    let call_audio = call.need_audio("the call audio")?;
    let video = recording.need_video("the recording")?;
    let duration = recording.duration;
    let call_end = options.call_end;
    if call_end.seconds() > duration {
        return Err(av::out_of_range(format!(
            "call_end {call_end} is past the end of the recording ({duration:.3} s)"
        )));
    }
    let own = recording.audio();
    let plan = Plan {
        call_stream: call_audio.index,
        own_stream: own.map(|a| a.index),
        rate: av::aac_rate(own.and_then(|a| a.sample_rate)),
        layout: av::layout(own.and_then(|a| a.channels)),
        call_end: call_end.seconds(),
        duration,
    };

    let format = av::for_video(video.codec.as_deref());
    let path = work.join(format!("merged.{}", format.extension));
    let mut args = vec!["-i".into(), file_url(&recording_input.path)];
    args.extend(["-i".into(), file_url(&call_input.path)]);
    args.extend(["-filter_complex".into(), plan.graph().into()]);
    args.extend(["-map".into(), format!("0:{}", video.index).into()]);
    args.extend(
        [
            "-c:v",
            "copy",
            "-map",
            "[a]",
            "-c:a",
            "aac",
            "-b:a",
            AAC_BITRATE,
        ]
        .map(Into::into),
    );
    args.extend(av::output(format, &path));
    let read = [call_input.path.as_path(), recording_input.path.as_path()];
    av::ffmpeg(
        engine,
        args,
        &read,
        work,
        duration + call.duration,
        duration,
        progress,
    )
    .await?;
    progress.percent(100);

    let call_seconds = call.audio_duration();
    let result = json!({
        "call_end": call_end.seconds(),
        "duration": duration,
        "container": format.muxer,
        "video": {"codec": video.codec, "copied": true},
        "audio": {
            "codec": "aac",
            "sample_rate": plan.rate,
            "channels": av::channel_count(plan.layout),
            "call_seconds": call_seconds.min(plan.call_end),
            "silence_after_call_seconds": (plan.call_end - call_seconds).max(0.0),
            "call_cut_seconds": (call_seconds - plan.call_end).max(0.0),
            "recording_seconds": duration - plan.call_end,
            "recording_has_audio": plan.own_stream.is_some(),
        },
        "probe": Source {
            file_name: recording_input.file_name.clone(),
            probe: recording.probe,
        },
    });
    Ok(OpOutput {
        produced: vec![Produced {
            name: "video".into(),
            path,
            file_name: av::stored_name(recording_input, "merged", format),
            content_type: format.content_type.into(),
        }],
        result: Some(result),
    })
}

/// The audio half of the pass. Input 0 is the recording, input 1 the call audio.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    call_stream: u32,
    /// The recording's audio stream; `None`: silence after the call.
    own_stream: Option<u32>,
    /// Output sample rate and layout: the recording's.
    rate: u32,
    layout: &'static str,
    call_end: f64,
    /// The recording's duration, where the audio ends.
    duration: f64,
}

impl Plan {
    /// The filter graph, its output labelled `[a]`.
    fn graph(&self) -> String {
        let (rate, layout) = (self.rate, self.layout);
        let format = format!("aformat=sample_fmts=fltp:channel_layouts={layout}");
        let join = av::samples(self.call_end, rate);
        let end = av::samples(self.duration, rate).max(join);
        let (has_call, has_tail) = (join > 0, end > join);
        // A part that is the whole audio is the output itself.
        let label = |part: &'static str| if has_call && has_tail { part } else { "[a]" };
        let mut chains = Vec::new();
        if has_call {
            // The call's first sample is the recording's first: its own start offset is dropped.
            chains.push(format!(
                "[1:{}]asetpts=PTS-STARTPTS,aresample={rate},{format},\
                 atrim=end_sample={join},apad=whole_len={join}{}",
                self.call_stream,
                label("[call]")
            ));
        }
        if has_tail {
            chains.push(match self.own_stream {
                // Put on the recording's timeline first (a late start becomes silence), so
                // sample `join` is the instant `call_end` of the picture.
                Some(stream) => format!(
                    "[0:{stream}]aresample={rate}:async=1:first_pts=0,{format},\
                     atrim=start_sample={join}:end_sample={end},asetpts=PTS-STARTPTS{}",
                    label("[post]")
                ),
                None => format!(
                    "anullsrc=r={rate}:cl={layout},atrim=end_sample={},{format}{}",
                    end - join,
                    label("[post]")
                ),
            });
        }
        if has_call && has_tail {
            chains.push("[call][post]concat=n=2:v=0:a=1[a]".to_owned());
        }
        chains.join(";")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(call_end: f64, own: Option<u32>) -> Plan {
        Plan {
            call_stream: 0,
            own_stream: own,
            rate: 48_000,
            layout: "stereo",
            call_end,
            duration: 20.0,
        }
    }

    #[test]
    fn the_call_then_the_recording_from_call_end_joined_at_its_sample() {
        let graph = plan(12.0, Some(1)).graph();
        assert!(
            graph.contains("[1:0]asetpts=PTS-STARTPTS,aresample=48000,"),
            "{graph}"
        );
        assert!(
            graph.contains("atrim=end_sample=576000,apad=whole_len=576000[call]"),
            "{graph}"
        );
        assert!(
            graph.contains("[0:1]aresample=48000:async=1:first_pts=0,"),
            "{graph}"
        );
        assert!(
            graph.contains("atrim=start_sample=576000:end_sample=960000"),
            "{graph}"
        );
        assert!(
            graph.ends_with("[call][post]concat=n=2:v=0:a=1[a]"),
            "{graph}"
        );
    }

    #[test]
    fn a_recording_without_audio_gets_silence_after_the_call() {
        let graph = plan(12.0, None).graph();
        assert!(
            graph.contains("anullsrc=r=48000:cl=stereo,atrim=end_sample=384000"),
            "{graph}"
        );
        assert!(!graph.contains("[0:"), "{graph}");
    }

    #[test]
    fn a_call_end_at_either_end_leaves_one_part() {
        let at_start = plan(0.0, Some(1)).graph();
        assert!(!at_start.contains("[call]") && !at_start.contains("concat"));
        assert!(at_start.ends_with("asetpts=PTS-STARTPTS[a]"), "{at_start}");
        let at_end = plan(20.0, Some(1)).graph();
        assert!(!at_end.contains("[post]") && !at_end.contains("concat"));
        assert!(at_end.ends_with("apad=whole_len=960000[a]"), "{at_end}");
    }
}
