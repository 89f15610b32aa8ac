//! The S3 event consumer, fed by a bucket's notifications or hand-sent messages.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use vidsnap_domain::{PortError, PortResult, UploadListener, UploadOutcome, UserId, VideoId};
use vidsnap_queue::sqs::{S3EventConsumer, S3EventsConfig};

use super::moto::{Moto, PATIENCE, eventually};

/// How the recording listener answers.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Queued,
    NotFound,
    Unavailable,
}

/// An [`UploadListener`] that records every call. Unless told otherwise it answers like the
/// real one: `Queued` the first time a key is seen, `Duplicate` after.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<(String, u64)>>,
    /// Answers per key, in order; the last one repeats.
    script: Mutex<HashMap<String, VecDeque<Answer>>>,
    seen: Mutex<HashSet<String>>,
    /// Each call takes this long.
    pause: Duration,
}

impl Recorder {
    fn answer(&self, key: &str, answers: &[Answer]) {
        self.script
            .lock()
            .unwrap()
            .insert(key.to_owned(), answers.iter().copied().collect());
    }

    fn calls(&self) -> Vec<(String, u64)> {
        self.calls.lock().unwrap().clone()
    }

    fn calls_for(&self, key: &str) -> usize {
        self.calls().iter().filter(|(k, _)| k == key).count()
    }
}

#[async_trait]
impl UploadListener for Recorder {
    async fn uploaded(&self, key: &str, size: u64) -> PortResult<UploadOutcome> {
        tokio::time::sleep(self.pause).await;
        self.calls.lock().unwrap().push((key.to_owned(), size));
        let scripted = {
            let mut script = self.script.lock().unwrap();
            script.get_mut(key).and_then(|answers| {
                if answers.len() > 1 {
                    answers.pop_front()
                } else {
                    answers.front().copied()
                }
            })
        };
        match scripted {
            Some(Answer::Queued) => Ok(UploadOutcome::Queued),
            Some(Answer::NotFound) => Err(PortError::NotFound),
            Some(Answer::Unavailable) => Err(PortError::Unavailable("database down".into())),
            None if self.seen.lock().unwrap().insert(key.to_owned()) => Ok(UploadOutcome::Queued),
            None => Ok(UploadOutcome::Duplicate),
        }
    }
}

/// A running consumer.
struct Running {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(config: &S3EventsConfig, listener: Arc<Recorder>) -> Self {
        let consumer = S3EventConsumer::new(config, listener).await.unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(consumer.run(shutdown.clone()));
        Self { shutdown, task }
    }

    /// Stops it; returns how long that took.
    async fn stop(self) -> Duration {
        let started = Instant::now();
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("run ends on shutdown")
            .unwrap();
        started.elapsed()
    }
}

/// An events queue with its dead-letter queue, fed by a new bucket: (events, DLQ, bucket).
async fn setup(moto: &Moto) -> (String, String, String) {
    let (events, dead) = moto.queues(5).await;
    let bucket = moto.bucket_notifying(&events).await;
    (events, dead, bucket)
}

