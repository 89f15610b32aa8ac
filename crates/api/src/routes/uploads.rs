//! Resumable uploads over tus 1.0.0 (<https://tus.io/protocols/resumable-upload>): core
//! (`HEAD`, `PATCH`) and the extensions creation, creation-with-upload, termination, expiration
//! and checksum (sha1, sha256), on the upload core (`vidsnap-uploads`), so any API process can
//! continue any upload.
//!
//! Answers follow tus: its status codes (409 offset mismatch, 412 unsupported version, 415 wrong
//! content type, 423 another request is writing, 460 checksum mismatch, 410 expired) and headers
//! (`Tus-Resumable` on every answer, by a layer on these routes). Error bodies are the API's own
//! `{"error": {"code", "message"}}`, which tus clients show as they are.
//!
//! Every route but `OPTIONS` takes a [`Caller`]; another user's upload is a 404 like a missing
//! one. `Upload-Metadata` carries `filename` (or `name`) and the processing options `every`,
//! `mode`, `format`, validated as `POST /v1/videos` validates them, or a built-in `recipe` and
//! its `params` (a JSON object) instead, as `recipe_name` and `params` there; the video is created with the
//! upload (`awaiting_upload`), shown by `GET /v1/videos/{id}` (its id is in `Vidsnap-Video` and
//! a `Link`), and queued when the last byte arrives, exactly as after a presigned PUT.

use std::{collections::BTreeMap, io};

use axum::{
    body::{Body, HttpBody},
    extract::{DefaultBodyLimit, Path, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    middleware,
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use utoipa_axum::{router::OpenApiRouter, routes};
use vidsnap_domain::{ByteStream, Checksum, ChecksumAlgorithm, Upload, UploadId};
use vidsnap_uploads::{NewUpload, UploadCore, UploadError};

use crate::{
    ApiError, AppState,
    auth::Caller,
    openapi::{ErrorBody, OctetStreamDoc},
    routes::videos::{NewOptions, check_file_name, new_video, options, start_processing},
};

/// The protocol version this server speaks.
const TUS_VERSION: &str = "1.0.0";
/// The extensions `OPTIONS` announces.
const TUS_EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration,checksum";
/// The content type of every piece of an upload.
const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
/// tus's own status for a piece that does not match its `Upload-Checksum`.
const CHECKSUM_MISMATCH: StatusCode = match StatusCode::from_u16(460) {
    Ok(status) => status,
    Err(_) => StatusCode::BAD_REQUEST,
};

const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
const TUS_VERSION_HEADER: HeaderName = HeaderName::from_static("tus-version");
const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
const UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");
const UPLOAD_METADATA: HeaderName = HeaderName::from_static("upload-metadata");
const VIDSNAP_VIDEO: HeaderName = HeaderName::from_static("vidsnap-video");

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(discover, create))
        .routes(routes!(status, append, terminate))
        // Pieces stream straight to the staging backend, never through a buffer: no body limit
        // (`limits.max_bytes` bounds the declared `Upload-Length` instead).
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::map_response(resumable))
}

/// `Tus-Resumable` on every answer of these routes, errors included.
async fn resumable(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(TUS_RESUMABLE, HeaderValue::from_static(TUS_VERSION));
    response
}

/// Discover the tus server
///
/// The protocol version, extensions, checksum algorithms and largest upload this server takes.
#[utoipa::path(
    options,
    path = "/v1/uploads",
    operation_id = "discover_uploads",
    tag = "uploads",
    responses(
        (status = 204, description = "What the server supports.",
            headers(
                ("Tus-Version" = String, description = "`1.0.0`: the only version spoken."),
                ("Tus-Extension" = String, description = "`creation,creation-with-upload,termination,expiration,checksum`."),
                ("Tus-Checksum-Algorithm" = String, description = "`sha1,sha256`."),
                ("Tus-Max-Size" = u64, description = "The largest `Upload-Length` accepted (`limits.max_bytes`); absent when unbounded."),
            )),
    ),
)]
async fn discover(State(state): State<AppState>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(TUS_VERSION_HEADER, HeaderValue::from_static(TUS_VERSION));
    headers.insert(
        HeaderName::from_static("tus-extension"),
        HeaderValue::from_static(TUS_EXTENSIONS),
    );
    let algorithms = ChecksumAlgorithm::ALL
        .map(ChecksumAlgorithm::as_str)
        .join(",");
    if let Ok(value) = HeaderValue::from_str(&algorithms) {
        headers.insert(HeaderName::from_static("tus-checksum-algorithm"), value);
    }
    if let Some(max) = state.limits.max_bytes {
        headers.insert(
            HeaderName::from_static("tus-max-size"),
            HeaderValue::from(max),
        );
    }
    (StatusCode::NO_CONTENT, headers).into_response()
}

