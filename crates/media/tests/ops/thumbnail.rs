//! The thumbnail operation: the frame shown at a time, clamped to the duration.

use vidsnap_domain::{ErrorCode, Operation, ops::ThumbnailOptions};
use vidsnap_media::{ExtractorCommand, MediaConfig, MediaEngine, OpOutput, Silent};

use crate::support::{self, FPS, Percentages, Sandbox, block_on, frame_brightness, source_frame};

fn at(seconds: f64) -> Operation {
    Operation::Thumbnail(ThumbnailOptions {
        at: seconds,
        ..ThumbnailOptions::default()
    })
}

/// The one file made, named as expected and alone in `work/`; nothing elsewhere.
fn the_thumbnail(sandbox: &Sandbox, clip: &str, output: &OpOutput) -> std::path::PathBuf {
    let [produced] = output.produced.as_slice() else {
        panic!("one file: {:?}", output.produced);
    };
    assert_eq!(produced.name, "thumbnail");
    assert_eq!(produced.file_name, "thumbnail.jpg");
    assert_eq!(produced.content_type, "image/jpeg");
    assert_eq!(sandbox.files("work"), ["thumbnail.jpg"]);
    sandbox.assert_nothing_outside_work(clip);
    produced.path.clone()
}

pub fn at_one_second_is_the_frame_shown_at_one_second() {
    let sandbox = Sandbox::new();
    let input = sandbox.input("counter.mp4", "counter.mp4");
    let percentages = Percentages::default();
    let output = support::run(&sandbox, &at(1.0), &input, &percentages).expect("thumbnail");
    let image = the_thumbnail(&sandbox, "counter.mp4", &output);
    assert_eq!(source_frame(&image, &input.path), 25);
    let result = output.result.expect("result");
    assert_eq!(result["at"], 1.0);
    assert_eq!(result["frame_time"], 1.0);
    assert_eq!(
        (result["width"].as_u64(), result["height"].as_u64()),
        (Some(64), Some(48))
    );
    assert_eq!(result["probe"]["file_name"], "counter.mp4");
    assert_eq!(percentages.said(), [0, 100]);
}

pub fn past_the_end_is_the_last_frame() {
    let sandbox = Sandbox::new();
    let input = sandbox.input("counter.mp4", "counter.mp4");
    let output = support::run(&sandbox, &at(99.0), &input, &Silent).expect("thumbnail");
    let image = the_thumbnail(&sandbox, "counter.mp4", &output);
    assert_eq!(source_frame(&image, &input.path), 49);
    let result = output.result.expect("result");
    let used = result["at"].as_f64().expect("at");
    assert!((used - 2.0).abs() < 0.05, "clamped to the duration: {used}");
    assert_eq!(result["frame_time"], 49.0 / FPS);
}

pub fn a_half_second_clip_at_one_second_is_its_last_frame() {
    let sandbox = Sandbox::new();
    let input = sandbox.input("counter-half.mp4", "counter-half.mp4");
    // The default time, one second, is past this clip's end.
    let default = Operation::Thumbnail(ThumbnailOptions::default());
    let output = support::run(&sandbox, &default, &input, &Silent).expect("thumbnail");
    let image = the_thumbnail(&sandbox, "counter-half.mp4", &output);
    let last = frame_brightness(&input.path).len() - 1;
    assert_eq!(last, 12);
    assert_eq!(source_frame(&image, &input.path), last);
}

pub fn a_missing_extractor_is_retryable() {
    let sandbox = Sandbox::new();
    let input = sandbox.input("counter.mp4", "counter.mp4");
    let engine = MediaEngine::new(
        MediaConfig {
            temp_dir: Some(sandbox.dir("scratch")),
            ..MediaConfig::default()
        },
        ExtractorCommand {
            program: "/nonexistent/vidsnap".into(),
            args: vec!["internal-extract".into()],
        },
    );
    let error = block_on(engine.run(
        &at(1.0),
        std::slice::from_ref(&input),
        &sandbox.work(),
        &Silent,
    ))
    .expect_err("no extractor");
    assert_eq!(error.code(), ErrorCode::FfmpegMissing);
    assert!(error.is_retryable());
    let message = error.to_string();
    assert!(message.contains("restart vidsnap"), "{message}");
    assert!(!message.contains("VIDSNAP_MEDIA__EXTRACTOR"), "{message}");
}
