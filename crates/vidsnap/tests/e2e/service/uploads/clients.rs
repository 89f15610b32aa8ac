//! The official tus clients (tus-py-client, tus-js-client) upload clips that are processed, and
//! one killed half-way resumes on another API process.

use super::*;

/// tuspy uploads a clip in 256 KiB PATCHes, each with `Upload-Checksum: sha1`; the video is
/// processed, and the stored object is the source, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tuspy_uploads_a_clip_that_is_processed() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &[]).await;
    let token = app.register("ana@example.com").await;
    let source = clip("cfr61.mp4");

    let mut client = TusClient::python(json!({
        "endpoint": format!("{}/v1/uploads", app.url),
        "token": token,
        "file": source,
        "metadata": {"filename": "holiday.mp4", "every": "20s"},
        "chunk_size": 256 * 1024,
        "checksum": true,
    }));
    let url = client.until("url").await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let events = client.finish().await;
    let size = std::fs::metadata(&source).unwrap().len();
    assert_eq!(events.last().unwrap()["offset"], size, "{events:?}");
    assert!(events.len() > 4, "several PATCHes: {events:?}");

    let (status, headers) = head(&app, &url, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "upload-offset"), size.to_string());
    let video = header(&headers, "vidsnap-video");
    let done = app.wait_for_status(&token, &video, "succeeded").await;
    assert_eq!(done["file_name"], "holiday.mp4");
    assert_eq!(done["options"]["every"], 20.0);
    assert_eq!(done["outputs"]["frames"], 4);
    assert_eq!(
        crate::service::support::history(&done),
        ["awaiting_upload", "queued", "processing", "succeeded"]
    );

    let stored = data
        .path()
        .join("blobs")
        .join(user_id(&app, &token).await)
        .join(&video)
        .join("holiday.mp4");
    assert_eq!(sha256_of(&stored), sha256_of(&source));
    assert_eq!(
        staged(data.path()),
        Vec::<String>::new(),
        "nothing left staged"
    );
}

/// tus-js-client uploads a clip in one PATCH; processed the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_uploads_a_clip_that_is_processed() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &[]).await;
    let token = app.register("ana@example.com").await;
    let source = clip("short3.mp4");

    let client = TusClient::node(json!({
        "endpoint": format!("{}/v1/uploads", app.url),
        "token": token,
        "file": source,
        "metadata": {"filename": "short.mp4", "every": "1s", "format": "png"},
    }));
    let events = client.finish().await;
    let url = events.last().unwrap()["url"].as_str().unwrap().to_owned();
    assert_eq!(events.last().unwrap()["event"], "success", "{events:?}");

    let (_, headers) = head(&app, &url, &token).await;
    let video = header(&headers, "vidsnap-video");
    let done = app.wait_for_status(&token, &video, "succeeded").await;
    assert_eq!(done["options"]["format"], "png");
    assert_eq!(done["outputs"]["frames"], 3);
    let stored = data
        .path()
        .join("blobs")
        .join(user_id(&app, &token).await)
        .join(&video)
        .join("short.mp4");
    assert_eq!(sha256_of(&stored), sha256_of(&source));
    assert_eq!(staged(data.path()), Vec::<String>::new());
}

/// tus-js-client, SIGKILLed after its first chunk was acknowledged by one API process, resumes
/// from the server's offset against another API process: sessions live in the shared database
/// (PostgreSQL), bytes in the shared storage root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_killed_half_way_resumes_on_another_api_process() {
    let database = vidsnap_db::testing::ScratchDatabase::create("vidsnap_e2e").await;
    let shared = tempfile::tempdir().unwrap();
    let root = shared.path().join("blobs");
    let env = [
        ("VIDSNAP_DATABASE__KIND", "postgres".to_owned()),
        ("VIDSNAP_DATABASE__URL", database.url().to_owned()),
        ("VIDSNAP_STORAGE__ROOT", root.display().to_string()),
        (
            "VIDSNAP_AUTH__SECRET",
            "one secret for both API processes, 32+ characters".to_owned(),
        ),
    ];
    let (first_data, second_data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = App::start(first_data.path(), &env).await;
    let second = App::start(second_data.path(), &env).await;
    let token = first.register("ana@example.com").await;
    let source = clip("cfr61.mp4");
    let size = std::fs::metadata(&source).unwrap().len();

    let mut client = TusClient::node(json!({
        "endpoint": format!("{}/v1/uploads", first.url),
        "token": token,
        "file": source,
        "metadata": {"filename": "resumed.mp4", "every": "20s"},
        "chunkSize": 256 * 1024,
    }));
    let url = client.until("url").await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let acknowledged = client.until("chunk").await["offset"].as_u64().unwrap();
    client.kill().await;
    assert!(acknowledged > 0 && acknowledged < size);

    // The other process knows the upload: at least what the first acknowledged is stored.
    let path = &url[url.find("/v1/uploads/").unwrap()..];
    let on_second = format!("{}{path}", second.url);
    let at = offset(&second, &on_second, &token).await;
    assert!(at >= acknowledged && at < size, "{at} of {size}");

    let resumed = TusClient::node(json!({
        "endpoint": format!("{}/v1/uploads", second.url),
        "uploadUrl": on_second,
        "token": token,
        "file": source,
        "chunkSize": 256 * 1024,
    }));
    let events = resumed.finish().await;
    let chunks: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "chunk")
        .map(|e| e["offset"].as_u64().unwrap())
        .collect();
    assert!(
        chunks
            .first()
            .is_some_and(|&first| first > at.min(size - 1)),
        "resumed from the server's offset {at}, not from 0: {chunks:?}"
    );
    assert_eq!(events.last().unwrap()["event"], "success", "{events:?}");

    let (_, headers) = head(&second, &on_second, &token).await;
    let video = header(&headers, "vidsnap-video");
    second.wait_for_status(&token, &video, "succeeded").await;
    let stored = root
        .join(user_id(&second, &token).await)
        .join(&video)
        .join("resumed.mp4");
    assert_eq!(sha256_of(&stored), sha256_of(&source));
    let left = std::fs::read_dir(root.join(".uploads")).unwrap().count();
    assert_eq!(left, 0, "nothing left staged");
    assert!(second.stop().await.success());
    assert!(first.stop().await.success());
}
