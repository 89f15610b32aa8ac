//! What every handler shares.

use std::{ops::Deref, sync::Arc, time::Duration};

use futures_util::future::BoxFuture;

use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use vidsnap_domain::{BlobStore, JobQueue, Limits, Repository};

use crate::{
    auth::{IdentityVerifier, passwords::PasswordCost, tokens::TokenKeys},
    events::VideoEvents,
};

/// API behaviour that is configuration, not code.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// How long a presigned upload URL stays valid.
    pub upload_url_seconds: u64,
    /// How long a presigned download URL stays valid.
    pub download_url_seconds: u64,
    pub password_cost: PasswordCost,
    /// Failed logins allowed per account and per client address per window.
    pub login_limits: crate::auth::throttle::LoginLimits,
    /// Access token lifetime.
    pub access_token_seconds: u64,
    /// Refresh token lifetime.
    pub refresh_token_seconds: u64,
    /// Web origins (`https://app.example.com`) whose pages may call the API and the upload
    /// URLs from a browser (CORS), e.g. with tus-js-client; `["*"]` allows any. Empty: no CORS
    /// headers, same-origin pages and non-browser clients only.
    pub cors_origins: Vec<String>,
    /// Browser session lifetime (the `vidsnap_session` cookie of `POST /v1/auth/session`).
    pub session_seconds: u64,
    /// Believe `X-Forwarded-Proto` and `X-Forwarded-Host`: set behind a proxy that ends TLS and
    /// sets them. They decide whether the session cookie is `Secure` and what the service's own
    /// origin is for the CSRF check; untrusted, anyone could send them.
    pub trust_forwarded_proto: bool,
    /// The public URL is `https://…` (`server.public_url`, set at start-up, not a key of its
    /// own): session cookies are then always `Secure`.
    #[serde(skip)]
    pub public_https: bool,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            upload_url_seconds: 3600,
            download_url_seconds: 3600,
            password_cost: PasswordCost::default(),
            login_limits: crate::auth::throttle::LoginLimits::default(),
            access_token_seconds: 900,
            refresh_token_seconds: 30 * 24 * 3600,
            cors_origins: Vec::new(),
            session_seconds: 12 * 3600,
            trust_forwarded_proto: false,
            public_https: false,
        }
    }
}

impl ApiSettings {
    pub fn upload_ttl(&self) -> Duration {
        Duration::from_secs(self.upload_url_seconds)
    }

    pub fn download_ttl(&self) -> Duration {
        Duration::from_secs(self.download_url_seconds)
    }
}

/// Asks one backend whether it answers (`true`: ready).
pub type Probe = Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>;

/// The backends `/readyz` asks: those the process's role needs, by name.
#[derive(Clone, Default)]
pub struct ReadinessChecks(pub(crate) Vec<(&'static str, Probe)>);

impl ReadinessChecks {
    /// Adds a check named `name`.
    pub fn with<F, Fut>(mut self, name: &'static str, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        self.0.push((name, Arc::new(move || Box::pin(probe()))));
        self
    }

    /// `database`, `queue` and `storage`: what the API and the workers use.
    pub fn backends(
        repo: Arc<dyn Repository>,
        queue: Arc<dyn JobQueue>,
        blobs: Arc<dyn BlobStore>,
    ) -> Self {
        Self::database_and_queue(repo, queue).with("storage", move || {
            let blobs = blobs.clone();
            async move { blobs.ping().await.is_ok() }
        })
    }

    /// `database` and `queue`.
    pub fn database_and_queue(repo: Arc<dyn Repository>, queue: Arc<dyn JobQueue>) -> Self {
        Self::default()
            .with("database", move || {
                let repo = repo.clone();
                async move { repo.ping().await.is_ok() }
            })
            .with("queue", move || {
                let queue = queue.clone();
                async move { queue.stats().await.is_ok() }
            })
    }
}

impl std::fmt::Debug for ReadinessChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

/// Shared by all handlers; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>, Arc<crate::auth::throttle::LoginThrottle>);

pub struct Shared {
    pub repo: Arc<dyn Repository>,
    /// Creates, starts, changes jobs (and the jobs of `/v1/videos`).
    pub jobs: vidsnap_jobs::JobService,
    pub queue: Arc<dyn JobQueue>,
    pub blobs: Arc<dyn BlobStore>,
    pub keys: TokenKeys,
    /// Signs the playback URLs of packaged jobs (`/v1/play/{token}/…`).
    pub playback: crate::playback::PlaybackSigner,
    pub settings: ApiSettings,
    /// Acceptance rules for new videos (extension, size).
    pub limits: Limits,
    pub events: VideoEvents,
    /// Renders `/metrics`; `None` when metrics are off.
    pub metrics: Option<PrometheusHandle>,
    pub oidc: Option<Arc<dyn IdentityVerifier>>,
    /// Cancelled on shutdown: ends SSE streams so graceful shutdown does not wait on them.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Pokes the notification deliverer after a redelivery request.
    pub deliveries_waker: Option<Arc<tokio::sync::Notify>>,
    /// What `/readyz` asks.
    pub readiness: ReadinessChecks,
    /// Resumable uploads (tus at `/v1/uploads`, AMQP chunks): every storage backend stages.
    pub uploads: vidsnap_uploads::UploadCore,
    /// Direct multipart uploads to the object store (`/v1/videos/{id}/multipart`); `None` unless
    /// the storage is S3, and those routes answer 501.
    pub multipart: Option<Arc<dyn vidsnap_domain::ports::DirectMultipart>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("settings", &self.settings)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        let throttle = crate::auth::throttle::LoginThrottle::new(shared.settings.login_limits);
        Self(Arc::new(shared), Arc::new(throttle))
    }

    /// This process's failed-login counts.
    pub(crate) fn login_throttle(&self) -> &crate::auth::throttle::LoginThrottle {
        &self.1
    }
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}
