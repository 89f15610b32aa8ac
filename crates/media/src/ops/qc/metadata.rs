//! What the detectors found, read from the files ffmpeg's `metadata=mode=print:file=…` (and
//! `ametadata`) filters write: one block per frame that carries metadata,
//!
//! ```text
//! frame:75   pts:38400   pts_time:3
//! lavfi.black_start=3
//! ```
//!
//! Nothing here depends on the order of blocks or of lines within them: segments pair each
//! start with the first end at or after it, counts are sums, loudness is read from the latest
//! frame by time and peaks are maxima.

use serde::Serialize;

/// One frame's metadata.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Frame {
    /// `pts_time`: seconds on the stream's clock (`None` for `NOPTS`).
    pub time: Option<f64>,
    pub entries: Vec<(String, String)>,
}

impl Frame {
    fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn number(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(number)
    }
}

fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// The frames of a metadata file. Lines before the first header, and lines that are neither a
/// header nor `key=value`, are ignored.
pub(super) fn frames(text: &str) -> Vec<Frame> {
    let mut frames: Vec<Frame> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("frame:") {
            let time = line
                .split_whitespace()
                .find_map(|field| field.strip_prefix("pts_time:"))
                .and_then(number);
            frames.push(Frame {
                time,
                entries: Vec::new(),
            });
        } else if let (Some(frame), Some((key, value))) = (frames.last_mut(), line.split_once('='))
        {
            frame.entries.push((key.to_owned(), value.to_owned()));
        }
    }
    frames
}

/// A stretch of time, in seconds from the start of the file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Range {
    pub start: f64,
    pub end: f64,
}

impl Range {
    pub fn seconds(&self) -> f64 {
        self.end - self.start
    }
}

/// The segments between `start_key` and `end_key` values (in any order); a start with no end
/// lasts until `end_of_media` (a detector says nothing when the file ends inside a segment).
pub(super) fn segments(
    frames: &[Frame],
    start_key: &str,
    end_key: &str,
    end_of_media: f64,
) -> Vec<Range> {
    let mut starts: Vec<f64> = frames.iter().filter_map(|f| f.number(start_key)).collect();
    let mut ends: Vec<f64> = frames.iter().filter_map(|f| f.number(end_key)).collect();
    starts.sort_by(f64::total_cmp);
    ends.sort_by(f64::total_cmp);
    let mut ends = ends.into_iter().peekable();
    let mut ranges: Vec<Range> = Vec::new();
    for start in starts {
        // An end before this start closed an earlier one (or a segment begun before the file).
        while ends.next_if(|end| *end < start).is_some() {}
        let end = ends.next().unwrap_or(end_of_media.max(start));
        ranges.push(Range { start, end });
    }
    ranges
}

/// What ffmpeg's `idet` decided, frame by frame (its "multiple frame" verdict).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FieldCounts {
    pub tff: u64,
    pub bff: u64,
    pub progressive: u64,
    pub undetermined: u64,
}

impl FieldCounts {
    pub fn interlaced(&self) -> u64 {
        self.tff + self.bff
    }

    /// The share of frames idet could decide that are interlaced.
    pub fn interlaced_ratio(&self) -> Option<f64> {
        let decided = self.interlaced() + self.progressive;
        (decided > 0).then(|| self.interlaced() as f64 / decided as f64)
    }
}

/// The per-frame verdicts of `idet` (every video frame has one), and every frame's time.
pub(super) fn fields(frames: &[Frame]) -> (FieldCounts, Vec<f64>) {
    let mut counts = FieldCounts::default();
    let mut times = Vec::with_capacity(frames.len());
    for frame in frames {
        let Some(verdict) = frame.get("lavfi.idet.multiple.current_frame") else {
            continue;
        };
        match verdict.trim() {
            "tff" => counts.tff += 1,
            "bff" => counts.bff += 1,
            "progressive" => counts.progressive += 1,
            _ => counts.undetermined += 1,
        }
        times.extend(frame.time);
    }
    times.sort_by(f64::total_cmp);
    (counts, times)
}

/// EBU R128 figures of the whole file, from `ebur128=peak=true:metadata=1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Loudness {
    /// Integrated loudness, LUFS (-70 when nothing rose above the absolute gate).
    pub integrated: f64,
    /// Loudness range, LU.
    pub range: f64,
    /// The highest true peak of any channel, linear (1.0 = full scale).
    pub true_peak: f64,
    /// Where the last 100 ms block ends: how far audio decoded.
    pub end: f64,
}

