//! Blobs in an S3-compatible bucket (AWS S3, SeaweedFS, MinIO, Garage), through `object_store`.
//!
//! Two clients share one configuration: the server talks to `endpoint`, while presigned URLs are
//! signed for `public_endpoint`, because a SigV4 signature covers the host the client will send
//! and the two differ whenever the store sits behind a proxy or in a private network.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt};
use object_store::{
    Attribute, Attributes, ClientOptions, ObjectStore, ObjectStoreExt, PutMultipartOptions,
    PutOptions, PutPayload, RetryConfig, WriteMultipart,
    aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsCredential},
    client::{HttpClient, HttpConnector, ReqwestConnector},
    list::{PaginatedListOptions, PaginatedListStore},
    path::Path as ObjectPath,
    signer::{Method, Signer, Url},
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use vidsnap_domain::{
    BlobStore, PortError, PortResult, PresignedRequest, UploadId,
    ports::{ListedBlob, StagedUpload, SweptTemporaries},
};

use crate::key;

/// S3's smallest part (every part but the last must be at least this big).
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
/// S3's largest part.
const MAX_PART_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// S3's limit on the number of parts of one upload.
pub(crate) const MAX_PARTS: u64 = 10_000;
/// Parts uploading at once: with the part being read, at most three parts are in memory.
const PARTS_IN_FLIGHT: usize = 2;
/// The longest a SigV4 presigned URL may live.
pub(crate) const MAX_PRESIGN: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where the blobs live and how to reach them.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket, which must exist: the service never creates buckets.
    pub bucket: String,
    /// The endpoint the server talks to, e.g. `http://seaweedfs:8333`. Unset means AWS S3 in
    /// `region`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The endpoint clients reach the store at, which presigned URLs are signed for (the host is
    /// part of the signature). Unset means `endpoint`: set it when clients see the store under
    /// another name than the server does (a proxy, a container network).
    #[serde(default)]
    pub public_endpoint: Option<String>,
    /// The region signatures are scoped to. S3-compatible servers mostly accept the default.
    #[serde(default = "default_region")]
    pub region: String,
    /// Addresses the bucket in the path (`endpoint/bucket/key`) rather than the host name
    /// (`bucket.endpoint/key`). Most self-hosted servers (SeaweedFS, MinIO, Garage) need it;
    /// with it off, `endpoint` and `public_endpoint` must include the bucket's host name.
    #[serde(default)]
    pub path_style: bool,
    /// Static credentials; give both or neither. Without them, the AWS environment provides
    /// them: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, web identity
    /// (`AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`), ECS/EKS container credentials, or the EC2
    /// instance metadata service, in that order.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// See `access_key_id`.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Permits `http://` endpoints; for local test servers only, as credentials and data then
    /// cross the network in the clear.
    #[serde(default)]
    pub allow_http: bool,
    /// Prepended to every key (`prefix/key`), so several deployments can share one bucket.
    #[serde(default)]
    pub prefix: Option<String>,
    /// The size of the parts of a multipart upload: at least 5 MiB (S3's minimum). Files up to one
    /// part go up in a single PUT. Uploads hold up to three parts in memory. A file too big for
    /// 10,000 parts (S3's maximum) uses bigger parts. Resumable uploads staged on S3 and clients'
    /// direct multipart uploads use it too.
    #[serde(default = "default_part_bytes")]
    pub multipart_part_bytes: u64,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

fn default_part_bytes() -> u64 {
    8 * 1024 * 1024
}

impl S3Config {
    /// A configuration for `bucket` with every default.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            endpoint: None,
            public_endpoint: None,
            region: default_region(),
            path_style: false,
            access_key_id: None,
            secret_access_key: None,
            allow_http: false,
            prefix: None,
            multipart_part_bytes: default_part_bytes(),
        }
    }
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("public_endpoint", &self.public_endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "******"),
            )
            .field("allow_http", &self.allow_http)
            .field("prefix", &self.prefix)
            .field("multipart_part_bytes", &self.multipart_part_bytes)
            .finish()
    }
}