/// Create an upload
///
/// Registers the video (`awaiting_upload`) and its upload session. `Upload-Metadata` must carry
/// `filename` (its extension an accepted container); `every`, `mode` and `format` set the
/// processing options as in `POST /v1/videos`. A body (`Content-Type:
/// application/offset+octet-stream`) is the upload's first piece (creation-with-upload).
#[utoipa::path(
    post,
    path = "/v1/uploads",
    operation_id = "create_upload",
    tag = "uploads",
    params(
        ("Tus-Resumable" = String, Header, description = "`1.0.0`."),
        ("Upload-Length" = u64, Header, description = "The file's size in bytes (deferred lengths are not supported)."),
        ("Upload-Metadata" = String, Header, description = "Comma-separated `key base64(value)` pairs: `filename` (required), `every`, `mode`, `format`; others are kept."),
        ("Upload-Checksum" = Option<String>, Header, description = "`sha1 <base64>` or `sha256 <base64>` of the body, when there is one."),
    ),
    request_body(
        description = "Optional: the upload's first bytes (creation-with-upload).",
        content((OctetStreamDoc = "application/offset+octet-stream")),
    ),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Created; send the bytes to `Location` with `PATCH`.",
            headers(
                ("Location" = String, description = "The upload, `/v1/uploads/{id}` (relative to this server)."),
                ("Upload-Expires" = String, description = "When the upload expires unless written to (RFC 9110 date)."),
                ("Upload-Offset" = u64, description = "With a body: the bytes stored of it."),
                ("Vidsnap-Video" = String, description = "The id of the video created with the upload."),
                ("Link" = String, description = "`</v1/videos/{video}>; rel=\"video\"`."),
            )),
        (status = 400, description = "A tus header is missing or malformed (`invalid-header`).", body = ErrorBody),
        (status = 412, description = "`Tus-Resumable` is missing or not `1.0.0` (`unsupported-version`).", body = ErrorBody,
            headers(("Tus-Version" = String, description = "`1.0.0`: the version spoken."))),
        (status = 413, description = "`Upload-Length` exceeds the size limit (`too-large`).", body = ErrorBody),
        (status = 415, description = "A body that is not `application/offset+octet-stream` (`unsupported-media-type`).", body = ErrorBody),
        (status = 422, description = "The file name or options in `Upload-Metadata` are not acceptable (`validation-failed`; `fields` says which).", body = ErrorBody),
    ),
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Response {
    create_upload(&state, caller, &headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn create_upload(
    state: &AppState,
    caller: Caller,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refused> {
    check_version(headers)?;
    let core = core(state)?;
    let (total, metadata) = declared(headers, state.limits.max_bytes)?;
    let recipe;
    let video = {
        let mut fields = BTreeMap::new();
        let name = metadata
            .get("filename")
            .or_else(|| metadata.get("name"))
            .map(|n| n.trim().to_owned())
            .unwrap_or_default();
        if name.is_empty() {
            fields.insert(
                "metadata.filename".to_owned(),
                "is required: the file's name, with its extension".to_owned(),
            );
        } else {
            check_file_name(&name, "metadata.filename", state, &mut fields);
        }
        let requested = requested(&metadata);
        let options_given = requested.is_given();
        let options = options(requested, "metadata", &mut fields);
        recipe = builtin_recipe(state, &metadata, options_given, &mut fields);
        if !fields.is_empty() {
            return Err(ApiError::invalid(fields).into());
        }
        new_video(state, caller.user, name, Some(total), options)
    };
    let with_body = piece(headers, &body, false)?;
    let checksum = match with_body {
        Some(_) => checksum(headers)?,
        None => None,
    };
    let job_video = video.clone();
    let mut upload = core
        .create(NewUpload {
            video,
            total_bytes: total,
            metadata,
        })
        .await
        .map_err(refusal)?;
    // Before any byte is appended: the last one starts the job.
    match (recipe, job_video.job) {
        (Some((recipe, name, params)), Some(job)) => {
            state
                .jobs
                .create_for_video_with(job, &job_video, recipe, name, params)
                .await
                .map_err(|e| ApiError::from_port(e, "video"))?;
        }
        _ => start_processing(state, &job_video).await?,
    }
    metrics::counter!("vidsnap_videos_created_total").increment(1);
    if let Some(length) = with_body {
        // The upload exists whatever happens to its first piece: answer 201 with the offset
        // stored, so the client continues with PATCH (tus creation-with-upload).
        match core
            .append(
                Some(caller.user),
                upload.id,
                0,
                stream(body),
                checksum,
                length,
            )
            .await
        {
            Ok(after) => upload = after,
            Err(error) => {
                tracing::info!(upload = %upload.id, %error, "the first piece of a new upload was not stored");
                if let Ok(now) = core.status(Some(caller.user), upload.id).await {
                    upload = now;
                }
            }
        }
    }
    let mut answer = HeaderMap::new();
    let location = format!("/v1/uploads/{}", upload.id);
    answer.insert(header::LOCATION, value(&location));
    if with_body.is_some() {
        answer.insert(UPLOAD_OFFSET, HeaderValue::from(upload.uploaded_bytes));
    }
    describe_upload(&mut answer, &upload);
    Ok((StatusCode::CREATED, answer).into_response())
}

/// Ask how far an upload is
///
/// The offset to continue from (`Upload-Offset`), after a disconnect or from another device.
#[utoipa::path(
    head,
    path = "/v1/uploads/{id}",
    operation_id = "upload_offset",
    tag = "uploads",
    params(
        ("id" = uuid::Uuid, Path, description = "The upload's id (from `Location`)."),
        ("Tus-Resumable" = String, Header, description = "`1.0.0`."),
    ),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The upload's state (no body).",
            headers(
                ("Upload-Offset" = u64, description = "Bytes stored: where the next `PATCH` starts."),
                ("Upload-Length" = u64, description = "The upload's size."),
                ("Upload-Expires" = String, description = "When it expires unless written to."),
                ("Upload-Metadata" = String, description = "The metadata sent at creation."),
                ("Cache-Control" = String, description = "`no-store`."),
                ("Vidsnap-Video" = String, description = "The id of the upload's video."),
                ("Link" = String, description = "`</v1/videos/{video}>; rel=\"video\"`."),
            )),
        (status = 404, description = "No such upload of the caller (no body).", body = ErrorBody),
        (status = 410, description = "The upload expired (no body).", body = ErrorBody),
        (status = 412, description = "`Tus-Resumable` is missing or not `1.0.0` (no body).", body = ErrorBody,
            headers(("Tus-Version" = String, description = "`1.0.0`: the version spoken."))),
    ),
)]
async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let outcome = async {
        check_version(&headers)?;
        let core = core(&state)?;
        let upload = core
            .status(Some(caller.user), upload_id(&id)?)
            .await
            .map_err(refusal)?;
        let mut answer = HeaderMap::new();
        answer.insert(UPLOAD_OFFSET, HeaderValue::from(upload.uploaded_bytes));
        answer.insert(UPLOAD_LENGTH, HeaderValue::from(upload.total_bytes));
        answer.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if !upload.metadata.is_empty() {
            answer.insert(UPLOAD_METADATA, value(&encode_metadata(&upload.metadata)));
        }
        describe_upload(&mut answer, &upload);
        Ok::<_, Refused>((StatusCode::OK, answer).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Send bytes
///
/// Appends the body at `Upload-Offset`, which must be the upload's current offset. Bytes are
/// acknowledged (204) only once durably stored. When the last byte arrives the video is queued
/// for processing.
#[utoipa::path(
    patch,
    path = "/v1/uploads/{id}",
    operation_id = "append_upload",
    tag = "uploads",
    params(
        ("id" = uuid::Uuid, Path, description = "The upload's id (from `Location`)."),
        ("Tus-Resumable" = String, Header, description = "`1.0.0`."),
        ("Upload-Offset" = u64, Header, description = "Where this piece starts: the upload's current offset."),
        ("Upload-Checksum" = Option<String>, Header, description = "`sha1 <base64>` or `sha256 <base64>` of this piece; a mismatch discards it (460)."),
    ),
    request_body(
        description = "The piece's bytes.",
        content((OctetStreamDoc = "application/offset+octet-stream")),
    ),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Stored.",
            headers(
                ("Upload-Offset" = u64, description = "The upload's new offset."),
                ("Upload-Expires" = String, description = "When it expires unless written to (absent once complete)."),
            )),
        (status = 400, description = "A tus header is missing or malformed, or names an unsupported checksum algorithm (`invalid-header`); or the body ended early (`incomplete-body`).", body = ErrorBody),
        (status = 404, description = "No such upload of the caller (`not-found`).", body = ErrorBody),
        (status = 409, description = "`Upload-Offset` is not the upload's offset (`offset-mismatch`: ask with `HEAD`), or another writer took the upload over mid-piece (`upload-taken-over`).", body = ErrorBody),
        (status = 410, description = "The upload expired (`upload-expired`).", body = ErrorBody),
        (status = 412, description = "`Tus-Resumable` is missing or not `1.0.0` (`unsupported-version`).", body = ErrorBody,
            headers(("Tus-Version" = String, description = "`1.0.0`: the version spoken."))),
        (status = 413, description = "The piece runs past `Upload-Length` (`too-large`); nothing of it was stored.", body = ErrorBody),
        (status = 415, description = "The body is not `application/offset+octet-stream` (`unsupported-media-type`).", body = ErrorBody),
        (status = 423, description = "Another request is writing to this upload right now (`locked`); retry when it is done.", body = ErrorBody),
        (status = 460, description = "The piece does not match `Upload-Checksum` (`checksum-mismatch`); nothing of it was stored.", body = ErrorBody),
    ),
)]
async fn append(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let outcome = async {
        check_version(&headers)?;
        let core = core(&state)?;
        let id = upload_id(&id)?;
        let length = piece(&headers, &body, true)?.flatten();
        let offset = number(&headers, &UPLOAD_OFFSET)?
            .ok_or_else(|| invalid_header("Upload-Offset is required"))?;
        let checksum = checksum(&headers)?;
        let upload = core
            .append(
                Some(caller.user),
                id,
                offset,
                stream(body),
                checksum,
                length,
            )
            .await
            .map_err(refusal)?;
        let mut answer = HeaderMap::new();
        answer.insert(UPLOAD_OFFSET, HeaderValue::from(upload.uploaded_bytes));
        if !upload.is_complete() {
            answer.insert(UPLOAD_EXPIRES, value(&http_date(upload.expires_at)));
        }
        Ok::<_, Refused>((StatusCode::NO_CONTENT, answer).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Terminate an upload
///
/// Drops its stored bytes and its video, unless the upload is complete (its video is then
/// processed as usual; delete it with `DELETE /v1/videos/{id}`).
#[utoipa::path(
    delete,
    path = "/v1/uploads/{id}",
    operation_id = "terminate_upload",
    tag = "uploads",
    params(
        ("id" = uuid::Uuid, Path, description = "The upload's id (from `Location`)."),
        ("Tus-Resumable" = String, Header, description = "`1.0.0`."),
    ),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Terminated."),
        (status = 404, description = "No such upload of the caller (`not-found`).", body = ErrorBody),
        (status = 412, description = "`Tus-Resumable` is missing or not `1.0.0` (`unsupported-version`).", body = ErrorBody,
            headers(("Tus-Version" = String, description = "`1.0.0`: the version spoken."))),
        (status = 423, description = "A request is writing to this upload right now (`locked`).", body = ErrorBody),
    ),
)]
async fn terminate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let outcome = async {
        check_version(&headers)?;
        let core = core(&state)?;
        core.terminate(Some(caller.user), upload_id(&id)?)
            .await
            .map_err(refusal)?;
        Ok::<_, Refused>(StatusCode::NO_CONTENT.into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// What a creation request declares: the upload's length and its metadata. 400
/// `invalid-header` for a deferred, missing or malformed `Upload-Length` or a malformed
/// `Upload-Metadata`; 413 `too-large` past `max_bytes`.
fn declared(
    headers: &HeaderMap,
    max_bytes: Option<u64>,
) -> Result<(u64, BTreeMap<String, String>), Refused> {
    if headers.contains_key("upload-defer-length") {
        return Err(invalid_header(
            "Upload-Defer-Length is not supported: send Upload-Length",
        ));
    }
    let total = number(headers, &UPLOAD_LENGTH)?
        .ok_or_else(|| invalid_header("Upload-Length is required"))?;
    if let Some(max) = max_bytes
        && total > max
    {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!("Upload-Length {total} exceeds the limit of {max} bytes"),
        )
        .into());
    }
    let metadata = match headers.get(UPLOAD_METADATA) {
        Some(value) => parse_metadata(value)?,
        None => BTreeMap::new(),
    };
    Ok((total, metadata))
}

