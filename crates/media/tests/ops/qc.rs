//! The qc operation on clips whose defects were made where the tests look for them: ranges
//! within two frames (0.08 s) of where they were made, loudness within 1 LU, seed 002's
//! ratings, and one decoding pass.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use vidsnap_domain::{ErrorCode, Operation};
use vidsnap_media::{ExtractorCommand, MediaConfig, MediaEngine, OpInput, OpOutput, Silent};

use crate::support::{self, Percentages, Sandbox, block_on};

/// Two frames at 25 fps.
const CLOSE: f64 = 0.08;

fn qc(options: Value) -> Operation {
    Operation::parse("qc", &options, "options").expect("valid qc options")
}

/// Lets small clips pass the size check.
fn small() -> Value {
    json!({"min_bytes": 1000})
}

/// The report of `clip` (copied in as `file_name`), after checking the one artefact and that
/// nothing else was left anywhere.
fn report_of(clip: &str, file_name: &str, options: Value) -> (Value, OpOutput) {
    let sandbox = Sandbox::new();
    let input = sandbox.input(clip, file_name);
    let output = support::run(&sandbox, &qc(options), &input, &Silent).expect("a report");
    let [produced] = output.produced.as_slice() else {
        panic!("one file: {:?}", output.produced);
    };
    assert_eq!(
        (
            produced.name.as_str(),
            produced.file_name.as_str(),
            produced.content_type.as_str()
        ),
        ("report", "qc.json", "application/json")
    );
    assert_eq!(
        sandbox.files("work"),
        ["qc.json"],
        "the metadata files are gone"
    );
    sandbox.assert_nothing_outside_work(clip);
    let report: Value =
        serde_json::from_slice(&std::fs::read(&produced.path).expect("qc.json")).expect("JSON");
    assert_eq!(report["version"], 1);
    let names: Vec<&str> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
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
            "rotation"
        ]
    );
    let result = output.result.clone().expect("result");
    assert_eq!(result["passed"], report["passed"]);
    assert_eq!(result["rating"], report["rating"]);
    (report, output)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {name} check in {report:#}"))
}

/// The checks with a warning or an error.
fn findings(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["status"] != "ok")
        .map(|c| c["name"].as_str().expect("name").to_owned())
        .collect()
}

fn assert_ranges(check: &Value, expected: &[(f64, f64)]) {
    let ranges: Vec<(f64, f64)> = check["ranges"]
        .as_array()
        .unwrap_or_else(|| panic!("ranges in {check:#}"))
        .iter()
        .map(|r| {
            (
                r["start"].as_f64().expect("start"),
                r["end"].as_f64().expect("end"),
            )
        })
        .collect();
    assert_eq!(ranges.len(), expected.len(), "{check:#}");
    for ((start, end), (want_start, want_end)) in ranges.iter().zip(expected) {
        assert!(
            (start - want_start).abs() <= CLOSE && (end - want_end).abs() <= CLOSE,
            "{start}-{end} is not {want_start}-{want_end}: {check:#}"
        );
    }
}

fn assert_near(value: &Value, expected: f64, within: f64) {
    let found = value
        .as_f64()
        .unwrap_or_else(|| panic!("a number: {value}"));
    assert!(
        (found - expected).abs() <= within,
        "{found} is not {expected} ± {within}"
    );
}

pub fn defects_are_found_where_they_were_made() {
    let (report, _) = report_of("qc-defects.mp4", "defects.mp4", small());
    assert_ranges(check(&report, "black"), &[(3.0, 6.0)]);
    // The black screen is still too, and reported once, as black.
    assert_ranges(check(&report, "freeze"), &[(10.0, 14.0)]);
    assert_ranges(check(&report, "silence"), &[(20.0, 25.0)]);
    for name in ["black", "freeze", "silence"] {
        assert_eq!(check(&report, name)["status"], "warning");
    }
    // -21 LUFS (silence is below the gate, so it does not lower the integrated figure).
    assert_near(&check(&report, "loudness")["value"], -21.0, 1.0);
    assert_eq!(check(&report, "loudness")["status"], "warning");
    assert_eq!(report["rating"], 5);
    // Findings are warnings: the file passes seed 002's rule.
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(
        findings(&report),
        ["black", "freeze", "silence", "loudness"]
    );
}

pub fn a_clean_clip_passes_with_no_findings() {
    let (report, output) = report_of("qc-clean.mp4", "clean.mp4", json!({}));
    assert_eq!(findings(&report), Vec::<String>::new(), "{report:#}");
    assert_eq!(
        (&report["rating"], &report["passed"]),
        (&json!(5), &json!(true))
    );
    assert_near(&check(&report, "loudness")["value"], -23.0, 1.0);
    // A -23 dBFS sine; AAC adds a little overshoot.
    assert_near(&check(&report, "true_peak")["value"], -22.0, 1.5);
    let streams = &check(&report, "streams")["value"];
    assert_eq!(streams["video"]["width"], 1280);
    assert_eq!(streams["audio"]["channels"], 2);
    assert_eq!(report["thresholds"]["min_bytes"], 1_048_576);
    assert_eq!(report["thresholds"]["target_lufs"], -23.0);
    let result = output.result.expect("result");
    assert_eq!(result["findings"], json!([]));
    assert_eq!(result["probe"]["file_name"], "clean.mp4");
}

