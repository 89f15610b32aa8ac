//! Seed 004's queue-driven path: a message `{"recordingID", "callEndingTimestamp"}` on a queue
//! names a call recording's two files through an `[[intake]]`, and becomes a `call-recording`
//! job. A message that can never make a job (a malformed `call_end`, an unknown shape, a field
//! that would leave its folder) is dead-lettered at once with its reason; one whose files are not
//! stored is retried, then dead-lettered; a `call_end` past the end of the recording makes a job
//! that fails with its code. On RabbitMQ with local storage, and on SQS with S3 (moto).

#![allow(clippy::unwrap_used)]

use std::{path::Path, time::Duration};

use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};
use object_store::{ObjectStoreExt, path::Path as ObjectPath};
use reqwest::Method;
use serde_json::{Value, json};
use vidsnap_db::testing::ScratchDatabase;

use super::{
    cluster::{Bucket, metrics},
    s3_events::{MotoQueues, events_env},
    support::{App, Smtp, service},
};
use crate::{call_recording::clips, support::Sandbox};

const INTAKE: &str = r#"
[[intake]]
name = "calls"
owner = "ana@example.com"
recipe = "call-recording"
inputs = { call_audio = "connect/{recordingID}.wav", recording = "screens/{recordingID}.mp4" }
params = { call_end = "{callEndingTimestamp}" }
"#;

/// The messages both transports are sent: (body, what becomes of it).
fn messages() -> Vec<(Value, &'static str)> {
    vec![
        (
            json!({"recordingID": "r-1", "callEndingTimestamp": "00:00:03.500"}),
            "merged",
        ),
        (
            json!({"recordingID": "r-1", "callEndingTimestamp": "00:00:07"}),
            "job fails: time-out-of-range",
        ),
        (
            json!({"recordingID": "r-1", "callEndingTimestamp": "soon"}),
            "invalid-argument",
        ),
        (
            json!({"recordingID": "../r-1", "callEndingTimestamp": "00:00:01"}),
            "invalid-argument",
        ),
        (json!({"hello": "world"}), "unknown-message"),
        (
            json!({"recordingID": "r-404", "callEndingTimestamp": "00:00:01"}),
            "retried, then dead",
        ),
    ]
}