/// A checked built-in recipe for the video's job, when `Upload-Metadata` names one (`recipe`,
/// with `params` as a JSON object), as `recipe_name` and `params` of `POST /v1/videos`: the
/// browser UI picks recipes this way. Problems go into `fields` at `metadata.*`.
fn builtin_recipe(
    state: &AppState,
    metadata: &BTreeMap<String, String>,
    options_given: bool,
    fields: &mut BTreeMap<String, String>,
) -> Option<(vidsnap_domain::Recipe, Option<String>, serde_json::Value)> {
    let params = match metadata.get("params").map(|p| serde_json::from_str(p)) {
        None => serde_json::Value::Null,
        Some(Ok(params @ serde_json::Value::Object(_))) => params,
        Some(_) => {
            fields.insert("metadata.params".into(), "must be a JSON object".into());
            return None;
        }
    };
    let Some(name) = metadata.get("recipe").map(|n| n.trim().to_owned()) else {
        if !params.is_null() {
            fields.insert("metadata.params".into(), "goes with metadata.recipe".into());
        }
        return None;
    };
    if options_given {
        fields.insert(
            "metadata".into(),
            "frames options (every, mode, format) go with the default processing, not with \
             recipe"
                .into(),
        );
    }
    match state
        .jobs
        .check(vidsnap_jobs::RecipeSource::Named(name), &params)
    {
        Ok((recipe, _)) if recipe.inputs.len() != 1 => {
            fields.insert(
                "metadata.recipe".into(),
                "a video's recipe takes exactly one input: the video".into(),
            );
            None
        }
        Ok((recipe, name)) => Some((recipe, name, params)),
        Err(problems) => {
            for (path, problem) in problems.into_fields() {
                fields.insert(format!("metadata.{path}"), problem);
            }
            None
        }
    }
}

