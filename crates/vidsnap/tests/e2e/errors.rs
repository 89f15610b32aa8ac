//! Every error code the CLI reports: stable code, one-line message, non-zero exit, JSON with
//! `--json`, and nothing written.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use crate::support::{Sandbox, clip};

/// Runs `frames --json` and checks the error's code, exit status and that no output appeared.
fn assert_refused(video: &Path, extra: &[&str], code: &str) -> String {
    let sandbox = Sandbox::new();
    let (output, json) = sandbox.frames(video, extra);
    assert_eq!(output.status.code(), Some(1), "{code}: exit status");
    assert_eq!(json["error"]["code"], code, "{code}: {json}");
    let message = json["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        !message.is_empty() && !message.contains('\n'),
        "{code}: one line"
    );
    assert_eq!(
        Sandbox::list(&sandbox.out()),
        Vec::<String>::new(),
        "{code}: nothing published"
    );
    sandbox.assert_scratch_empty();

    // Without --json: the same code on stderr, for people.
    let output = sandbox
        .vidsnap()
        .arg("frames")
        .arg(video)
        .arg("--out")
        .arg(sandbox.out())
        .args(extra)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with(&format!("error[{code}]: ")), "{stderr}");
    message
}

#[test]
fn unsupported_extension() {
    let message = assert_refused(&clip("song.mp3"), &[], "unsupported-format");
    assert!(
        message.contains("mp4, mov, mkv, webm, avi, flv, wmv"),
        "{message}"
    );
}

#[test]
fn accepted_content_in_a_refused_container() {
    // MPEG-TS is readable but not accepted by default; named .mp4 it is caught by content.
    let sandbox = Sandbox::new();
    let renamed = sandbox.root.path().join("broadcast.mp4");
    std::fs::copy(clip("ids.ts"), &renamed).unwrap();
    assert_refused(&renamed, &[], "unsupported-format");
}

#[test]
fn text_named_mp4_is_not_a_video() {
    assert_refused(&clip("text.mp4"), &[], "not-a-video");
}

#[test]
fn empty_file_is_not_a_video() {
    let message = assert_refused(&clip("empty.mp4"), &[], "not-a-video");
    assert!(message.contains("empty"), "{message}");
}

#[test]
fn mp3_named_mp4_is_not_a_video() {
    assert_refused(&clip("song-named.mp4"), &[], "not-a-video");
}

#[test]
fn audio_only_mp4_has_no_video_stream() {
    assert_refused(&clip("audio-only.mp4"), &[], "no-video-stream");
}

#[test]
fn undecodable_video_is_corrupt() {
    assert_refused(&clip("corrupt.mp4"), &[], "corrupt-input");
}

#[test]
fn limits() {
    let video = clip("short3.mp4");
    assert_refused(&video, &["--limit-bytes", "1000"], "too-large");
    assert_refused(&video, &["--limit-duration", "2"], "too-long");
    assert_refused(&video, &["--limit-width", "100"], "dimensions-too-large");
    assert_refused(&video, &["--limit-height", "100"], "dimensions-too-large");
}

#[test]
fn missing_input() {
    assert_refused(Path::new("/nonexistent/clip.mp4"), &[], "input-not-found");
}

#[test]
fn missing_ffmpeg_says_how_to_install_it() {
    let message = assert_refused(
        &clip("short3.mp4"),
        &["--ffprobe", "/nonexistent/ffprobe"],
        "ffmpeg-missing",
    );
    assert!(message.contains("apt-get install ffmpeg"), "{message}");

    // The same when it is simply not on PATH.
    let sandbox = Sandbox::new();
    let output = sandbox
        .vidsnap()
        .env("PATH", "/nonexistent")
        .args(["probe", "--json"])
        .arg(clip("short3.mp4"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["error"]["code"], "ffmpeg-missing");
}

#[test]
fn zero_negative_or_sub_millisecond_interval_is_a_usage_error() {
    for every in ["0s", "-5s", "0", "soon", "0.000000001s", "0.5ms"] {
        let sandbox = Sandbox::new();
        let (output, json) = sandbox.frames(&clip("short3.mp4"), &["--every", every]);
        assert_eq!(output.status.code(), Some(2), "--every {every}");
        assert_eq!(json["error"]["code"], "invalid-argument", "--every {every}");

        let output = sandbox
            .vidsnap()
            .args(["frames", "x.mp4", "--every", every])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&output.stderr).contains("--every"));
    }
}

#[test]
fn an_interval_that_would_make_too_many_frames_or_repeat_frames() {
    // One frame at 25 fps (0.04 s) on a 3 s clip is 75 frames: over a limit of 50, refused
    // before one is extracted.
    let message = assert_refused(
        &clip("short3.mp4"),
        &["--every", "0.04s", "--limit-frames", "50"],
        "too-many-frames",
    );
    assert!(message.contains("limits.max_frames"), "{message}");
    // Shorter than one frame of the video: each frame would come out several times.
    let message = assert_refused(
        &clip("short3.mp4"),
        &["--every", "10ms"],
        "interval-too-short",
    );
    assert!(message.contains("0.0400"), "{message}");
    // The limit is a setting: 30 frames fit under 50.
    let sandbox = Sandbox::new();
    let (output, json) = sandbox.frames(&clip("short3.mp4"), &["--every", "0.1s"]);
    assert_eq!(output.status.code(), Some(0), "{json}");
    let (output, json) = sandbox.frames(
        &clip("short3.mp4"),
        &["--every", "0.1s", "--limit-frames", "20"],
    );
    assert_eq!(output.status.code(), Some(1), "{json}");
    assert_eq!(json["error"]["code"], "too-many-frames");
}
