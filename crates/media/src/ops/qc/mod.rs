//! `qc`: one ffprobe for the container and stream facts, then **one** ffmpeg decoding pass
//! whose filter graph runs every detector (video: `blackdetect`, `freezedetect`, `idet`;
//! audio: `silencedetect`, `ebur128` with true peak) and writes what they find with
//! `metadata=mode=print:file=…` into the work directory; the files are read back
//! ([`metadata`]) and judged ([`report`]) into `qc.json`.
//!
//! A report is the result, whatever the file: one ffprobe cannot read (text, an empty file) is
//! rating 0 and fails, not an error of the step. What is not about the file stays an error:
//! ffmpeg or ffprobe missing (`ffmpeg-missing`, retried), a timeout, a full disk, a file over
//! the size or duration limits (refused as for every operation).

mod metadata;
mod report;

use std::path::Path;

use serde::Deserialize;
use serde_json::json;
use vidsnap_domain::{ErrorCode, ops::QcOptions};

use self::{
    metadata::{Frame, Range},
    report::{Decoded, Facts, Media},
};
use super::{INSTALL_FFMPEG_BINARY, JSON, OpInput, OpOutput, Produced};
use crate::{
    MediaEngine, MediaError, Progress,
    engine::{file_size, file_url, strip_path},
    frames::Source,
    probe::{self, Probe},
    runner::Invocation,
};

/// The files the filter graph writes, relative to the work directory ffmpeg runs in.
const VIDEO_FILE: &str = "qc-video.txt";
const FIELDS_FILE: &str = "qc-fields.txt";
const SILENCE_FILE: &str = "qc-silence.txt";
const LOUDNESS_FILE: &str = "qc-loudness.txt";

pub(super) async fn run(
    engine: &MediaEngine,
    options: &QcOptions,
    input: &OpInput,
    work: &Path,
    progress: &dyn Progress,
) -> Result<OpOutput, MediaError> {
    progress.percent(0);
    let size_bytes = file_size(&input.path).await?;
    let limits = &engine.config.limits;
    if let Some(max) = limits.max_bytes.filter(|max| size_bytes > *max) {
        return Err(MediaError::rejected(
            ErrorCode::TooLarge,
            format!("the file is {size_bytes} bytes; the limit is {max}"),
        ));
    }
    let media = match probe(engine, &input.path, size_bytes).await? {
        Ok((probe, field_order)) => {
            if let (Some(duration), Some(max)) = (probe.duration, limits.max_duration_seconds)
                && duration > max
            {
                return Err(MediaError::rejected(
                    ErrorCode::TooLong,
                    format!("the file lasts {duration:.1} s; the limit is {max} s"),
                ));
            }
            let decoded = decode(engine, options, &input.path, &probe, work, progress).await?;
            Ok(Media {
                probe,
                field_order,
                decoded,
            })
        }
        Err(why) => Err(why),
    };
    let facts = Facts { size_bytes, media };
    let report = report::report(options, &facts);

    let path = work.join("qc.json");
    let bytes = serde_json::to_vec_pretty(&report)
        .map_err(|e| MediaError::Internal(format!("qc report: {e}")))?;
    tokio::fs::write(&path, bytes)
        .await
        .map_err(|e| MediaError::io("writing", &path, e))?;
    progress.percent(100);
    let probe = facts.media.ok().map(|media| Source {
        file_name: input.file_name.clone(),
        probe: media.probe,
    });
    Ok(OpOutput {
        produced: vec![Produced {
            name: "report".into(),
            path,
            file_name: "qc.json".into(),
            content_type: JSON.into(),
        }],
        result: Some(json!({
            "passed": report.passed,
            "rating": report.rating,
            "findings": report.findings(),
            "probe": probe,
        })),
    })
}

/// The parts of ffprobe's JSON that [`probe::parse`] leaves out.
#[derive(Debug, Default, Deserialize)]
struct Extra {
    #[serde(default)]
    streams: Vec<ExtraStream>,
}

#[derive(Debug, Deserialize)]
struct ExtraStream {
    index: u32,
    field_order: Option<String>,
}

