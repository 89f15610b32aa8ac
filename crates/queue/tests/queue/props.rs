//! Property tests of the queue's parsers of outside input (issue #11, hardening), no broker
//! needed: S3 event notifications as they arrive on SQS (`sqs::events`), and the headers of AMQP
//! upload chunks with the replies built for them (`chunks`). Arbitrary and near-valid inputs
//! never panic, every refusal carries its stable reason, and valid inputs give back what they
//! were built from.

use lapin::types::{
    AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString, ShortString,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::{prelude::*, sample::Index, test_runner::Config};
use serde_json::{Value, json};
use uuid::Uuid;
use vidsnap_domain::UploadId;
use vidsnap_queue::{
    chunks::{ChunkHeaders, Reply, parse_headers, reply_properties},
    sqs::events::{Record, S3Message, decode_key, parse_message, single_record_message},
};

fn config() -> Config {
    Config {
        cases: 384,
        failure_persistence: None,
        ..Config::default()
    }
}

fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("NaN".to_owned()),
        Just("-1".to_owned()),
        Just(" 7 ".to_owned()),
        Just("+7".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("%".to_owned()),
        Just("%FF%FE".to_owned()),
        Just("%C3".to_owned()),
        Just("a+b%2Bc".to_owned()),
        Just("s3:TestEvent".to_owned()),
        Just("ObjectCreated:Put".to_owned()),
        Just("s3:ObjectCreated:".to_owned()),
        Just("Notification".to_owned()),
        Just("動画 ☕".to_owned()),
        "\\PC{0,24}",
        any::<String>(),
        "[a-z%+/0-9A-F]{0,40}",
        "[a-z]{1,8}".prop_map(|s| s.repeat(300)),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        nasty_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    nasty_string(),
                    prop::sample::select(
                        &[
                            "Records",
                            "eventName",
                            "s3",
                            "bucket",
                            "name",
                            "object",
                            "key",
                            "size",
                            "Type",
                            "Message",
                            "Event",
                        ][..]
                    )
                    .prop_map(str::to_owned),
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

// ---- S3 event notifications -------------------------------------------------------------

/// What S3 leaves unencoded in a form-encoded key besides alphanumerics.
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'*')
    .remove(b' ');

/// A key as S3 puts it in an event: form-URL-encoded, `/` encoded or not.
fn encode_key(key: &str, slash_encoded: bool) -> String {
    let encoded = utf8_percent_encode(key, FORM).to_string().replace(' ', "+");
    if slash_encoded {
        encoded
    } else {
        encoded.replace("%2F", "/")
    }
}

/// One object-created record as S3 sends it, and what it should parse to.
#[derive(Debug, Clone)]
struct Created {
    event: String,
    bucket: String,
    key: String,
    size: Option<u64>,
    slash_encoded: bool,
}

fn created() -> impl Strategy<Value = Created> {
    (
        prop::sample::select(
            &[
                "ObjectCreated:Put",
                "ObjectCreated:Post",
                "ObjectCreated:Copy",
                "ObjectCreated:CompleteMultipartUpload",
                "s3:ObjectCreated:Put",
            ][..],
        ),
        "[a-z0-9][a-z0-9.-]{2,20}",
        prop_oneof![
            any::<String>(),
            "\\PC{1,40}",
            "[a-z]{1,4}/[a-z]{1,4}/[a-z ]{1,8}\\.mp4"
        ],
        prop::option::of(any::<u64>()),
        any::<bool>(),
    )
        .prop_map(|(event, bucket, key, size, slash_encoded)| Created {
            event: event.to_owned(),
            bucket,
            key,
            size,
            slash_encoded,
        })
}

impl Created {
    fn record(&self) -> Value {
        let mut object = json!({"key": encode_key(&self.key, self.slash_encoded), "eTag": "0123"});
        if let Some(size) = self.size {
            object["size"] = json!(size);
        }
        json!({
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-11-23T10:00:00.000Z", "eventName": self.event,
            "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": self.bucket}, "object": object},
        })
    }
}

