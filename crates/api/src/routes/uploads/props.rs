//! Property tests of the tus header parsers (issue #11, hardening): `Tus-Resumable`,
//! `Upload-Length`/`Upload-Offset`/`Content-Length`, `Upload-Metadata` (and the processing
//! options it carries), `Upload-Checksum`, `Upload-Defer-Length` and the piece's content type.
//! Any header value never panics; every refusal is the API error with a documented code and
//! status; valid headers give back what they were built from.

use axum::http::HeaderValue;
use proptest::{prelude::*, test_runner::Config};

use super::*;

fn config() -> Config {
    Config {
        cases: 384,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Text that trips header parsers.
fn nasty_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(" ".to_owned()),
        Just("1.0.0".to_owned()),
        Just(" 1.0.0 ".to_owned()),
        Just("1.0".to_owned()),
        Just("0.2.2,1.0.0".to_owned()),
        Just("-1".to_owned()),
        Just("+5".to_owned()),
        Just("5 ".to_owned()),
        Just("0x10".to_owned()),
        Just("1e3".to_owned()),
        Just("NaN".to_owned()),
        Just("18446744073709551615".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("99999999999999999999999999".to_owned()),
        Just("sha1".to_owned()),
        Just("sha256 ".to_owned()),
        Just("filename".to_owned()),
        Just("filename ,".to_owned()),
        Just(",,,".to_owned()),
        Just("a YQ==,a Yg==".to_owned()),
        Just("filename Y2xpcC5tcDQ=,every MTBz".to_owned()),
        Just("filename //79".to_owned()),
        Just("application/offset+octet-stream; charset=x".to_owned()),
        "[ -~]{0,40}",
        "[0-9 ]{0,24}",
        "[a-z0-9+/= ,]{0,60}",
        "[a-z]{1,8}".prop_map(|s| s.repeat(500)),
    ]
}

/// Any bytes a header value may hold (visible ASCII, space, tab, and obs-text), biased to text.
fn header_value() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        nasty_text().prop_filter_map("a header value", |t| HeaderValue::from_str(&t).ok()),
        prop::collection::vec(prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff], 0..64)
            .prop_filter_map("a header value", |b| HeaderValue::from_bytes(&b).ok()),
    ]
}

