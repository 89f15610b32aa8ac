//! One configuration story for `vidsnap serve`: defaults < `vidsnap.toml` (or `--config FILE`) <
//! `VIDSNAP_SECTION__KEY` environment variables < command-line flags. `vidsnap config` prints the
//! merged result with secrets redacted; `vidsnap.example.toml` lists every key.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};
use vidsnap_api::ApiSettings;
use vidsnap_domain::Limits;
use vidsnap_media::MediaConfig;
use vidsnap_notify::{DeliveryConfig, SmtpConfig, WebhookConfig};
use vidsnap_worker::{SchedulerConfig, WorkerConfig};

/// Which parts of the service this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// API, workers and notification delivery in one process (the embedded default).
    #[default]
    All,
    /// The HTTP API only.
    Api,
    /// Workers, notification delivery and the S3 event consumer, with health endpoints only.
    Worker,
    /// Housekeeping (re-enqueueing lost jobs), with health endpoints only.
    Scheduler,
}

impl Role {
    pub fn serves_api(self) -> bool {
        matches!(self, Self::All | Self::Api)
    }

    pub fn runs_workers(self) -> bool {
        matches!(self, Self::All | Self::Worker)
    }

    pub fn runs_scheduler(self) -> bool {
        matches!(self, Self::All | Self::Scheduler)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port (printed at start-up).
    pub listen: String,
    /// How clients reach this server (signed upload/download URLs embed it); defaults to
    /// `http://` + the bound address.
    pub public_url: Option<String>,
    /// Where the embedded database, blobs and generated secrets live.
    pub data_dir: PathBuf,
    pub role: Role,
    /// How long shutdown waits for requests and jobs before giving up, in seconds.
    pub shutdown_seconds: u64,
    /// Time for a new connection's first request head to arrive, in seconds.
    pub header_timeout_seconds: u64,
    /// Time an idle connection is kept open for its next request, in seconds.
    pub keep_alive_seconds: u64,
    /// Longest silence between two pieces of a request body, in seconds.
    pub body_idle_timeout_seconds: u64,
    /// Client connections served at once (lowered to what the file-descriptor limit allows).
    pub max_connections: usize,
}

impl ServerConfig {
    /// The HTTP server's limits on clients.
    pub fn http_limits(&self) -> vidsnap_api::server::Limits {
        vidsnap_api::server::Limits {
            header_timeout: Duration::from_secs(self.header_timeout_seconds),
            keep_alive_timeout: Duration::from_secs(self.keep_alive_seconds),
            body_idle_timeout: Duration::from_secs(self.body_idle_timeout_seconds),
            max_connections: self.max_connections,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            data_dir: PathBuf::from("data"),
            role: Role::All,
            shutdown_seconds: 30,
            header_timeout_seconds: 10,
            keep_alive_seconds: 60,
            body_idle_timeout_seconds: 30,
            max_connections: 1024,
        }
    }
}

/// The metadata database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum DatabaseConfig {
    /// One SQLite file (`{data_dir}/vidsnap.db` unless `path` is set).
    Sqlite {
        // Absent rather than null when unset, so another layer can switch `kind` cleanly.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<PathBuf>,
    },
    /// A PostgreSQL server, e.g. `postgres://vidsnap:secret@db:5432/vidsnap`: several API and
    /// worker processes share it (claims with `SKIP LOCKED`, wake-ups with LISTEN/NOTIFY).
    Postgres { url: String },
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self::Sqlite { path: None }
    }
}

/// Blob storage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum StorageConfig {
    /// Files under `root` (`{data_dir}/blobs` unless set), served through signed URLs.
    Local {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        root: Option<PathBuf>,
    },
    /// An S3-compatible bucket (AWS S3, SeaweedFS, MinIO, Garage); presigned URLs are SigV4.
    /// Uploads reach processing through `POST /v1/videos/{id}/uploaded` (or, scaled out, S3
    /// event notifications).
    S3(vidsnap_storage::S3Config),
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self::Local { root: None }
    }
}

/// The job queue.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum QueueConfig {
    /// The `jobs` table of `[database]`: the embedded default, and enough for most clusters
    /// (PostgreSQL claims with `SKIP LOCKED`).
    #[default]
    Database,
    /// A RabbitMQ broker (AMQP 0-9-1).
    Rabbitmq(vidsnap_queue::amqp::AmqpConfig),
    /// An Amazon SQS queue.
    Sqs(vidsnap_queue::sqs::SqsConfig),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Signs access tokens and blob URLs. Unset: generated once into `{data_dir}/secret.key`.
    /// Several API processes must share it.
    pub secret: Option<String>,
    /// Also accept tokens from this OpenID Connect issuer (e.g. Amazon Cognito); unset: only
    /// this server's own tokens and API keys.
    pub oidc: Option<vidsnap_api::auth::oidc::OidcConfig>,
}

