//! Frame extraction with the FFmpeg libraries, run inside a child process.
//!
//! Decoding untrusted files in-process is fast (no process per frame, no wasted decoding) but a
//! decoder crash or hang must end one job, not its caller, so this code only ever runs in a child
//! (`vidsnap internal-extract`), started by [`crate::frames`] through the process runner. The
//! parent writes a [`Job`] as JSON to the child's stdin; the child writes one [`Event`] per JSON
//! line to stdout as each frame lands on disk, which is what drives progress.
//!
//! - `source`: the demux/decode cursor that finds the frame for each target time.
//! - `image`: rotation, scaling, pixel-format conversion and image encoding.
//! - `measure`: scene scores and a poster candidate's measures, from the pixels.
//! - `storyboard`: tiles pasted onto sprite sheets; `scenes`: one pass scoring every frame.

mod image;
mod measure;
mod scenes;
mod source;
mod storyboard;

pub use measure::FrameMetrics;
pub use scenes::{SceneRecord, ScenesSpec};
pub use storyboard::{SpriteRecord, StoryboardSpec, TileRecord};

use std::{
    io::{self, BufRead, Read, Write},
    path::{Path, PathBuf},
    process::ExitCode,
};

use serde::{Deserialize, Serialize};
use vidsnap_domain::{ErrorCode, FrameMode, ImageFormat, Quality, TargetTimes};

/// What the parent asks the child to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    /// An image per target time: [`Event::Frame`] each.
    Frames(ExtractSpec),
    /// As `Frames` (exact mode), each frame also measured against the frame after it:
    /// [`Event::Candidate`] each.
    Candidates(ExtractSpec),
    /// Tiles on sprite sheets: [`Event::Progress`] per tile, [`Event::Sprite`] per sheet.
    Storyboard(StoryboardSpec),
    /// Every frame scored: [`Event::Progress`] now and then, [`Event::Scene`] per cut kept
    /// (at the end, in time order), then [`Event::Scanned`].
    Scenes(ScenesSpec),
}

impl Job {
    /// How many frames the child must report for the run to be whole (`None`: as many as it
    /// finds).
    pub fn expected(&self) -> Option<u64> {
        match self {
            Self::Frames(spec) | Self::Candidates(spec) => Some(spec.targets.len()),
            Self::Storyboard(spec) => Some(spec.targets.len()),
            Self::Scenes(_) => None,
        }
    }
}

/// The frames of a [`Job::Frames`] or [`Job::Candidates`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtractSpec {
    pub input: PathBuf,
    /// Where the images are written; the parent owns and removes it.
    pub out_dir: PathBuf,
    /// Seconds from the container's start, ascending.
    pub targets: Targets,
    pub mode: FrameMode,
    pub format: ImageFormat,
    pub quality: Quality,
    pub max_width: Option<u32>,
    /// Clockwise degrees the picture is turned for display (from the probe).
    pub rotation: u32,
}

/// The times to extract: given one by one, or every N seconds (generated as they are needed,
/// however many there are).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Targets {
    At(Vec<f64>),
    Every(TargetTimes),
}

impl Targets {
    pub fn len(&self) -> u64 {
        match self {
            Self::At(times) => times.len() as u64,
            Self::Every(times) => times.total(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn times(&self) -> Box<dyn Iterator<Item = f64> + '_> {
        match self {
            Self::At(times) => Box::new(times.iter().copied()),
            Self::Every(times) => Box::new(*times),
        }
    }
}

/// One extracted frame, as listed in the zip's `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameRecord {
    pub index: usize,
    /// File name inside the zip (and inside `out_dir` while extracting).
    pub file: String,
    /// The target time, seconds from the start.
    pub requested_time: f64,
    /// The presentation time of the frame written, seconds from the start.
    pub actual_time: f64,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

/// A poster candidate: the frame written, and its measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    #[serde(flatten)]
    pub frame: FrameRecord,
    pub metrics: FrameMetrics,
}

/// One line of the child's stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    Frame(FrameRecord),
    Candidate(Candidate),
    Sprite(SpriteRecord),
    Scene(SceneRecord),
    /// Decoding reached `time` (seconds from the start).
    Progress {
        time: f64,
    },
    /// A scan ended: frames decoded, cuts above the threshold left out.
    Scanned {
        frames: u64,
        dropped: u64,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}

/// A failure inside the child, with the code the parent will report.
#[derive(Debug)]
pub(crate) struct ExtractError {
    pub code: ErrorCode,
    pub message: String,
}

impl ExtractError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::CorruptInput, format!("{what}: {e}"))
    }
}

