//! The API's own description: `/openapi.json`, and `/docs`, a page that renders it without
//! loading anything from elsewhere (it works offline and behind firewalls).

use std::sync::LazyLock;

use axum::{
    http::header,
    response::{Html, IntoResponse, Response},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{ApiError, AppState, openapi::ErrorBody};

/// The docs page: inline CSS and script, no external URL.
const PAGE: &str = include_str!("../../assets/docs.html");

/// Built once: the description is fixed at compile time.
static SPEC: LazyLock<Option<String>> = LazyLock::new(|| crate::openapi().to_json().ok());

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(spec))
        .routes(routes!(docs))
}

/// This description (OpenAPI 3.1)
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "meta",
    responses(
        (status = 200, description = "The OpenAPI 3.1 description of the API.", content_type = "application/json", body = Object),
        (status = 500, description = "The description could not be serialised (`internal`).", body = ErrorBody),
    ),
)]
async fn spec() -> Response {
    match SPEC.as_deref() {
        Some(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        None => ApiError::internal("serialising the OpenAPI description failed").into_response(),
    }
}

/// Human-readable API documentation
///
/// A page rendering `/openapi.json`: operations by tag, their parameters and schemas.
#[utoipa::path(
    get,
    path = "/docs",
    operation_id = "docs",
    tag = "meta",
    responses((status = 200, description = "An HTML page.", content_type = "text/html", body = String)),
)]
async fn docs() -> Html<&'static str> {
    Html(PAGE)
}
