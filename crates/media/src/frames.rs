//! The frames engine: `MediaEngine::zip_frames` turns an accepted video into a zip of frames
//! with `manifest.json`, the first frame kept for the thumbnail; the `frames` operation and
//! [`MediaEngine::extract_frames`] both call it.
//!
//! `extract_frames` (the CLI's): a video in, `{stem}-images.zip` and `{stem}-image.{ext}` (the
//! first frame) out, both published atomically beside each other.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vidsnap_domain::{
    ErrorCode, FrameInterval, FrameMode, ImageFormat, Quality, frame_count, ops::FramesOptions,
    target_times,
};

use crate::{
    MediaEngine, MediaError,
    archive::{self, Archive},
    engine::file_name_of,
    extract::{ExtractSpec, FrameRecord, Targets},
    probe::Probe,
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
    /// How far the run is, 0-100, for any operation: what a worker forwards with its
    /// heartbeats. Said once per value; 100 only once every output is written.
    fn percent(&self, _done: u8) {}
}

/// Frames done as the percentage [`Progress::percent`] is told, each value once.
pub(crate) struct Percent<'a> {
    progress: &'a dyn Progress,
    total: usize,
    said: Option<u8>,
}

impl<'a> Percent<'a> {
    pub(crate) fn new(progress: &'a dyn Progress, total: usize) -> Self {
        let mut percent = Self {
            progress,
            total,
            said: None,
        };
        percent.frames_done(0);
        percent
    }

    pub(crate) fn frames_done(&mut self, done: usize) {
        // 99 at most: the zip is not written until the manifest is in it.
        let value = (done * 100 / self.total.max(1)).min(99) as u8;
        if self.said != Some(value) {
            self.said = Some(value);
            self.progress.percent(value);
        }
    }
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

/// The frames of an accepted video zipped with their manifest, the zip not yet in place.
pub(crate) struct Zipped {
    pub manifest: Manifest,
    /// The manifest's bytes, as stored in the zip.
    pub manifest_json: Vec<u8>,
    /// Renamed into place by [`Archive::publish`]; removed if dropped.
    pub archive: Archive,
}

impl MediaEngine {
    /// Validates the input, extracts one frame per target time and publishes the zip and the
    /// thumbnail. On any failure or cancellation nothing is published and nothing is left behind.
    pub async fn extract_frames(
        &self,
        request: &FramesRequest,
        progress: &dyn Progress,
    ) -> Result<FramesOutput, MediaError> {
        let file_name = file_name_of(&request.input);
        let probe = self.accept(&request.input, &file_name).await?;
        let (zip_name, thumb_name) = output_names(&request.input, request.format);
        tokio::fs::create_dir_all(&request.out_dir)
            .await
            .map_err(|e| MediaError::io("creating", &request.out_dir, e))?;
        let zip_path = request.out_dir.join(zip_name);
        let thumbnail_path = request.out_dir.join(thumb_name);

        let work = WorkDir::create(self.config.temp_dir.as_deref())?;
        let options = FramesOptions {
            every: request.interval,
            mode: request.mode,
            format: request.format,
            quality: request.quality,
            max_width: request.max_width,
            images: false,
        };
        let source = Source { file_name, probe };
        let zipped = self
            .zip_frames(
                &request.input,
                source,
                &options,
                work.path(),
                &zip_path,
                progress,
            )
            .await?;
        let first = work.path().join(&zipped.manifest.frames[0].file);
        archive::publish_copy(&first, &thumbnail_path).await?;
        let zip_bytes = zipped.archive.publish().await?;
        progress.percent(100);
        Ok(FramesOutput {
            zip: zip_path,
            zip_bytes,
            thumbnail: thumbnail_path,
            manifest: zipped.manifest,
        })
    }

    /// Refuses a frame every `every` on this video when it is shorter than one of its frames
    /// (it would repeat frames) or makes more than `limits.max_frames`; else how many frames it
    /// makes. Counted before anything runs: a millisecond over four hours is 14.4 million frames.
    pub(crate) fn check_interval(
        &self,
        probe: &Probe,
        every: FrameInterval,
    ) -> Result<u64, MediaError> {
        let duration = probe.duration.unwrap_or(0.0);
        if let Some(fps) = probe.video().and_then(|v| v.frame_rate)
            && fps > 0.0
            && every.seconds() < (1.0 / fps) * (1.0 - 1e-6)
        {
            return Err(MediaError::Rejected {
                code: ErrorCode::IntervalTooShort,
                message: format!(
                    "a frame every {every} is shorter than one frame of this video ({:.4} s at \
                     {fps:.3} fps): choose {:.4} s or more",
                    1.0 / fps,
                    1.0 / fps
                ),
            });
        }
        let count = frame_count(duration, every);
        if let Some(max) = self.config().limits.max_frames
            && count > max
        {
            return Err(MediaError::Rejected {
                code: ErrorCode::TooManyFrames,
                message: format!(
                    "a frame every {every} on a {duration:.3} s video is {count} frames; at most \
                     {max} (limits.max_frames): choose a longer interval"
                ),
            });
        }
        Ok(count)
    }

    /// Extracts the frames of an accepted video into `images_dir` (which must exist) and writes
    /// them, then the manifest, to an archive bound for `zip`. Of the images only the first
    /// (the thumbnail) is left in `images_dir`, unless `options.images` keeps them all.
    pub(crate) async fn zip_frames(
        &self,
        input: &Path,
        source: Source,
        options: &FramesOptions,
        images_dir: &Path,
        zip: &Path,
        progress: &dyn Progress,
    ) -> Result<Zipped, MediaError> {
        let duration = source.probe.duration.unwrap_or(0.0);
        self.check_interval(&source.probe, options.every)?;
        let targets = target_times(duration, options.every);
        let rotation = source.probe.video().and_then(|v| v.rotation).unwrap_or(0);
        let total = usize::try_from(targets.total()).unwrap_or(usize::MAX);
        progress.started(total);
        let mut percent = Percent::new(progress, total);

        let mut archive = Archive::create(zip)?;
        let spec = ExtractSpec {
            input: std::path::absolute(input).map_err(|e| MediaError::io("resolving", input, e))?,
            out_dir: images_dir.to_path_buf(),
            targets: Targets::Every(targets),
            mode: options.mode,
            format: options.format,
            quality: options.quality,
            max_width: options.max_width,
            rotation,
        };
        let mut child = self.start_extractor(&spec, duration).await?;
        let mut frames = Vec::with_capacity(total.min(10_000));
        while let Some(record) = child.next_frame().await? {
            let image = images_dir.join(&record.file);
            archive.add_file(record.file.clone(), image.clone()).await?;
            if record.index > 0 && !options.images {
                // Only the first frame is needed after zipping: keep the scratch small.
                let _ = tokio::fs::remove_file(&image).await;
            }
            progress.frame(&record);
            frames.push(record);
            percent.frames_done(frames.len());
        }
        child.finish().await?;

        let manifest = Manifest {
            source,
            interval: options.every.seconds(),
            mode: options.mode,
            format: options.format,
            frames,
        };
        let manifest_json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| MediaError::Internal(format!("manifest: {e}")))?;
        archive
            .add_bytes("manifest.json", manifest_json.clone())
            .await?;
        Ok(Zipped {
            manifest,
            manifest_json,
            archive,
        })
    }
}
