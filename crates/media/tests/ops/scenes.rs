//! The scenes operation on clips whose cuts were made where the tests look for them: five shots
//! give four cuts within one frame of `CUTS`, a still or moving clip without a cut gives none,
//! and `min_gap` and `max_scenes` keep the strongest.

use serde_json::{Value, json};
use vidsnap_domain::Operation;
use vidsnap_media::{OpOutput, Silent};

use crate::support::{self, CUTS, FPS, Percentages, Sandbox, picture_size, zip_entries};

fn scenes(options: Value) -> Operation {
    Operation::parse("scenes", &options, "options").expect("valid scenes options")
}

/// The manifest of a run, after checking it is the zip's and that the zip holds exactly the
/// cut images and the manifest.
fn manifest_of(output: &OpOutput) -> Value {
    let [.., manifest, zip] = output.produced.as_slice() else {
        panic!("a manifest and a zip: {:?}", output.produced);
    };
    assert_eq!(
        (manifest.name.as_str(), manifest.file_name.as_str()),
        ("manifest", "manifest.json")
    );
    assert_eq!(
        (zip.name.as_str(), zip.content_type.as_str()),
        ("zip", "application/zip")
    );
    let bytes = std::fs::read(&manifest.path).expect("manifest");
    let entries = zip_entries(&zip.path);
    let (last, bytes_in_zip) = entries.last().expect("entries");
    assert_eq!(last, "manifest.json");
    assert!(*bytes_in_zip == bytes, "the manifest is the zip's");
    let value: Value = serde_json::from_slice(&bytes).expect("JSON");
    let files: Vec<&str> = value["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| f["file"].as_str().expect("file"))
        .collect();
    let zipped: Vec<&str> = entries[..entries.len() - 1]
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(files, zipped);
    value
}

fn times(manifest: &Value) -> Vec<f64> {
    manifest["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| f["actual_time"].as_f64().expect("time"))
        .collect()
}

pub fn five_shots_give_four_cuts_within_a_frame_of_where_they_were_made() {
    let sandbox = Sandbox::new();
    let input = sandbox.input("shots.mp4", "shots.mp4");
    let percentages = Percentages::default();
    let output = support::run(&sandbox, &scenes(json!({})), &input, &percentages).expect("scenes");
    let manifest = manifest_of(&output);

    let found = times(&manifest);
    assert_eq!(found.len(), 4, "{found:?}");
    for (cut, made) in found.iter().zip(CUTS) {
        assert!(
            (cut - made).abs() <= 1.0 / FPS + 1e-6,
            "{found:?} vs {CUTS:?}"
        );
    }
    assert_eq!(manifest["frames_scanned"], 250);
    assert_eq!(manifest["dropped"], 0);
    assert_eq!(manifest["threshold"], 0.3);
    assert_eq!(manifest["source"]["file_name"], "shots.mp4");
    for (index, frame) in manifest["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .enumerate()
    {
        assert_eq!(frame["index"], index);
        assert_eq!(frame["requested_time"], frame["actual_time"]);
        let score = frame["score"].as_f64().expect("score");
        assert!(score > 0.3 && score <= 1.0, "{frame}");
        let name = format!("frames/{}", frame["file"].as_str().expect("file"));
        let image = output
            .produced
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("{name} is an artefact"));
        assert_eq!(image.file_name, name);
        assert_eq!(picture_size(&image.path), (320, 240));
    }
    assert_eq!(output.produced.len(), 4 + 2);
    let result = output.result.expect("result");
    assert_eq!(result["scenes"], 4);
    assert_eq!(result["probe"]["file_name"], "shots.mp4");
    let said = percentages.said();
    assert_eq!(
        (said.first(), said.last()),
        (Some(&0), Some(&100)),
        "{said:?}"
    );
    assert!(said.len() > 5, "progress while decoding: {said:?}");
    sandbox.assert_nothing_outside_work("shots.mp4");
}

pub fn a_clip_without_a_cut_has_none() {
    for clip in ["still.mp4", "motion.mp4"] {
        let sandbox = Sandbox::new();
        let input = sandbox.input(clip, clip);
        let output = support::run(&sandbox, &scenes(json!({})), &input, &Silent).expect("scenes");
        let manifest = manifest_of(&output);
        assert_eq!(times(&manifest), Vec::<f64>::new(), "{clip}");
        assert_eq!(manifest["frames_scanned"], 100, "{clip}");
        assert_eq!(sandbox.files("work"), ["manifest.json", "scenes.zip"]);
        sandbox.assert_nothing_outside_work(clip);
    }
}

pub fn min_gap_and_max_scenes_keep_the_strongest() {
    // Cuts 1.6 s and 1.4 s apart are one with a gap of 2 s: the stronger of each pair stays
    // (ffmpeg scores the cuts at 2.0, 3.6, 6.0 and 7.4 s 0.67, 0.60, 0.69 and 0.84).
    let sandbox = Sandbox::new();
    let input = sandbox.input("shots.mp4", "shots.mp4");
    let op = scenes(json!({"min_gap": 2, "images": false}));
    let output = support::run(&sandbox, &op, &input, &Silent).expect("scenes");
    let manifest = manifest_of(&output);
    let found = times(&manifest);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        (found[0] - CUTS[0]).abs() < 0.05 && (found[1] - CUTS[3]).abs() < 0.05,
        "{found:?}"
    );
    assert_eq!(manifest["dropped"], 2);
    assert_eq!(sandbox.files("work"), ["manifest.json", "scenes.zip"]);

    let sandbox = Sandbox::new();
    let input = sandbox.input("shots.mp4", "shots.mp4");
    let op = scenes(json!({"max_scenes": 1}));
    let output = support::run(&sandbox, &op, &input, &Silent).expect("scenes");
    let manifest = manifest_of(&output);
    let found = times(&manifest);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        (found[0] - CUTS[3]).abs() < 0.05,
        "the strongest: {found:?}"
    );
    assert_eq!(manifest["dropped"], 3);
    // The images pushed out are gone; the one kept is named as frames name theirs.
    let files = sandbox.files("work");
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(
        files[0].starts_with("frames/frame-000000_00-00-07.4"),
        "{files:?}"
    );
    sandbox.assert_nothing_outside_work("shots.mp4");
}