fn sns(message: &Value) -> Value {
    json!({"Type": "Notification", "MessageId": "m", "Message": message.to_string()})
}

/// Every JSON pointer into `value`, the root included.
fn pointers(value: &Value) -> Vec<String> {
    fn walk(value: &Value, at: String, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    let escaped = key.replace('~', "~0").replace('/', "~1");
                    walk(inner, format!("{at}/{escaped}"), out);
                }
            }
            Value::Array(items) => {
                for (i, inner) in items.iter().enumerate() {
                    walk(inner, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
        out.push(at);
    }
    let mut out = Vec::new();
    walk(value, String::new(), &mut out);
    out
}

/// A valid event message (sometimes in an SNS envelope) with a few nodes replaced or removed.
fn near_valid_event() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(created(), 1..4),
        prop::collection::vec((any::<Index>(), prop::option::of(any_json())), 1..4),
        any::<bool>(),
    )
        .prop_map(|(records, changes, wrapped)| {
            let mut doc =
                json!({"Records": records.iter().map(Created::record).collect::<Vec<_>>()});
            for (index, replacement) in changes {
                let all = pointers(&doc);
                let at = &all[index.index(all.len())];
                match replacement {
                    Some(value) => {
                        if let Some(node) = doc.pointer_mut(at) {
                            *node = value;
                        }
                    }
                    None => {
                        if let Some((parent, last)) = at.rsplit_once('/') {
                            let last = last.replace("~1", "/").replace("~0", "~");
                            match doc.pointer_mut(parent) {
                                Some(Value::Object(map)) => {
                                    map.remove(&last);
                                }
                                Some(Value::Array(items)) => {
                                    if let Ok(i) = last.parse::<usize>() {
                                        items.remove(i);
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                }
            }
            if wrapped { sns(&doc) } else { doc }.to_string()
        })
}

/// What the consumer does with a body, as the reason it dead-letters it with; `None` when every
/// record is an upload or nothing to do. Every refusal of the parser must map to a reason.
fn check_body(body: &str) -> Option<&'static str> {
    match parse_message(body) {
        Err(e) => {
            assert!(!e.0.is_empty(), "a refusal without a reason: {body:?}");
            Some("not-an-s3-event")
        }
        Ok(S3Message::Test) => None,
        Ok(S3Message::Records(records)) => {
            let mut dead = None;
            for record in records {
                match record {
                    Record::Created(created) => {
                        assert!(created.event_name.starts_with("ObjectCreated:"));
                        // What is dead-lettered is an event again, the same upload. (Not
                        // the same `raw`: serde_json may read a float of another field back
                        // one ULP off.)
                        let again = parse_message(&single_record_message(&created.raw));
                        let Ok(S3Message::Records(again)) = again else {
                            panic!("{again:?}")
                        };
                        let [Record::Created(again)] = &again[..] else {
                            panic!("{again:?}")
                        };
                        assert_eq!(
                            (&again.event_name, &again.bucket, &again.key, again.size),
                            (
                                &created.event_name,
                                &created.bucket,
                                &created.key,
                                created.size
                            )
                        );
                    }
                    Record::Other { event_name } => {
                        assert!(!event_name.starts_with("ObjectCreated:"), "{event_name}");
                    }
                    Record::Malformed { raw, why } => {
                        assert!(!why.is_empty(), "a malformed record without a reason");
                        let again = parse_message(&single_record_message(&raw));
                        assert!(
                            matches!(&again, Ok(S3Message::Records(r)) if matches!(r[..], [Record::Malformed { .. }])),
                            "a dead-lettered record reads as the same refusal: {again:?}"
                        );
                        dead = Some("not-an-s3-event");
                    }
                }
            }
            dead
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_body_is_an_event_or_refused_with_a_reason(body in prop_oneof![
        nasty_string(),
        any_json().prop_map(|v| v.to_string()),
        any_json().prop_map(|v| sns(&v).to_string()),
        any_json().prop_map(|v| json!({"Records": v}).to_string()),
        prop::collection::vec(any_json(), 0..4).prop_map(|r| json!({"Records": r}).to_string()),
    ]) {
        check_body(&body);
    }

    #[test]
    fn any_bytes_as_a_body_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_body(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn near_valid_events_are_read_or_refused_with_a_reason(body in near_valid_event()) {
        check_body(&body);
    }

    #[test]
    fn object_created_records_give_back_their_bucket_key_and_size(
        records in prop::collection::vec(created(), 1..5),
        wrapped in any::<bool>(),
    ) {
        let doc = json!({"Records": records.iter().map(Created::record).collect::<Vec<_>>()});
        let body = if wrapped { sns(&doc) } else { doc }.to_string();
        let Ok(S3Message::Records(parsed)) = parse_message(&body) else {
            panic!("refused: {body}")
        };
        prop_assert_eq!(parsed.len(), records.len());
        for (record, built) in parsed.iter().zip(&records) {
            let Record::Created(created) = record else { panic!("{record:?}") };
            prop_assert_eq!(&created.bucket, &built.bucket);
            prop_assert_eq!(&created.key, &built.key);
            prop_assert_eq!(created.size, built.size.unwrap_or(0));
            prop_assert_eq!(
                Some(created.event_name.as_str()),
                built.event.strip_prefix("s3:").or(Some(&built.event))
            );
        }
    }

    #[test]
    fn keys_decode_what_s3_encodes(key in any::<String>(), slash_encoded in any::<bool>()) {
        prop_assert_eq!(decode_key(&encode_key(&key, slash_encoded)), Some(key));
    }

    #[test]
    fn keys_of_any_text_decode_or_are_refused_as_not_utf8(encoded in nasty_string()) {
        match decode_key(&encoded) {
            Some(key) => prop_assert!(!key.contains('+') || encoded.contains("%2B") || encoded.contains("%2b")),
            None => prop_assert!(encoded.contains('%'), "only percent-escapes make bytes"),
        }
    }
}

// ---- AMQP chunk headers -----------------------------------------------------------------

/// The codes a chunk's headers alone can be refused with (a subset of the module's list).
const HEADER_CODES: [&str; 3] = ["bad-headers", "unknown-session", "size-mismatch"];
/// Every code a reply may carry (`chunks` module documentation).
const NACK_CODES: [&str; 8] = [
    "unknown-session",
    "expired",
    "offset-mismatch",
    "overrun",
    "size-mismatch",
    "bad-headers",
    "locked",
    "checksum-mismatch",
];

fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text))
}

/// Any AMQP field value a publisher can send.
fn amqp_value() -> impl Strategy<Value = AMQPValue> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(AMQPValue::Boolean),
        any::<i8>().prop_map(AMQPValue::ShortShortInt),
        any::<u8>().prop_map(AMQPValue::ShortShortUInt),
        any::<i16>().prop_map(AMQPValue::ShortInt),
        any::<u16>().prop_map(AMQPValue::ShortUInt),
        any::<i32>().prop_map(AMQPValue::LongInt),
        any::<u32>().prop_map(AMQPValue::LongUInt),
        any::<i64>().prop_map(AMQPValue::LongLongInt),
        any::<f32>().prop_map(AMQPValue::Float),
        any::<f64>().prop_map(AMQPValue::Double),
        (any::<u8>(), any::<u32>())
            .prop_map(|(scale, value)| AMQPValue::DecimalValue(DecimalValue { scale, value })),
        // At most 160 bytes: a short string holds 255.
        "\\PC{0,40}".prop_map(|s| AMQPValue::ShortString(ShortString::from(s))),
        nasty_string().prop_map(|s| long_string(&s)),
        prop::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| AMQPValue::LongString(LongString::from(b))),
        any::<u64>().prop_map(AMQPValue::Timestamp),
        prop::collection::vec(any::<u8>(), 0..16)
            .prop_map(|b| AMQPValue::ByteArray(ByteArray::from(b))),
        Just(AMQPValue::Void),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3)
                .prop_map(|v| AMQPValue::FieldArray(FieldArray::from(v))),
            prop::collection::vec(inner, 0..3).prop_map(|v| {
                let mut table = FieldTable::default();
                for (i, value) in v.into_iter().enumerate() {
                    table.insert(ShortString::from(format!("k{i}")), value);
                }
                AMQPValue::FieldTable(table)
            }),
        ]
    })
}

