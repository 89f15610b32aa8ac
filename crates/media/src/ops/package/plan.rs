//! What one video gets from a ladder, and the ffmpeg arguments that make it: pure, so every rule
//! (no upscaling, even sizes, the displayed aspect kept, rotation, frame-rate cap, mono) is
//! tested without running anything.

use std::ffi::OsString;

use serde::Serialize;
use vidsnap_domain::ops::{H264Profile, PackageOptions, Rung};

/// Frame rates above this are halved until they are not (120 -> 60, 100 -> 50): players and
/// phones decode H.264 up to 60 fps, and halving keeps the motion even.
pub(crate) const MAX_FRAME_RATE: f64 = 60.0;
/// Peaks stay within this share of the average bit rate (Apple's VOD rule: 110%).
const PEAK: f64 = 1.1;

/// The facts about a source that decide its renditions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SourceFacts {
    /// The video stream's index in the file.
    pub video: u32,
    /// Stored size in pixels.
    pub width: u32,
    pub height: u32,
    /// Sample (pixel) aspect ratio; 1 for square pixels.
    pub sample_aspect: f64,
    /// Clockwise degrees the picture is turned for display: 0, 90, 180 or 270.
    pub rotation: u32,
    pub frame_rate: Option<f64>,
    /// The whole file's bit rate (b/s), when known: no rendition gets more.
    pub bit_rate: Option<u64>,
    pub audio: Option<AudioFacts>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AudioFacts {
    pub index: u32,
    pub channels: u32,
    pub sample_rate: Option<u32>,
}

impl SourceFacts {
    /// The displayed picture's size: sample aspect applied to the width, then rotated.
    pub(crate) fn displayed(&self) -> (f64, f64) {
        let width = f64::from(self.width) * self.sample_aspect;
        let height = f64::from(self.height);
        if self.rotation % 180 == 90 {
            (height, width)
        } else {
            (width, height)
        }
    }
}

/// One video rendition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct VideoRendition {
    pub short_side: u32,
    /// Encoded size; the sample aspect the scaler sets keeps the displayed aspect exact.
    pub width: u32,
    pub height: u32,
    pub kbps: u32,
    pub profile: H264Profile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct AudioRendition {
    pub index: u32,
    pub channels: u32,
    pub kbps: u32,
    /// Set when the source's rate is above 48 kHz.
    pub sample_rate: Option<u32>,
}

/// Everything one run makes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub video_index: u32,
    pub rotation: u32,
    /// Largest first: representation `i` of the MPD is `video[i]`, audio comes after them.
    pub video: Vec<VideoRendition>,
    /// Set when the source's rate is capped.
    pub frame_rate: Option<f64>,
    /// The rate the renditions have, for the keyframe interval.
    pub output_rate: Option<f64>,
    pub audio: Option<AudioRendition>,
    pub segment: f64,
    pub preset: &'static str,
}

pub(crate) fn plan(options: &PackageOptions, source: &SourceFacts) -> Plan {
    let (frame_rate, output_rate) = match source.frame_rate {
        Some(rate) if rate > MAX_FRAME_RATE + 0.01 => {
            let mut capped = rate;
            while capped > MAX_FRAME_RATE + 0.01 {
                capped /= 2.0;
            }
            (Some(capped), Some(capped))
        }
        rate => (None, rate),
    };
    Plan {
        video_index: source.video,
        rotation: source.rotation,
        video: renditions(&options.ladder, source),
        frame_rate,
        output_rate,
        audio: source.audio.map(|audio| {
            let mono = audio.channels == 1;
            AudioRendition {
                index: audio.index,
                channels: if mono { 1 } else { 2 },
                kbps: if mono {
                    options.audio_kbps / 2
                } else {
                    options.audio_kbps
                },
                sample_rate: audio.sample_rate.filter(|r| *r > 48_000).map(|_| 48_000),
            }
        }),
        segment: options.segment,
        preset: options.preset.as_str(),
    }
}

