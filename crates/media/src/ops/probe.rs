//! `probe`: ffprobe and the acceptance rules; `probe.json` holds the summary of an accepted
//! video, and a refused one is an error with the refusal's code.

use std::path::Path;

use serde_json::json;
use vidsnap_domain::ops::ProbeOptions;

use super::{JSON, OpInput, OpOutput, Produced};
use crate::{MediaEngine, MediaError, Progress, frames::Source};

pub(super) async fn run(
    engine: &MediaEngine,
    _options: &ProbeOptions,
    input: &OpInput,
    work: &Path,
    progress: &dyn Progress,
) -> Result<OpOutput, MediaError> {
    let probe = engine.accept(&input.path, &input.file_name).await?;
    let source = Source {
        file_name: input.file_name.clone(),
        probe,
    };
    let bytes = serde_json::to_vec_pretty(&source)
        .map_err(|e| MediaError::Internal(format!("probe summary: {e}")))?;
    let path = work.join("probe.json");
    tokio::fs::write(&path, bytes)
        .await
        .map_err(|e| MediaError::io("writing", &path, e))?;
    progress.percent(100);
    Ok(OpOutput {
        produced: vec![Produced {
            name: "probe".into(),
            path,
            file_name: "probe.json".into(),
            content_type: JSON.into(),
        }],
        result: Some(json!({ "probe": source })),
    })
}
