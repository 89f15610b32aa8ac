//! Webhooks: signed posts, retries on failure, the delivery log, redelivery.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::support::{App, Receiver};
use crate::support::clip;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_retried_logged_and_redelivered() {
    let receiver = Receiver::start(2).await;
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &[]).await;
    let token = app.register("ana@example.com").await;
    let (status, hook) = app
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(&token),
            Some(json!({"url": receiver.url})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let (_, listed) = app
        .call(Method::GET, "/v1/webhooks", Some(&token), None)
        .await;
    assert!(
        listed[0].get("secret").is_none(),
        "the secret is shown once"
    );

    let id = app.upload(&token, &clip("short3.mp4"), "a.mp4", "1s").await;
    app.wait_for_status(&token, &id, "succeeded").await;

    // Two 500s, then a 204: three posts of the same delivery with the same body.
    let posts = receiver.wait_for(3).await;
    assert!(
        posts
            .iter()
            .all(|p| p.delivery == posts[0].delivery && p.body == posts[0].body)
    );
    assert_eq!(posts[0].event, "video.succeeded");
    for post in &posts {
        let now = chrono::Utc::now().timestamp();
        vidsnap_notify::verify(
            secret.as_bytes(),
            &post.signature,
            &post.body,
            now,
            Duration::from_secs(300),
        )
        .expect("the signature verifies");
        assert!(
            vidsnap_notify::verify(
                b"wrong",
                &post.signature,
                &post.body,
                now,
                Duration::from_secs(300)
            )
            .is_err()
        );
    }
    let body: serde_json::Value = serde_json::from_slice(&posts[0].body).unwrap();
    assert_eq!(body["type"], "video.succeeded");
    assert_eq!(body["video"]["id"], id.as_str());

    // The log shows it delivered on the third attempt.
    let path = format!("/v1/webhooks/{hook_id}/deliveries");
    let log = app
        .wait_for_log(&token, &path, |log| log[0]["status"] == "delivered")
        .await;
    assert_eq!(log[0]["attempts"], 3);
    assert_eq!(log[0]["last_status_code"], 204);

    // Redelivery on request: a fourth post.
    let delivery = log[0]["id"].as_str().unwrap();
    let (status, _) = app
        .call(
            Method::POST,
            &format!("{path}/{delivery}/redeliver"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(receiver.wait_for(4).await.len(), 4);

    // Another user sees neither the webhook nor its log.
    let bo = app.register("bo@example.com").await;
    let (status, _) = app.call(Method::GET, &path, Some(&bo), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