/// The ladder's rungs that fit in the source, sized to its displayed aspect. A source smaller
/// than every rung gets one rendition at its own size with the smallest rung's settings.
fn renditions(ladder: &[Rung], source: &SourceFacts) -> Vec<VideoRendition> {
    let (width, height) = source.displayed();
    let short = width.min(height);
    let mut fitting: Vec<Rung> = ladder
        .iter()
        .filter(|rung| f64::from(rung.short_side) <= short + 0.5)
        .copied()
        .collect();
    if fitting.is_empty()
        && let Some(smallest) = ladder.iter().min_by_key(|rung| rung.short_side)
    {
        let own = ((short as u32) & !1).max(2);
        let area = (f64::from(own) / f64::from(smallest.short_side)).powi(2);
        fitting.push(Rung {
            short_side: own,
            kbps: ((f64::from(smallest.kbps) * area).round() as u32).max(50),
            profile: smallest.profile,
        });
    }
    let cap = source.bit_rate.map(|bps| (bps / 1000) as u32);
    fitting
        .into_iter()
        .map(|rung| {
            let long = even(f64::from(rung.short_side) * width.max(height) / short);
            let (w, h) = if width >= height {
                (long, rung.short_side)
            } else {
                (rung.short_side, long)
            };
            VideoRendition {
                short_side: rung.short_side,
                width: w,
                height: h,
                // More bits than the source has would only make the file larger.
                kbps: cap.map_or(rung.kbps, |cap| rung.kbps.min(cap.max(50))),
                profile: rung.profile,
            }
        })
        .collect()
}

/// The even number nearest to `x`, at least 2.
fn even(x: f64) -> u32 {
    (((x / 2.0).round() as u32) * 2).max(2)
}

impl Plan {
    /// The filter graph: one decoded picture turned upright (and its rate capped), then split
    /// into one scaled output `[v{i}]` per rendition.
    pub(crate) fn graph(&self) -> String {
        let mut chain = vec![format!("[0:{}]", self.video_index)];
        let mut filters: Vec<String> = match self.rotation {
            90 => vec!["transpose=clock".into()],
            180 => vec!["hflip".into(), "vflip".into()],
            270 => vec!["transpose=cclock".into()],
            _ => Vec::new(),
        };
        if let Some(rate) = self.frame_rate {
            filters.push(format!("fps={rate}"));
        }
        // H.264 in browsers is 8-bit 4:2:0; converted once, before the split.
        filters.push("format=yuv420p".into());
        let n = self.video.len();
        filters.push(format!("split={n}"));
        chain.push(filters.join(","));
        for i in 0..n {
            chain.push(format!("[s{i}]"));
        }
        let mut graph = chain.concat();
        for (i, rendition) in self.video.iter().enumerate() {
            graph.push_str(&format!(
                ";[s{i}]scale={}:{}[v{i}]",
                rendition.width, rendition.height
            ));
        }
        graph
    }

    /// Frames between keyframes x264 may choose itself: more than a segment, so that the
    /// forced ones at segment boundaries are the only ones.
    fn keyframe_interval(&self) -> u32 {
        let rate = self.output_rate.unwrap_or(MAX_FRAME_RATE);
        ((rate * self.segment).ceil() as u32 * 2).max(2)
    }

    /// ffmpeg's arguments after the input: the graph, the encoders, the muxer and its output,
    /// `manifest.mpd` in the current directory, segments in `stream{i}/`.
    pub(crate) fn output_args(&self) -> Vec<OsString> {
        let mut args: Vec<String> = vec!["-filter_complex".into(), self.graph()];
        for i in 0..self.video.len() {
            args.extend(["-map".into(), format!("[v{i}]")]);
        }
        if let Some(audio) = &self.audio {
            args.extend(["-map".into(), format!("0:{}", audio.index)]);
        }
        let seg = self.segment;
        args.extend(
            [
                "-map_metadata",
                "-1",
                "-map_chapters",
                "-1",
                "-c:v",
                "libx264",
                "-preset:v",
                self.preset,
                "-sc_threshold:v",
                "0",
                "-flags:v",
                "+cgop",
                "-forced-idr:v",
                "1",
            ]
            .map(str::to_owned),
        );
        args.extend([
            "-g:v".into(),
            self.keyframe_interval().to_string(),
            "-force_key_frames:v".into(),
            format!("expr:gte(t,n_forced*{seg})"),
        ]);
        for (i, r) in self.video.iter().enumerate() {
            let peak = (f64::from(r.kbps) * PEAK).round() as u32;
            args.extend([
                format!("-b:v:{i}"),
                format!("{}k", r.kbps),
                format!("-maxrate:v:{i}"),
                format!("{peak}k"),
                format!("-bufsize:v:{i}"),
                format!("{}k", r.kbps * 2),
                format!("-profile:v:{i}"),
                r.profile.as_str().to_owned(),
            ]);
        }
        let mut sets = "id=0,streams=v".to_owned();
        if let Some(audio) = &self.audio {
            args.extend([
                "-c:a".into(),
                "aac".into(),
                "-b:a".into(),
                format!("{}k", audio.kbps),
                "-ac".into(),
                audio.channels.to_string(),
            ]);
            if let Some(rate) = audio.sample_rate {
                args.extend(["-ar".into(), rate.to_string()]);
            }
            sets.push_str(" id=1,streams=a");
        }
        args.extend([
            // Several encoders start at different times (x264's lookahead): let the muxer wait.
            "-max_muxing_queue_size".into(),
            "4096".into(),
            "-f".into(),
            "dash".into(),
            "-seg_duration".into(),
            seg.to_string(),
            "-use_template".into(),
            "1".into(),
            // Each representation's own segments, with their real durations: a template
            // alone makes players count segments from the presentation's duration, which the
            // audio's last AAC frame can push past the video's last segment (a request for a
            // segment that does not exist).
            "-use_timeline".into(),
            "1".into(),
            "-adaptation_sets".into(),
            sets,
            "-hls_playlist".into(),
            "1".into(),
            "-init_seg_name".into(),
            format!("{STREAM_DIR}$RepresentationID$/{INIT}"),
            "-media_seg_name".into(),
            format!("{STREAM_DIR}$RepresentationID$/seg-$Number%05d$.m4s"),
            MPD.into(),
        ]);
        args.into_iter().map(OsString::from).collect()
    }

