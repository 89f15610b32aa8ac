//! Browser sessions through the router: the cookie's attributes, the cookie accepted like a
//! token, writes it authenticates refused from other origins (`csrf-refused`) and accepted from
//! the service's own, tokens and API keys unaffected by `Origin`. Every answer is checked
//! against the description.

#![allow(clippy::unwrap_used)]

use axum::http::StatusCode as S;
use serde_json::{Value, json};

use crate::openapi::support::{Answer, TestApp, spawn_app, spawn_app_with};

const HOST: &str = "vidsnap.test:8080";
const OWN: &str = "http://vidsnap.test:8080";
const OTHER: &str = "http://vidsnap.test:9090";

fn credentials() -> Value {
    json!({"email": "ada@example.com", "password": "correct horse battery"})
}

/// Registers Ada and signs her browser in from a page of `OWN` (or the `origin` in `extra`);
/// returns the access token and the `Set-Cookie` value.
async fn signed_in(app: &TestApp, extra: &[(&str, String)]) -> (String, String) {
    let tokens = app
        .client(None)
        .call(S::CREATED, "POST /v1/auth/register", Some(credentials()))
        .await;
    let cookie = browser_sign_in(app, extra).await;
    (tokens["access_token"].as_str().unwrap().to_owned(), cookie)
}

/// Signs Ada's (registered) browser in from a page of `OWN` (or the `origin` in `extra`);
/// returns the `Set-Cookie` value. Each call is another browser's session.
async fn browser_sign_in(app: &TestApp, extra: &[(&str, String)]) -> String {
    let mut headers = vec![
        ("content-type", "application/json".to_owned()),
        ("host", HOST.to_owned()),
    ];
    if !extra.iter().any(|(name, _)| *name == "origin") {
        headers.push(("origin", OWN.to_owned()));
    }
    headers.extend(extra.iter().cloned());
    let answer = app
        .client(None)
        .call_raw(
            S::OK,
            "POST /v1/auth/session",
            &headers,
            credentials().to_string().into_bytes(),
        )
        .await;
    assert_eq!(answer.body["email"], "ada@example.com");
    answer.headers["set-cookie"].to_str().unwrap().to_owned()
}

/// `name=value` of a `Set-Cookie`, as a browser sends it back.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

/// `request` with the session cookie, as a browser on `origin` would send it (`None`: no
/// `Origin` at all).
async fn with_cookie(
    app: &TestApp,
    expected: S,
    request: &str,
    cookie: &str,
    origin: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut headers = vec![("host", HOST.to_owned()), ("cookie", cookie_pair(cookie))];
    if let Some(origin) = origin {
        headers.push(("origin", origin.to_owned()));
    }
    if body.is_some() {
        headers.push(("content-type", "application/json".to_owned()));
    }
    let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    app.client(None)
        .call_raw(expected, request, &headers, body)
        .await
}

#[tokio::test]
async fn the_session_cookie_is_http_only_strict_and_not_secure_over_plain_http() {
    let app = spawn_app().await;
    let (_, cookie) = signed_in(&app, &[]).await;
    let attributes: Vec<&str> = cookie.split(';').map(str::trim).collect();
    assert!(attributes[0].starts_with("vidsnap_session="), "{cookie}");
    for expected in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(
            attributes.contains(&expected),
            "{expected} missing: {cookie}"
        );
    }
    assert!(!attributes.contains(&"Secure"), "{cookie}");
    let me = with_cookie(&app, S::OK, "GET /v1/me", &cookie, None, None).await;
    assert_eq!(me.body["email"], "ada@example.com");
}

