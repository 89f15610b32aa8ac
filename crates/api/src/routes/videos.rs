//! Videos: create (with a presigned upload), list, show (with presigned downloads), delete,
//! retry, and a server-sent event stream of changes.

use std::{collections::BTreeMap, convert::Infallible};

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::sse::{Event, Sse},
};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use vidsnap_domain::{
    Failure, PresignedRequest, StatusChange, Transition, Video, VideoId, VideoOptions, VideoStatus,
};

use super::follow::{Followed, follow, listing};
use crate::{
    ApiError, ApiResult, AppState,
    auth::Caller,
    extract::{ApiJson, ApiQuery},
    openapi::{
        ErrorBody, FailureDoc, FrameModeDoc, ImageFormatDoc, IntervalDoc, PresignedRequestDoc,
        StatusChangeDoc, VideoOptionsDoc, VideoStatusDoc,
    },
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(show, remove))
        .routes(routes!(retry))
        .routes(routes!(uploaded))
        .routes(routes!(events))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVideo {
    /// A plain file name whose extension is an accepted container (`mp4`, `mov`, `mkv`, …).
    #[schema(examples("holiday.mp4"))]
    pub file_name: String,
    /// The file's size in bytes, if known: checked against the size limit now rather than
    /// after the upload.
    #[schema(minimum = 1)]
    pub size: Option<u64>,
    /// Frames options for the video's job (the default processing). Not with `recipe` or
    /// `recipe_name`.
    #[serde(default)]
    pub options: NewOptions,
    /// A recipe document of one input (the video) to run instead of frames, as
    /// `POST /v1/jobs` takes it.
    #[schema(value_type = Option<Object>)]
    pub recipe: Option<serde_json::Value>,
    /// A built-in recipe (`GET /v1/recipes`) to run instead of frames.
    pub recipe_name: Option<String>,
    /// Parameters of `recipe` or `recipe_name`.
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Value>,
    /// `false`: store the upload without processing it (jobs of `POST /v1/jobs` may read it
    /// later). Default `true`.
    pub process: Option<bool>,
}

/// Options as sent: `every` accepts `"10s"`-style strings or seconds.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOptions {
    #[schema(value_type = Option<IntervalDoc>)]
    pub every: Option<serde_json::Value>,
    #[schema(value_type = Option<FrameModeDoc>)]
    pub mode: Option<String>,
    #[schema(value_type = Option<ImageFormatDoc>)]
    pub format: Option<String>,
}

impl NewOptions {
    pub(crate) fn is_given(&self) -> bool {
        self.every.is_some() || self.mode.is_some() || self.format.is_some()
    }
}

/// A presigned download.
#[derive(Debug, Serialize, ToSchema)]
pub struct Link {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// What processing produced, with download links valid for a while.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Outputs)]
pub struct OutputsView {
    /// Every frame, in one zip.
    pub zip: Link,
    pub zip_bytes: u64,
    pub thumbnail: Link,
    pub frames: usize,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Video)]
