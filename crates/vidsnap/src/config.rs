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

/// The endpoint, region and keys every AWS client shares: `[storage]` with `kind = "s3"`,
/// `[queue]` with `kind = "sqs"` and `[s3_events]`. A key a section sets itself wins.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsConfig {
    /// e.g. `http://127.0.0.1:5000` for a local S3/SQS; unset: AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Static credentials; unset: the AWS credential chain (environment, web identity, ECS/EKS,
    /// instance metadata).
    pub access_key_id: Option<String>,
    #[serde(skip_serializing)]
    pub secret_access_key: Option<String>,
}

/// The keys `[aws]` lends to the sections that leave them unset.
const SHARED_AWS_KEYS: [&str; 4] = ["endpoint", "region", "access_key_id", "secret_access_key"];

/// Everything `vidsnap serve` reads.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub storage: StorageConfig,
    pub queue: QueueConfig,
    /// What the AWS clients share (see [`AwsConfig`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsConfig>,
    /// S3 "object created" notifications read from an SQS queue: uploads that reach the bucket
    /// start processing without `POST /v1/videos/{id}/uploaded` (the AWS trigger). Workers
    /// consume them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_events: Option<vidsnap_queue::sqs::S3EventsConfig>,
    /// Watched folders (`[[watch]]`): objects that land under `prefix` with no API call become
    /// videos of `owner`, processed by `recipe` with `params`, outputs beside them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<vidsnap_jobs::Watch>,
    /// Job requests from a queue (`[[intake]]`): a message with the fields an intake's
    /// templates name (seed 004's `{"recordingID", "callEndingTimestamp"}`) runs its recipe on
    /// the files its keys name. They arrive on `[s3_events]`'s queue (SQS) or `[requests]`'s
    /// (AMQP); workers consume them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub intake: Vec<vidsnap_jobs::Intake>,
    /// The AMQP queue job requests arrive on, for `[[intake]]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<vidsnap_queue::requests::RequestConfig>,
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
    let mut config: Config = Figment::from(Serialized::defaults(merged(file, flags)?))
        .extract()
        .map_err(Box::new)?;
    check(&config).map_err(|e| Box::new(figment::Error::from(e)))?;
    config.media.limits = config.limits.clone();
    Ok(config)
}

/// Every layer merged, secrets given as files read, and `[aws]` lent to the sections that
/// leave its keys unset: what [`load`] checks and [`redacted`] prints.
fn merged(file: Option<&Path>, flags: &Flags) -> Result<serde_json::Value, Box<figment::Error>> {
    let mut value: serde_json::Value = figment(file, flags).extract().map_err(Box::new)?;
    read_secret_files(&mut value, "").map_err(|e| Box::new(figment::Error::from(e)))?;
    share_aws_settings(&mut value);
    Ok(value)
}

/// Whether a key names a secret that may be given as a file (`KEY_file`, e.g.
/// `VIDSNAP_AWS__SECRET_ACCESS_KEY_FILE`), as Docker and Kubernetes secrets are mounted.
fn is_secret_key(key: &str) -> bool {
    ["secret", "password", "token"]
        .iter()
        .any(|s| key.contains(s))
        || key == "url"
        || key == "access_key_id"
}

/// Replaces every `KEY_file` whose `KEY` is a secret with the file's contents (without the
/// trailing newline). Giving both is an error: which one would win is not obvious.
fn read_secret_files(value: &mut serde_json::Value, path: &str) -> Result<(), String> {
    let serde_json::Value::Object(map) = value else {
        return Ok(());
    };
    let files: Vec<String> = map
        .keys()
        .filter(|k| k.strip_suffix("_file").is_some_and(is_secret_key))
        .cloned()
        .collect();
    for file_key in files {
        let key = file_key.trim_end_matches("_file").to_owned();
        let at = |k: &str| {
            if path.is_empty() {
                k.to_owned()
            } else {
                format!("{path}.{k}")
            }
        };
        if map.get(&key).is_some_and(|v| !v.is_null()) {
            return Err(format!(
                "{} and {} are both set: give one",
                at(&key),
                at(&file_key)
            ));
        }
        let Some(serde_json::Value::String(file)) = map.remove(&file_key) else {
            return Err(format!("{} must be a file path", at(&file_key)));
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("reading {} ({file}): {e}", at(&file_key)))?;
        let secret = text.trim_end_matches(['\n', '\r']).to_owned();
        map.insert(key, serde_json::Value::String(secret));
    }
    for (key, child) in map.iter_mut() {
        let child_path = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        read_secret_files(child, &child_path)?;
    }
    Ok(())
}

