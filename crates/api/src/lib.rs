//! Vidsnap's HTTP API.
//!
//! # Layout
//! - [`router`]: every route, with the metrics middleware and a JSON 404.
//! - [`state`]: [`AppState`], what handlers share (ports as `Arc<dyn …>`, token keys, settings).
//! - `routes/`: one module per resource: `auth` (accounts, tokens, API keys), `videos`
//!   (create/list/show/delete/retry, SSE), `webhooks` (and their delivery log), `health`
//!   (`/healthz`, `/readyz`, `/metrics`).
//! - [`auth`]: the [`auth::Caller`] extractor, passwords, tokens, external identities.
//! - [`error`]: [`ApiError`], the one error type at the edge.
//! - [`upload`]: [`upload::QueueOnUpload`], the upload-complete -> queued link.
//! - [`events`]: the in-process broadcast of video changes behind SSE.

pub mod auth;
pub mod error;
pub mod events;
mod routes;
pub mod state;
pub mod upload;

use axum::{Router, http::StatusCode, middleware};

pub use error::{ApiError, ApiResult};
pub use state::{ApiSettings, AppState, Shared};

/// Every route of the API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(routes::auth::routes())
        .merge(routes::videos::routes())
        .merge(routes::webhooks::routes())
        .merge(routes::health::routes())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such route") })
        .layer(middleware::from_fn(routes::health::track))
        .with_state(state)
}
