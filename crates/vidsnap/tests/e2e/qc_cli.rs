//! `vidsnap qc FILE [--json] [--target-lufs N] [--policy …] [--min-bytes N] [--silence-db N]`:
//! the qc operation on a local file, reported like a linter, on clips whose answer is known by
//! construction: exit 0 passed, 1 failed (or refused, with the report when there is one), 2 a
//! usage error. Every run has TMPDIR pointed at an empty directory, which must stay empty.

#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::{Mutex, OnceLock},
};

use serde_json::Value;

use crate::support::Sandbox;

/// The report's checks, in their stable order.
const CHECKS: [&str; 13] = [
    "streams",
    "size",
    "decode",
    "black",
    "freeze",
    "silence",
    "loudness",
    "loudness_range",
    "true_peak",
    "interlace",
    "variable_frame_rate",
    "duration_mismatch",
    "rotation",
];

/// Lets the small clips pass the size check (1 MiB by default).
const SMALL: &[&str] = &["--min-bytes", "1000"];

/// A 997 Hz tone on two channels at `lufs` (a full-scale sine on each of two channels reads
/// 0 LUFS), `seconds` long.
fn tone(lufs: f64, seconds: u32) -> String {
    let wave = format!("{:.5}*sin(2*PI*997*t)", 10f64.powf(lufs / 20.0));
    format!("aevalsrc={wave}|{wave}:s=48000:d={seconds}")
}

/// ffmpeg arguments (before the output path) of each clip.
fn recipe(name: &str) -> Vec<String> {
    let picture = |seconds: u32| format!("testsrc=size=320x240:rate=25:duration={seconds}");
    let video = ["-c:v", "libx264", "-pix_fmt", "yuv420p"].map(String::from);
    let lavfi = |source: String| vec!["-f".into(), "lavfi".into(), "-i".into(), source];
    match name {
        // Video and a -23 LUFS tone, the index first (so a cut copy still opens): nothing to find.
        "clean.mp4" => [
            lavfi(picture(4)),
            lavfi(tone(-23.0, 4)),
            video.to_vec(),
            ["-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart"]
                .map(String::from)
                .to_vec(),
        ]
        .concat(),
        "video-only.mp4" => [lavfi(picture(3)), video.to_vec()].concat(),
        "silent.wav" => lavfi("anullsrc=r=48000:cl=stereo:d=3".into()),
        "tone.mp3" => [
            lavfi(tone(-23.0, 3)),
            ["-c:a", "libmp3lame"].map(String::from).to_vec(),
        ]
        .concat(),
        other => panic!("no recipe for {other}"),
    }
}

/// A generated clip, made on first use under a name of its own, in a directory named after
/// this file's text and the ffmpeg version (a changed recipe never reuses a stale clip).
fn clip(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    static LOCK: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let version = Command::new("ffmpeg")
            .arg("-version")
            .output()
            .expect("ffmpeg must be installed to run the tests (scripts/install-deps.sh)");
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&version.stdout, &mut hasher);
        std::hash::Hash::hash(include_str!("qc_cli.rs"), &mut hasher);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "qc-cli-clips-{:016x}",
            std::hash::Hasher::finish(&hasher)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    });
    // The truncated clip is cut from the clean one, made (under the lock) before taking it.
    let source = (name == "truncated.mp4").then(|| clip("clean.mp4"));
    let mut made = LOCK
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(path) = made.get(name) {
        return path.clone();
    }
    let path = dir.join(name);
    if !path.exists() {
        let partial = dir.join(format!("partial-{}-{name}", std::process::id()));
        match name {
            // The clean clip cut at 55%: its index (at the front) still states 4 s.
            "truncated.mp4" => {
                let whole = std::fs::read(source.unwrap()).unwrap();
                std::fs::write(&partial, &whole[..whole.len() * 55 / 100]).unwrap();
            }
            "notes.mp4" => std::fs::write(&partial, "a shopping list\n".repeat(100)).unwrap(),
            _ => {
                let status = Command::new("ffmpeg")
                    .args(["-nostdin", "-y", "-v", "error"])
                    .args(recipe(name))
                    .arg(&partial)
                    .status()
                    .expect("ffmpeg must be installed to run the tests");
                assert!(status.success(), "making {name}");
            }
        }
        std::fs::rename(&partial, &path).unwrap();
    }
    made.insert(name.into(), path.clone());
    path
}