/// ebur128 writes running values on each 100 ms frame: integrated loudness and range are the
/// latest frame's, the true peak the highest of the per-channel maxima.
pub(super) fn loudness(frames: &[Frame]) -> Option<Loudness> {
    let latest = frames
        .iter()
        .filter(|f| f.get("lavfi.r128.I").is_some())
        .max_by(|a, b| {
            a.time
                .unwrap_or(f64::MIN)
                .total_cmp(&b.time.unwrap_or(f64::MIN))
        })?;
    let true_peak = frames
        .iter()
        .flat_map(|f| &f.entries)
        .filter(|(key, _)| key.starts_with("lavfi.r128.true_peaks_ch"))
        .filter_map(|(_, value)| number(value))
        .fold(0.0, f64::max);
    Some(Loudness {
        integrated: latest.number("lavfi.r128.I")?,
        range: latest.number("lavfi.r128.LRA").unwrap_or(0.0),
        true_peak,
        end: latest.time.unwrap_or(0.0) + 0.1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIDEO: &str = "\
frame:75   pts:38400   pts_time:3
lavfi.black_start=3
frame:125  pts:64000   pts_time:5
lavfi.freezedetect.freeze_start=3
frame:150  pts:76800   pts_time:6
lavfi.black_end=6
lavfi.freezedetect.freeze_duration=3
lavfi.freezedetect.freeze_end=6
frame:300  pts:153600  pts_time:12
lavfi.freezedetect.freeze_start=10
frame:350  pts:179200  pts_time:14
lavfi.freezedetect.freeze_duration=4
lavfi.freezedetect.freeze_end=14
";

    fn range(start: f64, end: f64) -> Range {
        Range { start, end }
    }

    #[test]
    fn segments_pair_starts_with_ends() {
        let frames = frames(VIDEO);
        assert_eq!(frames.len(), 5);
        assert_eq!(
            segments(&frames, "lavfi.black_start", "lavfi.black_end", 30.0),
            [range(3.0, 6.0)]
        );
        assert_eq!(
            segments(
                &frames,
                "lavfi.freezedetect.freeze_start",
                "lavfi.freezedetect.freeze_end",
                30.0
            ),
            [range(3.0, 6.0), range(10.0, 14.0)]
        );
    }

    #[test]
    fn the_order_of_blocks_does_not_matter() {
        let mut blocks: Vec<&str> = VIDEO.split_inclusive('\n').collect();
        // Move whole frames around: reverse the frame blocks.
        let mut grouped: Vec<String> = Vec::new();
        for line in blocks.drain(..) {
            if line.starts_with("frame:") {
                grouped.push(String::new());
            }
            grouped.last_mut().expect("a header first").push_str(line);
        }
        grouped.reverse();
        let shuffled = grouped.concat();
        let keys = (
            "lavfi.freezedetect.freeze_start",
            "lavfi.freezedetect.freeze_end",
        );
        assert_eq!(
            segments(&frames(&shuffled), keys.0, keys.1, 30.0),
            segments(&frames(VIDEO), keys.0, keys.1, 30.0)
        );
    }

    #[test]
    fn an_open_segment_lasts_until_the_end() {
        let text = "frame:1 pts:1 pts_time:8\nlavfi.silence_start=8.5\n";
        assert_eq!(
            segments(
                &frames(text),
                "lavfi.silence_start",
                "lavfi.silence_end",
                10.0
            ),
            [range(8.5, 10.0)]
        );
    }

    #[test]
    fn idet_verdicts_are_counted_and_frames_timed() {
        let text = "\
frame:1 pts:512 pts_time:0.04
lavfi.idet.multiple.current_frame=tff
frame:0 pts:0 pts_time:0
lavfi.idet.multiple.current_frame=progressive
frame:2 pts:1024 pts_time:0.08
lavfi.idet.multiple.current_frame=undetermined
";
        let (counts, times) = fields(&frames(text));
        assert_eq!(
            counts,
            FieldCounts {
                tff: 1,
                bff: 0,
                progressive: 1,
                undetermined: 1
            }
        );
        assert_eq!(counts.interlaced_ratio(), Some(0.5));
        assert_eq!(times, [0.0, 0.04, 0.08]);
    }

    #[test]
    fn loudness_is_the_latest_running_value_and_the_highest_peak() {
        let text = "\
frame:59 pts:283200 pts_time:5.9
lavfi.r128.I=-21.418
lavfi.r128.LRA=2.830
lavfi.r128.true_peaks_ch0=0.137
lavfi.r128.true_peaks_ch1=0.140
frame:3 pts:14400 pts_time:0.3
lavfi.r128.I=-70.000
lavfi.r128.LRA=0.000
lavfi.r128.true_peaks_ch0=0.101
";
        let found = loudness(&frames(text)).expect("loudness");
        assert_eq!(found.integrated, -21.418);
        assert_eq!(found.range, 2.83);
        assert_eq!(found.true_peak, 0.140);
        assert!((found.end - 6.0).abs() < 1e-9);
        assert_eq!(loudness(&frames("")), None);
    }
}