/// A valid number header in one of the forms publishers use.
fn number_header(n: u64) -> impl Strategy<Value = AMQPValue> {
    let mut forms = vec![
        Just(long_string(&n.to_string())).boxed(),
        Just(long_string(&format!(" {n} "))).boxed(),
        Just(AMQPValue::ShortString(ShortString::from(n.to_string()))).boxed(),
    ];
    if let Ok(n) = i64::try_from(n) {
        forms.push(Just(AMQPValue::LongLongInt(n)).boxed());
    }
    if let Ok(n) = u32::try_from(n) {
        forms.push(Just(AMQPValue::LongUInt(n)).boxed());
    }
    if let Ok(n) = i32::try_from(n) {
        forms.push(Just(AMQPValue::LongInt(n)).boxed());
    }
    if let Ok(n) = u8::try_from(n) {
        forms.push(Just(AMQPValue::ShortShortUInt(n)).boxed());
    }
    prop::strategy::Union::new(forms)
}

fn session_header(session: UploadId) -> impl Strategy<Value = AMQPValue> {
    let uuid = session.as_uuid();
    prop_oneof![
        Just(long_string(&uuid.to_string())),
        Just(long_string(&uuid.simple().to_string())),
        Just(AMQPValue::ShortString(ShortString::from(uuid.to_string()))),
    ]
}

