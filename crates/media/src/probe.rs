//! What a video is made of, read with `ffprobe -print_format json`.
//!
//! [`parse`] is pure (tested on real ffprobe outputs kept in `tests/fixtures`); [`Probe::duration`]
//! falls back from the container to the video stream to the packets, so a file whose header has no
//! duration (a WebM recorded by a browser, a streamed FLV) is measured instead of refused.

use serde::{Deserialize, Serialize};

/// The parts of ffprobe's JSON that Vidsnap reads. Numbers arrive as strings in ffprobe's format.
#[derive(Debug, Deserialize)]
pub(crate) struct RawProbe {
    #[serde(default)]
    streams: Vec<RawStream>,
    format: Option<RawFormat>,
}

#[derive(Debug, Deserialize)]
struct RawFormat {
    format_name: String,
    format_long_name: Option<String>,
    start_time: Option<String>,
    duration: Option<String>,
    size: Option<String>,
    bit_rate: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawStream {
    index: u32,
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    pix_fmt: Option<String>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    duration: Option<String>,
    sample_rate: Option<String>,
    channels: Option<u32>,
    #[serde(default)]
    disposition: RawDisposition,
    #[serde(default)]
    tags: RawTags,
    #[serde(default)]
    side_data_list: Vec<RawSideData>,
}

#[derive(Debug, Default, Deserialize)]
struct RawDisposition {
    #[serde(default)]
    attached_pic: u8,
}

#[derive(Debug, Default, Deserialize)]
struct RawTags {
    rotate: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawSideData {
    rotation: Option<f64>,
}

/// Where the duration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurationSource {
    Container,
    Stream,
    Packets,
}

/// A file's format and streams, as Vidsnap reports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// ffprobe's demuxer names, e.g. `mov,mp4,m4a,3gp,3g2,mj2`.
    pub container: String,
    pub container_long_name: Option<String>,
    /// Seconds; `None` until measured when the header has none.
    pub duration: Option<f64>,
    pub duration_source: Option<DurationSource>,
    /// Presentation time of the container's start; frame times are reported relative to it.
    pub start_time: f64,
    pub size_bytes: u64,
    pub bit_rate: Option<u64>,
    pub streams: Vec<StreamInfo>,
}

/// One stream of a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamInfo {
    pub index: u32,
    /// `video`, `audio`, `subtitle`, `data` or `attachment`.
    pub kind: String,
    pub codec: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Average frames per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<f64>,
    /// Clockwise degrees (0, 90, 180, 270) the picture is turned for display.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// Cover art stored as a video stream: not a video.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub attached_picture: bool,
}

impl Probe {
    /// The first real video stream (cover art excluded).
    pub fn video(&self) -> Option<&StreamInfo> {
        self.streams
            .iter()
            .find(|s| s.kind == "video" && !s.attached_picture)
    }

    pub fn has_audio(&self) -> bool {
        self.streams.iter().any(|s| s.kind == "audio")
    }
}

/// Parses ffprobe's `-show_format -show_streams -print_format json` output.
pub fn parse(json: &[u8]) -> Result<Probe, serde_json::Error> {
    let raw: RawProbe = serde_json::from_slice(json)?;
    let format = raw.format.unwrap_or(RawFormat {
        format_name: String::new(),
        format_long_name: None,
        start_time: None,
        duration: None,
        size: None,
        bit_rate: None,
    });
    let streams: Vec<StreamInfo> = raw.streams.into_iter().map(stream_info).collect();
    let mut probe = Probe {
        container: format.format_name,
        container_long_name: format.format_long_name,
        duration: None,
        duration_source: None,
        start_time: number(format.start_time.as_deref()).unwrap_or(0.0),
        size_bytes: number(format.size.as_deref()).map_or(0, |n| n as u64),
        bit_rate: number(format.bit_rate.as_deref()).map(|n| n as u64),
        streams,
    };
    if let Some(d) = number(format.duration.as_deref()).filter(|d| *d > 0.0) {
        probe.duration = Some(d);
        probe.duration_source = Some(DurationSource::Container);
    } else if let Some(d) = probe.video().and_then(|v| v.duration).filter(|d| *d > 0.0) {
        probe.duration = Some(d);
        probe.duration_source = Some(DurationSource::Stream);
    }
    Ok(probe)
}

