//! Jobs over HTTP (`/v1/jobs`): built-in and custom recipes run step by step on real clips, their
//! artefacts downloaded and checked against the digests the service lists; validation answered
//! at JSON paths; a job waiting for its upload; cancel, re-run, event streams, webhooks and
//! e-mails; and the job behind every `/v1/videos` video. The helpers are here; the tests are in
//! `recipes` (running recipes, validation) and `lifecycle` (waiting, cancel, re-runs, events,
//! notifications).

#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::support::{App, Receiver, Smtp};
use crate::support::{Sandbox, clip, frame_brightness, frame_times, image_brightness, shown_at};

mod lifecycle;
mod recipes;

/// `POST /v1/jobs` with `body`.
pub(super) async fn post_job(app: &App, token: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::POST, "/v1/jobs", Some(token), Some(body))
        .await
}

/// `POST /v1/jobs` that must answer 201; returns the job.
pub(super) async fn create_job(app: &App, token: &str, body: Value) -> Value {
    let (status, job) = post_job(app, token, body).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    job
}

pub(super) async fn get_job(app: &App, token: &str, id: &str) -> Value {
    let (status, job) = app
        .call(Method::GET, &format!("/v1/jobs/{id}"), Some(token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    job
}

/// Polls `GET /v1/jobs/{id}` until `done` holds (deadline 90 s).
pub(super) async fn wait_job(
    app: &App,
    token: &str,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let job = get_job(app, token, id).await;
        if done(&job) {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(super) async fn wait_job_status(app: &App, token: &str, id: &str, status: &str) -> Value {
    wait_job(app, token, id, status, |job| job["status"] == status).await
}

pub(super) fn id_of(value: &Value) -> String {
    value["id"].as_str().unwrap().to_owned()
}

pub(super) fn step<'a>(job: &'a Value, name: &str) -> &'a Value {
    job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {job}"))
}

pub(super) fn step_names(job: &Value) -> Vec<String> {
    job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

pub(super) fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("a time, got {value}"))
        .parse()
        .unwrap()
}

pub(super) fn artefact<'a>(step: &'a Value, name: &str) -> &'a Value {
    step["artefacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no artefact {name} in {step}"))
}

pub(super) fn artefact_names(step: &Value) -> Vec<String> {
    step["artefacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect()
}

pub(super) fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Downloads an artefact through its URL and checks its size and digest against the listing.
pub(super) async fn download(app: &App, artefact: &Value) -> Vec<u8> {
    let url = artefact["url"].as_str().unwrap_or_else(|| {
        panic!("artefact without url: {artefact}");
    });
    let response = app.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{artefact}");
    assert_eq!(
        response.headers()["content-type"],
        artefact["content_type"].as_str().unwrap(),
        "{artefact}"
    );
    let bytes = response.bytes().await.unwrap().to_vec();
    assert_eq!(
        Some(bytes.len() as u64),
        artefact["bytes"].as_u64(),
        "{artefact}"
    );
    assert_eq!(
        hex_sha256(&bytes),
        artefact["sha256"].as_str().unwrap(),
        "{artefact}"
    );
    bytes
}

/// Every artefact of every step is listed with a link, a size and a SHA-256.
pub(super) fn assert_artefacts_listed(job: &Value) {
    for step in job["steps"].as_array().unwrap() {
        let artefacts = step["artefacts"].as_array().unwrap();
        assert!(
            !artefacts.is_empty(),
            "a succeeded step has artefacts: {step}"
        );
        for artefact in artefacts {
            assert!(artefact["url"].is_string(), "{artefact}");
            assert!(artefact["bytes"].as_u64().unwrap() > 0, "{artefact}");
            let sha = artefact["sha256"].as_str().unwrap();
            assert_eq!(sha.len(), 64, "{artefact}");
            assert!(sha.bytes().all(|b| b.is_ascii_hexdigit()), "{artefact}");
        }
    }
}

/// `downstream` started only after every step of `upstream` finished.
pub(super) fn assert_ran_after(job: &Value, downstream: &str, upstream: &[&str]) {
    let started = time(&step(job, downstream)["started_at"]);
    for name in upstream {
        let finished = time(&step(job, name)["finished_at"]);
        assert!(
            started >= finished,
            "{downstream} started at {started}, before {name} finished at {finished}"
        );
    }
}

/// The zip's entries by name.
pub(super) fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut file = archive.by_index(i).unwrap();
            let mut content = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut content).unwrap();
            (file.name().unwrap().into_owned(), content)
        })
        .collect()
}

