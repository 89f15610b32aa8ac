//! Signed webhook posts, and the verification receivers perform.
//!
//! Each attempt POSTs the notification's payload as JSON with these headers:
//!
//! - `Content-Type: application/json`
//! - `Vidsnap-Event: video.succeeded` (or `video.dead`)
//! - `Vidsnap-Delivery: <notification id>`: the same on every attempt; receivers de-duplicate on
//!   it (delivery is at-least-once).
//! - `Vidsnap-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` of the bytes `"<t>.<body>"`,
//!   keyed with the webhook's secret (its UTF-8 bytes).
//!
//! A receiver checks the signature with [`verify`] (or its own equivalent: recompute the HMAC
//! over `t`, a `.`, and the raw body exactly as received; compare in constant time; refuse a `t`
//! too far from its clock, which stops replays of an old capture). A 2xx answer means delivered;
//! anything else, redirects included, is a failed attempt that is retried later.

use std::{fmt, time::Duration};

use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{StatusCode, header};
use serde::Deserialize;
use sha2::Sha256;
use vidsnap_domain::{EventType, Notification, NotificationId};

use crate::NotifyError;

pub const EVENT_HEADER: &str = "Vidsnap-Event";
pub const DELIVERY_HEADER: &str = "Vidsnap-Delivery";
pub const SIGNATURE_HEADER: &str = "Vidsnap-Signature";

/// The `[webhooks]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Seconds a receiver has to answer (connect, send, response headers), so a slow endpoint
    /// costs one bounded attempt instead of holding the deliverer.
    pub timeout_seconds: u64,
    /// The `User-Agent` of every post, so receivers can recognise and allow-list us.
    pub user_agent: String,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            timeout_seconds: 10,
            user_agent: concat!("Vidsnap-Webhooks/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// Why a webhook attempt failed. The `Display` text (with [`crate::error_text`]) is what the
/// delivery log shows the webhook's owner.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The endpoint answered, but not with a 2xx.
    #[error("the endpoint answered HTTP {}", status_text(*.status))]
    Status { status: u16 },
    /// No answer in time.
    #[error("no answer within {} s", .0.as_secs())]
    Timeout(Duration),
    /// The request could not be made: bad URL, DNS, refused connection, TLS.
    #[error("request failed")]
    Request(#[source] reqwest::Error),
    /// The payload could not be serialised (it was stored as JSON, so this is a bug).
    #[error("serialising the payload")]
    Payload(#[source] serde_json::Error),
}

impl WebhookError {
    /// The HTTP status, when the endpoint answered.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Self::Status { status } => Some(*status),
            _ => None,
        }
    }
}

fn status_text(status: u16) -> String {
    match StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

/// Posts signed webhook events. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    timeout: Duration,
}

impl fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSender")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookSender {
    pub fn new(config: &WebhookConfig) -> Result<Self, NotifyError> {
        let timeout = Duration::from_secs(config.timeout_seconds.max(1));
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect would re-send the signed body somewhere the owner did not register.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(config.user_agent.as_str())
            .build()
            .map_err(NotifyError::HttpClient)?;
        Ok(Self { client, timeout })
    }

    /// One attempt to deliver `notification` to `url`, signed with `secret`. Returns the 2xx
    /// status on success.
    pub async fn send(
        &self,
        notification: &Notification,
        url: &str,
        secret: &[u8],
    ) -> Result<u16, WebhookError> {
        // Serialised once: the signature covers exactly the bytes sent.
        let body = serde_json::to_vec(&notification.payload).map_err(WebhookError::Payload)?;
        self.post(
            url,
            notification.event,
            notification.id,
            body,
            secret,
            Utc::now().timestamp(),
        )
        .await
    }

    /// Posts `body` as an event, signed at `timestamp` (unix seconds).
    pub async fn post(
        &self,
        url: &str,
        event: EventType,
        delivery: NotificationId,
        body: Vec<u8>,
        secret: &[u8],
        timestamp: i64,
    ) -> Result<u16, WebhookError> {
        let signature = sign(secret, timestamp, &body);
        let response = self
            .client
            .post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(EVENT_HEADER, event.as_str())
            .header(DELIVERY_HEADER, delivery.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    WebhookError::Timeout(self.timeout)
                } else {
                    WebhookError::Request(e.without_url())
                }
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err(WebhookError::Status {
                status: status.as_u16(),
            })
        }
    }
}

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac =
        <HmacSha256 as KeyInit>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Vidsnap-Signature` header value for `body` sent at `timestamp` (unix seconds):
/// `t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(tag))
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The header is not `t=<int>,v1=<hex>[,v1=<hex>...]`.
    #[error("malformed signature header")]
    Malformed,
    /// `t` is further than the tolerance from the receiver's clock (a replay, or a skewed clock).
    #[error("signature timestamp outside the tolerance")]
    Timestamp,
    /// No `v1` matches: wrong secret, or the body was changed.
    #[error("signature does not match")]
    Mismatch,
}

