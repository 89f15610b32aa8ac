//! S3 multipart uploads, both ways: a client PUTs a big file's parts straight to the bucket
//! (SeaweedFS) through presigned URLs, and the service completes, queues and processes it
//! (aborting leaves no parts; another user's video is a 404; local storage does not offer it);
//! and tus uploads staged as multipart parts continue on another API process.
#![allow(clippy::unwrap_used)]

use std::{path::Path, time::Duration};

use object_store::{
    ObjectStoreExt,
    path::Path as ObjectPath,
    signer::{Method as SignedMethod, SignedUrlOptions, Signer},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    cluster::{Bucket, BucketAccess},
    support::{App, service},
};
use crate::support::Sandbox;

const PART_BYTES: usize = 5 * 1024 * 1024;

async fn bucket() -> Bucket {
    Bucket::create(
        service("VIDSNAP_TEST_S3_ENDPOINT"),
        service("VIDSNAP_TEST_S3_ACCESS_KEY"),
        service("VIDSNAP_TEST_S3_SECRET_KEY"),
    )
    .await
}

/// `vidsnap serve` on `bucket` with 5 MiB parts.
async fn serve_on(bucket: &Bucket, dir: &Sandbox) -> App {
    let mut env = bucket.env();
    env.push((
        "VIDSNAP_STORAGE__MULTIPART_PART_BYTES",
        PART_BYTES.to_string(),
    ));
    App::start(dir.root.path(), &env).await
}

/// A real video of about 12 MiB (lossless H.264): three 5 MiB parts.
fn big_clip(dir: &Path) -> Vec<u8> {
    let path = dir.join("big.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-y", "-v", "error"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x480:rate=25:duration=22",
        ])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-qp", "0"])
        .args(["-pix_fmt", "yuv420p"])
        .arg(&path)
        .status()
        .expect("ffmpeg must be installed to run the tests (scripts/install-deps.sh)");
    assert!(status.success(), "generating the clip");
    std::fs::read(path).unwrap()
}

/// The ids of the bucket's unfinished multipart uploads (ListMultipartUploads, signed).
async fn multipart_uploads(bucket: &BucketAccess) -> Vec<String> {
    let options = SignedUrlOptions::default().with_query([("uploads", "")]);
    let url = bucket
        .client()
        .signed_url_opts(
            SignedMethod::GET,
            &ObjectPath::from(""),
            Duration::from_secs(60),
            &options,
        )
        .await
        .unwrap();
    let response = reqwest::get(url.as_str()).await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let listing = response.text().await.unwrap();
    listing
        .split("<UploadId>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</UploadId>").map(|(id, _)| id.to_owned()))
        .collect()
}

/// Creates a video awaiting its upload; returns its id.
async fn video(app: &App, token: &str, name: &str) -> String {
    let created = app
        .create(
            token,
            json!({"file_name": name, "options": {"every": "5s"}}),
        )
        .await;
    created["video"]["id"].as_str().unwrap().to_owned()
}