/// Lends `[aws]` keys to the AWS sections that leave them unset, and the storage's bucket and
/// prefix to `[s3_events]` (events can only be about where uploads are stored).
fn share_aws_settings(value: &mut serde_json::Value) {
    use serde_json::Value;
    let Value::Object(root) = value else { return };
    let aws = root.get("aws").cloned().unwrap_or(Value::Null);
    let storage = root.get("storage").cloned().unwrap_or(Value::Null);
    let storage_is_s3 = storage.get("kind").and_then(Value::as_str) == Some("s3");
    let lend = |section: &mut Value, from: &Value, keys: &[&str]| {
        let Value::Object(section) = section else {
            return;
        };
        for key in keys {
            match from.get(*key) {
                Some(v) if !v.is_null() && section.get(*key).is_none_or(Value::is_null) => {
                    section.insert((*key).to_owned(), v.clone());
                }
                _ => {}
            }
        }
    };
    if storage_is_s3 && let Some(section) = root.get_mut("storage") {
        lend(section, &aws, &SHARED_AWS_KEYS);
    }
    if let Some(section) = root.get_mut("queue")
        && section.get("kind").and_then(Value::as_str) == Some("sqs")
    {
        lend(section, &aws, &SHARED_AWS_KEYS);
    }
    if let Some(section) = root.get_mut("s3_events").filter(|s| s.is_object()) {
        lend(section, &aws, &SHARED_AWS_KEYS);
        if storage_is_s3 {
            let mut from_storage = storage.clone();
            if let Value::Object(map) = &mut from_storage
                && let Some(prefix) = map.remove("prefix")
            {
                map.insert("key_prefix".into(), prefix);
            }
            lend(section, &from_storage, &["bucket", "key_prefix"]);
        }
    }
}

/// Refuses a configuration that cannot work, naming the keys to change.
fn check(config: &Config) -> Result<(), String> {
    if let Some(events) = &config.s3_events {
        let StorageConfig::S3(storage) = &config.storage else {
            return Err(
                "s3_events is set but storage.kind is not \"s3\": S3 events can only \
                        report uploads to an S3 bucket; set storage.kind = \"s3\" or remove \
                        [s3_events]"
                    .to_owned(),
            );
        };
        let trim = |p: Option<&str>| p.unwrap_or("").trim_matches('/').to_owned();
        let (events_prefix, storage_prefix) = (
            trim(events.key_prefix.as_deref()),
            trim(storage.prefix.as_deref()),
        );
        if events_prefix != storage_prefix {
            return Err(format!(
                "s3_events.key_prefix ({events_prefix:?}) differs from storage.prefix \
                 ({storage_prefix:?}): uploads are stored under the storage prefix, so no event \
                 would ever match; leave s3_events.key_prefix unset (it follows storage.prefix)"
            ));
        }
        if let Some(bucket) = &events.bucket
            && *bucket != storage.bucket
        {
            return Err(format!(
                "s3_events.bucket ({bucket:?}) differs from storage.bucket ({:?}): every event \
                 would be dead-lettered as wrong-bucket; leave s3_events.bucket unset",
                storage.bucket
            ));
        }
    }
    if let StorageConfig::S3(storage) = &config.storage
        && storage.access_key_id.is_some() != storage.secret_access_key.is_some()
    {
        return Err(
            "storage.access_key_id and storage.secret_access_key: give both or neither \
                    (or aws.access_key_id and aws.secret_access_key for every AWS client)"
                .to_owned(),
        );
    }
    Ok(())
}

