//! `scenes`: the extractor child decodes every frame once and scores it against the one before
//! (ffmpeg's scene score, see [`crate::extract`]); the cuts it keeps come back as images and
//! records, which are zipped with their manifest as `frames` zips its frames:
//! `{stem}-scenes.zip` (the images and `manifest.json`), the manifest, and with `images` each
//! frame as `frames/{entry}`.
//!
//! The manifest is the frames manifest with the scan's settings instead of an interval, and
//! each entry's `score`; `requested_time` is the cut's own time.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::json;
use vidsnap_domain::{ImageFormat, ops::ScenesOptions};

use super::{JSON, OpInput, OpOutput, Produced, stem};
use crate::{
    MediaEngine, MediaError, Progress,
    archive::Archive,
    extract::{Event, Job, SceneRecord, ScenesSpec},
    frames::{Percent, Source},
};

/// Where the images go in the work directory, and the prefix of their artefact names.
const FRAMES_DIR: &str = "frames";

/// `manifest.json` of a scenes run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenesManifest {
    pub source: Source,
    /// A frame scoring above this was a cut.
    pub threshold: f64,
    /// Seconds within which two cuts were one.
    pub min_gap: f64,
    pub format: ImageFormat,
    /// Frames decoded and scored.
    pub frames_scanned: u64,
    /// Cuts above the threshold that are not listed: merged into a stronger one less than
    /// `min_gap` away, or the weakest beyond `max_scenes`.
    pub dropped: u64,
    /// The cuts, in time order.
    pub frames: Vec<SceneRecord>,
}

pub(super) async fn run(
    engine: &MediaEngine,
    options: &ScenesOptions,
    input: &OpInput,
    work: &Path,
    progress: &dyn Progress,
) -> Result<OpOutput, MediaError> {
    let probe = engine.accept(&input.path, &input.file_name).await?;
    let duration = probe.duration.unwrap_or(0.0);
    let images_dir = work.join(FRAMES_DIR);
    tokio::fs::create_dir_all(&images_dir)
        .await
        .map_err(|e| MediaError::io("creating", &images_dir, e))?;
    // Progress is time decoded, in thousandths of the duration.
    let mut percent = Percent::new(progress, 1000);

    let job = Job::Scenes(ScenesSpec {
        input: std::path::absolute(&input.path)
            .map_err(|e| MediaError::io("resolving", &input.path, e))?,
        out_dir: images_dir.clone(),
        threshold: options.threshold,
        min_gap: options.min_gap,
        max_scenes: options.max_scenes as usize,
        format: options.format,
        quality: options.quality,
        max_width: options.max_width,
        rotation: probe.video().and_then(|v| v.rotation).unwrap_or(0),
    });
    let mut child = engine.start_job(&job, duration).await?;
    let (mut cuts, mut scanned, mut dropped) = (Vec::new(), 0, 0);
    while let Some(event) = child.next_event().await? {
        match event {
            Event::Progress { time } if duration > 0.0 => {
                percent.frames_done((time / duration * 1000.0) as usize);
            }
            Event::Scene(cut) => cuts.push(cut),
            Event::Scanned {
                frames,
                dropped: left_out,
            } => {
                scanned = frames;
                dropped = left_out;
            }
            _ => {}
        }
    }
    child.finish().await?;

    let manifest = ScenesManifest {
        source: Source {
            file_name: input.file_name.clone(),
            probe,
        },
        threshold: options.threshold,
        min_gap: options.min_gap,
        format: options.format,
        frames_scanned: scanned,
        dropped,
        frames: cuts,
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| MediaError::Internal(format!("manifest: {e}")))?;
    let zip = work.join("scenes.zip");
    let mut archive = Archive::create(&zip)?;
    for cut in &manifest.frames {
        archive
            .add_file(cut.frame.file.clone(), images_dir.join(&cut.frame.file))
            .await?;
    }
    archive
        .add_bytes("manifest.json", manifest_json.clone())
        .await?;
    let manifest_path = work.join("manifest.json");
    tokio::fs::write(&manifest_path, &manifest_json)
        .await
        .map_err(|e| MediaError::io("writing", &manifest_path, e))?;

    let mut produced = Vec::new();
    if options.images {
        for cut in &manifest.frames {
            let name = format!("{FRAMES_DIR}/{}", cut.frame.file);
            produced.push(Produced {
                path: images_dir.join(&cut.frame.file),
                file_name: name.clone(),
                name,
                content_type: options.format.mime_type().into(),
            });
        }
    } else {
        let _ = tokio::fs::remove_dir_all(&images_dir).await;
    }
    produced.push(Produced {
        name: "manifest".into(),
        path: manifest_path,
        file_name: "manifest.json".into(),
        content_type: JSON.into(),
    });
    archive.publish().await?;
    produced.push(Produced {
        name: "zip".into(),
        path: zip,
        file_name: format!("{}-scenes.zip", stem(&input.file_name)),
        content_type: "application/zip".into(),
    });
    progress.percent(100);
    let times: Vec<f64> = manifest
        .frames
        .iter()
        .map(|cut| cut.frame.actual_time)
        .collect();
    Ok(OpOutput {
        produced,
        result: Some(json!({
            "scenes": manifest.frames.len(),
            "times": times,
            "dropped": manifest.dropped,
            "frames_scanned": manifest.frames_scanned,
            "probe": manifest.source,
        })),
    })
}
