//! Property tests of signed blob URLs (issue #11, hardening): the `expires` and `signature`
//! query and the key in the path, as the blob routes read them. Any URL is answered, never with
//! a panic, and every refusal is the API's JSON error with a documented code and status; a URL
//! the signer made works for its method and key, and only for them.

#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode},
};
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::{prelude::*, test_runner::Config};
use sha2::Sha256;
use tempfile::TempDir;
use tokio::runtime::Runtime;
use tower::ServiceExt;
use vidsnap_domain::{PortResult, UploadListener, UploadOutcome};
use vidsnap_storage::{
    LocalStore, UrlSigner,
    signed::{Refusal, routes},
};

const SECRET: &[u8] = b"props secret";

fn config() -> Config {
    Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Every code a blob route answers with, and its status.
const CODES: &[(&str, StatusCode)] = &[
    ("signature-mismatch", StatusCode::FORBIDDEN),
    ("url-expired", StatusCode::FORBIDDEN),
    ("invalid-key", StatusCode::BAD_REQUEST),
    ("not-found", StatusCode::NOT_FOUND),
    ("invalid-state", StatusCode::CONFLICT),
    ("too-large", StatusCode::PAYLOAD_TOO_LARGE),
    ("incomplete-body", StatusCode::BAD_REQUEST),
    ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
    ("internal", StatusCode::INTERNAL_SERVER_ERROR),
];

struct Ignore;

#[async_trait]
impl UploadListener for Ignore {
    async fn uploaded(&self, _key: &str, _size: u64) -> PortResult<UploadOutcome> {
        Ok(UploadOutcome::NotAnUpload)
    }
}

/// The blob routes on a store in a new directory, and a runtime to call them on.
struct App {
    router: Router,
    signer: UrlSigner,
    runtime: Runtime,
    _root: TempDir,
}

impl App {
    fn new() -> App {
        let root = tempfile::tempdir().unwrap();
        let signer = UrlSigner::new(SECRET.to_vec(), "http://h");
        let store = LocalStore::open(root.path().join("blobs"), signer.clone()).unwrap();
        let router = routes(
            Arc::new(store),
            signer.clone(),
            Arc::new(Ignore),
            Some(1 << 20),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        App {
            router,
            signer,
            runtime,
            _root: root,
        }
    }

    /// The status and body of `method uri`.
    fn send(&self, method: &str, uri: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body))
            .unwrap();
        self.runtime.block_on(async {
            let response = self.router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, bytes.to_vec())
        })
    }
}

/// A refusal is `{"error": {"code", "message"}}` with a documented code at its status.
fn assert_coded(status: StatusCode, body: &[u8], uri: &str) {
    let text = String::from_utf8_lossy(body);
    let json: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("{uri}: {status} is not JSON: {text:?}"));
    let code = json["error"]["code"].as_str().unwrap_or_default();
    assert!(
        CODES.contains(&(code, status)),
        "{uri}: {status} {code:?} is not documented: {text}"
    );
    assert!(json["error"]["message"].is_string(), "{uri}: {text}");
}

/// A signature the way the signer makes one, for URLs it would not hand out (expired ones).
fn signature(method: &str, key: &str, expires: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
    mac.update(format!("{method}\n{key}\n{expires}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn nasty_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("NaN".to_owned()),
        Just("-1".to_owned()),
        Just("+1".to_owned()),
        Just("1e10".to_owned()),
        Just("9223372036854775807".to_owned()),
        Just("-9223372036854775808".to_owned()),
        Just("9223372036854775808".to_owned()),
        Just("99999999999999999999999".to_owned()),
        Just("%FF".to_owned()),
        Just("%".to_owned()),
        Just("%00".to_owned()),
        Just("a%2Fb".to_owned()),
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just("%2E%2E".to_owned()),
        Just("動画".to_owned()),
        Just("0".repeat(64)),
        any::<i64>().prop_map(|n| n.to_string()),
        "[0-9a-f]{0,70}",
        "[ -~]{0,24}",
        "\\PC{0,12}",
        "[a-z]{1,8}".prop_map(|s| s.repeat(200)),
    ]
}

/// A blob key the store accepts: 1 to 3 plain segments.
fn key() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof!["[a-zA-Z0-9 ._()~-]{1,12}", "\\PC{1,6}"].prop_filter("a plain segment", |s| {
            s != "." && s != ".." && !s.contains(['/', '\\']) && !s.chars().any(char::is_control)
        }),
        1..4,
    )
    .prop_map(|segments| segments.join("/"))
    .prop_filter("a valid key", |k| vidsnap_storage::key::check(k).is_ok())
}