/// `vidsnap qc FILE EXTRA…` with TMPDIR an empty directory of its own (and no
/// VIDSNAP_MEDIA__TEMP_DIR), which must be empty again afterwards, whatever happened.
fn qc(file: &Path, extra: &[&str]) -> Output {
    let tmp = tempfile::Builder::new()
        .prefix("vidsnap-qc-tmpdir-")
        .tempdir()
        .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_vidsnap"))
        .arg("qc")
        .arg(file)
        .args(extra)
        .env("TMPDIR", tmp.path())
        .env_remove("VIDSNAP_MEDIA__TEMP_DIR")
        .output()
        .unwrap();
    assert_eq!(
        Sandbox::list(tmp.path()),
        Vec::<String>::new(),
        "qc {file:?} {extra:?} left files in TMPDIR"
    );
    output
}

/// The exit code and the parsed stdout of `qc FILE --json EXTRA…`.
fn report(file: &Path, extra: &[&str]) -> (Option<i32>, Value) {
    let output = qc(file, &[&["--json"], extra].concat());
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code(), json)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {name} check in {report:#}"))
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The text report's line of a check.
fn line<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout
        .lines()
        .find(|line| line.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no line for {name} in\n{stdout}"))
}

#[test]
fn a_clean_clip_passes_with_rating_five() {
    let output = qc(&clip("clean.mp4"), SMALL);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("rating:  5 (video with audio)\n"),
        "{stdout}"
    );
    for name in CHECKS {
        let words: Vec<&str> = line(&stdout, name).split_whitespace().collect();
        assert_eq!(words[1], "ok", "{name} is a false finding:\n{stdout}");
    }
    assert!(stdout.ends_with("\npassed\n"), "{stdout}");
    // No progress bar on a pipe, and nothing else either.
    assert_eq!(stderr, "");
}

#[test]
fn json_is_the_versioned_report() {
    let (code, report) = report(&clip("clean.mp4"), SMALL);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["version"], 1);
    assert_eq!(report["passed"], true);
    assert_eq!(report["rating"], 5);
    let checks = report["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, CHECKS);
    for check in checks {
        assert!(
            ["ok", "warning", "error"].contains(&check["status"].as_str().unwrap()),
            "{check}"
        );
        assert!(!check["message"].as_str().unwrap().is_empty(), "{check}");
    }
    assert_eq!(report["thresholds"]["min_bytes"], 1000);
    assert_eq!(report["thresholds"]["target_lufs"], -23.0);
}

#[test]
fn files_under_one_mebibyte_fail_by_default() {
    let output = qc(&clip("clean.mp4"), &[]);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(line(&stdout, "size").contains("under the minimum of 1048576 bytes"));
    assert!(stdout.ends_with("\nfailed: size is not ok\n"), "{stdout}");
}

#[test]
fn silent_audio_only_is_rating_one_and_fails() {
    let (code, report) = report(&clip("silent.wav"), SMALL);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(
        (&report["rating"], &report["passed"]),
        (&1.into(), &false.into())
    );
    assert_eq!(check(&report, "black")["message"], "no video stream");

    let output = qc(&clip("silent.wav"), SMALL);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout.contains("rating:  1 (silent audio only)\n"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("\nfailed: rating 1 is below 2\n"),
        "{stdout}"
    );
}

#[test]
fn audio_only_is_rating_two_and_passes() {
    let (code, report) = report(&clip("tone.mp3"), SMALL);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["rating"], 2);
}