/// The processing options `Upload-Metadata` asks for, as `POST /v1/videos` would receive them:
/// `every` as a number when it is one, else as the text given (`"10s"`).
fn requested(metadata: &BTreeMap<String, String>) -> NewOptions {
    NewOptions {
        every: metadata.get("every").map(|every| {
            every
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or_else(
                    || serde_json::Value::String(every.clone()),
                    serde_json::Value::Number,
                )
        }),
        mode: metadata.get("mode").cloned(),
        format: metadata.get("format").cloned(),
    }
}

/// 412 with `Tus-Version` unless the request speaks tus 1.0.0.
fn check_version(headers: &HeaderMap) -> Result<(), Refused> {
    let spoken = headers
        .get(&TUS_RESUMABLE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if spoken == Some(TUS_VERSION) {
        return Ok(());
    }
    let message = match spoken {
        None => "send Tus-Resumable: 1.0.0".to_owned(),
        Some(other) => format!("tus {other} is not supported; this server speaks {TUS_VERSION}"),
    };
    Err(Refused {
        error: ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "unsupported-version",
            message,
        ),
        tus_version: true,
    })
}

fn core(state: &AppState) -> Result<&UploadCore, Refused> {
    Ok(&state.uploads)
}

fn upload_id(id: &str) -> Result<UploadId, Refused> {
    id.parse().map_err(|_| ApiError::not_found("upload").into())
}

