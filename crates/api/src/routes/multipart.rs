//! Direct multipart uploads of a video's source, for files too big for one presigned PUT: the
//! client starts a multipart upload, PUTs each part straight to the object store through a
//! presigned URL, and completes it with the parts' ETags, which queues the video as
//! `POST /v1/videos/{id}/uploaded` does. The bytes never pass through the API.
//!
//! The upload id is the store's, returned to the client and sent back with every request; the
//! store binds it to the video's key, so an id cannot reach another video's upload. Only S3
//! storage offers this (`multipart-unsupported`, 501, elsewhere), and only while the video is
//! `awaiting_upload`.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use vidsnap_domain::{
    PortError, PresignedRequest, Video, VideoStatus,
    ports::{DirectMultipart, UploadedPart},
};

use crate::{
    ApiError, ApiResult, AppState,
    auth::Caller,
    extract::{ApiJson, ApiQuery},
    openapi::{ErrorBody, PresignedRequestDoc},
    routes::videos::{VideoView, owned, view},
};

/// S3's limit on the parts of one upload.
const MAX_PARTS: u32 = 10_000;
/// Part URLs one request may ask for.
const MAX_URLS: usize = 1000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start, abort))
        .routes(routes!(presign_parts))
        .routes(routes!(complete))
}

/// A started multipart upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct MultipartUpload {
    /// Send it back with every request about this upload.
    pub upload_id: String,
    /// Every part but the last must have exactly this size.
    pub part_bytes: u64,
    /// Parts are numbered 1 to this.
    pub max_parts: u32,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartsRequest {
    pub upload_id: String,
    /// The parts to presign (1 to 10,000; at most 1,000 per request).
    #[schema(min_items = 1, max_items = 1000)]
    pub part_numbers: Vec<u32>,
}

/// Where to PUT one part.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartUrl {
    pub part_number: u32,
    /// PUT the part's bytes with this request; keep the answer's `ETag` header for completing.
    #[schema(value_type = PresignedRequestDoc)]
    pub request: PresignedRequest,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PartUrls {
    pub parts: Vec<PartUrl>,
}

/// A part as uploaded.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletedPart {
    pub part_number: u32,
    /// The `ETag` header the store answered the part's PUT with.
    pub etag: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    pub upload_id: String,
    /// Every part, numbered 1, 2, … in order.
    #[schema(min_items = 1)]
    pub parts: Vec<CompletedPart>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AbortQuery {
    /// The upload to abort.
    pub upload_id: String,
}

/// The caller's video, still waiting for its upload, and the store's multipart uploads.
async fn waiting(
    state: &AppState,
    caller: Caller,
    id: &str,
) -> ApiResult<(Video, Arc<dyn DirectMultipart>)> {
    let video = owned(state, caller, id).await?;
    let Some(multipart) = state.multipart.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "multipart-unsupported",
            "direct multipart uploads need S3 storage; upload with the presigned PUT or tus \
             (/v1/uploads)",
        ));
    };
    if video.status != VideoStatus::AwaitingUpload {
        return Err(ApiError::conflict(
            "invalid-state",
            format!(
                "only a video awaiting its upload takes one; this one is {}",
                video.status
            ),
        ));
    }
    Ok((video, multipart))
}

fn check_upload_id(upload_id: &str, fields: &mut BTreeMap<String, String>) {
    if upload_id.trim().is_empty() || upload_id.len() > 1024 {
        fields.insert(
            "upload_id".into(),
            "must be the id `POST /v1/videos/{id}/multipart` answered".into(),
        );
    }
}

/// Start a direct multipart upload
///
/// For files too big for one presigned PUT: the parts go straight to object storage, through
/// URLs from `POST /v1/videos/{id}/multipart/parts`. S3 storage only.
#[utoipa::path(
    post,
    path = "/v1/videos/{id}/multipart",
    operation_id = "start_multipart_upload",
    tag = "videos",
    params(("id" = uuid::Uuid, Path, description = "The video's id.")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Started.", body = MultipartUpload),
        (status = 404, description = "No such video of the caller (`not-found`).", body = ErrorBody),
        (status = 409, description = "The video is not awaiting its upload (`invalid-state`).", body = ErrorBody),
        (status = 501, description = "The storage is not S3 (`multipart-unsupported`).", body = ErrorBody),
    ),
)]
async fn start(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<MultipartUpload>)> {
    let (video, multipart) = waiting(&state, caller, &id).await?;
    let started = multipart
        .start(&video.source_key())
        .await
        .map_err(|e| ApiError::from_port(e, "video"))?;
    Ok((
        StatusCode::CREATED,
        Json(MultipartUpload {
            upload_id: started.upload_id,
            part_bytes: started.part_bytes,
            max_parts: MAX_PARTS,
        }),
    ))
}

