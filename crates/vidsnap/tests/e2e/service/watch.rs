//! Watched folders on local storage: a file dropped into one, with no API call, becomes a video
//! of the folder's owner, processed by its recipe, outputs beside it (seed 000's layout).

#![allow(clippy::unwrap_used)]

use std::{path::Path, time::Duration};

use reqwest::{Method, StatusCode};

use super::{clients::files_under, support::App};
use crate::support::clip;

const WATCH: &str = r#"
[worker]
watch_poll_seconds = 0.1

[[watch]]
prefix = "inbox/"
owner = "ana@example.com"
recipe = "frames"
params = { every = "1s", images = false }
"#;

/// Puts `file` at `dest` the way a careful copier does: a hidden temporary name, then a rename.
fn drop_into(file: &Path, dest: &Path) {
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let temporary = dest.with_file_name(".incoming");
    std::fs::copy(file, &temporary).unwrap();
    std::fs::rename(&temporary, dest).unwrap();
}

async fn videos(app: &App, token: &str) -> Vec<serde_json::Value> {
    let (status, body) = app.call(Method::GET, "/v1/videos", Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_dropped_into_a_watched_folder_is_processed_with_outputs_beside_it() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("vidsnap.toml"), WATCH).unwrap();
    let app = App::start(data.path(), &[]).await;
    let token = app.register("ana@example.com").await;

    let inbox = data.path().join("blobs/inbox");
    let name = "clip one+é.mp4";
    drop_into(&clip("short3.mp4"), &inbox.join("today").join(name));
    std::fs::write(inbox.join("notes.txt"), "not a video").unwrap();

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let video = loop {
        let listed = videos(&app, &token).await;
        if let Some(video) = listed.iter().find(|v| v["status"] == "succeeded") {
            break video.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not processed: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(video["file_name"], name);
    let id = video["id"].as_str().unwrap();
    let shown = app.video(&token, id).await;
    assert_eq!(shown["outputs"]["frames"], 3, "{shown}");
    // Seed 000's layout: the zip and the first frame beside the video, nothing else.
    let mut beside = files_under(&inbox.join("today"));
    beside.sort();
    assert_eq!(
        beside,
        ["clip one+é-image.jpg", "clip one+é-images.zip", name],
        "{beside:?}"
    );
    // The zip is the one the API serves.
    let zip_url = shown["outputs"]["zip"]["url"].as_str().unwrap();
    let served = app
        .http
        .get(zip_url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let on_disk = std::fs::read(inbox.join("today/clip one+é-images.zip")).unwrap();
    assert_eq!(served.to_vec(), on_disk);

    // A restart rescans the folder: nothing is registered twice, the outputs and the text
    // file are not videos.
    assert!(app.stop().await.success());
    let app = App::start(data.path(), &[]).await;
    let second = "second.mov";
    drop_into(&clip("short3.mp4"), &inbox.join(second));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let listed = videos(&app, &token).await;
        if listed
            .iter()
            .any(|v| v["file_name"] == second && v["status"] == "succeeded")
        {
            assert_eq!(listed.len(), 2, "{listed:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not processed: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(inbox.join("second-images.zip").exists());
    assert!(app.stop().await.success());
}

#[tokio::test]
async fn a_watch_that_cannot_work_stops_start_up_naming_the_key() {
    for (config, key) in [
        (
            WATCH.replace("recipe = \"frames\"", "recipe = \"nope\""),
            "watch[0].recipe",
        ),
        (
            WATCH.replace("prefix = \"inbox/\"", "prefix = \"/\""),
            "watch[0].prefix",
        ),
        (
            format!(
                "{WATCH}\n[s3_events]\nqueue_url = \"http://127.0.0.1:1/q\"\ndead_letter_queue_url = \"http://127.0.0.1:1/d\"\n"
            ),
            "storage.kind",
        ),
    ] {
        let data = tempfile::tempdir().unwrap();
        std::fs::write(data.path().join("vidsnap.toml"), config).unwrap();
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_vidsnap"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .current_dir(data.path())
            .env_remove("VIDSNAP_CONFIG")
            .output()
            .await
            .unwrap();
        assert!(!output.status.success(), "{key}: started");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(key), "{key}: {stderr}");
    }
}
