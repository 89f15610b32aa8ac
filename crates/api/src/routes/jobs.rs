//! Jobs: run a recipe (built in, or sent) over the caller's videos; list, show (steps with
//! status, attempts, error, progress and artefacts with download links), cancel, re-run a step,
//! follow its changes (SSE), delete. And the recipes and operations there are.

use std::{collections::BTreeMap, convert::Infallible};

use axum::{
    Json,
    body::Bytes,
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
    Change, Failure, Job, JobId, JobStatus, Operation, RecipeDoc, StepEvent, StepStatus, VideoId,
    recipe,
};
use vidsnap_jobs::{JobError, RecipeSource};

use crate::{
    ApiError, ApiResult, AppState,
    auth::Caller,
    extract::{ApiJson, ApiQuery},
    openapi::{ErrorBody, FailureDoc, JobStatusDoc, StepStatusDoc},
    routes::follow::{Followed, follow, listing},
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(show, remove))
        .routes(routes!(cancel))
        .routes(routes!(retry_step))
        .routes(routes!(events))
        .routes(routes!(recipes))
}

/// A job to run. Exactly one of `recipe` and `recipe_name`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewJob {
    /// A recipe document: `{inputs?, params?, steps: [{name, op, options?, inputs?, after?,
    /// retry?: {max_attempts}}]}`.
    #[schema(value_type = Option<Object>)]
    pub recipe: Option<serde_json::Value>,
    /// A built-in recipe (`GET /v1/recipes`).
    pub recipe_name: Option<String>,
    /// The recipe's inputs: input name -> the caller's video id.
    #[schema(value_type = BTreeMap<String, uuid::Uuid>)]
    pub inputs: BTreeMap<String, String>,
    /// Values of the recipe's parameters.
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Value>,
}

/// A re-run's changes.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryStep {
    /// New options for the step's operation (all of them: what is left out takes its
    /// default); without, the step runs again as it was.
    #[schema(value_type = Option<Object>)]
    pub options: Option<serde_json::Value>,
}

/// A stored output with a download link valid for a while.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArtefactView {
    pub name: String,
    pub content_type: String,
    pub bytes: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    pub name: String,
    pub op: String,
    /// The options it runs with (defaults filled in).
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
    /// Job inputs (`video`) and upstream artefacts (`step/artefact`) it reads.
    pub inputs: Vec<String>,
    /// Steps it runs after.
    pub after: Vec<String>,
    #[schema(value_type = StepStatusDoc)]
    pub status: StepStatus,
    pub attempts: u32,
    pub max_attempts: u32,
    #[schema(value_type = Option<FailureDoc>, required = true)]
    pub last_error: Option<Failure>,
    /// 0-100 while running, where the operation can tell.
    #[schema(required = true)]
    pub progress: Option<u8>,
    /// A ready step's task is due then (a backoff after a failure).
    #[schema(required = true)]
    pub run_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub started_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub finished_at: Option<DateTime<Utc>>,
    /// What the operation reported besides its files.
    #[schema(value_type = Option<Object>, required = true)]
    pub result: Option<serde_json::Value>,
    /// Only where the job is shown alone (not in lists).
    pub artefacts: Vec<ArtefactView>,
}

/// A line of a job's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepEventView {
    pub step: String,
    #[schema(value_type = StepStatusDoc)]
    pub status: StepStatus,
    pub attempt: u32,
    pub at: DateTime<Utc>,
    #[schema(required = true)]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Job)]
