//! Seed 002's bucket workflow on local storage: files dropped into a sorted watched folder are
//! checked by their qc job and their metadata sidecar, then moved to processed/, failed/ (and
//! retried there) or unable_to_process/; every decision is in the results API.

#![allow(clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::support::App;
use crate::support::clip;

const SORTED: &str = r#"
[worker]
watch_poll_seconds = 0.1

[scheduler]
sort_seconds = 0.2

[[watch]]
prefix = "uploads/"
owner = "qa@example.com"
recipe = "qc"
params = { min_bytes = 1000 }

[watch.sort]
sidecar_wait_seconds = 4
max_retries = 2
retry_delay_seconds = 0.3
"#;

/// A hidden temporary name, then a rename: what a careful copier does.
fn drop_into(bytes: &[u8], dest: &Path) {
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let temporary = dest.with_file_name(format!(".incoming-{}", fastrand_name(dest)));
    std::fs::write(&temporary, bytes).unwrap();
    std::fs::rename(&temporary, dest).unwrap();
}

fn fastrand_name(dest: &Path) -> String {
    dest.file_name()
        .unwrap()
        .to_string_lossy()
        .replace('.', "_")
}

/// The sidecar seed 002 expects for the 3 s, 160x120 H.264 clip.
fn sidecar(video: &[u8]) -> Vec<u8> {
    json!({"Duration": 3.0, "File size": video.len(), "Codec": "h264", "Resolution": "160x120"})
        .to_string()
        .into_bytes()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

async fn wait_for(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn results(app: &App, token: &str, query: &str) -> Value {
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/v1/qc/results{query}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_files_are_checked_against_their_sidecar_and_sorted() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("vidsnap.toml"), SORTED).unwrap();
    let app = App::start(data.path(), &[]).await;
    let token = app.register("qa@example.com").await;
    let root: PathBuf = data.path().join("blobs");
    let (uploads, processed) = (root.join("uploads"), root.join("processed"));
    let (failed, unable) = (root.join("failed"), root.join("unable_to_process"));
    let video = std::fs::read(clip("short3.mp4")).unwrap();

    // Sidecar first; video first with the sidecar late; no sidecar; a sidecar that lies.
    drop_into(&sidecar(&video), &uploads.join("first.json"));
    drop_into(&video, &uploads.join("first.mp4"));
    drop_into(&video, &uploads.join("late sidecar+é.mp4"));
    drop_into(&video, &uploads.join("alone.mp4"));
    let mut lying: Value = serde_json::from_slice(&sidecar(&video)).unwrap();
    lying["File size"] = json!(video.len() + 1);
    drop_into(lying.to_string().as_bytes(), &uploads.join("lying.json"));
    drop_into(&video, &uploads.join("lying.mp4"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    drop_into(&sidecar(&video), &uploads.join("late sidecar+é.json"));

    wait_for(
        "the passing files in processed/",
        Duration::from_secs(60),
        || names(&processed).len() == 6,
    )
    .await;
    assert_eq!(
        names(&processed),
        [
            "first-qc.json",
            "first.json",
            "first.mp4",
            "late sidecar+é-qc.json",
            "late sidecar+é.json",
            "late sidecar+é.mp4"
        ]
    );
    assert_eq!(
        std::fs::read(processed.join("first.mp4")).unwrap(),
        video,
        "moved whole"
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(processed.join("first-qc.json")).unwrap()).unwrap();
    assert_eq!(report["rating"], 3, "video only: {report}");

    // The lying sidecar fails at once; the lone file after the sidecar wait; both are retried
    // in failed/ and end in unable_to_process/ after 2 retries.
    wait_for(
        "the failing files in unable_to_process/",
        Duration::from_secs(90),
        || names(&uploads).is_empty() && names(&failed).is_empty() && names(&unable).len() == 5,
    )
    .await;
    assert_eq!(
        names(&unable),
        [
            "alone-qc.json",
            "alone.mp4",
            "lying-qc.json",
            "lying.json",
            "lying.mp4"
        ]
    );

    // Every decision is in the results API, oldest first, with its reason and checks.
    let all = results(&app, &token, "?limit=100").await;
    let items = all["items"].as_array().unwrap();
    let of =
        |name: &str| -> Vec<&Value> { items.iter().filter(|r| r["file_name"] == name).collect() };
    assert_eq!(of("first.mp4").len(), 1);
    assert_eq!(of("first.mp4")[0]["outcome"], "processed");
    assert_eq!(of("first.mp4")[0]["moved_to"], "processed/first.mp4");
    assert_eq!(of("first.mp4")[0]["rating"], 3);
    assert!(of("first.mp4")[0]["checks"].as_array().unwrap().len() >= 10);
    let lying: Vec<_> = of("lying.mp4")
        .iter()
        .map(|r| {
            (
                r["outcome"].as_str().unwrap(),
                r["error"]["code"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lying,
        [
            ("failed", "sidecar-size-mismatch"),
            ("failed", "sidecar-size-mismatch"),
            ("unable_to_process", "sidecar-size-mismatch")
        ]
    );
    let alone: Vec<_> = of("alone.mp4")
        .iter()
        .map(|r| {
            (
                r["outcome"].as_str().unwrap(),
                r["error"]["code"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        alone,
        [
            ("failed", "metadata-missing"),
            ("failed", "metadata-missing"),
            ("unable_to_process", "metadata-missing")
        ]
    );
    let (status, counts) = app
        .call(Method::GET, "/v1/qc/results/count", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{counts}");
    assert_eq!(
        (
            &counts["processed"],
            &counts["failed"],
            &counts["unable_to_process"],
            &counts["total"]
        ),
        (&json!(2), &json!(4), &json!(2), &json!(8))
    );
    // A range before any decision is empty; a malformed time is a field error.
    let empty = results(&app, &token, "?end_time=2000-01-01T00:00:00Z").await;
    assert_eq!(empty["items"], json!([]));
    let (status, body) = app
        .call(
            Method::GET,
            "/v1/qc/results?begin_time=yesterday",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["fields"]["begin_time"].is_string(), "{body}");
    let (status, _) = app.call(Method::GET, "/v1/qc/results", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A file placed in failed/ by hand is retried: with its sidecar there, it passes.
    drop_into(&sidecar(&video), &failed.join("fixed.json"));
    drop_into(&video, &failed.join("fixed.mp4"));
    wait_for(
        "a hand-placed file to be processed",
        Duration::from_secs(60),
        || names(&processed).contains(&"fixed.mp4".to_owned()),
    )
    .await;
    assert!(names(&failed).is_empty(), "{:?}", names(&failed));
    assert!(app.stop().await.success());
}
