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

    /// The size of every object under `prefix`, by key.
    pub(super) async fn sizes(&self, prefix: &str) -> HashMap<String, u64> {
        use futures_util::TryStreamExt;
        let prefix = ObjectPath::from(prefix);
        let listed: Vec<_> = object_store::ObjectStore::list(&self.client(), Some(&prefix))
            .try_collect()
            .await
            .unwrap();
        listed
            .into_iter()
            .map(|m| (m.location.to_string(), m.size))
            .collect()
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

/// Creates a video on `api` with `options`, PUTs `file` to its presigned S3 URL, and tells
/// `other` (another API process) that the upload is complete.
async fn upload(
    api: &App,
    other: &App,
    token: &str,
    file: &Path,
    name: &str,
    options: serde_json::Value,
) -> String {
    let created = api
        .create(token, json!({"file_name": name, "options": options}))
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
    // Every role uses all three (the scheduler sweeps and audits the storage).
    let (_, ready) = scheduler.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        ready["checks"],
        json!({"database": true, "queue": true, "storage": true})
    );
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
    // The first two take seconds each (480 PNG frames), so the worker is caught mid-job: it is
    // killed as soon as the first one runs, and the other 28 are uploaded while no worker runs.
    let mut ids = Vec::new();
    let long = json!({"every": "0.25s", "format": "png"});
    for i in 0..2 {
        let name = format!("long {i}.mp4");
        let (file, options) = (clip("long-png.mp4"), long.clone());
        ids.push(
            upload(
                &api[i % 2],
                &api[(i + 1) % 2],
                &token,
                &file,
                &name,
                options,
            )
            .await,
        );
    }
    api[0]
        .wait_for(&token, &ids[0], "the first job to start", |v| {
            v["status"] != "queued"
        })
        .await;
    first_worker.kill().await;
    let caught = api[0].video(&token, &ids[0]).await;
    assert_eq!(
        caught["status"], "processing",
        "the first job ended before its worker was killed: {caught}"
    );
    for i in 2..30 {
        let (file, name) = (clip("short3.mp4"), format!("short {i}.mp4"));
        let options = json!({"every": "1s"});
        ids.push(
            upload(
                &api[i % 2],
                &api[(i + 1) % 2],
                &token,
                &file,
                &name,
                options,
            )
            .await,
        );
    }

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
        let frames = if i < 2 { 480 } else { 3 };
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

/// `GET /v1/jobs/{id}` (steps with artefacts and links, and the history).
async fn job(api: &App, token: &str, id: &str) -> serde_json::Value {
    let (status, body) = api
        .call(Method::GET, &format!("/v1/jobs/{id}"), Some(token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Polls the job until `done` holds, for at most `within`.
async fn wait_for_job(
    api: &App,
    token: &str,
    id: &str,
    what: &str,
    within: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        let job = job(api, token, id).await;
        if done(&job) {
            return job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {job:#}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The job's step named `name`.
fn step<'a>(job: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {job:#}"))
}

/// The history lines of step `name` with status `status`.
fn events<'a>(job: &'a serde_json::Value, name: &str, status: &str) -> Vec<&'a serde_json::Value> {
    job["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["step"] == name && e["status"] == status)
        .collect()
}

/// The worker ids (`{HOSTNAME}-{pid}`) that started step `name`, in order, from the history's
/// `running` lines ("worker {id}").
fn runners(job: &serde_json::Value, name: &str) -> Vec<String> {
    events(job, name, "running")
        .iter()
        .map(|e| {
            let reason = e["reason"].as_str().unwrap_or_default();
            let worker = reason
                .strip_prefix("worker ")
                .unwrap_or_else(|| panic!("a running line names its worker: {e}"));
            // A takeover says so after the worker's id.
            worker.split(' ').next().unwrap_or(worker).to_owned()
        })
        .collect()
}

fn time(value: &serde_json::Value) -> chrono::DateTime<chrono::Utc> {
    let text = value.as_str().unwrap_or_else(|| panic!("a time: {value}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// A recipe of two parallel `frames` steps (seconds each on the long clip: 480 PNG frames) and a
/// `thumbnail` after both, on one API and three single-slot workers over PostgreSQL + SeaweedFS
/// + RabbitMQ. The parallel steps run in two different processes; one of them is SIGKILLed
/// mid-step, its step's lease runs out, the broker's redelivery takes it over in another worker
/// (attempt 2). The job succeeds, the thumbnail runs after both, every artefact is in the bucket
/// as reported, and the job is announced by exactly one e-mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_survives_a_worker_killed_mid_step() {
    let database = ScratchDatabase::create("vidsnap_cluster_steps").await;
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
        // One step at a time per process: parallel steps run in different processes.
        ("VIDSNAP_WORKER__CONCURRENCY", "1".into()),
        // A dead worker's step is taken over 3 s after its last heartbeat; live ones beat
        // often enough that a slow moment on a busy machine never looks like a death.
        ("VIDSNAP_WORKER__LEASE_SECONDS", "3".into()),
        ("VIDSNAP_WORKER__STEP_HEARTBEAT_SECONDS", "0.5".into()),
    ];
    env.extend(bucket.env());
    env.extend(smtp.env());
    let with_role = |role: &str, host: Option<&str>| {
        let mut env = env.clone();
        env.push(("VIDSNAP_SERVER__ROLE", role.to_owned()));
        // Worker ids are `{HOSTNAME}-{pid}`: a host name per process says which one ran a step.
        if let Some(host) = host {
            env.push(("HOSTNAME", host.to_owned()));
        }
        env
    };
    let dirs: Vec<Sandbox> = (0..4).map(|_| Sandbox::new()).collect();
    let dir = |i: usize| dirs[i].root.path().to_path_buf();
    let api = App::start(&dir(0), &with_role("api", None)).await;
    let hosts = ["cluster-worker-a", "cluster-worker-b", "cluster-worker-c"];
    let mut workers = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        let app = App::start(&dir(i + 1), &with_role("worker", Some(host))).await;
        workers.push((*host, i + 1, app));
    }
    for app in std::iter::once(&api).chain(workers.iter().map(|(_, _, app)| app)) {
        let (status, ready) = app.call(Method::GET, "/readyz", None, None).await;
        assert_eq!(status, StatusCode::OK, "{} not ready: {ready}", app.url);
    }

    // The input: a video whose own (/v1/videos) job is over, e-mail sent, before the job starts,
    // so the job's steps have the workers to themselves and the job's e-mail is told apart.
    let token = api.register("steps@example.com").await;
    let (_, me) = api.call(Method::GET, "/v1/me", Some(&token), None).await;
    let user = me["id"].as_str().unwrap().to_owned();
    let video = api
        .upload(&token, &clip("long-png.mp4"), "long.mp4", "60s")
        .await;
    let (status, body) = api
        .call(
            Method::POST,
            &format!("/v1/videos/{video}/uploaded"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    api.wait_for_status(&token, &video, "succeeded").await;
    let repo = PgStore::connect(database.url()).await.unwrap();
    let video_id: VideoId = video.parse().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let notes = repo.notifications_for(video_id).await.unwrap();
        if !notes.is_empty() && notes.iter().all(|n| n.status == DeliveryStatus::Delivered) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the video's e-mail was not delivered: {notes:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(smtp.wait_for(1).await.len(), 1);

    let frames = json!({"every": "0.25s", "format": "png", "images": false});
    let recipe = json!({
        "steps": [
            {"name": "frames-a", "op": "frames", "options": frames},
            {"name": "frames-b", "op": "frames", "options": frames},
            {"name": "poster", "op": "thumbnail", "options": {"at": 1},
             "after": ["frames-a", "frames-b"]}
        ]
    });
    let (status, created) = api
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&token),
            Some(json!({"recipe": recipe, "inputs": {"video": video}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let started = std::time::Instant::now();

    // Both parallel steps running, in two different processes.
    let running = wait_for_job(
        &api,
        &token,
        &id,
        "both frames steps to run",
        Duration::from_secs(60),
        |job| {
            ["frames-a", "frames-b"]
                .iter()
                .all(|s| step(job, s)["status"] == "running")
        },
    )
    .await;
    let (a, b) = (runners(&running, "frames-a"), runners(&running, "frames-b"));
    assert_eq!((a.len(), b.len()), (1, 1), "{running:#}");
    assert_ne!(
        a[0], b[0],
        "parallel steps in one single-slot process: {running:#}"
    );
    assert_eq!(step(&running, "poster")["status"], "waiting", "{running:#}");
    let host_of = |worker: &str| -> &str {
        hosts
            .iter()
            .find(|h| worker.starts_with(&format!("{h}-")))
            .unwrap_or_else(|| panic!("{worker} is none of {hosts:?}"))
    };
    let (killed_host, survivor_host) = (host_of(&a[0]), host_of(&b[0]));
    assert_ne!(killed_host, survivor_host);

    // SIGKILL frames-a's worker while the step runs.
    let i = workers
        .iter()
        .position(|(h, _, _)| *h == killed_host)
        .unwrap();
    let (_, _, victim) = workers.remove(i);
    victim.kill().await;
    let after_kill = job(&api, &token, &id).await;
    assert_eq!(
        step(&after_kill, "frames-a")["status"],
        "running",
        "frames-a ended before its worker was killed: {after_kill:#}"
    );

    let done = wait_for_job(
        &api,
        &token,
        &id,
        "the job to finish",
        Duration::from_secs(300),
        |job| {
            ["succeeded", "failed", "dead", "cancelled"]
                .iter()
                .any(|s| job["status"] == *s)
        },
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(done["status"], "succeeded", "{done:#}");

    // The killed step: a second attempt, started by another worker.
    let (a, b, poster) = (
        step(&done, "frames-a"),
        step(&done, "frames-b"),
        step(&done, "poster"),
    );
    assert_eq!(a["attempts"], 2, "the taken-over attempt counts: {done:#}");
    assert_eq!(b["attempts"], 1, "{done:#}");
    assert_eq!(poster["attempts"], 1, "{done:#}");
    let took_over = runners(&done, "frames-a");
    assert_eq!(took_over.len(), 2, "two running lines: {done:#}");
    assert_eq!(host_of(&took_over[0]), killed_host);
    assert_ne!(host_of(&took_over[1]), killed_host, "{done:#}");
    assert_ne!(took_over[0], took_over[1]);
    let attempts: Vec<_> = events(&done, "frames-a", "running")
        .iter()
        .map(|e| e["attempt"].clone())
        .collect();
    assert_eq!(attempts, [json!(1), json!(2)], "{done:#}");
    let second = events(&done, "frames-a", "running")[1]["reason"].clone();
    assert!(
        second.as_str().unwrap_or_default().contains("took over"),
        "the history says why the step started again: {second}"
    );
    assert_eq!(runners(&done, "frames-b").len(), 1, "{done:#}");
    for name in ["frames-a", "frames-b", "poster"] {
        assert_eq!(
            events(&done, name, "succeeded").len(),
            1,
            "{name}: {done:#}"
        );
        assert!(events(&done, name, "failed").is_empty(), "{name}: {done:#}");
    }
    // The takeover waited for the lease: at least 3 s after the kill.
    let first = time(&events(&done, "frames-a", "running")[0]["at"]);
    let second = time(&events(&done, "frames-a", "running")[1]["at"]);
    assert!(
        second - first >= chrono::TimeDelta::seconds(3),
        "taken over {} after the first start",
        second - first
    );

    // The thumbnail ran after both.
    let poster_start = time(&poster["started_at"]);
    for upstream in [a, b] {
        assert!(
            poster_start >= time(&upstream["finished_at"]),
            "poster started before {} finished: {done:#}",
            upstream["name"]
        );
    }
    assert_eq!(a["result"]["frames"], 480, "{done:#}");
    assert_eq!(b["result"]["frames"], 480, "{done:#}");

    // Every artefact is in the bucket, under its step's folder, with the size and digest
    // reported; nothing else is there.
    for s in [a, b, poster] {
        let name = s["name"].as_str().unwrap();
        let prefix = format!("{user}/jobs/{id}/{name}/");
        let stored = bucket.sizes(&prefix).await;
        let mut reported = HashMap::new();
        let artefacts = s["artefacts"].as_array().unwrap();
        let expected: &[&str] = if name == "poster" {
            &["thumbnail"]
        } else {
            &["thumbnail", "zip"]
        };
        let mut names: Vec<&str> = artefacts
            .iter()
            .map(|x| x["name"].as_str().unwrap())
            .collect();
        names.sort_unstable();
        assert_eq!(names, expected, "{name}: {s:#}");
        for artefact in artefacts {
            let url = reqwest::Url::parse(artefact["url"].as_str().unwrap()).unwrap();
            let key = url
                .path()
                .strip_prefix(&format!("/{}/", bucket.name))
                .unwrap_or_else(|| panic!("a path-style link into the bucket: {url}"))
                .to_owned();
            let bytes = artefact["bytes"].as_u64().unwrap();
            assert!(bytes > 0, "{artefact}");
            assert_eq!(stored.get(&key), Some(&bytes), "{key}: {stored:?}");
            let body = api
                .http
                .get(url)
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert_eq!(body.len() as u64, bytes, "{key}");
            let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body));
            assert_eq!(artefact["sha256"], digest, "{key}");
            reported.insert(key, bytes);
        }
        assert_eq!(
            stored, reported,
            "{name}: the step's folder holds its artefacts only"
        );
    }

    // One job.succeeded e-mail (besides the video's), and no second one once every process
    // has stopped (so no delivery can still be on its way).
    smtp.wait_for(2).await;
    let stopped: Vec<_> = workers.iter().map(|(_, i, _)| *i).collect();
    for (_, _, app) in workers {
        assert!(app.stop().await.success());
    }
    assert!(api.stop().await.success());
    let mail = smtp.messages();
    assert_eq!(mail.len(), 2, "{mail:#?}");
    let about_job: Vec<_> = mail.iter().filter(|m| m.contains(&id)).collect();
    assert_eq!(about_job.len(), 1, "{mail:#?}");
    assert!(
        about_job[0].contains("Your job finished"),
        "{}",
        about_job[0]
    );
    for i in stopped {
        let scratch = dir(i).join("tmp");
        assert!(
            !scratch.exists() || Sandbox::list(&scratch).is_empty(),
            "a worker left scratch files: {:?}",
            Sandbox::list(&scratch)
        );
    }
    eprintln!(
        "job {id}: {:.1} s from creation to succeeded; frames-a attempt 2 started {:.1} s after attempt 1",
        elapsed.as_secs_f64(),
        (second - first).num_milliseconds() as f64 / 1000.0,
    );
}