#[test]
fn video_only_is_rating_three_and_passes() {
    let (code, report) = report(&clip("video-only.mp4"), SMALL);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["rating"], 3);
    assert_eq!(check(&report, "silence")["message"], "no audio stream");
}

#[test]
fn a_truncated_file_fails_its_decode_check() {
    let (code, report) = report(&clip("truncated.mp4"), SMALL);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["passed"], false);
    let decode = check(&report, "decode");
    assert_eq!(decode["status"], "error", "{decode}");
    let range = &decode["ranges"][0];
    assert_eq!(range["end"], 4.0, "{decode}");

    // The text shows where decoding stopped, which the message states only in words.
    let output = qc(&clip("truncated.mp4"), SMALL);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    let at = format!("at {:.2}-4.00 s", range["start"].as_f64().expect("a start"));
    assert!(stdout.contains(&at), "{at} in\n{stdout}");
    assert!(stdout.ends_with("\nfailed: decode is not ok\n"), "{stdout}");
}

#[test]
fn target_lufs_moves_the_loudness_check() {
    let clean = clip("clean.mp4");
    let (_, default) = report(&clean, SMALL);
    assert_eq!(check(&default, "loudness")["status"], "ok");

    // -16 LUFS (a streaming target), written as people type it: a negative number after a space.
    let (code, louder) = report(&clean, &[SMALL, &["--target-lufs", "-16"]].concat());
    assert_eq!(
        code,
        Some(0),
        "a warning does not fail the file: {louder:#}"
    );
    let loudness = check(&louder, "loudness");
    assert_eq!(loudness["status"], "warning", "{loudness}");
    assert!(
        loudness["message"].as_str().unwrap().contains("-16 LUFS"),
        "{loudness}"
    );
    assert_eq!(louder["thresholds"]["target_lufs"], -16.0);

    // Unless the policy names it.
    let strict = [SMALL, &["--target-lufs=-16", "--policy", "loudness,black"]].concat();
    let output = qc(&clean, &strict);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.ends_with("\nfailed: loudness is not ok (policy)\n"),
        "{stdout}"
    );
}

#[test]
fn bad_flag_values_are_usage_errors() {
    let clean = clip("clean.mp4");
    for (extra, says) in [
        (&["--target-lufs", "loud"][..], "invalid value 'loud'"),
        (
            &["--target-lufs", "5"],
            "error[invalid-argument]: --target-lufs: ",
        ),
        (
            &["--policy", "blur"],
            "--policy: unknown check \"blur\": use streams, size",
        ),
        (
            &["--min-bytes", "-1"],
            "invalid value '-1' for '--min-bytes <BYTES>'",
        ),
        (&["--lufs-tolerance", "-1"], "--lufs-tolerance: "),
        (&["--silence-db", "-200"], "--silence-db: "),
        (&["--every", "2s"], "unexpected argument '--every'"),
    ] {
        let output = qc(&clean, extra);
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(says), "{extra:?}: {says:?} in {stderr}");
        assert_eq!(stdout, "", "{extra:?}");
    }
    // With --json the error is JSON on stdout.
    let (code, json) = report(&clean, &["--target-lufs", "5"]);
    assert_eq!(code, Some(2));
    assert_eq!(json["error"]["code"], "invalid-argument", "{json}");
    // No file at all.
    let output = Command::new(env!("CARGO_BIN_EXE_vidsnap"))
        .arg("qc")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_missing_file_is_refused_as_frames_refuses_it() {
    let missing = Path::new("/nonexistent/clip.mp4");
    let output = qc(missing, &[]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error[input-not-found]: "), "{stderr}");
    assert_eq!(stdout, "");
    let (code, json) = report(missing, &[]);
    assert_eq!(code, Some(1));
    assert_eq!(json["error"]["code"], "input-not-found", "{json}");
}

#[test]
fn a_file_ffprobe_cannot_read_is_rating_zero_and_still_reported() {
    let (code, report) = report(&clip("notes.mp4"), SMALL);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["rating"], 0);
    assert_eq!(check(&report, "streams")["status"], "error");
}
