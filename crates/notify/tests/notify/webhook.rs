//! Webhook posts to a real HTTP receiver, and signature verification as a receiver does it.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use vidsnap_domain::{Channel, EventType, WebhookId};
use vidsnap_notify::{VerifyError, WebhookConfig, WebhookError, WebhookSender, error_text, verify};

use crate::{
    email::notification,
    support::{closed_port, receiver::Receiver},
};

const SECRET: &[u8] = b"whsec_receiver_test";
const TOLERANCE: Duration = Duration::from_secs(300);

fn sender() -> WebhookSender {
    WebhookSender::new(&WebhookConfig::default()).unwrap()
}

#[tokio::test]
async fn a_post_is_signed_and_carries_the_payload() {
    let receiver = Receiver::start().await;
    let mut event = notification(
        EventType::VideoDead,
        "unused",
        json!({"id": "n1", "type": "video.dead", "video": {"file_name": "a \"quoted\" é.mp4"}}),
    );
    event.channel = Channel::Webhook {
        webhook: WebhookId::new(),
        url: receiver.url("/hook"),
    };
    let before = Utc::now().timestamp();
    let status = sender()
        .send(&event, &receiver.url("/hook"), SECRET)
        .await
        .unwrap();
    assert_eq!(status, 204);

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(request.header("vidsnap-event"), "video.dead");
    assert_eq!(request.header("vidsnap-delivery"), event.id.to_string());
    assert!(
        request
            .header("user-agent")
            .starts_with("Vidsnap-Webhooks/")
    );
    assert_eq!(
        request.body.as_ref(),
        serde_json::to_vec(&event.payload).unwrap().as_slice()
    );
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body, event.payload);

    let signature = request.header("vidsnap-signature");
    let t: i64 = signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(t >= before && t <= Utc::now().timestamp());
    let now = Utc::now().timestamp();
    assert_eq!(
        verify(SECRET, signature, &request.body, now, TOLERANCE),
        Ok(())
    );

    let mut tampered = request.body.to_vec();
    tampered.push(b' ');
    assert_eq!(
        verify(SECRET, signature, &tampered, now, TOLERANCE),
        Err(VerifyError::Mismatch)
    );
    assert_eq!(
        verify(b"wrong secret", signature, &request.body, now, TOLERANCE),
        Err(VerifyError::Mismatch)
    );
    assert_eq!(
        verify(SECRET, signature, &request.body, now + 3600, TOLERANCE),
        Err(VerifyError::Timestamp),
        "a capture replayed an hour later"
    );
}

#[tokio::test]
async fn a_non_2xx_answer_is_a_failed_attempt_with_its_status() {
    let receiver = Receiver::start().await;
    receiver.fail_next(1);
    let event = notification(EventType::VideoSucceeded, "unused", json!({"id": "n"}));
    let error = sender()
        .send(&event, &receiver.url("/hook"), SECRET)
        .await
        .expect_err("500");
    assert_eq!(error.status_code(), Some(500));
    assert_eq!(
        error_text(&error),
        "the endpoint answered HTTP 500 Internal Server Error"
    );

    // Redirects are not followed: the signed body goes only where the owner registered.
    let error = sender()
        .send(&event, &receiver.url("/redirect"), SECRET)
        .await
        .expect_err("307");
    assert_eq!(error.status_code(), Some(307));
    assert_eq!(
        receiver.requests().len(),
        2,
        "the redirect target was not posted to"
    );
}

#[tokio::test]
async fn a_network_error_is_a_failed_attempt_without_status() {
    let event = notification(EventType::VideoSucceeded, "unused", json!({}));
    let url = format!("http://127.0.0.1:{}/hook", closed_port());
    let error = sender()
        .send(&event, &url, SECRET)
        .await
        .expect_err("refused");
    assert!(matches!(error, WebhookError::Request(_)), "{error:?}");
    assert_eq!(error.status_code(), None);
    let text = error_text(&error);
    assert!(text.starts_with("request failed: "), "{text}");
    assert!(text.len() <= 310, "{text}");
}