/// Why an [`S3Config`] cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum S3ConfigError {
    #[error("multipart_part_bytes must be between 5 MiB and 5 GiB, not {0}")]
    PartSize(u64),
    #[error("{field} {value:?} is not an http(s) URL")]
    Endpoint { field: &'static str, value: String },
    #[error("{field} {value:?} uses plain http: set allow_http (for local test servers only)")]
    HttpNotAllowed { field: &'static str, value: String },
    #[error("access_key_id and secret_access_key must be set together")]
    Credentials,
    #[error("prefix {0:?} is not a valid key prefix")]
    Prefix(String),
    #[error("building the S3 client")]
    Client(#[source] object_store::Error),
}

/// A [`BlobStore`] on an S3-compatible bucket. Objects appear only once complete (a single PUT or
/// a completed multipart upload), so a blob is absent or complete.
#[derive(Debug, Clone)]
pub struct S3Store {
    /// Talks to `endpoint`.
    store: Arc<AmazonS3>,
    /// Signs URLs for `public_endpoint` (the same client when there is none).
    signer: Arc<AmazonS3>,
    /// Without slashes at either end; empty for none.
    prefix: String,
    part_bytes: u64,
    /// For the requests object_store does not make (ListMultipartUploads), presigned by `store`.
    http: HttpClient,
}

impl S3Store {
    /// Builds the clients; nothing is sent until the first operation ([`BlobStore::ping`] checks
    /// the bucket answers).
    pub fn new(config: S3Config) -> Result<Self, S3ConfigError> {
        let part_bytes = config.multipart_part_bytes;
        if !(MIN_PART_BYTES..=MAX_PART_BYTES).contains(&part_bytes) {
            return Err(S3ConfigError::PartSize(part_bytes));
        }
        let prefix = config.prefix.as_deref().unwrap_or("").trim_matches('/');
        if !prefix.is_empty() && key::check(prefix).is_err() {
            return Err(S3ConfigError::Prefix(prefix.to_owned()));
        }
        let store = build(&config, config.endpoint.as_deref(), "endpoint")?;
        let http = ReqwestConnector::default()
            .connect(&client_options(&config))
            .map_err(S3ConfigError::Client)?;
        let signer = match &config.public_endpoint {
            Some(public) => build(&config, Some(public), "public_endpoint")?,
            None => store.clone(),
        };
        Ok(Self {
            store: Arc::new(store),
            signer: Arc::new(signer),
            prefix: prefix.to_owned(),
            part_bytes,
            http,
        })
    }

    /// The client for `endpoint` (the server's own requests).
    pub(crate) fn client(&self) -> &Arc<AmazonS3> {
        &self.store
    }

    /// The client that signs URLs for `public_endpoint`.
    pub(crate) fn url_signer(&self) -> &Arc<AmazonS3> {
        &self.signer
    }

    /// The HTTP client for requests object_store does not make.
    pub(crate) fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The store's own prefix, without slashes at either end; empty for none.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The configured part size (`multipart_part_bytes`).
    pub(crate) fn part_bytes(&self) -> u64 {
        self.part_bytes
    }

    /// The object a (valid) key is stored at.
    pub(crate) fn location(&self, key: &str) -> PortResult<ObjectPath> {
        key::check(key)?;
        let full = if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        };
        ObjectPath::parse(&full)
            .map_err(|e| PortError::Conflict(format!("invalid blob key {key:?}: {e}")))
    }

    async fn presign(
        &self,
        method: Method,
        key: &str,
        ttl: Duration,
    ) -> PortResult<PresignedRequest> {
        let location = self.location(key)?;
        if ttl > MAX_PRESIGN {
            return Err(PortError::Conflict(
                "presigned URLs last at most 7 days".to_owned(),
            ));
        }
        // The signature dates from a moment after `now` truncated to the second, so this is at
        // or just before the expiry the server enforces, never after it.
        let now = Utc::now();
        let signed_at = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
        let url: Url = self
            .signer
            .signed_url(method.clone(), &location, ttl)
            .await
            .map_err(|e| unavailable("signing a URL for", key, e))?;
        Ok(PresignedRequest {
            method: method.as_str().to_owned(),
            url: url.into(),
            headers: Vec::new(),
            expires_at: signed_at + Duration::from_secs(ttl.as_secs()),
        })
    }

    /// Uploads `first` and the rest of `file` in parts.
    async fn put_parts(
        &self,
        location: &ObjectPath,
        attributes: Attributes,
        part_bytes: u64,
        first: [Vec<u8>; 2],
        file: &mut (impl AsyncRead + Unpin),
    ) -> Result<u64, object_store::Error> {
        let options = PutMultipartOptions {
            attributes,
            ..Default::default()
        };
        let upload = self.store.put_multipart_opts(location, options).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part_bytes as usize);
        let sent = async {
            let mut size = 0;
            for part in first {
                size += part.len() as u64;
                writer.put(Bytes::from(part));
            }
            loop {
                let part = read_part(file, part_bytes, part_bytes).await.map_err(|e| {
                    object_store::Error::Generic {
                        store: "S3",
                        source: Box::new(e),
                    }
                })?;
                if part.is_empty() {
                    return Ok(size);
                }
                size += part.len() as u64;
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                writer.put(Bytes::from(part));
            }
        }
        .await;
        match sent {
            Ok(size) => {
                // Completes the upload, or aborts it if a part failed.
                writer.finish().await?;
                Ok(size)
            }
            Err(e) => {
                // S3 keeps (and bills) the parts of an upload neither completed nor aborted until
                // a lifecycle rule removes them.
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(%location, error = %abort, "aborting an upload failed");
                }
                Err(e)
            }
        }
    }
}

