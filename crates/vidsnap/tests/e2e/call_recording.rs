//! `vidsnap run call-recording --input call_audio=FILE --input recording=FILE --param
//! call_end=T --out DIR` (seed 004): the merged MP4 and its thumbnail; a malformed `call_end`
//! is a usage error (exit 2, nothing written), one past the end of the recording fails the job
//! with `time-out-of-range` (exit 1, job.json only); no scratch file is left on any path.

#![allow(clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

use crate::support::Sandbox;

/// A 6 s recording (160x120, 25 fps, an 880 Hz tone) and a 4 s call (440 Hz, 8 kHz mono WAV),
/// made in the sandbox.
pub(crate) fn clips(sandbox: &Sandbox) -> (PathBuf, PathBuf) {
    let recording = sandbox.root.path().join("recording.mp4");
    let call = sandbox.root.path().join("call.wav");
    let make = |args: &[&str], path: &Path| {
        let status = Command::new("ffmpeg")
            .args(["-nostdin", "-y", "-v", "error"])
            .args(args)
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "making {}", path.display());
    };
    make(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=25:duration=6",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=880:sample_rate=48000:duration=6",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-ac",
            "2",
        ],
        &recording,
    );
    make(
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=8000:duration=4",
            "-c:a",
            "pcm_s16le",
        ],
        &call,
    );
    (call, recording)
}

fn run(sandbox: &Sandbox, call: &Path, recording: &Path, call_end: &str, out: &Path) -> Output {
    sandbox
        .vidsnap()
        .args(["run", "call-recording", "--input"])
        .arg(format!("call_audio={}", call.display()))
        .arg("--input")
        .arg(format!("recording={}", recording.display()))
        .args(["--param", &format!("call_end={call_end}"), "--out"])
        .arg(out)
        .output()
        .unwrap()
}

fn step<'a>(job: &'a Value, name: &str) -> &'a Value {
    job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {job}"))
}

#[test]
fn the_merged_recording_and_its_thumbnail_or_a_coded_refusal() {
    let sandbox = Sandbox::new();
    let (call, recording) = clips(&sandbox);

    let out = sandbox.out().join("merged");
    let output = run(&sandbox, &call, &recording, "00:00:03.500", &out);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(Sandbox::list(&out), ["job.json", "merge", "thumbnail"]);
    assert_eq!(Sandbox::list(&out.join("merge")), ["recording-merged.mp4"]);
    assert_eq!(Sandbox::list(&out.join("thumbnail")), ["thumbnail.jpg"]);
    let job: Value = serde_json::from_slice(&std::fs::read(out.join("job.json")).unwrap()).unwrap();
    let merge = step(&job, "merge");
    assert_eq!(merge["result"]["call_end"], 3.5);
    assert_eq!(merge["result"]["audio"]["silence_after_call_seconds"], 0.0);
    assert_eq!(step(&job, "thumbnail")["result"]["at"], 1.0);
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(out.join("merge/recording-merged.mp4"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&probe.stdout), "h264\naac\n");
    sandbox.assert_scratch_empty();

    // Malformed: a usage error before anything runs or is written.
    for bad in ["12:00", "soon", "-1"] {
        let out = sandbox.out().join("malformed");
        let output = run(&sandbox, &call, &recording, bad, &out);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("error[invalid-argument]"), "{stderr}");
        assert!(stderr.contains("params.call_end"), "{stderr}");
        assert!(!out.exists(), "{bad}: the output directory was made");
    }

    // Past the end of the recording: the job fails with its code, once, and leaves job.json.
    let out = sandbox.out().join("late");
    let output = run(&sandbox, &call, &recording, "00:00:07", &out);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error[time-out-of-range]: step merge: "),
        "the failed step's code and message: {stderr}"
    );
    assert_eq!(Sandbox::list(&out), ["job.json"], "no partial output");
    let job: Value = serde_json::from_slice(&std::fs::read(out.join("job.json")).unwrap()).unwrap();
    assert_eq!(job["status"], "failed");
    let merge = step(&job, "merge");
    assert_eq!(merge["last_error"]["code"], "time-out-of-range", "{merge}");
    assert_eq!(merge["attempts"], 1, "not retried");
    assert_eq!(step(&job, "thumbnail")["status"], "skipped");
    sandbox.assert_scratch_empty();
}
