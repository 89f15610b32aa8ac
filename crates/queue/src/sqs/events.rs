//! S3 event notifications as they arrive on SQS: the JSON S3 sends (see "Event message
//! structure" in the S3 user guide), also inside an SNS envelope. Pure functions, no I/O.
//!
//! ```json
//! {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
//!               "s3": {"bucket": {"name": "videos"},
//!                      "object": {"key": "u%2Fv%2Fclip+one.mp4", "size": 1024}}}]}
//! ```
//!
//! Keys are form-URL-encoded: `+` is a space and `%XX` a byte of the UTF-8 key (`%2B` is `+`;
//! some implementations encode `/` as `%2F` too).

use percent_encoding::percent_decode_str;
use serde_json::Value;

/// What one message from S3 holds.
#[derive(Debug, Clone, PartialEq)]
pub enum S3Message {
    /// `s3:TestEvent`, sent once when a notification configuration is saved.
    Test,
    /// The event records, in order.
    Records(Vec<Record>),
}

/// One record of an event message.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// An object was created (`ObjectCreated:Put`, `Post`, `Copy`,
    /// `CompleteMultipartUpload`).
    Created(ObjectCreated),
    /// Another kind of event (removal, restore, tagging, replication…): nothing to do.
    Other { event_name: String },
    /// A record without the fields of an S3 event record.
    Malformed { raw: Value, why: String },
}

/// An `ObjectCreated:*` record.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectCreated {
    /// E.g. `ObjectCreated:CompleteMultipartUpload`.
    pub event_name: String,
    pub bucket: String,
    /// Decoded.
    pub key: String,
    /// Bytes; 0 when the record does not say.
    pub size: u64,
    /// The record as received, to dead-letter it unchanged.
    pub raw: Value,
}

/// A message body that is not an S3 event notification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an S3 event: {0}")]
pub struct NotAnS3Event(pub String);

/// Parses a message body from an S3 event notification (directly from S3, or through SNS).
pub fn parse_message(body: &str) -> Result<S3Message, NotAnS3Event> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| NotAnS3Event(format!("not JSON ({e})")))?;
    let value = unwrap_sns(value)?;
    if value.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(S3Message::Test);
    }
    match value {
        Value::Object(mut fields) => match fields.remove("Records") {
            Some(Value::Array(records)) => Ok(S3Message::Records(
                records.into_iter().map(record).collect(),
            )),
            Some(_) => Err(NotAnS3Event("`Records` is not an array".into())),
            None => Err(NotAnS3Event("no `Records`".into())),
        },
        _ => Err(NotAnS3Event("not a JSON object".into())),
    }
}

/// An SNS notification (`{"Type": "Notification", "Message": "<the S3 event as a string>"}`,
/// SNS's delivery to SQS without raw message delivery) gives its message; anything else is
/// returned as is.
fn unwrap_sns(value: Value) -> Result<Value, NotAnS3Event> {
    let is_sns = value.get("Type").and_then(Value::as_str) == Some("Notification");
    match value.get("Message").and_then(Value::as_str) {
        Some(message) if is_sns => serde_json::from_str(message)
            .map_err(|e| NotAnS3Event(format!("the SNS message is not JSON ({e})"))),
        _ => Ok(value),
    }
}