/// Whole-request timeouts would cut off large transfers; a stalled connection is caught by the
/// read timeout instead, and failed requests are retried with backoff.
fn client_options(config: &S3Config) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(config.allow_http)
        .with_connect_timeout(Duration::from_secs(5))
        .with_read_timeout(Duration::from_secs(60))
        .with_timeout_disabled()
}

/// One client for `endpoint` (`field` names it in errors).
fn build(
    config: &S3Config,
    endpoint: Option<&str>,
    field: &'static str,
) -> Result<AmazonS3, S3ConfigError> {
    let options = client_options(config);
    // object_store's default (10 retries over up to 3 minutes) would hold a request, and a
    // readiness check, for minutes while the store is down; a few quick retries ride out blips.
    let retry = RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(20),
        ..RetryConfig::default()
    };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&config.bucket)
        .with_region(&config.region)
        .with_virtual_hosted_style_request(!config.path_style)
        .with_client_options(options)
        .with_retry(retry);
    if let Some(endpoint) = endpoint {
        let url = Url::parse(endpoint).map_err(|_| S3ConfigError::Endpoint {
            field,
            value: endpoint.to_owned(),
        })?;
        match url.scheme() {
            "https" => {}
            "http" if config.allow_http => {}
            "http" => {
                return Err(S3ConfigError::HttpNotAllowed {
                    field,
                    value: endpoint.to_owned(),
                });
            }
            _ => {
                return Err(S3ConfigError::Endpoint {
                    field,
                    value: endpoint.to_owned(),
                });
            }
        }
        builder = builder.with_endpoint(endpoint);
    }
    builder = match (&config.access_key_id, &config.secret_access_key) {
        (Some(key_id), Some(secret_key)) => {
            let credential = AwsCredential {
                key_id: key_id.clone(),
                secret_key: secret_key.clone(),
                token: None,
            };
            builder.with_credentials(Arc::new(object_store::StaticCredentialProvider::new(
                credential,
            )))
        }
        (None, None) => with_credentials_from_env(builder),
        _ => return Err(S3ConfigError::Credentials),
    };
    builder.build().map_err(S3ConfigError::Client)
}