/// Valid chunk headers for a body of `length` bytes, in varied AMQP types: the headers and what
/// they say.
fn valid_headers() -> impl Strategy<Value = (FieldTable, usize, ChunkHeaders)> {
    (any::<u128>(), any::<u64>(), 0usize..4096).prop_flat_map(|(uuid, start, length)| {
        let session = UploadId::from_uuid(Uuid::from_u128(uuid));
        (
            session_header(session),
            number_header(start),
            number_header(length as u64),
            prop::option::of(nasty_string()),
        )
            .prop_map(
                move |(session_value, start_value, size_value, correlation)| {
                    let mut table = FieldTable::default();
                    table.insert("x-session-id".into(), session_value);
                    table.insert("x-start-byte".into(), start_value);
                    table.insert("x-size".into(), size_value);
                    if let Some(correlation) = correlation {
                        table.insert("x-correlation-id".into(), long_string(&correlation));
                    }
                    let expected = ChunkHeaders {
                        session,
                        start,
                        size: length as u64,
                    };
                    (table, length, expected)
                },
            )
    })
}

/// Valid headers with some replaced by any value or removed, and unknown ones added.
fn near_valid_headers() -> impl Strategy<Value = (FieldTable, usize)> {
    (
        valid_headers(),
        prop::collection::vec(
            (
                prop::sample::select(
                    &[
                        "x-session-id",
                        "x-start-byte",
                        "x-size",
                        "x-correlation-id",
                        "x-other",
                    ][..],
                ),
                prop::option::of(amqp_value()),
            ),
            1..4,
        ),
        prop::option::of(0usize..8192),
    )
        .prop_map(|((mut table, length, _), changes, other_length)| {
            for (name, value) in changes {
                match value {
                    Some(value) => {
                        table.insert(name.into(), value);
                    }
                    None => {
                        let mut kept = FieldTable::default();
                        for (key, value) in table.inner() {
                            if key.as_str() != name {
                                kept.insert(key.clone(), value.clone());
                            }
                        }
                        table = kept;
                    }
                }
            }
            (table, other_length.unwrap_or(length))
        })
}