pub struct JobView {
    #[schema(value_type = uuid::Uuid)]
    pub id: JobId,
    /// The built-in recipe it runs, if any.
    #[schema(required = true)]
    pub recipe_name: Option<String>,
    #[schema(value_type = JobStatusDoc)]
    pub status: JobStatus,
    /// Advanced by each re-run.
    pub cycle: u32,
    /// Input name -> video id.
    #[schema(value_type = BTreeMap<String, uuid::Uuid>)]
    pub inputs: BTreeMap<String, VideoId>,
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// The `/v1/videos` video this job processes, if it is that video's job.
    #[schema(value_type = Option<uuid::Uuid>, required = true)]
    pub video: Option<VideoId>,
    /// In an order where each step comes after those it reads.
    pub steps: Vec<StepView>,
    /// Only where the job is shown alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<StepEventView>>,
    /// For a job whose `package` step succeeded, shown alone: where players fetch it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub playback: Option<PlaybackView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// HLS and DASH URLs of a packaged job: the path carries a signed token covering the package's
/// folder, so the relative URIs inside resolve with it; no credential header is needed.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlaybackView {
    /// The HLS master playlist (`application/vnd.apple.mpegurl`).
    pub hls: String,
    /// The DASH MPD (`application/dash+xml`).
    pub dash: String,
    /// After this the URLs are refused (`playback-expired`): fetch the job again.
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub items: Vec<JobView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A built-in recipe.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecipeView {
    pub name: String,
    pub description: String,
    /// The document, as `POST /v1/jobs` takes it in `recipe`.
    #[schema(value_type = Object)]
    pub recipe: serde_json::Value,
}

/// An operation a step can run.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperationView {
    pub name: &'static str,
    pub summary: &'static str,
    /// How many inputs a step of it reads (at least).
    pub inputs: usize,
    /// At most (`concat` takes 2 to 16).
    pub max_inputs: usize,
    /// The artefacts it always makes (later steps may read them as `step/artefact`).
    pub artefacts: Vec<&'static str>,
    /// Its options with their defaults; `{}` for an operation with a required option
    /// (`merge_call`'s `call_end`).
    #[schema(value_type = Object)]
    pub defaults: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Recipes {
    pub recipes: Vec<RecipeView>,
    pub operations: Vec<OperationView>,
}

fn parse_id(id: &str) -> ApiResult<JobId> {
    id.parse().map_err(|_| ApiError::not_found("job"))
}

fn job_error(error: JobError) -> ApiError {
    match error {
        JobError::Invalid(problems) => ApiError::invalid(problems.into_fields()),
        JobError::Port(e) => ApiError::from_port(e, "job"),
    }
}

/// The view of a job: download links and history only when shown alone.
async fn view(state: &AppState, job: Job, alone: bool) -> ApiResult<JobView> {
    let ttl = state.settings.download_ttl();
    let history = if alone {
        let events = state
            .repo
            .job_events(job.id)
            .await
            .map_err(|e| ApiError::from_port(e, "job"))?;
        Some(events.into_iter().map(event_view).collect())
    } else {
        None
    };
    let playback = if alone {
        job.recipe
            .steps
            .iter()
            .filter(|spec| matches!(spec.op, vidsnap_domain::Operation::Package(_)))
            .find(|spec| {
                job.step(&spec.name).is_some_and(|step| {
                    step.status == vidsnap_domain::StepStatus::Succeeded
                        && step.artefacts.iter().any(|a| a.name == "hls")
                })
            })
            .map(|spec| {
                let (folder, expires_at) = state.playback.folder(job.id, &spec.name, Utc::now());
                PlaybackView {
                    hls: format!("{folder}master.m3u8"),
                    dash: format!("{folder}manifest.mpd"),
                    expires_at,
                }
            })
    } else {
        None
    };
    let mut steps = Vec::with_capacity(job.steps.len());
    for spec in &job.recipe.steps {
        let Some(step) = job.step(&spec.name) else {
            continue;
        };
        let mut artefacts = Vec::new();
        if alone {
            for artefact in &step.artefacts {
                let link = state
                    .blobs
                    .presign_get(&artefact.key, ttl)
                    .await
                    .map_err(|e| ApiError::from_port(e, "artefact"))?;
                artefacts.push(ArtefactView {
                    name: artefact.name.clone(),
                    content_type: artefact.content_type.clone(),
                    bytes: artefact.bytes,
                    sha256: artefact.sha256.clone(),
                    url: link.url,
                    expires_at: link.expires_at,
                });
            }
        }
        steps.push(StepView {
            name: step.name.clone(),
            op: spec.op.name().to_owned(),
            options: spec.op.options(),
            inputs: spec.inputs.iter().cloned().map(String::from).collect(),
            after: spec.after.clone(),
            status: step.status,
            attempts: step.attempts,
            max_attempts: step.max_attempts,
            last_error: step.last_error.clone(),
            progress: step.progress,
            run_at: step.run_at,
            started_at: step.started_at,
            finished_at: step.finished_at,
            result: step.result.clone(),
            artefacts,
        });
    }
    Ok(JobView {
        id: job.id,
        recipe_name: job.recipe_name,
        status: job.status,
        cycle: job.cycle,
        inputs: job
            .inputs
            .iter()
            .map(|(name, input)| (name.clone(), input.video))
            .collect(),
        params: match job.params {
            serde_json::Value::Null => serde_json::json!({}),
            params => params,
        },
        video: job.video,
        steps,
        history,
        playback,
        created_at: job.created_at,
        updated_at: job.updated_at,
    })
}

fn event_view(event: StepEvent) -> StepEventView {
    StepEventView {
        step: event.step,
        status: event.status,
        attempt: event.attempt,
        at: event.at,
        reason: event.reason,
    }
}

/// Run a recipe
///
/// Checks the recipe (every problem is answered at its JSON path in `fields`: `recipe.steps[1].op`,
/// `params.every`, `inputs.video`), then queues the steps whose inputs are there; steps reading
/// a video not uploaded yet wait for its upload.
#[utoipa::path(
    post,
    path = "/v1/jobs",
    operation_id = "create_job",
    tag = "jobs",
    request_body = NewJob,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "The job.", body = JobView),
        (status = 422, description = "The recipe, its parameters or its inputs are wrong (`validation-failed`; `fields` says where).", body = ErrorBody),
    ),
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewJob>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let mut fields = BTreeMap::new();
    let source = match (new.recipe, new.recipe_name) {
        (Some(doc), None) => match RecipeDoc::from_json(doc, "recipe") {
            Ok(doc) => Some(RecipeSource::Doc(doc)),
            Err(problems) => {
                fields.extend(problems.into_fields());
                None
            }
        },
        (None, Some(name)) => Some(RecipeSource::Named(name)),
        _ => {
            fields.insert(
                "recipe".to_owned(),
                "send exactly one of recipe and recipe_name".to_owned(),
            );
            None
        }
    };
    let mut inputs = BTreeMap::new();
    for (name, id) in new.inputs {
        match id.parse::<VideoId>() {
            Ok(id) => {
                inputs.insert(name, id);
            }
            Err(_) => {
                fields.insert(format!("inputs.{name}"), "must be a video id".to_owned());
            }
        }
    }
    let Some(source) = source.filter(|_| fields.is_empty()) else {
        return Err(ApiError::invalid(fields));
    };
    let params = new.params.unwrap_or(serde_json::Value::Null);
    let job = state
        .jobs
        .create(caller.user, source, params, inputs)
        .await
        .map_err(job_error)?;
    metrics::counter!("vidsnap_jobs_created_total").increment(1);
    Ok((StatusCode::CREATED, Json(view(&state, job, false).await?)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only jobs in this status.
    #[param(value_type = Option<JobStatusDoc>)]
    pub status: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// List jobs
///
/// The caller's jobs, newest first, a page at a time (without links or history).
#[utoipa::path(
    get,
    path = "/v1/jobs",
    operation_id = "list_jobs",
    tag = "jobs",
    params(ListQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of jobs.", body = JobList),
        (status = 400, description = "A cursor this listing did not give (`invalid-cursor`).", body = ErrorBody),
        (status = 422, description = "An unknown status, or a limit out of range (`validation-failed`).", body = ErrorBody),
    ),
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<JobList>> {
    let (status, limit) = listing(
        query.status.as_deref(),
        query.cursor.as_deref(),
        query.limit,
        &JobStatus::ALL,
        JobStatus::as_str,
    )?;
    let page = state
        .repo
        .jobs(caller.user, status, query.cursor.as_deref(), limit)
        .await
        .map_err(|e| ApiError::from_port(e, "job"))?;
    let mut items = Vec::with_capacity(page.items.len());
    for job in page.items {
        items.push(view(&state, job, false).await?);
    }
    Ok(Json(JobList {
        items,
        next_cursor: page.next_cursor,
    }))
}

async fn owned(state: &AppState, caller: Caller, id: &str) -> ApiResult<Job> {
    state
        .repo
        .job(Some(caller.user), parse_id(id)?)
        .await
        .map_err(|e| ApiError::from_port(e, "job"))
}

/// Show a job
///
/// Its steps with status, attempts, last error, progress and timings, their artefacts with
/// presigned download links, and its history.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    operation_id = "show_job",
    tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "The job's id.")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The job.", body = JobView),
        (status = 404, description = "No such job of the caller (`not-found`).", body = ErrorBody),
    ),
)]
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    let job = owned(&state, caller, &id).await?;
    Ok(Json(view(&state, job, true).await?))
}

