//! What a terminal outcome owes, independent of the SQL dialect: the channels to notify and the
//! event body they all receive.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use vidsnap_domain::{Channel, EventType, NotificationId, Video, VideoStatus, Webhook};

/// The event announced on entering `status`, if it is terminal.
pub(crate) fn event_for(status: VideoStatus) -> Option<EventType> {
    match status {
        VideoStatus::Succeeded => Some(EventType::VideoSucceeded),
        VideoStatus::Dead => Some(EventType::VideoDead),
        _ => None,
    }
}

/// Each channel owed a notification, with the key that makes it unique per outcome: the e-mail is
/// keyed by kind, not address, so an address change cannot duplicate it.
pub(crate) fn channels(email: &str, hooks: &[Webhook]) -> Vec<(Channel, String)> {
    let mut owed = vec![(
        Channel::Email {
            to: email.to_owned(),
        },
        "email".to_owned(),
    )];
    owed.extend(hooks.iter().map(|hook| {
        (
            Channel::Webhook {
                webhook: hook.id,
                url: hook.url.clone(),
            },
            format!("webhook:{}", hook.id),
        )
    }));
    owed
}

/// The event body, frozen when the outcome is recorded. Its `id` is the notification's, so a
/// receiver can match a delivery in the log and deduplicate redeliveries.
pub(crate) fn body(
    id: NotificationId,
    event: EventType,
    created_at: DateTime<Utc>,
    video: &Video,
) -> Value {
    json!({
        "id": id,
        "type": event.as_str(),
        "created_at": created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "video": {
            "id": video.id,
            "file_name": video.file_name,
            "status": video.status,
            "attempts": video.attempts,
            "last_error": video.last_error,
            "outputs": video.outputs,
        },
    })
}
