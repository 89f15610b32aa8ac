//! `concat`: parts that differ in sample rate, channels and codec (8 kHz mono WAV, 44.1 kHz
//! stereo MP3, 48 kHz stereo AAC) join in order, each where the previous one ended; videos of
//! different sizes join with their sound (silence for a part without).

use serde_json::json;
use vidsnap_domain::ErrorCode;
use vidsnap_media::Silent;

use crate::{
    av_support::{self as av, CALL_HZ, RECORDING_HZ, assert_only, assert_sound},
    support::{FPS, Sandbox},
};

const PARTS: [&str; 3] = [
    "av-part-8k-mono.wav",
    "av-part-44k-stereo.mp3",
    "av-part-48k-stereo.m4a",
];

pub fn mixed_rates_layouts_and_codecs_join_in_order() {
    let sandbox = Sandbox::new();
    let inputs: Vec<_> = PARTS.iter().map(|clip| sandbox.input(clip, clip)).collect();
    let output = av::run(&sandbox, &av::op("concat", json!({})), &inputs, &Silent).expect("joined");
    let [produced] = output.produced.as_slice() else {
        panic!("one file: {:?}", output.produced);
    };
    assert_eq!(
        (
            produced.name.as_str(),
            produced.file_name.as_str(),
            produced.content_type.as_str()
        ),
        ("media", "av-part-8k-mono-joined.flac", "audio/flac")
    );
    assert_only(&sandbox, &PARTS, &["joined.flac"]);
    let audio = av::stream(&av::ffprobe(&produced.path), "audio").clone();
    assert_eq!(
        (
            &audio["codec_name"],
            &audio["sample_rate"],
            &audio["channels"]
        ),
        (&json!("flac"), &json!("48000"), &json!(2)),
        "the highest rate, stereo"
    );
    // 1 s at 440 Hz, 1.5 s at 880 Hz, 0.5 s at 440 Hz.
    let samples = av::pcm(&produced.path);
    let seconds = samples.len() as f64 / f64::from(av::MEASURE_RATE);
    assert!((seconds - 3.0).abs() < 0.03, "{seconds} s");
    assert_sound(&samples, 0.0, 0.9, "call");
    assert_sound(&samples, 1.1, 2.4, "recording");
    assert_sound(&samples, 2.6, 2.9, "call");
    let join = av::join_time(&samples, 0.5, CALL_HZ, RECORDING_HZ);
    assert!(
        (join - 1.0).abs() <= 0.02,
        "the second part starts at {join} s"
    );
    let result = output.result.expect("result");
    assert_eq!(result["inputs"][1]["sample_rate"], 44_100);
    assert_eq!(result["inputs"][0]["channels"], 1);
}

pub fn videos_join_at_the_first_size_with_their_sound() {
    let sandbox = Sandbox::new();
    let clips = ["counter.mp4", "av-clip-3s.mp4"];
    let inputs: Vec<_> = clips.iter().map(|clip| sandbox.input(clip, clip)).collect();
    let options = json!({"streams": "video"});
    let output = av::run(&sandbox, &av::op("concat", options), &inputs, &Silent).expect("joined");
    let path = &output.produced[0].path;
    assert_eq!(output.produced[0].file_name, "counter-joined.mp4");
    let probe = av::ffprobe(path);
    let video = av::stream(&probe, "video");
    assert_eq!(
        (&video["width"], &video["height"]),
        (&json!(64), &json!(48))
    );
    assert_eq!(av::packets(path, "v").0, (5.0 * FPS) as u64, "2 s then 3 s");
    // The counter has no sound: silence, then the clip's tone.
    let samples = av::pcm(path);
    assert_sound(&samples, 0.0, 1.9, "silence");
    assert_sound(&samples, 2.1, 4.9, "recording");
}

pub fn one_input_is_not_a_list() {
    let sandbox = Sandbox::new();
    let input = sandbox.input(PARTS[0], PARTS[0]);
    let error =
        av::run(&sandbox, &av::op("concat", json!({})), &[input], &Silent).expect_err("one input");
    assert_eq!(error.code(), ErrorCode::InvalidArgument);
    assert!(error.to_string().contains("2 to 16 inputs"), "{error}");
}
