//! `smart_thumbnail`: the extractor child writes and measures `candidates` frames, one at the
//! middle of each equal part of the video (never the very first or last frame, where black and
//! fades are), each measured against the frame after it; this side scores them and keeps the
//! best as `thumbnail.{ext}`, with `smart-thumbnail.json` listing every candidate and why the
//! one chosen won.
//!
//! The score is a product of factors from 0 to 1, so a frame must be good on all of them:
//! - sharpness `s / (s + 100)`, `s` the Laplacian variance (blur and flat cards are low);
//! - contrast `c / (c + 0.05)`, `c` the standard deviation of brightness;
//! - exposure `1 - (2b - 1)²`, `b` the mean brightness (mid-grey is best, black and white 0);
//! - steadiness `1 / (1 + fade / 0.01 + change / 0.1)`: a frame inside a fade (its brightness
//!   moving) or a dissolve, cut or whip (far from the next frame) is a poor poster.
//!
//! A candidate darker than `black_threshold` is `black`, one with almost no contrast `flat`:
//! neither is chosen while another candidate is neither.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::json;
use vidsnap_domain::{FrameMode, ops::SmartThumbnailOptions};

use super::{JSON, OpInput, OpOutput, Produced};
use crate::{
    MediaEngine, MediaError, Progress,
    extract::{Candidate, Event, ExtractSpec, FrameMetrics, Job, Targets},
    frames::{Percent, Source},
};

/// Below this contrast (standard deviation of brightness, 0-0.5) a picture is one flat colour.
const FLAT_CONTRAST: f64 = 0.02;

/// Why a candidate may not be chosen while another may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    Black,
    Flat,
}

/// Each factor of the score, 0-1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Factors {
    pub sharpness: f64,
    pub contrast: f64,
    pub exposure: f64,
    pub steadiness: f64,
}

impl Factors {
    fn of(m: &FrameMetrics) -> Self {
        Self {
            sharpness: m.sharpness / (m.sharpness + 100.0),
            contrast: m.contrast / (m.contrast + 0.05),
            exposure: (1.0 - (2.0 * m.brightness - 1.0).powi(2)).max(0.0),
            steadiness: 1.0 / (1.0 + m.fade / 0.01 + m.change / 0.1),
        }
    }

    fn product(&self) -> f64 {
        self.sharpness * self.contrast * self.exposure * self.steadiness
    }
}

/// A candidate as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub index: usize,
    pub requested_time: f64,
    pub actual_time: f64,
    pub metrics: FrameMetrics,
    pub factors: Factors,
    pub score: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Rejection>,
}

/// `smart-thumbnail.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PosterManifest {
    pub source: Source,
    /// The index of the candidate kept as the thumbnail.
    pub chosen: usize,
    pub why: String,
    pub black_threshold: f64,
    pub candidates: Vec<Scored>,
}