/// One ObjectCreated record as S3 sends it.
fn record(bucket: &str, key: &str, size: u64) -> serde_json::Value {
    serde_json::json!({
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-23T10:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "10.0.0.1"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUV"},
        "s3": {
            "s3SchemaVersion": "1.0", "configurationId": "vidsnap-uploads",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                       "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": key, "size": size, "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                       "sequencer": "0055AED6DCD90281E5"}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_event_is_deleted_and_nothing_else_happens() {
    let moto = Moto::new().await;
    let (events, dead, _bucket) = setup(&moto).await;
    assert_eq!(
        moto.counts(&events).await,
        (1, 0, 0),
        "S3 sent its test event"
    );
    let recorder = Arc::new(Recorder::default());
    let running = Running::start(&moto.events_config(&events, &dead), recorder.clone()).await;
    moto.drained(&events, "the test event is deleted").await;
    running.stop().await;
    assert_eq!(recorder.calls(), []);
    assert_eq!(moto.counts(&dead).await, (0, 0, 0), "nothing dead-lettered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_reaches_the_listener_with_its_decoded_key_and_size() {
    let moto = Moto::new().await;
    let (events, dead, bucket) = setup(&moto).await;
    let recorder = Arc::new(Recorder::default());
    let running = Running::start(&moto.events_config(&events, &dead), recorder.clone()).await;
    moto.put(&bucket, "u/v/clip one+.mp4", b"hello video").await;
    moto.put(&bucket, "u/v/café ☕ 動画.mp4", b"unicode").await;
    eventually("both uploads reach the listener", || async {
        (recorder.calls().len() == 2).then_some(())
    })
    .await;
    let mut calls = recorder.calls();
    calls.sort();
    assert_eq!(
        calls,
        [
            ("u/v/café ☕ 動画.mp4".to_owned(), 7),
            ("u/v/clip one+.mp4".to_owned(), 11),
        ]
    );
    moto.drained(&events, "handled events are deleted").await;
    running.stop().await;
    assert_eq!(moto.counts(&dead).await, (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_uploads_repeated_events_are_harmless() {
    let moto = Moto::new().await;
    let (events, dead, bucket) = setup(&moto).await;
    let recorder = Arc::new(Recorder::default());
    let running = Running::start(&moto.events_config(&events, &dead), recorder.clone()).await;
    let key = "u/v/big upload.mkv";
    moto.put_multipart(&bucket, key, &[7; 4096]).await;
    eventually("the upload reaches the listener", || async {
        (recorder.calls_for(key) >= 1).then_some(())
    })
    .await;
    moto.drained(&events, "every event of the upload is deleted")
        .await;
    running.stop().await;
    // moto, unlike S3, sends two events for it (Put and CompleteMultipartUpload): the second
    // is answered `Duplicate`, which is no error.
    let calls = recorder.calls();
    assert_eq!(calls, [(key.to_owned(), 4096), (key.to_owned(), 4096)]);
    assert_eq!(moto.counts(&dead).await, (0, 0, 0), "Duplicate is no error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_of_a_message_reaches_the_listener() {
    let moto = Moto::new().await;
    let (events, dead) = moto.queues(5).await;
    let recorder = Arc::new(Recorder::default());
    let body = serde_json::json!({"Records": [
        record("videos", "a%2Fb%2Fone.mp4", 1),
        record("videos", "a/b/two+2.mp4", 2),
        record("videos", "a/b/three%2B3.mp4", 3),
    ]});
    moto.send(&events, &body.to_string()).await;
    let running = Running::start(&moto.events_config(&events, &dead), recorder.clone()).await;
    moto.drained(&events, "the message is deleted").await;
    running.stop().await;
    assert_eq!(
        recorder.calls(),
        [
            ("a/b/one.mp4".to_owned(), 1),
            ("a/b/two 2.mp4".to_owned(), 2),
            ("a/b/three+3.mp4".to_owned(), 3),
        ]
    );
    assert_eq!(moto.counts(&dead).await, (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_videos_and_bad_keys_are_dead_lettered_with_a_reason() {
    let moto = Moto::new().await;
    let (events, dead, bucket) = setup(&moto).await;
    let recorder = Arc::new(Recorder::default());
    let unknown = format!("{}/{}/clip.mp4", UserId::new(), VideoId::new());
    let bad = "loose file.mp4";
    recorder.answer(&unknown, &[Answer::NotFound]);
    recorder.answer(bad, &[Answer::NotFound]);
    let running = Running::start(&moto.events_config(&events, &dead), recorder.clone()).await;
    moto.put(&bucket, &unknown, b"1").await;
    moto.put(&bucket, bad, b"22").await;
    moto.put(&bucket, "u/v/good.mp4", b"333").await;
    let mut letters = moto.dead_letters(&dead, 2).await;
    moto.drained(&events, "the messages are deleted").await;
    running.stop().await;
    letters.sort_by(|a, b| a.1.cmp(&b.1));
    let reasons: Vec<&str> = letters.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(reasons, ["bad-key", "unknown-video"]);
    // Each is the record as a one-record S3 event.
    for ((body, _), key) in letters.iter().zip([bad, unknown.as_str()]) {
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        let records = body["Records"].as_array().unwrap();
        assert_eq!(records.len(), 1);
        let encoded = records[0]["s3"]["object"]["key"].as_str().unwrap();
        assert_eq!(
            vidsnap_queue::sqs::events::decode_key(encoded).unwrap(),
            key
        );
    }
    assert_eq!(recorder.calls_for("u/v/good.mp4"), 1);
}

/// With the storage's key prefix and bucket configured, keys lose the prefix; keys outside it
/// and records of other buckets are dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_prefix_and_the_bucket_are_checked() {
    let moto = Moto::new().await;
    let (events, dead, bucket) = setup(&moto).await;
    let recorder = Arc::new(Recorder::default());
    let config = S3EventsConfig {
        bucket: Some(bucket.clone()),
        key_prefix: Some("/prod/".into()),
        ..moto.events_config(&events, &dead)
    };
    let running = Running::start(&config, recorder.clone()).await;
    moto.put(&bucket, "prod/u/v/clip.mp4", b"1234").await;
    moto.put(&bucket, "staging/u/v/clip.mp4", b"1234").await;
    let body = serde_json::json!({"Records": [record("elsewhere", "prod%2Fu%2Fv%2Fx.mp4", 1)]});
    moto.send(&events, &body.to_string()).await;
    let mut letters = moto.dead_letters(&dead, 2).await;
    moto.drained(&events, "the messages are deleted").await;
    running.stop().await;
    assert_eq!(recorder.calls(), [("u/v/clip.mp4".to_owned(), 4)]);
    letters.sort_by(|a, b| a.1.cmp(&b.1));
    let reasons: Vec<&str> = letters.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(reasons, ["bad-key", "wrong-bucket"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_an_event_is_dead_lettered() {
    let moto = Moto::new().await;
    let (events, dead) = moto.queues(5).await;
    let recorder = Arc::new(Recorder::default());
    moto.send(&events, "this is not JSON").await;
    moto.send(&events, r#"{"hello": "world"}"#).await;
    let running = Running::start(&moto.events_config(&events, &dead), recorder.clone()).await;
    let mut letters = moto.dead_letters(&dead, 2).await;
    moto.drained(&events, "the messages are deleted").await;
    running.stop().await;
    letters.sort();
    assert_eq!(
        letters,
        [
            ("this is not JSON".to_owned(), "not-an-s3-event".to_owned()),
            (
                r#"{"hello": "world"}"#.to_owned(),
                "not-an-s3-event".to_owned()
            ),
        ]
    );
    assert_eq!(recorder.calls(), []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_leaves_the_message_for_redelivery() {
    let moto = Moto::new().await;
    let (events, dead, bucket) = setup(&moto).await;
    let recorder = Arc::new(Recorder::default());
    let key = "u/v/flaky.mp4";
    recorder.answer(key, &[Answer::Unavailable, Answer::Queued]);
    let config = S3EventsConfig {
        visibility_seconds: 1,
        ..moto.events_config(&events, &dead)
    };
    let running = Running::start(&config, recorder.clone()).await;
    moto.put(&bucket, key, b"flaky").await;
    eventually("the event comes back and succeeds", || async {
        (recorder.calls_for(key) == 2).then_some(())
    })
    .await;
    moto.drained(&events, "deleted after the success").await;
    running.stop().await;
    assert_eq!(recorder.calls_for(key), 2);
    assert_eq!(moto.counts(&dead).await, (0, 0, 0));
}

/// A listener slower than the visibility timeout: the consumer keeps the message invisible, so a
/// second consumer never gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_being_handled_stays_invisible() {
    let moto = Moto::new().await;
    let (events, dead) = moto.queues(5).await;
    let recorder = Arc::new(Recorder {
        pause: Duration::from_secs(5),
        ..Recorder::default()
    });
    let config = S3EventsConfig {
        visibility_seconds: 2,
        ..moto.events_config(&events, &dead)
    };
    let first = Running::start(&config, recorder.clone()).await;
    let second = Running::start(&config, recorder.clone()).await;
    let body = serde_json::json!({"Records": [record("videos", "u/v/slow.mp4", 5)]});
    moto.send(&events, &body.to_string()).await;
    moto.drained(&events, "handled once and deleted").await;
    first.stop().await;
    second.stop().await;
    assert_eq!(recorder.calls(), [("u/v/slow.mp4".to_owned(), 5)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_run_promptly() {
    let moto = Moto::new().await;
    let (events, dead) = moto.queues(5).await;
    let config = S3EventsConfig {
        wait_seconds: 20,
        ..moto.events_config(&events, &dead)
    };
    let running = Running::start(&config, Arc::new(Recorder::default())).await;
    // Once it has handled a message it is back in its long poll.
    moto.send(&events, r#"{"Service":"Amazon S3","Event":"s3:TestEvent"}"#)
        .await;
    moto.drained(&events, "the consumer polls").await;
    let took = running.stop().await;
    assert!(took < Duration::from_secs(2), "took {took:?}");
}
