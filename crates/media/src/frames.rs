//! `frames`: a video in, `{stem}-images.zip` (frames + `manifest.json`) and `{stem}-image.{ext}`
//! (the first frame) out, both published atomically beside each other.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vidsnap_domain::{ErrorCode, FrameInterval, FrameMode, ImageFormat, Quality, target_times};

use crate::{
    MediaEngine, MediaError,
    archive::{self, Archive},
    extract::{self, Event, ExtractSpec, FrameRecord},
    probe::Probe,
    runner::Invocation,
    workdir::WorkDir,
};

/// What to extract and where to put it.
#[derive(Debug, Clone)]
pub struct FramesRequest {
    pub input: PathBuf,
    /// Where the zip and the thumbnail are published.
    pub out_dir: PathBuf,
    pub interval: FrameInterval,
    pub mode: FrameMode,
    pub format: ImageFormat,
    pub quality: Quality,
    /// Frames wider than this (after rotation) are scaled down, keeping the aspect ratio.
    pub max_width: Option<u32>,
}

/// `manifest.json` at the root of the zip.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub source: Source,
    /// Seconds between targets.
    pub interval: f64,
    pub mode: FrameMode,
    pub format: ImageFormat,
    pub frames: Vec<FrameRecord>,
}

/// The probe summary of the video the frames came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Source {
    pub file_name: String,
    #[serde(flatten)]
    pub probe: Probe,
}

/// What a successful run published.
#[derive(Debug, Clone, Serialize)]
pub struct FramesOutput {
    pub zip: PathBuf,
    pub zip_bytes: u64,
    pub thumbnail: PathBuf,
    pub manifest: Manifest,
}

/// Observes a run; called from the run's task.
pub trait Progress: Send + Sync {
    /// The input was accepted and `total` frames will be extracted.
    fn started(&self, _total: usize) {}
    /// One more frame is in the zip.
    fn frame(&self, _record: &FrameRecord) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;
impl Progress for Silent {}

/// The published names for a video: `{stem}-images.zip` and `{stem}-image.{ext}`.
pub fn output_names(input: &Path, format: ImageFormat) -> (String, String) {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "video".into());
    (
        format!("{stem}-images.zip"),
        format!("{stem}-image.{}", format.extension()),
    )
}

impl MediaEngine {
    /// Validates the input, extracts one frame per target time and publishes the zip and the
    /// thumbnail. On any failure or cancellation nothing is published and nothing is left behind.
    pub async fn extract_frames(
        &self,
        request: &FramesRequest,
        progress: &dyn Progress,
    ) -> Result<FramesOutput, MediaError> {
        let inspection = self.inspect(&request.input).await?;
        inspection.verdict.clone().into_result()?;
        let probe = inspection
            .probe
            .ok_or_else(|| MediaError::Internal("accepted without a probe".into()))?;
        let duration = probe.duration.unwrap_or(0.0);
        let targets = target_times(duration, request.interval);
        let rotation = probe.video().and_then(|v| v.rotation).unwrap_or(0);
        progress.started(targets.len());

        let (zip_name, thumb_name) = output_names(&request.input, request.format);
        tokio::fs::create_dir_all(&request.out_dir)
            .await
            .map_err(|e| MediaError::io("creating", &request.out_dir, e))?;
        let zip_path = request.out_dir.join(zip_name);
        let thumbnail_path = request.out_dir.join(thumb_name);

        let work = WorkDir::create(self.config.temp_dir.as_deref())?;
        let mut archive = Archive::create(&zip_path)?;
        let spec = ExtractSpec {
            input: std::path::absolute(&request.input)
                .map_err(|e| MediaError::io("resolving", &request.input, e))?,
            out_dir: work.path().to_path_buf(),
            targets: targets.clone(),
            mode: request.mode,
            format: request.format,
            quality: request.quality,
            max_width: request.max_width,
            rotation,
        };
        let spec_json =
            serde_json::to_vec(&spec).map_err(|e| MediaError::Internal(format!("spec: {e}")))?;
        let invocation = Invocation::new(
            &self.extractor.program,
            crate::engine::RESTART_VIDSNAP,
            self.timeout_for(duration),
        )
        .args(self.extractor.args.iter().cloned())
        .stdin(spec_json);
        let mut child = self.runner.start(invocation).await?;

        let mut frames = Vec::with_capacity(targets.len());
        let mut reported: Option<MediaError> = None;
        while let Some(line) = child.next_line().await? {
            match extract::parse_event(&line) {
                Ok(Event::Frame(record)) => {
                    let image = work.path().join(&record.file);
                    archive.add_file(record.file.clone(), image.clone()).await?;
                    if record.index > 0 {
                        // Only the first frame is needed after zipping: keep the scratch small.
                        let _ = tokio::fs::remove_file(&image).await;
                    }
                    progress.frame(&record);
                    frames.push(record);
                }
                Ok(Event::Error { code, message }) => {
                    reported = Some(MediaError::rejected(code, message));
                }
                Err(_) => tracing::warn!(%line, "unexpected extractor output"),
            }
        }
        let finished = child.wait().await?;
        if let Some(error) = reported {
            return Err(match error {
                MediaError::Rejected { code, message } if !code.is_transient() => {
                    MediaError::Rejected { code, message }
                }
                MediaError::Rejected { message, .. } => MediaError::Internal(message),
                other => other,
            });
        }
        if !finished.status.success() {
            // Killed by a signal or crashed inside a decoder: the file is hostile or broken.
            return Err(MediaError::rejected(
                ErrorCode::CorruptInput,
                format!(
                    "decoding failed ({}): {}",
                    finished.status,
                    finished.stderr_tail.lines().last().unwrap_or("no message")
                ),
            ));
        }
        if frames.len() != targets.len() {
            return Err(MediaError::Internal(format!(
                "extractor wrote {} of {} frames",
                frames.len(),
                targets.len()
            )));
        }

        let manifest = Manifest {
            source: Source {
                file_name: request
                    .input
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                probe,
            },
            interval: request.interval.seconds(),
            mode: request.mode,
            format: request.format,
            frames,
        };
        let manifest_json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| MediaError::Internal(format!("manifest: {e}")))?;
        archive.add_bytes("manifest.json", manifest_json).await?;
        let first = work.path().join(&manifest.frames[0].file);
        archive::publish_copy(&first, &thumbnail_path).await?;
        let zip_bytes = archive.publish().await?;
        Ok(FramesOutput {
            zip: zip_path,
            zip_bytes,
            thumbnail: thumbnail_path,
            manifest,
        })
    }
}
