//! Webhooks: register (the signing secret is shown once), list, delete, delivery log, redeliver.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{delete, get, post},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use vidsnap_domain::{Notification, NotificationId, Webhook, WebhookId};

use crate::{ApiError, ApiResult, AppState, auth::Caller, auth::tokens::random_secret};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/webhooks", post(create).get(list))
        .route("/v1/webhooks/{id}", delete(remove))
        .route("/v1/webhooks/{id}/deliveries", get(deliveries))
        .route(
            "/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
            post(redeliver),
        )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    pub url: String,
}

#[derive(Debug, Serialize)]
pub struct WebhookView {
    pub id: WebhookId,
    pub url: String,
    pub created_at: DateTime<Utc>,
    /// Only in the creation response.
    #[serde(skip_serializing_if = "Option::is_none")]
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

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewWebhook>,
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

async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<WebhookView>>> {
    let hooks = state
        .repo
        .webhooks(caller.user)
        .await
        .map_err(|e| ApiError::from_port(e, "webhook"))?;
    Ok(Json(hooks.iter().map(WebhookView::from).collect()))
}

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

#[derive(Debug, Serialize)]
pub struct DeliveryView {
    pub id: NotificationId,
    pub event: String,
    pub video: vidsnap_domain::VideoId,
    pub status: vidsnap_domain::DeliveryStatus,
    pub attempts: u32,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub payload: serde_json::Value,
}

impl From<&Notification> for DeliveryView {
    fn from(n: &Notification) -> Self {
        Self {
            id: n.id,
            event: n.event.as_str().to_owned(),
            video: n.video,
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