/// The merged configuration as TOML-ish JSON with every secret-looking value redacted.
pub fn redacted(
    file: Option<&Path>,
    flags: &Flags,
) -> Result<serde_json::Value, Box<figment::Error>> {
    Ok(redact(merged(file, flags)?))
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

    fn load_toml(text: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vidsnap.toml");
        std::fs::write(&path, text).expect("write");
        load(Some(&path), &Flags::default()).map_err(|e| e.to_string())
    }

    const CLUSTER: &str = r#"
        [aws]
        endpoint = "http://127.0.0.1:5000"
        region = "eu-west-1"
        access_key_id = "shared"
        secret_access_key = "shared-secret"
        [storage]
        kind = "s3"
        bucket = "videos"
        prefix = "vidsnap"
        [queue]
        kind = "sqs"
        queue_url = "http://127.0.0.1:5000/123456789012/jobs"
        dead_letter_queue_url = "http://127.0.0.1:5000/123456789012/jobs-dlq"
        region = "us-west-2"
        [s3_events]
        queue_url = "http://127.0.0.1:5000/123456789012/uploads"
        dead_letter_queue_url = "http://127.0.0.1:5000/123456789012/uploads-dlq"
    "#;

    #[test]
    fn aws_settings_are_shared_and_each_section_may_override_them() {
        let config = load_toml(CLUSTER).expect("loads");
        let StorageConfig::S3(storage) = &config.storage else {
            panic!("s3 storage");
        };
        assert_eq!(storage.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(storage.region, "eu-west-1");
        assert_eq!(storage.access_key_id.as_deref(), Some("shared"));
        assert_eq!(storage.secret_access_key.as_deref(), Some("shared-secret"));
        let QueueConfig::Sqs(queue) = &config.queue else {
            panic!("sqs queue");
        };
        assert_eq!(queue.region.as_deref(), Some("us-west-2"), "its own wins");
        assert_eq!(queue.access_key_id.as_deref(), Some("shared"));
        let events = config.s3_events.as_ref().expect("s3 events");
        assert_eq!(events.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(events.secret_access_key.as_deref(), Some("shared-secret"));
        // Events can only be about where uploads are stored.
        assert_eq!(events.key_prefix.as_deref(), Some("vidsnap"));
        assert_eq!(events.bucket.as_deref(), Some("videos"));
    }

    #[test]
    fn a_secret_may_be_given_as_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "from-a-file\n").expect("write");
        let text = CLUSTER.replace(
            "secret_access_key = \"shared-secret\"",
            &format!(
                "secret_access_key_file = {:?}",
                secret.display().to_string()
            ),
        );
        let config = load_toml(&text).expect("loads");
        let StorageConfig::S3(storage) = &config.storage else {
            panic!("s3 storage");
        };
        assert_eq!(storage.secret_access_key.as_deref(), Some("from-a-file"));

        let both = format!(
            "{text}\n[auth]\nsecret = \"a\"\nsecret_file = {:?}\n",
            secret.display().to_string()
        );
        let error = load_toml(&both).expect_err("both");
        assert!(
            error.contains("auth.secret and auth.secret_file"),
            "{error}"
        );
        let missing = text.replace(&secret.display().to_string(), "/nonexistent/secret");
        let error = load_toml(&missing).expect_err("missing file");
        assert!(error.contains("aws.secret_access_key_file"), "{error}");
    }

    #[test]
    fn events_that_could_never_match_the_storage_are_refused_naming_the_keys() {
        let other_prefix = format!("{CLUSTER}\nkey_prefix = \"uploads\"\n");
        let error = load_toml(&other_prefix).expect_err("prefix mismatch");
        assert!(
            error.contains("s3_events.key_prefix") && error.contains("storage.prefix"),
            "{error}"
        );
        let other_bucket = format!("{CLUSTER}\nbucket = \"elsewhere\"\n");
        let error = load_toml(&other_bucket).expect_err("bucket mismatch");
        assert!(error.contains("s3_events.bucket"), "{error}");
        let local = CLUSTER
            .replace("kind = \"s3\"", "kind = \"local\"")
            .replace("bucket = \"videos\"\n", "")
            .replace("prefix = \"vidsnap\"\n", "");
        let error = load_toml(&local).expect_err("local storage");
        assert!(error.contains("storage.kind"), "{error}");
        let half = CLUSTER.replace("secret_access_key = \"shared-secret\"", "");
        let error = load_toml(&half).expect_err("half the credentials");
        assert!(error.contains("access_key_id"), "{error}");
    }
}
