//! Upload chunks over AMQP (seed 003), wired into the real server.

use super::*;

/// Seed 003's transport, wired into the real server: an upload session created with tus, its
/// bytes sent as AMQP chunks with a reply queue of the test's own; every chunk answered `ack`
/// only once stored, and the video processed like any other upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_chunks_fill_an_upload_that_is_processed() {
    use futures_util::StreamExt;
    use lapin::{
        BasicProperties,
        options::{
            BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions,
        },
        types::{AMQPValue, FieldTable, LongString, ShortString},
    };

    let url = crate::service::support::service("VIDSNAP_TEST_AMQP_URL");
    let queue = format!("vidsnap-e2e-chunks-{}", uuid::Uuid::new_v4().simple());
    let data = tempfile::tempdir().unwrap();
    let app = App::start(
        data.path(),
        &[
            ("VIDSNAP_CHUNKS__URL", url.clone()),
            ("VIDSNAP_CHUNKS__QUEUE", queue.clone()),
        ],
    )
    .await;
    let token = app.register("ana@example.com").await;
    let bytes = std::fs::read(clip("short3.mp4")).unwrap();
    let (location, video) = create(&app, &token, bytes.len() as u64, "chunked.mp4").await;
    let session = upload_id(&location).to_owned();

    let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
        .await
        .expect("RabbitMQ answers: run scripts/test-services.sh");
    let channel = connection.create_channel().await.unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue.as_str().into(), durable, FieldTable::default())
        .await
        .unwrap();
    let private = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    let reply_queue = channel
        .queue_declare("".into(), private, FieldTable::default())
        .await
        .unwrap()
        .name()
        .clone();
    let mut replies = channel
        .basic_consume(
            reply_queue.clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    let mut start = 0u64;
    for (i, chunk) in bytes.chunks(16 * 1024).enumerate() {
        let mut headers = FieldTable::default();
        headers.insert("x-session-id".into(), text(&session));
        headers.insert("x-start-byte".into(), AMQPValue::LongLongInt(start as i64));
        headers.insert("x-size".into(), AMQPValue::LongLongInt(chunk.len() as i64));
        headers.insert("x-correlation-id".into(), text(&format!("chunk-{i}")));
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_reply_to(reply_queue.clone())
            .with_headers(headers);
        channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                chunk,
                properties,
            )
            .await
            .unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(30), replies.next())
            .await
            .expect("a reply within 30 s")
            .unwrap()
            .unwrap();
        let headers = reply.properties.headers().clone().unwrap_or_default();
        let status = headers.inner().get(&ShortString::from("x-status")).cloned();
        assert_eq!(status, Some(text("ack")), "chunk {i}: {headers:?}");
        start += chunk.len() as u64;
        assert_eq!(
            offset(&app, &location, &token).await,
            start,
            "acknowledged means stored"
        );
    }
    let done = app.wait_for_status(&token, &video, "succeeded").await;
    assert_eq!(done["outputs"]["frames"], 1, "{done}");
    assert!(app.stop().await.success());
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let _ = connection.close(200, "done".into()).await;
}
