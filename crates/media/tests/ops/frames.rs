//! The frames operation: the outputs the service stored before operations, the frames as
//! artefacts of their own, progress, and the `extract_frames` API the CLI keeps using.

use vidsnap_domain::{
    FrameInterval, FrameMode, ImageFormat, Operation, Quality, ops::FramesOptions,
};
use vidsnap_media::{FramesRequest, OpOutput, Silent};

use crate::support::{self, Percentages, Sandbox, source_frame, zip_entries};

/// Every half second of the 2 s counter clip: 0, 0.5, 1 and 1.5 s, shown by frames 0, 12 (at
/// 0.48 s), 25 and 37 (at 1.48 s).
const EXPECTED_FRAMES: [usize; 4] = [0, 12, 25, 37];

fn frames(images: bool) -> Operation {
    Operation::Frames(FramesOptions {
        every: FrameInterval::from_seconds(0.5).expect("interval"),
        images,
        ..FramesOptions::default()
    })
}

fn names(output: &OpOutput) -> Vec<(&str, &str, &str)> {
    output
        .produced
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.file_name.as_str(),
                p.content_type.as_str(),
            )
        })
        .collect()
}

pub fn outputs_are_named_as_the_service_stored_them() {
    let sandbox = Sandbox::new();
    let input = sandbox.input("counter.mp4", "My Holiday.mp4");
    let op = frames(false);
    let output = support::run(&sandbox, &op, &input, &Silent).expect("frames");

    assert_eq!(
        names(&output),
        [
            ("thumbnail", "image.jpg", "image/jpeg"),
            ("zip", "My Holiday-images.zip", "application/zip"),
        ]
    );
    for produced in &output.produced {
        assert!(op.info().artefacts.contains(&produced.name.as_str()));
    }
    assert_eq!(sandbox.files("work"), ["frames.zip", "thumbnail.jpg"]);
    sandbox.assert_nothing_outside_work("counter.mp4");

    let result = output.result.expect("result");
    assert_eq!(result["frames"], 4);
    assert_eq!(result["probe"]["file_name"], "My Holiday.mp4");
    assert_eq!(result["probe"]["streams"][0]["width"], 64);
    let thumbnail = &output.produced[0].path;
    assert_eq!(source_frame(thumbnail, &input.path), 0);
    let entries: Vec<String> = zip_entries(&output.produced[1].path)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(entries.len(), 5);
    assert_eq!(entries[4], "manifest.json");
}

pub fn with_images_every_frame_is_an_artefact_equal_to_its_zip_entry() {
    let sandbox = Sandbox::new();
    let input = sandbox.input("counter.mp4", "counter.mp4");
    let op = frames(true);
    let output = support::run(&sandbox, &op, &input, &Silent).expect("frames");

    let (frames, rest) = output.produced.split_at(4);
    assert_eq!(
        names(&OpOutput {
            produced: rest.to_vec(),
            result: None
        }),
        [
            ("manifest", "manifest.json", "application/json"),
            ("thumbnail", "image.jpg", "image/jpeg"),
            ("zip", "counter-images.zip", "application/zip"),
        ]
    );
    // Every artefact the domain declares is made, and nothing else but the frames.
    for declared in op.info().artefacts {
        assert!(
            output.produced.iter().any(|p| p.name == *declared),
            "{declared}"
        );
    }
    let zip = zip_entries(&rest[2].path);
    assert_eq!(zip.len(), 5);
    for (index, (frame, (entry, bytes))) in frames.iter().zip(&zip).enumerate() {
        assert_eq!(frame.name, format!("frames/{entry}"));
        assert_eq!(frame.file_name, frame.name);
        assert_eq!(frame.content_type, "image/jpeg");
        assert!(frame.path.starts_with(sandbox.work()));
        assert!(
            std::fs::read(&frame.path).expect("frame") == *bytes,
            "{entry}"
        );
        assert_eq!(
            source_frame(&frame.path, &input.path),
            EXPECTED_FRAMES[index],
            "{entry}"
        );
    }
    let manifest = std::fs::read(&rest[0].path).expect("manifest");
    assert!(manifest == zip[4].1, "manifest.json is the zip's");
    let thumbnail = std::fs::read(&rest[1].path).expect("thumbnail");
    assert!(thumbnail == zip[0].1, "the thumbnail is the first frame");

    let mut expected: Vec<String> = zip[..4]
        .iter()
        .map(|(entry, _)| format!("frames/{entry}"))
        .collect();
    expected.extend(["frames.zip", "manifest.json", "thumbnail.jpg"].map(String::from));
    expected.sort();
    assert_eq!(sandbox.files("work"), expected);
    sandbox.assert_nothing_outside_work("counter.mp4");
}

pub fn percent_climbs_to_one_hundred() {
    let sandbox = Sandbox::new();
    let input = sandbox.input("counter.mp4", "counter.mp4");
    let percentages = Percentages::default();
    support::run(&sandbox, &frames(false), &input, &percentages).expect("frames");
    // Four frames: a quarter each, and 100 only once the zip is written.
    assert_eq!(percentages.said(), [0, 25, 50, 75, 99, 100]);
}

pub fn extract_frames_still_publishes_beside_each_other() {
    let sandbox = Sandbox::new();
    let input = sandbox.input("counter.mp4", "counter.mp4");
    let request = FramesRequest {
        input: input.path.clone(),
        out_dir: sandbox.work(),
        interval: FrameInterval::from_seconds(0.5).expect("interval"),
        mode: FrameMode::Exact,
        format: ImageFormat::Jpg,
        quality: Quality::DEFAULT,
        max_width: None,
    };
    let percentages = Percentages::default();
    let output = support::block_on(sandbox.engine().extract_frames(&request, &percentages))
        .expect("extract_frames");
    assert_eq!(
        sandbox.files("work"),
        ["counter-image.jpg", "counter-images.zip"]
    );
    assert_eq!(
        output.zip_bytes,
        std::fs::metadata(&output.zip).expect("zip").len()
    );
    assert_eq!(output.manifest.frames.len(), 4);
    assert_eq!(output.manifest.source.file_name, "counter.mp4");
    assert_eq!(source_frame(&output.thumbnail, &input.path), 0);
    assert_eq!(percentages.said().last(), Some(&100));
    sandbox.assert_nothing_outside_work("counter.mp4");
}
