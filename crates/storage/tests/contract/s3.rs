//! The contract on an [`S3Store`] against SeaweedFS, each test in a bucket of its own (deleted
//! with it), then what only S3 needs to prove.
//!
//! The server comes from `scripts/test-services.sh`, which writes its address and credentials to
//! `.services/env` (or `$VIDSNAP_SERVICES_DIR/env`); the same `VIDSNAP_TEST_S3_*` variables in
//! the environment take precedence. Without a reachable server every test here fails.

use std::{
    net::TcpStream,
    ops::Deref,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use object_store::{
    Attribute, ObjectStoreExt,
    aws::{AmazonS3, AmazonS3Builder},
    path::Path as ObjectPath,
    signer::{Method, Signer},
};
use reqwest::{StatusCode, Url};
use vidsnap_domain::{BlobStore, PortError};
use vidsnap_storage::{
    S3Config, S3Store,
    contract::{BIG_FILE_BYTES, noise},
};

/// Every key of the test stores lives under this prefix, so the prefix is exercised too.
pub(crate) const PREFIX: &str = "vidsnap";

/// Where the test server is.
#[derive(Clone)]
struct Server {
    endpoint: String,
    access_key: String,
    secret_key: String,
}

fn services_env() -> PathBuf {
    std::env::var_os("VIDSNAP_SERVICES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.services"))
        .join("env")
}

fn setting(name: &str, file: &str) -> Option<String> {
    std::env::var(name).ok().or_else(|| {
        file.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    })
}

fn server() -> Server {
    let env_file = services_env();
    let file = std::fs::read_to_string(&env_file).unwrap_or_default();
    let get = |name: &str| {
        setting(name, &file).unwrap_or_else(|| {
            panic!(
                "{name} is not set and not in {}: these tests need a real S3 server. \
                 Run scripts/test-services.sh (make test does) to start SeaweedFS, then run the \
                 tests again.",
                env_file.display()
            )
        })
    };
    let server = Server {
        endpoint: get("VIDSNAP_TEST_S3_ENDPOINT"),
        access_key: get("VIDSNAP_TEST_S3_ACCESS_KEY"),
        secret_key: get("VIDSNAP_TEST_S3_SECRET_KEY"),
    };
    let url = Url::parse(&server.endpoint).expect("VIDSNAP_TEST_S3_ENDPOINT is a URL");
    let reachable = url
        .socket_addrs(|| None)
        .unwrap_or_default()
        .iter()
        .any(|address| TcpStream::connect_timeout(address, Duration::from_secs(2)).is_ok());
    assert!(
        reachable,
        "nothing answers at {} (VIDSNAP_TEST_S3_ENDPOINT): the S3 tests need SeaweedFS. Run \
         scripts/test-services.sh (make test does) to start it, then run the tests again.",
        server.endpoint
    );
    server
}

impl Server {
    fn config(&self, bucket: &str) -> S3Config {
        S3Config {
            endpoint: Some(self.endpoint.clone()),
            path_style: true,
            allow_http: true,
            access_key_id: Some(self.access_key.clone()),
            secret_access_key: Some(self.secret_key.clone()),
            prefix: Some(PREFIX.to_owned()),
            multipart_part_bytes: 5 * 1024 * 1024,
            ..S3Config::new(bucket)
        }
    }

    /// A plain object_store client on `bucket`, to look behind the store's back.
    fn raw(&self, bucket: &str) -> AmazonS3 {
        AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_access_key_id(&self.access_key)
            .with_secret_access_key(&self.secret_key)
            .build()
            .expect("a raw client")
    }

    /// Sends a bucket-level request (`PUT` creates, `DELETE` removes with every object: SeaweedFS
    /// allows it), signed as a presigned URL for the bucket itself.
    async fn bucket_request(&self, method: Method, bucket: &str) -> StatusCode {
        let url = self
            .raw(bucket)
            .signed_url(
                method.clone(),
                &ObjectPath::from(""),
                Duration::from_secs(60),
            )
            .await
            .expect("sign a bucket request");
        let method = reqwest::Method::from_bytes(method.as_str().as_bytes()).expect("a method");
        reqwest::Client::new()
            .request(method, url.as_str())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"))
            .status()
    }
}

/// A bucket no other test uses.
fn bucket_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "vidsnap-test-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A store on a new bucket, deleted (with its objects) when dropped.
pub struct Fresh {
    store: S3Store,
    server: Server,
    bucket: String,
}

impl Fresh {
    /// A plain object_store client on the store's bucket, to look behind the store's back.
    pub(crate) fn raw(&self) -> AmazonS3 {
        self.server.raw(&self.bucket)
    }
}

impl Deref for Fresh {
    type Target = S3Store;
    fn deref(&self) -> &S3Store {
        &self.store
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        // Drop cannot await, and may run inside a runtime: delete from a thread with its own.
        let (server, bucket) = (self.server.clone(), self.bucket.clone());
        let deleted = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(server.bucket_request(Method::DELETE, &bucket))
        })
        .join();
        if !matches!(&deleted, Ok(status) if status.is_success()) {
            eprintln!(
                "deleting the test bucket {} failed: {deleted:?}",
                self.bucket
            );
        }
    }
}