/// A refusal has a known code and says why; a reply to any chunk can be built and echoes the
/// chunk's correlation id.
fn check_chunk(table: Option<&FieldTable>, length: usize) {
    let reply = match parse_headers(table, length) {
        Ok(headers) => {
            assert_eq!(headers.size, length as u64);
            Reply::Ack {
                offset: headers.start.saturating_add(headers.size),
            }
        }
        Err(Reply::Nack { error, message }) => {
            assert!(
                HEADER_CODES.contains(&error),
                "{error} is not a header refusal"
            );
            assert!(!message.is_empty(), "{error} without a message");
            Reply::Nack { error, message }
        }
        Err(ack) => panic!("a refusal that is an ack: {ack:?}"),
    };
    let properties = reply_properties(table, &reply);
    let headers = properties.headers().clone().unwrap_or_default();
    let get = |name: &str| headers.inner().get(&ShortString::from(name)).cloned();
    match &reply {
        Reply::Ack { .. } => assert_eq!(get("x-status"), Some(long_string("ack"))),
        Reply::Nack { error, .. } => {
            assert_eq!(get("x-status"), Some(long_string("nack")));
            let Some(AMQPValue::LongString(code)) = get("x-error") else {
                panic!("no x-error")
            };
            let code = String::from_utf8_lossy(code.as_bytes()).into_owned();
            assert!(NACK_CODES.contains(&code.as_str()), "{code}");
            assert_eq!(code, *error);
        }
    }
    let sent = table.and_then(|t| t.inner().get(&ShortString::from("x-correlation-id")));
    if let Some(AMQPValue::LongString(sent)) = sent
        && let Ok(text) = std::str::from_utf8(sent.as_bytes())
    {
        assert_eq!(get("x-correlation-id"), Some(long_string(text)));
        let property = properties
            .correlation_id()
            .as_ref()
            .map(|c| c.as_str().to_owned());
        assert_eq!(property, (text.len() <= 255).then(|| text.to_owned()));
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_chunk_headers_are_read_or_refused_with_a_code(
        entries in prop::collection::vec(
            (
                prop_oneof![
                    prop::sample::select(
                        &["x-session-id", "x-start-byte", "x-size", "x-correlation-id"][..]
                    )
                    .prop_map(str::to_owned),
                    "[a-z-]{0,20}",
                ],
                amqp_value(),
            ),
            0..6,
        ),
        length in 0usize..100_000,
        absent in any::<bool>(),
    ) {
        let mut table = FieldTable::default();
        for (name, value) in entries {
            table.insert(ShortString::from(name), value);
        }
        check_chunk((!absent).then_some(&table), length);
    }

    #[test]
    fn near_valid_chunk_headers_are_read_or_refused_with_a_code((table, length) in near_valid_headers()) {
        check_chunk(Some(&table), length);
    }

    #[test]
    fn valid_chunk_headers_give_back_what_they_say((table, length, expected) in valid_headers()) {
        prop_assert_eq!(parse_headers(Some(&table), length), Ok(expected));
        check_chunk(Some(&table), length);
    }

    #[test]
    fn sizes_other_than_the_body_are_size_mismatches(
        (table, length, _) in valid_headers(),
        other in 0usize..8192,
    ) {
        prop_assume!(other != length);
        let refused = parse_headers(Some(&table), other);
        prop_assert!(
            matches!(refused, Err(Reply::Nack { error: "size-mismatch", .. })),
            "{:?}",
            refused
        );
    }
}

/// Found by `valid_chunk_headers_give_back_what_they_say` and
/// `near_valid_chunk_headers_are_read_or_refused_with_a_code`: a correlation id longer than an
/// AMQP short string (255 bytes) made building the reply panic (`ShortString::from`): the
/// session's task died with the chunk unacknowledged, holding one of the consumer's prefetch
/// slots until the connection closed, when the broker redelivered it to panic again.
#[test]
fn a_long_correlation_id_is_answered_in_the_header() {
    let long = "c".repeat(300);
    let mut table = FieldTable::default();
    table.insert("x-correlation-id".into(), long_string(&long));
    let reply = Reply::Nack {
        error: "bad-headers",
        message: "the x-session-id header is missing".into(),
    };
    let properties = reply_properties(Some(&table), &reply);
    assert_eq!(properties.correlation_id(), &None);
    let headers = properties.headers().clone().unwrap_or_default();
    assert_eq!(
        headers
            .inner()
            .get(&ShortString::from("x-correlation-id"))
            .cloned(),
        Some(long_string(&long))
    );
}
