//! The SQS client both roles share, SQS's limits, and the calls both make the same way.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_sqs::{
    Client,
    config::{Credentials, Region},
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
    types::MessageAttributeValue,
};
use serde::{Deserialize, Serialize};
use vidsnap_domain::PortError;

/// SQS's longest visibility timeout (12 hours), counted from the message's receipt.
pub(crate) const MAX_VISIBILITY_SECONDS: u32 = 43_200;
/// SQS's longest message delay (15 minutes).
pub(crate) const MAX_DELAY_SECONDS: u32 = 900;
/// SQS's longest long poll.
pub(crate) const MAX_WAIT_SECONDS: u32 = 20;
/// Dead-letter reasons are cut to this many bytes (a message and its attributes must fit in
/// SQS's message size limit).
const MAX_REASON_BYTES: usize = 4096;

/// How to reach SQS. Both [`SqsConfig`](super::SqsConfig) and
/// [`S3EventsConfig`](super::S3EventsConfig) carry these four keys at their top level (serde's
/// `flatten` cannot be combined with `deny_unknown_fields`).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqsClientConfig {
    /// The AWS region, e.g. `eu-west-1`. Unset: `AWS_REGION`, the profile, or the instance
    /// metadata; without any, construction fails.
    #[serde(default)]
    pub region: Option<String>,
    /// An SQS-compatible endpoint instead of AWS's, e.g. `http://localhost:5000` (moto,
    /// LocalStack, ElasticMQ).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Static credentials; give both or neither. Without them, the AWS environment provides
    /// them: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, the shared profile,
    /// web identity (`AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`: EKS IRSA), ECS/EKS container
    /// credentials, or the EC2 instance metadata service.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// See `access_key_id`.
    #[serde(default)]
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for SqsClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsClientConfig")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "******"),
            )
            .finish()
    }
}

/// Why an SQS configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SqsConfigError {
    #[error("{0} must be set")]
    Missing(&'static str),
    #[error(
        "{0} is a FIFO queue: use a standard queue (FIFO queues have no per-message delay, which \
         retries need)"
    )]
    Fifo(String),
    #[error("{field} must be between {min} and {max}, not {value}")]
    OutOfRange {
        field: &'static str,
        value: u32,
        min: u32,
        max: u32,
    },
    #[error("endpoint {0:?} is not an http(s) URL")]
    Endpoint(String),
    #[error("access_key_id and secret_access_key must be set together")]
    Credentials,
    #[error("no AWS region: set region (or AWS_REGION)")]
    NoRegion,
}

impl SqsClientConfig {
    /// Builds the client. Nothing is sent to SQS; the region may be looked up in the
    /// environment (and, when none is set anywhere, the instance metadata service).
    pub async fn client(&self) -> Result<Client, SqsConfigError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = non_empty(&self.region) {
            loader = loader.region(Region::new(region.to_owned()));
        }
        if let Some(endpoint) = non_empty(&self.endpoint) {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(SqsConfigError::Endpoint(endpoint.to_owned()));
            }
            loader = loader.endpoint_url(endpoint);
        }
        match (
            non_empty(&self.access_key_id),
            non_empty(&self.secret_access_key),
        ) {
            (Some(id), Some(secret)) => {
                let credentials = Credentials::new(id, secret, None, None, "vidsnap-config");
                loader = loader.credentials_provider(credentials);
            }
            (None, None) => {}
            _ => return Err(SqsConfigError::Credentials),
        }
        let sdk = loader.load().await;
        if sdk.region().is_none() {
            return Err(SqsConfigError::NoRegion);
        }
        Ok(Client::new(&sdk))
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Checks a queue URL: present, and not a FIFO queue.
pub(crate) fn check_queue_url(field: &'static str, url: &str) -> Result<(), SqsConfigError> {
    let url = url.trim();
    if url.is_empty() {
        return Err(SqsConfigError::Missing(field));
    }
    if url.trim_end_matches('/').ends_with(".fifo") {
        return Err(SqsConfigError::Fifo(url.to_owned()));
    }
    Ok(())
}

