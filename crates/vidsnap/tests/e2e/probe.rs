//! `vidsnap probe`: the report and the verdict.

#![allow(clippy::unwrap_used)]

use serde_json::Value;

use crate::support::{Sandbox, clip};

fn probe_json(video: &std::path::Path) -> (i32, Value) {
    let output = Sandbox::new()
        .vidsnap()
        .args(["probe", "--json"])
        .arg(video)
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        serde_json::from_slice(&output.stdout).unwrap(),
    )
}

#[test]
fn reports_format_streams_and_verdict() {
    let (status, json) = probe_json(&clip("cfr61.mp4"));
    assert_eq!(status, 0);
    let probe = &json["probe"];
    assert!(probe["container"].as_str().unwrap().contains("mp4"));
    assert_eq!(probe["duration"], 61.0);
    assert!(probe["size_bytes"].as_u64().unwrap() > 0);
    assert!(probe["bit_rate"].as_u64().unwrap() > 0);
    let video = &probe["streams"][0];
    assert_eq!(video["kind"], "video");
    assert_eq!(video["codec"], "h264");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(160), Some(120))
    );
    assert_eq!(video["frame_rate"], 25.0);
    assert_eq!(video["pixel_format"], "yuv420p");
    assert_eq!(probe["streams"][1]["kind"], "audio");
    assert_eq!(json["verdict"]["accepted"], true);
    assert_eq!(json["verdict"]["container"], "mp4");
}

#[test]
fn reports_rotation() {
    let (_, json) = probe_json(&clip("rotated.mp4"));
    assert_eq!(json["probe"]["streams"][0]["rotation"], 270);
}

#[test]
fn refusal_is_a_verdict_with_a_code_and_exit_one() {
    let (status, json) = probe_json(&clip("audio-only.mp4"));
    assert_eq!(status, 1);
    assert_eq!(json["verdict"]["accepted"], false);
    assert_eq!(json["verdict"]["code"], "no-video-stream");
    // The probe is still shown: it says why.
    assert_eq!(json["probe"]["streams"][0]["kind"], "audio");
}

#[test]
fn text_report_for_people() {
    let output = Sandbox::new()
        .vidsnap()
        .arg("probe")
        .arg(clip("cfr61.mp4"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "duration:   61.000 s",
        "video h264 160x120 25.000 fps yuv420p",
        "verdict:    accepted (mp4)",
    ] {
        assert!(text.contains(expected), "{expected:?} in\n{text}");
    }
}
