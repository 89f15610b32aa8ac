//! The whole path a user takes: register, create, upload, follow events, download.

#![allow(clippy::unwrap_used)]

use std::io::Read;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::support::{App, Smtp, history};
use crate::support::clip;

/// Reads server-sent events until a `video` event with a terminal status; returns the statuses
/// seen in order and the last event's data.
pub async fn follow(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    id: &str,
) -> (Vec<String>, Value) {
    let mut response = http
        .get(format!("{url}/v1/videos/{id}/events"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut buffer = String::new();
    let mut statuses = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("events within 60 s")
            .unwrap()
            .expect("the stream ends only after a terminal status");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) else {
                continue;
            };
            let video: Value = serde_json::from_str(data.trim()).unwrap();
            let status = video["status"].as_str().unwrap().to_owned();
            if statuses.last() != Some(&status) {
                statuses.push(status.clone());
            }
            if status == "succeeded" || status == "dead" {
                return (statuses, video);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_process_follow_and_download() {
    let smtp = Smtp::start().await;
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &smtp.env()).await;
    let token = app.register("ana@example.com").await;

    let (status, created) = app
        .call(
            Method::POST,
            "/v1/videos",
            Some(&token),
            Some(serde_json::json!({"file_name": "Holiday <1>.mp4", "options": {"every": "20s"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["video"]["status"], "awaiting_upload");
    assert_eq!(created["upload"]["method"], "PUT");
    assert!(created["upload"]["expires_at"].is_string());
    let id = created["video"]["id"].as_str().unwrap().to_owned();

    // Follow the events from before the upload, as a client would.
    let follower = {
        let (app_url, token, id) = (app.url.clone(), token.clone(), id.clone());
        let http = app.http.clone();
        tokio::spawn(async move { follow(&http, &app_url, &token, &id).await })
    };
    let source = clip("cfr61.mp4");
    let response = app
        .http
        .put(created["upload"]["url"].as_str().unwrap())
        .body(std::fs::read(&source).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let (statuses, last) = follower.await.unwrap();
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("succeeded"),
        "{statuses:?}"
    );
    assert!(statuses.iter().all(|s| ["awaiting_upload", "queued", "processing", "succeeded"].contains(&s.as_str())));
    assert_eq!(last["status"], "succeeded");

    let video = app.video(&token, &id).await;
    assert_eq!(
        history(&video),
        ["awaiting_upload", "queued", "processing", "succeeded"]
    );
    assert_eq!(video["attempts"], 1);
    assert_eq!(video["probe"]["duration"], 61.0);
    let outputs = &video["outputs"];
    assert_eq!(outputs["frames"], 4);

    // Download both outputs through their presigned URLs.
    let zip = app
        .http
        .get(outputs["zip"]["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(zip.status(), StatusCode::OK);
    assert_eq!(zip.headers()["content-type"], "application/zip");
    let zip = zip.bytes().await.unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip.to_vec())).unwrap();
    let mut manifest = String::new();
    archive
        .by_name("manifest.json")
        .unwrap()
        .read_to_string(&mut manifest)
        .unwrap();
    let manifest: Value = serde_json::from_str(&manifest).unwrap();
    let times: Vec<f64> = manifest["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["actual_time"].as_f64().unwrap())
        .collect();
    assert_eq!(times, vec![0.0, 20.0, 40.0, 60.0]);
    assert_eq!(manifest["source"]["duration"], 61.0);
    let first_name = manifest["frames"][0]["file"].as_str().unwrap().to_owned();
    let mut first = Vec::new();
    archive
        .by_name(&first_name)
        .unwrap()
        .read_to_end(&mut first)
        .unwrap();
    let thumbnail = app
        .http
        .get(outputs["thumbnail"]["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(thumbnail.headers()["content-type"], "image/jpeg");
    assert_eq!(
        thumbnail.bytes().await.unwrap().to_vec(),
        first,
        "the thumbnail is the first frame"
    );

    // Stored beside the video, as the seeds did.
    // The user's folder (`.uploads` beside it stages resumable uploads).
    let user_dir = std::fs::read_dir(data.path().join("blobs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| !path.file_name().unwrap().to_string_lossy().starts_with('.'))
        .unwrap();
    let names = crate::support::Sandbox::list(&user_dir.join(&id));
    assert_eq!(
        names,
        ["Holiday <1>-images.zip", "Holiday <1>.mp4", "image.jpg"]
    );

    // One e-mail, with the name escaped in its HTML.
    let mail = smtp.wait_for(1).await;
    assert_eq!(mail.len(), 1);
    assert!(mail[0].contains("ana@example.com"));
    assert!(mail[0].contains("Holiday &lt;1&gt;.mp4"), "{}", mail[0]);
    assert!(!mail[0].contains("<1>.mp4</"), "unescaped name in HTML");

    // Listed with its history; filtered by status.
    let (status, list) = app
        .call(
            Method::GET,
            "/v1/videos?status=succeeded",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["history"].as_array().unwrap().len(), 4);
    let (_, none) = app
        .call(Method::GET, "/v1/videos?status=dead", Some(&token), None)
        .await;
    assert_eq!(none["items"].as_array().unwrap().len(), 0);

    // Delete removes rows and blobs.
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/videos/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app
        .call(Method::GET, &format!("/v1/videos/{id}"), Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not-found");
    assert!(!user_dir.join(&id).exists());

    // Graceful shutdown on SIGTERM.
    assert!(app.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_field_errors_and_health_endpoints_answer() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &[]).await;
    let token = app.register("bo@example.com").await;
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/videos",
            Some(&token),
            Some(serde_json::json!({"file_name": "notes.txt", "size": 0, "options": {"every": "0s", "mode": "fast"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "validation-failed");
    for field in ["file_name", "size", "options.every", "options.mode"] {
        assert!(
            body["error"]["fields"][field].is_string(),
            "{field}: {body}"
        );
    }
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(
                serde_json::json!({"email": "bo@example.com", "password": "correct horse battery"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "email-taken");
    let (status, body) = app.call(Method::GET, "/v1/videos", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");

    // Malformed requests get the same error format, never framework plain text.
    let send = |body: &'static str, content_type: Option<&'static str>| {
        let mut request = app
            .http
            .post(format!("{}/v1/videos", app.url))
            .bearer_auth(&token)
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send()
    };
    for (body, content_type, status, code) in [
        (
            "{\"file_name\": ",
            Some("application/json"),
            400,
            "invalid-json",
        ),
        (
            "{\"file_name\": \"a.mp4\"}",
            None,
            415,
            "unsupported-media-type",
        ),
        (
            "{\"file_name\": \"a.mp4\", \"colour\": 1}",
            Some("application/json"),
            422,
            "validation-failed",
        ),
    ] {
        let response = send(body, content_type).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{body}");
        let json: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert_eq!(json["error"]["code"], code, "{body}");
    }
    let (status, body) = app
        .call(Method::GET, "/v1/videos?limit=many", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid-query");
    // What the framework rejects by itself gets the same format: an id that is not UTF-8 once
    // percent-decoded, a method the route does not take (with its `Allow`).
    let response = app
        .http
        .get(format!("{}/v1/videos/%FF", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let json: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(json["error"]["code"], "invalid-request", "{json}");
    let response = app
        .http
        .put(format!("{}/v1/videos", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(response.headers().contains_key("allow"));
    let json: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(json["error"]["code"], "method-not-allowed", "{json}");

    let (status, _) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, ready) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    let metrics = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "vidsnap_videos{status=\"queued\"}",
        "vidsnap_queue_depth",
        "vidsnap_queue_oldest_seconds",
        "vidsnap_http_request_seconds",
    ] {
        assert!(metrics.contains(name), "{name} in /metrics:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_open_event_streams_and_exits() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &[]).await;
    let token = app.register("ana@example.com").await;
    let created = app
        .create(&token, serde_json::json!({"file_name": "a.mp4"}))
        .await;
    let id = created["video"]["id"].as_str().unwrap();
    let mut stream = app
        .http
        .get(format!("{}/v1/videos/{id}/events", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let first = stream.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("awaiting_upload"));
    // The video never gets its upload: only shutdown can end this stream.
    let stopped = tokio::spawn(app.stop());
    let ended = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the event stream ended on shutdown");
    assert!(stopped.await.unwrap().success(), "graceful exit");
}

/// The same service on PostgreSQL instead of SQLite: only configuration changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_runs_on_postgresql() {
    let database = vidsnap_db::testing::ScratchDatabase::create("vidsnap_e2e").await;
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("VIDSNAP_DATABASE__KIND", "postgres".to_owned()),
        ("VIDSNAP_DATABASE__URL", database.url().to_owned()),
    ];
    let app = App::start(data.path(), &env).await;
    assert!(!data.path().join("vidsnap.db").exists(), "no SQLite file");
    let token = app.register("ana@example.com").await;
    let id = app.upload(&token, &clip("short3.mp4"), "a.mp4", "1s").await;
    let video = app.wait_for_status(&token, &id, "succeeded").await;
    assert_eq!(
        history(&video),
        ["awaiting_upload", "queued", "processing", "succeeded"]
    );
    assert_eq!(video["outputs"]["frames"], 3);
    let (status, ready) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert!(app.stop().await.success());
}
