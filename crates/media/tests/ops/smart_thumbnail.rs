//! The smart thumbnail operation on clips made to test it: one that starts black and fades in
//! (never a black or fading frame), one blurred then sharp (the sharp half wins).

use serde_json::{Value, json};
use vidsnap_domain::Operation;
use vidsnap_media::{OpOutput, Silent};

use crate::support::{self, Sandbox, image_brightness, picture_size};

fn smart(options: Value) -> Operation {
    Operation::parse("smart_thumbnail", &options, "options").expect("valid options")
}

/// The run's manifest, after checking the two artefacts and that nothing else was left (the
/// sandbox holds the outputs: they last as long as it).
fn poster(clip: &str, options: Value) -> (Value, OpOutput, Sandbox) {
    let sandbox = Sandbox::new();
    let input = sandbox.input(clip, clip);
    let output = support::run(&sandbox, &smart(options), &input, &Silent).expect("a poster");
    let names: Vec<(&str, &str, &str)> = output
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
        names,
        [
            ("thumbnail", "thumbnail.jpg", "image/jpeg"),
            ("manifest", "smart-thumbnail.json", "application/json"),
        ]
    );
    assert_eq!(
        sandbox.files("work"),
        ["smart-thumbnail.json", "thumbnail.jpg"],
        "the other candidates are gone"
    );
    sandbox.assert_nothing_outside_work(clip);
    assert_eq!(picture_size(&output.produced[0].path), (320, 240));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(&output.produced[1].path).expect("manifest"))
            .expect("JSON");
    (manifest, output, sandbox)
}

fn chosen(manifest: &Value) -> &Value {
    let index = manifest["chosen"].as_u64().expect("chosen") as usize;
    &manifest["candidates"][index]
}

pub fn never_picks_a_black_frame_on_a_clip_that_starts_black() {
    // Black until 2 s, fading in until 3 s: the default ten candidates at 0.3, 0.9, … 5.7 s.
    let (manifest, output, _sandbox) = poster("starts-black.mp4", json!({}));
    let candidates = manifest["candidates"].as_array().expect("candidates");
    assert_eq!(candidates.len(), 10);
    for candidate in &candidates[..3] {
        assert_eq!(candidate["rejected"], "black", "{candidate}");
    }
    let best = chosen(&manifest);
    let time = best["actual_time"].as_f64().expect("time");
    assert!(time >= 3.0, "out of the black and the fade: {best}");
    assert!(best.get("rejected").is_none(), "{best}");
    let brightness = image_brightness(&output.produced[0].path);
    assert!(brightness > 60.0, "a picture, not black: {brightness}");
    // 0.3, 0.9 and 1.5 s are black, and so is 2.1 s, at the start of the fade.
    let why = manifest["why"].as_str().expect("why");
    assert!(why.contains("4 black"), "{why}");
    let result = output.result.expect("result");
    assert_eq!(result["frame_time"], best["actual_time"]);
    assert_eq!(result["why"], manifest["why"]);
}

pub fn prefers_a_sharp_frame_over_a_blurred_one() {
    // Blurred until 3 s, sharp after: six candidates at 0.5, 1.5, … 5.5 s.
    let (manifest, _, _sandbox) = poster("blur-then-sharp.mp4", json!({"candidates": 6}));
    let candidates = manifest["candidates"].as_array().expect("candidates");
    let sharpness = |c: &Value| c["metrics"]["sharpness"].as_f64().expect("sharpness");
    let blurred = candidates[..3].iter().map(sharpness).fold(0.0, f64::max);
    let sharp = candidates[3..]
        .iter()
        .map(sharpness)
        .fold(f64::MAX, f64::min);
    assert!(sharp > 2.0 * blurred, "sharp {sharp} vs blurred {blurred}");
    let best = chosen(&manifest);
    assert!(best["actual_time"].as_f64().expect("time") >= 3.0, "{best}");
}
