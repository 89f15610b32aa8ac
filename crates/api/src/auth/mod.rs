//! Who is calling. Every `/v1` route except registration and login takes a [`Caller`], which
//! accepts, in `Authorization: Bearer …` (or `X-Api-Key`):
//! - an access token issued by this server (never a refresh token: those are not JWTs);
//! - an API key (`vsk_…`), looked up by its SHA-256;
//! - a token from the configured OIDC issuer (e.g. Amazon Cognito), verified against its JWKS;
//!   the user is provisioned on first sight.
//!
//! Without either header, the browser session cookie ([`session`]), with the CSRF origin check
//! on unsafe methods.
//!
//! Identity is never taken from unverified headers.

pub mod oidc;
pub mod passwords;
pub mod session;
pub mod throttle;
pub mod tokens;

use async_trait::async_trait;
use axum::{extract::FromRequestParts, http::request::Parts};
use vidsnap_domain::{PortError, UserId};

use crate::{ApiError, AppState};

/// An external identity, verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    pub issuer: String,
    pub subject: String,
    pub email: String,
}

/// Verifies tokens from an external identity provider.
#[async_trait]
pub trait IdentityVerifier: Send + Sync {
    /// `None` when the token is not for this provider or does not verify.
    async fn verify(&self, token: &str) -> Option<ExternalIdentity>;
}

/// The authenticated user of a request.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub user: UserId,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let credential = header("authorization")
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .or_else(|| header("x-api-key"));
        let Some(credential) = credential else {
            return Self::from_session(parts, state).await;
        };
        let credential = credential.trim().to_owned();
        let refused = || ApiError::unauthorized("the token is invalid or expired");
        if credential.starts_with("vsk_") {
            // Only a key that is not there is refused; a database that does not answer is a
            // 503 (a retry will do), not a revoked key.
            let key = state
                .repo
                .api_key_by_secret(&tokens::sha256_hex(&credential))
                .await
                .map_err(|e| match e {
                    PortError::NotFound => refused(),
                    other => ApiError::from_port(other, "API key"),
                })?;
            return Ok(Self { user: key.owner });
        }
        if let Some(user) = state.keys.verify_access(&credential) {
            return Ok(Self { user });
        }
        if let Some(verifier) = &state.oidc
            && let Some(identity) = verifier.verify(&credential).await
        {
            let user = state
                .repo
                .external_user(&identity.issuer, &identity.subject, &identity.email)
                .await
                .map_err(|e| ApiError::from_port(e, "user"))?;
            return Ok(Self { user: user.id });
        }
        Err(refused())
    }
}

impl Caller {
    /// The browser session cookie, when no credential header was sent.
    async fn from_session(parts: &Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = session::cookie(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized("sign in: send `Authorization: Bearer <token>`")
        })?;
        let signed_in = state
            .keys
            .verify_session(token)
            .ok_or_else(|| ApiError::unauthorized("the session has expired: sign in again"))?;
        if !parts.method.is_safe() {
            session::check_origin(&parts.headers, &state.settings, true)?;
        }
        let revoked = state
            .repo
            .session_revoked(&signed_in.id)
            .await
            .map_err(|e| ApiError::from_port(e, "session"))?;
        if revoked {
            return Err(ApiError::unauthorized(
                "this session was signed out: sign in again",
            ));
        }
        Ok(Self {
            user: signed_in.user,
        })
    }
}
