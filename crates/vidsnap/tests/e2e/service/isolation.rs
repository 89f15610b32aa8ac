//! Users cannot see or touch each other's videos (a 404, the same as a missing video), and signed
//! URLs are refused when tampered with or expired.

#![allow(clippy::unwrap_used)]

use reqwest::{Method, StatusCode};

use super::support::App;
use crate::support::clip;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_video_is_a_404_on_every_route() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &[]).await;
    let ana = app.register("ana@example.com").await;
    let bo = app.register("bo@example.com").await;
    let id = app.upload(&ana, &clip("short3.mp4"), "a.mp4", "1s").await;
    app.wait_for_status(&ana, &id, "succeeded").await;
    let missing = vidsnap_domain::VideoId::new().to_string();

    for (method, path) in [
        (Method::GET, "/v1/videos/{id}"),
        (Method::DELETE, "/v1/videos/{id}"),
        (Method::POST, "/v1/videos/{id}/retry"),
        (Method::POST, "/v1/videos/{id}/uploaded"),
        (Method::GET, "/v1/videos/{id}/events"),
    ] {
        let theirs = app
            .call(method.clone(), &path.replace("{id}", &id), Some(&bo), None)
            .await;
        let nobodys = app
            .call(
                method.clone(),
                &path.replace("{id}", &missing),
                Some(&bo),
                None,
            )
            .await;
        assert_eq!(
            theirs.0,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            theirs.1
        );
        assert_eq!(
            theirs, nobodys,
            "{method} {path}: indistinguishable from a missing video"
        );
    }
    let (_, list) = app.call(Method::GET, "/v1/videos", Some(&bo), None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    // Still there for its owner.
    assert_eq!(app.video(&ana, &id).await["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_expired_signed_urls_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(
        data.path(),
        &[("VIDSNAP_API__DOWNLOAD_URL_SECONDS", "1".into())],
    )
    .await;
    let token = app.register("ana@example.com").await;
    let created = app
        .create(&token, serde_json::json!({"file_name": "a.mp4"}))
        .await;
    let url = created["upload"]["url"].as_str().unwrap().to_owned();
    let id = created["video"]["id"].as_str().unwrap();
    let body = std::fs::read(clip("short3.mp4")).unwrap();

    // Another object, another signature, a later expiry: all refused, nothing stored.
    let other_key = url.replace("/a.mp4?", "/b.mp4?");
    let flipped = {
        let (head, signature) = url.rsplit_once("signature=").unwrap();
        let last = if signature.ends_with('0') { '1' } else { '0' };
        format!(
            "{head}signature={}{last}",
            &signature[..signature.len() - 1]
        )
    };
    let later = {
        let expires: i64 = url
            .split("expires=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        url.replace(
            &format!("expires={expires}"),
            &format!("expires={}", expires + 3600),
        )
    };
    // And one without its signature (or expiry) at all: the same JSON 403, not a plain-text 400.
    let unsigned = url.split('?').next().unwrap().to_owned();
    let no_expiry = {
        let (base, query) = url.split_once('?').unwrap();
        let kept: Vec<&str> = query
            .split('&')
            .filter(|part| !part.starts_with("expires="))
            .collect();
        format!("{base}?{}", kept.join("&"))
    };
    for tampered in [other_key, flipped, later, unsigned, no_expiry] {
        let response = app
            .http
            .put(&tampered)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{tampered}");
        let error: serde_json::Value =
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert!(error["error"]["code"].is_string(), "{tampered}: {error}");
    }
    // Listings refuse a cursor they did not give.
    for path in ["/v1/videos?cursor=garbage", "/v1/jobs?cursor=garbage"] {
        let (status, answer) = app
            .call(reqwest::Method::GET, path, Some(&token), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid-cursor");
    }

    assert_eq!(app.video(&token, id).await["status"], "awaiting_upload");

    // The genuine URL works; its download links expire after a second.
    let response = app.http.put(&url).body(body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let video = app.wait_for_status(&token, id, "succeeded").await;
    let zip_url = video["outputs"]["zip"]["url"].as_str().unwrap().to_owned();
    let put_instead = app.http.put(&zip_url).body("x").send().await.unwrap();
    assert_eq!(
        put_instead.status(),
        StatusCode::FORBIDDEN,
        "a GET URL is not a PUT URL"
    );
    let expires: i64 = zip_url
        .split("expires=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // Wait (by the clock, not a guess) until the expiry has passed.
    while chrono::Utc::now().timestamp() <= expires {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let response = app.http.get(&zip_url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_url_writes_only_while_its_video_waits_for_it() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &[]).await;
    let token = app.register("ana@example.com").await;
    let body = std::fs::read(clip("short3.mp4")).unwrap();
    let blobs = data.path().join("blobs");

    // A deleted video's URL still verifies, but writes nothing.
    let gone = app
        .create(&token, serde_json::json!({"file_name": "gone.mp4"}))
        .await;
    let url = gone["upload"]["url"].as_str().unwrap().to_owned();
    let id = gone["video"]["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/videos/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let response = app.http.put(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let written: Vec<_> = walk(&blobs)
        .into_iter()
        .filter(|path| path.to_string_lossy().contains(&id))
        .collect();
    assert!(
        written.is_empty(),
        "nothing of the deleted video: {written:?}"
    );

    // A second PUT to a video whose upload arrived is refused; its source stays the first.
    let kept = app
        .create(&token, serde_json::json!({"file_name": "kept.mp4"}))
        .await;
    let url = kept["upload"]["url"].as_str().unwrap().to_owned();
    let response = app.http.put(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .http
        .put(&url)
        .body(b"other bytes".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let id = kept["video"]["id"].as_str().unwrap();
    let source = walk(&blobs)
        .into_iter()
        .find(|path| path.ends_with(format!("{id}/kept.mp4")))
        .expect("the source");
    assert_eq!(std::fs::read(source).unwrap(), body);
}

/// Every file below `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_throttled_per_account() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(
        data.path(),
        &[("VIDSNAP_API__LOGIN_LIMITS__PER_ACCOUNT", "3".into())],
    )
    .await;
    app.register("ana@example.com").await;
    app.register("bob@example.com").await;
    let login =
        |email: &str, password: &str| serde_json::json!({"email": email, "password": password});
    for _ in 0..3 {
        let (status, _) = app
            .call(
                reqwest::Method::POST,
                "/v1/auth/login",
                None,
                Some(login("ana@example.com", "guess")),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Past the limit even the right password waits: a guesser learns nothing.
    let response = app
        .http
        .post(format!("{}/v1/auth/login", app.url))
        .header("content-type", "application/json")
        .body(login("ana@example.com", "correct horse battery").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    let error: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(error["error"]["code"], "too-many-attempts");
    // Another account is not affected.
    let (status, _) = app
        .call(
            reqwest::Method::POST,
            "/v1/auth/login",
            None,
            Some(login("bob@example.com", "correct horse battery")),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}
