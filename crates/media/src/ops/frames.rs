//! `frames`: the frames engine ([`MediaEngine::zip_frames`]) with its outputs named as the
//! service stored them before operations existed (`{stem}-images.zip`, `image.{ext}`) and, when
//! `images` is on, the manifest and every frame as artefacts of their own.
//!
//! The frames are extracted into `frames/` in the work directory. With `images` they stay
//! there after zipping and are the artefacts themselves, so they cost no copy and no re-read
//! of the zip, and their bytes are the zip's entries (which are stored, not deflated).

use std::path::Path;

use serde_json::json;
use vidsnap_domain::ops::FramesOptions;

use super::{JSON, OpInput, OpOutput, Produced, stem};
use crate::{MediaEngine, MediaError, Progress, frames::Source};

/// Where the frames go in the work directory, and the prefix of their artefact names.
const FRAMES_DIR: &str = "frames";

pub(super) async fn run(
    engine: &MediaEngine,
    options: &FramesOptions,
    input: &OpInput,
    work: &Path,
    progress: &dyn Progress,
) -> Result<OpOutput, MediaError> {
    let probe = engine.accept(&input.path, &input.file_name).await?;
    let images_dir = work.join(FRAMES_DIR);
    tokio::fs::create_dir_all(&images_dir)
        .await
        .map_err(|e| MediaError::io("creating", &images_dir, e))?;
    let zip = work.join("frames.zip");
    let source = Source {
        file_name: input.file_name.clone(),
        probe,
    };
    let zipped = engine
        .zip_frames(&input.path, source, options, &images_dir, &zip, progress)
        .await?;

    let (extension, image_type) = (options.format.extension(), options.format.mime_type());
    let first = images_dir.join(&zipped.manifest.frames[0].file);
    let thumbnail = work.join(format!("thumbnail.{extension}"));
    if options.images {
        tokio::fs::copy(&first, &thumbnail)
            .await
            .map_err(|e| MediaError::io("copying", &first, e))?;
    } else {
        tokio::fs::rename(&first, &thumbnail)
            .await
            .map_err(|e| MediaError::io("moving", &first, e))?;
        let _ = tokio::fs::remove_dir(&images_dir).await;
    }

    let mut produced = Vec::new();
    if options.images {
        for frame in &zipped.manifest.frames {
            let name = format!("{FRAMES_DIR}/{}", frame.file);
            produced.push(Produced {
                path: images_dir.join(&frame.file),
                file_name: name.clone(),
                name,
                content_type: image_type.into(),
            });
        }
        let manifest = work.join("manifest.json");
        tokio::fs::write(&manifest, &zipped.manifest_json)
            .await
            .map_err(|e| MediaError::io("writing", &manifest, e))?;
        produced.push(Produced {
            name: "manifest".into(),
            path: manifest,
            file_name: "manifest.json".into(),
            content_type: JSON.into(),
        });
    }
    produced.push(Produced {
        name: "thumbnail".into(),
        path: thumbnail,
        file_name: format!("image.{extension}"),
        content_type: image_type.into(),
    });
    zipped.archive.publish().await?;
    produced.push(Produced {
        name: "zip".into(),
        path: zip,
        file_name: format!("{}-images.zip", stem(&input.file_name)),
        content_type: "application/zip".into(),
    });
    progress.percent(100);
    Ok(OpOutput {
        produced,
        result: Some(json!({
            "frames": zipped.manifest.frames.len(),
            "probe": zipped.manifest.source,
        })),
    })
}
