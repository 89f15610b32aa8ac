//! Tokens from an external OpenID Connect issuer (Amazon Cognito, Keycloak, Auth0, …), verified
//! against the issuer's published keys (JWKS). What is accepted:
//! - a JWT signed with RS256 or ES256 by a key of the issuer's JWKS, picked by the header's
//!   `kid`; the key's own `alg` (or its type and curve) must match the header's. `none`, HS*
//!   and keys of any other kind (`oct`, `use: enc`) are refused, so a token can never be
//!   "verified" with a secret an attacker chose or guessed;
//! - `iss` equal to the configured issuer, `exp` in the future and `nbf` in the past (both with
//!   `leeway_seconds`), a non-empty `sub`;
//! - `aud` naming one of the configured audiences or, when the token has no `aud` (Cognito
//!   access tokens), `client_id` naming one;
//! - Cognito's `token_use`, when present, `id` or `access`.
//!
//! Keys are fetched on first use (never at start-up, so an unreachable issuer does not stop the
//! service), kept `cache_seconds`, and refetched early when a token names an unknown `kid` (key
//! rotation). Fetches are single-flight and at most one per `refetch_seconds`, so forged tokens
//! cannot make the server hammer the issuer. Without keys (fetch failed, cache expired)
//! verification fails closed and the failure is logged.

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use jsonwebtoken::{
    Algorithm, DecodingKey, Validation,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse},
};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::{ExternalIdentity, IdentityVerifier};

/// `[auth.oidc]`: accept tokens from one OpenID Connect issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Exactly the tokens' `iss`, e.g. `https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc`.
    pub issuer: String,
    /// Who the tokens must be for: one string or a list. Matched against `aud` or, when a token
    /// has none (Cognito access tokens), against `client_id`. For Cognito: the app client ids.
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// Where the issuer publishes its keys. Default `{issuer}/.well-known/jwks.json`, Cognito's
    /// layout; other issuers list theirs as `jwks_uri` in `{issuer}/.well-known/openid-configuration`.
    /// Must be `https` except on a loopback host: whoever can rewrite this response can sign in
    /// as anyone.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// The claim holding the user's e-mail. When a token lacks it (Cognito access tokens do), or
    /// the issuer says `email_verified: false`, the user's address is `{sub}@{issuer host}`: the
    /// identity is (issuer, `sub`), never the e-mail, which is only a contact address.
    #[serde(default = "default_email_claim")]
    pub email_claim: String,
    /// How long fetched keys are trusted before they are fetched again.
    #[serde(default = "default_cache_seconds")]
    pub cache_seconds: u64,
    /// The least time between two fetches of the keys (an unknown `kid` asks for one): bounds
    /// what forged tokens can cost. At most `cache_seconds`.
    #[serde(default = "default_refetch_seconds")]
    pub refetch_seconds: u64,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_leeway_seconds")]
    pub leeway_seconds: u64,
}

fn default_email_claim() -> String {
    "email".into()
}

fn default_cache_seconds() -> u64 {
    3600
}

fn default_refetch_seconds() -> u64 {
    30
}