/// `frame-000003_00-00-30.000.jpg`: the index keeps names in time order, the time is for people.
pub fn frame_file_name(index: usize, requested_time: f64, format: ImageFormat) -> String {
    let millis = (requested_time * 1000.0).round() as u64;
    let (h, m, s, ms) = (
        millis / 3_600_000,
        millis / 60_000 % 60,
        millis / 1000 % 60,
        millis % 1000,
    );
    format!(
        "frame-{index:06}_{h:02}-{m:02}-{s:02}.{ms:03}.{}",
        format.extension()
    )
}

/// The child's entry point: reads the spec from stdin, extracts, reports on stdout.
pub fn child_main() -> ExitCode {
    let mut input = String::new();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let result = io::stdin()
        .lock()
        .read_to_string(&mut input)
        .map_err(|e| ExtractError::new(ErrorCode::Internal, format!("reading spec: {e}")))
        .and_then(|_| {
            serde_json::from_str::<Job>(&input)
                .map_err(|e| ExtractError::new(ErrorCode::Internal, format!("bad spec: {e}")))
        })
        .and_then(|job| {
            run(&job, &mut |event| {
                emit(&mut out, &event)
                    .map_err(|e| ExtractError::new(ErrorCode::Internal, format!("stdout: {e}")))
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = emit(
                &mut out,
                &Event::Error {
                    code: error.code,
                    message: error.message,
                },
            );
            ExitCode::from(3)
        }
    }
}

fn emit(out: &mut impl Write, event: &Event) -> io::Result<()> {
    serde_json::to_writer(&mut *out, event)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Parses one stdout line of the child.
pub fn parse_event(line: &str) -> Result<Event, serde_json::Error> {
    serde_json::from_str(line.trim())
}

fn run(
    job: &Job,
    emit: &mut dyn FnMut(Event) -> Result<(), ExtractError>,
) -> Result<(), ExtractError> {
    ffmpeg_next::init().map_err(|e| ExtractError::new(ErrorCode::Internal, e.to_string()))?;
    ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
    match job {
        Job::Frames(spec) => extract(spec, false, emit),
        Job::Candidates(spec) => extract(spec, true, emit),
        Job::Storyboard(spec) => storyboard::run(spec, emit),
        Job::Scenes(spec) => scenes::run(spec, emit),
    }
}

/// An image per target; `measure`d candidates are decoded in exact mode whatever the spec says
/// (their measures need the frame after them).
fn extract(
    spec: &ExtractSpec,
    measure: bool,
    emit: &mut dyn FnMut(Event) -> Result<(), ExtractError>,
) -> Result<(), ExtractError> {
    let mode = if measure { FrameMode::Exact } else { spec.mode };
    let mut source = source::Source::open(&spec.input, mode)?;
    let mut writer =
        image::ImageWriter::new(spec.format, spec.quality, spec.max_width, spec.rotation);
    let mut meter = measure.then(measure::Meter::new);
    for (index, target) in spec.targets.times().enumerate() {
        let Some(frame) = source.frame_at(target)? else {
            return Err(ExtractError::new(
                ErrorCode::CorruptInput,
                "no frame of the video could be decoded",
            ));
        };
        // Measured first, on a copy: writing hands the frame's buffers to the encoder's graph.
        let metrics = match meter.as_mut() {
            Some(meter) => {
                let next = source.following()?.map(|n| n.frame);
                Some(meter.measure(frame.frame.clone(), next)?)
            }
            None => None,
        };
        let file = frame_file_name(index, target, spec.format);
        let path = spec.out_dir.join(&file);
        let written = writer.write(frame.frame, &path)?;
        let record = FrameRecord {
            index,
            file,
            requested_time: target,
            actual_time: round_micros(frame.time),
            width: written.width,
            height: written.height,
            bytes: written.bytes,
        };
        emit(match metrics {
            Some(metrics) => Event::Candidate(Candidate {
                frame: record,
                metrics,
            }),
            None => Event::Frame(record),
        })?;
    }
    Ok(())
}

fn round_micros(seconds: f64) -> f64 {
    (seconds * 1e6).round() / 1e6
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ExtractError> {
    std::fs::write(path, bytes).map_err(|e| {
        ExtractError::new(
            ErrorCode::OutputFailed,
            format!("writing {}: {e}", path.display()),
        )
    })
}

/// Reads events from any line source; used by tests of the protocol.
pub fn read_events(reader: impl BufRead) -> Vec<Event> {
    reader
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| parse_event(&l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_time() {
        let names: Vec<String> = [0.0, 10.0, 60.0, 3600.5, 36000.0]
            .iter()
            .enumerate()
            .map(|(i, t)| frame_file_name(i, *t, ImageFormat::Jpg))
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(names[3], "frame-000003_01-00-00.500.jpg");
    }

    #[test]
    fn events_round_trip() {
        let line = r#"{"error":{"code":"corrupt-input","message":"x"}}"#;
        assert!(matches!(
            parse_event(line),
            Ok(Event::Error {
                code: ErrorCode::CorruptInput,
                ..
            })
        ));
    }
}