pub struct VideoView {
    #[schema(value_type = uuid::Uuid)]
    pub id: VideoId,
    pub file_name: String,
    #[schema(required = true)]
    pub size: Option<u64>,
    #[schema(value_type = VideoOptionsDoc)]
    pub options: VideoOptions,
    #[schema(value_type = VideoStatusDoc)]
    pub status: VideoStatus,
    /// Attempts made in the current cycle.
    pub attempts: u32,
    pub max_attempts: u32,
    #[schema(value_type = Option<FailureDoc>, required = true)]
    pub last_error: Option<Failure>,
    /// The ffprobe summary, once probed.
    #[schema(value_type = Option<Object>, required = true)]
    pub probe: Option<serde_json::Value>,
    /// Only on a `succeeded` video, and only where the video is shown alone (not in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = OutputsView)]
    pub outputs: Option<OutputsView>,
    #[schema(value_type = Vec<StatusChangeDoc>)]
    pub history: Vec<StatusChange>,
    /// The job processing it (`GET /v1/jobs/{id}` shows its steps); `null` for a video stored
    /// without processing.
    #[schema(value_type = Option<uuid::Uuid>, required = true)]
    pub job: Option<vidsnap_domain::JobId>,
    /// When its bytes were stored.
    #[schema(required = true)]
    pub uploaded_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new video, and where to upload its bytes.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub video: VideoView,
    /// Perform this request with the file as its body; processing starts once it completes.
    #[schema(value_type = PresignedRequestDoc)]
    pub upload: PresignedRequest,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VideoList {
    pub items: Vec<VideoView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

fn parse_id(id: &str) -> ApiResult<VideoId> {
    id.parse().map_err(|_| ApiError::not_found("video"))
}

/// The caller's video `id`; anyone else's is a 404, like a missing one.
pub(crate) async fn owned(state: &AppState, caller: Caller, id: &str) -> ApiResult<Video> {
    state
        .repo
        .video(Some(caller.user), parse_id(id)?)
        .await
        .map_err(|e| ApiError::from_port(e, "video"))
}

/// Builds the view: history always, presigned output links when succeeded.
pub(crate) async fn view(state: &AppState, video: Video, links: bool) -> ApiResult<VideoView> {
    let history = state
        .repo
        .history(video.id)
        .await
        .map_err(|e| ApiError::from_port(e, "video"))?;
    let outputs = match (
        &video.outputs,
        links && video.status == VideoStatus::Succeeded,
    ) {
        (Some(outputs), true) => {
            let ttl = state.settings.download_ttl();
            let link = |r: PresignedRequest| Link {
                url: r.url,
                expires_at: r.expires_at,
            };
            let zip = state.blobs.presign_get(&outputs.zip_key, ttl).await;
            let thumbnail = state.blobs.presign_get(&outputs.thumbnail_key, ttl).await;
            Some(OutputsView {
                zip: link(zip.map_err(|e| ApiError::from_port(e, "output"))?),
                zip_bytes: outputs.zip_bytes,
                thumbnail: link(thumbnail.map_err(|e| ApiError::from_port(e, "output"))?),
                frames: outputs.frames,
            })
        }
        _ => None,
    };
    // A video stored without processing has no job to mirror: once uploaded, it says so.
    let status = match (video.status, video.job, video.uploaded_at) {
        (VideoStatus::AwaitingUpload, None, Some(_)) => VideoStatus::Uploaded,
        (status, _, _) => status,
    };
    Ok(VideoView {
        id: video.id,
        file_name: video.file_name,
        size: video.size,
        options: video.options,
        status,
        attempts: video.attempts,
        max_attempts: video.max_attempts,
        last_error: video.last_error,
        probe: video.probe,
        outputs,
        history,
        job: video.job,
        uploaded_at: video.uploaded_at,
        created_at: video.created_at,
        updated_at: video.updated_at,
    })
}

/// The options as requested; what is wrong goes into `fields` under `{prefix}.every` etc.
pub(crate) fn options(
    new: NewOptions,
    prefix: &str,
    fields: &mut BTreeMap<String, String>,
) -> VideoOptions {
    let mut options = VideoOptions::default();
    let every = format!("{prefix}.every");
    match new.every {
        None => {}
        Some(serde_json::Value::Number(n)) => {
            match n.as_f64().map(vidsnap_domain::FrameInterval::from_seconds) {
                Some(Ok(interval)) => options.every = interval,
                _ => {
                    fields.insert(every, "must be greater than zero".into());
                }
            }
        }
        Some(serde_json::Value::String(s)) => match s.parse() {
            Ok(interval) => options.every = interval,
            Err(e) => {
                fields.insert(every, format!("{e}"));
            }
        },
        Some(_) => {
            fields.insert(every, "must be a duration such as \"10s\"".into());
        }
    }
    if let Some(mode) = new.mode {
        match mode.parse() {
            Ok(mode) => options.mode = mode,
            Err(e) => {
                fields.insert(format!("{prefix}.mode"), e);
            }
        }
    }
    if let Some(format) = new.format {
        match format.parse() {
            Ok(format) => options.format = format,
            Err(e) => {
                fields.insert(format!("{prefix}.format"), e);
            }
        }
    }
    options
}

/// Stores the job that processes `video` once its bytes arrive (its id is `video.job`).
pub(crate) async fn start_processing(state: &AppState, video: &Video) -> ApiResult<()> {
    if let Some(job) = video.job {
        state
            .jobs
            .create_for_video(job, video)
            .await
            .map_err(|e| ApiError::from_port(e, "video"))?;
    }
    Ok(())
}

/// A new video of `owner`, waiting for its bytes, with the id of the job that will process it.
pub(crate) fn new_video(
    state: &AppState,
    owner: vidsnap_domain::UserId,
    file_name: String,
    size: Option<u64>,
    options: VideoOptions,
) -> Video {
    Video::awaiting_upload(
        owner,
        file_name,
        size,
        options,
        state.jobs.max_attempts(),
        Utc::now(),
    )
}

/// Whether `name` is a plain file name with an accepted extension; what is wrong goes into
/// `fields` under `field`.
pub(crate) fn check_file_name(
    name: &str,
    field: &str,
    state: &AppState,
    fields: &mut BTreeMap<String, String>,
) {
    let name_ok = !name.is_empty()
        && name.len() <= 255
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
        && name != "."
        && name != "..";
    if !name_ok {
        fields.insert(
            field.into(),
            "must be a plain file name (no slashes or control characters, at most 255 bytes)"
                .into(),
        );
        return;
    }
    let accepted = vidsnap_domain::Container::from_file_name(name)
        .is_some_and(|c| state.limits.containers.contains(&c));
    if !accepted {
        fields.insert(
            field.into(),
            format!(
                "the extension must be one of {} (audio files such as .m4a, .mp3 and .wav \
                 with a recipe of their own, e.g. qc)",
                vidsnap_domain::Container::list(&state.limits.containers)
            ),
        );
    }
}

/// Create a video
///
/// Registers the video and answers with a presigned upload request. Processing starts when the
/// upload completes (or on `POST /v1/videos/{id}/uploaded`).
#[utoipa::path(
    post,
    path = "/v1/videos",
    operation_id = "create_video",
    tag = "videos",
    request_body = NewVideo,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "The video, awaiting its upload.", body = Created),
        (status = 422, description = "The file name, size or options are not acceptable (`validation-failed`; `fields` says which).", body = ErrorBody),
    ),
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewVideo>,
) -> ApiResult<(StatusCode, Json<Created>)> {
    let mut fields = BTreeMap::new();
    let file_name = new.file_name.trim().to_owned();
    check_file_name(&file_name, "file_name", &state, &mut fields);
    // An audio-only file is not a video container, but a recipe of its own (qc) may take it.
    let recipe_given = new.recipe.is_some() || new.recipe_name.is_some();
    if recipe_given
        && vidsnap_domain::Container::is_audio_file_name(&file_name)
        && fields
            .get("file_name")
            .is_some_and(|why| why.starts_with("the extension"))
    {
        fields.remove("file_name");
    }
    match (new.size, state.limits.max_bytes) {
        (Some(0), _) => {
            fields.insert("size".into(), "must be greater than zero".into());
        }
        (Some(size), Some(max)) if size > max => {
            fields.insert("size".into(), format!("must be at most {max} bytes"));
        }
        _ => {}
    }
    let custom = new.recipe.is_some() || new.recipe_name.is_some();
    if custom && new.options.is_given() {
        fields.insert(
            "options".to_owned(),
            "frames options go with the default processing, not with recipe or recipe_name".into(),
        );
    }
    let process = new.process.unwrap_or(true);
    if !process && (custom || new.options.is_given() || new.params.is_some()) {
        fields.insert(
            "process".to_owned(),
            "a video stored without processing takes no options, recipe or params".into(),
        );
    }
    let options = options(new.options, "options", &mut fields);
    let source = match (new.recipe, new.recipe_name) {
        (None, None) => None,
        (Some(doc), None) => match vidsnap_domain::RecipeDoc::from_json(doc, "recipe") {
            Ok(doc) => Some(vidsnap_jobs::RecipeSource::Doc(doc)),
            Err(problems) => {
                fields.extend(problems.into_fields());
                None
            }
        },
        (None, Some(name)) => Some(vidsnap_jobs::RecipeSource::Named(name)),
        (Some(_), Some(_)) => {
            fields.insert(
                "recipe".to_owned(),
                "send one of recipe and recipe_name".to_owned(),
            );
            None
        }
    };
    let params = new.params.unwrap_or(serde_json::Value::Null);
    let recipe = match source {
        Some(source) => match state.jobs.check(source, &params) {
            Ok((recipe, _)) if recipe.inputs.len() != 1 => {
                fields.insert(
                    "recipe.inputs".to_owned(),
                    "a video's recipe takes exactly one input: the video".to_owned(),
                );
                None
            }
            Ok(checked) => Some(checked),
            Err(problems) => {
                fields.extend(problems.into_fields());
                None
            }
        },
        None => None,
    };
    if !fields.is_empty() {
        return Err(ApiError::invalid(fields));
    }
    let mut video = new_video(&state, caller.user, file_name, new.size, options);
    if !process {
        video.job = None;
    }
    state
        .repo
        .create_video(&video)
        .await
        .map_err(|e| ApiError::from_port(e, "video"))?;
    match (recipe, video.job) {
        (Some((recipe, name)), Some(job)) => {
            state
                .jobs
                .create_for_video_with(job, &video, recipe, name, params)
                .await
                .map_err(|e| ApiError::from_port(e, "video"))?;
        }
        _ => start_processing(&state, &video).await?,
    }
    let upload = state
        .blobs
        .presign_put(&video.source_key(), state.settings.upload_ttl())
        .await
        .map_err(|e| ApiError::from_port(e, "video"))?;
    metrics::counter!("vidsnap_videos_created_total").increment(1);
    let video = view(&state, video, false).await?;
    Ok((StatusCode::CREATED, Json(Created { video, upload })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only videos in this status.
    #[param(value_type = Option<VideoStatusDoc>)]
    pub status: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// List videos
///
/// The caller's videos, newest first, a page at a time (without output links).
#[utoipa::path(
    get,
    path = "/v1/videos",
    operation_id = "list_videos",
    tag = "videos",
    params(ListQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of videos.", body = VideoList),
        (status = 400, description = "A cursor this listing did not give (`invalid-cursor`).", body = ErrorBody),
        (status = 422, description = "An unknown status, or a limit out of range (`validation-failed`).", body = ErrorBody),
    ),
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<VideoList>> {
    let (status, limit) = listing(
        query.status.as_deref(),
        query.cursor.as_deref(),
        query.limit,
        &VideoStatus::ALL,
        VideoStatus::as_str,
    )?;
    let page = state
        .repo
        .videos(caller.user, status, query.cursor.as_deref(), limit)
        .await
        .map_err(|e| ApiError::from_port(e, "video"))?;
    let mut items = Vec::with_capacity(page.items.len());
    for video in page.items {
        items.push(view(&state, video, false).await?);
    }
    Ok(Json(VideoList {
        items,
        next_cursor: page.next_cursor,
    }))
}

/// Show a video
///
/// With presigned download links (`outputs`) once it has succeeded.
#[utoipa::path(
    get,
    path = "/v1/videos/{id}",
    operation_id = "get_video",
    tag = "videos",
    params(("id" = uuid::Uuid, Path, description = "The video's id.")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The video.", body = VideoView),
        (status = 404, description = "No such video of the caller (`not-found`).", body = ErrorBody),
    ),
)]
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<VideoView>> {
    let video = owned(&state, caller, &id).await?;
    Ok(Json(view(&state, video, true).await?))
}

/// Delete a video
///
/// With its upload and outputs.
// Deletes the rows first (so no worker picks the video up again), then the blobs.
#[utoipa::path(
    delete,
    path = "/v1/videos/{id}",
    operation_id = "delete_video",
    tag = "videos",
    params(("id" = uuid::Uuid, Path, description = "The video's id.")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such video of the caller (`not-found`).", body = ErrorBody),
        (status = 409, description = "An unfinished job (other than its own) reads the video: cancel it first (`invalid-state`).", body = ErrorBody),
    ),
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id)?;
    let video = state
        .repo
        .video(Some(caller.user), id)
        .await
        .map_err(|e| ApiError::from_port(e, "video"))?;
    // A job that reads it (besides its own) would wait for ever or lose its input mid-step.
    let readers: Vec<String> = state
        .repo
        .jobs_reading(id)
        .await
        .map_err(|e| ApiError::from_port(e, "video"))?
        .into_iter()
        .filter(|job| Some(*job) != video.job)
        .map(|job| job.to_string())
        .collect();
    if !readers.is_empty() {
        return Err(ApiError::conflict(
            "invalid-state",
            format!(
                "the video is an input of unfinished jobs ({}): cancel them first",
                readers.join(", ")
            ),
        ));
    }
    // The upload session (if any) goes with the rows; its staged bytes are dropped after.
    let session = state.repo.upload_of_video(id).await.ok();
    let video = state
        .repo
        .delete_video(caller.user, id)
        .await
        .map_err(|e| ApiError::from_port(e, "video"))?;
    if let Some(session) = session
        && let Err(e) = state.uploads.discard(&session).await
    {
        tracing::warn!(upload = %session.id, error = %e, "dropping a deleted video's staged upload failed");
    }
    // The rows are gone: the delete has happened. Bytes the storage could not delete now (it
    // is down) have no row any more, and the scheduler's orphan audit removes them.
    if let Err(e) = state.blobs.delete_prefix(&video.prefix()).await {
        tracing::warn!(video = %video.id, error = %e, "deleting a deleted video's blobs failed; the storage sweep will remove them");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Retry a failed or dead video
///
/// Another cycle: attempts restart and its next outcome notifies again.
#[utoipa::path(
    post,
    path = "/v1/videos/{id}/retry",
    operation_id = "retry_video",
    tag = "videos",
    params(("id" = uuid::Uuid, Path, description = "The video's id.")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 202, description = "Queued again.", body = VideoView),
        (status = 404, description = "No such video of the caller (`not-found`).", body = ErrorBody),
        (status = 409, description = "The video is neither failed nor dead (`invalid-state`).", body = ErrorBody),
    ),
)]
async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<VideoView>)> {
    let video = owned(&state, caller, &id).await?;
    if !matches!(video.status, VideoStatus::Failed | VideoStatus::Dead) {
        return Err(ApiError::conflict(
            "invalid-state",
            format!(
                "only failed or dead videos can be retried; this one is {}",
                video.status
            ),
        ));
    }
    let queued = match video.job {
        Some(job) => {
            rerun_what_failed(&state, caller, job).await?;
            state
                .repo
                .video(Some(caller.user), video.id)
                .await
                .map_err(|e| ApiError::from_port(e, "video"))?
        }
        // Processed before jobs existed: a job of its own from now on.
        None => legacy_retry(&state, video).await?,
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(view(&state, queued, false).await?),
    ))
}

