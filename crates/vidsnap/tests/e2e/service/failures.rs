//! Bad input dies at once with its code; transient faults are retried; a server killed mid-job
//! finishes the video exactly once after a restart.

#![allow(clippy::unwrap_used)]

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{
    clients::files_under,
    support::{App, Smtp, history},
};
use crate::support::clip;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_named_mp4_fails_then_dies_with_one_email() {
    let smtp = Smtp::start().await;
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &smtp.env()).await;
    let token = app.register("ana@example.com").await;
    let id = app
        .upload(&token, &clip("text.mp4"), "notes.mp4", "10s")
        .await;
    let video = app.wait_for_status(&token, &id, "dead").await;
    assert_eq!(
        history(&video),
        ["awaiting_upload", "queued", "processing", "failed", "dead"]
    );
    assert_eq!(video["attempts"], 1, "bad input is not retried");
    assert_eq!(video["last_error"]["code"], "not-a-video");
    assert!(video.get("outputs").is_none_or(serde_json::Value::is_null));
    let mail = smtp.wait_for(1).await;
    assert!(mail[0].contains("not-a-video"), "{}", mail[0]);
    // Still exactly one a moment later: poll the delivery state instead of sleeping.
    let stopped = app.stop().await;
    assert!(stopped.success());
    assert_eq!(smtp.messages().len(), 1);
    // A user's retry of a dead video starts a new cycle: it fails again and notifies again.
    let app = App::start(data.path(), &smtp.env()).await;
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v1/videos/{id}/retry"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
    app.wait_for(&token, &id, "a second death", |v| {
        v["status"] == "dead" && history(v).iter().filter(|s| *s == "dead").count() == 2
    })
    .await;
    assert_eq!(smtp.wait_for(2).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_storage_fault_is_retried_and_succeeds() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &[]).await;
    let token = app.register("ana@example.com").await;
    let created = app
        .create(
            &token,
            json!({"file_name": "a.mp4", "options": {"every": "1s"}}),
        )
        .await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    let upload = created["upload"]["url"].as_str().unwrap();
    let key = upload
        .split("/v1/blobs/")
        .nth(1)
        .unwrap()
        .split('?')
        .next()
        .unwrap();
    let folder = data
        .path()
        .join("blobs")
        .join(key)
        .parent()
        .unwrap()
        .to_path_buf();
    // A directory where the zip must go: storing it fails until the directory is removed.
    let obstacle = folder.join("a-images.zip");
    std::fs::create_dir_all(&obstacle).unwrap();

    let response = app
        .http
        .put(upload)
        .body(std::fs::read(clip("short3.mp4")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let failed = app
        .wait_for(&token, &id, "a failed attempt", |v| {
            history(v).contains(&"failed".to_owned())
        })
        .await;
    assert_eq!(failed["last_error"]["code"], "output-failed");
    std::fs::remove_dir(&obstacle).unwrap();

    let video = app.wait_for_status(&token, &id, "succeeded").await;
    let statuses = history(&video);
    assert!(video["attempts"].as_u64().unwrap() >= 2, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| *s == "succeeded").count(), 1);
    assert!(video["last_error"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_job_then_restart_succeeds_exactly_once() {
    let smtp = Smtp::start().await;
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &smtp.env()).await;
    let token = app.register("ana@example.com").await;
    let created = app
        .create(
            &token,
            json!({"file_name": "long.mp4", "options": {"every": "1s", "format": "png"}}),
        )
        .await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    let url = created["upload"]["url"].as_str().unwrap();
    let response = app
        .http
        .put(url)
        .body(std::fs::read(clip("long-png.mp4")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    app.wait_for_status(&token, &id, "processing").await;
    app.kill().await;

    let app = App::start(data.path(), &smtp.env()).await;
    let video = app.wait_for_status(&token, &id, "succeeded").await;
    let statuses = history(&video);
    assert_eq!(
        statuses.iter().filter(|s| *s == "succeeded").count(),
        1,
        "{statuses:?}"
    );
    assert!(statuses.contains(&"queued".to_owned()));
    assert_eq!(video["outputs"]["frames"], 120);
    assert_eq!(smtp.wait_for(1).await.len(), 1);
    assert!(app.stop().await.success());
    assert_eq!(smtp.messages().len(), 1, "one notification");
    let scratch = data.path().join("tmp");
    assert!(
        !scratch.exists() || crate::support::Sandbox::list(&scratch).is_empty(),
        "no scratch left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_is_bounded_before_it_is_accepted_and_again_once_the_video_is_known() {
    let smtp = Smtp::start().await;
    let data = tempfile::tempdir().unwrap();
    let mut env = smtp.env();
    env.push(("VIDSNAP_LIMITS__MAX_FRAMES", "20".to_owned()));
    let app = App::start(data.path(), &env).await;
    let token = app.register("ana@example.com").await;
    // A nanosecond (three billion frames of a 3 s clip, which once crashed the server) is
    // refused at the API, with the field.
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/videos",
            Some(&token),
            Some(json!({"file_name": "tiny.mp4", "options": {"every": "0.000000001s"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["fields"]["options.every"].is_string(),
        "{body}"
    );

    // Shorter than one frame of this 25 fps clip: known once it is probed.
    let id = app
        .upload(&token, &clip("short3.mp4"), "fast.mp4", "0.01s")
        .await;
    let video = app.wait_for_status(&token, &id, "dead").await;
    assert_eq!(video["last_error"]["code"], "interval-too-short", "{video}");
    assert_eq!(video["attempts"], 1, "bad input is not retried");

    // 30 frames of a 3 s clip, above the configured 20.
    let id = app
        .upload(&token, &clip("short3.mp4"), "many.mp4", "0.1s")
        .await;
    let video = app.wait_for_status(&token, &id, "dead").await;
    assert_eq!(video["last_error"]["code"], "too-many-frames", "{video}");

    // The server is alive and still processes videos.
    let next = app
        .upload(&token, &clip("short3.mp4"), "fine.mp4", "1s")
        .await;
    app.wait_for_status(&token, &next, "succeeded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_video_mid_step_cancels_its_job_and_leaves_no_bytes() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &[]).await;
    let token = app.register("ana@example.com").await;
    let id = app
        .upload(&token, &clip("long-png.mp4"), "long.mp4", "0.25s")
        .await;
    app.wait_for_status(&token, &id, "processing").await;
    // The step is running once its scratch directory holds something.
    let scratch = data.path().join("tmp");
    wait_until(|| !files_under(&scratch).is_empty()).await;
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/v1/videos/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // The worker notices at its next step heartbeat and stops: its scratch goes.
    wait_until(|| files_under(&scratch).is_empty()).await;
    let (status, _) = app
        .call(Method::GET, &format!("/v1/videos/{id}"), Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let left: Vec<String> = files_under(&data.path().join("blobs"))
        .into_iter()
        .filter(|f| f.contains(&id))
        .collect();
    assert!(left.is_empty(), "the deleted video's bytes: {left:?}");
    // The worker slot is free and the server healthy.
    let next = app
        .upload(&token, &clip("short3.mp4"), "next.mp4", "1s")
        .await;
    app.wait_for_status(&token, &next, "succeeded").await;
    assert!(app.stop().await.success());
}

/// Polls `condition` every 20 ms for up to 60 s.
async fn wait_until(condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "not within 60 s");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_kills_its_server_every_time_ends_dead_not_in_a_crash_loop() {
    let data = tempfile::tempdir().unwrap();
    // An "ffprobe" that SIGKILLs the process that started it: the server.
    let killer = data.path().join("ffprobe-that-kills");
    std::fs::write(&killer, "#!/bin/sh\nkill -9 $PPID\nsleep 5\n").unwrap();
    std::fs::set_permissions(&killer, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let poisoned = [
        (
            "VIDSNAP_MEDIA__FFPROBE",
            killer.to_string_lossy().into_owned(),
        ),
        ("VIDSNAP_WORKER__MAX_ATTEMPTS", "2".to_owned()),
    ];
    let app = App::start(data.path(), &poisoned).await;
    let token = app.register("ana@example.com").await;
    let id = app
        .upload(&token, &clip("short3.mp4"), "poison.mp4", "1s")
        .await;
    // Each start takes the step over (its lease has run out) and counts an attempt, and crashes.
    let mut app = app;
    for _ in 0..2 {
        let status = app.exited().await;
        assert!(!status.success(), "killed, not exited");
        app = App::start(data.path(), &poisoned).await;
    }
    // The third start finds no attempt left and ends the step dead without running it (a crash
    // loop would kill this server too, and the wait would fail).
    let video = app.wait_for_status(&token, &id, "dead").await;
    assert_eq!(video["last_error"]["code"], "worker-lost", "{video}");
    assert_eq!(video["attempts"], 2, "{video}");
    assert!(app.stop().await.success());
}
