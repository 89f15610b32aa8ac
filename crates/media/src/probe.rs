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

/// `30000/1001` -> 29.97; `0/0` -> None.
fn rate(text: Option<&str>) -> Option<f64> {
    let (num, den) = text?.split_once('/')?;
    let (num, den): (f64, f64) = (num.parse().ok()?, den.parse().ok()?);
    (num > 0.0 && den > 0.0).then(|| num / den)
}

/// The end of the last video packet, from `ffprobe -show_entries packet=pts_time,duration_time
/// -of csv=p=0` output, relative to `start_time`.
pub(crate) fn duration_from_packets(csv: &str, start_time: f64) -> Option<f64> {
    csv.lines()
        .filter_map(|line| {
            let mut fields = line.split(',');
            let pts: f64 = fields.next()?.trim().parse().ok()?;
            let duration: f64 = fields
                .next()
                .and_then(|d| d.trim().parse().ok())
                .unwrap_or(0.0);
            Some(pts + duration)
        })
        .fold(None, |max: Option<f64>, end| {
            Some(max.map_or(end, |m| m.max(end)))
        })
        .map(|end| end - start_time)
        .filter(|d| *d > 0.0)
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
}
