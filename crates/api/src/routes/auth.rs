//! Accounts and credentials: register, log in, refresh, who am I, API keys.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use vidsnap_domain::{ApiKey, ApiKeyId, PortError, User, UserId};

use crate::{
    ApiError, ApiResult, AppState,
    auth::{
        Caller, passwords,
        tokens::{random_secret, sha256_hex},
    },
    extract::ApiJson,
    openapi::ErrorBody,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(me))
        .routes(routes!(create_key, list_keys))
        .routes(routes!(revoke_key))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[schema(examples("ada@example.com"))]
    pub email: String,
    /// 10 to 256 characters.
    #[schema(min_length = 10, max_length = 256)]
    pub password: String,
}

/// A new token pair, and whose it is.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tokens {
    pub user: UserView,
    /// A JWT to send as `Authorization: Bearer …`.
    pub access_token: String,
    #[schema(examples("Bearer"))]
    pub token_type: &'static str,
    /// Seconds the access token stays valid.
    pub expires_in: u64,
    /// Opaque (`vsr_…`), single use: exchange it at `/v1/auth/refresh` for a new pair.
    pub refresh_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = User)]
pub struct UserView {
    #[schema(value_type = uuid::Uuid)]
    pub id: UserId,
    pub email: String,
    pub created_at: chrono::DateTime<Utc>,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            email: user.email.clone(),
            created_at: user.created_at,
        }
    }
}

fn check_credentials(credentials: &Credentials) -> ApiResult<String> {
    let email = credentials.email.trim().to_lowercase();
    let mut fields = std::collections::BTreeMap::new();
    let valid_email = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.ends_with('.')
        });
    if !valid_email {
        fields.insert("email".to_owned(), "must be an e-mail address".to_owned());
    }
    let length = credentials.password.chars().count();
    if !(10..=256).contains(&length) {
        fields.insert(
            "password".to_owned(),
            "must be 10 to 256 characters".to_owned(),
        );
    }
    if fields.is_empty() {
        Ok(email)
    } else {
        Err(ApiError::invalid(fields))
    }
}

async fn issue(state: &AppState, user: &User) -> ApiResult<Tokens> {
    let access_token = state
        .keys
        .access_token(user.id)
        .map_err(ApiError::internal)?;
    let refresh_token = random_secret("vsr_");
    let expires = Utc::now() + state.keys.refresh_ttl;
    state
        .repo
        .store_refresh_token(user.id, &sha256_hex(&refresh_token), expires)
        .await
        .map_err(|e| ApiError::from_port(e, "user"))?;
    Ok(Tokens {
        user: user.into(),
        access_token,
        token_type: "Bearer",
        expires_in: state.keys.access_ttl.as_secs(),
        refresh_token,
    })
}

/// Create an account
///
/// Answers with a first token pair, as a login would.
#[utoipa::path(
    post,
    path = "/v1/auth/register",
    operation_id = "register",
    tag = "auth",
    request_body = Credentials,
    responses(
        (status = 201, description = "The account exists; here are its tokens.", body = Tokens),
        (status = 409, description = "An account with this e-mail exists (`email-taken`).", body = ErrorBody),
        (status = 422, description = "The e-mail or the password is not acceptable (`validation-failed`).", body = ErrorBody),
    ),
)]
async fn register(
    State(state): State<AppState>,
    ApiJson(credentials): ApiJson<Credentials>,
) -> ApiResult<(StatusCode, Json<Tokens>)> {
    let email = check_credentials(&credentials)?;
    let hash = passwords::hash(credentials.password, state.settings.password_cost)
        .await
        .map_err(ApiError::internal)?;
    let user = User {
        id: UserId::new(),
        email,
        password_hash: Some(hash),
        external_issuer: None,
        external_subject: None,
        created_at: Utc::now(),
    };
    match state.repo.create_user(&user).await {
        Ok(()) => {}
        Err(PortError::Conflict(_)) => {
            return Err(ApiError::conflict(
                "email-taken",
                "an account with this e-mail exists",
            ));
        }
        Err(e) => return Err(ApiError::from_port(e, "user")),
    }
    Ok((StatusCode::CREATED, Json(issue(&state, &user).await?)))
}

/// Log in with e-mail and password
#[utoipa::path(
    post,
    path = "/v1/auth/login",
    operation_id = "login",
    tag = "auth",
    request_body = Credentials,
    responses(
        (status = 200, description = "A new token pair.", body = Tokens),
        (status = 401, description = "Wrong e-mail or password (`unauthorized`).", body = ErrorBody),
        (status = 429, description = "Too many failed logins for this account or address (`too-many-attempts`); `Retry-After` says when to try again.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until logins are accepted again."))),
    ),
)]
async fn login(
    State(state): State<AppState>,
    address: ClientAddress,
    ApiJson(credentials): ApiJson<Credentials>,
) -> Result<Json<Tokens>, axum::response::Response> {
    let user = authenticate(&state, address, credentials).await?;
    Ok(Json(
        issue(&state, &user)
            .await
            .map_err(IntoResponse::into_response)?,
    ))
}

/// The user whose e-mail and password these are, counting failures against the login limits
/// (logins and browser sessions alike).
pub(super) async fn authenticate(
    state: &AppState,
    address: ClientAddress,
    credentials: Credentials,
) -> Result<User, axum::response::Response> {
    let email = credentials.email.trim().to_lowercase();
    let throttle = state.login_throttle();
    let now = std::time::Instant::now();
    if let Err(wait) = throttle.check(&email, address.0, now) {
        return Err(too_many_attempts(wait));
    }
    let refused = || {
        throttle.failed(&email, address.0, now);
        ApiError::unauthorized("wrong e-mail or password").into_response()
    };
    let user = match state.repo.user_by_email(&email).await {
        Ok(user) => user,
        Err(PortError::NotFound) => return Err(refused()),
        Err(e) => return Err(ApiError::from_port(e, "user").into_response()),
    };
    let Some(hash) = user.password_hash.clone() else {
        return Err(refused());
    };
    if !passwords::verify(credentials.password, hash).await {
        return Err(refused());
    }
    throttle.succeeded(&email);
    Ok(user)
}