fn invalid_header(message: impl Into<String>) -> Refused {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid-header", message).into()
}

/// A header holding a non-negative integer, if present.
fn number(headers: &HeaderMap, name: &HeaderName) -> Result<Option<u64>, Refused> {
    let Some(raw) = headers.get(name) else {
        return Ok(None);
    };
    raw.to_str()
        .ok()
        .map(str::trim)
        .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|text| text.parse().ok())
        .map(Some)
        .ok_or_else(|| invalid_header(format!("{name} must be a non-negative integer")))
}

/// Whether the request carries a piece: `Some(its length, when known)` when it does. A `PATCH`
/// (`required`) must send `application/offset+octet-stream`; a `POST` has a piece only when it
/// sends a body, which must then be of that type.
fn piece(headers: &HeaderMap, body: &Body, required: bool) -> Result<Option<Option<u64>>, Refused> {
    let length = number(headers, &header::CONTENT_LENGTH)?.or(body.size_hint().exact());
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let is_piece = media.as_deref() == Some(OFFSET_OCTET_STREAM);
    let has_body = length.is_some_and(|n| n > 0)
        || headers.contains_key(header::TRANSFER_ENCODING)
        || body.size_hint().lower() > 0;
    if is_piece {
        return Ok(Some(length));
    }
    if required || has_body {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!("send the bytes with Content-Type: {OFFSET_OCTET_STREAM}"),
        )
        .into());
    }
    Ok(None)
}

