//! Browser sessions: sign in (a cookie instead of tokens) and sign out. The cookie and the CSRF
//! rules are in [`crate::auth::session`].

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::{ClientAddress, Credentials, UserView, authenticate};
use crate::{
    ApiError, AppState,
    auth::session::{self, check_origin},
    extract::ApiJson,
    openapi::ErrorBody,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sign_in, sign_out))
}

/// Sign in a browser
///
/// Checks the e-mail and password as `/v1/auth/login` does (and counts failures against the
/// same limits), then sets the `vidsnap_session` cookie: `HttpOnly`, `SameSite=Strict`,
/// `Path=/`, `Secure` over HTTPS, for `api.session_seconds`. Every route that takes a bearer
/// token takes the cookie; writes authenticated by it must come from the service's own origin
/// (`Origin` or `Referer`), else 403 `csrf-refused`. A browser request from another origin is
/// refused here too (no signing a victim into someone else's account).
#[utoipa::path(
    post,
    path = "/v1/auth/session",
    operation_id = "create_session",
    tag = "auth",
    request_body = Credentials,
    responses(
        (status = 200, description = "Signed in: the cookie is set; the body is the user.", body = UserView,
            headers(("Set-Cookie" = String, description = "`vidsnap_session=…; Path=/; Max-Age=…; HttpOnly; SameSite=Strict[; Secure]`"))),
        (status = 401, description = "Wrong e-mail or password (`unauthorized`).", body = ErrorBody),
        (status = 403, description = "Sent by another origin's page (`csrf-refused`).", body = ErrorBody),
        (status = 429, description = "Too many failed logins for this account or address (`too-many-attempts`); `Retry-After` says when to try again.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until logins are accepted again."))),
    ),
)]
async fn sign_in(
    State(state): State<AppState>,
    address: ClientAddress,
    headers: HeaderMap,
    ApiJson(credentials): ApiJson<Credentials>,
) -> Result<Response, Response> {
    check_origin(&headers, &state.settings, false).map_err(IntoResponse::into_response)?;
    let user = authenticate(&state, address, credentials).await?;
    let ttl = std::time::Duration::from_secs(state.settings.session_seconds);
    let token = state
        .keys
        .session_token(user.id, ttl)
        .map_err(|e| ApiError::internal(e).into_response())?;
    let cookie = session::set_cookie(
        &token,
        state.settings.session_seconds,
        session::is_https(&headers, &state.settings),
    );
    Ok(([(header::SET_COOKIE, cookie)], Json(UserView::from(&user))).into_response())
}

/// Sign out a browser
///
/// Removes the session cookie and revokes the session: a copy of the cookie is refused from then
/// on (401). Another origin's page cannot sign a browser out (403 `csrf-refused`).
#[utoipa::path(
    delete,
    path = "/v1/auth/session",
    operation_id = "delete_session",
    tag = "auth",
    responses(
        (status = 204, description = "Signed out: the cookie is removed.",
            headers(("Set-Cookie" = String, description = "`vidsnap_session=; Max-Age=0; …`"))),
        (status = 403, description = "Sent by another origin's page (`csrf-refused`).", body = ErrorBody),
    ),
)]
async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(refused) = check_origin(&headers, &state.settings, false) {
        return refused.into_response();
    }
    if let Some(signed_in) = session::cookie(&headers).and_then(|t| state.keys.verify_session(t))
        && let Err(e) = state
            .repo
            .revoke_session(&signed_in.id, signed_in.expires_at)
            .await
    {
        // The cookie stays, so the browser can sign out again once the database answers.
        return ApiError::from_port(e, "session").into_response();
    }
    let cookie = session::clear_cookie(session::is_https(&headers, &state.settings));
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
}
