use proptest::prelude::*;
use serde_json::json;

use super::*;

fn facts() -> MediaFacts {
    MediaFacts {
        duration: Some(12.48),
        size: 1_500_000,
        codecs: vec!["h264".into(), "aac".into()],
        picture: Some((1920, 1080, 0)),
    }
}

fn parse(value: Value) -> Result<Sidecar, Vec<Mismatch>> {
    Sidecar::parse(value.to_string().as_bytes())
}

fn codes(problems: &[Mismatch]) -> Vec<ErrorCode> {
    problems.iter().map(|p| p.code).collect()
}

#[test]
fn the_seeds_sidecar_matches_its_file() {
    let sidecar = parse(json!({
        "Duration": 12.5, "File size": 1_500_000, "Codec": "H.264", "Resolution": "1920x1080"
    }))
    .expect("valid");
    assert_eq!(sidecar.resolution, Some((1920, 1080)));
    assert!(sidecar.check(&facts(), 0.5).is_empty());
}

#[test]
fn key_names_and_values_are_read_in_their_usual_spellings() {
    for value in [
        json!({"duration": "00:00:12.5", "file_size": "1500000", "codec": "avc1"}),
        json!({"Duration": "12.5s", "FileSize": "1.5 MB", "CODEC": "x264"}),
        json!({"duration": "0:12.5", "File-Size": "1500000 bytes", "Codec": "h264", "extra": 1}),
    ] {
        let sidecar = parse(value.clone()).unwrap_or_else(|e| panic!("{value}: {e:?}"));
        assert!(sidecar.check(&facts(), 0.5).is_empty(), "{value}");
    }
    assert_eq!(
        parse(json!({"Duration": 1, "File size": "1 MiB", "Codec": "aac"}))
            .expect("ok")
            .size,
        1 << 20
    );
}

#[test]
fn each_mismatch_has_its_own_code() {
    let sidecar = parse(json!({
        "Duration": 20, "File size": 1_500_001, "Codec": "hevc", "Resolution": "1280x720"
    }))
    .expect("valid");
    assert_eq!(
        codes(&sidecar.check(&facts(), 0.5)),
        [
            ErrorCode::SidecarDurationMismatch,
            ErrorCode::SidecarSizeMismatch,
            ErrorCode::SidecarCodecMismatch,
            ErrorCode::SidecarResolutionMismatch
        ]
    );
    let failure = Mismatch::failure(&sidecar.check(&facts(), 0.5)).expect("problems");
    assert_eq!(failure.code, ErrorCode::SidecarDurationMismatch);
    assert!(
        failure.message.contains("1500001 bytes"),
        "{}",
        failure.message
    );
}

#[test]
fn a_rotated_picture_matches_either_way_round() {
    let mut rotated = facts();
    rotated.picture = Some((1920, 1080, 90));
    let sidecar = parse(json!({"Duration": 12.5, "File size": 1_500_000, "Codec": "h264", "Resolution": "1080x1920"})).expect("valid");
    assert!(sidecar.check(&rotated, 0.5).is_empty());
}

#[test]
fn an_audio_only_file_matches_its_audio_codec() {
    let audio = MediaFacts {
        codecs: vec!["mp3".into()],
        picture: None,
        ..facts()
    };
    let sidecar =
        parse(json!({"Duration": 12.5, "File size": 1_500_000, "Codec": "MP3"})).expect("valid");
    assert!(sidecar.check(&audio, 0.5).is_empty());
}

#[test]
fn bad_sidecars_report_every_problem() {
    let problems = parse(json!({"Duration": "soon", "Codec": 3})).expect_err("bad");
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems.iter().all(|p| p.code == ErrorCode::SidecarInvalid));
    for bad in ["", "[]", "{", "null", "\"a\""] {
        assert!(Sidecar::parse(bad.as_bytes()).is_err(), "{bad:?}");
    }
    for value in [
        json!({"Duration": -1, "File size": 1, "Codec": "h264"}),
        json!({"Duration": "1:75:00", "File size": 1, "Codec": "h264"}),
        json!({"Duration": 1, "File size": 1.5, "Codec": "h264"}),
        json!({"Duration": 1, "File size": "1.0000001 KB", "Codec": "h264"}),
        json!({"Duration": 1, "File size": "12 parsecs", "Codec": "h264"}),
        json!({"Duration": 1, "File size": 1, "Codec": " "}),
        json!({"Duration": 1, "File size": 1, "Codec": "h264", "Resolution": "wide"}),
    ] {
        assert!(parse(value.clone()).is_err(), "{value}");
    }
}

#[test]
fn sidecar_keys_sit_beside_the_file() {
    assert_eq!(Sidecar::key_for("uploads/a.mp4"), "uploads/a.json");
    assert_eq!(Sidecar::key_for("uploads/x/a.b.mov"), "uploads/x/a.b.json");
    assert_eq!(Sidecar::key_for("a.mp4"), "a.json");
}

#[test]
fn facts_are_read_from_a_probe_summary() {
    let summary = json!({"probe": {"duration": 3.0, "size_bytes": 10, "streams": [
        {"kind": "audio", "codec": "aac"},
        {"kind": "video", "codec": "h264", "width": 64, "height": 48, "rotation": 90}
    ]}});
    let facts = MediaFacts::from_probe(&summary).expect("facts");
    assert_eq!(facts.codecs, ["h264", "aac"]);
    assert_eq!(facts.picture, Some((64, 48, 90)));
    assert_eq!(facts.size, 10);
}

proptest! {
    /// Whatever bytes arrive, the parser answers (never panics), and a refusal always says why.
    #[test]
    fn any_bytes_get_an_answer(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Err(problems) = Sidecar::parse(&bytes) {
            prop_assert!(!problems.is_empty());
            prop_assert!(problems.iter().all(|p| p.code == ErrorCode::SidecarInvalid && !p.message.is_empty()));
        }
    }

    /// Any JSON object: an answer, and an accepted sidecar has the three fields it promises.
    #[test]
    fn any_object_gets_an_answer(
        duration in prop_oneof![any::<f64>().prop_map(|f| json!(f)), ".{0,12}".prop_map(|s| json!(s)), Just(Value::Null)],
        size in prop_oneof![any::<u64>().prop_map(|n| json!(n)), any::<i64>().prop_map(|n| json!(n)), "[0-9. a-zA-Z]{0,12}".prop_map(|s| json!(s))],
        codec in prop_oneof![".{0,8}".prop_map(|s| json!(s)), any::<bool>().prop_map(|b| json!(b))],
    ) {
        let value = json!({"Duration": duration, "File size": size, "Codec": codec});
        if let Ok(sidecar) = parse(value) {
            prop_assert!(sidecar.duration.is_finite() && sidecar.duration >= 0.0);
            prop_assert!(!sidecar.codec.trim().is_empty());
        }
    }

    /// A sidecar written from the facts always matches them, whatever spelling of the size.
    #[test]
    fn a_sidecar_of_the_facts_matches(duration in 0.0f64..100_000.0, size in 0u64..(1 << 40), mib in any::<bool>()) {
        let size_text = if mib && size % (1 << 20) == 0 { format!("{} MiB", size >> 20) } else { size.to_string() };
        let sidecar = parse(json!({"Duration": duration, "File size": size_text, "Codec": "h264"})).expect("valid");
        let facts = MediaFacts { duration: Some(duration), size, codecs: vec!["h264".into()], picture: None };
        // serde_json reads a float back within one ulp, not always exactly.
        prop_assert!(sidecar.check(&facts, 1e-6).is_empty());
    }
}
