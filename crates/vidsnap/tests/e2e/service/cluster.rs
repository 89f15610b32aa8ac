//! Scaled out on loopback: several API and worker processes of the real binary sharing
//! PostgreSQL, an S3 server and a broker, as they would on Kubernetes.
#![allow(clippy::unwrap_used)]

use std::{collections::HashMap, path::Path, time::Duration};

use object_store::{
    ObjectStoreExt,
    aws::AmazonS3Builder,
    path::Path as ObjectPath,
    signer::{Method as SignedMethod, Signer},
};
use reqwest::{Method, StatusCode};
use serde_json::json;
use vidsnap_db::{PgStore, testing::ScratchDatabase};
use vidsnap_domain::{Channel, DeliveryStatus, Repository, VideoId};

use super::support::{App, Smtp, history, service};
use crate::support::{Sandbox, clip};

/// A bucket of its own on the test S3 server (SeaweedFS or moto), removed with its objects
/// when the [`Bucket`] holding it is dropped.
#[derive(Clone)]
pub(super) struct BucketAccess {
    pub(super) endpoint: String,
    pub(super) name: String,
    access_key: String,
    secret_key: String,
}

pub(super) struct Bucket(BucketAccess);

impl std::ops::Deref for Bucket {
    type Target = BucketAccess;

    fn deref(&self) -> &BucketAccess {
        &self.0
    }
}

impl Bucket {
    pub(super) async fn create(endpoint: String, access_key: String, secret_key: String) -> Bucket {
        let bucket = BucketAccess {
            endpoint,
            name: format!("vidsnap-cluster-{}", uuid::Uuid::new_v4().simple()),
            access_key,
            secret_key,
        };
        let status = bucket.bucket_request(Method::PUT).await;
        assert!(status.is_success(), "creating the bucket: {status}");
        Bucket(bucket)
    }
}

impl BucketAccess {
    pub(super) fn client(&self) -> object_store::aws::AmazonS3 {
        AmazonS3Builder::new()
            .with_bucket_name(&self.name)
            .with_endpoint(&self.endpoint)
            .with_region("us-east-1")
            .with_allow_http(true)
            .with_access_key_id(&self.access_key)
            .with_secret_access_key(&self.secret_key)
            .build()
            .unwrap()
    }

    /// A bucket-level request, signed as a presigned URL for the bucket itself.
    async fn bucket_request(&self, method: Method) -> StatusCode {
        let url = self
            .client()
            .signed_url(
                http_method(&method),
                &ObjectPath::from(""),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        reqwest::Client::new()
            .request(method, url.as_str())
            .header("content-length", "0")
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Every key in the bucket.
    pub(super) async fn keys(&self) -> Vec<String> {
        use futures_util::TryStreamExt;
        let listed: Vec<_> = object_store::ObjectStore::list(&self.client(), None)
            .try_collect()
            .await
            .unwrap();
        listed.into_iter().map(|m| m.location.to_string()).collect()
    }

    /// The service's storage settings for this bucket.
    pub(super) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("VIDSNAP_STORAGE__KIND", "s3".into()),
            ("VIDSNAP_STORAGE__BUCKET", self.name.clone()),
            ("VIDSNAP_STORAGE__ENDPOINT", self.endpoint.clone()),
            ("VIDSNAP_STORAGE__REGION", "us-east-1".into()),
            ("VIDSNAP_STORAGE__PATH_STYLE", "true".into()),
            ("VIDSNAP_STORAGE__ALLOW_HTTP", "true".into()),
            ("VIDSNAP_STORAGE__ACCESS_KEY_ID", self.access_key.clone()),
            (
                "VIDSNAP_STORAGE__SECRET_ACCESS_KEY",
                self.secret_key.clone(),
            ),
        ]
    }
}

impl Drop for Bucket {
    fn drop(&mut self) {
        let bucket = self.0.clone();
        // Best effort, on a runtime of its own (drop may run outside one).
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Runtime::new() {
                runtime.block_on(async {
                    for key in bucket.keys().await {
                        let _ = bucket.client().delete(&ObjectPath::from(key)).await;
                    }
                    bucket.bucket_request(Method::DELETE).await
                });
            }
        })
        .join();
    }
}

