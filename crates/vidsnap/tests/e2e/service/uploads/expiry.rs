//! The scheduler expiring idle uploads and never-used presigned videos while active uploads
//! survive.

use super::*;

/// With a 2 s lifetime, the scheduler removes an idle upload (its staged bytes and its video)
/// and a video whose presigned upload never came, while an upload written to every 300 ms,
/// and one whose single slow piece is still streaming, survive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_uploads_expire_and_active_ones_survive() {
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("VIDSNAP_UPLOADS__TTL_SECONDS", "2".to_owned()),
        ("VIDSNAP_UPLOADS__LEASE_SECONDS", "3".to_owned()),
        ("VIDSNAP_SCHEDULER__CLEANUP_SECONDS", "0.2".to_owned()),
        ("VIDSNAP_API__UPLOAD_URL_SECONDS", "1".to_owned()),
        ("VIDSNAP_SCHEDULER__ABANDONED_GRACE_SECONDS", "0".to_owned()),
    ];
    let app = App::start(data.path(), &env).await;
    let token = app.register("ana@example.com").await;

    let (idle, idle_video) = create(&app, &token, 100, "idle.mp4").await;
    assert_eq!(
        patch(&app, &idle, &token, 0, b"some", None).await.status(),
        StatusCode::NO_CONTENT
    );
    let (active, active_video) = create(&app, &token, 100, "active.mp4").await;
    let (streaming, _) = create(&app, &token, 100, "streaming.mp4").await;
    let presigned = app.create(&token, json!({"file_name": "never.mp4"})).await;
    let never = presigned["video"]["id"].as_str().unwrap().to_owned();
    let mut slow = RawPatch::start(&app, &streaming, &token, 0, 10).await;
    slow.send(b"12345").await;

    // The active upload gets a byte every 300 ms until the idle one and the unused video are
    // gone (their lifetimes are 2 s and 1 s).
    let mut written = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = patch(&app, &active, &token, written, b"x", None).await;
        assert_eq!(
            response.status(),
            StatusCode::NO_CONTENT,
            "the active upload lives"
        );
        written += 1;
        let (idle_status, _) = head(&app, &idle, &token).await;
        let (never_status, _) = app
            .call(
                Method::GET,
                &format!("/v1/videos/{never}"),
                Some(&token),
                None,
            )
            .await;
        if idle_status == StatusCode::NOT_FOUND && never_status == StatusCode::NOT_FOUND {
            break;
        }
        // Expired but not yet swept: 410.
        assert!(
            [StatusCode::OK, StatusCode::GONE].contains(&idle_status),
            "{idle_status}"
        );
        assert!(
            Instant::now() < deadline,
            "the idle upload was never removed"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        written >= 6,
        "it took at least the 2 s lifetime: {written} writes"
    );
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/v1/videos/{idle_video}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the idle upload's video went with it"
    );
    assert_eq!(
        app.video(&token, &active_video).await["status"],
        "awaiting_upload"
    );
    assert_eq!(offset(&app, &active, &token).await, written);

    // The slow piece started before the idle upload expired and is still streaming: its
    // upload was kept (leased), and the piece completes.
    slow.send(b"67890").await;
    let (status, head_text) = slow.answer().await;
    assert_eq!(status, 204, "{head_text}");
    assert_eq!(offset(&app, &streaming, &token).await, 10);

    let mut left = staged(data.path());
    left.sort();
    let mut expected = vec![
        upload_id(&active).to_owned(),
        upload_id(&streaming).to_owned(),
    ];
    expected.sort();
    assert_eq!(left, expected, "the idle upload's bytes are gone");
    let metrics = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let removed = |what: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "vidsnap_scheduler_removed_total{{what=\"{what}\"}}"
                ))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert_eq!(removed("upload"), 1.0, "{metrics}");
    assert_eq!(removed("video"), 2.0, "{metrics}");
}
