//! E-mail through a real SMTP listener, read back from its Maildir.

use chrono::Utc;
use serde_json::{Value, json};
use vidsnap_domain::{
    Channel, DeliveryStatus, EventType, Notification, NotificationId, UserId, VideoId,
};
use vidsnap_notify::{Mailer, NotifyError, SmtpConfig, SmtpTls};

use crate::support::{
    closed_port,
    smtp::{SmtpServer, parse},
};

const EVIL: &str = "<script>alert(1)</script>&.mp4";

pub fn notification(event: EventType, to: &str, payload: Value) -> Notification {
    let now = Utc::now();
    Notification {
        id: NotificationId::new(),
        owner: UserId::new(),
        video: VideoId::new(),
        job: None,
        cycle: 0,
        event,
        channel: Channel::Email { to: to.to_owned() },
        payload,
        status: DeliveryStatus::Pending,
        attempts: 0,
        last_error: None,
        last_status_code: None,
        next_attempt_at: now,
        created_at: now,
        delivered_at: None,
    }
}

pub fn smtp_config(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port: Some(port),
        tls: SmtpTls::None,
        from: "Vidsnap <noreply@vidsnap.test>".into(),
        ..SmtpConfig::default()
    }
}

#[tokio::test]
async fn a_success_email_is_multipart_and_escapes_the_name() {
    let server = SmtpServer::start();
    let mailer = Mailer::new(&smtp_config(server.port)).unwrap();
    let payload = json!({
        "id": "n1", "type": "video.succeeded", "created_at": "2026-11-24T10:00:00Z",
        "video": {"id": "0190c1d2-0000-7000-8000-000000000001", "file_name": EVIL,
                  "status": "succeeded", "attempts": 1, "last_error": null,
                  "outputs": {"frames": 12, "zip_key": "k", "zip_bytes": 1, "thumbnail_key": "t"}}
    });
    mailer
        .send_notification(
            "alice@example.com",
            &notification(EventType::VideoSucceeded, "alice@example.com", payload),
        )
        .await
        .unwrap();

    let messages = server.wait_for(1).await;
    let mail = parse(&messages[0]);
    assert_eq!(mail.subject, format!("Your video \"{EVIL}\" was processed"));
    assert!(mail.from.contains("noreply@vidsnap.test"), "{}", mail.from);
    assert_eq!(mail.to, "alice@example.com");
    assert_eq!(mail.rcpt_to, "alice@example.com");
    assert_eq!(mail.content_type, "multipart/alternative");

    assert!(
        mail.text
            .contains(&format!("Your video \"{EVIL}\" was processed: 12 frames")),
        "{}",
        mail.text
    );
    assert!(mail.text.contains("0190c1d2-0000-7000-8000-000000000001"));
    assert!(
        mail.html
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;&amp;.mp4"),
        "{}",
        mail.html
    );
    assert!(!mail.html.contains("<script>"), "{}", mail.html);
    assert!(mail.html.contains("12 frames were extracted"));
}

/// Delivery is at least once (sent, then the process dies before recording it: sent again), so
/// every copy of a notification's e-mail carries one Message-ID, the notification's id, that a
/// mail server or reader can drop the repeat by.
#[tokio::test]
async fn a_notification_sent_again_keeps_its_message_id() {
    let server = SmtpServer::start();
    let mailer = Mailer::new(&smtp_config(server.port)).unwrap();
    let first = notification(EventType::VideoSucceeded, "ana@example.com", json!({}));
    let second = notification(EventType::VideoSucceeded, "ana@example.com", json!({}));
    for n in [&first, &first, &second] {
        mailer
            .send_notification("ana@example.com", n)
            .await
            .unwrap();
    }
    let mut ids: Vec<String> = server
        .wait_for(3)
        .await
        .iter()
        .map(|raw| parse(raw).message_id)
        .collect();
    ids.sort();
    let mut expected = vec![
        format!("<{}@vidsnap.test>", first.id),
        format!("<{}@vidsnap.test>", first.id),
        format!("<{}@vidsnap.test>", second.id),
    ];
    expected.sort();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn a_failure_email_carries_the_code_and_the_escaped_message() {
    let server = SmtpServer::start();
    let mailer = Mailer::new(&smtp_config(server.port)).unwrap();
    let payload = json!({
        "type": "video.dead",
        "video": {"file_name": "clip.mp4", "attempts": 3,
                  "last_error": {"code": "corrupt-input", "message": "moov atom <not> found & gone"}}
    });
    mailer
        .send_notification(
            "bob@example.com",
            &notification(EventType::VideoDead, "bob@example.com", payload),
        )
        .await
        .unwrap();

    let mail = parse(&server.wait_for(1).await[0]);
    assert_eq!(
        mail.subject,
        "Processing failed for your video \"clip.mp4\""
    );
    assert_eq!(mail.rcpt_to, "bob@example.com");
    assert!(mail.text.contains("could not be processed (3 attempts)"));
    assert!(
        mail.text
            .contains("corrupt-input \u{2014} moov atom <not> found & gone")
    );
    assert!(mail.html.contains("<code>corrupt-input</code>"));
    assert!(mail.html.contains("moov atom &lt;not&gt; found &amp; gone"));
}

#[tokio::test]
async fn smtp_errors_are_returned() {
    let mailer = Mailer::new(&smtp_config(closed_port())).unwrap();
    let result = mailer
        .send_notification(
            "alice@example.com",
            &notification(EventType::VideoSucceeded, "alice@example.com", json!({})),
        )
        .await;
    let error = result.expect_err("nothing listens there");
    assert!(matches!(error, NotifyError::Smtp(_)), "{error:?}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_bad_recipient_is_a_permanent_error() {
    let mailer = Mailer::log_only();
    let error = mailer
        .send_notification(
            "not an address",
            &notification(EventType::VideoSucceeded, "not an address", json!({})),
        )
        .await
        .expect_err("refused");
    assert!(matches!(error, NotifyError::Address { .. }), "{error:?}");
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn log_only_reports_success() {
    let mailer = Mailer::log_only();
    assert!(mailer.is_log_only());
    mailer
        .send_notification(
            "alice@example.com",
            &notification(EventType::VideoDead, "alice@example.com", json!({})),
        )
        .await
        .unwrap();
}
