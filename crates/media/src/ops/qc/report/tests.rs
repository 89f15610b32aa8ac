use vidsnap_domain::ops::{MIB, QcCheck, QcOptions};

use super::*;
use crate::probe::{DurationSource, StreamInfo};

fn stream(index: u32, kind: &str) -> StreamInfo {
    StreamInfo {
        index,
        kind: kind.into(),
        codec: Some(if kind == "video" { "h264" } else { "aac" }.into()),
        width: (kind == "video").then_some(320),
        height: (kind == "video").then_some(240),
        frame_rate: (kind == "video").then_some(25.0),
        rotation: None,
        pixel_format: None,
        sample_rate: (kind == "audio").then_some(48_000),
        channels: (kind == "audio").then_some(2),
        duration: Some(10.0),
        attached_picture: false,
    }
}

fn probe(kinds: &[&str]) -> Probe {
    Probe {
        container: "mov,mp4,m4a,3gp,3g2,mj2".into(),
        container_long_name: None,
        duration: Some(10.0),
        duration_source: Some(DurationSource::Container),
        start_time: 0.0,
        size_bytes: 2 * MIB,
        bit_rate: None,
        streams: kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| stream(i as u32, kind))
            .collect(),
    }
}

/// A clean decode of a 10 s file: 250 frames at 25 fps and audio peaking at `peak`.
fn decoded(peak: f64) -> Decoded {
    Decoded {
        finished: true,
        frame_times: (0..250).map(|i| f64::from(i) / 25.0).collect(),
        fields: FieldCounts {
            progressive: 250,
            ..FieldCounts::default()
        },
        loudness: Some(Loudness {
            integrated: -23.2,
            range: 3.0,
            true_peak: peak,
            end: 10.0,
        }),
        ..Decoded::default()
    }
}

fn facts(kinds: &[&str], decoded: Decoded) -> Facts {
    Facts {
        size_bytes: 2 * MIB,
        media: Ok(Media {
            probe: probe(kinds),
            field_order: Some("progressive".into()),
            decoded: Some(decoded),
        }),
    }
}

fn status(report: &Report, name: QcCheck) -> Status {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.status)
        .expect("every check is listed")
}

const LOUD: f64 = 0.5;
/// -80 dBFS: under the seed's -60 dB.
const QUIET: f64 = 0.0001;

#[test]
fn the_rating_is_seed_002s_table() {
    let options = QcOptions::default();
    let rated = |kinds: &[&str], peak: f64| report(&options, &facts(kinds, decoded(peak))).rating;
    assert_eq!(rated(&["audio"], QUIET), 1);
    assert_eq!(rated(&["audio"], LOUD), 2);
    assert_eq!(rated(&["video"], LOUD), 3);
    assert_eq!(rated(&["video", "audio"], QUIET), 4);
    assert_eq!(rated(&["video", "audio"], LOUD), 5);
    assert_eq!(rated(&[], LOUD), 0);
    let unreadable = Facts {
        size_bytes: 10,
        media: Err("moov atom not found".into()),
    };
    let report = report(&options, &unreadable);
    assert_eq!((report.rating, report.passed), (0, false));
    assert_eq!(status(&report, QcCheck::Streams), Status::Error);
    assert_eq!(status(&report, QcCheck::Decode), Status::Error);
    assert_eq!(report.checks.len(), QcCheck::ALL.len());
}

#[test]
fn a_clean_file_passes_with_no_findings() {
    let report = report(
        &QcOptions::default(),
        &facts(&["video", "audio"], decoded(LOUD)),
    );
    assert!(report.passed, "{report:#?}");
    assert_eq!(report.findings(), [QcCheck::Loudness; 0]);
    assert_eq!(report.version, VERSION);
    assert_eq!(report.thresholds["min_bytes"], MIB);
    assert!(report.thresholds.get("policy").is_none());
}

#[test]
fn passing_needs_rating_two_size_and_a_clean_decode() {
    let options = QcOptions::default();
    // Silent audio only: rating 1 fails.
    assert!(!report(&options, &facts(&["audio"], decoded(QUIET))).passed);
    assert!(report(&options, &facts(&["audio"], decoded(LOUD))).passed);
    // Under 1 MiB.
    let mut small = facts(&["video"], decoded(LOUD));
    small.size_bytes = MIB - 1;
    let refused = report(&options, &small);
    assert!(!refused.passed);
    assert_eq!(status(&refused, QcCheck::Size), Status::Error);
    let lowered = QcOptions {
        min_bytes: 1000,
        ..QcOptions::default()
    };
    assert!(report(&lowered, &small).passed);
    // Decoding errors.
    let broken = Decoded {
        errors: 3,
        last_error: Some("partial file".into()),
        ..decoded(LOUD)
    };
    let refused = report(&options, &facts(&["video", "audio"], broken));
    assert!(!refused.passed);
    let decode = refused
        .checks
        .iter()
        .find(|c| c.name == QcCheck::Decode)
        .expect("decode");
    assert!(decode.message.contains("3 decoding errors"), "{decode:?}");
    assert!(decode.message.contains("partial file"), "{decode:?}");
}