/// Re-runs every step of the video's job that failed, died or was cancelled, upstream first (a
/// re-run restarts what is downstream of it, so each is re-run once).
async fn rerun_what_failed(
    state: &AppState,
    caller: Caller,
    job: vidsnap_domain::JobId,
) -> ApiResult<()> {
    let mut job = state
        .repo
        .job(Some(caller.user), job)
        .await
        .map_err(|e| ApiError::from_port(e, "video"))?;
    loop {
        let ended = job.recipe.steps.iter().find(|spec| {
            job.step(&spec.name).is_some_and(|s| {
                matches!(
                    s.status,
                    vidsnap_domain::StepStatus::Failed
                        | vidsnap_domain::StepStatus::Dead
                        | vidsnap_domain::StepStatus::Cancelled
                )
            })
        });
        let Some(spec) = ended else {
            return Ok(());
        };
        let rerun = vidsnap_domain::Change::Rerun {
            step: spec.name.clone(),
            op: None,
        };
        job = state
            .jobs
            .change(Some(caller.user), job.id, rerun)
            .await
            .map_err(|e| ApiError::from_port(e, "video"))?
            .job;
    }
}

/// The retry of a video processed before jobs existed: it gets its job, and a new cycle.
async fn legacy_retry(state: &AppState, video: Video) -> ApiResult<Video> {
    let mut again = Transition::to(VideoStatus::Queued).reason("retry requested");
    again.new_cycle = true;
    let queued = state
        .repo
        .transition(video.id, again)
        .await
        .map_err(|e| ApiError::from_port(e, "video"))?;
    state
        .jobs
        .create_for_video(vidsnap_domain::JobId::new(), &queued)
        .await
        .map_err(|e| ApiError::from_port(e, "video"))?;
    state.events.publish(&queued);
    Ok(queued)
}