fn default_leeway_seconds() -> u64 {
    60
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl From<OneOrMany> for Vec<String> {
    fn from(value: OneOrMany) -> Self {
        match value {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    OneOrMany::deserialize(deserializer).map(Into::into)
}

/// A configuration that cannot work, found at start-up.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("auth.oidc.issuer `{0}` is not a URL with a host")]
    Issuer(String),
    #[error("auth.oidc.jwks_url `{0}` must be an https URL (http only on a loopback host)")]
    JwksUrl(String),
    #[error("auth.oidc.audience must name at least one non-empty audience")]
    Audience,
    #[error("auth.oidc.email_claim must not be empty")]
    EmailClaim,
    #[error("auth.oidc.refetch_seconds must not exceed cache_seconds")]
    Refetch,
    #[error("building the HTTP client for the JWKS")]
    Client(#[source] reqwest::Error),
}

/// Why the keys could not be fetched (logged, never sent to a client).
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("requesting the JWKS")]
    Request(#[source] reqwest::Error),
    #[error("the JWKS is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("the JWKS is not a JSON object with `keys`")]
    Parse(#[source] serde_json::Error),
}

/// Generous: a JWKS is a few kilobytes.
const MAX_JWKS_BYTES: usize = 1 << 20;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Verifies tokens of one OIDC issuer; see the module documentation for the rules.
#[derive(Debug)]
pub struct OidcVerifier {
    issuer: String,
    audience: Vec<String>,
    jwks_url: String,
    email_claim: String,
    /// For `{sub}@{host}` when a token carries no usable e-mail.
    issuer_host: String,
    cache_ttl: Duration,
    refetch_interval: Duration,
    leeway: u64,
    client: reqwest::Client,
    keys: RwLock<Option<Arc<KeySet>>>,
    /// When the last fetch started; held across a fetch, so fetches are single-flight.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

#[derive(Debug)]
struct KeySet {
    by_kid: HashMap<String, Arc<Key>>,
    fetched_at: Instant,
}

#[derive(Debug)]
struct Key {
    alg: Algorithm,
    decoding: DecodingKey,
}

/// The claims read after the signature and the time claims have been checked.
#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    #[serde(default)]
    aud: Option<OneOrMany>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    token_use: Option<String>,
}

impl OidcVerifier {
    /// Checks the configuration; does no network I/O (keys are fetched on first use).
    pub fn new(config: OidcConfig) -> Result<Self, OidcError> {
        let issuer_url = reqwest::Url::parse(&config.issuer)
            .map_err(|_| OidcError::Issuer(config.issuer.clone()))?;
        let issuer_host = issuer_url
            .host_str()
            .ok_or_else(|| OidcError::Issuer(config.issuer.clone()))?
            .to_owned();
        let jwks_url = config.jwks_url.clone().unwrap_or_else(|| {
            format!(
                "{}/.well-known/jwks.json",
                config.issuer.trim_end_matches('/')
            )
        });
        let parsed =
            reqwest::Url::parse(&jwks_url).map_err(|_| OidcError::JwksUrl(jwks_url.clone()))?;
        let loopback = parsed.host_str().is_some_and(|host| {
            host == "localhost"
                || host
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        if !(parsed.scheme() == "https" || parsed.scheme() == "http" && loopback) {
            return Err(OidcError::JwksUrl(jwks_url));
        }
        let audience: Vec<String> = config
            .audience
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect();
        if audience.is_empty() {
            return Err(OidcError::Audience);
        }
        if config.email_claim.is_empty() {
            return Err(OidcError::EmailClaim);
        }
        if config.refetch_seconds > config.cache_seconds {
            return Err(OidcError::Refetch);
        }
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(OidcError::Client)?;
        tracing::info!(issuer = %config.issuer, %jwks_url, "accepting tokens from an OIDC issuer");
        Ok(Self {
            issuer: config.issuer,
            audience,
            jwks_url,
            email_claim: config.email_claim,
            issuer_host,
            cache_ttl: Duration::from_secs(config.cache_seconds),
            refetch_interval: Duration::from_secs(config.refetch_seconds),
            leeway: config.leeway_seconds,
            client,
            keys: RwLock::new(None),
            last_fetch: tokio::sync::Mutex::new(None),
        })
    }

    fn cached(&self, kid: &str) -> Option<Arc<Key>> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let set = keys.as_ref()?;
        if set.fetched_at.elapsed() >= self.cache_ttl {
            return None;
        }
        set.by_kid.get(kid).cloned()
    }

    /// The key named `kid`: from the cache, or from a fetch when the cache has expired or does
    /// not know it (rotation), within the refetch limit.
    async fn key(&self, kid: &str) -> Option<Arc<Key>> {
        if let Some(key) = self.cached(kid) {
            return Some(key);
        }
        let mut last_fetch = self.last_fetch.lock().await;
        // Another request may have fetched while this one waited for the lock.
        if let Some(key) = self.cached(kid) {
            return Some(key);
        }
        if last_fetch.is_some_and(|at| at.elapsed() < self.refetch_interval) {
            tracing::debug!(
                kid,
                "OIDC token refused: no usable cached key, and the keys were fetched less than refetch_seconds ago"
            );
            return None;
        }
        *last_fetch = Some(Instant::now());
        let by_kid = match self.fetch().await {
            Ok(by_kid) => by_kid,
            Err(error) => {
                tracing::warn!(
                    url = %self.jwks_url,
                    error = %error_chain(&error),
                    "fetching the OIDC issuer's keys failed: its tokens are refused until a fetch succeeds"
                );
                return None;
            }
        };
        if by_kid.is_empty() {
            tracing::warn!(url = %self.jwks_url, "the OIDC issuer's JWKS has no RS256/ES256 signing key");
        }
        let key = by_kid.get(kid).cloned();
        let set = Arc::new(KeySet {
            by_kid,
            fetched_at: Instant::now(),
        });
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Some(set);
        if key.is_none() {
            tracing::debug!(kid, "OIDC token refused: no such key in the issuer's JWKS");
        }
        key
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<Key>>, FetchError> {
        let mut response = self
            .client
            .get(&self.jwks_url)
            .header("accept", "application/json")
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(FetchError::Request)?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(FetchError::Request)? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        #[derive(Deserialize)]
        struct RawSet {
            keys: Vec<Value>,
        }
        let raw: RawSet = serde_json::from_slice(&body).map_err(FetchError::Parse)?;
        // Key by key: one key of a kind this library cannot parse must not hide the others.
        Ok(raw
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            .filter_map(|jwk| usable_key(&jwk))
            .map(|(kid, key)| (kid, Arc::new(key)))
            .collect())
    }

    fn email(&self, claims: &serde_json::Map<String, Value>, subject: &str) -> String {
        // Some issuers send the flag as a string.
        let unverified = match claims.get("email_verified") {
            Some(Value::Bool(verified)) => !verified,
            Some(Value::String(verified)) => verified == "false",
            _ => false,
        };
        match claims.get(&self.email_claim) {
            Some(Value::String(email)) if !unverified && email.contains('@') => email.clone(),
            _ => format!("{subject}@{}", self.issuer_host),
        }
    }

    fn audience_matches(&self, claims: &Claims) -> bool {
        match (&claims.aud, &claims.client_id) {
            (Some(OneOrMany::One(aud)), _) => self.audience.contains(aud),
            (Some(OneOrMany::Many(auds)), _) => auds.iter().any(|a| self.audience.contains(a)),
            (None, Some(client_id)) => self.audience.contains(client_id),
            (None, None) => false,
        }
    }
}

/// The signing key a JWK describes, if it is one this verifier accepts.
fn usable_key(jwk: &Jwk) -> Option<(String, Key)> {
    let kid = jwk.common.key_id.clone()?;
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return None;
    }
    let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
            if ec.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        _ => return None,
    };
    let decoding = DecodingKey::from_jwk(jwk).ok()?;
    Some((kid, Key { alg, decoding }))
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[async_trait]
impl IdentityVerifier for OidcVerifier {
    async fn verify(&self, token: &str) -> Option<ExternalIdentity> {
        // Everything before the signature check only decides whether to look further; nothing
        // read here is trusted.
        let header = jsonwebtoken::decode_header(token).ok()?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return None;
        }
        #[derive(Deserialize)]
        struct Peek {
            iss: Option<String>,
        }
        let peek: Peek = jsonwebtoken::dangerous::insecure_decode_claims(token).ok()?;
        if peek.iss.as_deref() != Some(self.issuer.as_str()) {
            // Another issuer's token (or our own): no reason to fetch keys for it.
            return None;
        }
        let kid = header.kid?;
        let key = self.key(&kid).await?;
        if key.alg != header.alg {
            tracing::debug!(kid, "OIDC token refused: its alg is not its key's");
            return None;
        }

        let mut validation = Validation::new(key.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_nbf = true;
        // Checked below: Cognito access tokens carry `client_id` instead of `aud`.
        validation.validate_aud = false;
        validation.leeway = self.leeway;
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(
            token,
            &key.decoding,
            &validation,
        )
        .inspect_err(|e| tracing::debug!(kid, error = %e, "OIDC token refused"))
        .ok()?;
        let claims = Claims::deserialize(&Value::Object(data.claims.clone()))
            .inspect_err(|e| tracing::debug!(error = %e, "OIDC token refused: malformed claims"))
            .ok()?;
        if claims.iss != self.issuer || claims.sub.is_empty() {
            return None;
        }
        if !self.audience_matches(&claims) {
            tracing::debug!("OIDC token refused: not for this audience");
            return None;
        }
        if claims
            .token_use
            .as_deref()
            .is_some_and(|u| u != "id" && u != "access")
        {
            tracing::debug!("OIDC token refused: token_use is neither id nor access");
            return None;
        }
        let email = self.email(&data.claims, &claims.sub);
        Some(ExternalIdentity {
            issuer: self.issuer.clone(),
            subject: claims.sub,
            email,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OidcConfig {
        serde_json::from_value(serde_json::json!({
            "issuer": "https://idp.example.com/pool",
            "audience": "client",
        }))
        .expect("config")
    }

    #[test]
    fn defaults_follow_cognito() {
        let config = config();
        assert_eq!(config.audience, ["client"]);
        assert_eq!(config.email_claim, "email");
        assert_eq!(config.cache_seconds, 3600);
        assert_eq!(config.refetch_seconds, 30);
        let verifier = OidcVerifier::new(config).expect("verifier");
        assert_eq!(
            verifier.jwks_url,
            "https://idp.example.com/pool/.well-known/jwks.json"
        );
        assert_eq!(verifier.issuer_host, "idp.example.com");
    }

    #[test]
    fn keys_are_not_fetched_over_plain_http_from_elsewhere() {
        let mut config = config();
        config.jwks_url = Some("http://idp.example.com/jwks".into());
        assert!(matches!(
            OidcVerifier::new(config.clone()),
            Err(OidcError::JwksUrl(_))
        ));
        config.jwks_url = Some("http://127.0.0.1:9/jwks".into());
        assert!(OidcVerifier::new(config).is_ok());
    }

    #[test]
    fn unusable_configurations_are_refused() {
        let mut config = config();
        config.audience = vec![String::new()];
        assert!(matches!(
            OidcVerifier::new(config),
            Err(OidcError::Audience)
        ));
        let mut config = self::config();
        config.issuer = "not a url".into();
        assert!(matches!(
            OidcVerifier::new(config),
            Err(OidcError::Issuer(_))
        ));
        let extra = serde_json::json!({"issuer": "https://a", "audience": "b", "aud": "c"});
        assert!(serde_json::from_value::<OidcConfig>(extra).is_err());
    }
}