/// Presigned requests for `numbers`, as `(number, url)`.
async fn part_urls(
    app: &App,
    token: &str,
    id: &str,
    upload_id: &str,
    numbers: &[u32],
) -> Vec<(u64, String)> {
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v1/videos/{id}/multipart/parts"),
            Some(token),
            Some(json!({"upload_id": upload_id, "part_numbers": numbers})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["request"]["method"], "PUT");
            (
                p["part_number"].as_u64().unwrap(),
                p["request"]["url"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// PUTs a part as a plain HTTP client would; returns the ETag answered.
async fn put_part(url: &str, bytes: &[u8]) -> String {
    let response = reqwest::Client::new()
        .put(url)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "PUT a part");
    response.headers()["etag"].to_str().unwrap().to_owned()
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_file_uploaded_in_presigned_parts_is_processed() {
    let bucket = bucket().await;
    let dir = Sandbox::new();
    let app = serve_on(&bucket, &dir).await;
    let source = big_clip(&dir.scratch());
    assert_eq!(source.len().div_ceil(PART_BYTES), 3, "three parts");
    let token = app.register("ana@example.com").await;
    let id = video(&app, &token, "big.mp4").await;
    let multipart = format!("/v1/videos/{id}/multipart");

    let (status, started) = app.call(Method::POST, &multipart, Some(&token), None).await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    assert_eq!(started["part_bytes"], PART_BYTES as u64);
    let upload_id = started["upload_id"].as_str().unwrap().to_owned();

    let urls = part_urls(&app, &token, &id, &upload_id, &[1, 2, 3]).await;
    let mut parts = Vec::new();
    for ((number, url), bytes) in urls.iter().zip(source.chunks(PART_BYTES)) {
        let etag = put_part(url, bytes).await;
        parts.push(json!({"part_number": number, "etag": etag}));
    }
    assert_eq!(
        multipart_uploads(&bucket).await,
        std::slice::from_ref(&upload_id)
    );

    // A wrong ETag is the client's mistake, and changes nothing.
    let mut wrong = parts.clone();
    wrong[1]["etag"] = json!("\"0123456789abcdef0123456789abcdef\"");
    let (status, body) = app
        .call(
            Method::POST,
            &format!("{multipart}/complete"),
            Some(&token),
            Some(json!({"upload_id": upload_id, "parts": wrong})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_code(&body), "invalid-parts", "{body}");
    let (status, body) = app
        .call(
            Method::POST,
            &format!("{multipart}/complete"),
            Some(&token),
            Some(json!({"upload_id": upload_id, "parts": [parts[0], parts[2]]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_code(&body), "validation-failed", "{body}");

    let (status, body) = app
        .call(
            Method::POST,
            &format!("{multipart}/complete"),
            Some(&token),
            Some(json!({"upload_id": upload_id, "parts": parts})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "queued");
    let done = app.wait_for_status(&token, &id, "succeeded").await;
    assert!(done["outputs"]["frames"].as_u64().unwrap() >= 4, "{done}");

    let key = bucket
        .keys()
        .await
        .into_iter()
        .find(|key| key.ends_with(&format!("/{id}/big.mp4")))
        .expect("the upload is in the bucket");
    let stored = bucket
        .client()
        .get(&ObjectPath::from(key))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&stored)),
        hex::encode(Sha256::digest(&source)),
        "the stored object is the source"
    );
    assert!(multipart_uploads(&bucket).await.is_empty());

    // Only a video awaiting its upload takes one.
    let (status, body) = app.call(Method::POST, &multipart, Some(&token), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "invalid-state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_uploads_leave_no_parts_and_only_the_owner_reaches_them() {
    let bucket = bucket().await;
    let dir = Sandbox::new();
    let app = serve_on(&bucket, &dir).await;
    let token = app.register("ana@example.com").await;
    let other = app.register("bob@example.com").await;
    let id = video(&app, &token, "big.mp4").await;
    let multipart = format!("/v1/videos/{id}/multipart");

    let (status, started) = app.call(Method::POST, &multipart, Some(&token), None).await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let upload_id = started["upload_id"].as_str().unwrap().to_owned();
    let urls = part_urls(&app, &token, &id, &upload_id, &[1]).await;
    put_part(&urls[0].1, &vec![7; PART_BYTES]).await;
    assert_eq!(
        multipart_uploads(&bucket).await,
        std::slice::from_ref(&upload_id)
    );

    // Another user's video is missing, whatever the request.
    let with_id = json!({"upload_id": upload_id, "part_numbers": [1]});
    let complete = json!({"upload_id": upload_id, "parts": [{"part_number": 1, "etag": "x"}]});
    let abort = format!("{multipart}?upload_id={upload_id}");
    for (method, path, body) in [
        (Method::POST, multipart.clone(), None),
        (Method::POST, format!("{multipart}/parts"), Some(with_id)),
        (
            Method::POST,
            format!("{multipart}/complete"),
            Some(complete),
        ),
        (Method::DELETE, abort.clone(), None),
    ] {
        let (status, answer) = app.call(method.clone(), &path, Some(&other), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
        assert_eq!(error_code(&answer), "not-found");
    }
    assert_eq!(
        multipart_uploads(&bucket).await,
        std::slice::from_ref(&upload_id)
    );

    let (status, body) = app
        .call(Method::DELETE, &multipart, Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "without upload_id: {body}");
    for _ in 0..2 {
        let (status, body) = app.call(Method::DELETE, &abort, Some(&token), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "abort (twice): {body}");
    }
    assert!(multipart_uploads(&bucket).await.is_empty());
    assert!(bucket.keys().await.is_empty(), "no object was made");
    assert_eq!(app.video(&token, &id).await["status"], "awaiting_upload");
}

#[tokio::test]
async fn local_storage_answers_multipart_unsupported() {
    let dir = Sandbox::new();
    let app = App::start(dir.root.path(), &[]).await;
    let token = app.register("ana@example.com").await;
    let other = app.register("bob@example.com").await;
    let id = video(&app, &token, "clip.mp4").await;
    let path = format!("/v1/videos/{id}/multipart");
    let (status, body) = app.call(Method::POST, &path, Some(&token), None).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{body}");
    assert_eq!(error_code(&body), "multipart-unsupported");
    let (status, body) = app.call(Method::POST, &path, Some(&other), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

/// Sends one tus PATCH of `bytes` at `offset`; returns the new offset.
async fn tus_patch(app: &App, path: &str, token: &str, offset: usize, bytes: &[u8]) -> u64 {
    use base64::Engine;
    let checksum = format!(
        "sha256 {}",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
    );
    let response = app
        .http
        .patch(format!("{}{path}", app.url))
        .bearer_auth(token)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", offset.to_string())
        .header("upload-checksum", checksum)
        .header("content-type", "application/offset+octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::NO_CONTENT,
        "PATCH at {offset}"
    );
    response.headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Two API processes on PostgreSQL and SeaweedFS: a tus upload whose pieces (odd sizes, across
/// the 5 MiB part boundaries) alternate between them is staged as multipart parts plus a tail
/// object, completes into the video's key and is processed; nothing is left staged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_pieces_staged_on_s3_continue_on_another_api_process() {
    use base64::Engine;
    let database = vidsnap_db::testing::ScratchDatabase::create("vidsnap_tus_s3").await;
    let bucket = bucket().await;
    let mut env = bucket.env();
    env.extend([
        ("VIDSNAP_DATABASE__KIND", "postgres".to_owned()),
        ("VIDSNAP_DATABASE__URL", database.url().to_owned()),
        (
            "VIDSNAP_AUTH__SECRET",
            "one secret for both API processes, 32+ characters".to_owned(),
        ),
        (
            "VIDSNAP_STORAGE__MULTIPART_PART_BYTES",
            PART_BYTES.to_string(),
        ),
    ]);
    let (first_dir, second_dir) = (Sandbox::new(), Sandbox::new());
    let first = App::start(first_dir.root.path(), &env).await;
    let second = App::start(second_dir.root.path(), &env).await;
    let source = big_clip(&first_dir.scratch());
    let token = first.register("ana@example.com").await;

    let name = base64::engine::general_purpose::STANDARD.encode("resumed.mp4");
    let created = first
        .http
        .post(format!("{}/v1/uploads", first.url))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", source.len().to_string())
        .header("upload-metadata", format!("filename {name},every NXM="))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let path = location[location.find("/v1/uploads/").unwrap()..].to_owned();
    let video = created.headers()["vidsnap-video"]
        .to_str()
        .unwrap()
        .to_owned();

    let mut at: usize = 0;
    for (i, size) in [3 * 1024 * 1024 + 1, 4 * 1024 * 1024 + 7, usize::MAX]
        .into_iter()
        .enumerate()
    {
        let end = source.len().min(at.saturating_add(size));
        let app = if i % 2 == 0 { &first } else { &second };
        let offset = tus_patch(app, &path, &token, at, &source[at..end]).await;
        assert_eq!(offset, end as u64);
        at = end;
    }
    second.wait_for_status(&token, &video, "succeeded").await;

    let keys = bucket.keys().await;
    let key = keys
        .iter()
        .find(|key| key.ends_with(&format!("/{video}/resumed.mp4")))
        .unwrap_or_else(|| panic!("the upload is in the bucket: {keys:?}"));
    let stored = bucket
        .client()
        .get(&ObjectPath::from(key.as_str()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&stored)),
        hex::encode(Sha256::digest(&source)),
        "the stored object is the source"
    );
    // Listed by the upload's own prefix: SeaweedFS leaves `.uploads/` (the name of its own
    // multipart folder) out of listings of the whole bucket.
    let folder = ObjectPath::from(format!(".uploads/{}", super::uploads::upload_id(&location)));
    let staged: Vec<_> = {
        use futures_util::TryStreamExt;
        object_store::ObjectStore::list(&bucket.client(), Some(&folder))
            .try_collect()
            .await
            .unwrap()
    };
    assert!(staged.is_empty(), "nothing left staged: {staged:?}");
    assert!(multipart_uploads(&bucket).await.is_empty());
    assert!(second.stop().await.success());
    assert!(first.stop().await.success());
}

/// A tus upload staged on SeaweedFS (a 5 MiB part and a tail object) and then left idle past
/// its 2 s lifetime is removed by the scheduler with everything it staged: its S3 multipart
/// upload is aborted, its `.uploads/{id}/` objects deleted and its video removed. Another
/// upload, written to every 500 ms meanwhile, keeps its session, multipart upload and tail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tus_uploads_on_s3_have_their_multipart_upload_aborted() {
    use std::time::Instant;

    use super::{
        cluster::{gauge, metrics},
        uploads::{create, head, upload_id},
    };

    let bucket = bucket().await;
    let dir = Sandbox::new();
    let mut env = bucket.env();
    env.extend([
        (
            "VIDSNAP_STORAGE__MULTIPART_PART_BYTES",
            PART_BYTES.to_string(),
        ),
        ("VIDSNAP_UPLOADS__TTL_SECONDS", "2".to_owned()),
        ("VIDSNAP_SCHEDULER__CLEANUP_SECONDS", "0.2".to_owned()),
    ]);
    let app = App::start(dir.root.path(), &env).await;
    let token = app.register("ana@example.com").await;
    let total = 12 * 1024 * 1024;
    let first = PART_BYTES + 1024 * 1024;
    let source: Vec<u8> = (0..total).map(|i| (i * 31 % 251) as u8).collect();
    let path_of = |location: &str| location[location.find("/v1/uploads/").unwrap()..].to_owned();
    // The keys under an upload's staging folder, listed by that prefix: SeaweedFS leaves its
    // own `.uploads` folder (its multipart uploads) out of listings of the whole bucket.
    let staged = |location: &str| {
        let folder = ObjectPath::from(format!(".uploads/{}", upload_id(location)));
        let client = bucket.client();
        async move {
            use futures_util::TryStreamExt;
            let listed: Vec<_> = object_store::ObjectStore::list(&client, Some(&folder))
                .try_collect()
                .await
                .unwrap();
            listed
                .into_iter()
                .map(|m| m.location.to_string())
                .collect::<Vec<_>>()
        }
    };

    // The idle upload: one full part and a 1 MiB tail, then nothing more.
    let (idle, idle_video) = create(&app, &token, total as u64, "idle.mp4").await;
    let idle_sent = Instant::now();
    let at = tus_patch(&app, &path_of(&idle), &token, 0, &source[..first]).await;
    assert_eq!(at, first as u64);
    let idle_multipart = multipart_uploads(&bucket).await;
    assert_eq!(
        idle_multipart.len(),
        1,
        "the part went up: {idle_multipart:?}"
    );
    let idle_staged = staged(&idle).await;
    assert_eq!(
        idle_staged.len(),
        2,
        "its multipart marker and its tail: {idle_staged:?}"
    );

    // The active upload: the same, then a KiB every 500 ms.
    let (active, active_video) = create(&app, &token, total as u64, "active.mp4").await;
    let active_path = path_of(&active);
    let mut written = tus_patch(&app, &active_path, &token, 0, &source[..first]).await;
    let active_multipart: Vec<String> = multipart_uploads(&bucket)
        .await
        .into_iter()
        .filter(|id| !idle_multipart.contains(id))
        .collect();
    assert_eq!(active_multipart.len(), 1, "{active_multipart:?}");

    let deadline = Instant::now() + Duration::from_secs(30);
    let last_state = loop {
        let end = written as usize + 1024;
        written = tus_patch(
            &app,
            &active_path,
            &token,
            written as usize,
            &source[written as usize..end],
        )
        .await;
        let (idle_status, _) = head(&app, &idle, &token).await;
        assert!(
            [StatusCode::OK, StatusCode::GONE, StatusCode::NOT_FOUND].contains(&idle_status),
            "{idle_status}"
        );
        let (video_status, _) = app
            .call(
                Method::GET,
                &format!("/v1/videos/{idle_video}"),
                Some(&token),
                None,
            )
            .await;
        let unfinished = multipart_uploads(&bucket).await;
        let left = staged(&idle).await;
        let removed = gauge(
            &metrics(&app).await,
            "vidsnap_scheduler_removed_total{what=\"upload\"}",
        );
        let state = format!(
            "HEAD {idle_status}, video {video_status}, multipart uploads {unfinished:?}, \
             removed {removed:?}, staged {left:?}"
        );
        if idle_status == StatusCode::NOT_FOUND
            && video_status == StatusCode::NOT_FOUND
            && unfinished == active_multipart
            && left.is_empty()
            && removed.is_some_and(|n| n >= 1.0)
        {
            break state;
        }
        assert!(
            Instant::now() < deadline,
            "the idle upload was not cleaned up within 30 s: {state}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        idle_sent.elapsed() >= Duration::from_secs(2),
        "removed before its 2 s lifetime ran out: {last_state}"
    );
    let removed = gauge(
        &metrics(&app).await,
        "vidsnap_scheduler_removed_total{what=\"upload\"}",
    );
    assert_eq!(removed, Some(1.0), "only the idle upload went");

    // The active upload lived through it all, with its part and its tail.
    let (status, headers) = head(&app, &active, &token).await;
    assert_eq!(status, StatusCode::OK, "the active upload lives");
    assert_eq!(
        headers["upload-offset"].to_str().unwrap(),
        written.to_string()
    );
    assert_eq!(
        app.video(&token, &active_video).await["status"],
        "awaiting_upload"
    );
    assert_eq!(multipart_uploads(&bucket).await, active_multipart);
    // Its marker and its tail (and the tail before, until the next append drops it).
    let active_staged = staged(&active).await;
    let named = |kind: &str| {
        active_staged
            .iter()
            .filter(|key| key.rsplit('/').next().unwrap().starts_with(kind))
            .count()
    };
    assert_eq!(named("multipart-"), 1, "{active_staged:?}");
    assert!(named("tail-") >= 1, "{active_staged:?}");

    // Terminating it (tus DELETE) aborts its multipart upload too: the bucket is left clean.
    let response = app
        .http
        .delete(format!("{}{active_path}", app.url))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(multipart_uploads(&bucket).await.is_empty());
    assert_eq!(staged(&active).await, Vec::<String>::new());
    assert!(app.stop().await.success());
}
