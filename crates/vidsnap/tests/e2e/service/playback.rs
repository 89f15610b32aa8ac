//! HLS and DASH through the API: a packaged job lists playback URLs whose path carries a signed
//! token; ffprobe and ffmpeg read both manifests over HTTP from the running server and decode
//! every rendition to the end, following the relative URIs; tampered tokens, other files and
//! other users are refused.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use super::support::App;
use crate::support::clip;

/// Frames of each video stream ffprobe reads from `url` (decoding every packet).
fn frames_per_stream(url: &str) -> Vec<(String, u64)> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .args(["stream=codec_type,nb_read_frames", "-of", "json", url])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ffprobe {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let probed: Value = serde_json::from_slice(&output.stdout).unwrap();
    probed["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["codec_type"].as_str().unwrap().to_owned(),
                s["nb_read_frames"]
                    .as_str()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
            )
        })
        .collect()
}

/// Decodes everything `url` leads to; ffmpeg's errors, if any.
fn decode(url: &str) -> String {
    let output = Command::new("ffmpeg")
        .args([
            "-v", "error", "-nostdin", "-i", url, "-map", "0", "-f", "null", "-",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "ffmpeg {url}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packaged_job_plays_over_http_with_signed_urls() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &[]).await;
    let ana = app.register("ana@example.com").await;
    let bo = app.register("bo@example.com").await;
    let video = app.upload(&ana, &clip("av6.mp4"), "talk.mp4", "10s").await;
    let job = package(&app, &ana, &video).await;
    let id = job["id"].as_str().unwrap().to_owned();
    let hls = job["playback"]["hls"].as_str().unwrap().to_owned();
    let dash = job["playback"]["dash"].as_str().unwrap().to_owned();
    assert!(
        hls.ends_with("/master.m3u8") && dash.ends_with("/manifest.mpd"),
        "{job}"
    );

    // Both manifests, read over HTTP with no credential header: every rendition decodes to
    // the end, 6 s at 25 fps within one frame.
    for url in [&hls, &dash] {
        let streams = frames_per_stream(url);
        let video_frames: Vec<u64> = streams
            .iter()
            .filter(|(kind, _)| kind == "video")
            .map(|(_, n)| *n)
            .collect();
        assert!(!video_frames.is_empty(), "{url}: {streams:?}");
        for n in &video_frames {
            assert!((149..=151).contains(n), "{url}: {streams:?}");
        }
        assert!(
            streams.iter().any(|(kind, _)| kind == "audio"),
            "{url}: {streams:?}"
        );
        assert_eq!(decode(url), "", "{url} decodes without errors");
    }

    // Content types; a segment is a redirect to a signed storage URL that serves ranges.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let master = client.get(&hls).send().await.unwrap();
    assert_eq!(master.status(), StatusCode::OK);
    assert_eq!(
        master.headers()[header::CONTENT_TYPE],
        "application/vnd.apple.mpegurl"
    );
    let playlist = master.text().await.unwrap();
    assert!(!playlist.contains("http"), "relative URIs only: {playlist}");
    let mpd = client.get(&dash).send().await.unwrap();
    assert_eq!(mpd.headers()[header::CONTENT_TYPE], "application/dash+xml");
    let folder = hls.trim_end_matches("master.m3u8");
    let segment = client
        .get(format!("{folder}stream0/seg-00001.m4s"))
        .send()
        .await
        .unwrap();
    assert_eq!(segment.status(), StatusCode::FOUND);
    let location = segment.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let whole = client.get(&location).send().await.unwrap();
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()[header::CONTENT_TYPE], "video/iso.segment");
    let length = whole.bytes().await.unwrap().len();
    assert!(length > 100);
    let part = client
        .get(&location)
        .header(header::RANGE, "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()[header::CONTENT_RANGE].to_str().unwrap(),
        format!("bytes 10-19/{length}")
    );
    assert_eq!(part.bytes().await.unwrap().len(), 10);

    // Refused: a tampered token, a file the package does not have, another user's job.
    let token = folder.trim_end_matches('/').rsplit('/').next().unwrap();
    let mut tampered = token.to_owned();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let refused = client
        .get(hls.replace(token, &tampered))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: Value = serde_json::from_slice(&refused.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "playback-refused", "{body}");
    for missing in ["../../secret.mp4", "stream0/seg-99999.m4s", "qc.json"] {
        let answer = client
            .get(format!("{folder}{missing}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{missing}");
    }
    let (status, _) = app
        .call(Method::GET, &format!("/v1/jobs/{id}"), Some(&bo), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A source without audio: no audio rendition, the video plays to its end.
    let silent = app
        .upload(&ana, &clip("short3.mp4"), "silent.mp4", "10s")
        .await;
    let job = package(&app, &ana, &silent).await;
    let hls = job["playback"]["hls"].as_str().unwrap();
    let streams = frames_per_stream(hls);
    assert!(
        streams.iter().all(|(kind, _)| kind == "video"),
        "{streams:?}"
    );
    assert!(
        streams.iter().all(|(_, n)| (74..=76).contains(n)),
        "3 s at 25 fps: {streams:?}"
    );
    assert!(app.stop().await.success());
}

/// Packages `video` (2 s segments) and waits for the job to succeed.
async fn package(app: &App, token: &str, video: &str) -> Value {
    let (status, created) = app
        .call(
            Method::POST,
            "/v1/jobs",
            Some(token),
            Some(json!({"recipe_name": "package", "inputs": {"video": video}, "params": {"segment": 2}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let (_, job) = app
            .call(Method::GET, &format!("/v1/jobs/{id}"), Some(token), None)
            .await;
        if job["status"] == "succeeded" {
            return job;
        }
        assert!(
            job["status"] != "failed" && job["status"] != "dead",
            "{job}"
        );
        assert!(std::time::Instant::now() < deadline, "not packaged: {job}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
