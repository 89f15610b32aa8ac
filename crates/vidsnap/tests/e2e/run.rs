//! `vidsnap run RECIPE --input NAME=FILE … [--param NAME=VALUE …] --out DIR [--json]`: recipes
//! run on this machine with no server. Artefacts land in `DIR/{step}/` only when their step
//! succeeded, `DIR/job.json` describes them, and the exit code says how it went (0 succeeded,
//! 1 not, 2 a usage error with nothing written).

#![allow(clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    process::Output,
};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{Sandbox, clip, zip_entries};

/// `vidsnap run RECIPE --input … --param … --out OUT EXTRA…` in the sandbox.
fn run(
    sandbox: &Sandbox,
    recipe: &str,
    inputs: &[(&str, &Path)],
    params: &[&str],
    out: &Path,
    extra: &[&str],
) -> Output {
    let mut command = sandbox.vidsnap();
    command.arg("run").arg(recipe);
    for (name, file) in inputs {
        command
            .arg("--input")
            .arg(format!("{name}={}", file.display()));
    }
    for param in params {
        command.arg("--param").arg(param);
    }
    command.arg("--out").arg(out).args(extra);
    command.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn job_json(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("job.json")).unwrap()).unwrap()
}

fn step<'a>(job: &'a Value, name: &str) -> &'a Value {
    job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {job}"))
}

fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("a time, got {value}"))
        .parse()
        .unwrap()
}

/// Every artefact of `step` is a file at its `path` under `out`, of its size and digest, and
/// the step's folder holds nothing else. Returns the artefacts by name -> path.
fn check_artefacts(out: &Path, step: &Value) -> Vec<(String, PathBuf)> {
    let name = step["name"].as_str().unwrap();
    let mut found = Vec::new();
    for artefact in step["artefacts"].as_array().unwrap() {
        let relative = artefact["path"].as_str().unwrap();
        assert!(
            relative.starts_with(&format!("{name}/")),
            "{relative} is in the step's folder"
        );
        let path = out.join(relative);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            Some(bytes.len() as u64),
            artefact["bytes"].as_u64(),
            "{relative}"
        );
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            artefact["sha256"].as_str().unwrap(),
            "{relative}"
        );
        found.push((artefact["name"].as_str().unwrap().to_owned(), path));
    }
    let mut files = Vec::new();
    collect_files(&out.join(name), &mut files);
    let mut listed: Vec<PathBuf> = found.iter().map(|(_, p)| p.clone()).collect();
    files.sort();
    listed.sort();
    assert_eq!(
        files, listed,
        "the folder of {name} holds its artefacts only"
    );
    found
}

fn collect_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(&path, into);
        } else {
            into.push(path);
        }
    }
}

#[test]
fn the_frames_recipe_writes_its_artefacts_and_job_json() {
    let sandbox = Sandbox::new();
    let out = sandbox.out().join("result");
    let output = run(
        &sandbox,
        "frames",
        &[("video", &clip("ids.mp4"))],
        &["every=1s"],
        &out,
        &["--json"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let job = job_json(&out);
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, job, "--json prints job.json");
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["recipe_name"], "frames");
    assert_eq!(job["params"], json!({"every": "1s"}));
    assert_eq!(job["steps"].as_array().unwrap().len(), 1);
    let frames = step(&job, "frames");
    assert_eq!(frames["status"], "succeeded");
    assert_eq!(frames["attempts"], 1);
    assert_eq!(frames["options"]["every"], 1.0);
    assert_eq!(frames["result"]["frames"], 12);
    assert_eq!(Sandbox::list(&out), ["frames", "job.json"]);

    let artefacts = check_artefacts(&out, frames);
    let path_of = |name: &str| {
        artefacts
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no artefact {name}"))
            .1
            .clone()
    };
    // Named as the frames command names them, the zip after the input's stem.
    let zip = out.join("frames/ids-images.zip");
    assert_eq!(path_of("zip"), zip);
    assert_eq!(path_of("thumbnail"), out.join("frames/image.jpg"));
    // 12 s every second: twelve frames, each a file and the zip's entry.
    let entries = zip_entries(&zip);
    let manifest: Value = serde_json::from_slice(
        &entries
            .iter()
            .find(|(n, _, _)| n == "manifest.json")
            .unwrap()
            .2,
    )
    .unwrap();
    let listed = manifest["frames"].as_array().unwrap();
    assert_eq!(listed.len(), 12);
    assert_eq!(
        serde_json::from_slice::<Value>(&std::fs::read(path_of("manifest")).unwrap()).unwrap(),
        manifest
    );
    let images = artefacts
        .iter()
        .filter(|(n, _)| n.starts_with("frames/"))
        .count();
    assert_eq!(images, 12);
    for frame in listed {
        let file = frame["file"].as_str().unwrap();
        let on_disk = std::fs::read(path_of(&format!("frames/{file}"))).unwrap();
        let (_, _, entry) = entries.iter().find(|(n, _, _)| n == file).unwrap();
        assert_eq!(&on_disk, entry, "{file}");
    }
    let first = listed[0]["file"].as_str().unwrap();
    assert_eq!(
        std::fs::read(path_of("thumbnail")).unwrap(),
        std::fs::read(path_of(&format!("frames/{first}"))).unwrap(),
        "the thumbnail is the first frame"
    );
    sandbox.assert_scratch_empty();
}

