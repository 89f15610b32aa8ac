//! Slow, silent and too many clients against `vidsnap serve`: they are cut off, and the server
//! keeps answering everyone else.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::support::App;
use crate::support::clip;

/// `/healthz` on a connection of its own, bounded so a server that never answers fails the test.
async fn healthz(app: &App) -> reqwest::StatusCode {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    client
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .expect("/healthz answers")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_half_open_connections_under_256_file_descriptors_do_not_stop_healthz() {
    let data = tempfile::tempdir().unwrap();
    // Heads never time out here: only making room can keep /healthz answering.
    let env = [("VIDSNAP_SERVER__HEADER_TIMEOUT_SECONDS", "3600".to_owned())];
    let app = App::start_with_file_limit(data.path(), &env, 256).await;
    let address = app.url.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for i in 0..300 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        if i % 2 == 0 {
            // Half a request head, then silence.
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: vid")
                .await
                .unwrap();
        }
        held.push(stream);
    }
    for _ in 0..5 {
        assert_eq!(healthz(&app).await, reqwest::StatusCode::OK);
    }
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_shorter_than_its_content_length_is_cut_off_and_leaves_nothing() {
    let data = tempfile::tempdir().unwrap();
    let env = [("VIDSNAP_SERVER__BODY_IDLE_TIMEOUT_SECONDS", "1".to_owned())];
    let app = App::start(data.path(), &env).await;
    let token = app.register("ana@example.com").await;
    let created = app
        .create(
            &token,
            json!({"file_name": "short.mp4", "options": {"every": "1s"}}),
        )
        .await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    let url = reqwest::Url::parse(created["upload"]["url"].as_str().unwrap()).unwrap();
    let bytes = std::fs::read(clip("short3.mp4")).unwrap();

    let mut stream = TcpStream::connect(format!(
        "{}:{}",
        url.host_str().unwrap(),
        url.port().unwrap()
    ))
    .await
    .unwrap();
    let head = format!(
        "PUT {}?{} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
        url.path(),
        url.query().unwrap_or(""),
        url.host_str().unwrap(),
        bytes.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&bytes[..bytes.len() / 2]).await.unwrap();
    // The server gives up on the silent body: it answers or closes, instead of waiting for ever.
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut answer));
    assert!(read.await.is_ok(), "the connection was never cut off");

    let video = app.video(&token, &id).await;
    assert_eq!(video["status"], "awaiting_upload", "{video}");
    let partials: Vec<_> = files_under(&data.path().join("blobs"))
        .into_iter()
        .filter(|p| p.contains(".partial"))
        .collect();
    assert!(partials.is_empty(), "left behind: {partials:?}");

    // The whole file, sent again, is accepted.
    let response = app.http.put(url).body(bytes).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    app.wait_for_status(&token, &id, "succeeded").await;
}

/// Every file under `dir`, recursively, as paths relative to it.
pub fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(
                    path.strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    found.sort();
    found
}
