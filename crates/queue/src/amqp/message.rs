//! What travels through the broker: a job as JSON, with the properties every copy carries.

use chrono::{DateTime, Utc};
use lapin::{
    BasicProperties,
    message::Delivery,
    types::{AMQPValue, FieldTable, LongString, ShortString},
};
use serde::{Deserialize, Serialize};
use vidsnap_domain::{TaskId, TaskMessage};

/// The header a dead-lettered job's reason travels in.
pub const REASON_HEADER: &str = "x-vidsnap-reason";

/// A task message's body: the versioned task (`{"v": "1", "job", "step", "attempt"}`) with
/// this copy's id and counts. Unknown fields are ignored, so a newer publisher's messages still
/// parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JobMessage {
    /// This copy's id: a release or a hold publishes the same task under the same id.
    pub(crate) id: TaskId,
    #[serde(flatten)]
    pub(crate) task: TaskMessage,
    /// When the job was due; informational (delay queues make it due).
    pub(crate) not_before: DateTime<Utc>,
    /// Deliveries before this copy was published: 0 for a new job, a lease's count for a
    /// released, held or dead copy.
    pub(crate) deliveries: u32,
}

impl JobMessage {
    pub(crate) fn body(&self) -> Vec<u8> {
        // Serialising ids, a timestamp and an integer cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Persistent (delivery mode 2: written to disk by durable queues), JSON, with a fresh
/// message id: the id tells one copy of a job from another (see the hold queues).
pub(crate) fn properties() -> (BasicProperties, ShortString) {
    let id = ShortString::from(uuid::Uuid::new_v4().simple().to_string());
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_app_id("vidsnap".into())
        .with_message_id(id.clone())
        .with_timestamp(u64::try_from(Utc::now().timestamp()).unwrap_or_default());
    (properties, id)
}

/// `properties` with the reason a job was given up.
pub(crate) fn dead_properties(reason: &str) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        REASON_HEADER.into(),
        AMQPValue::LongString(LongString::from(reason)),
    );
    properties().0.with_headers(headers)
}

/// How many times the job has now been delivered, this delivery included: the deliveries before
/// its message was published, plus the broker's redeliveries of this message (a worker died or
/// lost its connection holding it). Quorum queues count those exactly (`x-delivery-count`);
/// elsewhere the `redelivered` flag counts one.
pub(crate) fn deliveries(message: &JobMessage, delivery: &Delivery) -> u32 {
    let counted = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get("x-delivery-count"))
        .and_then(integer);
    let redeliveries = counted.unwrap_or(u32::from(delivery.redelivered));
    message
        .deliveries
        .saturating_add(1)
        .saturating_add(redeliveries)
}

fn integer(value: &AMQPValue) -> Option<u32> {
    let wide = match value {
        AMQPValue::ShortShortInt(v) => i64::from(*v),
        AMQPValue::ShortShortUInt(v) => i64::from(*v),
        AMQPValue::ShortInt(v) => i64::from(*v),
        AMQPValue::ShortUInt(v) => i64::from(*v),
        AMQPValue::LongInt(v) => i64::from(*v),
        AMQPValue::LongUInt(v) => i64::from(*v),
        AMQPValue::LongLongInt(v) => *v,
        _ => return None,
    };
    u32::try_from(wide).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(redelivered: bool, count: Option<AMQPValue>) -> Delivery {
        let mut delivery = Delivery::mock(1, "".into(), "q".into(), redelivered, Vec::new());
        if let Some(count) = count {
            let mut headers = FieldTable::default();
            headers.insert("x-delivery-count".into(), count);
            delivery.properties = BasicProperties::default().with_headers(headers);
        }
        delivery
    }

    fn sample() -> TaskMessage {
        TaskMessage::V1(vidsnap_domain::Task {
            job: vidsnap_domain::JobId::new(),
            step: "frames".to_owned(),
            attempt: 2,
        })
    }

    #[test]
    fn deliveries_add_the_brokers_redeliveries() {
        let message = JobMessage {
            id: TaskId::new(),
            task: sample(),
            not_before: Utc::now(),
            deliveries: 2,
        };
        assert_eq!(deliveries(&message, &delivery(false, None)), 3);
        assert_eq!(deliveries(&message, &delivery(true, None)), 4);
        let counted = Some(AMQPValue::LongLongInt(3));
        assert_eq!(deliveries(&message, &delivery(true, counted)), 6);
        let bad = Some(AMQPValue::LongLongInt(-1));
        assert_eq!(deliveries(&message, &delivery(true, bad)), 4);
    }

    #[test]
    fn bodies_round_trip_and_ignore_unknown_fields() {
        let message = JobMessage {
            id: TaskId::new(),
            task: sample(),
            not_before: Utc::now(),
            deliveries: 1,
        };
        let back: JobMessage = serde_json::from_slice(&message.body()).unwrap_or_else(|e| {
            panic!("{e}");
        });
        assert_eq!(back, message);
        let mut value = serde_json::to_value(&message).unwrap_or_default();
        value["later"] = serde_json::json!(true);
        let back: JobMessage = serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, message);
    }

    #[test]
    fn dead_letters_carry_their_reason() {
        let properties = dead_properties("corrupt-input: no frames");
        let reason = properties
            .headers()
            .as_ref()
            .and_then(|headers| headers.inner().get(REASON_HEADER).cloned());
        assert_eq!(
            reason,
            Some(AMQPValue::LongString("corrupt-input: no frames".into()))
        );
    }
}