#[test]
fn a_recipe_file_runs_parallel_steps_then_the_downstream_one() {
    let sandbox = Sandbox::new();
    let recipe = sandbox.root.path().join("contact-sheet.json");
    let doc = json!({
        "params": {"gap": {"default": "2s"}},
        "steps": [
            {"name": "facts", "op": "probe"},
            {"name": "poster", "op": "thumbnail", "options": {"at": 0.5, "format": "png"}},
            {"name": "sheet", "op": "frames", "options": {"every": {"$param": "gap"}},
             "after": ["facts", "poster"]}
        ]
    });
    std::fs::write(&recipe, serde_json::to_vec(&doc).unwrap()).unwrap();
    let out = sandbox.out();
    let output = run(
        &sandbox,
        recipe.to_str().unwrap(),
        &[("video", &clip("ids.mp4"))],
        &["gap=3"],
        &out,
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        output.stdout.is_empty(),
        "without --json, nothing on stdout"
    );
    let job = job_json(&out);
    assert_eq!(job["status"], "succeeded");
    assert!(job["recipe_name"].is_null());
    assert_eq!(job["params"], json!({"gap": 3}));
    assert_eq!(
        Sandbox::list(&out),
        ["facts", "job.json", "poster", "sheet"]
    );
    let started = time(&step(&job, "sheet")["started_at"]);
    for upstream in ["facts", "poster"] {
        let s = step(&job, upstream);
        assert_eq!(s["status"], "succeeded");
        assert!(started >= time(&s["finished_at"]), "sheet after {upstream}");
    }

    let facts = check_artefacts(&out, step(&job, "facts"));
    assert_eq!(facts.len(), 1);
    let probe: Value = serde_json::from_slice(&std::fs::read(&facts[0].1).unwrap()).unwrap();
    assert_eq!(probe["duration"], 12.0);
    let poster = check_artefacts(&out, step(&job, "poster"));
    assert_eq!(poster.len(), 1);
    assert_eq!(poster[0].1, out.join("poster/thumbnail.png"));
    assert_eq!(&std::fs::read(&poster[0].1).unwrap()[..4], b"\x89PNG");
    // 25 fps: the frame shown at 0.5 s starts at 0.48 s.
    let frame_time = step(&job, "poster")["result"]["frame_time"]
        .as_f64()
        .unwrap();
    assert!((frame_time - 0.48).abs() < 1e-3, "{frame_time}");
    // 12 s every 3 s: 0, 3, 6, 9.
    let sheet = check_artefacts(&out, step(&job, "sheet"));
    assert_eq!(step(&job, "sheet")["result"]["frames"], 4);
    assert_eq!(
        sheet
            .iter()
            .filter(|(n, _)| n.starts_with("frames/"))
            .count(),
        4
    );
    sandbox.assert_scratch_empty();
}

