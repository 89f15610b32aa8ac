//! The probe operation: refusals with their codes, and the summary of an accepted clip.

use vidsnap_domain::{ErrorCode, Operation, ops::ProbeOptions};
use vidsnap_media::{MediaError, Silent};

use crate::support::{self, Sandbox, block_on};

const PROBE: Operation = Operation::Probe(ProbeOptions {});

pub fn a_text_file_is_not_a_video_and_not_retried() {
    let sandbox = Sandbox::new();
    let input = sandbox.input("notes.mp4", "notes.mp4");
    let error = support::run(&sandbox, &PROBE, &input, &Silent).expect_err("refused");
    assert!(
        matches!(
            error,
            MediaError::Rejected {
                code: ErrorCode::NotAVideo,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert_eq!(sandbox.files("work"), Vec::<String>::new());
    sandbox.assert_nothing_outside_work("notes.mp4");
}

pub fn a_clip_is_summarised_in_probe_json() {
    let sandbox = Sandbox::new();
    // The uploaded name is what the extension rule reads, not the local copy's.
    let input = sandbox.input("counter.mp4", "clip.MOV");
    let output = support::run(&sandbox, &PROBE, &input, &Silent).expect("accepted");
    let [produced] = output.produced.as_slice() else {
        panic!("one file: {:?}", output.produced);
    };
    assert_eq!(
        (produced.name.as_str(), produced.file_name.as_str()),
        ("probe", "probe.json")
    );
    assert_eq!(produced.content_type, "application/json");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&produced.path).expect("probe.json")).expect("JSON");
    let result = output.result.expect("result");
    assert_eq!(written, result["probe"]);
    assert_eq!(written["file_name"], "clip.MOV");
    let duration = written["duration"].as_f64().expect("duration");
    assert!((duration - 2.0).abs() < 0.05, "{duration}");
    assert_eq!(written["streams"][0]["codec"], "h264");
    assert_eq!(sandbox.files("work"), ["probe.json"]);
    sandbox.assert_nothing_outside_work("counter.mp4");
}

pub fn a_wrong_number_of_inputs_is_refused() {
    let sandbox = Sandbox::new();
    let input = sandbox.input("counter.mp4", "counter.mp4");
    let inputs = [input.clone(), input];
    let error = block_on(
        sandbox
            .engine()
            .run(&PROBE, &inputs, &sandbox.work(), &Silent),
    )
    .expect_err("two inputs");
    assert_eq!(error.code(), ErrorCode::InvalidArgument);
    assert!(!error.is_retryable());
}

pub fn an_ffprobe_killed_by_a_signal_is_retried_not_a_verdict_on_the_file() {
    let sandbox = Sandbox::new();
    let input = sandbox.input("counter.mp4", "clip.mp4");
    // An ffprobe that the kernel kills (as the out-of-memory killer would).
    std::fs::create_dir_all(sandbox.dir("bin")).expect("bin");
    let killed = sandbox.dir("bin").join("ffprobe");
    std::fs::write(&killed, "#!/bin/sh\nkill -9 $$\n").expect("write");
    std::fs::set_permissions(&killed, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let engine = vidsnap_media::MediaEngine::new(
        vidsnap_media::MediaConfig {
            temp_dir: Some(sandbox.dir("scratch")),
            ffprobe: killed,
            ..vidsnap_media::MediaConfig::default()
        },
        vidsnap_media::ExtractorCommand {
            program: std::env::current_exe().expect("test executable"),
            args: vec![support::EXTRACTOR_ARG.into()],
        },
    );
    let error = block_on(engine.run(
        &PROBE,
        std::slice::from_ref(&input),
        &sandbox.work(),
        &Silent,
    ))
    .expect_err("killed");
    assert!(error.is_retryable(), "{error:?}");
    assert_eq!(error.code(), ErrorCode::Internal, "{error:?}");
}