/// Delete a job
///
/// Removes the job and its artefacts. A `/v1/videos` job goes with its video instead.
#[utoipa::path(
    delete,
    path = "/v1/jobs/{id}",
    operation_id = "delete_job",
    tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "The job's id.")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such job of the caller (`not-found`).", body = ErrorBody),
        (status = 409, description = "The job is running (cancel it first) or belongs to a video (`invalid-state`).", body = ErrorBody),
    ),
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let job = owned(&state, caller, &id).await?;
    if job.video.is_some() {
        return Err(ApiError::conflict(
            "invalid-state",
            "this job processes a video of /v1/videos: delete the video",
        ));
    }
    let job = state
        .repo
        .delete_job(caller.user, job.id)
        .await
        .map_err(|e| ApiError::from_port(e, "job"))?;
    // As for videos: the rows are gone, and bytes the storage could not delete now are
    // removed by the scheduler's orphan audit.
    if let Err(e) = state.blobs.delete_prefix(&job.prefix()).await {
        tracing::warn!(job = %job.id, error = %e, "deleting a deleted job's blobs failed; the storage sweep will remove them");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Cancel a job
///
/// Every unfinished step becomes `cancelled`; a running one is stopped within seconds (its
/// process killed, its scratch files removed). Steps that succeeded keep their artefacts.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/cancel",
    operation_id = "cancel_job",
    tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "The job's id.")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 202, description = "Cancelled.", body = JobView),
        (status = 404, description = "No such job of the caller (`not-found`).", body = ErrorBody),
        (status = 409, description = "The job already finished (`invalid-state`).", body = ErrorBody),
    ),
)]
async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let id = parse_id(&id)?;
    let update = state
        .jobs
        .change(Some(caller.user), id, Change::Cancel)
        .await
        .map_err(|e| ApiError::from_port(e, "job"))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(view(&state, update.job, false).await?),
    ))
}