/// Presign part uploads
///
/// A presigned PUT per part number, valid as long as the video's upload URL would be.
#[utoipa::path(
    post,
    path = "/v1/videos/{id}/multipart/parts",
    operation_id = "presign_multipart_parts",
    tag = "videos",
    params(("id" = uuid::Uuid, Path, description = "The video's id.")),
    request_body = PartsRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "One request per part number, in the order asked.", body = PartUrls),
        (status = 404, description = "No such video of the caller (`not-found`).", body = ErrorBody),
        (status = 409, description = "The video is not awaiting its upload (`invalid-state`).", body = ErrorBody),
        (status = 422, description = "No part numbers, too many, or one out of range (`validation-failed`).", body = ErrorBody),
        (status = 501, description = "The storage is not S3 (`multipart-unsupported`).", body = ErrorBody),
    ),
)]
async fn presign_parts(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<PartsRequest>,
) -> ApiResult<Json<PartUrls>> {
    let (video, multipart) = waiting(&state, caller, &id).await?;
    let mut fields = BTreeMap::new();
    check_upload_id(&request.upload_id, &mut fields);
    let numbers = &request.part_numbers;
    if numbers.is_empty() || numbers.len() > MAX_URLS {
        fields.insert(
            "part_numbers".into(),
            format!("must list 1 to {MAX_URLS} part numbers"),
        );
    } else if numbers.iter().any(|n| !(1..=MAX_PARTS).contains(n)) {
        fields.insert(
            "part_numbers".into(),
            format!("part numbers are 1 to {MAX_PARTS}"),
        );
    }
    if !fields.is_empty() {
        return Err(ApiError::invalid(fields));
    }
    let key = video.source_key();
    let ttl = state.settings.upload_ttl();
    let mut parts = Vec::with_capacity(numbers.len());
    for &number in numbers {
        let request = multipart
            .presign_part(&key, &request.upload_id, number, ttl)
            .await
            .map_err(|e| ApiError::from_port(e, "video"))?;
        parts.push(PartUrl {
            part_number: number,
            request,
        });
    }
    Ok(Json(PartUrls { parts }))
}

/// Complete a direct multipart upload
///
/// Assembles the parts into the video's upload and queues processing, as
/// `POST /v1/videos/{id}/uploaded` does.
#[utoipa::path(
    post,
    path = "/v1/videos/{id}/multipart/complete",
    operation_id = "complete_multipart_upload",
    tag = "videos",
    params(("id" = uuid::Uuid, Path, description = "The video's id.")),
    request_body = CompleteRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 202, description = "Uploaded and queued for processing.", body = VideoView),
        (status = 404, description = "No such video of the caller, or no such multipart upload of it (`not-found`).", body = ErrorBody),
        (status = 409, description = "The video is not awaiting its upload (`invalid-state`).", body = ErrorBody),
        (status = 422, description = "Parts not numbered 1, 2, … (`validation-failed`), or parts the store refused: an ETag that is not its part's, a part other than the last smaller than `part_bytes` (`invalid-parts`). Nothing changed: complete again with the right parts.", body = ErrorBody),
        (status = 501, description = "The storage is not S3 (`multipart-unsupported`).", body = ErrorBody),
    ),
)]
async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<CompleteRequest>,
) -> ApiResult<(StatusCode, Json<VideoView>)> {
    let (video, multipart) = waiting(&state, caller, &id).await?;
    let mut fields = BTreeMap::new();
    check_upload_id(&request.upload_id, &mut fields);
    let numbered = !request.parts.is_empty()
        && request.parts.len() <= MAX_PARTS as usize
        && request
            .parts
            .iter()
            .zip(1..)
            .all(|(part, n)| part.part_number == n && !part.etag.trim().is_empty());
    if !numbered {
        fields.insert(
            "parts".into(),
            "must list every part with its ETag, numbered 1, 2, … in order".into(),
        );
    }
    if !fields.is_empty() {
        return Err(ApiError::invalid(fields));
    }
    let parts: Vec<UploadedPart> = request
        .parts
        .into_iter()
        .map(|p| UploadedPart {
            number: p.part_number,
            etag: p.etag,
        })
        .collect();
    let key = video.source_key();
    let size = match multipart.complete(&key, &request.upload_id, &parts).await {
        Ok(size) => size,
        Err(PortError::Conflict(message)) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-parts",
                message,
            ));
        }
        // The store no longer knows the upload: completed by an earlier request whose queueing
        // failed (the blob is there), or never started, or aborted.
        Err(PortError::NotFound) => match state.blobs.size(&key).await {
            Ok(size) => size,
            Err(PortError::NotFound) => return Err(ApiError::not_found("multipart upload")),
            Err(e) => return Err(ApiError::from_port(e, "video")),
        },
        Err(e) => return Err(ApiError::from_port(e, "video")),
    };
    let video = super::videos::queue_upload(&state, video, size).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(view(&state, video, false).await?),
    ))
}

/// Abort a direct multipart upload
///
/// Drops the parts uploaded so far. Aborting an upload that is already gone succeeds.
#[utoipa::path(
    delete,
    path = "/v1/videos/{id}/multipart",
    operation_id = "abort_multipart_upload",
    tag = "videos",
    params(("id" = uuid::Uuid, Path, description = "The video's id."), AbortQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Aborted."),
        (status = 400, description = "Without `upload_id` (`invalid-query`).", body = ErrorBody),
        (status = 404, description = "No such video of the caller (`not-found`).", body = ErrorBody),
        (status = 409, description = "The video is not awaiting its upload (`invalid-state`).", body = ErrorBody),
        (status = 422, description = "An empty `upload_id` (`validation-failed`).", body = ErrorBody),
        (status = 501, description = "The storage is not S3 (`multipart-unsupported`).", body = ErrorBody),
    ),
)]
async fn abort(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<AbortQuery>,
) -> ApiResult<StatusCode> {
    let (video, multipart) = waiting(&state, caller, &id).await?;
    let mut fields = BTreeMap::new();
    check_upload_id(&query.upload_id, &mut fields);
    if !fields.is_empty() {
        return Err(ApiError::invalid(fields));
    }
    multipart
        .abort(&video.source_key(), &query.upload_id)
        .await
        .map_err(|e| ApiError::from_port(e, "video"))?;
    Ok(StatusCode::NO_CONTENT)
}
