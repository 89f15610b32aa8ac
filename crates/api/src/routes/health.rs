//! Liveness, readiness and Prometheus metrics.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use axum::{
    Json,
    extract::{MatchedPath, Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::AppState;

/// A backend slower than this to answer counts as not ready.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    #[schema(examples("ok"))]
    status: &'static str,
}

/// Whether this process answers
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "liveness",
    tag = "health",
    responses((status = 200, description = "The process is up.", body = Liveness)),
)]
async fn live() -> Json<Liveness> {
    Json(Liveness { status: "ok" })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// Each backend this process's role needs, and whether it answered (within 5 s).
    #[schema(example = json!({"database": true, "queue": true, "storage": true}))]
    checks: BTreeMap<&'static str, bool>,
    /// `ready` or `not-ready`.
    #[schema(examples("ready", "not-ready"))]
    status: &'static str,
}

/// Whether this process can serve
///
/// Ready when every backend this process needs answers.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readiness",
    tag = "health",
    responses(
        (status = 200, description = "Every backend answers.", body = Readiness),
        (status = 503, description = "A backend does not answer; `checks` says which.", body = Readiness),
    ),
)]
async fn ready(State(state): State<AppState>) -> Response {
    let answers = state.readiness.0.iter().map(|(name, probe)| async move {
        let answered = tokio::time::timeout(PROBE_TIMEOUT, probe()).await;
        (*name, answered.unwrap_or(false))
    });
    let checks: BTreeMap<_, _> = futures_util::future::join_all(answers)
        .await
        .into_iter()
        .collect();
    let ok = checks.values().all(|answered| *answered);
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: if ok { "ready" } else { "not-ready" },
        checks,
    };
    (status, Json(body)).into_response()
}

/// Prometheus metrics
///
/// Request latencies by route, videos by status, queue depth and age.
// Gauges are refreshed at scrape time from the database and the queue.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "health",
    responses(
        (status = 200, description = "The Prometheus text format.", content_type = "text/plain; version=0.0.4", body = String),
        (status = 404, description = "Metrics are disabled (a plain-text answer).", content_type = "text/plain", body = String),
    ),
)]
async fn metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = &state.metrics else {
        return (StatusCode::NOT_FOUND, "metrics are disabled").into_response();
    };
    if let Ok(counts) = state.repo.count_by_status().await {
        for status in vidsnap_domain::VideoStatus::ALL {
            let n = counts
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |(_, n)| *n);
            metrics::gauge!("vidsnap_videos", "status" => status.as_str()).set(n as f64);
        }
    }
    if let Ok(stats) = state.queue.stats().await {
        metrics::gauge!("vidsnap_queue_depth").set(stats.queued as f64);
        metrics::gauge!("vidsnap_queue_running").set(stats.running as f64);
        metrics::gauge!("vidsnap_queue_dead").set(stats.dead as f64);
        metrics::gauge!("vidsnap_queue_oldest_seconds")
            .set(stats.oldest_queued_seconds.unwrap_or(0.0));
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// Records every request's latency by route template (never by raw path: ids would explode the
/// label set).
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("vidsnap_http_request_seconds", "method" => method, "route" => route, "status" => status)
        .record(started.elapsed().as_secs_f64());
    response
}
