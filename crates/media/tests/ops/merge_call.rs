//! `merge_call` (seed 004) on a 440 Hz call and a recording whose own sound is 880 Hz: before
//! `call_end` the merged file sounds 440 Hz (or silence, past the end of a short call), after
//! it 880 Hz, the join within 20 ms of `call_end`; the video is the recording's, packet for
//! packet; the duration is the recording's within one frame.

use std::path::Path;

use serde_json::{Value, json};
use vidsnap_domain::ErrorCode;
use vidsnap_media::{OpInput, OpOutput, Silent};

use crate::{
    av_support::{
        self as av, CALL_HZ, RECORDING_FPS, RECORDING_HZ, RECORDING_SECONDS, assert_only,
        assert_sound,
    },
    support::{Percentages, Sandbox, block_on},
};

/// How far the join may be from `call_end`.
const JOIN_TOLERANCE: f64 = 0.020;

fn merge(call_end: Value) -> vidsnap_domain::Operation {
    av::op("merge_call", json!({ "call_end": call_end }))
}

/// The inputs, copied into the sandbox as `call.wav` (or the clip's name) and `recording.mp4`.
fn inputs(sandbox: &Sandbox, call: &str, recording: &str) -> [OpInput; 2] {
    [
        sandbox.input(call, call),
        sandbox.input(recording, "recording.mp4"),
    ]
}

/// The one file made: `merged.mp4`, stored as `recording-merged.mp4`.
fn the_merged_file(output: &OpOutput) -> &Path {
    let [produced] = output.produced.as_slice() else {
        panic!("one file: {:?}", output.produced);
    };
    assert_eq!(
        (
            produced.name.as_str(),
            produced.file_name.as_str(),
            produced.content_type.as_str()
        ),
        ("video", "recording-merged.mp4", "video/mp4")
    );
    &produced.path
}

/// The video of `merged` is the recording's: same codec parameters, same packets; and the
/// file lasts as long as the recording, within one frame.
fn assert_recording_video(merged: &Path, recording: &Path) {
    let (ours, theirs) = (av::ffprobe(merged), av::ffprobe(recording));
    assert_eq!(av::stream_count(&ours, "video"), 1);
    assert_eq!(av::stream_count(&ours, "audio"), 1);
    assert_eq!(
        av::codec_parameters(av::stream(&ours, "video")),
        av::codec_parameters(av::stream(&theirs, "video"))
    );
    let packets = av::packets(merged, "v");
    assert_eq!(packets, av::packets(recording, "v"));
    assert_eq!(packets.0, (RECORDING_SECONDS * RECORDING_FPS) as u64);
    let duration = av::number(&ours["format"]["duration"]);
    let expected = av::number(&theirs["format"]["duration"]);
    assert!(
        (duration - expected).abs() <= 1.0 / RECORDING_FPS,
        "{duration} s, the recording {expected} s"
    );
}

pub fn the_call_then_the_recording_from_call_end() {
    let sandbox = Sandbox::new();
    let inputs = inputs(&sandbox, "av-call.wav", "av-recording.mp4");
    let percentages = Percentages::default();
    let output =
        av::run(&sandbox, &merge(json!("00:00:12")), &inputs, &percentages).expect("merged");
    let merged = the_merged_file(&output);
    assert_only(
        &sandbox,
        &["av-call.wav", "av-recording.mp4"],
        &["merged.mp4"],
    );
    assert_recording_video(merged, &inputs[1].path);

    // An 8 kHz mono call in a 48 kHz stereo recording: the recording's format wins.
    let audio = av::stream(&av::ffprobe(merged), "audio").clone();
    assert_eq!(
        (
            &audio["codec_name"],
            &audio["sample_rate"],
            &audio["channels"]
        ),
        (&json!("aac"), &json!("48000"), &json!(2))
    );
    let samples = av::pcm(merged);
    assert_sound(&samples, 0.0, 11.9, "call");
    assert_sound(&samples, 12.1, RECORDING_SECONDS - 0.1, "recording");
    let join = av::join_time(&samples, 6.0, CALL_HZ, RECORDING_HZ);
    assert!((join - 12.0).abs() <= JOIN_TOLERANCE, "joined at {join} s");

    let result = output.result.expect("result");
    assert_eq!(result["call_end"], 12.0);
    assert_eq!(result["container"], "mp4");
    assert_eq!(result["audio"]["call_cut_seconds"], 3.0);
    assert_eq!(result["audio"]["silence_after_call_seconds"], 0.0);
    assert_eq!(result["probe"]["file_name"], "recording.mp4");
    let said = percentages.said();
    assert_eq!(
        (said.first(), said.last()),
        (Some(&0), Some(&100)),
        "{said:?}"
    );
    assert!(said.windows(2).all(|w| w[0] < w[1]), "{said:?}");
}