/// 429 `too-many-attempts` with `Retry-After` in whole seconds.
fn too_many_attempts(wait: std::time::Duration) -> axum::response::Response {
    let seconds = wait.as_secs().max(1);
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-attempts",
        format!("too many failed logins: try again in {seconds} s"),
    )
    .into_response();
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from(seconds),
    );
    response
}

/// The client's address, when the server knows it (`into_make_service_with_connect_info`).
#[derive(Debug, Clone, Copy)]
pub(super) struct ClientAddress(Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Exchange a refresh token for a new pair
///
/// A refresh token works once: the answer carries its replacement.
#[utoipa::path(
    post,
    path = "/v1/auth/refresh",
    operation_id = "refresh_tokens",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair.", body = Tokens),
        (status = 401, description = "The refresh token is invalid, used or expired (`unauthorized`).", body = ErrorBody),
    ),
)]
async fn refresh(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> ApiResult<Json<Tokens>> {
    let user = match state
        .repo
        .take_refresh_token(&sha256_hex(&request.refresh_token))
        .await
    {
        Ok(user) => user,
        Err(PortError::NotFound) => {
            return Err(ApiError::unauthorized(
                "the refresh token is invalid, used or expired",
            ));
        }
        Err(e) => return Err(ApiError::from_port(e, "token")),
    };
    let user = state
        .repo
        .user(user)
        .await
        .map_err(|e| ApiError::from_port(e, "user"))?;
    Ok(Json(issue(&state, &user).await?))
}

/// Who am I
#[utoipa::path(
    get,
    path = "/v1/me",
    operation_id = "get_me",
    tag = "auth",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, description = "The caller's account.", body = UserView)),
)]
async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<UserView>> {
    let user = state
        .repo
        .user(caller.user)
        .await
        .map_err(|e| ApiError::from_port(e, "user"))?;
    Ok(Json((&user).into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// 1 to 100 characters, to tell keys apart.
    #[schema(examples("ci"))]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ApiKey)]
pub struct KeyView {
    #[schema(value_type = uuid::Uuid)]
    pub id: ApiKeyId,
    pub name: String,
    /// The key's first characters, to recognise it.
    #[schema(examples("vsk_1a2b3c4d"))]
    pub prefix: String,
    pub created_at: chrono::DateTime<Utc>,
    #[schema(required = true)]
    pub last_used_at: Option<chrono::DateTime<Utc>>,
    #[schema(required = true)]
    pub revoked_at: Option<chrono::DateTime<Utc>>,
    /// Only in the creation response: the secret is not stored and cannot be shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub key: Option<String>,
}

impl From<&ApiKey> for KeyView {
    fn from(key: &ApiKey) -> Self {
        Self {
            id: key.id,
            name: key.name.clone(),
            prefix: key.prefix.clone(),
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
            key: None,
        }
    }
}

/// Create an API key
///
/// The secret is in this answer only (`key`): it is stored hashed and cannot be shown again.
#[utoipa::path(
    post,
    path = "/v1/api-keys",
    operation_id = "create_api_key",
    tag = "api-keys",
    request_body = NewKey,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "The key, with its secret.", body = KeyView),
        (status = 422, description = "The name is empty or too long (`validation-failed`).", body = ErrorBody),
    ),
)]
async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewKey>,
) -> ApiResult<(StatusCode, Json<KeyView>)> {
    let name = new.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::field("name", "must be 1 to 100 characters"));
    }
    let secret = random_secret("vsk_");
    let key = ApiKey {
        id: ApiKeyId::new(),
        owner: caller.user,
        name,
        prefix: secret.chars().take(12).collect(),
        secret_sha256: sha256_hex(&secret),
        created_at: Utc::now(),
        last_used_at: None,
        revoked_at: None,
    };
    state
        .repo
        .create_api_key(&key)
        .await
        .map_err(|e| ApiError::from_port(e, "API key"))?;
    let mut view = KeyView::from(&key);
    view.key = Some(secret);
    Ok((StatusCode::CREATED, Json(view)))
}

/// List API keys
///
/// Every key of the caller, revoked ones included, without their secrets.
#[utoipa::path(
    get,
    path = "/v1/api-keys",
    operation_id = "list_api_keys",
    tag = "api-keys",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, description = "The caller's keys.", body = [KeyView])),
)]
async fn list_keys(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<KeyView>>> {
    let keys = state
        .repo
        .api_keys(caller.user)
        .await
        .map_err(|e| ApiError::from_port(e, "API key"))?;
    Ok(Json(keys.iter().map(KeyView::from).collect()))
}

/// Revoke an API key
#[utoipa::path(
    delete,
    path = "/v1/api-keys/{id}",
    operation_id = "revoke_api_key",
    tag = "api-keys",
    params(("id" = uuid::Uuid, Path, description = "The key's id.")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Revoked: the key no longer authenticates."),
        (status = 404, description = "No such key of the caller (`not-found`).", body = ErrorBody),
    ),
)]
async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: ApiKeyId = id.parse().map_err(|_| ApiError::not_found("API key"))?;
    state
        .repo
        .revoke_api_key(caller.user, id)
        .await
        .map_err(|e| ApiError::from_port(e, "API key"))?;
    Ok(StatusCode::NO_CONTENT)
}
