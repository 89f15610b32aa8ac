//! Scene cuts: every frame is decoded once, in presentation order, and scored against the one
//! before ([`SceneScorer`], ffmpeg's scene score). A frame above the threshold is a cut; a cut
//! within `min_gap` of the one held is merged into it (the stronger stays); the held cut is
//! written once the gap has passed. At most `max_scenes` images are ever on disk: a stronger
//! cut replaces the weakest. At the end the kept cuts are renamed in time order and reported.

use ffmpeg_next::frame;
use serde::{Deserialize, Serialize};
use vidsnap_domain::{ErrorCode, FrameMode, ImageFormat, Quality};

use super::{
    Event, ExtractError, FrameRecord, frame_file_name,
    image::ImageWriter,
    measure::SceneScorer,
    round_micros,
    source::{Source, Timed},
};

/// What the parent asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenesSpec {
    pub input: std::path::PathBuf,
    pub out_dir: std::path::PathBuf,
    /// A frame scoring above this is a cut.
    pub threshold: f64,
    /// Seconds within which two cuts are one.
    pub min_gap: f64,
    pub max_scenes: usize,
    pub format: ImageFormat,
    pub quality: Quality,
    pub max_width: Option<u32>,
    pub rotation: u32,
}

/// A cut, as listed in the scenes manifest: a frames manifest entry with its score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneRecord {
    #[serde(flatten)]
    pub frame: FrameRecord,
    /// How different the frame is from the one before (0-1, ffmpeg's `scene`).
    pub score: f64,
}

/// A cut written to disk under a provisional name.
struct Kept {
    time: f64,
    score: f64,
    file: String,
    width: u32,
    height: u32,
    bytes: u64,
}

/// How often (seconds of video) progress is reported.
const PROGRESS_EVERY: f64 = 1.0;

pub(crate) fn run(
    spec: &ScenesSpec,
    emit: &mut dyn FnMut(Event) -> Result<(), ExtractError>,
) -> Result<(), ExtractError> {
    let mut source = Source::open(&spec.input, FrameMode::Exact)?;
    let mut scorer = SceneScorer::new();
    let mut store = Store {
        spec,
        writer: ImageWriter::new(spec.format, spec.quality, spec.max_width, spec.rotation),
        kept: Vec::new(),
        written: 0,
        dropped: 0,
    };
    // The cut waiting out `min_gap`, with its score, and the frame before the current one.
    let mut held: Option<(Timed, f64)> = None;
    let mut previous: Option<frame::Video> = None;
    let (mut frames, mut reported) = (0u64, 0.0);
    while let Some(shown) = source.next_frame()? {
        frames += 1;
        let score = scorer.score(previous.as_ref(), &shown.frame)?;
        if shown.time >= reported + PROGRESS_EVERY {
            reported = shown.time;
            emit(Event::Progress { time: shown.time })?;
        }
        if score > spec.threshold {
            held = match held.take() {
                Some((cut, cut_score)) if shown.time - cut.time < spec.min_gap => {
                    store.dropped += 1;
                    if score > cut_score {
                        Some((shown.clone(), score))
                    } else {
                        Some((cut, cut_score))
                    }
                }
                Some((cut, cut_score)) => {
                    store.keep(cut, cut_score)?;
                    Some((shown.clone(), score))
                }
                // Only cuts are copied: the frame is also the next one's `previous`.
                None => Some((shown.clone(), score)),
            };
        }
        previous = Some(shown.frame);
    }
    if frames == 0 {
        return Err(ExtractError::new(
            ErrorCode::CorruptInput,
            "no frame of the video could be decoded",
        ));
    }
    if let Some((last, score)) = held {
        store.keep(last, score)?;
    }
    let dropped = store.dropped;
    for scene in store.finish()? {
        emit(Event::Scene(scene))?;
    }
    emit(Event::Scanned { frames, dropped })
}

/// The cuts on disk, at most `max_scenes`.
struct Store<'a> {
    spec: &'a ScenesSpec,
    writer: ImageWriter,
    kept: Vec<Kept>,
    /// Images written so far, for provisional names that never repeat.
    written: usize,
    /// Cuts merged into a stronger one nearby, or pushed out by stronger ones.
    dropped: u64,
}

impl Store<'_> {
    fn keep(&mut self, cut: Timed, score: f64) -> Result<(), ExtractError> {
        let weakest = self
            .kept
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.score.total_cmp(&b.1.score))
            .map(|(i, k)| (i, k.score));
        if self.kept.len() >= self.spec.max_scenes {
            match weakest {
                Some((i, weakest)) if score > weakest => {
                    let out = self.kept.swap_remove(i);
                    let _ = std::fs::remove_file(self.spec.out_dir.join(out.file));
                }
                _ => {
                    self.dropped += 1;
                    return Ok(());
                }
            }
            self.dropped += 1;
        }
        self.written += 1;
        let file = format!("cut-{}.{}", self.written, self.spec.format.extension());
        let out = self
            .writer
            .write(cut.frame, &self.spec.out_dir.join(&file))?;
        self.kept.push(Kept {
            time: round_micros(cut.time),
            score,
            file,
            width: out.width,
            height: out.height,
            bytes: out.bytes,
        });
        Ok(())
    }

    /// The kept cuts in time order, renamed as frames are (`frame-000000_00-00-04.000.jpg`).
    fn finish(mut self) -> Result<Vec<SceneRecord>, ExtractError> {
        self.kept.sort_by(|a, b| a.time.total_cmp(&b.time));
        let mut scenes = Vec::with_capacity(self.kept.len());
        for (index, kept) in self.kept.into_iter().enumerate() {
            let file = frame_file_name(index, kept.time, self.spec.format);
            std::fs::rename(
                self.spec.out_dir.join(&kept.file),
                self.spec.out_dir.join(&file),
            )
            .map_err(|e| {
                ExtractError::new(
                    ErrorCode::OutputFailed,
                    format!("renaming {}: {e}", kept.file),
                )
            })?;
            scenes.push(SceneRecord {
                frame: FrameRecord {
                    index,
                    file,
                    requested_time: kept.time,
                    actual_time: kept.time,
                    width: kept.width,
                    height: kept.height,
                    bytes: kept.bytes,
                },
                score: (kept.score * 1e6).round() / 1e6,
            });
        }
        Ok(scenes)
    }
}
