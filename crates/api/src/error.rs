//! The one error type at the HTTP edge: `{"error": {"code", "message", "fields"?}}` with a stable
//! kebab-case code and the right status. Internal details are logged, never sent.

use std::collections::BTreeMap;

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use vidsnap_domain::PortError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fields: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    fields: &'a BTreeMap<String, String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: BTreeMap::new(),
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no such {what}"),
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// A 422 listing what is wrong with each field.
    pub fn invalid(fields: BTreeMap<String, String>) -> Self {
        let message = fields
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "validation-failed",
            message,
            fields,
        }
    }

    pub fn field(name: &str, problem: impl Into<String>) -> Self {
        Self::invalid(BTreeMap::from([(name.to_owned(), problem.into())]))
    }

    /// Logs the cause and answers a generic 500 (or 503 when a backend is down).
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong on our side",
        )
    }

    /// Maps a port error seen while serving `what`.
    pub fn from_port(error: PortError, what: &str) -> Self {
        match error {
            PortError::NotFound => Self::not_found(what),
            // The detail may be a database's own words: logged, never sent.
            PortError::Conflict(detail) => {
                tracing::info!(%detail, "conflict");
                Self::conflict(
                    "conflict",
                    format!("the {what} conflicts with one that exists"),
                )
            }
            PortError::Refused(message) => Self::conflict("invalid-state", message),
            PortError::InvalidTransition { from, to } => Self::conflict(
                "invalid-state",
                format!("the {what} is {from} and cannot become {to}"),
            ),
            PortError::LeaseLost => Self::internal("lease lost in a request"),
            PortError::Locked => Self::new(
                StatusCode::LOCKED,
                "locked",
                format!("another request is changing this {what}; try again when it has finished"),
            ),
            PortError::Unavailable(cause) => {
                tracing::error!(error = %cause, "backend unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "a backend is unavailable; try again shortly",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                fields: &self.fields,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A backstop for what the framework still answers in plain text: a path segment that is not
/// UTF-8 once percent-decoded (`/v1/videos/%FF`), a method a route does not take, a body past
/// the limit where no extractor of ours reads it. Same format as every other error, code by
/// status, headers such as `Allow` kept.
pub async fn framework_errors_as_json(response: Response) -> Response {
    let status = response.status();
    // Plain text, or nothing at all (axum's 405 has no body).
    let from_framework = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/plain"));
    // The statuses axum's own rejections use (a route of ours may answer text on purpose, as
    // `/metrics` does).
    let framework_status = matches!(
        status,
        StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED | StatusCode::PAYLOAD_TOO_LARGE
    );
    if !from_framework || !framework_status {
        return response;
    }
    let (parts, body) = response.into_parts();
    let message = axum::body::to_bytes(body, 4096)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .ok()
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_lowercase());
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large",
        _ => "invalid-request",
    };
    let mut answer = ApiError::new(status, code, message).into_response();
    for (name, value) in &parts.headers {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}
