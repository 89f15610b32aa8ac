//! `trim`: audio cut at the sample (a sawtooth's samples say which they are), video cut at the
//! frame when re-encoded (a counter's frames say which they are) or at the keyframe when
//! copied, and times the file does not reach refused with `time-out-of-range`.

use serde_json::{Value, json};
use vidsnap_domain::ErrorCode;
use vidsnap_media::Silent;

use crate::{
    av_support::{self as av, assert_only, assert_sound},
    support::{FPS, Sandbox, frame_brightness},
};

fn trim(options: Value) -> vidsnap_domain::Operation {
    av::op("trim", options)
}

pub fn audio_is_cut_at_the_sample() {
    let sandbox = Sandbox::new();
    let input = sandbox.input("av-sawtooth.wav", "saw.wav");
    let options = json!({"start": 1.5, "end": "00:00:02.250"});
    let output = av::run(&sandbox, &trim(options), &[input], &Silent).expect("trimmed");
    let [produced] = output.produced.as_slice() else {
        panic!("one file: {:?}", output.produced);
    };
    assert_eq!(
        (produced.name.as_str(), produced.file_name.as_str()),
        ("media", "saw-trimmed.flac")
    );
    assert_only(&sandbox, &["av-sawtooth.wav"], &["trimmed.flac"]);
    // Samples 72000 to 107999, each (n mod 256 - 128) / 256 of full scale.
    let samples = av::pcm(&produced.path);
    assert_eq!(samples.len(), 36_000, "0.75 s at 48 kHz");
    for (i, sample) in samples.iter().enumerate() {
        let n = 72_000 + i as i32;
        assert_eq!(i32::from(*sample), (n % 256 - 128) * 128, "sample {i}");
    }
    let result = output.result.expect("result");
    assert_eq!(
        (&result["exact"], &result["start_actual"], &result["video"]),
        (&json!("sample"), &json!(1.5), &Value::Null)
    );
}

pub fn reencoded_video_is_cut_at_the_frame() {
    let sandbox = Sandbox::new();
    let input = sandbox.input("counter.mp4", "counter.mp4");
    let options = json!({"start": 0.4, "end": 1.2, "video": "reencode"});
    let output = av::run(
        &sandbox,
        &trim(options),
        std::slice::from_ref(&input),
        &Silent,
    )
    .expect("trimmed");
    assert_only(&sandbox, &["counter.mp4"], &["trimmed.mp4"]);
    let source = frame_brightness(&input.path);
    let frames = frame_brightness(&output.produced[0].path);
    assert_eq!(frames.len(), 20, "frames 10 to 29: {frames:?}");
    for (i, luma) in frames.iter().enumerate() {
        // Re-encoded (lossy): within a third of the step between frames.
        assert!((luma - source[10 + i]).abs() < 1.5, "frame {i}: {frames:?}");
    }
    assert_eq!(output.result.expect("result")["exact"], "frame");
}

pub fn copied_video_starts_at_the_keyframe_at_or_before_start() {
    let sandbox = Sandbox::new();
    let input = sandbox.input("counter.mp4", "counter.mp4");
    let options = json!({"start": 0.5, "end": 1.5, "video": "copy"});
    let output = av::run(
        &sandbox,
        &trim(options),
        std::slice::from_ref(&input),
        &Silent,
    )
    .expect("trimmed");
    let result = output.result.expect("result");
    assert_eq!(
        (&result["exact"], &result["video"]),
        (&json!("keyframe"), &json!("copy"))
    );
    let start = result["start_actual"].as_f64().expect("start_actual");
    let first = (start * FPS).round() as usize;
    let keyframes = av::keyframes(&input.path, FPS);
    assert!(
        start <= 0.5 && keyframes.contains(&first),
        "{start} among {keyframes:?}"
    );
    assert_eq!(keyframes.iter().filter(|k| **k <= 12).max(), Some(&first));
    let path = &output.produced[0].path;
    let frames = frame_brightness(path);
    assert_eq!(
        frames.len(),
        38 - first,
        "frames {first} to 37 (1.48 s): {frames:?}"
    );
    assert_eq!(
        frames,
        frame_brightness(&input.path)[first..38],
        "the same pictures"
    );
    // Copied: the codec parameters are the source's.
    assert_eq!(
        av::codec_parameters(av::stream(&av::ffprobe(path), "video")),
        av::codec_parameters(av::stream(&av::ffprobe(&input.path), "video"))
    );
}

pub fn a_video_keeps_its_sound_in_step() {
    let sandbox = Sandbox::new();
    let input = sandbox.input("av-recording.mp4", "recording.mp4");
    let options = json!({"start": "00:00:05", "end": "00:00:07.500"});
    let output = av::run(&sandbox, &trim(options), &[input], &Silent).expect("trimmed");
    let path = &output.produced[0].path;
    let probe = av::ffprobe(path);
    for kind in ["video", "audio"] {
        let seconds = av::number(&av::stream(&probe, kind)["duration"]);
        assert!((seconds - 2.5).abs() <= 1.0 / FPS, "{kind}: {seconds} s");
    }
    let samples = av::pcm(path);
    assert_sound(&samples, 0.0, 2.4, "recording");
    assert!(
        (samples.len() as f64 / 48_000.0 - 2.5).abs() < 0.03,
        "{}",
        samples.len()
    );
}

pub fn times_the_file_does_not_reach_are_time_out_of_range() {
    for options in [json!({"end": 2.5}), json!({"start": "00:00:02"})] {
        let sandbox = Sandbox::new();
        let input = sandbox.input("counter.mp4", "counter.mp4");
        let error =
            av::run(&sandbox, &trim(options.clone()), &[input], &Silent).expect_err("out of range");
        assert_eq!(error.code(), ErrorCode::TimeOutOfRange, "{options}");
        assert!(!error.is_retryable());
        assert_only(&sandbox, &["counter.mp4"], &[]);
    }
}