fn record(raw: Value) -> Record {
    let Some(event_name) = raw.get("eventName").and_then(Value::as_str) else {
        return malformed(raw, "no `eventName`");
    };
    // S3 sends `ObjectCreated:Put`; configurations spell it `s3:ObjectCreated:Put`.
    let event_name = event_name
        .strip_prefix("s3:")
        .unwrap_or(event_name)
        .to_owned();
    if !event_name.starts_with("ObjectCreated:") {
        return Record::Other { event_name };
    }
    let s3 = raw.get("s3");
    let bucket = s3
        .and_then(|s3| s3.pointer("/bucket/name"))
        .and_then(Value::as_str);
    let key = s3
        .and_then(|s3| s3.pointer("/object/key"))
        .and_then(Value::as_str);
    let (Some(bucket), Some(key)) = (bucket, key) else {
        return malformed(raw, "no `s3.bucket.name` or `s3.object.key`");
    };
    let Some(key) = decode_key(key) else {
        return malformed(raw, "`s3.object.key` is not form-URL-encoded UTF-8");
    };
    let size = s3
        .and_then(|s3| s3.pointer("/object/size"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Record::Created(ObjectCreated {
        event_name,
        bucket: bucket.to_owned(),
        key,
        size,
        raw,
    })
}

fn malformed(raw: Value, why: &str) -> Record {
    Record::Malformed {
        raw,
        why: why.to_owned(),
    }
}

/// Decodes an event's object key (`application/x-www-form-urlencoded`): `+` is a space, `%XX`
/// a byte. `None` when the bytes are not UTF-8.
pub fn decode_key(encoded: &str) -> Option<String> {
    // `+` first: an encoded plus (`%2B`) must stay a plus.
    let spaced = encoded.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|key| key.into_owned())
}

/// The record as a one-record event message, the form it is dead-lettered in (so it can be
/// sent back to the events queue as it is).
pub fn single_record_message(raw: &Value) -> String {
    serde_json::json!({ "Records": [raw] }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real notification (the S3 user guide's example, as S3 sends it).
    const PUT: &str = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3",
        "awsRegion":"us-west-2","eventTime":"1970-01-01T00:00:00.000Z",
        "eventName":"ObjectCreated:Put","userIdentity":{"principalId":"AIDAJDPLRKLG7UEXAMPLE"},
        "requestParameters":{"sourceIPAddress":"127.0.0.1"},
        "responseElements":{"x-amz-request-id":"C3D13FE58DE4C810",
            "x-amz-id-2":"FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},
        "s3":{"s3SchemaVersion":"1.0","configurationId":"testConfigRule",
            "bucket":{"name":"mybucket","ownerIdentity":{"principalId":"A3NL1KOZZKExample"},
                "arn":"arn:aws:s3:::mybucket"},
            "object":{"key":"HappyFace.jpg","size":1024,"eTag":"d41d8cd98f00b204e9800998ecf8427e",
                "versionId":"096fKKXTRTtl3on89fVO.nfljtsv6qko",
                "sequencer":"0055AED6DCD90281E5"}}}]}"#;

    const TEST_EVENT: &str = r#"{"Service":"Amazon S3","Event":"s3:TestEvent",
        "Time":"2014-10-13T15:57:02.089Z","Bucket":"mybucket",
        "RequestId":"5582815E1AEA5ADF","HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}"#;

    /// A record as moto and S3 send it, for `key` (already encoded).
    fn created(event_name: &str, key: &str, size: u64) -> String {
        format!(
            r#"{{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
                "eventTime":"2026-11-23T10:00:00.000Z","eventName":"{event_name}",
                "s3":{{"s3SchemaVersion":"1.0","configurationId":"vidsnap",
                    "bucket":{{"name":"videos","arn":"arn:aws:s3:::videos"}},
                    "object":{{"key":"{key}","size":{size},"eTag":"0123"}}}}}}"#
        )
    }

    fn records(body: &str) -> Vec<Record> {
        match parse_message(body) {
            Ok(S3Message::Records(records)) => records,
            other => panic!("expected records, got {other:?}"),
        }
    }

    fn created_key(record: &Record) -> (&str, u64) {
        match record {
            Record::Created(created) => (created.key.as_str(), created.size),
            other => panic!("expected ObjectCreated, got {other:?}"),
        }
    }

    #[test]
    fn a_put_record() {
        let records = records(PUT);
        let [Record::Created(created)] = records.as_slice() else {
            panic!("{records:?}")
        };
        assert_eq!(created.event_name, "ObjectCreated:Put");
        assert_eq!(created.bucket, "mybucket");
        assert_eq!(created.key, "HappyFace.jpg");
        assert_eq!(created.size, 1024);
        assert_eq!(
            created.raw["s3"]["object"]["sequencer"],
            "0055AED6DCD90281E5"
        );
    }

    #[test]
    fn keys_are_form_url_decoded() {
        for (encoded, key) in [
            ("u%2Fv%2Fclip+one%2B.mp4", "u/v/clip one+.mp4"),
            ("u/v/clip+one.mp4", "u/v/clip one.mp4"),
            ("u/v/my%2Bvideo.mp4", "u/v/my+video.mp4"),
            ("u/v/caf%C3%A9+%E2%98%95.mp4", "u/v/café ☕.mp4"),
            ("u/v/%E5%8B%95%E7%94%BB.mkv", "u/v/動画.mkv"),
            ("u/v/100%25.mp4", "u/v/100%.mp4"),
        ] {
            let body = format!(
                r#"{{"Records":[{}]}}"#,
                created("ObjectCreated:Put", encoded, 7)
            );
            assert_eq!(created_key(&records(&body)[0]), (key, 7), "{encoded}");
        }
        assert_eq!(decode_key("bad%FF"), None, "not UTF-8");
    }

    #[test]
    fn several_records_in_order() {
        let body = format!(
            r#"{{"Records":[{},{},{}]}}"#,
            created("ObjectCreated:Put", "a%2Fb%2Fc.mp4", 1),
            created("ObjectCreated:CompleteMultipartUpload", "d/e/f.mp4", 2),
            created("ObjectRemoved:Delete", "g/h/i.mp4", 0),
        );
        let records = records(&body);
        assert_eq!(records.len(), 3);
        assert_eq!(created_key(&records[0]), ("a/b/c.mp4", 1));
        assert_eq!(created_key(&records[1]), ("d/e/f.mp4", 2));
        assert_eq!(
            records[2],
            Record::Other {
                event_name: "ObjectRemoved:Delete".into()
            }
        );
    }

    #[test]
    fn the_test_event() {
        assert_eq!(parse_message(TEST_EVENT), Ok(S3Message::Test));
    }

    #[test]
    fn inside_an_sns_envelope() {
        let envelope = serde_json::json!({
            "Type": "Notification",
            "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:uploads",
            "Subject": "Amazon S3 Notification",
            "Message": PUT,
            "Timestamp": "2026-11-23T10:00:00.000Z",
        })
        .to_string();
        assert_eq!(created_key(&records(&envelope)[0]), ("HappyFace.jpg", 1024));
        let test = serde_json::json!({"Type": "Notification", "Message": TEST_EVENT}).to_string();
        assert_eq!(parse_message(&test), Ok(S3Message::Test));
    }

    #[test]
    fn bodies_that_are_not_events() {
        for body in [
            "hello",
            "",
            "[1, 2]",
            r#"{"job": "x"}"#,
            r#"{"Records": {"a": 1}}"#,
            r#"{"Type": "Notification", "Message": "not json"}"#,
        ] {
            assert!(parse_message(body).is_err(), "{body:?}");
        }
    }

    #[test]
    fn records_without_the_fields_are_malformed() {
        let body = format!(
            r#"{{"Records":[{{"eventName":"ObjectCreated:Put","s3":{{}}}}, {{"x":1}}, 7, {}]}}"#,
            created("ObjectCreated:Copy", "ok/ok/ok.mp4", 3)
        );
        let records = records(&body);
        assert!(
            matches!(records[0], Record::Malformed { .. }),
            "{records:?}"
        );
        assert!(
            matches!(records[1], Record::Malformed { .. }),
            "{records:?}"
        );
        assert!(
            matches!(records[2], Record::Malformed { .. }),
            "{records:?}"
        );
        assert_eq!(created_key(&records[3]), ("ok/ok/ok.mp4", 3));
        let key = created("ObjectCreated:Put", "bad%FF", 1);
        let bad_key = records_of(&key);
        assert!(matches!(bad_key[0], Record::Malformed { .. }));
    }

    fn records_of(record: &str) -> Vec<Record> {
        records(&format!(r#"{{"Records":[{record}]}}"#))
    }

    #[test]
    fn a_dead_lettered_record_is_an_event_again() {
        let records = records(PUT);
        let Record::Created(created) = &records[0] else {
            panic!()
        };
        let again = single_record_message(&created.raw);
        assert_eq!(
            parse_message(&again),
            Ok(S3Message::Records(records.clone()))
        );
    }
}
