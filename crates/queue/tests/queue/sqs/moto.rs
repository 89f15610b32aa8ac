//! moto for the tests: queues, buckets with notifications, objects; removed when done.

use std::{
    future::Future,
    net::TcpStream,
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, Instant},
};

use aws_sdk_sqs::{
    Client,
    types::{MessageAttributeValue, QueueAttributeName},
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::AUTHORIZATION;
use uuid::Uuid;
use vidsnap_queue::sqs::{S3EventsConfig, SqsClientConfig, SqsConfig, SqsQueue};

/// How long a test waits for something that happens asynchronously.
pub(super) const PATIENCE: Duration = Duration::from_secs(30);
/// A lease that does not run out during a test.
pub(super) const LONG: Duration = Duration::from_secs(300);

fn services_env() -> PathBuf {
    std::env::var_os("VIDSNAP_SERVICES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.services"))
        .join("env")
}

/// moto's address; panics (never skips) when there is none or it does not answer.
fn endpoint() -> String {
    const KEY: &str = "VIDSNAP_TEST_MOTO_ENDPOINT";
    let file = services_env();
    let endpoint = std::env::var(KEY).ok().or_else(|| {
        std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix(KEY)?.strip_prefix('='))
            .map(str::to_owned)
    });
    let Some(endpoint) = endpoint else {
        panic!(
            "{KEY} is not set and not in {}: these tests need moto. Run scripts/test-services.sh \
             (make test does), then run them again.",
            file.display()
        );
    };
    let address = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&address)
        .map(|mut addresses| {
            addresses.any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
        })
        .unwrap_or(false);
    assert!(
        reachable,
        "moto does not answer at {endpoint}: run scripts/test-services.sh, then the tests again"
    );
    endpoint
}

fn client_config(endpoint: &str) -> SqsClientConfig {
    SqsClientConfig {
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.to_owned()),
        access_key_id: Some("vidsnap-test".into()),
        secret_access_key: Some("vidsnap-test".into()),
    }
}

fn unique_name() -> String {
    format!("vidsnap-test-{}", Uuid::new_v4().simple())
}

/// One test's resources on moto, removed when dropped (also when the test fails).
pub(super) struct Moto {
    endpoint: String,
    sqs: Client,
    http: reqwest::Client,
    queues: Mutex<Vec<String>>,
    /// Buckets and the keys put into them.
    buckets: Mutex<Vec<(String, Vec<String>)>>,
}

impl Moto {
    pub(super) async fn new() -> Self {
        let endpoint = endpoint();
        let sqs = client_config(&endpoint).client().await.unwrap();
        Self {
            endpoint,
            sqs,
            http: reqwest::Client::new(),
            queues: Mutex::default(),
            buckets: Mutex::default(),
        }
    }

    /// A new standard queue; with `redrive`, its dead-letter queue and `maxReceiveCount`.
    async fn queue(&self, redrive: Option<(&str, u32)>) -> String {
        let mut create = self.sqs.create_queue().queue_name(unique_name());
        if let Some((dead_letter_url, max_receives)) = redrive {
            let policy = serde_json::json!({
                "deadLetterTargetArn": self.arn(dead_letter_url).await,
                "maxReceiveCount": max_receives.to_string(),
            });
            create = create.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
        }
        let url = create.send().await.unwrap().queue_url.unwrap();
        self.queues.lock().unwrap().push(url.clone());
        url
    }

    /// A main queue redriving to a new dead-letter queue after `max_receives`: (main, DLQ).
    pub(super) async fn queues(&self, max_receives: u32) -> (String, String) {
        let dead = self.queue(None).await;
        (self.queue(Some((&dead, max_receives))).await, dead)
    }

    async fn arn(&self, url: &str) -> String {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        attributes[&QueueAttributeName::QueueArn].clone()
    }

    /// (visible, in flight, delayed) messages of a queue: exact on moto.
    pub(super) async fn counts(&self, url: &str) -> (u64, u64, u64) {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        let count = |name| attributes[&name].parse::<u64>().unwrap();
        (
            count(QueueAttributeName::ApproximateNumberOfMessages),
            count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        )
    }

    /// Waits until a queue holds no message at all.
    pub(super) async fn drained(&self, url: &str, what: &str) {
        eventually(what, || async {
            (self.counts(url).await == (0, 0, 0)).then_some(())
        })
        .await;
    }

