//! The protocol's answers with plain HTTP: versions, offsets, checksums, content types, lengths,
//! termination, ownership, and one writer per upload.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_answers_follow_the_protocol() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &[]).await;
    let token = app.register("ana@example.com").await;

    // Discovery needs no credential.
    let options = app
        .http
        .request(Method::OPTIONS, format!("{}/v1/uploads", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(options.status(), StatusCode::NO_CONTENT);
    let headers = options.headers();
    assert_eq!(header(headers, "tus-resumable"), "1.0.0");
    assert_eq!(header(headers, "tus-version"), "1.0.0");
    assert_eq!(
        header(headers, "tus-extension"),
        "creation,creation-with-upload,termination,expiration,checksum"
    );
    assert_eq!(header(headers, "tus-checksum-algorithm"), "sha1,sha256");
    assert_eq!(header(headers, "tus-max-size"), "10737418240");

    // Creation: version, length and metadata are checked.
    let post = || tus(&app, Method::POST, "/v1/uploads", &token);
    let unversioned = app
        .http
        .post(format!("{}/v1/uploads", app.url))
        .bearer_auth(&token)
        .header("upload-length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(header(unversioned.headers(), "tus-version"), "1.0.0");
    assert_eq!(
        error_code(unversioned).await,
        (
            StatusCode::PRECONDITION_FAILED,
            "unsupported-version".into()
        )
    );
    let old = app
        .http
        .post(format!("{}/v1/uploads", app.url))
        .bearer_auth(&token)
        .header("tus-resumable", "0.2.2")
        .header("upload-length", "10")
        .header("upload-metadata", metadata(&[("filename", "a.mp4")]))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::PRECONDITION_FAILED);
    let no_length = post()
        .header("upload-metadata", metadata(&[("filename", "a.mp4")]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(no_length).await,
        (StatusCode::BAD_REQUEST, "invalid-header".into())
    );
    let huge = post()
        .header("upload-length", (20u64 << 30).to_string())
        .header("upload-metadata", metadata(&[("filename", "a.mp4")]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(huge).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "too-large".into())
    );
    let bad = post()
        .header("upload-length", "10")
        .header(
            "upload-metadata",
            metadata(&[("filename", "notes.txt"), ("every", "0s"), ("mode", "fast")]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = serde_json::from_slice(&bad.bytes().await.unwrap()).unwrap();
    for field in ["metadata.filename", "metadata.every", "metadata.mode"] {
        assert!(
            body["error"]["fields"][field].is_string(),
            "{field}: {body}"
        );
    }
    let unnamed = post().header("upload-length", "10").send().await.unwrap();
    assert_eq!(unnamed.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // An upload of 10 bytes; its video is visible at once.
    let (url, video) = create(&app, &token, 10, "clip.mp4").await;
    assert!(url.starts_with("/v1/uploads/"), "{url}");
    assert_eq!(app.video(&token, &video).await["status"], "awaiting_upload");
    let (status, headers) = head(&app, &url, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "upload-offset"), "0");
    assert_eq!(header(&headers, "upload-length"), "10");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert!(header(&headers, "upload-expires").ends_with(" GMT"));
    assert_eq!(
        header(&headers, "upload-metadata"),
        metadata(&[("filename", "clip.mp4")])
    );

    // Pieces: content type, version, offset.
    let wrong_type = tus(&app, Method::PATCH, &url, &token)
        .header("upload-offset", "0")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(wrong_type).await,
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type".into()
        )
    );
    let unversioned = app
        .http
        .patch(format!("{}{url}", app.url))
        .bearer_auth(&token)
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(unversioned.status(), StatusCode::PRECONDITION_FAILED);
    let first = patch(
        &app,
        &url,
        &token,
        0,
        b"hello",
        Some(sha256_header(b"hello")),
    )
    .await;
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(first.headers(), "upload-offset"), "5");
    assert_eq!(header(first.headers(), "tus-resumable"), "1.0.0");
    assert!(first.headers().contains_key("upload-expires"));
    let again = patch(&app, &url, &token, 0, b"hello", None).await;
    assert_eq!(
        error_code(again).await,
        (StatusCode::CONFLICT, "offset-mismatch".into())
    );

    // A piece that does not match its checksum is discarded: the offset stays, and so do the
    // staged bytes.
    let corrupt = patch(&app, &url, &token, 5, b"world", Some(sha1_header(b"w0rld"))).await;
    assert_eq!(
        error_code(corrupt).await,
        (
            StatusCode::from_u16(460).unwrap(),
            "checksum-mismatch".into()
        )
    );
    assert_eq!(offset(&app, &url, &token).await, 5);
    let staged_file = data.path().join("blobs/.uploads").join(upload_id(&url));
    assert_eq!(std::fs::read(&staged_file).unwrap(), b"hello");
    let unknown = patch(&app, &url, &token, 5, b"world", Some("md5 AAAA".into())).await;
    assert_eq!(
        error_code(unknown).await,
        (StatusCode::BAD_REQUEST, "invalid-header".into())
    );
    let long = patch(&app, &url, &token, 5, b"world!", None).await;
    assert_eq!(
        error_code(long).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "too-large".into())
    );
    assert_eq!(offset(&app, &url, &token).await, 5);

    // Another user's upload is a 404, like a missing one.
    let bob = app.register("bob@example.com").await;
    let (status, _) = head(&app, &url, &bob).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let theirs = patch(&app, &url, &bob, 5, b"world", None).await;
    assert_eq!(
        error_code(theirs).await,
        (StatusCode::NOT_FOUND, "not-found".into())
    );
    let delete = tus(&app, Method::DELETE, &url, &bob).send().await.unwrap();
    assert_eq!(delete.status(), StatusCode::NOT_FOUND);
    let (status, _) = head(&app, "/v1/uploads/not-an-id", &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The last piece completes it: stored under the video's key, queued, nothing staged.
    let last = patch(&app, &url, &token, 5, b"world", Some(sha1_header(b"world"))).await;
    assert_eq!(last.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(last.headers(), "upload-offset"), "10");
    assert!(!last.headers().contains_key("upload-expires"));
    let video_now = app
        .wait_for(&token, &video, "leaving awaiting_upload", |v| {
            v["status"] != "awaiting_upload"
        })
        .await;
    assert_eq!(crate::service::support::history(&video_now)[1], "queued");
    assert_eq!(
        video_now["history"][1]["reason"],
        "upload complete (10 bytes)"
    );
    let stored = data
        .path()
        .join("blobs")
        .join(user_id(&app, &token).await)
        .join(&video)
        .join("clip.mp4");
    assert_eq!(std::fs::read(stored).unwrap(), b"helloworld");
    assert_eq!(staged(data.path()), Vec::<String>::new());
    assert_eq!(
        offset(&app, &url, &token).await,
        10,
        "HEAD after completion"
    );

    // Creation with upload: the body is the first piece.
    let response = post()
        .header("upload-length", "8")
        .header("upload-metadata", metadata(&[("filename", "both.mp4")]))
        .header("content-type", "application/offset+octet-stream")
        .header("upload-checksum", sha1_header(b"1234"))
        .body("1234")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(header(response.headers(), "upload-offset"), "4");
    let both = header(response.headers(), "location");
    assert_eq!(offset(&app, &both, &token).await, 4);

    // Termination: the staged bytes and the waiting video go.
    let both_video = header(&head(&app, &both, &token).await.1, "vidsnap-video");
    assert_eq!(staged(data.path()), vec![upload_id(&both).to_owned()]);
    let terminated = tus(&app, Method::DELETE, &both, &token)
        .send()
        .await
        .unwrap();
    assert_eq!(terminated.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(terminated.headers(), "tus-resumable"), "1.0.0");
    let (status, _) = head(&app, &both, &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/v1/videos/{both_video}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(staged(data.path()), Vec::<String>::new());

    // Deleting the video of an upload in progress drops its staged bytes too.
    let (url, video) = create(&app, &token, 10, "dropped.mp4").await;
    assert_eq!(
        patch(&app, &url, &token, 0, b"abc", None).await.status(),
        StatusCode::NO_CONTENT
    );
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/videos/{video}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(staged(data.path()), Vec::<String>::new());
    let (status, _) = head(&app, &url, &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// While a piece streams into an upload, a second writer is refused at once with 423 (its own
/// upload's writes are not blocked, and HEAD still answers); a piece cut off without a
/// checksum keeps what arrived; after the first piece, the upload is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_writer_per_upload_and_never_a_global_lock() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &[]).await;
    let token = app.register("ana@example.com").await;
    let (url, _) = create(&app, &token, 100, "busy.mp4").await;
    let (other, _) = create(&app, &token, 10, "other.mp4").await;

    let start_slow = || async {
        let mut slow = RawPatch::start(&app, &url, &token, 0, 60).await;
        slow.send(&[b'a'; 20]).await;
        slow
    };
    let mut slow = start_slow().await;
    // A probe with a stale offset changes nothing whoever gets the lease: 409 until the slow
    // PATCH holds it, then 423. A probe holds the lease for an instant too, so the slow PATCH
    // may arrive then and be refused (423): like any tus client, it is sent again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let probe = patch(&app, &url, &token, 1, b"x", None).await;
        match error_code(probe).await {
            (StatusCode::LOCKED, code) => {
                assert_eq!(code, "locked");
                break;
            }
            (StatusCode::CONFLICT, _) => {
                if slow.answered() {
                    slow = start_slow().await;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "the slow PATCH never held the upload"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let busy = patch(&app, &url, &token, 0, b"x", None).await;
    assert_eq!(
        busy.status(),
        StatusCode::LOCKED,
        "the right offset waits too"
    );
    let terminate = tus(&app, Method::DELETE, &url, &token)
        .send()
        .await
        .unwrap();
    assert_eq!(terminate.status(), StatusCode::LOCKED);
    // Another upload is not blocked, and the busy one can still be asked about.
    let elsewhere = patch(&app, &other, &token, 0, b"0123456789", None).await;
    assert_eq!(elsewhere.status(), StatusCode::NO_CONTENT);
    assert_eq!(offset(&app, &url, &token).await, 0);

    slow.send(&[b'b'; 40]).await;
    let (status, head_text) = slow.answer().await;
    assert_eq!(status, 204, "{head_text}");
    assert!(head_text.contains("upload-offset: 60"), "{head_text}");
    assert!(head_text.contains("tus-resumable: 1.0.0"), "{head_text}");
    assert_eq!(offset(&app, &url, &token).await, 60);

    // A client that dies mid-piece (no checksum): what arrived is kept, and the upload is free.
    let mut dying = RawPatch::start(&app, &url, &token, 60, 40).await;
    dying.send(&[b'c'; 15]).await;
    drop(dying);
    let deadline = Instant::now() + Duration::from_secs(30);
    while offset(&app, &url, &token).await != 75 {
        assert!(
            Instant::now() < deadline,
            "the interrupted piece was not recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rest = patch(&app, &url, &token, 75, &[b'd'; 25], None).await;
    assert_eq!(rest.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(rest.headers(), "upload-offset"), "100");
}