fn stream_info(raw: RawStream) -> StreamInfo {
    let rotation = raw
        .side_data_list
        .iter()
        .find_map(|s| s.rotation)
        // The display matrix states counter-clockwise degrees; players turn the other way.
        .map(|ccw| -ccw)
        .or_else(|| number(raw.tags.rotate.as_deref()))
        .map(|deg| ((deg.round() as i64).rem_euclid(360)) as u32);
    let frame_rate =
        rate(raw.avg_frame_rate.as_deref()).or_else(|| rate(raw.r_frame_rate.as_deref()));
    StreamInfo {
        index: raw.index,
        kind: raw.codec_type.unwrap_or_else(|| "unknown".into()),
        codec: raw.codec_name,
        width: raw.width.filter(|w| *w > 0),
        height: raw.height.filter(|h| *h > 0),
        frame_rate,
        rotation: rotation.filter(|r| *r != 0),
        pixel_format: raw.pix_fmt,
        sample_rate: number(raw.sample_rate.as_deref()).map(|n| n as u32),
        channels: raw.channels,
        duration: number(raw.duration.as_deref()),
        attached_picture: raw.disposition.attached_pic != 0,
    }
}

fn number(text: Option<&str>) -> Option<f64> {
    text?.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// `30000/1001` -> 29.97; `0/0` -> None. Only a finite, positive rate: `inf/1` or `1/1e-320`
/// would otherwise be stored as `null` in `probe.json`, and `1/inf` is no rate.
fn rate(text: Option<&str>) -> Option<f64> {
    let (num, den) = text?.split_once('/')?;
    let (num, den): (f64, f64) = (num.parse().ok()?, den.parse().ok()?);
    Some(num / den).filter(|r| r.is_finite() && *r > 0.0)
}

/// The end of the last video packet, from `ffprobe -show_entries packet=pts_time,duration_time
/// -of csv=p=0` output, relative to `start_time`. Lines whose end is not a finite number (`inf`,
/// `nan`) are skipped, and so is a result that is not finite and positive.
pub(crate) fn duration_from_packets(csv: &str, start_time: f64) -> Option<f64> {
    csv.lines()
        .filter_map(|line| {
            let mut fields = line.split(',');
            let pts: f64 = fields.next()?.trim().parse().ok()?;
            let duration: f64 = fields
                .next()
                .and_then(|d| d.trim().parse().ok())
                .unwrap_or(0.0);
            Some(pts + duration).filter(|end| end.is_finite())
        })
        .fold(None, |max: Option<f64>, end| {
            Some(max.map_or(end, |m| m.max(end)))
        })
        .map(|end| end - start_time)
        .filter(|d| d.is_finite() && *d > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Probe {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        parse(&bytes).expect("fixture parses")
    }

    #[test]
    fn mp4_with_audio() {
        let p = fixture("h264-aac.mp4.json");
        assert!(p.container.contains("mp4"));
        assert_eq!(p.duration_source, Some(DurationSource::Container));
        let v = p.video().expect("video stream");
        assert_eq!(v.codec.as_deref(), Some("h264"));
        assert_eq!((v.width, v.height), (Some(320), Some(240)));
        assert!((v.frame_rate.expect("fps") - 25.0).abs() < 1e-6);
        assert_eq!(v.pixel_format.as_deref(), Some("yuv420p"));
        assert!(p.has_audio());
        assert!(p.size_bytes > 0);
    }

    #[test]
    fn rotation_from_display_matrix() {
        let p = fixture("rotated-90.mp4.json");
        assert_eq!(p.video().and_then(|v| v.rotation), Some(270));
    }

    #[test]
    fn webm_without_duration_has_none_until_measured() {
        let p = fixture("no-duration.webm.json");
        assert_eq!(p.duration, None);
        assert!(p.video().is_some());
    }

    #[test]
    fn mp3_cover_art_is_not_video() {
        let p = fixture("cover-art.mp3.json");
        assert!(p.video().is_none());
        assert!(p.streams.iter().any(|s| s.attached_picture));
    }

    #[test]
    fn packet_durations() {
        let csv = "1.400000,0.040000\n1.440000,0.040000\n2.400000,0.040000\n";
        let d = duration_from_packets(csv, 1.4).expect("duration");
        assert!((d - 1.04).abs() < 1e-9);
        assert_eq!(duration_from_packets("", 0.0), None);
    }

    #[test]
    fn frame_rate_fractions() {
        assert!((rate(Some("30000/1001")).expect("rate") - 29.97).abs() < 0.01);
        assert_eq!(rate(Some("0/0")), None);
    }

    /// Found by `props::frame_rates_of_any_text_are_finite_or_none` and
    /// `props::packet_lists_give_a_finite_positive_duration_or_none`: an infinite frame rate or
    /// packet end was kept (and written to `probe.json` as `null`), a rate that underflows was 0.
    #[test]
    fn rates_and_packet_ends_are_finite() {
        for text in ["inf/1", "1e308/1e-308", "1/inf", "1e-300/1e300", "NaN/1"] {
            assert_eq!(rate(Some(text)), None, "{text}");
        }
        assert_eq!(duration_from_packets("inf\n", 0.0), None);
        assert_eq!(duration_from_packets("1e308,1e308\n", 0.0), None);
        assert_eq!(duration_from_packets("2.0,0.5\ninf\n", 0.0), Some(2.5));
        assert_eq!(duration_from_packets("1e308\n", -1e308), None);
    }
}

/// Property tests (issue #11, hardening): ffprobe's JSON and packet CSV of any shape never
/// panic, and whatever is accepted holds only finite, in-range numbers (a probe is stored as
/// `probe.json` and read back, and its numbers become frame times).
#[cfg(test)]
mod props {
    use proptest::{prelude::*, sample::Index, test_runner::Config};
    use serde_json::{Value, json};

    use super::*;

    fn config() -> Config {
        Config {
            cases: 384,
            failure_persistence: None,
            ..Config::default()
        }
    }

    const FIXTURES: [&str; 4] = [
        include_str!("../tests/fixtures/h264-aac.mp4.json"),
        include_str!("../tests/fixtures/rotated-90.mp4.json"),
        include_str!("../tests/fixtures/no-duration.webm.json"),
        include_str!("../tests/fixtures/cover-art.mp3.json"),
    ];

    /// Numbers as ffprobe writes them, and what a broken or hostile file makes it write.
    fn number_text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<f64>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            (0u32..100_000, 0u32..1_000_000).prop_map(|(a, b)| format!("{a}.{b:06}")),
            prop::sample::select(
                &[
                    "N/A",
                    "",
                    " ",
                    "nan",
                    "NaN",
                    "inf",
                    "-inf",
                    "infinity",
                    "1e400",
                    "-1e400",
                    "-0",
                    "0",
                    "-1",
                    "18446744073709551616",
                    "0/0",
                    "1/0",
                    "inf/1",
                    "1e308/1e-308",
                    "30000/1001",
                    "-25/1",
                    "25/-1",
                    "NaN/1",
                    "1/inf",
                ][..]
            )
            .prop_map(str::to_owned),
            "\\PC{0,16}",
        ]
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("JSON numbers are finite", |f| f.is_finite())
                .prop_map(Value::from),
            number_text().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Every JSON pointer into `value`, the root included.
    fn pointers(value: &Value) -> Vec<String> {
        fn walk(value: &Value, at: String, out: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    for (key, inner) in map {
                        walk(inner, format!("{at}/{key}"), out);
                    }
                }
                Value::Array(items) => {
                    for (i, inner) in items.iter().enumerate() {
                        walk(inner, format!("{at}/{i}"), out);
                    }
                }
                _ => {}
            }
            out.push(at);
        }
        let mut out = Vec::new();
        walk(value, String::new(), &mut out);
        out
    }

    /// A real ffprobe output with some of its values replaced: numbers as odd text, wrong
    /// types, huge or negative values.
    fn near_valid_probe() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::sample::select(&FIXTURES[..]),
            prop::collection::vec(
                (
                    any::<Index>(),
                    prop_oneof![
                        number_text().prop_map(Value::String),
                        any_json(),
                        prop::sample::select(vec![
                            json!(-1),
                            json!(256),
                            json!(u64::MAX),
                            json!(-90.5),
                            json!(1e300)
                        ]),
                    ],
                ),
                1..5,
            ),
        )
            .prop_map(|(fixture, changes)| {
                let mut doc: Value = serde_json::from_str(fixture).unwrap_or_default();
                for (index, value) in changes {
                    let all = pointers(&doc);
                    if let Some(node) = doc.pointer_mut(&all[index.index(all.len())]) {
                        *node = value;
                    }
                }
                doc.to_string().into_bytes()
            })
    }

    fn finite(n: Option<f64>) -> bool {
        n.is_none_or(f64::is_finite)
    }

    /// What an accepted probe must hold; a refusal is ffprobe output the engine reports as
    /// `internal` (the file was readable, its description was not).
    fn check(json: &[u8]) {
        let Ok(probe) = parse(json) else { return };
        assert!(probe.start_time.is_finite(), "start {}", probe.start_time);
        assert!(
            probe.duration.is_none_or(|d| d.is_finite() && d > 0.0),
            "duration {:?}",
            probe.duration
        );
        assert_eq!(probe.duration.is_some(), probe.duration_source.is_some());
        for stream in &probe.streams {
            assert!(
                stream.frame_rate.is_none_or(|r| r.is_finite() && r > 0.0),
                "frame rate {:?}",
                stream.frame_rate
            );
            assert!(
                finite(stream.duration),
                "stream duration {:?}",
                stream.duration
            );
            assert!(stream.rotation.is_none_or(|r| r > 0 && r < 360));
            assert!(stream.width.is_none_or(|w| w > 0) && stream.height.is_none_or(|h| h > 0));
        }
        // `probe.json` holds exactly what was read: nothing is lost as `null`.
        let stored = serde_json::to_value(&probe).unwrap_or_default();
        let back: Probe = serde_json::from_value(stored).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, probe);
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            check(&bytes);
        }

        #[test]
        fn any_json_is_read_or_refused(value in any_json()) {
            check(value.to_string().as_bytes());
            check(json!({"streams": [value.clone()], "format": value}).to_string().as_bytes());
        }

        #[test]
        fn near_valid_outputs_hold_finite_values(json in near_valid_probe()) {
            check(&json);
        }

        #[test]
        fn a_stream_gives_back_what_ffprobe_said(
            (width, height) in (1u32..=16384, 1u32..=16384),
            (num, den) in (1u32..=240_000, 1u32..=1001),
            duration_ms in 1u64..=86_400_000,
            size in any::<u32>(),
            rotation in prop::sample::select(&[0i32, 90, 180, 270, -90, -180, -270][..]),
            in_side_data in any::<bool>(),
        ) {
            let mut video = json!({
                "index": 0, "codec_type": "video", "codec_name": "h264",
                "width": width, "height": height, "pix_fmt": "yuv420p",
                "avg_frame_rate": format!("{num}/{den}"), "r_frame_rate": "0/0",
                "duration": format!("{}.{:03}000", duration_ms / 1000, duration_ms % 1000),
                "disposition": {"attached_pic": 0},
            });
            if in_side_data {
                // The display matrix says counter-clockwise degrees.
                video["side_data_list"] = json!([{"rotation": -rotation}]);
            } else {
                video["tags"] = json!({"rotate": rotation.to_string()});
            }
            let doc = json!({
                "streams": [video, {"index": 1, "codec_type": "audio", "sample_rate": "48000", "channels": 2}],
                "format": {"format_name": "mov,mp4", "duration": "N/A", "size": size.to_string(), "start_time": "0.000000"},
            });
            let probe = parse(doc.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            let stream = probe.video().unwrap_or_else(|| panic!("no video: {probe:?}"));
            prop_assert_eq!((stream.width, stream.height), (Some(width), Some(height)));
            prop_assert_eq!(stream.frame_rate, Some(f64::from(num) / f64::from(den)));
            prop_assert_eq!(stream.rotation, u32::try_from(rotation.rem_euclid(360)).ok().filter(|r| *r != 0));
            let seconds = duration_ms as f64 / 1000.0;
            prop_assert!((probe.duration.unwrap_or_default() - seconds).abs() < 1e-9);
            prop_assert_eq!(probe.duration_source, Some(DurationSource::Stream));
            prop_assert_eq!(probe.size_bytes, u64::from(size));
            prop_assert!(probe.has_audio());
            check(doc.to_string().as_bytes());
        }

        #[test]
        fn frame_rates_of_any_text_are_finite_or_none(
            avg in prop_oneof![number_text(), (number_text(), number_text()).prop_map(|(n, d)| format!("{n}/{d}"))],
            r in prop_oneof![number_text(), (number_text(), number_text()).prop_map(|(n, d)| format!("{n}/{d}"))],
        ) {
            let doc = json!({
                "streams": [{"index": 0, "codec_type": "video", "avg_frame_rate": avg, "r_frame_rate": r}],
                "format": {"format_name": "mov,mp4"},
            });
            check(doc.to_string().as_bytes());
        }

        #[test]
        fn packet_lists_give_a_finite_positive_duration_or_none(
            lines in prop::collection::vec((number_text(), prop::option::of(number_text())), 0..8),
            start in number_text(),
        ) {
            let csv: String = lines
                .iter()
                .map(|(pts, duration)| match duration {
                    Some(d) => format!("{pts},{d}\n"),
                    None => format!("{pts}\n"),
                })
                .collect();
            let start = start.parse::<f64>().ok().filter(|s| s.is_finite()).unwrap_or(0.0);
            let duration = duration_from_packets(&csv, start);
            prop_assert!(duration.is_none_or(|d| d.is_finite() && d > 0.0), "{duration:?} from {csv:?}");
        }
    }
}