fn http_method(method: &Method) -> SignedMethod {
    SignedMethod::from_bytes(method.as_str().as_bytes()).unwrap()
}

/// A figure from a Prometheus text page.
pub(super) fn gauge(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

pub(super) async fn metrics(app: &App) -> String {
    app.http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Creates a video on `api`, PUTs `file` to its presigned S3 URL, and tells `other` (another
/// API process) that the upload is complete.
async fn upload(api: &App, other: &App, token: &str, file: &Path, name: &str) -> String {
    let created = api
        .create(
            token,
            json!({"file_name": name, "options": {"every": "1s"}}),
        )
        .await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    let put = &created["upload"];
    assert_eq!(put["method"], "PUT");
    let response = api
        .http
        .put(put["url"].as_str().unwrap())
        .body(std::fs::read(file).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "the presigned PUT");
    let (status, body) = other
        .call(
            Method::POST,
            &format!("/v1/videos/{id}/uploaded"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    id
}

/// Two API and three worker processes on PostgreSQL + SeaweedFS + RabbitMQ; 30 videos uploaded
/// through presigned URLs; the only worker running is SIGKILLed mid-job, then three workers
/// (one of them its restart) finish. Every video succeeds exactly once with one e-mail, nothing
/// is left in the queue, and no worker keeps scratch files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_survives_a_worker_killed_mid_job() {
    let database = ScratchDatabase::create("vidsnap_cluster").await;
    let bucket = Bucket::create(
        service("VIDSNAP_TEST_S3_ENDPOINT"),
        service("VIDSNAP_TEST_S3_ACCESS_KEY"),
        service("VIDSNAP_TEST_S3_SECRET_KEY"),
    )
    .await;
    let queue_name = format!("vidsnap-cluster-{}", uuid::Uuid::new_v4().simple());
    let _broker = AmqpQueues {
        url: service("VIDSNAP_TEST_AMQP_URL"),
        queue: queue_name.clone(),
    };
    let smtp = Smtp::start().await;
    let mut env = vec![
        ("VIDSNAP_DATABASE__KIND", "postgres".to_owned()),
        ("VIDSNAP_DATABASE__URL", database.url().to_owned()),
        ("VIDSNAP_QUEUE__KIND", "rabbitmq".into()),
        ("VIDSNAP_QUEUE__URL", service("VIDSNAP_TEST_AMQP_URL")),
        ("VIDSNAP_QUEUE__QUEUE", queue_name.clone()),
        (
            "VIDSNAP_AUTH__SECRET",
            "a cluster-wide secret of 32+ characters".into(),
        ),
        ("VIDSNAP_WORKER__CONCURRENCY", "2".into()),
    ];
    env.extend(bucket.env());
    env.extend(smtp.env());
    let with_role = |role: &str| {
        let mut env = env.clone();
        env.push(("VIDSNAP_SERVER__ROLE", role.to_owned()));
        env
    };
    let dirs: Vec<Sandbox> = (0..6).map(|_| Sandbox::new()).collect();
    let dir = |i: usize| dirs[i].root.path().to_path_buf();

    let api = [
        App::start(&dir(0), &with_role("api")).await,
        App::start(&dir(1), &with_role("api")).await,
    ];
    let scheduler = App::start(&dir(2), &with_role("scheduler")).await;
    let first_worker = App::start(&dir(3), &with_role("worker")).await;
    for app in api.iter().chain([&scheduler, &first_worker]) {
        let (status, ready) = app.call(Method::GET, "/readyz", None, None).await;
        assert_eq!(status, StatusCode::OK, "{} not ready: {ready}", app.url);
    }
    // Each role asks what it uses: the scheduler touches no blobs.
    let (_, ready) = scheduler.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready["checks"], json!({"database": true, "queue": true}));
    let (_, ready) = first_worker.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        ready["checks"],
        json!({"database": true, "queue": true, "storage": true})
    );
    let (status, _) = first_worker
        .call(Method::GET, "/v1/videos", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "workers serve no API");

    let token = api[0].register("ops@example.com").await;
    // The first two take seconds each (120 PNG frames), so the worker is caught mid-job.
    let mut ids = Vec::new();
    for i in 0..30 {
        let (file, name) = if i < 2 {
            (clip("long-png.mp4"), format!("long {i}.mp4"))
        } else {
            (clip("short3.mp4"), format!("short {i}.mp4"))
        };
        ids.push(upload(&api[i % 2], &api[(i + 1) % 2], &token, &file, &name).await);
    }
    api[0]
        .wait_for(&token, &ids[0], "the first job to start", |v| {
            v["status"] == "processing"
        })
        .await;
    first_worker.kill().await;

    let workers = [
        App::start(&dir(3), &with_role("worker")).await,
        App::start(&dir(4), &with_role("worker")).await,
        App::start(&dir(5), &with_role("worker")).await,
    ];
    let mut redelivered = 0;
    for (i, id) in ids.iter().enumerate() {
        let video = api[i % 2].wait_for_status(&token, id, "succeeded").await;
        let statuses = history(&video);
        assert_eq!(
            statuses.iter().filter(|s| *s == "succeeded").count(),
            1,
            "{id}: {statuses:?}"
        );
        if statuses.iter().filter(|s| *s == "processing").count() > 1 {
            redelivered += 1;
        }
        let frames = if i < 2 { 120 } else { 3 };
        assert_eq!(video["outputs"]["frames"], frames, "{video}");
    }
    assert!(redelivered >= 1, "the killed worker's job ran again");

    // One notification per video, delivered: exactly 30 e-mails.
    let repo = PgStore::connect(database.url()).await.unwrap();
    for id in &ids {
        let video: VideoId = id.parse().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let sent = loop {
            let notes = repo.notifications_for(video).await.unwrap();
            if !notes.is_empty() && notes.iter().all(|n| n.status == DeliveryStatus::Delivered) {
                break notes;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{id}: notifications not delivered: {notes:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let emails: Vec<_> = sent
            .iter()
            .filter(|n| matches!(n.channel, Channel::Email { .. }))
            .collect();
        assert_eq!(emails.len(), 1, "{id}: {sent:?}");
    }
    assert_eq!(smtp.wait_for(30).await.len(), 30);

    // Outputs beside each video; the queue is empty.
    let keys = bucket.keys().await;
    let mut per_video: HashMap<String, usize> = HashMap::new();
    for key in &keys {
        let video = key.split('/').nth(1).unwrap_or_default().to_owned();
        *per_video.entry(video).or_default() += 1;
    }
    for id in &ids {
        assert_eq!(
            per_video.get(id),
            Some(&3),
            "video, zip, thumbnail: {keys:?}"
        );
    }
    let page = metrics(&api[0]).await;
    assert_eq!(gauge(&page, "vidsnap_queue_depth"), Some(0.0), "{page}");
    assert_eq!(gauge(&page, "vidsnap_queue_dead"), Some(0.0), "{page}");

    for app in workers.into_iter().chain([scheduler]).chain(api) {
        assert!(app.stop().await.success());
    }
    for i in 3..6 {
        let scratch = dir(i).join("tmp");
        assert!(
            !scratch.exists() || Sandbox::list(&scratch).is_empty(),
            "worker {i} left scratch files: {:?}",
            Sandbox::list(&scratch)
        );
    }
}

/// The broker objects of the queue named `queue` (the delay and hold queues expire by
/// themselves), deleted on drop.
struct AmqpQueues {
    url: String,
    queue: String,
}

impl Drop for AmqpQueues {
    fn drop(&mut self) {
        use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
        let (url, queue) = (self.url.clone(), self.queue.clone());
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Runtime::new() else {
                return;
            };
            runtime.block_on(async {
                let properties = lapin::ConnectionProperties::default();
                let Ok(connection) = lapin::Connection::connect(&url, properties).await else {
                    return;
                };
                for name in [queue.clone(), format!("{queue}.dead")] {
                    if let Ok(channel) = connection.create_channel().await {
                        let options = QueueDeleteOptions::default();
                        let _ = channel.queue_delete(name.as_str().into(), options).await;
                    }
                }
                if let Ok(channel) = connection.create_channel().await {
                    let dlx = format!("{queue}.dlx");
                    let options = ExchangeDeleteOptions::default();
                    let _ = channel.exchange_delete(dlx.as_str().into(), options).await;
                }
                let _ = connection.close(200, "done".into()).await;
            });
        })
        .join();
    }
}

/// SQS queues on moto for one test, deleted on drop.
struct MotoQueues {
    sqs: aws_sdk_sqs::Client,
    endpoint: String,
    urls: Vec<String>,
}

impl MotoQueues {
    async fn new(endpoint: &str) -> MotoQueues {
        let sqs = vidsnap_queue::sqs::SqsClientConfig {
            region: Some("us-east-1".into()),
            endpoint: Some(endpoint.to_owned()),
            access_key_id: Some("vidsnap-test".into()),
            secret_access_key: Some("vidsnap-test".into()),
        }
        .client()
        .await
        .unwrap();
        MotoQueues {
            sqs,
            endpoint: endpoint.to_owned(),
            urls: Vec::new(),
        }
    }

    /// A queue redriving to a new dead-letter queue after 5 receives: (queue, dead letters).
    async fn pair(&mut self, name: &str) -> (String, String) {
        use aws_sdk_sqs::types::QueueAttributeName;
        let suffix = uuid::Uuid::new_v4().simple();
        let dead = self
            .sqs
            .create_queue()
            .queue_name(format!("{name}-dlq-{suffix}"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let policy = json!({"deadLetterTargetArn": self.arn(&dead).await, "maxReceiveCount": "5"});
        let main = self
            .sqs
            .create_queue()
            .queue_name(format!("{name}-{suffix}"))
            .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        self.urls.extend([main.clone(), dead.clone()]);
        (main, dead)
    }

    async fn arn(&self, url: &str) -> String {
        use aws_sdk_sqs::types::QueueAttributeName;
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

    /// Messages on a queue, visible or not.
    async fn count(&self, url: &str) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName;
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
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed,
        ]
        .iter()
        .map(|name| attributes[name].parse::<u64>().unwrap())
        .sum()
    }

    /// The `reason` attributes of the messages on a dead-letter queue (at least `n` of them).
    async fn reasons(&self, url: &str, n: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut reasons = Vec::new();
        while reasons.len() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "dead letters: {reasons:?}"
            );
            let received = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_attribute_names("All")
                .send()
                .await
                .unwrap();
            for message in received.messages.unwrap_or_default() {
                reasons.push(
                    message
                        .message_attributes
                        .as_ref()
                        .and_then(|a| a.get("reason"))
                        .and_then(|v| v.string_value())
                        .unwrap_or("<none>")
                        .to_owned(),
                );
            }
        }
        reasons
    }

    /// A bucket's `s3:ObjectCreated:*` events go to `queue` (moto checks no signatures).
    async fn notify(&self, bucket: &str, queue: &str) {
        let configuration = format!(
            r#"<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
                 <QueueConfiguration>
                   <Id>vidsnap-uploads</Id>
                   <Queue>{}</Queue>
                   <Event>s3:ObjectCreated:*</Event>
                 </QueueConfiguration>
               </NotificationConfiguration>"#,
            self.arn(queue).await
        );
        let response = reqwest::Client::new()
            .put(format!("{}/{bucket}?notification", self.endpoint))
            .body(configuration)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{response:?}");
    }
}

impl Drop for MotoQueues {
    fn drop(&mut self) {
        let (sqs, urls) = (self.sqs.clone(), std::mem::take(&mut self.urls));
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Runtime::new() {
                runtime.block_on(async {
                    for url in urls {
                        let _ = sqs.delete_queue().queue_url(url).send().await;
                    }
                });
            }
        })
        .join();
    }
}

