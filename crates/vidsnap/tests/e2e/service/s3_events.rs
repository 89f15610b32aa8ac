//! The AWS variant on moto: objects put into the bucket reach the workers through its S3 -> SQS
//! event notifications (uploads of videos created through the API, and files dropped into a
//! watched folder with no API call), jobs travel on SQS, and a worker whose bucket notifies
//! another queue says so on `/readyz`. Every process gets its AWS endpoint, region and keys from
//! one `[aws]` section.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use object_store::{ObjectStoreExt, path::Path as ObjectPath};
use reqwest::{Method, StatusCode};
use serde_json::json;
use vidsnap_db::testing::ScratchDatabase;

use super::{
    cluster::Bucket,
    support::{App, history, service},
};
use crate::support::{Sandbox, clip};

/// SQS queues on moto for one test, deleted on drop.
pub(super) struct MotoQueues {
    pub(super) sqs: aws_sdk_sqs::Client,
    endpoint: String,
    urls: Vec<String>,
}

impl MotoQueues {
    pub(super) async fn new(endpoint: &str) -> MotoQueues {
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
    pub(super) async fn pair(&mut self, name: &str) -> (String, String) {
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
    pub(super) async fn count(&self, url: &str) -> u64 {
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
    pub(super) async fn reasons(&self, url: &str, n: usize) -> Vec<String> {
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
    pub(super) async fn notify(&self, bucket: &str, queue: &str) {
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

/// What every process of these tests reads: PostgreSQL, one `[aws]` section for every AWS client
/// (the storage's, the SQS queue's and the S3 event consumer's; the consumer's bucket and key
/// prefix follow `[storage]`), the bucket, and the events' queue pair.
pub(super) fn events_env(
    moto: &str,
    database: &ScratchDatabase,
    bucket: &Bucket,
    (events, events_dead): (&str, &str),
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("VIDSNAP_DATABASE__KIND", "postgres".to_owned()),
        ("VIDSNAP_DATABASE__URL", database.url().to_owned()),
        ("VIDSNAP_AWS__REGION", "us-east-1".into()),
        ("VIDSNAP_AWS__ENDPOINT", moto.to_owned()),
        ("VIDSNAP_AWS__ACCESS_KEY_ID", "vidsnap-test".into()),
        ("VIDSNAP_AWS__SECRET_ACCESS_KEY", "vidsnap-test".into()),
        ("VIDSNAP_S3_EVENTS__QUEUE_URL", events.to_owned()),
        (
            "VIDSNAP_S3_EVENTS__DEAD_LETTER_QUEUE_URL",
            events_dead.to_owned(),
        ),
        ("VIDSNAP_S3_EVENTS__WAIT_SECONDS", "1".into()),
    ];
    env.extend(bucket.env());
    env
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

    let mut env = events_env(&moto, &database, &bucket, (&events, &events_dead));
    env.extend([
        (
            "VIDSNAP_AUTH__SECRET",
            "a cluster-wide secret of 32+ characters".to_owned(),
        ),
        ("VIDSNAP_QUEUE__KIND", "sqs".into()),
        ("VIDSNAP_QUEUE__QUEUE_URL", jobs.clone()),
        ("VIDSNAP_QUEUE__DEAD_LETTER_QUEUE_URL", jobs_dead.clone()),
        ("VIDSNAP_QUEUE__WAIT_SECONDS", "1".into()),
    ]);
    let with_role = |role: &str| {
        let mut env = env.clone();
        env.push(("VIDSNAP_SERVER__ROLE", role.to_owned()));
        env
    };
    let (api_dir, worker_dir) = (Sandbox::new(), Sandbox::new());
    // A watched folder too: objects dropped under `inbox/` with no API call become ana's videos.
    let watch = "[[watch]]\nprefix = \"inbox/\"\nowner = \"ana@example.com\"\nparams = { every = \"1s\" }\n";
    for dir in [&api_dir, &worker_dir] {
        std::fs::write(dir.root.path().join("vidsnap.toml"), watch).unwrap();
    }
    let api = App::start(api_dir.root.path(), &with_role("api")).await;
    let worker = App::start(worker_dir.root.path(), &with_role("worker")).await;
    // The bucket notifies the queue the worker reads.
    let (status, ready) = worker.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["checks"]["bucket_notification"], true, "{ready}");

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
    // Dropped into the watched folder: a key with a space, a `+` and non-ASCII (S3 events
    // form-encode it).
    let dropped = "inbox/2026 12/clip two+é.mp4";
    client
        .put(
            // `parse` keeps the key as it is (`from` would percent-encode the é).
            &ObjectPath::parse(dropped).unwrap(),
            std::fs::read(clip("short3.mp4")).unwrap().into(),
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let registered = loop {
        let (_, listed) = api
            .call(Method::GET, "/v1/videos", Some(&token), None)
            .await;
        let found = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["file_name"] == "clip two+é.mp4" && v["status"] == "succeeded")
            .cloned();
        if let Some(video) = found {
            break video;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not processed: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let keys = bucket.keys().await;
    for expected in [
        "inbox/2026 12/clip two+é-images.zip",
        "inbox/2026 12/clip two+é-image.jpg",
    ] {
        assert!(keys.iter().any(|k| k == expected), "{expected} in {keys:?}");
    }
    let shown = api.video(&token, registered["id"].as_str().unwrap()).await;
    assert_eq!(shown["outputs"]["frames"], 3, "{shown}");
    // The outputs' own events are not videos: still exactly two.
    let (_, listed) = api
        .call(Method::GET, "/v1/videos", Some(&token), None)
        .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2, "{listed}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_that_notifies_another_queue_makes_the_worker_not_ready() {
    let moto = service("VIDSNAP_TEST_MOTO_ENDPOINT");
    let database = ScratchDatabase::create("vidsnap_misnotified").await;
    let bucket = Bucket::create(moto.clone(), "vidsnap-test".into(), "vidsnap-test".into()).await;
    let mut queues = MotoQueues::new(&moto).await;
    let (events, events_dead) = queues.pair("vidsnap-mine").await;
    let (other, _) = queues.pair("vidsnap-other").await;
    queues.notify(&bucket.name, &other).await;
    let mut env = events_env(&moto, &database, &bucket, (&events, &events_dead));
    env.push(("VIDSNAP_SERVER__ROLE", "worker".to_owned()));
    let dir = Sandbox::new();
    let worker = App::start(dir.root.path(), &env).await;
    let (status, ready) = worker.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["checks"]["bucket_notification"], false, "{ready}");
    assert_eq!(ready["checks"]["storage"], true, "{ready}");
    assert!(worker.stop().await.success());
}

/// Seed 002's bucket workflow on the AWS variant: files and sidecars put into the bucket's
/// `uploads/` arrive through S3 events; the passing file ends in `processed/` with its sidecar
/// and report, the one whose sidecar lies is retried in `failed/` and ends in
/// `unable_to_process/`; the copies' own events register nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sorted_bucket_moves_files_to_their_outcome_folders() {
    let moto = service("VIDSNAP_TEST_MOTO_ENDPOINT");
    let database = ScratchDatabase::create("vidsnap_sorted").await;
    let bucket = Bucket::create(moto.clone(), "vidsnap-test".into(), "vidsnap-test".into()).await;
    let mut queues = MotoQueues::new(&moto).await;
    let (events, events_dead) = queues.pair("vidsnap-sorted").await;
    queues.notify(&bucket.name, &events).await;
    let env = events_env(&moto, &database, &bucket, (&events, &events_dead));
    let dir = Sandbox::new();
    let config = r#"
[scheduler]
sort_seconds = 0.2

[[watch]]
prefix = "uploads/"
owner = "qa@example.com"
recipe = "qc"
params = { min_bytes = 1000 }

[watch.sort]
max_retries = 1
retry_delay_seconds = 0.2
"#;
    std::fs::write(dir.root.path().join("vidsnap.toml"), config).unwrap();
    let app = App::start(dir.root.path(), &env).await;
    let token = app.register("qa@example.com").await;

    let client = bucket.client();
    let video = std::fs::read(clip("short3.mp4")).unwrap();
    let put = |key: &'static str, bytes: Vec<u8>| {
        let client = client.clone();
        async move {
            client
                .put(&ObjectPath::parse(key).unwrap(), bytes.into())
                .await
                .unwrap();
        }
    };
    let sidecar = |size: usize| {
        json!({"Duration": 3, "File size": size, "Codec": "h264"})
            .to_string()
            .into_bytes()
    };
    put("uploads/pass é.json", sidecar(video.len())).await;
    put("uploads/pass é.mp4", video.clone()).await;
    put("uploads/lying.json", sidecar(video.len() - 1)).await;
    put("uploads/lying.mp4", video.clone()).await;

    let expected = [
        "processed/pass é-qc.json",
        "processed/pass é.json",
        "processed/pass é.mp4",
        "unable_to_process/lying-qc.json",
        "unable_to_process/lying.json",
        "unable_to_process/lying.mp4",
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let mut keys = bucket.keys().await;
        keys.sort();
        if keys == expected {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "keys: {keys:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, counts) = app
        .call(Method::GET, "/v1/qc/results/count", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{counts}");
    assert_eq!(
        (
            &counts["processed"],
            &counts["failed"],
            &counts["unable_to_process"]
        ),
        (&json!(1), &json!(1), &json!(1)),
        "{counts}"
    );
    // One video per file, whatever the copies' events said.
    let (_, listed) = app
        .call(Method::GET, "/v1/videos", Some(&token), None)
        .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2, "{listed}");
    assert!(app.stop().await.success());
}