    /// How many representations (video and audio) the MPD has.
    pub(crate) fn streams(&self) -> usize {
        self.video.len() + usize::from(self.audio.is_some())
    }
}

/// The DASH manifest, the HLS master playlist and the variant playlists as ffmpeg's `dash`
/// muxer names them; each representation's segments are in `stream{i}/`.
pub(crate) const MPD: &str = "manifest.mpd";
pub(crate) const MASTER: &str = "master.m3u8";
pub(crate) const STREAM_DIR: &str = "stream";
pub(crate) const INIT: &str = "init.mp4";

pub(crate) fn variant_playlist(stream: usize) -> String {
    format!("media_{stream}.m3u8")
}

#[cfg(test)]
mod tests {
    use vidsnap_domain::ops::PackageOptions;

    use super::*;

    fn source(width: u32, height: u32) -> SourceFacts {
        SourceFacts {
            video: 0,
            width,
            height,
            sample_aspect: 1.0,
            rotation: 0,
            frame_rate: Some(30.0),
            bit_rate: None,
            audio: Some(AudioFacts {
                index: 1,
                channels: 2,
                sample_rate: Some(48_000),
            }),
        }
    }

    fn sizes(plan: &Plan) -> Vec<(u32, u32)> {
        plan.video.iter().map(|r| (r.width, r.height)).collect()
    }

    #[test]
    fn a_1080p_source_gets_the_whole_default_ladder() {
        let plan = plan(&PackageOptions::default(), &source(1920, 1080));
        assert_eq!(
            sizes(&plan),
            [(1920, 1080), (1280, 720), (854, 480), (640, 360)]
        );
        assert_eq!(plan.frame_rate, None);
        assert_eq!(plan.audio.map(|a| (a.channels, a.kbps)), Some((2, 128)));
    }

    #[test]
    fn nothing_is_upscaled() {
        let plan = plan(&PackageOptions::default(), &source(854, 480));
        assert_eq!(sizes(&plan), [(854, 480), (640, 360)]);
        let odd = plan_of(1279, 719);
        assert_eq!(odd, [(854, 480), (640, 360)], "719 lines are not 720");
    }

    fn plan_of(width: u32, height: u32) -> Vec<(u32, u32)> {
        sizes(&plan(&PackageOptions::default(), &source(width, height)))
    }

    #[test]
    fn a_source_below_every_rung_gets_its_own_size() {
        let plan = plan(&PackageOptions::default(), &source(320, 240));
        assert_eq!(sizes(&plan), [(320, 240)]);
        assert_eq!(plan.video[0].short_side, 240);
        assert_eq!(plan.video[0].kbps, 356, "360p's 800 kb/s scaled by area");
    }

    #[test]
    fn portrait_and_rotated_sources_are_named_by_their_short_side() {
        assert_eq!(plan_of(1080, 1920)[1], (720, 1280));
        let mut rotated = source(1920, 1080);
        rotated.rotation = 90;
        let plan = plan(&PackageOptions::default(), &rotated);
        assert_eq!(sizes(&plan)[1], (720, 1280));
        assert!(
            plan.graph()
                .starts_with("[0:0]transpose=clock,format=yuv420p,split=4")
        );
        rotated.rotation = 270;
        let graph = super::plan(&PackageOptions::default(), &rotated).graph();
        assert!(graph.contains("transpose=cclock"), "{graph}");
    }

