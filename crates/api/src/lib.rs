//! Vidsnap's HTTP API.
//!
//! # Layout
//! - [`router`]: every route, with the metrics middleware and a JSON 404; [`openapi`]: their
//!   description (served at `/openapi.json`, rendered at `/docs`). [`router_with_ui`]: the same
//!   with the web UI (`vidsnap-web`) answering outside `/v1`.
//! - [`state`]: [`AppState`], what handlers share (ports as `Arc<dyn …>`, token keys, settings).
//! - `routes/`: one module per resource: `auth` (accounts, tokens, API keys), `session`
//!   (browser sign-in and sign-out with a cookie), `videos`
//!   (create/list/show/delete/retry, SSE), `jobs` (run recipes over videos: create, list, show,
//!   cancel, re-run a step, SSE, delete; the built-in recipes and operations), `uploads` (resumable uploads: tus 1.0.0 on the
//!   upload core, `vidsnap-uploads`), `multipart` (direct multipart uploads to S3 through
//!   presigned part URLs), `webhooks` (and their delivery log), `health`
//!   (`/healthz`, `/readyz`, `/metrics`), `docs` (`/openapi.json`, `/docs`). Each handler carries
//!   its `#[utoipa::path]` annotation and is registered with `utoipa_axum::routes!`, which routes
//!   it and describes it at once.
//! - `openapi`: what the annotations do not say: security schemes, shared error answers, the
//!   storage's signed blob routes, schemas of domain types.
//! - [`auth`]: the [`auth::Caller`] extractor, passwords, tokens, browser sessions (cookie and
//!   CSRF origin check), external identities.
//! - [`error`]: [`ApiError`], the one error type at the edge.
//! - [`playback`]: signed playback URLs of packaged jobs (a token in the path, so relative
//!   segment URIs keep it).
//! - [`cors`]: the CORS layer for browser clients on other origins (`api.cors_origins`).
//! - [`server`]: the HTTP server and its limits on clients (head, body and keep-alive timeouts,
//!   a connection cap).
//! - [`events`]: the in-process broadcast of video and job changes behind SSE (the job
//!   service's observer).

pub mod auth;
pub mod cors;
pub mod error;
pub mod events;
pub mod extract;
mod openapi;
pub mod playback;
mod routes;
pub mod server;
pub mod state;

use axum::{Router, http::StatusCode, middleware, response::IntoResponse};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, ApiResult};
pub use state::{ApiSettings, AppState, ReadinessChecks, Shared};

/// Every route with its operation: the one list both [`router`] and [`openapi`] are made from.
fn described_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(routes::auth::routes())
        .merge(routes::session::routes())
        .merge(routes::videos::routes())
        .merge(routes::jobs::routes())
        .merge(routes::multipart::routes())
        .merge(routes::uploads::routes())
        .merge(routes::webhooks::routes())
        .merge(routes::qc::routes())
        .merge(routes::playback::routes())
        .merge(routes::health::routes())
        .merge(routes::docs::routes())
}

/// Every route of the API.
pub fn router(state: AppState) -> Router {
    with_fallback(state, None)
}

/// Every route of the API, and `ui` answering the paths no route takes outside `/v1` (the web
/// UI's pages and assets). An unknown `/v1/…` is still the API's JSON 404.
pub fn router_with_ui(state: AppState, ui: Router) -> Router {
    with_fallback(state, Some(ui))
}

fn with_fallback(state: AppState, ui: Option<Router>) -> Router {
    use tower::ServiceExt;
    let (routes, _) = described_routes().split_for_parts();
    let fallback = move |request: axum::extract::Request| {
        let ui = ui.clone();
        async move {
            let path = request.uri().path();
            let api = path == "/v1" || path.starts_with("/v1/");
            match ui.filter(|_| !api) {
                Some(ui) => match ui.oneshot(request).await {
                    Ok(answer) => answer,
                    Err(never) => match never {},
                },
                None => ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such route")
                    .into_response(),
            }
        }
    };
    routes
        .fallback(fallback)
        .layer(middleware::map_response(error::framework_errors_as_json))
        .layer(middleware::from_fn(routes::health::track))
        .with_state(state)
}

/// Only `/healthz`, `/readyz` and `/metrics`: what a worker or scheduler process serves.
pub fn health_router(state: AppState) -> Router {
    let (routes, _) = routes::health::routes().split_for_parts();
    routes
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such route") })
        .with_state(state)
}

/// The OpenAPI 3.1 description of every route of [`router`], and of the signed blob routes the
/// local storage backend adds beside them.
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi::complete(described_routes().into_openapi())
}
