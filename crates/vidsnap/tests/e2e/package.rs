//! `vidsnap package FILE --out DIR`: the layout in DIR, DIR created when missing, a folder with
//! something in it refused without `--force`, and nothing partial left behind on failure.

#![allow(clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    process::Output,
};

use serde_json::Value;

use crate::support::{Sandbox, clip};

fn package(sandbox: &Sandbox, video: &Path, out: &Path, extra: &[&str]) -> (Output, Value) {
    let output = sandbox
        .vidsnap()
        .arg("package")
        .arg(video)
        .arg("--out")
        .arg(out)
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (output, json)
}

/// Every file under `dir`, relative to it, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.sort();
    files
}

/// A folder in the sandbox that does not exist yet, two levels down.
fn fresh_out(sandbox: &Sandbox) -> PathBuf {
    sandbox.root.path().join("site").join("video")
}

#[test]
fn writes_the_package_into_a_folder_it_creates() {
    let sandbox = Sandbox::new();
    let out = fresh_out(&sandbox);
    let (output, json) = package(
        &sandbox,
        &clip("wide.mp4"),
        &out,
        &["--ladder", "360,240", "--segment", "1"],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let files = tree(&out);
    for expected in [
        "manifest.mpd",
        "master.m3u8",
        "media_0.m3u8",
        "media_1.m3u8",
        "stream0/init.mp4",
        "stream0/seg-00001.m4s",
        "stream1/init.mp4",
        "stream1/seg-00002.m4s",
    ] {
        assert!(
            files.contains(&expected.to_owned()),
            "{expected} in {files:?}"
        );
    }
    assert!(
        !files.iter().any(|f| f.starts_with("stream2")),
        "no audio in the clip, no audio rendition: {files:?}"
    );
    assert_eq!(json["files"], files.len());
    assert_eq!(json["hls"], out.join("master.m3u8").display().to_string());
    assert_eq!(json["result"]["renditions"][0]["width"], 640);
    assert_eq!(json["result"]["renditions"][1]["height"], 240);
    // The scratch directory was beside DIR, and is gone; the engine's scratch too.
    assert_eq!(Sandbox::list(&sandbox.root.path().join("site")), ["video"]);
    sandbox.assert_scratch_empty();

    // Players read it: both renditions through the master playlist.
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(out.join("master.m3u8"))
        .output()
        .unwrap();
    let mut sizes: Vec<String> = String::from_utf8_lossy(&probe.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    sizes.sort();
    sizes.dedup();
    assert_eq!(sizes, ["426,240", "640,360"]);
}

#[test]
fn a_folder_with_something_in_it_is_refused_unless_forced() {
    let sandbox = Sandbox::new();
    let out = sandbox.out();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let (output, json) = package(&sandbox, &clip("wide.mp4"), &out, &["--ladder", "240"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(json["error"]["code"], "invalid-argument", "{json}");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--force"),
        "{json}"
    );
    assert_eq!(tree(&out), ["keep.txt"]);

    let (output, _) = package(
        &sandbox,
        &clip("wide.mp4"),
        &out,
        &["--ladder", "240", "--force"],
    );
    assert_eq!(output.status.code(), Some(0));
    let files = tree(&out);
    assert!(
        !files.contains(&"keep.txt".to_owned()),
        "replaced: {files:?}"
    );
    assert!(files.contains(&"master.m3u8".to_owned()), "{files:?}");
    assert_eq!(Sandbox::list(sandbox.root.path()), ["out", "scratch"]);
}

#[test]
fn a_failure_leaves_the_folder_as_it_was() {
    let sandbox = Sandbox::new();
    // Not there: not created.
    let out = fresh_out(&sandbox);
    let (output, json) = package(&sandbox, &clip("text.mp4"), &out, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(json["error"]["code"], "not-a-video", "{json}");
    assert!(!out.exists());
    assert_eq!(
        Sandbox::list(&sandbox.root.path().join("site")),
        Vec::<String>::new(),
        "no scratch left beside DIR"
    );

    // There, with --force: untouched.
    let out = sandbox.out();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let (output, _) = package(&sandbox, &clip("text.mp4"), &out, &["--force"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(tree(&out), ["keep.txt"]);
    assert_eq!(
        Sandbox::list(sandbox.root.path()),
        ["out", "scratch", "site"]
    );
    sandbox.assert_scratch_empty();
}

#[test]
fn bad_flags_are_usage_errors_named_by_flag() {
    let sandbox = Sandbox::new();
    let out = fresh_out(&sandbox);
    let (output, json) = package(
        &sandbox,
        &clip("wide.mp4"),
        &out,
        &["--ladder", "720,721", "--segment", "0"],
    );
    assert_eq!(output.status.code(), Some(2));
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("--ladder: rung 2: "), "{message}");
    assert!(message.contains("--segment: "), "{message}");
    assert!(!out.exists());
}