fn with(pairs: &[(&'static str, HeaderValue)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.insert(HeaderName::from_static(name), value.clone());
    }
    headers
}

/// A refusal is the API's error with one of `codes`, at its documented status; 412 comes with
/// `Tus-Version`.
fn assert_refusal(refused: &Refused, codes: &[(&str, StatusCode)]) {
    let known = codes
        .iter()
        .any(|(code, status)| refused.error.code == *code && refused.error.status == *status);
    assert!(
        known,
        "{} {} is not one of {codes:?}",
        refused.error.status, refused.error.code
    );
    assert!(!refused.error.message.is_empty());
    assert_eq!(
        refused.tus_version,
        refused.error.status == StatusCode::PRECONDITION_FAILED
    );
}

const INVALID_HEADER: (&str, StatusCode) = ("invalid-header", StatusCode::BAD_REQUEST);

/// A tus metadata key: what clients send (no spaces or commas), ASCII.
fn metadata_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(&["filename", "name", "every", "mode", "format", "filetype"][..])
            .prop_map(str::to_owned),
        "[!-+\\--~]{1,20}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn tus_resumable_is_one_version(value in prop::option::of(header_value())) {
        let headers = value.iter().map(|v| ("tus-resumable", v.clone())).collect::<Vec<_>>();
        let spoken = value.as_ref().and_then(|v| v.to_str().ok()).map(str::trim);
        match check_version(&with(&headers)) {
            Ok(()) => prop_assert_eq!(spoken, Some("1.0.0")),
            Err(refused) => {
                prop_assert_ne!(spoken, Some("1.0.0"));
                assert_refusal(&refused, &[("unsupported-version", StatusCode::PRECONDITION_FAILED)]);
            }
        }
    }

    #[test]
    fn offsets_and_lengths_are_non_negative_integers(value in prop::option::of(header_value())) {
        let headers = value.iter().map(|v| ("upload-offset", v.clone())).collect::<Vec<_>>();
        match number(&with(&headers), &UPLOAD_OFFSET) {
            Ok(None) => prop_assert!(value.is_none()),
            Ok(Some(n)) => {
                let text = value.as_ref().and_then(|v| v.to_str().ok()).unwrap_or_default().trim();
                prop_assert!(text.bytes().all(|b| b.is_ascii_digit()), "{text:?}");
                prop_assert_eq!(text.parse::<u64>().ok(), Some(n));
            }
            Err(refused) => assert_refusal(&refused, &[INVALID_HEADER]),
        }
    }

    #[test]
    fn any_integer_is_read_back(n in any::<u64>(), before in "[ \t]{0,2}", after in "[ \t]{0,2}") {
        let value = HeaderValue::from_str(&format!("{before}{n}{after}")).unwrap_or_else(|e| panic!("{e}"));
        let read = number(&with(&[("upload-length", value)]), &UPLOAD_LENGTH);
        prop_assert_eq!(read.ok().flatten(), Some(n));
    }

    #[test]
    fn any_metadata_is_read_or_refused_as_an_invalid_header(value in header_value()) {
        match parse_metadata(&value) {
            Ok(metadata) => {
                // What is read is what is shown back, and reads the same again.
                let shown = value_of(&encode_metadata(&metadata));
                prop_assert_eq!(parse_metadata(&shown).ok(), Some(metadata));
            }
            Err(refused) => assert_refusal(&refused, &[INVALID_HEADER]),
        }
    }

    #[test]
    fn metadata_round_trips(metadata in prop::collection::btree_map(metadata_key(), any::<String>(), 0..6)) {
        let encoded = value_of(&encode_metadata(&metadata));
        prop_assert_eq!(parse_metadata(&encoded).ok(), Some(metadata));
    }

    #[test]
    fn checksums_are_read_or_refused_as_an_invalid_header(value in prop::option::of(header_value())) {
        let headers = value.iter().map(|v| ("upload-checksum", v.clone())).collect::<Vec<_>>();
        match checksum(&with(&headers)) {
            Ok(None) => prop_assert!(value.is_none()),
            Ok(Some(parsed)) => prop_assert_eq!(parsed.digest.len(), parsed.algorithm.digest_len()),
            Err(refused) => assert_refusal(&refused, &[INVALID_HEADER]),
        }
    }

    #[test]
    fn checksums_round_trip(
        algorithm in prop::sample::select(&ChecksumAlgorithm::ALL[..]),
        seed in any::<[u8; 32]>(),
        upper in any::<bool>(),
    ) {
        let digest = seed[..algorithm.digest_len()].to_vec();
        let name = if upper { algorithm.as_str().to_ascii_uppercase() } else { algorithm.as_str().to_owned() };
        let text = format!("{name} {}", STANDARD.encode(&digest));
        let parsed = checksum(&with(&[("upload-checksum", value_of(&text))]));
        prop_assert_eq!(parsed.ok().flatten(), Some(Checksum { algorithm, digest }));
    }

    #[test]
    fn creation_headers_are_read_or_refused_with_a_code(
        length in prop::option::of(header_value()),
        defer in prop::option::of(header_value()),
        metadata in prop::option::of(header_value()),
        max in prop::option::of(any::<u64>()),
    ) {
        let mut pairs = Vec::new();
        pairs.extend(length.map(|v| ("upload-length", v)));
        pairs.extend(defer.map(|v| ("upload-defer-length", v)));
        pairs.extend(metadata.map(|v| ("upload-metadata", v)));
        match declared(&with(&pairs), max) {
            Ok((total, _)) => prop_assert!(max.is_none_or(|max| total <= max)),
            Err(refused) => assert_refusal(
                &refused,
                &[INVALID_HEADER, ("too-large", StatusCode::PAYLOAD_TOO_LARGE)],
            ),
        }
    }

    #[test]
    fn valid_creation_headers_give_back_length_and_metadata(
        total in any::<u64>(),
        metadata in prop::collection::btree_map(metadata_key(), any::<String>(), 0..6),
    ) {
        let headers = with(&[
            ("upload-length", HeaderValue::from(total)),
            ("upload-metadata", value_of(&encode_metadata(&metadata))),
        ]);
        let read = declared(&headers, Some(total)).ok();
        prop_assert_eq!(read, Some((total, metadata)));
    }

    #[test]
    fn pieces_are_offset_octet_streams_or_refused_with_a_code(
        content_type in prop::option::of(prop_oneof![
            Just(HeaderValue::from_static(OFFSET_OCTET_STREAM)),
            Just(HeaderValue::from_static("Application/Offset+Octet-Stream; x=1")),
            header_value(),
        ]),
        content_length in prop::option::of(header_value()),
        chunked in any::<bool>(),
        body in prop::collection::vec(any::<u8>(), 0..4),
        required in any::<bool>(),
    ) {
        let mut pairs = Vec::new();
        pairs.extend(content_type.map(|v| ("content-type", v)));
        pairs.extend(content_length.map(|v| ("content-length", v)));
        if chunked {
            pairs.push(("transfer-encoding", HeaderValue::from_static("chunked")));
        }
        let body = Body::from(body);
        match piece(&with(&pairs), &body, required) {
            Ok(found) => prop_assert!(!required || found.is_some()),
            Err(refused) => assert_refusal(
                &refused,
                &[INVALID_HEADER, ("unsupported-media-type", StatusCode::UNSUPPORTED_MEDIA_TYPE)],
            ),
        }
    }

    #[test]
    fn metadata_options_are_valid_or_named_under_metadata(
        every in prop::option::of(prop_oneof![nasty_text(), (1u32..100_000).prop_map(|n| format!("{n}s"))]),
        mode in prop::option::of(prop_oneof![nasty_text(), Just("keyframe".to_owned())]),
        format in prop::option::of(prop_oneof![nasty_text(), Just("PNG".to_owned())]),
    ) {
        let mut metadata = BTreeMap::new();
        metadata.extend(every.map(|v| ("every".to_owned(), v)));
        metadata.extend(mode.map(|v| ("mode".to_owned(), v)));
        metadata.extend(format.map(|v| ("format".to_owned(), v)));
        let mut fields = BTreeMap::new();
        let chosen = options(requested(&metadata), "metadata", &mut fields);
        for (field, message) in &fields {
            prop_assert!(
                ["metadata.every", "metadata.mode", "metadata.format"].contains(&field.as_str()),
                "{field}: {message}"
            );
            prop_assert!(metadata.contains_key(field.trim_start_matches("metadata.")));
        }
        let seconds = chosen.every.seconds();
        prop_assert!(seconds.is_finite() && seconds > 0.0);
    }

    #[test]
    fn every_in_seconds_is_the_interval_chosen(tenths in 1u64..10_000_000, unit in any::<bool>()) {
        let seconds = tenths as f64 / 10.0;
        let text = if unit { format!("{seconds}s") } else { seconds.to_string() };
        let metadata = BTreeMap::from([("every".to_owned(), text)]);
        let mut fields = BTreeMap::new();
        let chosen = options(requested(&metadata), "metadata", &mut fields);
        prop_assert!(fields.is_empty(), "{fields:?}");
        prop_assert_eq!(chosen.every.seconds(), seconds);
    }
}

fn value_of(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}