pub fn a_tone_reads_its_loudness_and_audio_only_is_rating_two() {
    let (report, _) = report_of("qc-tone.m4a", "tone.m4a", small());
    assert_eq!(report["rating"], 2);
    assert_eq!(report["passed"], true);
    let loudness = check(&report, "loudness");
    assert_near(&loudness["value"], -10.0, 1.0);
    assert_eq!(loudness["status"], "warning");
    let message = loudness["message"].as_str().expect("message");
    assert!(message.contains("LU above the target -23"), "{message}");
    assert_eq!(check(&report, "black")["message"], "no video stream");
}

pub fn silent_audio_only_is_rating_one_and_fails() {
    let (report, _) = report_of("qc-silent.m4a", "silent.m4a", small());
    assert_eq!(report["rating"], 1);
    assert_eq!(report["passed"], false);
    assert_ranges(check(&report, "silence"), &[(0.0, 4.0)]);
    assert_eq!(check(&report, "streams")["value"]["audio"]["silent"], true);
}

pub fn video_only_is_rating_three_and_small_files_fail_the_size_check() {
    let (report, _) = report_of("qc-video-only.mp4", "video.mp4", json!({}));
    assert_eq!(report["rating"], 3);
    assert_eq!(report["passed"], false);
    assert_eq!(findings(&report), ["size"]);
    assert_eq!(check(&report, "size")["status"], "error");
    let (lowered, _) = report_of("qc-video-only.mp4", "video.mp4", small());
    assert_eq!(lowered["passed"], true);
    assert_eq!(check(&lowered, "loudness")["message"], "no audio stream");
}

pub fn video_with_silent_audio_is_rating_four() {
    let (report, _) = report_of("qc-silent-audio.mp4", "quiet.mp4", small());
    assert_eq!(report["rating"], 4);
    assert_eq!(report["passed"], true);
    assert_ranges(check(&report, "silence"), &[(0.0, 3.0)]);
}

pub fn a_truncated_file_fails_its_decode_check() {
    let (report, _) = report_of("qc-truncated.mp4", "cut.mp4", small());
    let decode = check(&report, "decode");
    assert_eq!(decode["status"], "error", "{report:#}");
    assert_eq!(report["passed"], false);
    // Cut at 55% of the bytes: decoding stops part-way, the index still says 6 s.
    let missing = &decode["ranges"][0];
    assert_near(&missing["end"], 6.0, CLOSE);
    let stopped = missing["start"].as_f64().expect("start");
    assert!(stopped > 1.0 && stopped < 5.5, "{decode:#}");
}

pub fn a_text_file_is_rating_zero_and_still_a_report() {
    let (report, output) = report_of("notes.mp4", "notes.mp4", small());
    assert_eq!(
        (&report["rating"], &report["passed"]),
        (&json!(0), &json!(false))
    );
    assert_eq!(check(&report, "streams")["status"], "error");
    assert_eq!(check(&report, "decode")["status"], "error");
    let message = check(&report, "streams")["message"]
        .as_str()
        .expect("message");
    assert!(!message.contains("/tmp"), "no paths in reports: {message}");
    assert_eq!(output.result.expect("result")["probe"], Value::Null);
}

pub fn rotation_is_reported() {
    let (report, _) = report_of("qc-rotated.mp4", "turned.mp4", small());
    let rotation = check(&report, "rotation");
    assert_eq!(rotation["status"], "warning");
    // `rotate=90` makes the display matrix that the probe reads as 270 (its convention,
    // vidsnap_media::probe's rotation_from_display_matrix).
    assert_eq!(rotation["value"], 270, "{rotation:#}");
    assert_eq!(report["passed"], true);
}

pub fn interlaced_content_is_flagged() {
    let (report, _) = report_of("qc-interlaced.mp4", "woven.mp4", small());
    let interlace = check(&report, "interlace");
    assert_eq!(interlace["status"], "warning", "{interlace:#}");
    assert_eq!(interlace["value"]["field_order"], "tt");
    assert!(interlace["value"]["ratio"].as_f64().expect("ratio") > 0.5);
    // The progressive clips are not flagged.
    let (clean, _) = report_of("qc-clean.mp4", "clean.mp4", json!({}));
    assert_eq!(check(&clean, "interlace")["value"]["ratio"], 0.0);
}

