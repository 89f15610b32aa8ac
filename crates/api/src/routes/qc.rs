//! The bucket workflow's results (seed 002's read API, authenticated): each decision about a
//! file of a sorted watched folder, with its rating and every check, over a time range; and how
//! many had each outcome.

use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use vidsnap_domain::{Failure, QcCounts, QcOutcome, QcResult};

use crate::{
    ApiError, ApiResult, AppState, auth::Caller, extract::ApiQuery, openapi::ErrorBody,
    routes::follow::listing,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(results))
        .routes(routes!(count))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// The range's start (RFC 3339), included.
    pub begin_time: Option<String>,
    /// The range's end (RFC 3339), excluded.
    pub end_time: Option<String>,
    /// The `next_cursor` of the previous page (`/v1/qc/results` only).
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 20; `/v1/qc/results` only).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// One decision about one file.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = QcResult)]
pub struct QcResultView {
    #[schema(value_type = uuid::Uuid)]
    pub id: vidsnap_domain::QcResultId,
    #[schema(value_type = uuid::Uuid)]
    pub video: vidsnap_domain::VideoId,
    #[schema(value_type = Option<uuid::Uuid>)]
    pub job: Option<vidsnap_domain::JobId>,
    /// 0 for the first decision about the file, then one more per retry.
    pub attempt: u32,
    /// Where the file was when it was checked.
    pub key: String,
    pub file_name: String,
    /// `processed`, `failed` or `unable_to_process`.
    #[schema(value_type = String)]
    pub outcome: QcOutcome,
    /// Seed 002's rating, 0 to 5.
    pub rating: Option<u8>,
    /// The quality verdict (the sidecar may still fail the file).
    pub passed: bool,
    /// Why it failed: `{code, message}` (e.g. `metadata-missing`, `sidecar-size-mismatch`).
    #[schema(value_type = Option<Object>)]
    pub error: Option<Failure>,
    /// The report's checks (`qc.json`), null when there was no report.
    #[schema(value_type = Object)]
    pub checks: Value,
    /// The metadata sidecar as read, null when there was none.
    #[schema(value_type = Object)]
    pub sidecar: Value,
    /// Where the file was moved, if it was.
    pub moved_to: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<QcResult> for QcResultView {
    fn from(r: QcResult) -> Self {
        Self {
            id: r.id,
            video: r.video,
            job: r.job,
            attempt: r.attempt,
            key: r.key,
            file_name: r.file_name,
            outcome: r.outcome,
            rating: r.rating,
            passed: r.passed,
            error: r.error,
            checks: r.checks,
            sidecar: r.sidecar,
            moved_to: r.moved_to,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QcResultList {
    pub items: Vec<QcResultView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QcCountsView {
    pub begin_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub processed: u64,
    pub failed: u64,
    pub unable_to_process: u64,
    pub total: u64,
}

/// `[begin, end)`: both RFC 3339; the start defaults to the epoch, the end to now.
fn range(query: &RangeQuery) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
    let parse = |name: &str, value: Option<&str>, default: DateTime<Utc>| match value {
        None => Ok(default),
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::field(name, "must be an RFC 3339 time, e.g. 2026-12-07T00:00:00Z")
            }),
    };
    let begin = parse(
        "begin_time",
        query.begin_time.as_deref(),
        DateTime::UNIX_EPOCH,
    )?;
    let end = parse("end_time", query.end_time.as_deref(), Utc::now())?;
    if end < begin {
        return Err(ApiError::field("end_time", "must not be before begin_time"));
    }
    Ok((begin, end))
}

/// List QC results
///
/// The caller's bucket-workflow decisions made in `[begin_time, end_time)`, oldest first, a page
/// at a time, each with its rating and every check.
#[utoipa::path(
    get,
    path = "/v1/qc/results",
    operation_id = "list_qc_results",
    tag = "qc",
    params(RangeQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of results.", body = QcResultList),
        (status = 400, description = "A cursor this listing did not give (`invalid-cursor`).", body = ErrorBody),
        (status = 422, description = "A malformed time or limit (`validation-failed`).", body = ErrorBody),
    ),
)]
async fn results(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<RangeQuery>,
) -> ApiResult<Json<QcResultList>> {
    let (begin, end) = range(&query)?;
    let (_, limit) = listing::<QcOutcome>(
        None,
        query.cursor.as_deref(),
        query.limit,
        &QcOutcome::ALL,
        QcOutcome::as_str,
    )?;
    let page = state
        .repo
        .qc_results(caller.user, begin, end, query.cursor.as_deref(), limit)
        .await
        .map_err(|e| ApiError::from_port(e, "result"))?;
    Ok(Json(QcResultList {
        items: page.items.into_iter().map(QcResultView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Count QC results
///
/// How many of the caller's bucket-workflow decisions in `[begin_time, end_time)` had each
/// outcome.
#[utoipa::path(
    get,
    path = "/v1/qc/results/count",
    operation_id = "count_qc_results",
    tag = "qc",
    params(RangeQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Counts by outcome.", body = QcCountsView),
        (status = 422, description = "A malformed time (`validation-failed`).", body = ErrorBody),
    ),
)]
async fn count(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<RangeQuery>,
) -> ApiResult<Json<QcCountsView>> {
    let (begin, end) = range(&query)?;
    let QcCounts {
        processed,
        failed,
        unable_to_process,
        total,
    } = state
        .repo
        .count_qc_results(caller.user, begin, end)
        .await
        .map_err(|e| ApiError::from_port(e, "result"))?;
    Ok(Json(QcCountsView {
        begin_time: begin,
        end_time: end,
        processed,
        failed,
        unable_to_process,
        total,
    }))
}