/// Report an upload as complete
///
/// For clients that uploaded straight to object storage without event notifications: checks the
/// object exists and queues processing. A video already queued (or further) is answered as is.
#[utoipa::path(
    post,
    path = "/v1/videos/{id}/uploaded",
    operation_id = "report_upload",
    tag = "videos",
    params(("id" = uuid::Uuid, Path, description = "The video's id.")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 202, description = "Queued for processing.", body = VideoView),
        (status = 404, description = "No such video of the caller (`not-found`).", body = ErrorBody),
        (status = 409, description = "Nothing has been uploaded for this video yet (`upload-missing`), or it cannot be queued (`invalid-state`).", body = ErrorBody),
    ),
)]
async fn uploaded(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<VideoView>)> {
    let video = owned(&state, caller, &id).await?;
    let size = match state.blobs.size(&video.source_key()).await {
        Ok(size) => size,
        Err(vidsnap_domain::PortError::NotFound) => {
            return Err(ApiError::conflict(
                "upload-missing",
                "nothing has been uploaded for this video yet",
            ));
        }
        Err(e) => return Err(ApiError::from_port(e, "video")),
    };
    let video = queue_upload(&state, video, size).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(view(&state, video, false).await?),
    ))
}

/// Records the video's upload and starts what waited for it; the video as it is then.
pub(crate) async fn queue_upload(state: &AppState, video: Video, size: u64) -> ApiResult<Video> {
    state
        .jobs
        .uploaded(&video, Some(size))
        .await
        .map(|uploaded| uploaded.video)
        .map_err(|e| ApiError::from_port(e, "video"))
}