/// ffprobe's facts and the video stream's field order, or why ffprobe cannot read the file.
async fn probe(
    engine: &MediaEngine,
    input: &Path,
    size_bytes: u64,
) -> Result<Result<(Probe, Option<String>), String>, MediaError> {
    let json = match engine.ffprobe_json(input, size_bytes).await? {
        Ok(json) => json,
        Err(why) => return Ok(Err(why)),
    };
    let probe = match probe::parse(json.as_bytes()) {
        Ok(probe) => probe,
        Err(e) => return Ok(Err(format!("unexpected ffprobe output: {e}"))),
    };
    let extra: Extra = serde_json::from_str(&json).unwrap_or_default();
    let field_order = probe.video().and_then(|video| {
        extra
            .streams
            .into_iter()
            .find(|s| s.index == video.index)
            .and_then(|s| s.field_order)
    });
    Ok(Ok((probe, field_order)))
}

/// The streams the pass decodes: the first real video stream and the first audio stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Streams {
    video: Option<u32>,
    audio: Option<u32>,
}

impl Streams {
    fn of(probe: &Probe) -> Self {
        Self {
            video: probe.video().map(|v| v.index),
            audio: probe
                .streams
                .iter()
                .find(|s| s.kind == "audio")
                .map(|s| s.index),
        }
    }
}

/// The filter graph of the one pass, and the labels of its outputs; `None` when there is
/// nothing to decode. Every detector's findings are frame metadata printed to a file.
fn graph(options: &QcOptions, streams: Streams) -> Option<(String, Vec<&'static str>)> {
    let mut chains = Vec::new();
    let mut outputs = Vec::new();
    if let Some(index) = streams.video {
        // Two branches of the decoded frames (split copies no pixels). Black and frozen
        // pictures are judged on every 4th pixel of every 4th line (nearest neighbour: the
        // pixels themselves, not averages, so the share of dark pixels and the frame-to-frame
        // differences keep their meaning) at a 16th of the cost; interlacing is judged on the
        // luma plane at full size (combing shows there; the chroma planes added half again).
        // Every frame passes through idet, whose printout also gives every frame's time.
        chains.push(format!(
            "[0:{index}]split=2[full][sampled];\
             [sampled]scale=w='max(16,trunc(iw/4))':h='max(16,trunc(ih/4))':flags=neighbor,\
             blackdetect=d={}:pix_th={},freezedetect=n={}dB:d={},\
             metadata=mode=print:file={VIDEO_FILE}[v];\
             [full]extractplanes=y,idet,\
             metadata=mode=print:key=lavfi.idet.multiple.current_frame:file={FIELDS_FILE}[f]",
            options.black_min_duration,
            options.black_pixel_threshold,
            options.freeze_noise_db,
            options.freeze_min_duration,
        ));
        outputs.extend(["[v]", "[f]"]);
    }
    if let Some(index) = streams.audio {
        chains.push(format!(
            "[0:{index}]silencedetect=n={}dB:d={},ametadata=mode=print:file={SILENCE_FILE},\
             ebur128=peak=true:metadata=1,ametadata=mode=print:file={LOUDNESS_FILE}[a]",
            options.silence_db, options.silence_min_duration,
        ));
        outputs.push("[a]");
    }
    (!chains.is_empty()).then(|| (chains.join(";"), outputs))
}

/// The one decoding pass; `None` when the file has nothing to decode.
async fn decode(
    engine: &MediaEngine,
    options: &QcOptions,
    input: &Path,
    probe: &Probe,
    work: &Path,
    progress: &dyn Progress,
) -> Result<Option<Decoded>, MediaError> {
    let streams = Streams::of(probe);
    let Some((graph, outputs)) = graph(options, streams) else {
        return Ok(None);
    };
    // Without a stated duration, allow for a low bit rate (100 kB/s) over the whole file.
    let duration = probe.duration.unwrap_or(probe.size_bytes as f64 / 100e3);
    let mut invocation = Invocation::new(
        engine.ffmpeg_program(),
        INSTALL_FFMPEG_BINARY,
        engine.timeout_for(duration),
    )
    .current_dir(work)
    .args(["-nostdin", "-hide_banner", "-nostats", "-v", "error"])
    .args(["-progress", "pipe:1", "-i"])
    .arg(file_url(input))
    .args(["-filter_complex", &graph]);
    for output in outputs {
        invocation = invocation.args(["-map", output]);
    }
    invocation = invocation.args(["-f", "null", "-"]);

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
        if let Some(duration) = probe.duration.filter(|d| *d > 0.0) {
            let percent = (micros / 1e6 / duration * 100.0).clamp(0.0, 99.0) as u8;
            if percent > said {
                said = percent;
                progress.percent(percent);
            }
        }
    }
    let finished = running.wait().await?;
    // Killed by a signal (the OOM killer, an operator) or a full disk is about the machine.
    if finished.status.code().is_none() || finished.stderr_tail.contains("No space left on device")
    {
        return Err(finished.into_error());
    }

    let read = |name: &str| {
        let path = work.join(name);
        async move {
            let text = tokio::fs::read_to_string(&path).await.unwrap_or_default();
            let _ = tokio::fs::remove_file(&path).await;
            metadata::frames(&text)
        }
    };
    let (video, fields, silence, loudness) = (
        read(VIDEO_FILE).await,
        read(FIELDS_FILE).await,
        read(SILENCE_FILE).await,
        read(LOUDNESS_FILE).await,
    );
    let last_error = finished
        .stderr_tail
        .lines()
        .last()
        .map(|line| without_context(&strip_path(line, input)));
    Ok(Some(detections(
        options,
        &video,
        &fields,
        &silence,
        &loudness,
        probe.start_time,
        Decoded {
            finished: finished.status.success(),
            errors: finished.stderr_lines,
            last_error,
            ..Decoded::default()
        },
    )))
}