pub(super) async fn run(
    engine: &MediaEngine,
    options: &SmartThumbnailOptions,
    input: &OpInput,
    work: &Path,
    progress: &dyn Progress,
) -> Result<OpOutput, MediaError> {
    let probe = engine.accept(&input.path, &input.file_name).await?;
    let duration = probe.duration.unwrap_or(0.0);
    let times = candidate_times(duration, options.candidates);
    let total = times.len();
    progress.started(total);
    let mut percent = Percent::new(progress, total);
    let dir = work.join("candidates");
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| MediaError::io("creating", &dir, e))?;

    let job = Job::Candidates(ExtractSpec {
        input: std::path::absolute(&input.path)
            .map_err(|e| MediaError::io("resolving", &input.path, e))?,
        out_dir: dir.clone(),
        targets: Targets::At(times),
        mode: FrameMode::Exact,
        format: options.format,
        quality: options.quality,
        max_width: options.max_width,
        rotation: probe.video().and_then(|v| v.rotation).unwrap_or(0),
    });
    let mut child = engine.start_job(&job, duration).await?;
    let mut candidates = Vec::with_capacity(total);
    while let Some(event) = child.next_event().await? {
        if let Event::Candidate(candidate) = event {
            candidates.push(candidate);
            percent.frames_done(candidates.len());
        }
    }
    child.finish().await?;

    let (chosen, why, scored) = rank(&candidates, options.black_threshold)
        .ok_or_else(|| MediaError::Internal("the extractor measured no candidate".into()))?;
    let winner = &candidates[chosen].frame;
    let extension = options.format.extension();
    let thumbnail = work.join(format!("thumbnail.{extension}"));
    let image = dir.join(&winner.file);
    tokio::fs::rename(&image, &thumbnail)
        .await
        .map_err(|e| MediaError::io("moving", &image, e))?;
    let _ = tokio::fs::remove_dir_all(&dir).await;

    let manifest = PosterManifest {
        source: Source {
            file_name: input.file_name.clone(),
            probe,
        },
        chosen,
        why,
        black_threshold: options.black_threshold,
        candidates: scored,
    };
    let manifest_path = work.join("smart-thumbnail.json");
    let bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| MediaError::Internal(format!("manifest: {e}")))?;
    tokio::fs::write(&manifest_path, bytes)
        .await
        .map_err(|e| MediaError::io("writing", &manifest_path, e))?;
    progress.percent(100);
    let best = &manifest.candidates[chosen];
    Ok(OpOutput {
        produced: vec![
            Produced {
                name: "thumbnail".into(),
                path: thumbnail,
                file_name: format!("thumbnail.{extension}"),
                content_type: options.format.mime_type().into(),
            },
            Produced {
                name: "manifest".into(),
                path: manifest_path,
                file_name: "smart-thumbnail.json".into(),
                content_type: JSON.into(),
            },
        ],
        result: Some(json!({
            "chosen": chosen,
            "frame_time": best.actual_time,
            "score": best.score,
            "why": manifest.why,
            "width": winner.width,
            "height": winner.height,
            "probe": manifest.source,
        })),
    })
}

/// The middles of `count` equal parts of the video (one at 0 when it has no duration).
fn candidate_times(duration: f64, count: u32) -> Vec<f64> {
    if duration <= 0.0 {
        return vec![0.0];
    }
    let part = duration / f64::from(count.max(1));
    (0..count.max(1))
        .map(|i| ((f64::from(i) + 0.5) * part * 1e6).round() / 1e6)
        .collect()
}

fn rounded(value: f64) -> f64 {
    (value * 1e4).round() / 1e4
}

