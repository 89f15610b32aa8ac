//! `split`: the video and the audio of a file as two files, stream-copied: the same packets
//! (count and hash) and the same codec parameters as in the file.

use serde_json::json;
use vidsnap_domain::ErrorCode;
use vidsnap_media::Silent;

use crate::{
    av_support::{self as av, assert_only},
    support::Sandbox,
};

pub fn both_streams_are_copied_packet_for_packet() {
    let sandbox = Sandbox::new();
    let input = sandbox.input("av-recording.mp4", "recording.mp4");
    let output = av::run(
        &sandbox,
        &av::op("split", json!({})),
        std::slice::from_ref(&input),
        &Silent,
    )
    .expect("split");
    let made: Vec<(&str, &str, &str)> = output
        .produced
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.file_name.as_str(),
                p.content_type.as_str(),
            )
        })
        .collect();
    assert_eq!(
        made,
        [
            ("video", "recording-video.mp4", "video/mp4"),
            ("audio", "recording-audio.m4a", "audio/mp4"),
        ]
    );
    assert_only(&sandbox, &["av-recording.mp4"], &["audio.m4a", "video.mp4"]);
    let source = av::ffprobe(&input.path);
    for (produced, kind, short) in [
        (&output.produced[0], "video", "v"),
        (&output.produced[1], "audio", "a"),
    ] {
        let probe = av::ffprobe(&produced.path);
        assert_eq!(
            probe["streams"].as_array().map(Vec::len),
            Some(1),
            "{kind} alone"
        );
        assert_eq!(
            av::codec_parameters(av::stream(&probe, kind)),
            av::codec_parameters(av::stream(&source, kind)),
            "{kind}: codec unchanged"
        );
        assert_eq!(
            av::packets(&produced.path, short),
            av::packets(&input.path, short),
            "{kind}: the same packets"
        );
    }
    let result = output.result.expect("result");
    assert_eq!(result["video"]["codec"], "h264");
    assert_eq!(result["audio"]["codec"], "aac");
}

pub fn a_file_without_one_of_the_streams_is_refused() {
    for (clip, code) in [
        ("av-recording-silent.mp4", ErrorCode::NoAudioStream),
        ("av-call.wav", ErrorCode::NoVideoStream),
    ] {
        let sandbox = Sandbox::new();
        let input = sandbox.input(clip, clip);
        let error =
            av::run(&sandbox, &av::op("split", json!({})), &[input], &Silent).expect_err("refused");
        assert_eq!(error.code(), code, "{clip}");
        assert!(!error.is_retryable());
        assert_only(&sandbox, &[clip], &[]);
    }
}