/// `Upload-Checksum: <algorithm> <base64 digest>`; 400 for an unknown algorithm (tus).
fn checksum(headers: &HeaderMap) -> Result<Option<Checksum>, Refused> {
    let Some(raw) = headers.get("upload-checksum") else {
        return Ok(None);
    };
    let text = raw.to_str().unwrap_or("").trim();
    let (name, digest) = text
        .split_once(' ')
        .ok_or_else(|| invalid_header("Upload-Checksum is `<algorithm> <base64 digest>`"))?;
    let algorithm = ChecksumAlgorithm::parse(name.trim()).ok_or_else(|| {
        invalid_header(format!(
            "checksum algorithm {name:?} is not supported; use one of {}",
            ChecksumAlgorithm::ALL
                .map(ChecksumAlgorithm::as_str)
                .join(", ")
        ))
    })?;
    let digest = STANDARD
        .decode(digest.trim())
        .ok()
        .filter(|d| d.len() == algorithm.digest_len())
        .ok_or_else(|| {
            invalid_header(format!(
                "Upload-Checksum's digest is not a base64 {algorithm} digest"
            ))
        })?;
    Ok(Some(Checksum { algorithm, digest }))
}

/// `key base64(value)` pairs separated by commas; a key alone has an empty value.
fn parse_metadata(raw: &HeaderValue) -> Result<BTreeMap<String, String>, Refused> {
    let text = raw
        .to_str()
        .map_err(|_| invalid_header("Upload-Metadata must be ASCII"))?;
    let mut metadata = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, encoded) = pair.split_once(' ').unwrap_or((pair, ""));
        let decoded = STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                invalid_header(format!(
                    "Upload-Metadata: the value of {key:?} is not base64 of UTF-8 text"
                ))
            })?;
        if metadata.insert(key.to_owned(), decoded).is_some() {
            return Err(invalid_header(format!(
                "Upload-Metadata: {key:?} appears twice"
            )));
        }
    }
    Ok(metadata)
}

fn encode_metadata(metadata: &BTreeMap<String, String>) -> String {
    metadata
        .iter()
        .map(|(key, value)| format!("{key} {}", STANDARD.encode(value)))
        .collect::<Vec<_>>()
        .join(",")
}

