//! `OidcVerifier` against a real issuer: an HTTP server on port 0 publishing a JWKS of keys
//! generated here (ES256 and RS256, with aws-lc-rs), tokens signed by hand so that the broken
//! ones (`alg: none`, HS256, foreign keys) can be made too. Then the `Caller` path: `GET /v1/me`
//! through the router with a real SQLite repository, provisioning the user on first sight.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use aws_lc_rs::{
    rand::SystemRandom,
    rsa::KeySize,
    signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
        RsaPublicKeyComponents,
    },
};
use axum::{
    Json, Router,
    body::Body,
    extract::State,
    http::{Request, StatusCode},
    routing::get,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tower::ServiceExt;
use vidsnap_api::{
    AppState, Shared,
    auth::{
        ExternalIdentity, IdentityVerifier,
        oidc::{OidcConfig, OidcVerifier},
        tokens::TokenKeys,
    },
};

const AUDIENCE: &str = "vidsnap-client";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A signing key of the test issuer.
enum Signer {
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
}

struct TestKey {
    kid: String,
    signer: Signer,
}

impl TestKey {
    fn es256(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("EC key");
        Self {
            kid: kid.into(),
            signer: Signer::Es256(pair),
        }
    }

    fn rs256(kid: &str) -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key");
        Self {
            kid: kid.into(),
            signer: Signer::Rs256(pair),
        }
    }

    fn alg(&self) -> &'static str {
        match self.signer {
            Signer::Es256(_) => "ES256",
            Signer::Rs256(_) => "RS256",
        }
    }

    /// The public half, as the issuer publishes it.
    fn jwk(&self) -> Value {
        match &self.signer {
            Signer::Es256(pair) => {
                // Uncompressed point: 0x04 | x | y.
                let point = pair.public_key().as_ref();
                json!({
                    "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
                    "x": b64(&point[1..33]), "y": b64(&point[33..65]),
                })
            }
            Signer::Rs256(pair) => {
                let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                json!({
                    "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                    "n": b64(&public.n), "e": b64(&public.e),
                })
            }
        }
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_with(
            &json!({"alg": self.alg(), "kid": self.kid, "typ": "JWT"}),
            claims,
        )
    }

    fn sign_with(&self, header: &Value, claims: &Value) -> String {
        let message = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let signature = match &self.signer {
            Signer::Es256(pair) => pair
                .sign(&rng, message.as_bytes())
                .expect("ES256 signature")
                .as_ref()
                .to_vec(),
            Signer::Rs256(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message.as_bytes(), &mut signature)
                    .expect("RS256 signature");
                signature
            }
        };
        format!("{message}.{}", b64(&signature))
    }
}

/// A token signed with HMAC-SHA256 and `secret`.
fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    use aws_lc_rs::hmac;
    let message = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, message.as_bytes());
    format!("{message}.{}", b64(tag.as_ref()))
}