/// Checks a succeeded frames step: one `frames/…` artefact per frame of the manifest (each the
/// zip's entry), the manifest, the zip and the thumbnail (the first frame), all downloaded.
/// Returns the manifest.
pub(super) async fn check_frames_step(
    app: &App,
    step: &Value,
    frames: usize,
    extension: &str,
) -> Value {
    let names = artefact_names(step);
    let images: Vec<&String> = names.iter().filter(|n| n.starts_with("frames/")).collect();
    assert_eq!(images.len(), frames, "{names:?}");
    for other in ["manifest", "zip", "thumbnail"] {
        assert!(names.contains(&other.to_owned()), "{other} in {names:?}");
    }
    assert_eq!(names.len(), frames + 3, "{names:?}");
    assert_eq!(step["result"]["frames"], frames);

    let manifest: Value = serde_json::from_slice(&download(app, artefact(step, "manifest")).await)
        .expect("the manifest is JSON");
    let listed = manifest["frames"].as_array().unwrap();
    assert_eq!(listed.len(), frames, "{manifest}");
    let entries = unzip(&download(app, artefact(step, "zip")).await);
    let entry = |name: &str| {
        entries
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no {name} in the zip"))
            .1
            .clone()
    };
    assert_eq!(
        serde_json::from_slice::<Value>(&entry("manifest.json")).unwrap(),
        manifest
    );
    for frame in listed {
        let file = frame["file"].as_str().unwrap();
        assert!(file.ends_with(extension), "{file}");
        let bytes = download(app, artefact(step, &format!("frames/{file}"))).await;
        assert_eq!(bytes, entry(file), "frames/{file} is the zip's entry");
    }
    let first = entry(listed[0]["file"].as_str().unwrap());
    assert_eq!(
        download(app, artefact(step, "thumbnail")).await,
        first,
        "the thumbnail is the first frame"
    );
    manifest
}

/// A user with a video uploaded through `/v1/videos`; returns (token, video id).
pub(super) async fn user_with_video(
    app: &App,
    email: &str,
    clip_name: &str,
    every: &str,
) -> (String, String) {
    let token = app.register(email).await;
    let id = app.upload(&token, &clip(clip_name), clip_name, every).await;
    (token, id)
}

/// `{data}/blobs/{owner}/jobs/{job}`: where a job's artefacts are stored.
pub(super) fn job_folder(data: &std::path::Path, job: &str) -> std::path::PathBuf {
    std::fs::read_dir(data.join("blobs"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join("jobs").join(job))
        .find(|path| path.exists())
        .unwrap_or_else(|| panic!("no folder for job {job}"))
}

/// Reads a job's event stream to its end; returns each event's data in order.
pub(super) async fn follow_job(
    http: reqwest::Client,
    url: String,
    token: String,
    id: String,
) -> Vec<Value> {
    let mut response = http
        .get(format!("{url}/v1/jobs/{id}/events"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut buffer = String::new();
    let mut events = Vec::new();
    loop {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("the stream ends within 90 s")
            .unwrap();
        let Some(chunk) = chunk else {
            return events;
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) else {
                continue; // a keep-alive comment
            };
            assert!(
                event.lines().any(|l| l == "event: job"),
                "an event named job: {event}"
            );
            events.push(serde_json::from_str(data.trim()).unwrap());
        }
    }
}

/// Whether the scratch directory holds nothing (or was never made).
pub(super) fn scratch_empty(data: &std::path::Path) -> bool {
    let scratch = data.join("tmp");
    !scratch.exists() || Sandbox::list(&scratch).is_empty()
}

/// E-mails that announce job `id` failed.
pub(super) fn job_failed_mails(smtp: &Smtp, id: &str) -> usize {
    smtp.messages()
        .iter()
        .filter(|m| m.contains("could not finish") && m.contains(id))
        .count()
}