/// `Upload-Expires` (while incomplete) and the link to the upload's video.
fn describe_upload(headers: &mut HeaderMap, upload: &Upload) {
    if !upload.is_complete() {
        headers.insert(UPLOAD_EXPIRES, value(&http_date(upload.expires_at)));
    }
    headers.insert(VIDSNAP_VIDEO, value(&upload.video.to_string()));
    headers.insert(
        header::LINK,
        value(&format!("</v1/videos/{}>; rel=\"video\"", upload.video)),
    );
}

/// RFC 9110's IMF-fixdate, e.g. `Wed, 25 Jun 2014 16:00:00 GMT`.
fn http_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// A header value from text this module built (ASCII by construction).
fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The request body as the staging port takes it: streamed, never collected.
fn stream(body: Body) -> ByteStream {
    Box::pin(body.into_data_stream().map_err(io::Error::other))
}

/// An upload core refusal as a tus answer.
fn refusal(error: UploadError) -> Refused {
    let error = match error {
        UploadError::Port(e) => return ApiError::from_port(e, "upload").into(),
        UploadError::NotFound => return ApiError::not_found("upload").into(),
        other => other,
    };
    let (status, code) = match &error {
        UploadError::Gone => (StatusCode::GONE, "upload-expired"),
        UploadError::Locked => (StatusCode::LOCKED, "locked"),
        UploadError::OffsetMismatch { .. } => (StatusCode::CONFLICT, "offset-mismatch"),
        UploadError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too-large"),
        UploadError::ChecksumMismatch => (CHECKSUM_MISMATCH, "checksum-mismatch"),
        UploadError::Interrupted { .. } => (StatusCode::BAD_REQUEST, "incomplete-body"),
        UploadError::LeaseLost => (StatusCode::CONFLICT, "upload-taken-over"),
        // Answered above.
        UploadError::NotFound | UploadError::Port(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
    };
    ApiError::new(status, code, error.to_string()).into()
}

/// A tus refusal: the API's error, and whether `Tus-Version` goes beside it (412).
#[derive(Debug)]
struct Refused {
    error: ApiError,
    tus_version: bool,
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            tus_version: false,
        }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let mut response = self.error.into_response();
        if self.tus_version {
            response
                .headers_mut()
                .insert(TUS_VERSION_HEADER, HeaderValue::from_static(TUS_VERSION));
        }
        response
    }
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_and_refuses_garbage() {
        let raw = HeaderValue::from_static("filename Y2xpcC5tcDQ=,every MTBz, empty");
        let metadata = parse_metadata(&raw).expect("parses");
        assert_eq!(metadata["filename"], "clip.mp4");
        assert_eq!(metadata["every"], "10s");
        assert_eq!(metadata["empty"], "");
        let again = parse_metadata(&value(&encode_metadata(&metadata))).expect("again");
        assert_eq!(again, metadata);
        for bad in ["filename !!!", "a YQ==,a Yg=="] {
            assert!(
                parse_metadata(&HeaderValue::from_static(bad)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn checksums_name_a_known_algorithm_and_a_digest_of_its_size() {
        let mut headers = HeaderMap::new();
        let sha1 = STANDARD.encode([0u8; 20]);
        headers.insert("upload-checksum", value(&format!("sha1 {sha1}")));
        let parsed = checksum(&headers).expect("valid").expect("present");
        assert_eq!(parsed.algorithm, ChecksumAlgorithm::Sha1);
        for bad in [
            format!("md5 {sha1}"),
            format!("sha256 {sha1}"),
            "sha1 not-base64!".to_owned(),
            "sha1".to_owned(),
        ] {
            headers.insert("upload-checksum", value(&bad));
            let refused = checksum(&headers).expect_err(&bad);
            assert_eq!(refused.error.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn dates_are_imf_fixdate() {
        let at = DateTime::from_timestamp(1_403_712_000, 0).expect("a time");
        assert_eq!(http_date(at), "Wed, 25 Jun 2014 16:00:00 GMT");
    }
}
