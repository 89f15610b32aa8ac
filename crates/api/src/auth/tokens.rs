//! Access tokens (short-lived JWTs, HS256) and refresh tokens (opaque, single use, stored hashed).
//! A refresh token is not a JWT at all, so it can never pass as an access token; access tokens
//! also carry `typ: "access"` and are refused otherwise.

use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vidsnap_domain::UserId;

/// Issues and checks tokens with the server's secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    iat: i64,
    typ: String,
    iss: String,
    /// A session's id, which signing out revokes; not in access tokens.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    jti: String,
}

/// A browser session a cookie carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: UserId,
    /// Revoked by signing out (`Repository::revoke_session`).
    pub id: String,
    pub expires_at: chrono::DateTime<Utc>,
}

/// The issuer name in our own tokens; tokens from other issuers go to OIDC verification.
pub const ISSUER: &str = "vidsnap";

impl TokenKeys {
    pub fn new(secret: &[u8], access_ttl: Duration, refresh_ttl: Duration) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            access_ttl,
            refresh_ttl,
        }
    }

    /// A signed access token for `user`.
    pub fn access_token(&self, user: UserId) -> Result<String, jsonwebtoken::errors::Error> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user.to_string(),
            iat: now,
            exp: now + self.access_ttl.as_secs() as i64,
            typ: "access".into(),
            iss: ISSUER.into(),
            jti: String::new(),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// The user an access token names, if it is ours, valid, unexpired and of the access type.
    pub fn verify_access(&self, token: &str) -> Option<UserId> {
        self.verify(token, "access")
    }

    /// A signed browser-session token for `user`, valid for `ttl` (the session cookie's value).
    pub fn session_token(
        &self,
        user: UserId,
        ttl: Duration,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user.to_string(),
            iat: now,
            exp: now + ttl.as_secs() as i64,
            typ: "session".into(),
            iss: ISSUER.into(),
            jti: random_secret("vss_"),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// The session a token carries, if it is ours, valid, unexpired, of the session type and
    /// has an id (whether it was signed out is the repository's to say).
    pub fn verify_session(&self, token: &str) -> Option<Session> {
        let claims = self.claims(token, "session")?;
        if claims.jti.is_empty() {
            return None;
        }
        Some(Session {
            user: claims.sub.parse().ok()?,
            id: claims.jti,
            expires_at: chrono::DateTime::<Utc>::from_timestamp(claims.exp, 0)?,
        })
    }

    fn verify(&self, token: &str, typ: &str) -> Option<UserId> {
        self.claims(token, typ)?.sub.parse().ok()
    }

    fn claims(&self, token: &str, typ: &str) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 5;
        let data = decode::<Claims>(token, &self.decoding, &validation).ok()?;
        if data.claims.typ != typ {
            return None;
        }
        Some(data.claims)
    }
}

/// A new random secret with a recognisable prefix (`vsr_` refresh, `vsk_` API key).
pub fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    // The OS random source failing is not recoverable in any useful way.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    format!("{prefix}{}", hex::encode(bytes))
}

/// How secrets are stored: hex SHA-256 (they are long random strings: no salt or stretching needed).
pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(
            b"test secret",
            Duration::from_secs(60),
            Duration::from_secs(600),
        )
    }

    #[test]
    fn access_tokens_round_trip_and_refuse_tampering() {
        let user = UserId::new();
        let token = keys().access_token(user).expect("token");
        assert_eq!(keys().verify_access(&token), Some(user));
        let other = TokenKeys::new(b"other", Duration::from_secs(60), Duration::from_secs(60));
        assert_eq!(other.verify_access(&token), None);
        let mut tampered = token.clone();
        tampered.push('x');
        assert_eq!(keys().verify_access(&tampered), None);
    }

    #[test]
    fn session_and_access_tokens_are_not_interchangeable() {
        let user = UserId::new();
        let session = keys()
            .session_token(user, Duration::from_secs(60))
            .expect("token");
        let signed_in = keys().verify_session(&session).expect("a session");
        assert_eq!(signed_in.user, user);
        assert!(signed_in.id.starts_with("vss_"), "{}", signed_in.id);
        let other = keys()
            .session_token(user, Duration::from_secs(60))
            .expect("token");
        let other = keys().verify_session(&other).expect("a session");
        assert_ne!(other.id, signed_in.id, "each sign-in is its own session");
        assert_eq!(keys().verify_access(&session), None);
        let access = keys().access_token(user).expect("token");
        assert_eq!(keys().verify_session(&access), None);
    }

    #[test]
    fn refresh_tokens_are_not_access_tokens() {
        let refresh = random_secret("vsr_");
        assert_eq!(keys().verify_access(&refresh), None);
        assert_eq!(refresh.len(), 4 + 64);
    }
}