pub fn the_policy_turns_findings_into_failures() {
    let strict = json!({"min_bytes": 1000, "policy": "black"});
    let (report, _) = report_of("qc-defects.mp4", "defects.mp4", strict);
    assert_eq!(report["passed"], false);
    assert_eq!(report["policy"], json!(["black"]));
    let unrelated = json!({"min_bytes": 1000, "policy": ["rotation", "interlace"]});
    let (report, _) = report_of("qc-defects.mp4", "defects.mp4", unrelated);
    assert_eq!(report["passed"], true);
    // Thresholds change what is found: 3 s of black is not 4 s.
    let longer = json!({"min_bytes": 1000, "black_min_duration": 4, "policy": "black"});
    let (report, _) = report_of("qc-defects.mp4", "defects.mp4", longer);
    assert_eq!(check(&report, "black")["status"], "ok");
    assert_eq!(report["thresholds"]["black_min_duration"], 4.0);
}

pub fn percent_climbs_to_one_hundred() {
    let sandbox = Sandbox::new();
    let input = sandbox.input("qc-defects.mp4", "defects.mp4");
    let percentages = Percentages::default();
    support::run(&sandbox, &qc(small()), &input, &percentages).expect("a report");
    let said = percentages.said();
    assert_eq!(said.first(), Some(&0));
    assert_eq!(said.last(), Some(&100));
    assert!(said.windows(2).all(|w| w[0] < w[1]), "{said:?}");
}

/// A folder with `ffprobe` (and `ffmpeg` when asked) that log their arguments to `calls.log`,
/// one per line and `--` after each call, then run the real program.
fn logging_tools(dir: &Path, with_ffmpeg: bool) -> PathBuf {
    let programs: &[&str] = if with_ffmpeg {
        &["ffprobe", "ffmpeg"]
    } else {
        &["ffprobe"]
    };
    let log = dir.join("calls.log");
    for program in programs {
        let real = std::env::split_paths(&std::env::var_os("PATH").expect("PATH"))
            .map(|d| d.join(program))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{program} on PATH"));
        let script = dir.join(program);
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\" -- >> '{}'\nexec '{}' \"$@\"\n",
                log.display(),
                real.display()
            ),
        )
        .expect("script");
        let mut permissions = std::fs::metadata(&script).expect("script").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&script, permissions).expect("chmod");
    }
    dir.join("ffprobe")
}

fn engine_with(sandbox: &Sandbox, ffprobe: PathBuf) -> MediaEngine {
    MediaEngine::new(
        MediaConfig {
            ffprobe,
            temp_dir: Some(sandbox.dir("scratch")),
            ..MediaConfig::default()
        },
        ExtractorCommand {
            program: std::env::current_exe().expect("test executable"),
            args: vec![support::EXTRACTOR_ARG.into()],
        },
    )
}

fn run_with(
    engine: &MediaEngine,
    sandbox: &Sandbox,
    input: &OpInput,
) -> Result<OpOutput, vidsnap_media::MediaError> {
    block_on(engine.run(
        &qc(small()),
        std::slice::from_ref(input),
        &sandbox.work(),
        &Silent,
    ))
}

pub fn one_decoding_pass_reads_the_file() {
    let sandbox = Sandbox::new();
    let tools = tempfile::tempdir().expect("tools dir");
    let engine = engine_with(&sandbox, logging_tools(tools.path(), true));
    let input = sandbox.input("qc-defects.mp4", "defects.mp4");
    let output = run_with(&engine, &sandbox, &input).expect("a report");
    assert_eq!(output.result.expect("result")["rating"], 5);
    let log = std::fs::read_to_string(tools.path().join("calls.log")).expect("calls");
    let calls: Vec<Vec<&str>> = log
        .split("--\n")
        .filter(|call| !call.is_empty())
        .map(|call| call.lines().collect())
        .collect();
    let programs: Vec<&str> = calls
        .iter()
        .map(|call| call[0].rsplit('/').next().expect("name"))
        .collect();
    assert_eq!(programs, ["ffprobe", "ffmpeg"], "{log}");
    let ffmpeg = &calls[1];
    assert_eq!(ffmpeg.iter().filter(|a| **a == "-i").count(), 1, "{log}");
    let graph = ffmpeg
        .iter()
        .position(|a| *a == "-filter_complex")
        .map(|i| ffmpeg[i + 1])
        .expect("one filter graph");
    for detector in [
        "blackdetect",
        "freezedetect",
        "idet",
        "silencedetect",
        "ebur128",
    ] {
        assert!(graph.contains(detector), "{detector} in {graph}");
    }
}

pub fn a_missing_ffmpeg_is_retryable() {
    let sandbox = Sandbox::new();
    let tools = tempfile::tempdir().expect("tools dir");
    // ffprobe is there, the ffmpeg beside it is not.
    let engine = engine_with(&sandbox, logging_tools(tools.path(), false));
    let input = sandbox.input("qc-video-only.mp4", "video.mp4");
    let error = run_with(&engine, &sandbox, &input).expect_err("no ffmpeg");
    assert_eq!(error.code(), ErrorCode::FfmpegMissing);
    assert!(error.is_retryable());
    assert!(
        error.to_string().contains("apt-get install ffmpeg"),
        "{error}"
    );
}