#[tokio::test]
async fn the_cookie_is_secure_behind_a_trusted_https_proxy_or_an_https_public_url() {
    let https = [("x-forwarded-proto", "https".to_owned())];
    let trusting = spawn_app_with(|s| vidsnap_api::ApiSettings {
        trust_forwarded_proto: true,
        ..s
    })
    .await;
    // The proxy's scheme is the page's: its origin is https.
    let mut headers = https.to_vec();
    headers.push(("origin", "https://vidsnap.test:8080".to_owned()));
    let (_, cookie) = signed_in(&trusting, &headers).await;
    assert!(cookie.ends_with("; Secure"), "{cookie}");

    let public = spawn_app_with(|s| vidsnap_api::ApiSettings {
        public_https: true,
        ..s
    })
    .await;
    let (_, cookie) = signed_in(
        &public,
        &[("origin", "https://vidsnap.test:8080".to_owned())],
    )
    .await;
    assert!(cookie.ends_with("; Secure"), "{cookie}");

    // An untrusted X-Forwarded-Proto is anyone's to send: no Secure.
    let plain = spawn_app().await;
    let (_, cookie) = signed_in(&plain, &https).await;
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn writes_with_the_cookie_are_refused_from_other_origins_and_accepted_from_its_own() {
    let app = spawn_app().await;
    let (_, cookie) = signed_in(&app, &[]).await;
    let key = json!({"name": "browser"});
    for origin in [Some(OTHER), Some("null"), None] {
        let refused = with_cookie(
            &app,
            S::FORBIDDEN,
            "POST /v1/api-keys",
            &cookie,
            origin,
            Some(key.clone()),
        )
        .await;
        assert_eq!(refused.body["error"]["code"], "csrf-refused", "{origin:?}");
    }
    // A form's Referer names the origin when Origin is missing.
    let mut headers = vec![
        ("host", HOST.to_owned()),
        ("cookie", cookie_pair(&cookie)),
        ("referer", format!("{OTHER}/evil.html")),
    ];
    app.client(None)
        .call_raw(
            S::FORBIDDEN,
            "DELETE /v1/api-keys/00000000-0000-0000-0000-000000000000",
            &headers,
            vec![],
        )
        .await;
    headers[2] = ("referer", format!("{OWN}/account/keys"));
    app.client(None)
        .call_raw(
            S::NOT_FOUND,
            "DELETE /v1/api-keys/00000000-0000-0000-0000-000000000000",
            &headers,
            vec![],
        )
        .await;

    let created = with_cookie(
        &app,
        S::CREATED,
        "POST /v1/api-keys",
        &cookie,
        Some(OWN),
        Some(key),
    )
    .await;
    let id = created.body["id"].as_str().unwrap();
    // Reads are not writes: another origin's page can send them, but without CORS grants
    // for credentials its script cannot read the answer (the browser tests show that).
    let keys = with_cookie(&app, S::OK, "GET /v1/api-keys", &cookie, Some(OTHER), None).await;
    assert_eq!(
        keys.body.as_array().unwrap().len(),
        1,
        "only the same-origin key"
    );
    with_cookie(
        &app,
        S::NO_CONTENT,
        &format!("DELETE /v1/api-keys/{id}"),
        &cookie,
        Some(OWN),
        None,
    )
    .await;
}

#[tokio::test]
async fn tokens_and_api_keys_are_unaffected_by_origin() {
    let app = spawn_app().await;
    let (token, cookie) = signed_in(&app, &[]).await;
    let headers = [
        ("host", HOST.to_owned()),
        ("origin", OTHER.to_owned()),
        ("content-type", "application/json".to_owned()),
    ];
    let body = || json!({"name": "ci"}).to_string().into_bytes();
    let created = app
        .client(Some(&token))
        .call_raw(S::CREATED, "POST /v1/api-keys", &headers, body())
        .await;
    let key = created.body["key"].as_str().unwrap();
    // The header wins over the cookie: a bearer request is judged as one.
    let mut with_both = headers.to_vec();
    with_both.push(("cookie", cookie_pair(&cookie)));
    app.client(Some(key))
        .call_raw(S::CREATED, "POST /v1/api-keys", &with_both, body())
        .await;
    // A session token is not an access token.
    let session = cookie_pair(&cookie).split_once('=').unwrap().1.to_owned();
    app.client(Some(&session))
        .call(S::UNAUTHORIZED, "GET /v1/me", None)
        .await;
}

#[tokio::test]
async fn signing_in_from_another_origin_is_refused_and_signing_out_revokes_the_session() {
    let app = spawn_app().await;
    let (_, cookie) = signed_in(&app, &[]).await;
    let headers = [
        ("host", HOST.to_owned()),
        ("origin", OTHER.to_owned()),
        ("content-type", "application/json".to_owned()),
    ];
    let refused = app
        .client(None)
        .call_raw(
            S::FORBIDDEN,
            "POST /v1/auth/session",
            &headers,
            credentials().to_string().into_bytes(),
        )
        .await;
    assert_eq!(refused.body["error"]["code"], "csrf-refused");
    assert!(refused.headers.get("set-cookie").is_none());

    let out = with_cookie(
        &app,
        S::NO_CONTENT,
        "DELETE /v1/auth/session",
        &cookie,
        Some(OWN),
        None,
    )
    .await;
    let cleared = out.headers["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("vidsnap_session=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    // A copy of the signed-out cookie is refused; another browser's session is not.
    let other_browser = browser_sign_in(&app, &[]).await;
    let gone = with_cookie(&app, S::UNAUTHORIZED, "GET /v1/me", &cookie, None, None).await;
    assert_eq!(gone.body["error"]["code"], "unauthorized");
    with_cookie(&app, S::OK, "GET /v1/me", &other_browser, None, None).await;
    // Signing out twice is harmless.
    with_cookie(
        &app,
        S::NO_CONTENT,
        "DELETE /v1/auth/session",
        &cookie,
        Some(OWN),
        None,
    )
    .await;
    // A wrong password sets nothing.
    let wrong = json!({"email": "ada@example.com", "password": "not the password"});
    let answer = app
        .client(None)
        .call_raw(
            S::UNAUTHORIZED,
            "POST /v1/auth/session",
            &[("content-type", "application/json".to_owned())],
            wrong.to_string().into_bytes(),
        )
        .await;
    assert!(answer.headers.get("set-cookie").is_none());
}