/// Takes the credential chain's settings from `AWS_*` variables, and nothing else: the other
/// variables `AmazonS3Builder::from_env` reads (endpoint, bucket, checksum, skip signature…)
/// would quietly override this configuration.
fn with_credentials_from_env(mut builder: AmazonS3Builder) -> AmazonS3Builder {
    use AmazonS3ConfigKey as K;
    for (name, value) in std::env::vars() {
        if !name.starts_with("AWS_") {
            continue;
        }
        let Ok(key) = name.to_ascii_lowercase().parse::<K>() else {
            continue;
        };
        if matches!(
            key,
            K::AccessKeyId
                | K::SecretAccessKey
                | K::Token
                | K::WebIdentityTokenFile
                | K::RoleArn
                | K::RoleSessionName
                | K::StsEndpoint
                | K::ContainerCredentialsRelativeUri
                | K::ContainerCredentialsFullUri
                | K::ContainerAuthorizationTokenFile
                | K::MetadataEndpoint
                | K::ImdsV1Fallback
        ) {
            builder = builder.with_config(key, value);
        }
    }
    builder
}

/// Reads up to `part_bytes` bytes; fewer only at the end of the file. `expected` is how many are
/// likely left, so a small file does not reserve a whole part.
async fn read_part(
    file: &mut (impl AsyncRead + Unpin),
    part_bytes: u64,
    expected: u64,
) -> std::io::Result<Vec<u8>> {
    let mut part = Vec::with_capacity(part_bytes.min(expected) as usize);
    file.take(part_bytes).read_to_end(&mut part).await?;
    Ok(part)
}

/// A failed read: `NotFound` when the object is missing. (S3 answers a missing bucket with a 404
/// too, so a wrong bucket makes reads look like missing blobs; `ping` tells them apart.)
pub(crate) fn failed(action: &str, key: &str, e: object_store::Error) -> PortError {
    match e {
        object_store::Error::NotFound { .. } => PortError::NotFound,
        e => unavailable(action, key, e),
    }
}

/// A failed write or delete, where "not found" can only mean the bucket.
pub(crate) fn unavailable(action: &str, key: &str, e: object_store::Error) -> PortError {
    PortError::Unavailable(format!("{action} {key}: {e}"))
}

pub(crate) fn io_failed(action: &str, path: &Path, e: std::io::Error) -> PortError {
    PortError::Unavailable(format!("{action} {}: {e}", path.display()))
}

#[async_trait]
impl BlobStore for S3Store {
    async fn ping(&self) -> PortResult<()> {
        let prefix = (!self.prefix.is_empty()).then(|| format!("{}/", self.prefix));
        let options = PaginatedListOptions {
            max_keys: Some(1),
            ..Default::default()
        };
        self.store
            .list_paginated(prefix.as_deref(), options)
            .await
            .map(|_| ())
            .map_err(|e| PortError::Unavailable(format!("listing the bucket: {e}")))
    }

    async fn size(&self, key: &str) -> PortResult<u64> {
        let location = self.location(key)?;
        let meta = self
            .store
            .head(&location)
            .await
            .map_err(|e| failed("reading the size of", key, e))?;
        Ok(meta.size)
    }

