//! Webhooks: register (the signing secret is shown once), list, delete, delivery log, redeliver.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use vidsnap_domain::{Notification, NotificationId, Webhook, WebhookId};

use crate::{
    ApiError, ApiResult, AppState,
    auth::Caller,
    auth::tokens::random_secret,
    extract::ApiJson,
    openapi::{DeliveryStatusDoc, ErrorBody},
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(remove))
        .routes(routes!(deliveries))
        .routes(routes!(redeliver))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where to POST events: an http or https URL.
    #[schema(examples("https://example.com/hooks/vidsnap"), max_length = 2048)]
    pub url: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Webhook)]
pub struct WebhookView {
    #[schema(value_type = uuid::Uuid)]
    pub id: WebhookId,
    pub url: String,
    pub created_at: DateTime<Utc>,
    /// Only in the creation response: the key deliveries are signed with (HMAC-SHA256 over
    /// `timestamp.body`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub secret: Option<String>,
}

impl From<&Webhook> for WebhookView {
    fn from(hook: &Webhook) -> Self {
        Self {
            id: hook.id,
            url: hook.url.clone(),
            created_at: hook.created_at,
            secret: None,
        }
    }
}

fn parse<T: std::str::FromStr>(id: &str, what: &str) -> ApiResult<T> {
    id.parse().map_err(|_| ApiError::not_found(what))
}

/// Register a webhook
///
/// The signing secret is in this answer only.
#[utoipa::path(
    post,
    path = "/v1/webhooks",
    operation_id = "create_webhook",
    tag = "webhooks",
    request_body = NewWebhook,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "The webhook, with its signing secret.", body = WebhookView),
        (status = 422, description = "Not an http or https URL (`validation-failed`).", body = ErrorBody),
    ),
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewWebhook>,
) -> ApiResult<(StatusCode, Json<WebhookView>)> {
    let url = new.url.trim().to_owned();
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    if !scheme_ok || url.len() > 2048 || url.chars().any(char::is_whitespace) {
        return Err(ApiError::field("url", "must be an http or https URL"));
    }
    let hook = Webhook {
        id: WebhookId::new(),
        owner: caller.user,
        url,
        secret: random_secret("whsec_"),
        created_at: Utc::now(),
    };
    state
        .repo
        .create_webhook(&hook)
        .await
        .map_err(|e| ApiError::from_port(e, "webhook"))?;
    let mut view = WebhookView::from(&hook);
    view.secret = Some(hook.secret.clone());
    Ok((StatusCode::CREATED, Json(view)))
}

/// List webhooks
#[utoipa::path(
    get,
    path = "/v1/webhooks",
    operation_id = "list_webhooks",
    tag = "webhooks",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, description = "The caller's webhooks, without secrets.", body = [WebhookView])),
)]
async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<WebhookView>>> {
    let hooks = state
        .repo
        .webhooks(caller.user)
        .await
        .map_err(|e| ApiError::from_port(e, "webhook"))?;
    Ok(Json(hooks.iter().map(WebhookView::from).collect()))
}

/// Delete a webhook
#[utoipa::path(
    delete,
    path = "/v1/webhooks/{id}",
    operation_id = "delete_webhook",
    tag = "webhooks",
    params(("id" = uuid::Uuid, Path, description = "The webhook's id.")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted: no further deliveries."),
        (status = 404, description = "No such webhook of the caller (`not-found`).", body = ErrorBody),
    ),
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .repo
        .delete_webhook(caller.user, parse(&id, "webhook")?)
        .await
        .map_err(|e| ApiError::from_port(e, "webhook"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// One event owed to a webhook, and how its delivery went.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Delivery)]
pub struct DeliveryView {
    #[schema(value_type = uuid::Uuid)]
    pub id: NotificationId,
    #[schema(examples("video.succeeded", "job.failed"))]
    pub event: String,
    /// The video of a `video.*` event; the first input of a `job.*` one.
    #[schema(value_type = uuid::Uuid)]
    pub video: vidsnap_domain::VideoId,
    /// The job of a `job.*` event.
    #[schema(value_type = Option<uuid::Uuid>, required = true)]
    pub job: Option<vidsnap_domain::JobId>,
    #[schema(value_type = DeliveryStatusDoc)]
    pub status: vidsnap_domain::DeliveryStatus,
    pub attempts: u32,
    /// The HTTP status of the last attempt.
    #[schema(required = true)]
    pub last_status_code: Option<u16>,
    #[schema(required = true)]
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    #[schema(required = true)]
    pub delivered_at: Option<DateTime<Utc>>,
    /// The event body, the same bytes on every attempt.
    #[schema(value_type = crate::openapi::EventDoc)]
    pub payload: serde_json::Value,
}

impl From<&Notification> for DeliveryView {
    fn from(n: &Notification) -> Self {
        Self {
            id: n.id,
            event: n.event.as_str().to_owned(),
            video: n.video,
            job: n.job,
            status: n.status,
            attempts: n.attempts,
            last_status_code: n.last_status_code,
            last_error: n.last_error.clone(),
            next_attempt_at: n.next_attempt_at,
            created_at: n.created_at,
            delivered_at: n.delivered_at,
            payload: n.payload.clone(),
        }
    }
}

/// List a webhook's deliveries
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/deliveries",
    operation_id = "list_deliveries",
    tag = "webhooks",
    params(("id" = uuid::Uuid, Path, description = "The webhook's id.")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Every event owed to this webhook.", body = [DeliveryView]),
        (status = 404, description = "No such webhook of the caller (`not-found`).", body = ErrorBody),
    ),
)]
async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<DeliveryView>>> {
    let list = state
        .repo
        .deliveries(caller.user, parse(&id, "webhook")?)
        .await
        .map_err(|e| ApiError::from_port(e, "webhook"))?;
    Ok(Json(list.iter().map(DeliveryView::from).collect()))
}

/// Deliver an event again
///
/// Makes the delivery pending again, due now, whatever its state.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
    operation_id = "redeliver",
    tag = "webhooks",
    params(
        ("id" = uuid::Uuid, Path, description = "The webhook's id."),
        ("delivery" = uuid::Uuid, Path, description = "The delivery's id."),
    ),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 202, description = "Pending again.", body = DeliveryView),
        (status = 404, description = "No such webhook of the caller, or no such delivery of it (`not-found`).", body = ErrorBody),
    ),
)]
async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    Path((hook, delivery)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<DeliveryView>)> {
    let hook: WebhookId = parse(&hook, "webhook")?;
    let id: NotificationId = parse(&delivery, "delivery")?;
    // The delivery must belong to this webhook of this user.
    let belongs = state
        .repo
        .deliveries(caller.user, hook)
        .await
        .map_err(|e| ApiError::from_port(e, "webhook"))?
        .iter()
        .any(|n| n.id == id);
    if !belongs {
        return Err(ApiError::not_found("delivery"));
    }
    let n = state
        .repo
        .redeliver(caller.user, id)
        .await
        .map_err(|e| ApiError::from_port(e, "delivery"))?;
    if let Some(waker) = &state.deliveries_waker {
        waker.notify_one();
    }
    Ok((StatusCode::ACCEPTED, Json(DeliveryView::from(&n))))
}