/// Checks a `Vidsnap-Signature` header against the raw `body` as received, at `now` (unix
/// seconds), accepting timestamps at most `tolerance` away. Several `v1` entries are allowed
/// (any one matching suffices); comparison is constant-time.
pub fn verify(
    secret: &[u8],
    header_value: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header_value.split(',') {
        let (key, value) = part.trim().split_once('=').ok_or(VerifyError::Malformed)?;
        match key {
            "t" if timestamp.is_none() => {
                timestamp = Some(value.parse::<i64>().map_err(|_| VerifyError::Malformed)?);
            }
            "t" => return Err(VerifyError::Malformed),
            "v1" => signatures.push(value),
            // Other schemes may be added later; ignoring them keeps old receivers working.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::Malformed)?;
    if signatures.is_empty() {
        return Err(VerifyError::Malformed);
    }
    if now.abs_diff(timestamp) > tolerance.as_secs() {
        return Err(VerifyError::Timestamp);
    }
    let expected = mac(secret, timestamp, body);
    let matched = signatures.iter().any(|candidate| {
        hex::decode(candidate).is_ok_and(|tag| expected.clone().verify_slice(&tag).is_ok())
    });
    if matched {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test";
    const BODY: &[u8] = br#"{"id":"n1","type":"video.succeeded"}"#;
    const MINUTE: Duration = Duration::from_secs(300);

    #[test]
    fn the_signature_is_hmac_of_timestamp_dot_body() {
        let header = sign(SECRET, 1_700_000_000, BODY);
        let mut reference = <HmacSha256 as KeyInit>::new_from_slice(SECRET).expect("key");
        reference.update(b"1700000000.");
        reference.update(BODY);
        let hex = hex::encode(reference.finalize().into_bytes());
        assert_eq!(header, format!("t=1700000000,v1={hex}"));
        assert_eq!(hex.len(), 64);
    }

    #[test]
    fn a_fresh_signature_verifies_and_a_changed_one_does_not() {
        let header = sign(SECRET, 1_000, BODY);
        assert_eq!(verify(SECRET, &header, BODY, 1_010, MINUTE), Ok(()));
        assert_eq!(verify(SECRET, &header, BODY, 990, MINUTE), Ok(()));
        assert_eq!(
            verify(b"other", &header, BODY, 1_000, MINUTE),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, &header, b"{}", 1_000, MINUTE),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, &header, BODY, 1_000 + 301, MINUTE),
            Err(VerifyError::Timestamp)
        );
        // The timestamp is signed: moving it breaks the signature.
        let moved = header.replacen("t=1000", "t=1001", 1);
        assert_eq!(
            verify(SECRET, &moved, BODY, 1_000, MINUTE),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn rotation_and_unknown_schemes_are_accepted() {
        let good = sign(SECRET, 5, BODY);
        let v1 = good.split_once(",v1=").expect("v1").1;
        let header = format!("t=5,v0=abc,v1={},v1={v1}", "00".repeat(32));
        assert_eq!(verify(SECRET, &header, BODY, 5, MINUTE), Ok(()));
    }

    #[test]
    fn malformed_headers_are_refused() {
        for header in ["", "t=5", "v1=00", "t=x,v1=00", "t=5,t=6,v1=00", "garbage"] {
            assert_eq!(
                verify(SECRET, header, BODY, 5, MINUTE),
                Err(VerifyError::Malformed),
                "{header:?}"
            );
        }
        assert_eq!(
            verify(SECRET, "t=5,v1=not-hex", BODY, 5, MINUTE),
            Err(VerifyError::Mismatch)
        );
    }
}