/// Re-run a step
///
/// A `failed`, `dead` or `cancelled` step runs again (attempts restart), optionally with new
/// options, and every step downstream of it after it; steps that succeeded upstream are reused,
/// not recomputed. The job's next outcome is announced again.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/steps/{step}/retry",
    operation_id = "retry_step",
    tag = "jobs",
    params(
        ("id" = uuid::Uuid, Path, description = "The job's id."),
        ("step" = String, Path, description = "The step's name."),
    ),
    request_body(content = Option<RetryStep>, description = "Optional: new options for the step."),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 202, description = "Queued again.", body = JobView),
        (status = 404, description = "No such job of the caller, or no such step (`not-found`).", body = ErrorBody),
        (status = 409, description = "The step is not failed, dead or cancelled (`invalid-state`).", body = ErrorBody),
        (status = 422, description = "The options are wrong (`validation-failed`; `fields` says where).", body = ErrorBody),
    ),
)]
async fn retry_step(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, step)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let job = owned(&state, caller, &id).await?;
    let spec = job
        .recipe
        .step(&step)
        .ok_or_else(|| ApiError::not_found("step"))?;
    let request: RetryStep = if body.iter().all(u8::is_ascii_whitespace) {
        RetryStep::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation-failed",
                e.to_string(),
            )
        })?
    };
    let op = match request.options {
        None => None,
        Some(options) => Some(
            Operation::parse(spec.op.name(), &options, "options")
                .map_err(|p| ApiError::invalid(p.into_fields()))?,
        ),
    };
    let update = state
        .jobs
        .change(Some(caller.user), job.id, Change::Rerun { step, op })
        .await
        .map_err(|e| ApiError::from_port(e, "step"))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(view(&state, update.job, false).await?),
    ))
}

