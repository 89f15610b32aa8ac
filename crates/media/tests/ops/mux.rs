//! `mux`: a video (copied, packet for packet) with another file's audio, padded to the video
//! or cut to the shorter, the audio encoded to AAC only when it has to be.

use serde_json::{Value, json};
use vidsnap_domain::ErrorCode;
use vidsnap_media::{OpOutput, Silent};

use crate::{
    av_support::{self as av, assert_only, assert_sound},
    support::{FPS, Sandbox},
};

/// `counter.mp4` (2 s, no sound) muxed with `audio` under `policy`.
fn mux(audio: &str, policy: &str) -> (Sandbox, OpOutput) {
    let sandbox = Sandbox::new();
    let inputs = [
        sandbox.input("counter.mp4", "counter.mp4"),
        sandbox.input(audio, audio),
    ];
    let op = av::op("mux", json!({ "policy": policy }));
    let output = av::run(&sandbox, &op, &inputs, &Silent).expect("muxed");
    assert_only(&sandbox, &["counter.mp4", audio], &["muxed.mp4"]);
    assert_eq!(output.produced[0].file_name, "counter-muxed.mp4");
    let video = av::packets(&output.produced[0].path, "v");
    let source = av::packets(&inputs[0].path, "v");
    if policy == "pad" {
        assert_eq!(video, source, "the video is copied whole");
    } else {
        assert!(video.0 < source.0, "the video is cut");
    }
    (sandbox, output)
}

fn seconds(output: &OpOutput, kind: &str) -> f64 {
    let probe = av::ffprobe(&output.produced[0].path);
    av::number(&av::stream(&probe, kind)["duration"])
}

pub fn pad_keeps_the_whole_video_and_pads_the_audio_with_silence() {
    let (_sandbox, output) = mux("av-tone-1s.m4a", "pad");
    let result = output.result.clone().expect("result");
    assert_eq!(
        (&result["audio"], &result["padded_seconds"]),
        (&json!("encoded"), &json!(1.0)),
        "padding needs encoding"
    );
    assert!((seconds(&output, "audio") - 2.0).abs() <= 1.0 / FPS);
    let samples = av::pcm(&output.produced[0].path);
    assert_sound(&samples, 0.0, 0.9, "call");
    assert_sound(&samples, 1.1, 1.9, "silence");
}

pub fn shortest_ends_with_the_audio_and_copies_aac() {
    let (_sandbox, output) = mux("av-tone-1s.m4a", "shortest");
    let result = output.result.clone().expect("result");
    assert_eq!(
        (&result["audio"], &result["duration"]),
        (&json!("copied"), &json!(1.0))
    );
    assert_eq!(
        av::packets(&output.produced[0].path, "v").0,
        FPS as u64,
        "1 s"
    );
    let audio = av::stream(&av::ffprobe(&output.produced[0].path), "audio").clone();
    assert_eq!(audio["codec_name"], "aac");
}

pub fn audio_that_is_not_aac_is_encoded() {
    let (_sandbox, output) = mux("av-tone-1s.wav", "pad");
    let result = output.result.clone().expect("result");
    assert_eq!(result["audio"], "encoded");
    let audio = av::stream(&av::ffprobe(&output.produced[0].path), "audio").clone();
    assert_eq!(audio["codec_name"], "aac");
    assert_eq!(result["policy"], Value::from("pad"));
}

pub fn the_first_input_needs_a_video() {
    let sandbox = Sandbox::new();
    let inputs = [
        sandbox.input("av-tone-1s.wav", "a.wav"),
        sandbox.input("av-tone-1s.m4a", "b.m4a"),
    ];
    let error =
        av::run(&sandbox, &av::op("mux", json!({})), &inputs, &Silent).expect_err("no video");
    assert_eq!(error.code(), ErrorCode::NoVideoStream);
    assert!(error.to_string().contains("the video input"), "{error}");
}
