//! The storyboard operation: a WebVTT file that parses, whose cues cover the whole duration
//! without gaps or overlaps and point inside sheets of the size ffprobe reads, one tile per
//! interval, each tile showing the frame it stands for (the counter clip's brightness says which).

use std::path::PathBuf;

use serde_json::{Value, json};
use vidsnap_domain::{ErrorCode, Operation};
use vidsnap_media::{OpOutput, Silent};

use crate::support::{
    self, Percentages, Sandbox, duration, nearest_frame, picture_size, region_brightness,
};

fn storyboard(options: Value) -> Operation {
    Operation::parse("storyboard", &options, "options").expect("valid storyboard options")
}

/// One cue: a time range and the box of a sheet that stands for it.
#[derive(Debug)]
struct Cue {
    start: f64,
    end: f64,
    /// The sheet's name, percent-decoded.
    sheet: String,
    x: u32,
    y: u32,
    w: u32,
    h: u32,
}

/// `HH:MM:SS.mmm` or `MM:SS.mmm`, as WebVTT writes cue times.
fn vtt_time(text: &str) -> f64 {
    let parts: Vec<&str> = text.split(':').collect();
    assert!(
        (2..=3).contains(&parts.len()) && text.len() >= 9,
        "a cue time: {text:?}"
    );
    let (seconds, millis) = parts[parts.len() - 1]
        .split_once('.')
        .unwrap_or_else(|| panic!("milliseconds in {text:?}"));
    assert_eq!(millis.len(), 3, "three digits of milliseconds: {text:?}");
    let whole: Vec<f64> = parts[..parts.len() - 1]
        .iter()
        .chain([&seconds])
        .map(|p| p.parse::<f64>().unwrap_or_else(|_| panic!("{text:?}")))
        .collect();
    let seconds = whole.iter().fold(0.0, |total, part| total * 60.0 + part);
    seconds + millis.parse::<f64>().expect("milliseconds") / 1000.0
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex");
            out.push(u8::from_str_radix(hex, 16).expect("a %XX escape"));
            i += 3;
        } else {
            assert!(
                bytes[i].is_ascii_alphanumeric() || b"-._~".contains(&bytes[i]),
                "unescaped {:?} in {text:?}",
                char::from(bytes[i])
            );
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("UTF-8")
}

/// A WebVTT file of thumbnail cues: the `WEBVTT` line, then blocks apart by blank lines, each
/// an optional identifier, `start --> end` and one `sheet#xywh=x,y,w,h` line.
fn parse_vtt(text: &str) -> Vec<Cue> {
    let mut blocks = text.split("\n\n");
    let header = blocks.next().expect("a header");
    assert!(
        header == "WEBVTT" || header.starts_with("WEBVTT "),
        "{header:?}"
    );
    blocks
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut lines: Vec<&str> = block.lines().collect();
            if !lines[0].contains("-->") {
                lines.remove(0);
            }
            assert_eq!(lines.len(), 2, "timing and payload: {block:?}");
            let (start, end) = lines[0].split_once(" --> ").expect("a timing line");
            let end = end.split_whitespace().next().expect("an end");
            let (sheet, fragment) = lines[1].split_once("#xywh=").expect("a media fragment");
            let xywh: Vec<u32> = fragment
                .split(',')
                .map(|n| n.parse().expect("a whole number"))
                .collect();
            let [x, y, w, h] = xywh[..] else {
                panic!("four numbers: {fragment:?}");
            };
            Cue {
                start: vtt_time(start),
                end: vtt_time(end),
                sheet: percent_decode(sheet),
                x,
                y,
                w,
                h,
            }
        })
        .collect()
}

/// Every invariant of a storyboard's outputs: the cues cover `[0, duration]` end to end, one per
/// interval; each box lies inside the sheet it names, whose size ffprobe reads. The cues, and
/// the local path of each sheet by its stored name.
fn check(output: &OpOutput, duration: f64, every: f64) -> (Vec<Cue>, Vec<(String, PathBuf)>) {
    let vtt = output.produced.last().expect("the vtt last");
    assert_eq!(
        (vtt.name.as_str(), vtt.content_type.as_str()),
        ("vtt", "text/vtt")
    );
    let cues = parse_vtt(&std::fs::read_to_string(&vtt.path).expect("the vtt"));
    let tiles = (duration / every).ceil() as usize;
    assert_eq!(cues.len(), tiles, "one cue per tile: {cues:?}");
    assert_eq!(cues[0].start, 0.0);
    for pair in cues.windows(2) {
        assert_eq!(pair[0].end, pair[1].start, "no gap, no overlap: {pair:?}");
    }
    for cue in &cues {
        assert!(cue.end > cue.start, "{cue:?}");
    }
    let last = cues.last().expect("a cue").end;
    assert!((last - duration).abs() <= 0.0005, "{last} vs {duration}");

    let sheets: Vec<(String, PathBuf)> = output.produced[..output.produced.len() - 1]
        .iter()
        .map(|p| {
            assert!(p.name.starts_with("sprite-"), "{}", p.name);
            assert_eq!(p.content_type, "image/jpeg");
            (p.file_name.clone(), p.path.clone())
        })
        .collect();
    for cue in &cues {
        let (_, path) = sheets
            .iter()
            .find(|(name, _)| *name == cue.sheet)
            .unwrap_or_else(|| panic!("{cue:?} names a sheet that was not made"));
        let (width, height) = picture_size(path);
        assert!(
            cue.w > 0 && cue.h > 0 && cue.x + cue.w <= width && cue.y + cue.h <= height,
            "{cue:?} outside {width}x{height}"
        );
    }
    (cues, sheets)
}