/// Follow a job's changes (server-sent events)
///
/// An `event: job` whose `data` is the job (as `GET /v1/jobs/{id}` shows it, with links) now and
/// each time a step changes (status, attempts, progress); the stream ends once the job is
/// `succeeded`, `failed`, `dead` or `cancelled`, or when the server shuts down.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/events",
    operation_id = "follow_job",
    tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "The job's id.")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (
            status = 200,
            description = "A `text/event-stream` of `job` events; each `data` is a `Job` as JSON.",
            content_type = "text/event-stream",
            body = String,
            example = json!("event: job\ndata: {\"id\":\"…\",\"status\":\"running\",…}\n\n"),
        ),
        (status = 404, description = "No such job of the caller (`not-found`).", body = ErrorBody),
    ),
)]
async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let first = owned(&state, caller, &id).await?;
    let id = first.id;
    let changes = state.events.subscribe_jobs();
    let (reader, renderer) = (state.clone(), state.clone());
    Ok(follow(
        state,
        "job",
        first,
        changes,
        move || {
            let repo = reader.repo.clone();
            async move { repo.job(Some(caller.user), id).await }
        },
        move |job| {
            let state = renderer.clone();
            async move { view(&state, job, true).await }
        },
    ))
}

impl Followed for Job {
    /// Each step's status, attempts and progress.
    type Key = Vec<(StepStatus, u32, Option<u8>)>;

    fn key(&self) -> Self::Key {
        self.steps
            .iter()
            .map(|s| (s.status, s.attempts, s.progress))
            .collect()
    }

    fn same(&self, other: &Self) -> bool {
        self.id == other.id
    }

    fn terminal(&self) -> bool {
        self.status.is_terminal()
    }
}

/// List recipes and operations
///
/// The built-in recipes (run one with `recipe_name`) with their documents, and every operation
/// a step can run with its option defaults.
#[utoipa::path(
    get,
    path = "/v1/recipes",
    operation_id = "list_recipes",
    tag = "jobs",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Recipes and operations.", body = Recipes),
    ),
)]
async fn recipes(_caller: Caller) -> Json<Recipes> {
    let recipes = recipe::builtins()
        .into_iter()
        .map(|doc| RecipeView {
            name: doc.name.clone().unwrap_or_default(),
            description: doc.description.clone().unwrap_or_default(),
            recipe: serde_json::to_value(&doc).unwrap_or_default(),
        })
        .collect();
    let operations = Operation::ALL
        .iter()
        .map(|info| OperationView {
            name: info.name,
            summary: info.summary,
            inputs: info.inputs,
            max_inputs: info.max_inputs,
            artefacts: info.artefacts.to_vec(),
            defaults: Operation::parse(info.name, &serde_json::Value::Null, "options")
                .map(|op| op.options())
                .unwrap_or_else(|_| serde_json::json!({})),
        })
        .collect();
    Json(Recipes {
        recipes,
        operations,
    })
}
