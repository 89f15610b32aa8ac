//! The delivery loop over the SQLite repository, with a real SMTP listener and HTTP receiver.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use vidsnap_domain::{Channel, DeliveryStatus, Notification, VideoId};
use vidsnap_notify::{Deliverer, DeliveryConfig, Mailer, WebhookConfig, WebhookSender, verify};

use crate::{
    email::smtp_config,
    support::{
        eventually,
        receiver::Receiver,
        smtp::{SmtpServer, parse},
        store::{SECRET, Store},
    },
};

/// Retries in tens of milliseconds, so the tests do not wait for real backoff.
fn fast(max_attempts: u32) -> DeliveryConfig {
    DeliveryConfig {
        max_attempts,
        backoff_base_seconds: 0.02,
        backoff_factor: 2.0,
        backoff_cap_seconds: 0.1,
        poll_interval_seconds: 0.02,
        ..DeliveryConfig::default()
    }
}

fn deliverer(store: &Store, mailer: Mailer, config: &DeliveryConfig) -> Deliverer {
    let webhooks = WebhookSender::new(&WebhookConfig::default()).unwrap();
    Deliverer::new(Arc::clone(&store.repo), mailer, webhooks, config)
}

fn webhook_of(notifications: &[Notification]) -> &Notification {
    notifications
        .iter()
        .find(|n| matches!(n.channel, Channel::Webhook { .. }))
        .unwrap()
}

async fn settled(store: &Store, video: VideoId) -> Vec<Notification> {
    eventually(
        "every notification settled",
        Duration::from_secs(20),
        || async {
            let all = store.notifications(video).await;
            all.iter()
                .all(|n| n.status != DeliveryStatus::Pending)
                .then_some(all)
        },
    )
    .await
}

#[tokio::test]
async fn the_loop_delivers_both_channels_and_retries_until_success() {
    let smtp = SmtpServer::start();
    let receiver = Receiver::start().await;
    receiver.fail_next(2);
    let store = Store::fresh().await;
    let alice = store.user("alice@example.com").await;
    store.webhook(alice.id, &receiver.url("/hook")).await;
    let video = store
        .succeeded(alice.id, "<script>alert(1)</script>&.mp4")
        .await;

    let mailer = Mailer::new(&smtp_config(smtp.port)).unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(deliverer(&store, mailer, &fast(8)).run(shutdown.clone()));

    let all = settled(&store, video).await;
    assert!(
        all.iter().all(|n| n.status == DeliveryStatus::Delivered),
        "{all:#?}"
    );
    let hook = webhook_of(&all);
    assert_eq!(hook.attempts, 3, "two 500s, then success");
    assert_eq!(hook.last_status_code, Some(204));

    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    let first_body = &requests[0].body;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(first_body).unwrap(),
        hook.payload
    );
    for request in &requests {
        assert_eq!(&request.body, first_body, "the same bytes on every attempt");
        assert_eq!(request.header("vidsnap-delivery"), hook.id.to_string());
        assert_eq!(request.header("vidsnap-event"), "video.succeeded");
        let now = Utc::now().timestamp();
        verify(
            SECRET.as_bytes(),
            request.header("vidsnap-signature"),
            &request.body,
            now,
            Duration::from_secs(60),
        )
        .unwrap();
    }

    let mail = parse(&smtp.wait_for(1).await[0]);
    assert_eq!(mail.rcpt_to, "alice@example.com");
    assert!(mail.text.contains("12 frames were extracted"));
    assert!(!mail.html.contains("<script>"));

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the loop stops promptly")
        .unwrap();
}

#[tokio::test]
async fn a_500_records_a_failed_attempt_due_later() {
    let receiver = Receiver::start().await;
    receiver.fail_next(usize::MAX);
    let store = Store::fresh().await;
    let alice = store.user("alice@example.com").await;
    store.webhook(alice.id, &receiver.url("/hook")).await;
    let video = store.dead(alice.id, "clip.mp4", "cannot decode").await;
    let config = DeliveryConfig {
        backoff_base_seconds: 30.0,
        ..DeliveryConfig::default()
    };
    let deliverer = deliverer(&store, Mailer::log_only(), &config);

    let before = Utc::now();
    assert!(deliverer.deliver_once().await.unwrap());
    assert!(deliverer.deliver_once().await.unwrap());
    assert!(
        !deliverer.deliver_once().await.unwrap(),
        "the failed one is not due yet"
    );

    let all = store.notifications(video).await;
    let email = all
        .iter()
        .find(|n| matches!(n.channel, Channel::Email { .. }))
        .unwrap();
    assert_eq!(
        email.status,
        DeliveryStatus::Delivered,
        "log-only counts as sent"
    );
    let hook = webhook_of(&all);
    assert_eq!(hook.status, DeliveryStatus::Pending);
    assert_eq!(hook.attempts, 1);
    assert_eq!(hook.last_status_code, Some(500));
    assert_eq!(
        hook.last_error.as_deref(),
        Some("the endpoint answered HTTP 500 Internal Server Error")
    );
    // Base 30 s with equal jitter: between 15 and 30 s from the attempt.
    let wait = hook.next_attempt_at - before;
    assert!(
        wait >= chrono::TimeDelta::seconds(14) && wait <= chrono::TimeDelta::seconds(40),
        "{wait:?}"
    );
    let body: serde_json::Value = serde_json::from_slice(&receiver.requests()[0].body).unwrap();
    assert_eq!(body["type"], "video.dead");
    assert_eq!(body["video"]["last_error"]["code"], "corrupt-input");
}

#[tokio::test]
async fn the_last_failed_attempt_gives_up() {
    let receiver = Receiver::start().await;
    receiver.fail_next(usize::MAX);
    let store = Store::fresh().await;
    let alice = store.user("alice@example.com").await;
    store.webhook(alice.id, &receiver.url("/hook")).await;
    let video = store.succeeded(alice.id, "clip.mp4").await;

    let shutdown = CancellationToken::new();
    let task = tokio::spawn(deliverer(&store, Mailer::log_only(), &fast(3)).run(shutdown.clone()));
    let all = settled(&store, video).await;
    let hook = webhook_of(&all);
    assert_eq!(hook.status, DeliveryStatus::Failed);
    assert_eq!(hook.attempts, 3);
    assert_eq!(receiver.requests().len(), 3);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the loop stops promptly")
        .unwrap();
}

#[tokio::test]
async fn an_idle_loop_wakes_when_poked_and_stops_when_cancelled() {
    let receiver = Receiver::start().await;
    let store = Store::fresh().await;
    let alice = store.user("alice@example.com").await;
    store.webhook(alice.id, &receiver.url("/hook")).await;
    // A poll interval longer than the test: only the waker can start the delivery.
    let config = DeliveryConfig {
        poll_interval_seconds: 3600.0,
        ..DeliveryConfig::default()
    };
    let deliverer = deliverer(&store, Mailer::log_only(), &config).with_worker_id("notify-test");
    let waker = deliverer.waker();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(deliverer.run(shutdown.clone()));

    let video = store.succeeded(alice.id, "clip.mp4").await;
    waker.notify_one();
    let all = settled(&store, video).await;
    assert!(all.iter().all(|n| n.status == DeliveryStatus::Delivered));
    assert_eq!(receiver.requests().len(), 1);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("an idle loop stops at once")
        .unwrap();
}