    async fn put_file(&self, key: &str, path: &Path, content_type: &str) -> PortResult<u64> {
        let location = self.location(key)?;
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| io_failed("opening", path, e))?;
        let length = file
            .metadata()
            .await
            .map_err(|e| io_failed("reading", path, e))?
            .len();
        let part_bytes = self.part_bytes.max(length.div_ceil(MAX_PARTS));
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, content_type.to_owned().into());

        // A file that fits one part goes up in one request; the file is read rather than its
        // length trusted, in case it changed since.
        let first = read_part(&mut file, part_bytes, length)
            .await
            .map_err(|e| io_failed("reading", path, e))?;
        let second = if first.len() as u64 == part_bytes {
            read_part(&mut file, part_bytes, length.saturating_sub(part_bytes))
                .await
                .map_err(|e| io_failed("reading", path, e))?
        } else {
            Vec::new()
        };
        if second.is_empty() {
            let size = first.len() as u64;
            let options = PutOptions {
                attributes,
                ..Default::default()
            };
            self.store
                .put_opts(&location, PutPayload::from(first), options)
                .await
                .map_err(|e| unavailable("storing", key, e))?;
            return Ok(size);
        }
        self.put_parts(
            &location,
            attributes,
            part_bytes,
            [first, second],
            &mut file,
        )
        .await
        .map_err(|e| unavailable("storing", key, e))
    }

    async fn local_copy(&self, key: &str, scratch: &Path) -> PortResult<PathBuf> {
        let location = self.location(key)?;
        // The key's last segment keeps the extension the media tools go by.
        let name = key.rsplit('/').next().unwrap_or(key);
        let destination = scratch.join(name);
        let download = self
            .store
            .get(&location)
            .await
            .map_err(|e| failed("reading", key, e))?;
        // Written beside the destination and renamed, so the destination is absent or complete;
        // the temporary file goes with `temp` on every early return.
        let (file, temp) = tempfile::Builder::new()
            .prefix(".download-")
            .suffix(".partial")
            .tempfile_in(scratch)
            .map_err(|e| io_failed("creating a file in", scratch, e))?
            .into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut stream = download.into_stream();
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| failed("reading", key, e))?
        {
            file.write_all(&chunk)
                .await
                .map_err(|e| io_failed("writing", &temp, e))?;
        }
        file.flush()
            .await
            .map_err(|e| io_failed("writing", &temp, e))?;
        drop(file);
        temp.persist(&destination)
            .map_err(|e| io_failed("renaming to", &destination, e.error))?;
        Ok(destination)
    }

    async fn delete_prefix(&self, prefix: &str) -> PortResult<()> {
        // Like the local store: `a/b` and `a/b/` both mean the folder `a/b`, so `a/bc` stays.
        let trimmed = prefix.trim_end_matches('/');
        let location = self.location(trimmed)?;
        let listed = self
            .store
            .list(Some(&location))
            .map_ok(|meta| meta.location)
            .boxed();
        // Batched: one DeleteObjects request per 1,000 keys.
        self.store
            .delete_stream(listed)
            .try_for_each(|_| std::future::ready(Ok(())))
            .await
            .map_err(|e| unavailable("deleting", prefix, e))
    }

    async fn delete(&self, key: &str) -> PortResult<()> {
        let location = self.location(key)?;
        match self.store.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable("deleting", key, e)),
        }
    }

    async fn copy(&self, from: &str, to: &str) -> PortResult<()> {
        let (source, target) = (self.location(from)?, self.location(to)?);
        match self.store.copy(&source, &target).await {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => Err(PortError::NotFound),
            Err(e) => Err(unavailable("copying", from, e)),
        }
    }

    async fn presign_put(&self, key: &str, expires: Duration) -> PortResult<PresignedRequest> {
        self.presign(Method::PUT, key, expires).await
    }

    async fn presign_get(&self, key: &str, expires: Duration) -> PortResult<PresignedRequest> {
        self.presign(Method::GET, key, expires).await
    }

    async fn folders(&self, prefix: &str) -> PortResult<Vec<String>> {
        self.folders_in(prefix).await
    }

    async fn list(&self, prefix: &str) -> PortResult<Vec<ListedBlob>> {
        self.list_in(prefix).await
    }

    /// S3 writes no temporary objects (an object appears when its PUT or multipart upload
    /// completes); what interrupted writes leave are multipart uploads.
    async fn sweep_temporaries(
        &self,
        _written_before: DateTime<Utc>,
        started_before: DateTime<Utc>,
    ) -> PortResult<SweptTemporaries> {
        Ok(SweptTemporaries {
            multipart_uploads: self.sweep_multipart(started_before).await?,
            ..SweptTemporaries::default()
        })
    }

    async fn staged_uploads(&self) -> PortResult<Vec<StagedUpload>> {
        self.staged().await
    }

    async fn discard_staged(&self, upload: UploadId) -> PortResult<()> {
        self.discard(upload).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> S3Config {
        S3Config {
            endpoint: Some("http://127.0.0.1:9".to_owned()),
            allow_http: true,
            path_style: true,
            access_key_id: Some("id".to_owned()),
            secret_access_key: Some("secret".to_owned()),
            ..S3Config::new("bucket")
        }
    }

    #[test]
    fn configuration_is_checked() {
        assert!(S3Store::new(config()).is_ok());
        let small = S3Config {
            multipart_part_bytes: MIN_PART_BYTES - 1,
            ..config()
        };
        assert!(matches!(
            S3Store::new(small),
            Err(S3ConfigError::PartSize(_))
        ));
        let http = S3Config {
            allow_http: false,
            ..config()
        };
        assert!(matches!(
            S3Store::new(http),
            Err(S3ConfigError::HttpNotAllowed {
                field: "endpoint",
                ..
            })
        ));
        let half = S3Config {
            secret_access_key: None,
            ..config()
        };
        assert!(matches!(
            S3Store::new(half),
            Err(S3ConfigError::Credentials)
        ));
        let public = S3Config {
            public_endpoint: Some("ftp://example.com".to_owned()),
            ..config()
        };
        assert!(matches!(
            S3Store::new(public),
            Err(S3ConfigError::Endpoint {
                field: "public_endpoint",
                ..
            })
        ));
        let prefix = S3Config {
            prefix: Some("a/../b".to_owned()),
            ..config()
        };
        assert!(matches!(
            S3Store::new(prefix),
            Err(S3ConfigError::Prefix(_))
        ));
    }

    #[test]
    fn unknown_fields_are_refused_and_secrets_not_shown() {
        let parsed: S3Config =
            serde_json::from_str(r#"{"bucket": "b", "secret_access_key": "hunter2"}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.region, "us-east-1");
        assert_eq!(parsed.multipart_part_bytes, 8 * 1024 * 1024);
        assert!(!format!("{parsed:?}").contains("hunter2"));
        assert!(serde_json::from_str::<S3Config>(r#"{"bucket": "b", "buckett": "c"}"#).is_err());

        // As a variant of a config enum tagged by `kind`, the way `[storage]` is.
        #[derive(Debug, Deserialize)]
        #[serde(tag = "kind", rename_all = "lowercase")]
        #[allow(dead_code)] // Only parsed.
        enum Storage {
            S3(S3Config),
        }
        let tagged = serde_json::from_str::<Storage>(r#"{"kind": "s3", "bucket": "b"}"#);
        assert!(tagged.is_ok(), "{tagged:?}");
        let typo = serde_json::from_str::<Storage>(r#"{"kind": "s3", "bucket": "b", "bukket": 1}"#);
        assert!(typo.is_err());
    }

    #[tokio::test]
    async fn urls_are_signed_for_the_public_endpoint_under_the_prefix() {
        let store = S3Store::new(S3Config {
            public_endpoint: Some("https://files.example.com".to_owned()),
            prefix: Some("/tenant/".to_owned()),
            ..config()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let before = Utc::now();
        let url = store
            .presign_get("u/v/a b.mp4", Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            url.url
                .starts_with("https://files.example.com/bucket/tenant/u/v/a%20b.mp4?"),
            "{}",
            url.url
        );
        assert!(url.url.contains("X-Amz-Expires=60"), "{}", url.url);
        assert_eq!(url.method, "GET");
        let expires = url.expires_at - before;
        assert!(expires <= chrono::TimeDelta::seconds(60), "{expires}");
        assert!(expires > chrono::TimeDelta::seconds(58), "{expires}");
        assert!(matches!(
            store.presign_put("../x", Duration::from_secs(60)).await,
            Err(PortError::Conflict(_))
        ));
    }
}