/// Follow a video's changes (server-sent events)
///
/// An `event: video` whose `data` is the video (as `GET /v1/videos/{id}` shows it) now and each
/// time its status or attempts change; the stream ends after a terminal status (`succeeded`,
/// `dead`) or when the server shuts down. Comments keep the connection alive.
#[utoipa::path(
    get,
    path = "/v1/videos/{id}/events",
    operation_id = "follow_video",
    tag = "videos",
    params(("id" = uuid::Uuid, Path, description = "The video's id.")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (
            status = 200,
            description = "A `text/event-stream` of `video` events; each `data` is a `Video` as JSON.",
            content_type = "text/event-stream",
            body = String,
            example = json!("event: video\ndata: {\"id\":\"…\",\"status\":\"processing\",…}\n\n"),
        ),
        (status = 404, description = "No such video of the caller (`not-found`).", body = ErrorBody),
    ),
)]
async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let first = owned(&state, caller, &id).await?;
    let id = first.id;
    let changes = state.events.subscribe();
    let (reader, renderer) = (state.clone(), state.clone());
    Ok(follow(
        state,
        "video",
        first,
        changes,
        move || {
            let repo = reader.repo.clone();
            async move { repo.video(Some(caller.user), id).await }
        },
        move |video| {
            let state = renderer.clone();
            async move { view(&state, video, true).await }
        },
    ))
}

impl Followed for Video {
    type Key = (VideoStatus, u32, DateTime<Utc>);

    fn key(&self) -> Self::Key {
        (self.status, self.attempts, self.updated_at)
    }

    fn same(&self, other: &Self) -> bool {
        self.id == other.id
    }

    fn terminal(&self) -> bool {
        self.status.is_terminal()
    }
}