/// The path and query of a URL the signer handed out.
fn path_and_query(url: &str) -> &str {
    url.strip_prefix("http://h").unwrap()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_signed_url_query_is_answered_with_a_code(
        method in prop::sample::select(&["GET", "PUT"][..]),
        path in prop::collection::vec(nasty_text(), 1..4),
        params in prop::collection::vec(
            (
                prop_oneof![
                    Just("expires".to_owned()),
                    Just("signature".to_owned()),
                    "[a-z%]{0,6}",
                ],
                prop::option::of(nasty_text()),
            ),
            0..5,
        ),
        encode in any::<bool>(),
    ) {
        let app = App::new();
        let path: Vec<String> = path
            .iter()
            .map(|s| if encode { utf8_percent_encode(s, NON_ALPHANUMERIC).to_string() } else { s.clone() })
            .collect();
        let query: Vec<String> = params
            .iter()
            .map(|(name, value)| match value {
                Some(value) => format!("{name}={}", if encode { utf8_percent_encode(value, NON_ALPHANUMERIC).to_string() } else { value.clone() }),
                None => name.clone(),
            })
            .collect();
        let uri = format!("/v1/blobs/{}?{}", path.join("/"), query.join("&"));
        // Only what an HTTP client can send, to these routes: a URI that parses, whose path
        // names a key (an unrouted path is the API's fallback's to answer).
        let parsed = uri.parse::<axum::http::Uri>();
        prop_assume!(parsed.is_ok_and(|u| u.path().len() > "/v1/blobs/".len()));
        let (status, body) = app.send(method, &uri, b"bytes".to_vec());
        prop_assert!(!status.is_success(), "{uri}: an unsigned URL was served");
        assert_coded(status, &body, &uri);
    }

    #[test]
    fn signatures_the_signer_did_not_make_are_refused(
        key in key(),
        expires in any::<i64>(),
        signature in nasty_text(),
    ) {
        let signer = UrlSigner::new(SECRET.to_vec(), "http://h");
        prop_assume!(signature != self::signature("GET", &key, expires));
        prop_assert_eq!(signer.verify("GET", &key, expires, &signature), Err(Refusal::BadSignature));
    }

    #[test]
    fn a_signed_url_works_for_its_method_and_key_only(
        key in key(),
        other in key(),
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        ttl in 1u64..(10 * 365 * 86_400),
    ) {
        let app = App::new();
        let put = app.signer.sign("PUT", &key, Duration::from_secs(ttl));
        let (status, body) = app.send("PUT", path_and_query(&put.url), bytes.clone());
        prop_assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let get = app.signer.sign("GET", &key, Duration::from_secs(ttl));
        let (status, body) = app.send("GET", path_and_query(&get.url), Vec::new());
        prop_assert_eq!(status, StatusCode::OK);
        prop_assert_eq!(body, bytes);
        // The PUT's URL does not read, and the GET's does not name another key.
        let (status, body) = app.send("GET", path_and_query(&put.url), Vec::new());
        prop_assert_eq!(status, StatusCode::FORBIDDEN);
        assert_coded(status, &body, &put.url);
        prop_assume!(other != key);
        let query = get.url.split_once('?').unwrap().1;
        let moved = format!("/v1/blobs/{}?{query}", utf8_percent_encode(&other, NON_ALPHANUMERIC));
        let (status, body) = app.send("GET", &moved, Vec::new());
        prop_assert_eq!(status, StatusCode::FORBIDDEN);
        assert_coded(status, &body, &moved);
    }

    #[test]
    fn an_expired_signature_is_url_expired(key in key(), ago in 1i64..(1 << 40)) {
        let app = App::new();
        let expires = chrono::Utc::now().timestamp() - ago;
        let uri = format!(
            "/v1/blobs/{}?expires={expires}&signature={}",
            utf8_percent_encode(&key, NON_ALPHANUMERIC),
            signature("GET", &key, expires)
        );
        let (status, body) = app.send("GET", &uri, Vec::new());
        assert_coded(status, &body, &uri);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        prop_assert_eq!(json["error"]["code"].as_str(), Some("url-expired"));
    }
}

/// Found by `any_signed_url_query_is_answered_with_a_code`: a key whose percent-escapes are not
/// UTF-8 was refused by axum's path extractor, in plain text (`Invalid URL: Invalid UTF-8 in
/// key`), not as the API's JSON error.
#[test]
fn a_key_that_is_not_utf8_is_an_invalid_key() {
    let app = App::new();
    for method in ["GET", "PUT"] {
        let uri = "/v1/blobs/u/v/%FF.mp4?expires=1&signature=00";
        let (status, body) = app.send(method, uri, b"bytes".to_vec());
        assert_coded(status, &body, uri);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["code"], "invalid-key", "{method}");
    }
}