/// Every candidate scored, the one to keep and why; `None` when there are none.
fn rank(candidates: &[Candidate], black_threshold: f64) -> Option<(usize, String, Vec<Scored>)> {
    let scored: Vec<Scored> = candidates
        .iter()
        .enumerate()
        .map(|(index, c)| {
            let m = c.metrics;
            let factors = Factors::of(&m);
            let rejected = if m.brightness < black_threshold {
                Some(Rejection::Black)
            } else if m.contrast < FLAT_CONTRAST {
                Some(Rejection::Flat)
            } else {
                None
            };
            Scored {
                index,
                requested_time: c.frame.requested_time,
                actual_time: c.frame.actual_time,
                metrics: FrameMetrics {
                    brightness: rounded(m.brightness),
                    contrast: rounded(m.contrast),
                    sharpness: rounded(m.sharpness),
                    change: rounded(m.change),
                    fade: rounded(m.fade),
                },
                factors: Factors {
                    sharpness: rounded(factors.sharpness),
                    contrast: rounded(factors.contrast),
                    exposure: rounded(factors.exposure),
                    steadiness: rounded(factors.steadiness),
                },
                score: rounded(factors.product()),
                rejected,
            }
        })
        .collect();
    // The first of equals: the earlier frame.
    let best = |pool: &[&Scored]| {
        pool.iter()
            .copied()
            .reduce(|a, b| if b.score > a.score { b } else { a })
            .map(|s| s.index)
    };
    let eligible: Vec<&Scored> = scored.iter().filter(|s| s.rejected.is_none()).collect();
    let count = |why: Rejection| scored.iter().filter(|s| s.rejected == Some(why)).count();
    let (black, flat) = (count(Rejection::Black), count(Rejection::Flat));
    let why = |chosen: &Scored| {
        if eligible.is_empty() {
            return format!(
                "every candidate is black or flat ({black} black, {flat} flat): the one with the \
                 highest score ({}) is kept",
                chosen.score
            );
        }
        let mut reasons = Vec::new();
        let first_in = |key: fn(&Factors) -> f64| {
            eligible
                .iter()
                .all(|other| key(&other.factors) <= key(&chosen.factors))
        };
        for (key, trait_name) in [
            (
                (|f: &Factors| f.sharpness) as fn(&Factors) -> f64,
                "the sharpest",
            ),
            (|f: &Factors| f.contrast, "the most contrasted"),
            (|f: &Factors| f.exposure, "the best exposed"),
            (|f: &Factors| f.steadiness, "the steadiest"),
        ] {
            if first_in(key) {
                reasons.push(trait_name);
            }
        }
        let traits = if reasons.is_empty() {
            "the best balance of sharpness, contrast, exposure and steadiness".to_owned()
        } else {
            format!("{} of them", reasons.join(", "))
        };
        let left_out = match (black, flat) {
            (0, 0) => String::new(),
            _ => format!(" ({black} black and {flat} flat left out)"),
        };
        format!(
            "the highest score ({}) of the {} candidates neither black nor flat{left_out}: {traits}",
            chosen.score,
            eligible.len()
        )
    };
    let chosen = best(&eligible).or_else(|| best(&scored.iter().collect::<Vec<_>>()))?;
    let why = why(&scored[chosen]);
    Some((chosen, why, scored))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::FrameRecord;

    fn candidate(index: usize, brightness: f64, contrast: f64, sharpness: f64) -> Candidate {
        Candidate {
            frame: FrameRecord {
                index,
                file: format!("c{index}.jpg"),
                requested_time: index as f64,
                actual_time: index as f64,
                width: 64,
                height: 48,
                bytes: 1,
            },
            metrics: FrameMetrics {
                brightness,
                contrast,
                sharpness,
                change: 0.01,
                fade: 0.0,
            },
        }
    }

    #[test]
    fn candidates_sit_in_the_middle_of_equal_parts() {
        assert_eq!(candidate_times(10.0, 5), [1.0, 3.0, 5.0, 7.0, 9.0]);
        assert_eq!(candidate_times(10.0, 1), [5.0]);
        assert_eq!(candidate_times(0.0, 10), [0.0]);
    }

    #[test]
    fn black_and_flat_frames_lose_to_any_other() {
        let candidates = [
            candidate(0, 0.02, 0.01, 1.0),   // black
            candidate(1, 0.5, 0.005, 0.5),   // a grey card
            candidate(2, 0.3, 0.1, 20.0),    // dull but a picture
            candidate(3, 0.06, 0.3, 5000.0), // sharp, but black
        ];
        let (chosen, why, scored) = rank(&candidates, 0.1).expect("ranked");
        assert_eq!(chosen, 2);
        assert_eq!(scored[0].rejected, Some(Rejection::Black));
        assert_eq!(scored[1].rejected, Some(Rejection::Flat));
        assert_eq!(scored[3].rejected, Some(Rejection::Black));
        assert!(why.contains("2 black and 1 flat left out"), "{why}");
    }

    #[test]
    fn the_sharper_of_two_like_frames_wins_and_says_so() {
        let candidates = [
            candidate(0, 0.45, 0.2, 30.0),
            candidate(1, 0.45, 0.2, 900.0),
        ];
        let (chosen, why, scored) = rank(&candidates, 0.1).expect("ranked");
        assert_eq!(chosen, 1);
        assert!(scored[1].score > scored[0].score);
        assert!(why.contains("the sharpest"), "{why}");
    }

    #[test]
    fn a_fading_frame_loses_to_a_steady_one() {
        let mut fading = candidate(0, 0.45, 0.2, 500.0);
        fading.metrics.fade = 0.02;
        let steady = candidate(1, 0.45, 0.2, 500.0);
        let (chosen, why, _) = rank(&[fading, steady], 0.1).expect("ranked");
        assert_eq!(chosen, 1);
        assert!(why.contains("the steadiest"), "{why}");
    }

    #[test]
    fn when_everything_is_black_the_least_bad_is_kept() {
        let candidates = [candidate(0, 0.01, 0.0, 0.0), candidate(1, 0.05, 0.03, 10.0)];
        let (chosen, why, _) = rank(&candidates, 0.1).expect("ranked");
        assert_eq!(chosen, 1);
        assert!(why.starts_with("every candidate is black or flat"), "{why}");
        assert_eq!(rank(&[], 0.1), None);
    }
}