    /// Sends a raw message body.
    pub(super) async fn send(&self, url: &str, body: &str) {
        self.sqs
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    /// Reads (and deletes) `n` messages from a dead-letter queue: (body, `reason` attribute).
    pub(super) async fn dead_letters(&self, url: &str, n: usize) -> Vec<(String, String)> {
        let deadline = Instant::now() + PATIENCE;
        let mut found = Vec::new();
        while found.len() < n {
            assert!(
                Instant::now() < deadline,
                "{n} dead letters: only {found:?} within {PATIENCE:?}"
            );
            let output = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_attribute_names("All")
                .send()
                .await
                .unwrap();
            for message in output.messages.unwrap_or_default() {
                let reason = message
                    .message_attributes
                    .as_ref()
                    .and_then(|a| a.get("reason"))
                    .and_then(MessageAttributeValue::string_value)
                    .unwrap_or("<none>")
                    .to_owned();
                found.push((message.body.clone().unwrap_or_default(), reason));
                self.sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(message.receipt_handle.unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        assert_eq!(found.len(), n, "{found:?}");
        found
    }

    fn s3(&self, path: &str) -> String {
        format!("{}/{path}", self.endpoint.trim_end_matches('/'))
    }

    /// A new bucket whose `s3:ObjectCreated:*` events go to the queue at `queue_url`.
    pub(super) async fn bucket_notifying(&self, queue_url: &str) -> String {
        let bucket = unique_name();
        let created = self.http.put(self.s3(&bucket)).send().await.unwrap();
        assert!(created.status().is_success(), "{created:?}");
        self.buckets
            .lock()
            .unwrap()
            .push((bucket.clone(), Vec::new()));
        let configuration = format!(
            r#"<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
                 <QueueConfiguration>
                   <Id>vidsnap-uploads</Id>
                   <Queue>{}</Queue>
                   <Event>s3:ObjectCreated:*</Event>
                 </QueueConfiguration>
               </NotificationConfiguration>"#,
            self.arn(queue_url).await
        );
        let configured = self
            .http
            .put(self.s3(&format!("{bucket}?notification")))
            .body(configuration)
            .send()
            .await
            .unwrap();
        assert!(configured.status().is_success(), "{configured:?}");
        bucket
    }

    fn object_url(&self, bucket: &str, key: &str) -> String {
        object_url(&self.endpoint, bucket, key)
    }

    fn remember(&self, bucket: &str, key: &str) {
        let mut buckets = self.buckets.lock().unwrap();
        if let Some((_, keys)) = buckets.iter_mut().find(|(b, _)| b == bucket) {
            keys.push(key.to_owned());
        }
    }

    /// A plain PUT of an object.
    pub(super) async fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let put = self
            .http
            .put(self.object_url(bucket, key))
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert!(put.status().is_success(), "{put:?}");
        self.remember(bucket, key);
    }

    /// An object uploaded with S3's multipart calls (one part).
    pub(super) async fn put_multipart(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let url = self.object_url(bucket, key);
        let started = self
            .http
            .post(format!("{url}?uploads"))
            .send()
            .await
            .unwrap();
        assert!(started.status().is_success(), "{started:?}");
        let xml = started.text().await.unwrap();
        let upload_id = xml
            .split("<UploadId>")
            .nth(1)
            .and_then(|rest| rest.split("</UploadId>").next())
            .unwrap_or_else(|| panic!("no UploadId in {xml}"))
            .to_owned();
        let upload_id = utf8_percent_encode(&upload_id, NON_ALPHANUMERIC).to_string();
        let part = self
            .http
            .put(format!("{url}?partNumber=1&uploadId={upload_id}"))
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert!(part.status().is_success(), "{part:?}");
        let etag = part.headers()["etag"].to_str().unwrap().to_owned();
        let complete = format!(
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part>\
             </CompleteMultipartUpload>"
        );
        let completed = self
            .http
            .post(format!("{url}?uploadId={upload_id}"))
            .body(complete)
            .send()
            .await
            .unwrap();
        assert!(completed.status().is_success(), "{completed:?}");
        self.remember(bucket, key);
    }

    pub(super) async fn job_queue(&self, queue_url: &str, dead_letter_url: &str) -> SqsQueue {
        let client = client_config(&self.endpoint);
        let config = SqsConfig {
            region: client.region,
            endpoint: client.endpoint,
            access_key_id: client.access_key_id,
            secret_access_key: client.secret_access_key,
            ..SqsConfig::new(queue_url, dead_letter_url)
        };
        SqsQueue::new(&config).await.unwrap()
    }

    pub(super) fn events_config(&self, queue_url: &str, dead_letter_url: &str) -> S3EventsConfig {
        let client = client_config(&self.endpoint);
        S3EventsConfig {
            visibility_seconds: 5,
            region: client.region,
            endpoint: client.endpoint,
            access_key_id: client.access_key_id,
            secret_access_key: client.secret_access_key,
            ..S3EventsConfig::new(queue_url, dead_letter_url)
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let queues = std::mem::take(&mut *self.queues.lock().unwrap_or_else(|e| e.into_inner()));
        let buckets = std::mem::take(&mut *self.buckets.lock().unwrap_or_else(|e| e.into_inner()));
        let endpoint = self.endpoint.clone();
        // Drop cannot await, and the test's runtime may be going away: a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let sqs = client_config(&endpoint).client().await.unwrap();
                for url in queues {
                    let _ = sqs.delete_queue().queue_url(url).send().await;
                }
                let http = reqwest::Client::new();
                let base = endpoint.trim_end_matches('/');
                for (bucket, keys) in buckets {
                    for key in keys {
                        let url = object_url(&endpoint, &bucket, &key);
                        let _ = http.delete(url).header(AUTHORIZATION, S3_AUTH).send().await;
                    }
                    let bucket = format!("{base}/{bucket}");
                    let _ = http
                        .delete(bucket)
                        .header(AUTHORIZATION, S3_AUTH)
                        .send()
                        .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// moto checks no signatures, but without an S3 `Authorization` header it does not take every
/// request for S3 (object deletes are refused).
const S3_AUTH: &str = "AWS4-HMAC-SHA256 Credential=vidsnap-test/20260101/us-east-1/s3/aws4_request, \
                       SignedHeaders=host, Signature=0";

/// An object's path-style URL, the key percent-encoded but for its slashes.
fn object_url(endpoint: &str, bucket: &str, key: &str) -> String {
    const PATH: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let base = endpoint.trim_end_matches('/');
    format!("{base}/{bucket}/{}", utf8_percent_encode(key, PATH))
}

/// Retries `attempt` (with short pauses) until it yields, for at most [`PATIENCE`].
pub(super) async fn eventually<T, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
