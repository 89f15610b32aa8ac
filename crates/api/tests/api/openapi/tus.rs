//! Real tus answers (`/v1/uploads`) against the description: every status documented, error
//! bodies matching their schema, every tus header sent documented for its status.

use std::{collections::BTreeMap, time::Duration};

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::Utc;
use sha2::{Digest, Sha256};
use tower::ServiceExt;
use vidsnap_domain::{Repository, Upload, UploadId, VideoStatus};

use super::support::{TestApp, spawn_app};

fn tus(extra: &[(&str, &str)]) -> Vec<(&'static str, String)> {
    let mut headers = vec![("tus-resumable", "1.0.0".to_owned())];
    for (name, value) in extra {
        let name: &'static str = match *name {
            "upload-length" => "upload-length",
            "upload-offset" => "upload-offset",
            "upload-metadata" => "upload-metadata",
            "upload-checksum" => "upload-checksum",
            "content-type" => "content-type",
            other => panic!("add {other} to tus()"),
        };
        headers.push((name, (*value).to_owned()));
    }
    headers
}

const PIECE: (&str, &str) = ("content-type", "application/offset+octet-stream");

fn named(name: &str) -> String {
    format!("filename {}", STANDARD.encode(name))
}

async fn token(app: &TestApp) -> String {
    let credentials =
        serde_json::json!({"email": "tus@example.com", "password": "correct horse battery"});
    let tokens = app
        .client(None)
        .call(
            StatusCode::CREATED,
            "POST /v1/auth/register",
            Some(credentials),
        )
        .await;
    tokens["access_token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn tus_answers_are_documented_and_match_their_schemas() {
    use StatusCode as S;
    let app = spawn_app().await;
    let token = token(&app).await;
    let user = app.client(Some(&token));
    let anyone = app.client(None);
    let none = Vec::new;

    let options = anyone
        .call_raw(S::NO_CONTENT, "OPTIONS /v1/uploads", &[], none())
        .await;
    assert_eq!(options.headers["tus-version"], "1.0.0");

    // Creation.
    let create = "POST /v1/uploads";
    let refused = user
        .call_raw(
            S::PRECONDITION_FAILED,
            create,
            &[("upload-length", "5".into())],
            none(),
        )
        .await;
    assert_eq!(refused.headers["tus-resumable"], "1.0.0");
    user.call_raw(
        S::BAD_REQUEST,
        create,
        &tus(&[("upload-metadata", &named("a.mp4"))]),
        none(),
    )
    .await;
    let huge = (20u64 << 30).to_string();
    let too_large = tus(&[
        ("upload-length", &huge),
        ("upload-metadata", &named("a.mp4")),
    ]);
    user.call_raw(S::PAYLOAD_TOO_LARGE, create, &too_large, none())
        .await;
    let invalid = user
        .call_raw(
            S::UNPROCESSABLE_ENTITY,
            create,
            &tus(&[("upload-length", "5")]),
            none(),
        )
        .await;
    assert!(invalid.body["error"]["fields"]["metadata.filename"].is_string());
    let json_body = tus(&[
        ("upload-length", "5"),
        ("upload-metadata", &named("a.mp4")),
        ("content-type", "application/json"),
    ]);
    user.call_raw(
        S::UNSUPPORTED_MEDIA_TYPE,
        create,
        &json_body,
        b"{}".to_vec(),
    )
    .await;
    let with_body = tus(&[
        ("upload-length", "10"),
        ("upload-metadata", &named("a.mp4")),
        PIECE,
    ]);
    let created = user
        .call_raw(S::CREATED, create, &with_body, b"hello".to_vec())
        .await;
    assert_eq!(created.headers["upload-offset"], "5");
    let url = created.headers[header::LOCATION]
        .to_str()
        .expect("location")
        .to_owned();

    // State, pieces and their refusals.
    let head = format!("HEAD {url}");
    let status = user.call_raw(S::OK, &head, &tus(&[]), none()).await;
    assert_eq!(status.headers["upload-offset"], "5");
    user.call_raw(S::PRECONDITION_FAILED, &head, &[], none())
        .await;
    let unknown = format!("HEAD /v1/uploads/{}", UploadId::new());
    user.call_raw(S::NOT_FOUND, &unknown, &tus(&[]), none())
        .await;
    let patch = format!("PATCH {url}");
    user.call_raw(
        S::CONFLICT,
        &patch,
        &tus(&[("upload-offset", "0"), PIECE]),
        b"x".to_vec(),
    )
    .await;
    user.call_raw(
        S::UNSUPPORTED_MEDIA_TYPE,
        &patch,
        &tus(&[("upload-offset", "5")]),
        b"world".to_vec(),
    )
    .await;
    let wrong = format!("sha256 {}", STANDARD.encode(Sha256::digest(b"w0rld")));
    let corrupt = tus(&[("upload-offset", "5"), ("upload-checksum", &wrong), PIECE]);
    user.call_raw(
        S::from_u16(460).expect("460"),
        &patch,
        &corrupt,
        b"world".to_vec(),
    )
    .await;
    let md5 = tus(&[
        ("upload-offset", "5"),
        ("upload-checksum", "md5 AAAA"),
        PIECE,
    ]);
    user.call_raw(S::BAD_REQUEST, &patch, &md5, b"world".to_vec())
        .await;
    user.call_raw(
        S::PAYLOAD_TOO_LARGE,
        &patch,
        &tus(&[("upload-offset", "5"), PIECE]),
        b"world!".to_vec(),
    )
    .await;
    let right = format!("sha256 {}", STANDARD.encode(Sha256::digest(b"world")));
    let last = tus(&[("upload-offset", "5"), ("upload-checksum", &right), PIECE]);
    let done = user
        .call_raw(S::NO_CONTENT, &patch, &last, b"world".to_vec())
        .await;
    assert_eq!(done.headers["upload-offset"], "10");

    // A second writer while a piece streams: 423.
    let busy = user
        .call_raw(
            S::CREATED,
            create,
            &tus(&[
                ("upload-length", "10"),
                ("upload-metadata", &named("b.mp4")),
            ]),
            none(),
        )
        .await;
    let busy = busy.headers[header::LOCATION]
        .to_str()
        .expect("location")
        .to_owned();
    // The slow PATCH: its body arrives when the test feeds it.
    let start_slow = || {
        let (feed, mut pieces) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
        let stream = futures_util::stream::poll_fn(move |cx| pieces.poll_recv(cx));
        let mut slow = Request::patch(&busy)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_LENGTH, "10");
        for (name, value) in tus(&[("upload-offset", "0"), PIECE]) {
            slow = slow.header(name, value);
        }
        let slow = slow.body(Body::from_stream(stream)).expect("request");
        (feed, tokio::spawn(app.router.clone().oneshot(slow)))
    };
    let (mut feed, mut holder) = start_slow();
    feed.send(Ok(b"01234".to_vec())).await.expect("feed");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        // A stale offset changes nothing whoever holds the lease: 409 until the slow PATCH
        // does, then 423.
        let probe = tus(&[("upload-offset", "1"), PIECE]);
        let request =
            Request::patch(&busy).header(header::AUTHORIZATION, format!("Bearer {token}"));
        let request = probe
            .iter()
            .fold(request, |r, (n, v)| r.header(*n, v))
            .body(Body::from("x"))
            .expect("probe");
        let status = app
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("answer")
            .status();
        if status == S::LOCKED {
            user.call_raw(S::LOCKED, &format!("DELETE {busy}"), &tus(&[]), none())
                .await;
            break;
        }
        assert_eq!(status, S::CONFLICT);
        // A probe holds the lease for an instant too: if the slow PATCH came then, it was
        // refused (423), and is sent again, as a tus client would.
        if holder.is_finished() {
            (feed, holder) = start_slow();
            feed.send(Ok(b"01234".to_vec())).await.expect("feed");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow PATCH never held the upload"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    feed.send(Ok(b"56789".to_vec())).await.expect("feed");
    drop(feed);
    let held = holder.await.expect("task").expect("answer");
    assert_eq!(held.status(), S::NO_CONTENT);

    // Termination, then it is gone.
    let delete = format!("DELETE {busy}");
    user.call_raw(S::PRECONDITION_FAILED, &delete, &[], none())
        .await;
    user.call_raw(S::NO_CONTENT, &delete, &tus(&[]), none())
        .await;
    user.call_raw(S::NOT_FOUND, &delete, &tus(&[]), none())
        .await;

    // An expired upload: 410 to HEAD and PATCH.
    let owner = app
        .store
        .user_by_email("tus@example.com")
        .await
        .expect("user");
    let video = vidsnap_db::contract::video(owner.id, "old.mp4");
    assert_eq!(video.status, VideoStatus::AwaitingUpload);
    let past = Utc::now() - chrono::TimeDelta::seconds(5);
    let expired = Upload {
        id: UploadId::new(),
        owner: owner.id,
        video: video.id,
        total_bytes: 10,
        uploaded_bytes: 0,
        metadata: BTreeMap::new(),
        staging: None,
        expires_at: past,
        created_at: past,
        updated_at: past,
    };
    app.store
        .create_upload(&video, &expired)
        .await
        .expect("an expired upload");
    let gone = format!("/v1/uploads/{}", expired.id);
    user.call_raw(S::GONE, &format!("HEAD {gone}"), &tus(&[]), none())
        .await;
    user.call_raw(
        S::GONE,
        &format!("PATCH {gone}"),
        &tus(&[("upload-offset", "0"), PIECE]),
        b"x".to_vec(),
    )
    .await;
}

/// `recipe` and `params` in `Upload-Metadata` choose the video's job, as `recipe_name` and
/// `params` of `POST /v1/videos` do; a bad one is refused at its metadata path.
#[tokio::test]
async fn upload_metadata_may_name_a_builtin_recipe() {
    use StatusCode as S;
    let app = spawn_app().await;
    let token = token(&app).await;
    let user = app.client(Some(&token));
    let metadata = |recipe: &str, params: &str| {
        format!(
            "{},recipe {},params {}",
            named("clip.mp4"),
            STANDARD.encode(recipe),
            STANDARD.encode(params)
        )
    };
    let created = user
        .call_raw(
            S::CREATED,
            "POST /v1/uploads",
            &tus(&[
                ("upload-length", "5"),
                ("upload-metadata", &metadata("thumbnail", r#"{"at": 0.5}"#)),
            ]),
            Vec::new(),
        )
        .await;
    let video = created.headers["vidsnap-video"].to_str().expect("id");
    let shown = user
        .call(S::OK, &format!("GET /v1/videos/{video}"), None)
        .await;
    let job = shown["job"].as_str().expect("the video's job");
    let job = user.call(S::OK, &format!("GET /v1/jobs/{job}"), None).await;
    assert_eq!(job["recipe_name"], "thumbnail", "{job}");
    assert_eq!(job["params"]["at"], 0.5, "{job}");

    for (recipe, params, field) in [
        ("no-such-recipe", "{}", "metadata.recipe_name"),
        ("thumbnail", "[1]", "metadata.params"),
        ("thumbnail", r#"{"at": "soon"}"#, "metadata.params.at"),
    ] {
        let refused = user
            .call_raw(
                S::UNPROCESSABLE_ENTITY,
                "POST /v1/uploads",
                &tus(&[
                    ("upload-length", "5"),
                    ("upload-metadata", &metadata(recipe, params)),
                ]),
                Vec::new(),
            )
            .await;
        let fields = &refused.body["error"]["fields"];
        assert!(fields.get(field).is_some(), "{recipe} {params}: {fields}");
    }
}