#[test]
fn a_truncated_decode_is_an_error_with_the_missing_range() {
    let cut = Decoded {
        frame_times: (0..100).map(|i| f64::from(i) / 25.0).collect(),
        loudness: Some(Loudness {
            integrated: -23.0,
            range: 1.0,
            true_peak: LOUD,
            end: 4.0,
        }),
        ..decoded(LOUD)
    };
    let report = report(&QcOptions::default(), &facts(&["video", "audio"], cut));
    assert!(!report.passed);
    let decode = report
        .checks
        .iter()
        .find(|c| c.name == QcCheck::Decode)
        .expect("decode");
    assert_eq!(decode.status, Status::Error);
    assert_eq!(
        decode.ranges,
        [Range {
            start: 4.0,
            end: 10.0
        }]
    );
}

#[test]
fn findings_are_warnings_unless_the_policy_names_them() {
    let with_black = Decoded {
        black: vec![Range {
            start: 3.0,
            end: 6.0,
        }],
        // The black screen is still too: reported once, as black.
        freeze: vec![
            Range {
                start: 3.0,
                end: 6.0,
            },
            Range {
                start: 10.0,
                end: 14.0,
            },
        ],
        ..decoded(LOUD)
    };
    let facts = facts(&["video", "audio"], with_black);
    let lenient = report(&QcOptions::default(), &facts);
    assert!(lenient.passed);
    assert_eq!(lenient.findings(), [QcCheck::Black, QcCheck::Freeze]);
    let freeze = lenient
        .checks
        .iter()
        .find(|c| c.name == QcCheck::Freeze)
        .expect("freeze");
    assert_eq!(freeze.ranges.len(), 1, "{freeze:?}");
    let strict = QcOptions {
        policy: vec![QcCheck::Black],
        ..QcOptions::default()
    };
    assert!(!report(&strict, &facts).passed);
    let unrelated = QcOptions {
        policy: vec![QcCheck::Silence],
        ..QcOptions::default()
    };
    assert!(report(&unrelated, &facts).passed);
}

#[test]
fn loudness_says_by_how_much_it_misses() {
    let loud = Decoded {
        loudness: Some(Loudness {
            integrated: -10.04,
            range: 2.0,
            true_peak: 0.5,
            end: 10.0,
        }),
        ..decoded(LOUD)
    };
    let report = report(&QcOptions::default(), &facts(&["audio"], loud));
    let check = report
        .checks
        .iter()
        .find(|c| c.name == QcCheck::Loudness)
        .expect("loudness");
    assert_eq!(check.status, Status::Warning);
    assert_eq!(check.value, Some(json!(-10.04)));
    assert!(check.message.contains("13.0 LU above"), "{}", check.message);
    let peak = report
        .checks
        .iter()
        .find(|c| c.name == QcCheck::TruePeak)
        .expect("true peak");
    // 0.5 is -6.02 dBTP, under the -1 dBTP maximum.
    assert_eq!(
        (peak.status, peak.value.clone()),
        (Status::Ok, Some(json!(-6.02)))
    );
}

#[test]
fn a_variable_frame_rate_is_told_from_a_dropped_frame() {
    let mut times: Vec<f64> = (0..250).map(|i| f64::from(i) / 25.0).collect();
    times.remove(100);
    let dropped = Decoded {
        frame_times: times,
        ..decoded(LOUD)
    };
    let constant = report(&QcOptions::default(), &facts(&["video"], dropped));
    assert_eq!(
        status(&constant, QcCheck::VariableFrameRate),
        Status::Ok,
        "{constant:#?}"
    );
    // 2 s at 25 fps, then 8 s at 12.5 fps.
    let times: Vec<f64> = (0..50)
        .map(|i| f64::from(i) / 25.0)
        .chain((0..100).map(|i| 2.0 + f64::from(i) / 12.5))
        .collect();
    let variable = Decoded {
        frame_times: times,
        ..decoded(LOUD)
    };
    let report = report(&QcOptions::default(), &facts(&["video"], variable));
    assert_eq!(status(&report, QcCheck::VariableFrameRate), Status::Warning);
}

#[test]
fn interlacing_is_what_the_stream_states_or_idet_sees() {
    let mut flagged = facts(&["video"], decoded(LOUD));
    if let Ok(media) = &mut flagged.media {
        media.field_order = Some("tt".into());
    }
    let options = QcOptions::default();
    assert_eq!(
        status(&report(&options, &flagged), QcCheck::Interlace),
        Status::Warning
    );
    let combed = Decoded {
        fields: FieldCounts {
            tff: 60,
            progressive: 20,
            undetermined: 20,
            bff: 0,
        },
        ..decoded(LOUD)
    };
    assert_eq!(
        status(
            &report(&options, &facts(&["video"], combed)),
            QcCheck::Interlace
        ),
        Status::Warning
    );
}

#[test]
fn rotation_and_duration_mismatch_are_reported() {
    let mut turned = facts(&["video", "audio"], decoded(LOUD));
    if let Ok(media) = &mut turned.media {
        media.probe.streams[0].rotation = Some(90);
        media.probe.streams[1].duration = Some(8.0);
    }
    let report = report(&QcOptions::default(), &turned);
    assert!(report.passed, "warnings only");
    assert_eq!(
        report.findings(),
        [QcCheck::DurationMismatch, QcCheck::Rotation]
    );
    let rotation = report.checks.last().expect("rotation");
    assert_eq!(rotation.value, Some(json!(90)));
}
