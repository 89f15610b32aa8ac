//! `thumbnail`: the frame shown at `at` seconds, by the extractor child with a single target in
//! exact mode (the same decoder, rotation, scaling and encoders as frames).
//!
//! `at` is clamped to the duration: asking past the end gives the last frame, not an error,
//! because exact mode's answer for a time at or after the end is the last frame decoded.

use std::path::Path;

use serde_json::json;
use vidsnap_domain::{FrameMode, ops::ThumbnailOptions};

use super::{OpInput, OpOutput, Produced};
use crate::{
    MediaEngine, MediaError, Progress,
    extract::{ExtractSpec, Targets},
    frames::Source,
};

pub(super) async fn run(
    engine: &MediaEngine,
    options: &ThumbnailOptions,
    input: &OpInput,
    work: &Path,
    progress: &dyn Progress,
) -> Result<OpOutput, MediaError> {
    let probe = engine.accept(&input.path, &input.file_name).await?;
    let duration = probe.duration.unwrap_or(0.0);
    let at = options.at.min(duration).max(0.0);
    progress.started(1);
    progress.percent(0);
    let spec = ExtractSpec {
        input: std::path::absolute(&input.path)
            .map_err(|e| MediaError::io("resolving", &input.path, e))?,
        out_dir: work.to_path_buf(),
        targets: Targets::At(vec![at]),
        mode: FrameMode::Exact,
        format: options.format,
        quality: options.quality,
        max_width: options.max_width,
        rotation: probe.video().and_then(|v| v.rotation).unwrap_or(0),
    };
    // Decoding stops at `at`: a thumbnail near the start of a long video gets a short limit.
    let mut child = engine.start_extractor(&spec, at).await?;
    let mut written = None;
    while let Some(record) = child.next_frame().await? {
        written = Some(record);
    }
    child.finish().await?;
    let record =
        written.ok_or_else(|| MediaError::Internal("the extractor wrote no frame".into()))?;

    let extension = options.format.extension();
    let path = work.join(format!("thumbnail.{extension}"));
    let image = work.join(&record.file);
    tokio::fs::rename(&image, &path)
        .await
        .map_err(|e| MediaError::io("moving", &image, e))?;
    progress.frame(&record);
    progress.percent(100);
    let source = Source {
        file_name: input.file_name.clone(),
        probe,
    };
    Ok(OpOutput {
        produced: vec![Produced {
            name: "thumbnail".into(),
            path,
            file_name: format!("thumbnail.{extension}"),
            content_type: options.format.mime_type().into(),
        }],
        result: Some(json!({
            "at": at,
            "frame_time": record.actual_time,
            "width": record.width,
            "height": record.height,
            "probe": source,
        })),
    })
}