/// The AWS variant: objects put straight into a (moto) bucket, without a presigned URL or any
/// "uploaded" call, reach the workers through the bucket's S3 -> SQS event notifications; jobs
/// travel on SQS too. The outputs land beside the video; an object naming no known video ends
/// on the events' dead-letter queue with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_put_into_the_bucket_are_processed_through_s3_events() {
    let moto = service("VIDSNAP_TEST_MOTO_ENDPOINT");
    let database = ScratchDatabase::create("vidsnap_events").await;
    let bucket = Bucket::create(moto.clone(), "vidsnap-test".into(), "vidsnap-test".into()).await;
    let mut queues = MotoQueues::new(&moto).await;
    let (events, events_dead) = queues.pair("vidsnap-uploads").await;
    let (jobs, jobs_dead) = queues.pair("vidsnap-jobs").await;
    queues.notify(&bucket.name, &events).await;

    let sqs = |section: &'static str| -> Vec<(&'static str, String)> {
        let key = |name: &str| -> &'static str {
            Box::leak(format!("VIDSNAP_{section}__{name}").into_boxed_str())
        };
        vec![
            (key("REGION"), "us-east-1".into()),
            (key("ENDPOINT"), moto.clone()),
            (key("ACCESS_KEY_ID"), "vidsnap-test".into()),
            (key("SECRET_ACCESS_KEY"), "vidsnap-test".into()),
            (key("WAIT_SECONDS"), "1".into()),
        ]
    };
    let mut env = vec![
        ("VIDSNAP_DATABASE__KIND", "postgres".to_owned()),
        ("VIDSNAP_DATABASE__URL", database.url().to_owned()),
        (
            "VIDSNAP_AUTH__SECRET",
            "a cluster-wide secret of 32+ characters".into(),
        ),
        ("VIDSNAP_QUEUE__KIND", "sqs".into()),
        ("VIDSNAP_QUEUE__QUEUE_URL", jobs.clone()),
        ("VIDSNAP_QUEUE__DEAD_LETTER_QUEUE_URL", jobs_dead.clone()),
        ("VIDSNAP_S3_EVENTS__QUEUE_URL", events.clone()),
        (
            "VIDSNAP_S3_EVENTS__DEAD_LETTER_QUEUE_URL",
            events_dead.clone(),
        ),
        ("VIDSNAP_S3_EVENTS__BUCKET", bucket.name.clone()),
    ];
    env.extend(sqs("QUEUE"));
    env.extend(sqs("S3_EVENTS"));
    env.extend(bucket.env());
    let with_role = |role: &str| {
        let mut env = env.clone();
        env.push(("VIDSNAP_SERVER__ROLE", role.to_owned()));
        env
    };
    let (api_dir, worker_dir) = (Sandbox::new(), Sandbox::new());
    let api = App::start(api_dir.root.path(), &with_role("api")).await;
    let worker = App::start(worker_dir.root.path(), &with_role("worker")).await;

    let token = api.register("ana@example.com").await;
    let (_, me) = api.call(Method::GET, "/v1/me", Some(&token), None).await;
    let user = me["id"].as_str().unwrap().to_owned();
    let created = api
        .create(
            &token,
            json!({"file_name": "clip one.mp4", "options": {"every": "1s"}}),
        )
        .await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    let key = format!("{user}/{id}/clip one.mp4");
    let client = bucket.client();
    let bytes = std::fs::read(clip("short3.mp4")).unwrap();
    client
        .put(&ObjectPath::from(key.as_str()), bytes.into())
        .await
        .unwrap();
    // An object that names no video of ours: dead-lettered with its reason.
    let stray = format!("{user}/{}/stray.mp4", uuid::Uuid::new_v4());
    client
        .put(
            &ObjectPath::from(stray.as_str()),
            b"not ours".to_vec().into(),
        )
        .await
        .unwrap();

    let video = api.wait_for_status(&token, &id, "succeeded").await;
    assert_eq!(
        history(&video),
        ["awaiting_upload", "queued", "processing", "succeeded"]
    );
    assert_eq!(video["outputs"]["frames"], 3);
    let mut beside: Vec<String> = bucket
        .keys()
        .await
        .into_iter()
        .filter(|k| k.starts_with(&format!("{user}/{id}/")))
        .collect();
    beside.sort();
    assert_eq!(
        beside,
        [
            format!("{user}/{id}/clip one-images.zip"),
            format!("{user}/{id}/clip one.mp4"),
            format!("{user}/{id}/image.jpg"),
        ]
    );
    assert_eq!(queues.reasons(&events_dead, 1).await, ["unknown-video"]);
    // Every event handled (the outputs' own events are recognised and dropped), no job left.
    for (url, what) in [
        (&events, "events"),
        (&jobs, "jobs"),
        (&jobs_dead, "dead jobs"),
    ] {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while queues.count(url).await > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{what} queue not empty"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert!(worker.stop().await.success());
    assert!(api.stop().await.success());
}
