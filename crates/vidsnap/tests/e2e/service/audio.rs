//! Audio-only files through `/v1/videos`: refused for the frames processing (not a video
//! container), accepted with a recipe of their own; `qc` rates a tone 2 and passes it.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::support::App;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audio_file_takes_a_recipe_of_its_own() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &[]).await;
    let token = app.register("ana@example.com").await;
    let song = data.path().join("song.m4a");
    let made = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=3",
        ])
        .args(["-c:a", "aac"])
        .arg(&song)
        .status()
        .unwrap();
    assert!(made.success());

    let (status, refused) = app
        .call(
            Method::POST,
            "/v1/videos",
            Some(&token),
            Some(json!({"file_name": "song.m4a"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(
        refused["error"]["fields"]["file_name"]
            .as_str()
            .unwrap()
            .contains("qc"),
        "the message says what would work: {refused}"
    );

    let (status, created) = app
        .call(
            Method::POST,
            "/v1/videos",
            Some(&token),
            Some(json!({"file_name": "song.m4a", "recipe_name": "qc", "params": {"min_bytes": 1000}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let url = created["upload"]["url"].as_str().unwrap();
    let put = app
        .http
        .put(url)
        .body(std::fs::read(&song).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let id = created["video"]["id"].as_str().unwrap();
    let video = app.wait_for_status(&token, id, "succeeded").await;
    let job = video["job"].as_str().unwrap();
    let (_, job) = app
        .call(Method::GET, &format!("/v1/jobs/{job}"), Some(&token), None)
        .await;
    let result = &job["steps"][0]["result"];
    assert_eq!(result["rating"], 2, "audio only: {job}");
    assert_eq!(result["passed"], true, "{job}");
    assert!(app.stop().await.success());
}