/// Everything `vidsnap serve` reads.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub storage: StorageConfig,
    pub queue: QueueConfig,
    /// S3 "object created" notifications read from an SQS queue: uploads that reach the bucket
    /// start processing without `POST /v1/videos/{id}/uploaded` (the AWS trigger). Workers
    /// consume them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_events: Option<vidsnap_queue::sqs::S3EventsConfig>,
    /// Upload chunks arriving as AMQP messages (seed 003's uploader), stored into upload
    /// sessions and answered on each publisher's reply queue. API processes consume them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunks: Option<vidsnap_queue::chunks::ChunkConfig>,
    pub auth: AuthConfig,
    pub limits: Limits,
    pub api: ApiSettings,
    /// Resumable upload sessions (tus at `/v1/uploads`).
    pub uploads: vidsnap_uploads::UploadSettings,
    pub worker: WorkerConfig,
    pub scheduler: SchedulerConfig,
    pub media: MediaConfig,
    #[serde(skip_serializing)]
    pub smtp: SmtpConfig,
    #[serde(skip_serializing)]
    pub webhooks: WebhookConfig,
    #[serde(skip_serializing)]
    pub notifications: DeliveryConfig,
}

/// Overrides from command-line flags (the highest layer).
#[derive(Debug, Default, Serialize)]
pub struct Flags {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// The layered figment: defaults, file, environment, flags.
pub fn figment(file: Option<&Path>, flags: &Flags) -> Figment {
    let file = file.map_or_else(|| PathBuf::from("vidsnap.toml"), Path::to_path_buf);
    Figment::from(Serialized::defaults(Config::default()))
        .merge(Toml::file(file))
        .merge(
            // Only `VIDSNAP_SECTION__KEY`: `VIDSNAP_LOG` and `VIDSNAP_CONFIG` are not settings.
            Env::prefixed("VIDSNAP_")
                .filter(|key| key.as_str().contains("__"))
                .split("__")
                .map(|key| key.as_str().to_lowercase().into()),
        )
        .merge(Serialized::default("server", flags))
}

/// Loads and checks the configuration.
pub fn load(file: Option<&Path>, flags: &Flags) -> Result<Config, Box<figment::Error>> {
    if let Some(file) = file
        && !file.exists()
    {
        let message = format!("config file {} not found", file.display());
        return Err(Box::new(figment::Error::from(message)));
    }
    let mut config: Config = figment(file, flags).extract().map_err(Box::new)?;
    config.media.limits = config.limits.clone();
    Ok(config)
}

/// The merged configuration as TOML-ish JSON with every secret-looking value redacted.
pub fn redacted(
    file: Option<&Path>,
    flags: &Flags,
) -> Result<serde_json::Value, Box<figment::Error>> {
    let value: serde_json::Value = figment(file, flags).extract().map_err(Box::new)?;
    Ok(redact(value))
}

fn redact(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, v)| {
                    let secret = ["secret", "password", "token"]
                        .iter()
                        .any(|s| key.contains(s));
                    let v = if secret && !v.is_null() {
                        Value::String("<redacted>".into())
                    } else {
                        redact(v)
                    };
                    (key, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact).collect()),
        Value::String(text) => Value::String(redact_url_password(&text)),
        other => other,
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user:<redacted>@host/db`.
fn redact_url_password(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return text.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:<redacted>@{host}"),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_file_names_only_real_keys() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vidsnap.example.toml");
        assert!(path.exists(), "{} is missing", path.display());
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(&path))
            .extract()
            .unwrap_or_else(|e| panic!("vidsnap.example.toml does not load: {e}"));
        let defaults = Config::default();
        assert_eq!(config.server.listen, defaults.server.listen);
        assert_eq!(config.limits, defaults.limits);
        assert_eq!(config.worker.max_attempts, defaults.worker.max_attempts);
        assert_eq!(config.notifications, defaults.notifications);
        assert_eq!(config.uploads, defaults.uploads);
        assert_eq!(config.api.login_limits, defaults.api.login_limits);
        assert_eq!(
            config.scheduler.cleanup_seconds,
            defaults.scheduler.cleanup_seconds
        );
        assert_eq!(config.scheduler.storage, defaults.scheduler.storage);
    }

    #[test]
    fn secrets_are_redacted() {
        let value =
            serde_json::json!({"auth": {"secret": "s3"}, "smtp": {"password": "p", "host": "h"}});
        let out = redact(value);
        assert_eq!(out["auth"]["secret"], "<redacted>");
        assert_eq!(out["smtp"]["password"], "<redacted>");
        assert_eq!(out["smtp"]["host"], "h");
        let url = redact(serde_json::json!({"url": "postgres://v:pw@db:5432/v"}));
        assert_eq!(url["url"], "postgres://v:<redacted>@db:5432/v");
        let plain = redact(serde_json::json!({"url": "postgres://db/v"}));
        assert_eq!(plain["url"], "postgres://db/v");
    }
}