#[test]
fn a_failing_step_fails_the_run_and_leaves_no_folder() {
    let sandbox = Sandbox::new();
    let recipe = sandbox.root.path().join("two.json");
    let doc = json!({
        "inputs": ["good", "bad"],
        "steps": [
            {"name": "fine", "op": "probe", "inputs": ["good"]},
            {"name": "broken", "op": "thumbnail", "inputs": ["bad"]},
            {"name": "later", "op": "frames", "inputs": ["good"], "after": ["fine", "broken"]}
        ]
    });
    std::fs::write(&recipe, serde_json::to_vec(&doc).unwrap()).unwrap();
    let out = sandbox.out();
    let output = run(
        &sandbox,
        recipe.to_str().unwrap(),
        &[("good", &clip("short3.mp4")), ("bad", &clip("text.mp4"))],
        &[],
        &out,
        &[],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let job = job_json(&out);
    assert_eq!(job["status"], "failed");
    let broken = step(&job, "broken");
    assert_eq!(broken["status"], "failed");
    assert_eq!(broken["attempts"], 1, "bad input is not retried");
    assert_eq!(broken["last_error"]["code"], "not-a-video", "{broken}");
    assert_eq!(broken["artefacts"], json!([]));
    assert_eq!(step(&job, "later")["status"], "skipped");
    assert!(step(&job, "later")["started_at"].is_null());
    assert_eq!(step(&job, "fine")["status"], "succeeded");
    // Only the step that succeeded has a folder; no partial one is left.
    assert_eq!(Sandbox::list(&out), ["fine", "job.json"]);
    check_artefacts(&out, step(&job, "fine"));
    sandbox.assert_scratch_empty();

    // The same with the built-in frames recipe: exit 1, job.json only.
    let out = sandbox.out().join("frames-run");
    let output = run(
        &sandbox,
        "frames",
        &[("video", &clip("text.mp4"))],
        &[],
        &out,
        &["--json"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let job = job_json(&out);
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, job);
    assert_eq!(job["status"], "failed");
    assert_eq!(step(&job, "frames")["last_error"]["code"], "not-a-video");
    assert_eq!(Sandbox::list(&out), ["job.json"]);
    sandbox.assert_scratch_empty();
}

#[test]
fn usage_errors_exit_2_and_write_nothing() {
    let sandbox = Sandbox::new();
    let cycle = sandbox.root.path().join("cycle.json");
    let doc = json!({"steps": [
        {"name": "a", "op": "probe", "after": ["b"]},
        {"name": "b", "op": "probe", "after": ["a"]}
    ]});
    std::fs::write(&cycle, serde_json::to_vec(&doc).unwrap()).unwrap();
    let garbage = sandbox.root.path().join("garbage.json");
    std::fs::write(&garbage, "{\"steps\": [").unwrap();
    let video = clip("short3.mp4");
    let missing = sandbox.root.path().join("missing.mp4");
    let cycle = cycle.to_str().unwrap();
    let garbage = garbage.to_str().unwrap();

    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, &'a Path)>,
        Vec<&'a str>,
        Vec<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "an unknown built-in",
            "sparkle",
            vec![("video", &video)],
            vec![],
            vec!["\"sparkle\"", "frames"],
        ),
        (
            "a recipe file with a cycle",
            cycle,
            vec![("video", &video)],
            vec![],
            vec!["steps[0].after", "steps[1].after", "cycle"],
        ),
        (
            "a file that is not a recipe",
            garbage,
            vec![("video", &video)],
            vec![],
            vec!["is not a recipe"],
        ),
        (
            "an unknown parameter",
            "frames",
            vec![("video", &video)],
            vec!["x=1"],
            vec!["params.x"],
        ),
        (
            "a bad parameter value",
            "frames",
            vec![("video", &video)],
            vec!["every=0"],
            vec!["params.every"],
        ),
        (
            "a parameter without a value",
            "frames",
            vec![("video", &video)],
            vec!["every"],
            vec!["NAME=VALUE"],
        ),
        (
            "a missing input",
            "frames",
            vec![],
            vec![],
            vec!["--input video=FILE"],
        ),
        (
            "an input the recipe does not take",
            "frames",
            vec![("video", &video), ("clip", &video)],
            vec![],
            vec!["--input clip"],
        ),
        (
            "an input file that does not exist",
            "frames",
            vec![("video", &missing)],
            vec![],
            vec!["missing.mp4", "not a file"],
        ),
    ];
    for (i, (what, recipe, inputs, params, words)) in cases.into_iter().enumerate() {
        let out = sandbox.out().join(format!("case-{i}"));
        let output = run(&sandbox, recipe, &inputs, &params, &out, &[]);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{what}: {message}");
        assert!(
            message.contains("error[invalid-argument]"),
            "{what}: {message}"
        );
        for word in words {
            assert!(message.contains(word), "{what}: {word:?} in {message}");
        }
        assert!(!out.exists(), "{what}: the output directory was made");
    }
    // An existing output directory is left as it was.
    let out = sandbox.out();
    let output = run(
        &sandbox,
        "sparkle",
        &[("video", &video)],
        &[],
        &out,
        &["--json"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        Sandbox::list(&out).is_empty(),
        "nothing in the output directory"
    );
    sandbox.assert_scratch_empty();
}

#[test]
fn ctrl_c_cancels_the_run_with_exit_130_and_cleans_up() {
    let sandbox = Sandbox::new();
    let out = sandbox.out();
    // 1200 PNGs of 640x480: many seconds of work, interrupted early.
    let mut child = sandbox
        .vidsnap()
        .arg("run")
        .arg("frames")
        .arg("--input")
        .arg(format!("video={}", clip("long-png.mp4").display()))
        .args(["--param", "every=0.1s", "--param", "format=png", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupted once the step has written frames in its scratch directory (long after the
    // handler for Ctrl-C is in place).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let written = || {
        let mut files = Vec::new();
        collect_files(&sandbox.scratch(), &mut files);
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "png"))
    };
    while !written() {
        assert!(
            std::time::Instant::now() < deadline,
            "the step never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "exited before the step started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "no exit after Ctrl-C");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut message = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut message).unwrap();
    assert_eq!(status.code(), Some(130), "{message}");
    let job = job_json(&out);
    assert_eq!(job["status"], "cancelled", "{job}");
    let frames = step(&job, "frames");
    assert_eq!(frames["status"], "cancelled");
    assert_eq!(frames["artefacts"], json!([]));
    assert_eq!(
        Sandbox::list(&out),
        ["job.json"],
        "no step folder, no partial one"
    );
    sandbox.assert_scratch_empty();
}