pub(crate) fn check_range(
    field: &'static str,
    value: u32,
    min: u32,
    max: u32,
) -> Result<(), SqsConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(SqsConfigError::OutOfRange {
            field,
            value,
            min,
            max,
        })
    }
}

/// A duration as SQS visibility seconds: rounded up, within 1 s and 12 h.
pub(crate) fn visibility_seconds(duration: Duration) -> i32 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    // Bounded by MAX_VISIBILITY_SECONDS, so the cast is exact.
    seconds.clamp(1, u64::from(MAX_VISIBILITY_SECONDS)) as i32
}

/// A backend failure, with the SDK's whole error chain (the top level alone says "service
/// error").
pub(crate) fn unavailable<E, R>(what: &str, error: &SdkError<E, R>) -> PortError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    PortError::Unavailable(format!("SQS {what}: {}", DisplayErrorContext(error)))
}

/// Errors of calls that use a receipt handle: a handle that is invalid, expired or of a message
/// no longer in flight means the lease is gone.
pub(crate) fn receipt_error<E, R>(what: &str, error: &SdkError<E, R>) -> PortError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    let code = error.code().unwrap_or_default();
    let code = code.strip_prefix("AWS.SimpleQueueService.").unwrap_or(code);
    match code {
        // InvalidParameterValue: "Value … for parameter ReceiptHandle is invalid. Reason: The
        // receipt handle has expired", or the message's 12 hours of visibility are used up.
        "ReceiptHandleIsInvalid" | "MessageNotInflight" | "InvalidParameterValue" => {
            PortError::LeaseLost
        }
        _ => unavailable(what, error),
    }
}

/// Sends `body` to `queue_url` with the message attribute `reason`.
pub(crate) async fn send_with_reason(
    client: &Client,
    queue_url: &str,
    body: String,
    reason: &str,
) -> Result<(), PortError> {
    let reason = MessageAttributeValue::builder()
        .data_type("String")
        .string_value(truncate(reason, MAX_REASON_BYTES))
        .build()
        .map_err(|e| PortError::Unavailable(format!("SQS message attribute: {e}")))?;
    client
        .send_message()
        .queue_url(queue_url)
        .message_body(body)
        .message_attributes("reason", reason)
        .send()
        .await
        .map_err(|e| unavailable("SendMessage (dead letter)", &e))?;
    Ok(())
}

/// At most `max` bytes of `text`, cut at a character boundary; never empty (SQS refuses empty
/// attribute values).
fn truncate(text: &str, max: usize) -> &str {
    if text.is_empty() {
        return "unspecified";
    }
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_is_rounded_up_and_bounded() {
        assert_eq!(visibility_seconds(Duration::ZERO), 1);
        assert_eq!(visibility_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(visibility_seconds(Duration::from_secs(60)), 60);
        assert_eq!(visibility_seconds(Duration::from_secs(100_000)), 43_200);
    }

    #[test]
    fn reasons_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("", 10), "unspecified");
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate(&"x".repeat(5000), 4096).len(), 4096);
    }

    #[test]
    fn fifo_and_empty_queue_urls_are_refused() {
        assert!(check_queue_url("queue_url", "https://sqs/1/jobs").is_ok());
        assert!(matches!(
            check_queue_url("queue_url", "https://sqs/1/jobs.fifo"),
            Err(SqsConfigError::Fifo(_))
        ));
        assert!(matches!(
            check_queue_url("queue_url", " "),
            Err(SqsConfigError::Missing("queue_url"))
        ));
    }

    #[test]
    fn the_secret_is_not_printed() {
        let config = SqsClientConfig {
            access_key_id: Some("AKIA".into()),
            secret_access_key: Some("hunter2".into()),
            ..SqsClientConfig::default()
        };
        let printed = format!("{config:?}");
        assert!(
            printed.contains("AKIA") && !printed.contains("hunter2"),
            "{printed}"
        );
    }
}