/// ana's jobs, once there are `n` of them and none is running.
async fn settled_jobs(app: &App, token: &str, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (_, listed) = app.call(Method::GET, "/v1/jobs", Some(token), None).await;
        let items = listed["items"].as_array().cloned().unwrap_or_default();
        let done = items
            .iter()
            .all(|j| ["succeeded", "failed", "dead"].contains(&j["status"].as_str().unwrap()));
        if items.len() >= n && done {
            assert_eq!(items.len(), n, "{listed}");
            return items;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "jobs not settled: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The two jobs the messages make: the merge succeeded (the call up to 3.5 s, its thumbnail),
/// and the late `call_end` failed with its code, never retried. Their ids.
async fn check_jobs(app: &App, token: &str) -> [String; 2] {
    let jobs = settled_jobs(app, token, 2).await;
    let by_status = |status: &str| {
        jobs.iter()
            .find(|j| j["status"] == status)
            .unwrap_or_else(|| panic!("no {status} job in {jobs:?}"))
            .clone()
    };
    let (merged, late) = (by_status("succeeded"), by_status("failed"));
    for job in [&merged, &late] {
        assert_eq!(job["recipe_name"], "call-recording", "{job}");
    }
    let merged_id = merged["id"].as_str().unwrap().to_owned();
    let id = merged_id.as_str();
    let (_, merged) = app
        .call(Method::GET, &format!("/v1/jobs/{id}"), Some(token), None)
        .await;
    let step = |job: &Value, name: &str| {
        job["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no step {name} in {job}"))
    };
    let merge = step(&merged, "merge");
    assert_eq!(merge["result"]["call_end"], 3.5, "{merge}");
    assert_eq!(merge["result"]["video"]["copied"], true, "{merge}");
    assert_eq!(step(&merged, "thumbnail")["status"], "succeeded");
    let late_id = late["id"].as_str().unwrap().to_owned();
    let id = late_id.as_str();
    let (_, late) = app
        .call(Method::GET, &format!("/v1/jobs/{id}"), Some(token), None)
        .await;
    let merge = step(&late, "merge");
    assert_eq!(merge["last_error"]["code"], "time-out-of-range", "{merge}");
    assert_eq!(merge["attempts"], 1, "not retried: {merge}");
    [merged_id, late_id]
}

/// The `vidsnap_job_requests_total{outcome}` count on `app`'s metrics.
async fn requests_counted(app: &App, outcome: &str) -> u64 {
    let page = metrics(app).await;
    let prefix = format!("vidsnap_job_requests_total{{outcome=\"{outcome}\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn wait_counted(app: &App, outcome: &str, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while requests_counted(app, outcome).await < n {
        assert!(
            std::time::Instant::now() < deadline,
            "{outcome} not counted {n} times"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn copy_into(file: &Path, dest: &Path) {
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(file, dest).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_004_messages_on_rabbitmq_make_call_recording_jobs() {
    let url = service("VIDSNAP_TEST_AMQP_URL");
    let queue = format!("vidsnap-test-requests-{}", uuid::Uuid::new_v4().simple());
    let sandbox = Sandbox::new();
    let (call, recording) = clips(&sandbox);
    let data = tempfile::tempdir().unwrap();
    let config = format!(
        "{INTAKE}\n[requests]\nurl = \"{url}\"\nqueue = \"{queue}\"\nmax_attempts = 2\nretry_delay_seconds = 1\n"
    );
    std::fs::write(data.path().join("vidsnap.toml"), config).unwrap();
    copy_into(&call, &data.path().join("blobs/connect/r-1.wav"));
    copy_into(&recording, &data.path().join("blobs/screens/r-1.mp4"));
    let smtp = Smtp::start().await;
    let app = App::start(data.path(), &smtp.env()).await;
    let token = app.register("ana@example.com").await;

    let connection = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    // The consumer declares its queues; wait for them (a refused passive declare closes the
    // channel, so each look takes a new one).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let channel = loop {
        let channel = connection.create_channel().await.unwrap();
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        if channel
            .queue_declare(queue.as_str().into(), passive, FieldTable::default())
            .await
            .is_ok()
        {
            break channel;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{queue} never declared"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The timestamp (seconds) is when the message was sent: the job's id derives from it.
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_timestamp(1_800_000_000);
    let publish = |body: &Value| {
        let channel = channel.clone();
        let (queue, properties, body) = (queue.clone(), properties.clone(), body.to_string());
        async move {
            channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    properties,
                )
                .await
                .unwrap()
                .await
                .unwrap();
        }
    };
    for (body, _) in messages() {
        publish(&body).await;
    }
    let jobs = check_jobs(&app, &token).await;
    // The owner hears of each: one e-mail per job's outcome.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !jobs
        .iter()
        .all(|id| smtp.messages().iter().any(|m| m.contains(id.as_str())))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no e-mail for each job: {:?}",
            smtp.messages()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The first message delivered again (same body, same time): its job exists, no other.
    publish(&messages()[0].0).await;
    wait_counted(&app, "duplicate", 1).await;
    assert_eq!(settled_jobs(&app, &token, 2).await.len(), 2);

    // Dead letters: the original bodies, each with its reason.
    let dead = format!("{queue}.dead");
    let mut reasons = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while reasons.len() < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "dead letters: {reasons:?}"
        );
        let got = channel
            .basic_get(dead.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap();
        let Some(message) = got else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let reason = message
            .delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("x-vidsnap-reason").cloned());
        let Some(AMQPValue::LongString(reason)) = reason else {
            panic!("no reason: {:?}", message.delivery.properties);
        };
        let body: Value = serde_json::from_slice(&message.delivery.data).unwrap();
        reasons.push((reason.to_string(), body));
    }
    reasons.sort_by_key(|(r, b)| (r.clone(), b.to_string()));
    let expected: Vec<(String, Value)> = vec![
        ("invalid-argument".into(), messages()[3].0.clone()),
        ("invalid-argument".into(), messages()[2].0.clone()),
        ("retries-exhausted".into(), messages()[5].0.clone()),
        ("unknown-message".into(), messages()[4].0.clone()),
    ];
    let mut expected = expected;
    expected.sort_by_key(|(r, b)| (r.clone(), b.to_string()));
    assert_eq!(reasons, expected);
    assert_eq!(
        requests_counted(&app, "retry").await,
        1,
        "one retry, then dead"
    );

    for name in [queue.clone(), dead] {
        let _ = channel
            .queue_delete(name.as_str().into(), Default::default())
            .await;
    }
    let _ = connection.close(200, "done".into()).await;
    assert!(app.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_004_messages_on_the_s3_events_queue_make_call_recording_jobs() {
    let moto = service("VIDSNAP_TEST_MOTO_ENDPOINT");
    let database = ScratchDatabase::create("vidsnap_requests").await;
    let bucket = Bucket::create(moto.clone(), "vidsnap-test".into(), "vidsnap-test".into()).await;
    let mut queues = MotoQueues::new(&moto).await;
    let (events, events_dead) = queues.pair("vidsnap-requests").await;
    queues.notify(&bucket.name, &events).await;
    let mut env = events_env(&moto, &database, &bucket, (&events, &events_dead));
    // A message left for redelivery comes back after a second.
    env.push(("VIDSNAP_S3_EVENTS__VISIBILITY_SECONDS", "1".into()));
    let dir = Sandbox::new();
    std::fs::write(dir.root.path().join("vidsnap.toml"), INTAKE).unwrap();
    let app = App::start(dir.root.path(), &env).await;
    let token = app.register("ana@example.com").await;

    // The files first, as seed 004's controller had them: their own S3 events name no video
    // and are recognised as an intake's inputs, not dead-lettered.
    let sandbox = Sandbox::new();
    let (call, recording) = clips(&sandbox);
    let client = bucket.client();
    for (file, key) in [(&call, "connect/r-1.wav"), (&recording, "screens/r-1.mp4")] {
        client
            .put(&ObjectPath::from(key), std::fs::read(file).unwrap().into())
            .await
            .unwrap();
    }
    for (body, _) in messages() {
        queues
            .sqs
            .send_message()
            .queue_url(&events)
            .message_body(body.to_string())
            .send()
            .await
            .unwrap();
    }
    check_jobs(&app, &token).await;
    // Refused at once with the reason attribute; the missing recording after SQS's 5 receives
    // (the redrive policy moves it, without a reason).
    let mut reasons = queues.reasons(&events_dead, 4).await;
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "<none>",
            "invalid-argument",
            "invalid-argument",
            "unknown-message"
        ]
    );
    assert!(requests_counted(&app, "retry").await >= 4);
    assert_eq!(requests_counted(&app, "created").await, 2);
    assert!(app.stop().await.success());
}