    #[test]
    fn sizes_are_even_and_keep_the_displayed_aspect_within_one_percent() {
        for (w, h, sar) in [
            (1920, 1080, 1.0),
            (1440, 1080, 4.0 / 3.0),
            (720, 576, 64.0 / 45.0),
            (1000, 1000, 1.0),
            (2048, 858, 1.0),
            (1080, 1350, 1.0),
        ] {
            let mut facts = source(w, h);
            facts.sample_aspect = sar;
            let (dw, dh) = facts.displayed();
            for r in plan(&PackageOptions::default(), &facts).video {
                assert!(r.width % 2 == 0 && r.height % 2 == 0, "{r:?}");
                assert_eq!(r.width.min(r.height), r.short_side);
                let error = (f64::from(r.width) / f64::from(r.height)) / (dw / dh) - 1.0;
                assert!(
                    error.abs() < 0.01,
                    "{w}x{h} sar {sar}: {r:?} off by {error}"
                );
            }
        }
    }

    #[test]
    fn frame_rates_above_sixty_are_halved() {
        for (rate, expected) in [(120.0, Some(60.0)), (100.0, Some(50.0)), (60.0, None)] {
            let mut facts = source(1280, 720);
            facts.frame_rate = Some(rate);
            let plan = plan(&PackageOptions::default(), &facts);
            assert_eq!(plan.frame_rate, expected, "{rate}");
        }
        let mut fast = source(1280, 720);
        fast.frame_rate = Some(119.88);
        let graph = plan(&PackageOptions::default(), &fast).graph();
        assert!(graph.contains("fps=59.94"), "{graph}");
    }

    #[test]
    fn mono_stays_mono_at_half_the_rate_and_no_audio_is_none() {
        let mut facts = source(640, 360);
        facts.audio = Some(AudioFacts {
            index: 1,
            channels: 1,
            sample_rate: Some(96_000),
        });
        let plan = plan(&PackageOptions::default(), &facts);
        let audio = plan.audio.expect("audio");
        assert_eq!(
            (audio.channels, audio.kbps, audio.sample_rate),
            (1, 64, Some(48_000))
        );
        facts.audio = None;
        let silent = super::plan(&PackageOptions::default(), &facts);
        assert_eq!(silent.audio, None);
        let args: Vec<String> = silent
            .output_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.contains(&"id=0,streams=v".to_owned()), "{args:?}");
        assert!(!args.iter().any(|a| a == "-c:a"), "{args:?}");
    }

    #[test]
    fn no_rendition_gets_more_bits_than_the_source() {
        let mut facts = source(1920, 1080);
        facts.bit_rate = Some(2_000_000);
        let kbps: Vec<u32> = plan(&PackageOptions::default(), &facts)
            .video
            .iter()
            .map(|r| r.kbps)
            .collect();
        assert_eq!(kbps, [2000, 2000, 1400, 800]);
    }

    #[test]
    fn keyframes_are_forced_at_every_segment_boundary() {
        let options = PackageOptions {
            segment: 2.0,
            ..PackageOptions::default()
        };
        let args: Vec<String> = plan(&options, &source(1280, 720))
            .output_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let after = |flag: &str| {
            let at = args.iter().position(|a| a == flag).expect(flag);
            args[at + 1].clone()
        };
        assert_eq!(after("-force_key_frames:v"), "expr:gte(t,n_forced*2)");
        assert_eq!(after("-sc_threshold:v"), "0");
        assert_eq!(after("-g:v"), "120", "two segments at 30 fps");
        assert_eq!(after("-seg_duration"), "2");
        assert_eq!(after("-use_timeline"), "1");
        assert!(
            !args.iter().any(|a| a.contains("cmaf")),
            "ffmpeg 5.1's +cmaf drops the edit lists, delaying video against audio"
        );
        assert_eq!(after("-adaptation_sets"), "id=0,streams=v id=1,streams=a");
        assert_eq!(after("-b:v:1"), "1400k");
        assert_eq!(after("-maxrate:v:1"), "1540k");
        assert_eq!(after("-profile:v:0"), "high");
        assert_eq!(args.last().map(String::as_str), Some(MPD));
    }
}