/// An OIDC issuer on port 0, publishing `{issuer}/.well-known/jwks.json` (Cognito's layout).
struct Issuer {
    issuer: String,
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Clone)]
struct Published {
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

impl Issuer {
    async fn spawn(keys: &[&TestKey]) -> Self {
        let published = Published {
            jwks: Arc::new(Mutex::new(Value::Null)),
            fetches: Arc::new(AtomicUsize::new(0)),
        };
        async fn jwks(State(published): State<Published>) -> Json<Value> {
            published.fetches.fetch_add(1, Ordering::SeqCst);
            Json(published.jwks.lock().expect("jwks lock").clone())
        }
        let app = Router::new()
            .route("/pool/.well-known/jwks.json", get(jwks))
            .with_state(published.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        let issuer = Self {
            issuer: format!("http://{address}/pool"),
            jwks: published.jwks,
            fetches: published.fetches,
            server,
        };
        issuer.publish(keys);
        issuer
    }

    fn publish(&self, keys: &[&TestKey]) {
        let keys: Vec<Value> = keys.iter().map(|k| k.jwk()).collect();
        *self.jwks.lock().expect("jwks lock") = json!({ "keys": keys });
    }

    fn publish_raw(&self, jwks: Value) {
        *self.jwks.lock().expect("jwks lock") = jwks;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn config(&self) -> OidcConfig {
        serde_json::from_value(json!({
            "issuer": self.issuer,
            "audience": [AUDIENCE, "another-client"],
            "leeway_seconds": 0,
        }))
        .expect("config")
    }

    fn verifier(&self) -> OidcVerifier {
        OidcVerifier::new(self.config()).expect("verifier")
    }

    /// Fetches the keys whenever a token asks, as after `refetch_seconds`.
    fn eager_verifier(&self) -> OidcVerifier {
        let mut config = self.config();
        config.refetch_seconds = 0;
        OidcVerifier::new(config).expect("verifier")
    }

    /// An ID token as Cognito issues one.
    fn id_claims(&self, sub: &str) -> Value {
        let now = now();
        json!({
            "iss": self.issuer, "sub": sub, "aud": AUDIENCE, "token_use": "id",
            "email": format!("{sub}@example.com"), "email_verified": true,
            "iat": now, "auth_time": now, "exp": now + 600,
        })
    }

    fn identity(&self, sub: &str) -> ExternalIdentity {
        ExternalIdentity {
            issuer: self.issuer.clone(),
            subject: sub.into(),
            email: format!("{sub}@example.com"),
        }
    }
}

fn with(mut claims: Value, changes: Value) -> Value {
    for (key, value) in changes.as_object().expect("object").clone() {
        if value.is_null() {
            claims.as_object_mut().expect("object").remove(&key);
        } else {
            claims[key] = value;
        }
    }
    claims
}

#[tokio::test]
async fn valid_tokens_verify_with_ec_and_rsa_keys() {
    let ec = TestKey::es256("ec-1");
    let rsa = TestKey::rs256("rsa-1");
    let issuer = Issuer::spawn(&[&ec, &rsa]).await;
    let verifier = issuer.verifier();

    let token = ec.sign(&issuer.id_claims("alice"));
    assert_eq!(
        verifier.verify(&token).await,
        Some(issuer.identity("alice"))
    );
    let token = rsa.sign(&issuer.id_claims("bob"));
    assert_eq!(verifier.verify(&token).await, Some(issuer.identity("bob")));
    // `aud` as a list naming one of the configured audiences.
    let claims = with(
        issuer.id_claims("carol"),
        json!({"aud": ["someone-else", "another-client"]}),
    );
    assert_eq!(
        verifier.verify(&ec.sign(&claims)).await,
        Some(issuer.identity("carol"))
    );
    assert_eq!(issuer.fetches(), 1, "the keys are cached");
}

#[tokio::test]
async fn tokens_failing_a_claim_are_refused() {
    let key = TestKey::es256("ec-1");
    let issuer = Issuer::spawn(&[&key]).await;
    let verifier = issuer.verifier();
    let claims = issuer.id_claims("alice");
    assert!(verifier.verify(&key.sign(&claims)).await.is_some());

    let now = now();
    let refused = [
        (
            "wrong issuer",
            json!({"iss": "https://evil.example.com/pool"}),
        ),
        (
            "issuer with a trailing slash",
            json!({"iss": format!("{}/", issuer.issuer)}),
        ),
        ("no issuer", json!({"iss": null})),
        ("wrong audience", json!({"aud": "someone-else"})),
        ("no audience", json!({"aud": null})),
        ("expired", json!({"exp": now - 10})),
        ("no expiry", json!({"exp": null})),
        ("not yet valid", json!({"nbf": now + 300})),
        ("no subject", json!({"sub": null})),
        ("empty subject", json!({"sub": ""})),
        ("refresh token_use", json!({"token_use": "refresh"})),
    ];
    for (what, changes) in refused {
        let token = key.sign(&with(claims.clone(), changes));
        assert_eq!(verifier.verify(&token).await, None, "{what}");
    }
}

#[tokio::test]
async fn forged_signatures_are_refused() {
    let key = TestKey::es256("ec-1");
    let rsa = TestKey::rs256("rsa-1");
    let issuer = Issuer::spawn(&[&key, &rsa]).await;
    let verifier = issuer.verifier();
    let claims = issuer.id_claims("alice");

    // Signed by a key the issuer never published, under a published kid.
    let impostor = TestKey::es256("ec-1");
    assert_eq!(verifier.verify(&impostor.sign(&claims)).await, None);

    // A genuine signature over other claims.
    let genuine = key.sign(&claims);
    let forged_claims = b64(with(claims.clone(), json!({"sub": "admin"}))
        .to_string()
        .as_bytes());
    let mut parts: Vec<&str> = genuine.split('.').collect();
    parts[1] = &forged_claims;
    assert_eq!(verifier.verify(&parts.join(".")).await, None);

    // `alg: none`, with and without a signature.
    let header = json!({"alg": "none", "kid": "ec-1", "typ": "JWT"});
    let unsigned = format!(
        "{}.{}.",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    assert_eq!(verifier.verify(&unsigned).await, None);
    assert_eq!(
        verifier.verify(&format!("{unsigned}{}", b64(b"x"))).await,
        None
    );

    // The header's alg must be the key's: an RS256 key does not verify "ES256", nor the reverse.
    let swapped = key.sign_with(&json!({"alg": "ES256", "kid": "rsa-1"}), &claims);
    assert_eq!(verifier.verify(&swapped).await, None);
    let swapped = rsa.sign_with(&json!({"alg": "RS256", "kid": "ec-1"}), &claims);
    assert_eq!(verifier.verify(&swapped).await, None);

    // HS256 with a guessable secret, under a real kid and under none.
    for header in [
        json!({"alg": "HS256", "kid": "ec-1", "typ": "JWT"}),
        json!({"alg": "HS256", "typ": "JWT"}),
    ] {
        let token = hs256(&header, &claims, b"secret");
        assert_eq!(verifier.verify(&token).await, None);
    }
}

#[tokio::test]
async fn symmetric_and_encryption_keys_in_the_jwks_are_ignored() {
    let key = TestKey::es256("ec-1");
    let issuer = Issuer::spawn(&[]).await;
    let mut enc = key.jwk();
    enc["use"] = json!("enc");
    enc["kid"] = json!("ec-enc");
    issuer.publish_raw(json!({"keys": [
        // A shared secret published as a key: HS256 tokens must not verify with it.
        {"kty": "oct", "kid": "hmac", "alg": "HS256", "k": b64(b"secret")},
        enc,
        // A key of a kind this verifier does not know must not hide the others.
        {"kty": "OKP", "crv": "X448", "kid": "odd", "x": b64(b"x")},
        key.jwk(),
    ]}));
    let verifier = issuer.eager_verifier();
    let claims = issuer.id_claims("alice");

    let token = hs256(&json!({"alg": "HS256", "kid": "hmac"}), &claims, b"secret");
    assert_eq!(verifier.verify(&token).await, None);
    let token = key.sign_with(&json!({"alg": "ES256", "kid": "ec-enc"}), &claims);
    assert_eq!(verifier.verify(&token).await, None);
    assert_eq!(
        verifier.verify(&key.sign(&claims)).await,
        Some(issuer.identity("alice"))
    );
}

#[tokio::test]
async fn an_unknown_kid_is_refused_and_refetches_at_most_once_per_interval() {
    let key = TestKey::es256("ec-1");
    let issuer = Issuer::spawn(&[&key]).await;
    let verifier = issuer.verifier();
    let claims = issuer.id_claims("alice");
    assert!(verifier.verify(&key.sign(&claims)).await.is_some());
    assert_eq!(issuer.fetches(), 1);

    let stranger = TestKey::es256("unknown");
    for _ in 0..5 {
        assert_eq!(verifier.verify(&stranger.sign(&claims)).await, None);
    }
    assert_eq!(issuer.fetches(), 1, "within refetch_seconds: no refetch");
    // Known keys keep working meanwhile.
    assert!(verifier.verify(&key.sign(&claims)).await.is_some());

    // With the interval passed, an unknown kid costs exactly one fetch.
    let eager = issuer.eager_verifier();
    assert!(eager.verify(&key.sign(&claims)).await.is_some());
    assert_eq!(eager.verify(&stranger.sign(&claims)).await, None);
    assert_eq!(issuer.fetches(), 3);
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_by_the_refetch() {
    let old = TestKey::es256("2026-01");
    let issuer = Issuer::spawn(&[&old]).await;
    let verifier = issuer.eager_verifier();
    let claims = issuer.id_claims("alice");
    assert!(verifier.verify(&old.sign(&claims)).await.is_some());

    let new = TestKey::rs256("2026-02");
    issuer.publish(&[&new]);
    assert_eq!(
        verifier.verify(&new.sign(&claims)).await,
        Some(issuer.identity("alice"))
    );
    assert_eq!(issuer.fetches(), 2);
    // The retired key left with the refetch.
    assert_eq!(verifier.verify(&old.sign(&claims)).await, None);
}

#[tokio::test]
async fn cognito_access_tokens_are_checked_against_client_id() {
    let key = TestKey::rs256("rsa-1");
    let issuer = Issuer::spawn(&[&key]).await;
    let verifier = issuer.verifier();
    let now = now();
    // Cognito access tokens: no `aud`, no e-mail.
    let access = json!({
        "iss": issuer.issuer, "sub": "7f3c-uuid", "client_id": AUDIENCE, "token_use": "access",
        "scope": "openid email", "username": "alice", "iat": now, "exp": now + 600,
    });
    let host = issuer
        .issuer
        .trim_start_matches("http://")
        .split(':')
        .next()
        .expect("host")
        .to_owned();
    assert_eq!(
        verifier.verify(&key.sign(&access)).await,
        Some(ExternalIdentity {
            issuer: issuer.issuer.clone(),
            subject: "7f3c-uuid".into(),
            email: format!("7f3c-uuid@{host}"),
        })
    );
    let other_client = with(access.clone(), json!({"client_id": "someone-else"}));
    assert_eq!(verifier.verify(&key.sign(&other_client)).await, None);
    let neither = with(access.clone(), json!({"client_id": null}));
    assert_eq!(verifier.verify(&key.sign(&neither)).await, None);
    // `aud`, when present, decides: a matching client_id does not rescue a foreign audience.
    let foreign = with(access, json!({"aud": "someone-else"}));
    assert_eq!(verifier.verify(&key.sign(&foreign)).await, None);
}

#[tokio::test]
async fn an_unverified_email_is_not_taken() {
    let key = TestKey::es256("ec-1");
    let issuer = Issuer::spawn(&[&key]).await;
    let mut config = issuer.config();
    config.email_claim = "mail".into();
    let verifier = OidcVerifier::new(config).expect("verifier");
    let claims = with(
        issuer.id_claims("alice"),
        json!({"mail": "alice@corp.example", "email": null}),
    );
    let identity = verifier.verify(&key.sign(&claims)).await.expect("verified");
    assert_eq!(identity.email, "alice@corp.example");
    let unverified = with(claims, json!({"email_verified": "false"}));
    let identity = verifier
        .verify(&key.sign(&unverified))
        .await
        .expect("verified");
    assert!(
        identity.email.starts_with("alice@127.0.0.1"),
        "{identity:?}"
    );
}

#[tokio::test]
async fn an_unreachable_or_broken_jwks_fails_verification() {
    let key = TestKey::es256("ec-1");
    let issuer = Issuer::spawn(&[&key]).await;
    let claims = issuer.id_claims("alice");

    // Nothing listening: bind a port, then free it.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    };
    let mut config = issuer.config();
    config.jwks_url = Some(format!("http://{closed}/jwks.json"));
    let verifier = OidcVerifier::new(config.clone()).expect("verifier");
    assert_eq!(verifier.verify(&key.sign(&claims)).await, None);

    // A 404 and a body that is not a JWKS.
    config.jwks_url = Some(format!("{}/nothing-here", issuer.issuer));
    let verifier = OidcVerifier::new(config).expect("verifier");
    assert_eq!(verifier.verify(&key.sign(&claims)).await, None);
    issuer.publish_raw(json!(["not", "a", "jwks"]));
    let verifier = issuer.verifier();
    assert_eq!(verifier.verify(&key.sign(&claims)).await, None);
    // The issuer recovers, the verifier with it.
    issuer.publish(&[&key]);
    let verifier = issuer.eager_verifier();
    assert!(verifier.verify(&key.sign(&claims)).await.is_some());
}

#[tokio::test]
async fn tokens_of_other_issuers_cost_no_fetch() {
    let key = TestKey::es256("ec-1");
    let issuer = Issuer::spawn(&[&key]).await;
    let verifier = issuer.eager_verifier();
    let foreign = with(
        issuer.id_claims("alice"),
        json!({"iss": "https://elsewhere.example.com"}),
    );
    assert_eq!(verifier.verify(&key.sign(&foreign)).await, None);
    assert_eq!(verifier.verify("not.a.jwt").await, None);
    assert_eq!(verifier.verify("").await, None);
    assert_eq!(issuer.fetches(), 0);
}

#[test]
fn audience_is_a_string_or_a_list_and_unknown_keys_are_refused() {
    let one: OidcConfig =
        serde_json::from_value(json!({"issuer": "https://i", "audience": "a"})).expect("one");
    assert_eq!(one.audience, ["a"]);
    let many: OidcConfig =
        serde_json::from_value(json!({"issuer": "https://i", "audience": ["a", "b"]}))
            .expect("many");
    assert_eq!(many.audience, ["a", "b"]);
    assert!(serde_json::from_value::<OidcConfig>(json!({"issuer": "https://i"})).is_err());
    let typo = json!({"issuer": "https://i", "audience": "a", "jwks_uri": "https://i/k"});
    assert!(serde_json::from_value::<OidcConfig>(typo).is_err());
}

/// The service's wiring of `Caller` with the OIDC verifier and a real SQLite repository.
async fn app(verifier: OidcVerifier, dir: &std::path::Path) -> Router {
    let store = Arc::new(
        vidsnap_db::SqliteStore::open(&dir.join("vidsnap.db"))
            .await
            .expect("database"),
    );
    let signer = vidsnap_storage::UrlSigner::new(vec![7; 32], "http://127.0.0.1:1");
    let blobs =
        Arc::new(vidsnap_storage::LocalStore::open(dir.join("blobs"), signer).expect("blobs"));

    let jobs = vidsnap_jobs::JobService::new(
        store.clone(),
        store.clone(),
        5,
        Arc::new(vidsnap_jobs::Silent),
    );
    let uploads = vidsnap_uploads::UploadCore::new(
        store.clone(),
        Arc::new(vidsnap_storage::LocalStaging::new(&blobs).expect("staging")),
        Arc::new(jobs.clone()),
        vidsnap_uploads::UploadSettings::default(),
    );
    let state = AppState::new(Shared {
        repo: store.clone(),
        jobs,
        queue: store,
        blobs,
        keys: TokenKeys::new(
            b"a test secret of at least 32 bytes",
            std::time::Duration::from_secs(60),
            std::time::Duration::from_secs(600),
        ),
        playback: vidsnap_api::playback::PlaybackSigner::new(
            b"playback secret".to_vec(),
            "http://vidsnap.test",
        ),
        settings: vidsnap_api::ApiSettings::default(),
        limits: vidsnap_domain::Limits::default(),
        events: vidsnap_api::events::VideoEvents::default(),
        metrics: None,
        oidc: Some(Arc::new(verifier)),
        shutdown: tokio_util::sync::CancellationToken::new(),
        deliveries_waker: None,
        readiness: vidsnap_api::ReadinessChecks::default(),
        uploads,
        multipart: None,
    });
    vidsnap_api::router(state)
}

async fn me(app: &Router, token: &str) -> (StatusCode, Value) {
    let request = Request::get("/v1/me")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, serde_json::from_slice(&body).expect("JSON body"))
}

#[tokio::test]
async fn the_caller_is_provisioned_on_first_sight_and_recognised_after() {
    let key = TestKey::es256("ec-1");
    let issuer = Issuer::spawn(&[&key]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let app = app(issuer.verifier(), dir.path()).await;

    let (status, first) = me(&app, &key.sign(&issuer.id_claims("alice"))).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["email"], "alice@example.com");
    // A new token for the same subject: the same user, even with another e-mail.
    let again = with(
        issuer.id_claims("alice"),
        json!({"email": "new@example.com"}),
    );
    let (status, second) = me(&app, &key.sign(&again)).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["id"], first["id"]);
    // Another subject: another user.
    let (status, other) = me(&app, &key.sign(&issuer.id_claims("bob"))).await;
    assert_eq!(status, StatusCode::OK, "{other}");
    assert_ne!(other["id"], first["id"]);

    let foreign = with(issuer.id_claims("alice"), json!({"aud": "someone-else"}));
    let (status, body) = me(&app, &key.sign(&foreign)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let forged = hs256(
        &json!({"alg": "HS256", "kid": "ec-1"}),
        &issuer.id_claims("alice"),
        b"secret",
    );
    let (status, _) = me(&app, &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