pub async fn fresh() -> Fresh {
    let server = server();
    let bucket = bucket_name();
    let created = server.bucket_request(Method::PUT, &bucket).await;
    assert!(created.is_success(), "creating bucket {bucket}: {created}");
    let store = S3Store::new(server.config(&bucket)).expect("an S3 store");
    Fresh {
        store,
        server,
        bucket,
    }
}

vidsnap_storage::contract_tests!(fresh);

async fn put(store: &S3Store, key: &str, bytes: &[u8], content_type: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("source");
    tokio::fs::write(&path, bytes).await.expect("write");
    let size = store
        .put_file(key, &path, content_type)
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e}"));
    assert_eq!(size, bytes.len() as u64);
}

#[tokio::test]
async fn big_files_go_up_in_parts_under_the_prefix_with_their_type() {
    let store = fresh().await;
    put(
        &store,
        "u/v/big.mp4",
        &noise(BIG_FILE_BYTES, 8),
        "video/mp4",
    )
    .await;
    put(&store, "u/v/small.jpg", &noise(1000, 9), "image/jpeg").await;
    let raw = store.server.raw(&store.bucket);

    let big = ObjectPath::from(format!("{PREFIX}/u/v/big.mp4"));
    let meta = raw
        .head(&big)
        .await
        .expect("the object is under the prefix");
    assert_eq!(meta.size, BIG_FILE_BYTES as u64);
    // S3 ETags of multipart objects end in `-<number of parts>`: 5 + 5 + 2 MiB.
    let etag = meta.e_tag.unwrap_or_default();
    assert!(etag.trim_matches('"').ends_with("-3"), "ETag {etag}");

    for (key, content_type) in [("big.mp4", "video/mp4"), ("small.jpg", "image/jpeg")] {
        let location = ObjectPath::from(format!("{PREFIX}/u/v/{key}"));
        let got = raw.get(&location).await.expect("get");
        let stored = got
            .attributes
            .get(&Attribute::ContentType)
            .map(|v| v.as_ref());
        assert_eq!(stored, Some(content_type), "{key}");
    }
}

#[tokio::test]
async fn urls_are_signed_for_the_public_endpoint() {
    let store = fresh().await;
    put(
        &store,
        "u/v/a.bin",
        &noise(100, 10),
        "application/octet-stream",
    )
    .await;
    let internal = Url::parse(&store.server.endpoint).expect("endpoint URL");
    assert_eq!(
        internal.host_str(),
        Some("127.0.0.1"),
        "the test server's address"
    );
    // The same server under another name, as clients would see it through a proxy.
    let mut public = internal.clone();
    public.set_host(Some("localhost")).expect("a host");
    let public_store = S3Store::new(S3Config {
        public_endpoint: Some(public.to_string()),
        ..store.server.config(&store.bucket)
    })
    .expect("a store with a public endpoint");

    let ttl = Duration::from_secs(60);
    let signed = public_store
        .presign_get("u/v/a.bin", ttl)
        .await
        .expect("sign");
    let url = Url::parse(&signed.url).expect("a URL");
    assert_eq!(url.host_str(), Some("localhost"), "{url}");
    let client = reqwest::Client::new();
    let status = |url: Url| {
        let client = client.clone();
        async move { client.get(url).send().await.expect("GET").status() }
    };
    assert_eq!(status(url.clone()).await, StatusCode::OK);

    // The host is part of the signature: the URL is refused under the other name.
    let mut moved = url.clone();
    moved.set_host(Some("127.0.0.1")).expect("a host");
    assert_eq!(status(moved).await, StatusCode::FORBIDDEN);
    let internal_url = store.presign_get("u/v/a.bin", ttl).await.expect("sign");
    let mut moved = Url::parse(&internal_url.url).expect("a URL");
    moved.set_host(Some("localhost")).expect("a host");
    assert_eq!(status(moved).await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn ping_needs_the_bucket_and_the_right_secret() {
    let store = fresh().await;
    store.ping().await.expect("ping");

    let missing =
        S3Store::new(store.server.config(&format!("{}-missing", store.bucket))).expect("a store");
    assert!(
        matches!(missing.ping().await, Err(PortError::Unavailable(_))),
        "a missing bucket must not look healthy"
    );

    let wrong = S3Store::new(S3Config {
        secret_access_key: Some("not the secret".to_owned()),
        ..store.server.config(&store.bucket)
    })
    .expect("a store");
    assert!(matches!(wrong.ping().await, Err(PortError::Unavailable(_))));
    // Refused, not missing: a wrong secret must not make blobs look deleted.
    put(
        &store,
        "u/v/a.bin",
        &noise(10, 11),
        "application/octet-stream",
    )
    .await;
    match wrong.size("u/v/a.bin").await {
        Err(PortError::Unavailable(message)) => assert!(!message.is_empty()),
        other => panic!("size with a wrong secret: {other:?}"),
    }
}