/// The detectors' findings in seconds from the start of the file (`start` is the container's
/// start time, on the clock the frames' times are on).
fn detections(
    options: &QcOptions,
    video: &[Frame],
    fields: &[Frame],
    silence: &[Frame],
    loudness: &[Frame],
    start: f64,
    mut decoded: Decoded,
) -> Decoded {
    let shift = |t: f64| (t - start).max(0.0);
    let (counts, times) = metadata::fields(fields);
    decoded.fields = counts;
    decoded.frame_times = times.into_iter().map(shift).collect();
    decoded.loudness = metadata::loudness(loudness).map(|mut l| {
        l.end = shift(l.end);
        l
    });
    let video_end = decoded.decoded_until() + start;
    let audio_end = decoded.loudness.map_or(video_end, |l| l.end + start);
    // blackdetect marks every black run, however short: its `d` only bounds what it logs.
    let ranges = |frames: &[Frame], key: &str, end: f64, min_seconds: f64| {
        metadata::segments(
            frames,
            &format!("lavfi.{key}_start"),
            &format!("lavfi.{key}_end"),
            end,
        )
        .into_iter()
        .filter(|r| r.seconds() >= min_seconds - 0.001)
        .map(|r| Range {
            start: shift(r.start),
            end: shift(r.end),
        })
        .collect()
    };
    decoded.black = ranges(video, "black", video_end, options.black_min_duration);
    decoded.freeze = ranges(
        video,
        "freezedetect.freeze",
        video_end,
        options.freeze_min_duration,
    );
    decoded.silence = ranges(silence, "silence", audio_end, options.silence_min_duration);
    decoded
}

/// An ffmpeg log line without its `[mov,mp4,… @ 0x55…] ` context.
fn without_context(line: &str) -> String {
    match line
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
    {
        Some((context, message)) if context.contains(" @ ") => message.to_owned(),
        _ => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_graph_holds_every_detector_of_both_streams() {
        let streams = Streams {
            video: Some(0),
            audio: Some(1),
        };
        let (graph, outputs) = graph(&QcOptions::default(), streams).expect("a graph");
        assert_eq!(outputs, ["[v]", "[f]", "[a]"]);
        for filter in [
            "[0:0]split=2[full][sampled]",
            "flags=neighbor,blackdetect=d=1:pix_th=0.1",
            "freezedetect=n=-60dB:d=2",
            "[full]extractplanes=y,idet",
            "[0:1]silencedetect=n=-60dB:d=2",
            "ebur128=peak=true:metadata=1",
        ] {
            assert!(graph.contains(filter), "{filter} in {graph}");
        }
        let audio_only = Streams {
            video: None,
            audio: Some(0),
        };
        let (graph, outputs) = super::graph(&QcOptions::default(), audio_only).expect("audio");
        assert_eq!(outputs, ["[a]"]);
        assert!(!graph.contains("idet"));
        let nothing = Streams {
            video: None,
            audio: None,
        };
        assert!(super::graph(&QcOptions::default(), nothing).is_none());
    }

    #[test]
    fn log_lines_lose_their_context() {
        assert_eq!(
            without_context(
                "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d] stream 0, offset 0x30: partial file"
            ),
            "stream 0, offset 0x30: partial file"
        );
        assert_eq!(
            without_context("Error while decoding stream #0:1"),
            "Error while decoding stream #0:1"
        );
    }
}
