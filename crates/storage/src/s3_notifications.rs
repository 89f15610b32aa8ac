//! Where the bucket's event notifications go (GetBucketNotificationConfiguration), so a worker
//! can tell at start-up that the bucket notifies another queue than the one it reads: uploads
//! would then never be processed, and nothing else would say why.

use crate::{
    S3Store,
    s3_housekeeping::{element, elements, unescape},
};

/// The bucket's notification targets, as far as they say where events go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notifications {
    /// ARNs of the SQS queues notified directly.
    pub queues: Vec<String>,
    /// Whether events also go elsewhere (SNS topics, Lambda functions, EventBridge), which may
    /// reach the queue in the end: then nothing can be concluded.
    pub indirect: bool,
}

impl S3Store {
    /// The bucket's notification configuration; `None` when it cannot be read (no permission,
    /// or a server without the call): a check, not a requirement.
    pub async fn notifications(&self) -> Option<Notifications> {
        let (status, text) = self
            .bucket_get(vec![("notification", String::new())])
            .await
            .ok()?;
        if !status.is_success() || !text.contains("NotificationConfiguration") {
            tracing::debug!(%status, "the bucket's notification configuration cannot be read");
            return None;
        }
        Some(parse(&text))
    }
}

fn parse(xml: &str) -> Notifications {
    Notifications {
        queues: elements(xml, "QueueConfiguration")
            .filter_map(|config| element(config, "Queue"))
            .map(|arn| unescape(arn.trim()))
            .collect(),
        indirect: [
            "TopicConfiguration",
            "CloudFunctionConfiguration",
            "EventBridgeConfiguration",
        ]
        .iter()
        .any(|name| xml.contains(&format!("<{name}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_and_other_targets_are_told_apart() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <QueueConfiguration><Id>a</Id><Queue>arn:aws:sqs:us-east-1:123456789012:uploads</Queue>
    <Event>s3:ObjectCreated:*</Event></QueueConfiguration>
  <QueueConfiguration><Queue>arn:aws:sqs:us-east-1:123456789012:other&amp;co</Queue></QueueConfiguration>
</NotificationConfiguration>"#;
        assert_eq!(
            parse(xml),
            Notifications {
                queues: vec![
                    "arn:aws:sqs:us-east-1:123456789012:uploads".into(),
                    "arn:aws:sqs:us-east-1:123456789012:other&co".into()
                ],
                indirect: false
            }
        );
        let topic = "<NotificationConfiguration><TopicConfiguration><Topic>arn:aws:sns:x</Topic></TopicConfiguration></NotificationConfiguration>";
        assert_eq!(
            parse(topic),
            Notifications {
                queues: vec![],
                indirect: true
            }
        );
        assert_eq!(
            parse("<NotificationConfiguration/>"),
            Notifications::default()
        );
    }
}