pub fn a_short_call_is_padded_with_silence_up_to_call_end() {
    let sandbox = Sandbox::new();
    let inputs = inputs(&sandbox, "av-call-short.wav", "av-recording.mp4");
    let output = av::run(&sandbox, &merge(json!(10)), &inputs, &Silent).expect("merged");
    let merged = the_merged_file(&output);
    assert_recording_video(merged, &inputs[1].path);
    let samples = av::pcm(merged);
    assert_sound(&samples, 0.0, 5.9, "call");
    assert_sound(&samples, 6.1, 9.9, "silence");
    assert_sound(&samples, 10.1, RECORDING_SECONDS - 0.1, "recording");
    let join = av::join_time(&samples, 6.0, CALL_HZ, RECORDING_HZ);
    assert!((join - 10.0).abs() <= JOIN_TOLERANCE, "joined at {join} s");
    let result = output.result.expect("result");
    assert_eq!(result["audio"]["silence_after_call_seconds"], 4.0);
}

pub fn a_recording_without_sound_gets_silence_after_the_call() {
    let sandbox = Sandbox::new();
    let inputs = inputs(&sandbox, "av-call.wav", "av-recording-silent.mp4");
    let output =
        av::run(&sandbox, &merge(json!("00:00:05.000")), &inputs, &Silent).expect("merged");
    let merged = the_merged_file(&output);
    assert_recording_video(merged, &inputs[1].path);
    let samples = av::pcm(merged);
    assert_sound(&samples, 0.0, 4.9, "call");
    assert_sound(&samples, 5.1, RECORDING_SECONDS - 0.1, "silence");
    assert_eq!(
        output.result.expect("result")["audio"]["recording_has_audio"],
        false
    );
}

pub fn call_end_past_the_recording_is_time_out_of_range() {
    let sandbox = Sandbox::new();
    let inputs = inputs(&sandbox, "av-call.wav", "av-recording.mp4");
    let error = av::run(&sandbox, &merge(json!(20.5)), &inputs, &Silent).expect_err("past");
    assert_eq!(error.code(), ErrorCode::TimeOutOfRange);
    assert!(!error.is_retryable(), "bad input is not retried");
    let message = error.to_string();
    assert!(
        message.contains("00:00:20.500") && message.contains("20.000 s"),
        "{message}"
    );
    assert_only(&sandbox, &["av-call.wav", "av-recording.mp4"], &[]);
}

pub fn a_call_without_sound_or_unreadable_is_refused() {
    for (call, code, words) in [
        (
            "av-recording-silent.mp4",
            ErrorCode::NoAudioStream,
            "the call audio has no audio stream",
        ),
        (
            "notes.mp4",
            ErrorCode::NotAVideo,
            "the call audio is not an audio or video file FFmpeg can read",
        ),
    ] {
        let sandbox = Sandbox::new();
        let inputs = inputs(&sandbox, call, "av-recording.mp4");
        let error = av::run(&sandbox, &merge(json!(5)), &inputs, &Silent).expect_err("refused");
        assert_eq!(error.code(), code, "{call}");
        assert!(!error.is_retryable());
        let message = error.to_string();
        assert!(message.contains(words), "{message}");
        assert!(!message.contains("/tmp"), "no paths in messages: {message}");
    }
}

pub fn concurrent_merges_share_no_file() {
    let sandbox = Sandbox::new();
    let inputs = inputs(&sandbox, "av-call.wav", "av-recording.mp4");
    let engine = sandbox.engine();
    let (first, second) = (sandbox.dir("work/a"), sandbox.dir("work/b"));
    let (early, late) = (merge(json!(8)), merge(json!(14)));
    let (a, b) = block_on(async {
        tokio::join!(
            engine.run(&early, &inputs, &first, &Silent),
            engine.run(&late, &inputs, &second, &Silent),
        )
    });
    let (a, b) = (a.expect("first merge"), b.expect("second merge"));
    assert_eq!(sandbox.files("work"), ["a/merged.mp4", "b/merged.mp4"]);
    assert_eq!(sandbox.files("scratch"), Vec::<String>::new());
    for (output, call_end) in [(a, 8.0), (b, 14.0)] {
        let samples = av::pcm(the_merged_file(&output));
        let join = av::join_time(&samples, 2.0, CALL_HZ, RECORDING_HZ);
        assert!(
            (join - call_end).abs() <= JOIN_TOLERANCE,
            "call_end {call_end}: joined at {join} s"
        );
    }
}
