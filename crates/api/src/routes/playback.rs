//! HLS and DASH playback of packaged jobs: `GET /v1/play/{token}/{file}`, where the token (see
//! [`crate::playback`]) names the job's `package` step and authorizes its folder. Playlists and
//! the MPD are served here (a player resolves the relative URIs in them against this URL, so the
//! token travels with every request); init and media segments answer with a redirect to a
//! short-lived signed URL of the storage (the local store's `/v1/blobs/…`, which serves `Range`
//! requests, or S3's), so segment bytes never pass through an API process on S3.

use axum::{
    body::Body,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use utoipa_axum::{router::OpenApiRouter, routes};
use vidsnap_domain::{Operation, PortError, StepStatus};

use crate::{ApiError, ApiResult, AppState, openapi::ErrorBody, playback::Refusal};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(play))
}

/// Segment redirects are valid this long: a player fetches a segment right after its playlist.
const SEGMENT_URL_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// Play a packaged job
///
/// A file of a packaged job's HLS/DASH folder: `master.m3u8`, `manifest.mpd`, the variant
/// playlists (served here), and the segments (a 302 to a short-lived signed storage URL). The
/// URLs come from `playback` in `GET /v1/jobs/{id}`; the token in the path is the authorization
/// (no credential header), so players resolve relative URIs with it.
#[utoipa::path(
    get,
    path = "/v1/play/{token}/{*file}",
    operation_id = "play",
    tag = "jobs",
    params(
        ("token" = String, Path, description = "From `playback` in `GET /v1/jobs/{id}`."),
        ("file" = String, Path, description = "A file of the package, e.g. `master.m3u8`, `stream0/seg-00001.m4s`."),
    ),
    responses(
        (status = 200, description = "A playlist or the MPD.", content_type = "application/vnd.apple.mpegurl"),
        (status = 302, description = "A segment: its signed storage URL."),
        (status = 403, description = "A tampered (`playback-refused`) or expired (`playback-expired`) token.", body = ErrorBody),
        (status = 404, description = "No such job, package or file.", body = ErrorBody),
    ),
)]
async fn play(
    State(state): State<AppState>,
    Path((token, file)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (job_id, step_name) = state
        .playback
        .verify(&token, Utc::now())
        .map_err(|refusal| match refusal {
            Refusal::Invalid => ApiError::new(
                StatusCode::FORBIDDEN,
                "playback-refused",
                "this playback URL is not one Vidsnap signed",
            ),
            Refusal::Expired => ApiError::new(
                StatusCode::FORBIDDEN,
                "playback-expired",
                "this playback URL has expired: get a new one from GET /v1/jobs/{id}",
            ),
        })?;
    let job = state
        .repo
        .job(None, job_id)
        .await
        .map_err(|e| ApiError::from_port(e, "job"))?;
    let packaged = job
        .recipe
        .step(&step_name)
        .is_some_and(|spec| matches!(spec.op, Operation::Package(_)));
    let step = job
        .step(&step_name)
        .filter(|step| packaged && step.status == StepStatus::Succeeded)
        .ok_or_else(|| ApiError::not_found("package"))?;
    // The folder is where the master playlist is; a file is served only if the step made it
    // (no other key is reachable, whatever the path says).
    let folder = step
        .artefacts
        .iter()
        .find(|a| a.name == "hls")
        .and_then(|a| a.key.strip_suffix("master.m3u8"))
        .ok_or_else(|| ApiError::not_found("package"))?;
    let key = format!("{folder}{file}");
    let artefact = step
        .artefacts
        .iter()
        .find(|a| a.key == key)
        .ok_or_else(|| ApiError::not_found("file"))?;
    let manifest = file.ends_with(".m3u8") || file.ends_with(".mpd");
    if !manifest {
        let link = state
            .blobs
            .presign_get(&artefact.key, SEGMENT_URL_TTL)
            .await
            .map_err(|e| ApiError::from_port(e, "file"))?;
        let mut response = StatusCode::FOUND.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::LOCATION,
            HeaderValue::from_str(&link.url).map_err(ApiError::internal)?,
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(response);
    }
    let scratch = tempfile::tempdir().map_err(ApiError::internal)?;
    let path = state
        .blobs
        .local_copy(&artefact.key, scratch.path())
        .await
        .map_err(|e| match e {
            PortError::NotFound => ApiError::not_found("file"),
            other => ApiError::from_port(other, "file"),
        })?;
    let bytes = tokio::fs::read(&path).await.map_err(ApiError::internal)?;
    let content_type = if file.ends_with(".mpd") {
        "application/dash+xml"
    } else {
        "application/vnd.apple.mpegurl"
    };
    let mut response = Body::from(bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // A VOD package never changes; the token's expiry bounds how long it is used.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    Ok(response)
}