pub fn cues_cover_the_duration_and_point_inside_their_sheets() {
    let sandbox = Sandbox::new();
    let input = sandbox.input("counter.mp4", "My Clip #1.mp4");
    let op = storyboard(json!({"every": 0.3, "columns": 3, "rows": 1}));
    let percentages = Percentages::default();
    let output = support::run(&sandbox, &op, &input, &percentages).expect("storyboard");

    let (cues, sheets) = check(&output, duration(&input.path), 0.3);
    // 7 tiles of 160x120 (the clip's 4:3) on sheets of 3: 3, 3 and 1.
    let names: Vec<(&str, &str)> = output
        .produced
        .iter()
        .map(|p| (p.name.as_str(), p.file_name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("sprite-001", "My Clip #1-sprite-001.jpg"),
            ("sprite-002", "My Clip #1-sprite-002.jpg"),
            ("sprite-003", "My Clip #1-sprite-003.jpg"),
            ("vtt", "My Clip #1-storyboard.vtt"),
        ]
    );
    let sizes: Vec<(u32, u32)> = sheets.iter().map(|(_, path)| picture_size(path)).collect();
    assert_eq!(sizes, [(480, 120), (480, 120), (160, 120)]);
    let vtt = std::fs::read_to_string(&output.produced[3].path).expect("vtt");
    assert!(
        vtt.contains("My%20Clip%20%231-sprite-001.jpg#xywh=160,0,160,120"),
        "{vtt}"
    );

    // Each tile shows the frame shown at its time (frame n at n / 25 s).
    for (i, cue) in cues.iter().enumerate() {
        let (_, path) = sheets.iter().find(|(n, _)| *n == cue.sheet).expect("sheet");
        // The middle of the tile: JPEG blocks straddle the edges between tiles.
        let brightness = region_brightness(path, cue.x + 24, cue.y + 24, cue.w - 48, cue.h - 48);
        let shown = nearest_frame(brightness, &input.path, &format!("tile {i}"));
        assert_eq!(
            shown,
            (i as f64 * 0.3 * 25.0 + 1e-9).floor() as usize,
            "{cue:?}"
        );
    }
    let result = output.result.expect("result");
    assert_eq!(
        (result["tiles"].as_u64(), result["sprites"].as_u64()),
        (Some(7), Some(3))
    );
    assert_eq!(
        (
            result["tile_width"].as_u64(),
            result["tile_height"].as_u64()
        ),
        (Some(160), Some(120))
    );
    let said = percentages.said();
    assert_eq!(
        (said.first(), said.last()),
        (Some(&0), Some(&100)),
        "{said:?}"
    );
    assert!(said.windows(2).all(|p| p[0] < p[1]), "{said:?}");
    assert_eq!(
        sandbox.files("work"),
        [
            "sprite-001.jpg",
            "sprite-002.jpg",
            "sprite-003.jpg",
            "storyboard.vtt"
        ]
    );
    sandbox.assert_nothing_outside_work("counter.mp4");
}

pub fn a_picture_of_another_shape_is_fitted_inside_its_tile() {
    let sandbox = Sandbox::new();
    let input = sandbox.input("shots.mp4", "shots.mp4");
    // 16:9 tiles for a 4:3 picture: 120x90 in the middle, black bars of 20 px each side.
    let op = storyboard(json!({"every": 2, "width": 160, "height": 90, "mode": "keyframe"}));
    let output = support::run(&sandbox, &op, &input, &Silent).expect("storyboard");
    let (cues, sheets) = check(&output, 10.0, 2.0);
    assert_eq!(sheets.len(), 1);
    assert_eq!(picture_size(&sheets[0].1), (5 * 160, 90));
    for cue in &cues {
        assert_eq!((cue.w, cue.h, cue.y), (160, 90, 0), "{cue:?}");
        let bar = region_brightness(&sheets[0].1, cue.x + 2, 8, 12, 74);
        assert!(bar < 24.0, "a black bar, not {bar}: {cue:?}");
    }
}

pub fn too_many_sheets_are_refused_before_anything_runs() {
    let sandbox = Sandbox::new();
    let input = sandbox.input("counter.mp4", "counter.mp4");
    // 20 tiles on sheets of 4: 5 sheets, one over the limit.
    let op = storyboard(json!({"every": 0.1, "columns": 2, "rows": 2, "max_sprites": 4}));
    let error = support::run(&sandbox, &op, &input, &Silent).expect_err("too many sheets");
    assert_eq!(error.code(), ErrorCode::TooManyFrames);
    assert!(!error.is_retryable());
    let message = error.to_string();
    assert!(
        message.contains("5 sheets") && message.contains("max_sprites"),
        "{message}"
    );
    assert_eq!(sandbox.files("work"), Vec::<String>::new());
    sandbox.assert_nothing_outside_work("counter.mp4");
    // An interval shorter than a frame is the frames operation's error too.
    let op = storyboard(json!({"every": 0.01}));
    let error = support::run(&sandbox, &op, &input, &Silent).expect_err("too short");
    assert_eq!(error.code(), ErrorCode::IntervalTooShort);
}
