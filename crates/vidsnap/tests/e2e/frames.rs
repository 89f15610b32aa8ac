//! `vidsnap frames`: target times, exact and keyframe frames on every container the issue names,
//! the zip's layout and manifest, formats, scaling, rotation.

#![allow(clippy::unwrap_used)]

use serde_json::Value;

use crate::support::{
    Sandbox, clip, frame_brightness, frame_times, image_brightness, manifest, shown_at, zip_entries,
};

fn frames_of(json: &Value) -> Vec<Value> {
    json["manifest"]["frames"].as_array().unwrap().clone()
}

fn times(frames: &[Value], key: &str) -> Vec<f64> {
    frames.iter().map(|f| f[key].as_f64().unwrap()).collect()
}

#[test]
fn sixty_one_seconds_every_twenty_gives_four_frames() {
    let sandbox = Sandbox::new();
    let (output, json) = sandbox.frames(&clip("cfr61.mp4"), &["--every", "20s"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let frames = frames_of(&json);
    assert_eq!(
        times(&frames, "requested_time"),
        vec![0.0, 20.0, 40.0, 60.0]
    );
    // Constant 25 fps from 0: a frame starts exactly at each target.
    assert_eq!(times(&frames, "actual_time"), vec![0.0, 20.0, 40.0, 60.0]);
    assert_eq!(
        Sandbox::list(&sandbox.out()),
        vec!["cfr61-image.jpg", "cfr61-images.zip"]
    );
    sandbox.assert_scratch_empty();
}

#[test]
fn interval_longer_than_the_video_gives_one_frame() {
    let sandbox = Sandbox::new();
    let (output, json) = sandbox.frames(&clip("short3.mp4"), &["--every", "10s"]);
    assert!(output.status.success());
    assert_eq!(times(&frames_of(&json), "requested_time"), vec![0.0]);
}

#[test]
fn zip_holds_stored_frames_in_time_order_and_a_manifest() {
    let sandbox = Sandbox::new();
    let (output, json) = sandbox.frames(&clip("cfr61.mp4"), &["--every", "15s"]);
    assert!(output.status.success());
    let zip = sandbox.out().join("cfr61-images.zip");
    let entries = zip_entries(&zip);
    let names: Vec<&str> = entries.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names.last(), Some(&"manifest.json"));
    let images = &names[..names.len() - 1];
    let mut sorted = images.to_vec();
    sorted.sort();
    assert_eq!(images, sorted.as_slice(), "names sort by time");
    assert_eq!(images.len(), 5);
    for (name, method, bytes) in &entries[..images.len()] {
        assert_eq!(*method, zip::CompressionMethod::Stored, "{name} is stored");
        assert_eq!(&bytes[..2], &[0xFF, 0xD8], "{name} is a JPEG");
    }

    let manifest = manifest(&zip);
    assert_eq!(manifest["interval"], 15.0);
    assert_eq!(manifest["mode"], "exact");
    assert_eq!(manifest["source"]["file_name"], "cfr61.mp4");
    assert_eq!(manifest["source"]["duration"], 61.0);
    assert_eq!(manifest, json["manifest"]);
    for (frame, (name, _, bytes)) in manifest["frames"].as_array().unwrap().iter().zip(&entries) {
        assert_eq!(frame["file"], name.as_str());
        assert_eq!(frame["bytes"].as_u64(), Some(bytes.len() as u64));
        assert_eq!(
            (frame["width"].as_u64(), frame["height"].as_u64()),
            (Some(160), Some(120))
        );
        for key in ["index", "requested_time", "actual_time"] {
            assert!(frame.get(key).is_some(), "manifest frame has {key}");
        }
    }

    let thumbnail = std::fs::read(sandbox.out().join("cfr61-image.jpg")).unwrap();
    assert_eq!(thumbnail, entries[0].2, "the thumbnail is the first frame");
}

/// Checks that each image is the frame the rule selects: by its reported time against ffprobe's
/// frame list, and by its picture (each generated frame has its own brightness).
fn assert_frames_are(video_name: &str, mode: &str, extra: &[&str]) {
    let video = clip(video_name);
    let sandbox = Sandbox::new();
    let mut args = vec!["--every", "1.5s", "--mode", mode, "--format", "png"];
    args.extend_from_slice(extra);
    let (output, json) = sandbox.frames(&video, &args);
    assert!(
        output.status.success(),
        "{video_name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed = frame_times(&video);
    let brightness = frame_brightness(&video, 160 * 120);
    assert_eq!(listed.len(), brightness.len());
    let zip = sandbox.out().join(format!(
        "{}-images.zip",
        video_name.rsplit_once('.').unwrap().0
    ));
    let entries = zip_entries(&zip);
    let frames = frames_of(&json);
    let duration = json["manifest"]["source"]["duration"].as_f64().unwrap();
    assert!(duration > 11.9, "{video_name}: {duration}");
    assert_eq!(
        frames.len(),
        (duration / 1.5).ceil() as usize,
        "{video_name}: ceil(duration / N)"
    );
    for (frame, (name, _, bytes)) in frames.iter().zip(&entries) {
        let requested = frame["requested_time"].as_f64().unwrap();
        let actual = frame["actual_time"].as_f64().unwrap();
        let expected = shown_at(&listed, requested, mode == "keyframe");
        assert!(
            (actual - listed[expected].0).abs() < 1e-3,
            "{video_name} {mode} t={requested}: got the frame at {actual}, expected {}",
            listed[expected].0
        );
        let seen = image_brightness(bytes, sandbox.root.path(), name);
        let distance = |i: usize| (seen - brightness[i]).abs();
        assert!(
            distance(expected) < 3.5,
            "{video_name} {mode} t={requested}: picture differs"
        );
        for neighbour in [expected.wrapping_sub(1), expected + 1] {
            if neighbour < brightness.len() {
                assert!(
                    distance(expected) < distance(neighbour),
                    "{video_name} t={requested}"
                );
            }
        }
    }
    sandbox.assert_scratch_empty();
}

#[test]
fn exact_on_h264_with_b_frames() {
    assert_frames_are("ids.mp4", "exact", &[]);
}

#[test]
fn exact_on_variable_frame_rate() {
    assert_frames_are("ids-vfr.mp4", "exact", &[]);
}

#[test]
fn exact_on_mpeg_ts_with_a_non_zero_start() {
    assert_frames_are("ids.ts", "exact", &["--containers", "ts"]);
}

#[test]
fn exact_on_hevc_in_matroska() {
    assert_frames_are("ids-hevc.mkv", "exact", &[]);
}

#[test]
fn exact_on_vp9_in_webm() {
    assert_frames_are("ids-vp9.webm", "exact", &[]);
}

#[test]
fn keyframe_mode_on_h264() {
    assert_frames_are("ids.mp4", "keyframe", &[]);
}

#[test]
fn keyframe_mode_on_vp9() {
    assert_frames_are("ids-vp9.webm", "keyframe", &[]);
}

#[test]
fn keyframe_mode_on_mpeg_ts() {
    assert_frames_are("ids.ts", "keyframe", &["--containers", "ts"]);
}

#[test]
fn webp_and_png_outputs() {
    for (format, magic) in [("png", &b"\x89PNG"[..]), ("webp", &b"RIFF"[..])] {
        let sandbox = Sandbox::new();
        let (output, _) =
            sandbox.frames(&clip("short3.mp4"), &["--format", format, "--every", "1s"]);
        assert!(output.status.success(), "{format}");
        let thumbnail =
            std::fs::read(sandbox.out().join(format!("short3-image.{format}"))).unwrap();
        assert_eq!(&thumbnail[..4], magic, "{format}");
        let entries = zip_entries(&sandbox.out().join("short3-images.zip"));
        assert_eq!(entries.len(), 4, "{format}: 3 frames + manifest");
        assert!(entries[0].0.ends_with(&format!(".{format}")));
    }
}

#[test]
fn quality_changes_jpeg_size() {
    let size = |quality: &str| {
        let sandbox = Sandbox::new();
        let (output, json) = sandbox.frames(&clip("wide.mp4"), &["--quality", quality]);
        assert!(output.status.success());
        frames_of(&json)[0]["bytes"].as_u64().unwrap()
    };
    assert!(size("30") < size("95"));
}

#[test]
fn max_width_scales_down_keeping_aspect_and_never_up() {
    let sandbox = Sandbox::new();
    let (output, json) = sandbox.frames(&clip("wide.mp4"), &["--max-width", "320"]);
    assert!(output.status.success());
    let frame = &frames_of(&json)[0];
    assert_eq!(
        (frame["width"].as_u64(), frame["height"].as_u64()),
        (Some(320), Some(180))
    );

    let sandbox = Sandbox::new();
    let (_, json) = sandbox.frames(&clip("short3.mp4"), &["--max-width", "1000"]);
    let frame = &frames_of(&json)[0];
    assert_eq!(frame["width"].as_u64(), Some(160));
}

#[test]
fn rotated_video_gives_upright_frames() {
    let sandbox = Sandbox::new();
    let (output, json) = sandbox.frames(&clip("rotated.mp4"), &["--format", "png"]);
    assert!(output.status.success());
    let frame = &frames_of(&json)[0];
    // 64x32 stored, turned a quarter for display.
    assert_eq!(
        (frame["width"].as_u64(), frame["height"].as_u64()),
        (Some(32), Some(64))
    );
    // The source is dark on the left and bright on the right; a quarter turn counter-clockwise
    // (what the display matrix asks, and what ffmpeg itself shows) puts the bright half on top.
    let png = std::fs::read(sandbox.out().join("rotated-image.png")).unwrap();
    let output = std::process::Command::new("ffmpeg")
        .args([
            "-v", "error", "-i", "pipe:0", "-f", "rawvideo", "-pix_fmt", "gray", "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&png)?;
            child.wait_with_output()
        })
        .unwrap();
    let (top, bottom) = output.stdout.split_at(output.stdout.len() / 2);
    let mean = |b: &[u8]| b.iter().map(|x| f64::from(*x)).sum::<f64>() / b.len() as f64;
    assert!(
        mean(top) > 200.0 && mean(bottom) < 50.0,
        "top {} bottom {}",
        mean(top),
        mean(bottom)
    );
}

#[test]
fn duration_missing_from_the_header_is_measured_from_packets() {
    let sandbox = Sandbox::new();
    let video = clip("no-duration.webm");
    let (output, json) = sandbox.frames(&video, &["--every", "2s"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let source = &json["manifest"]["source"];
    assert_eq!(source["duration_source"], "packets");
    assert!((source["duration"].as_f64().unwrap() - 7.0).abs() < 0.1);
    assert_eq!(
        times(&frames_of(&json), "requested_time"),
        vec![0.0, 2.0, 4.0, 6.0]
    );
}

#[test]
fn default_output_directory_is_the_inputs() {
    let sandbox = Sandbox::new();
    let video = sandbox.root.path().join("My Clip.mp4");
    std::fs::copy(clip("short3.mp4"), &video).unwrap();
    let output = sandbox
        .vidsnap()
        .arg("frames")
        .arg(&video)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(sandbox.root.path().join("My Clip-images.zip").is_file());
    assert!(sandbox.root.path().join("My Clip-image.jpg").is_file());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("1 frame -> "), "{stdout}");
}
