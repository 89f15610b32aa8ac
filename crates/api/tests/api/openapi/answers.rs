//! Real answers, successes and errors, against the description.

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use serde_json::{Value, json};
use tower::ServiceExt;
use vidsnap_domain::{
    Artefact, Change, ErrorCode, Failure, Jobs, Outputs, Repository, StepOutcome, Task, Transition,
    VideoId, VideoStatus,
};

use super::support::spawn_app;

/// Cuts the origin off a URL the API handed out.
fn path_of(url: &Value) -> String {
    let url = url.as_str().expect("a URL");
    url[url.find("/v1/").expect("an API path")..].to_owned()
}

#[tokio::test]
async fn real_answers_are_documented_and_match_their_schemas() {
    use StatusCode as S;
    let app = spawn_app().await;
    let anyone = app.client(None);

    // Accounts and tokens.
    let credentials = json!({"email": "Ada@Example.com", "password": "correct horse battery"});
    let register = "POST /v1/auth/register";
    let tokens = anyone
        .call(S::CREATED, register, Some(credentials.clone()))
        .await;
    anyone
        .call(S::CONFLICT, register, Some(credentials.clone()))
        .await;
    let bad = json!({"email": "nobody", "password": "short"});
    let invalid = anyone
        .call(S::UNPROCESSABLE_ENTITY, register, Some(bad))
        .await;
    assert!(
        invalid["error"]["fields"]["password"].is_string(),
        "{invalid}"
    );
    anyone
        .call(S::OK, "POST /v1/auth/login", Some(credentials))
        .await;
    let wrong = json!({"email": "ada@example.com", "password": "not the password"});
    anyone
        .call(S::UNAUTHORIZED, "POST /v1/auth/login", Some(wrong))
        .await;
    let refresh = json!({"refresh_token": tokens["refresh_token"]});
    let tokens = anyone
        .call(S::OK, "POST /v1/auth/refresh", Some(refresh.clone()))
        .await;
    anyone
        .call(S::UNAUTHORIZED, "POST /v1/auth/refresh", Some(refresh))
        .await;
    let user = app.client(tokens["access_token"].as_str());
    user.call(S::OK, "GET /v1/me", None).await;
    let stranger = app.client(Some("not a token"));
    stranger.call(S::UNAUTHORIZED, "GET /v1/me", None).await;

    // API keys: a key works as a bearer token and in X-Api-Key.
    let key = user
        .call(S::CREATED, "POST /v1/api-keys", Some(json!({"name": "ci"})))
        .await;
    let secret = key["key"].as_str().expect("the key's secret");
    app.client(Some(secret))
        .call(S::OK, "GET /v1/me", None)
        .await;
    let request = Request::get("/v1/me").header("x-api-key", secret);
    let answer = app
        .router
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"));
    assert_eq!(answer.await.expect("answer").status(), S::OK, "X-Api-Key");
    let blank = Some(json!({"name": " "}));
    user.call(S::UNPROCESSABLE_ENTITY, "POST /v1/api-keys", blank)
        .await;
    let keys = user.call(S::OK, "GET /v1/api-keys", None).await;
    assert_eq!(keys.as_array().map(Vec::len), Some(1));
    let revoke = format!("DELETE /v1/api-keys/{}", key["id"].as_str().expect("id"));
    user.call(S::NO_CONTENT, &revoke, None).await;
    user.call(S::NOT_FOUND, "DELETE /v1/api-keys/not-an-id", None)
        .await;

    // A webhook, before any outcome so that one is owed to it.
    let hook = Some(json!({"url": "https://example.com/hook"}));
    let hook = user.call(S::CREATED, "POST /v1/webhooks", hook).await;
    assert!(hook["secret"].is_string());
    let ftp = Some(json!({"url": "ftp://example.com"}));
    user.call(S::UNPROCESSABLE_ENTITY, "POST /v1/webhooks", ftp)
        .await;
    user.call(S::OK, "GET /v1/webhooks", None).await;
    let hook = format!("/v1/webhooks/{}", hook["id"].as_str().expect("id"));

    // A video, uploaded through its signed URL, then processed (by hand) to success.
    let options = json!({"every": "2s", "mode": "keyframe", "format": "png"});
    let new = json!({"file_name": "clip.mp4", "size": 11, "options": options});
    let made = user.call(S::CREATED, "POST /v1/videos", Some(new)).await;
    // A JSON body past the limit: 413 with its code, as documented.
    let huge = json!({"file_name": "a.mp4", "pad": "x".repeat(3 << 20)});
    let refused = user
        .call(S::PAYLOAD_TOO_LARGE, "POST /v1/videos", Some(huge))
        .await;
    assert_eq!(refused["error"]["code"], "payload-too-large");
    // A video may run a recipe of its own, or be stored for later jobs.
    let own = json!({"file_name": "own.mp4", "recipe_name": "thumbnail", "params": {"at": 2}});
    let own = user.call(S::CREATED, "POST /v1/videos", Some(own)).await;
    assert!(own["video"]["job"].is_string());
    let kept = json!({"file_name": "kept.mp4", "process": false});
    let kept = user.call(S::CREATED, "POST /v1/videos", Some(kept)).await;
    assert!(kept["video"]["job"].is_null());
    for refused in [
        json!({"file_name": "a.mp4", "process": false, "options": {"every": 5}}),
        json!({"file_name": "a.mp4", "recipe_name": "nope"}),
        json!({"file_name": "a.mp4", "recipe_name": "frames", "options": {"every": 5}}),
        json!({"file_name": "a.mp4", "recipe": {"inputs": ["a", "b"], "steps": [{"name": "p", "op": "probe", "inputs": ["a"]}]}}),
    ] {
        user.call(S::UNPROCESSABLE_ENTITY, "POST /v1/videos", Some(refused))
            .await;
    }
    let invalid = json!({"file_name": "clip.txt", "options": {"every": 0}});
    user.call(S::UNPROCESSABLE_ENTITY, "POST /v1/videos", Some(invalid))
        .await;
    let id = made["video"]["id"].as_str().expect("video id");
    let video = format!("/v1/videos/{id}");
    user.call(S::CONFLICT, &format!("POST {video}/uploaded"), None)
        .await;
    // Direct multipart uploads need S3 storage; this app's is local.
    user.call(S::NOT_IMPLEMENTED, &format!("POST {video}/multipart"), None)
        .await;
    let upload = path_of(&made["upload"]["url"]);
    let tampered = upload.replace("signature=", "signature=00");
    anyone
        .call(S::FORBIDDEN, &format!("PUT {tampered}"), None)
        .await;
    let put = Request::put(&upload).body(Body::from("not a video"));
    let answer = app.router.clone().oneshot(put.expect("request")).await;
    assert_eq!(answer.expect("answer").status(), S::OK, "upload");
    let queued = user
        .call(S::ACCEPTED, &format!("POST {video}/uploaded"), None)
        .await;
    assert_eq!(queued["status"], "queued");
    user.call(S::CONFLICT, &format!("POST {video}/retry"), None)
        .await;

    // Jobs over the uploaded video: the recipes, a job, its list, cancel, re-run, delete.
    let recipes = user.call(S::OK, "GET /v1/recipes", None).await;
    assert!(recipes["recipes"].as_array().is_some_and(|r| !r.is_empty()));
    let bad = json!({"recipe": {"steps": [{"name": "a", "op": "nope"}]}, "inputs": {"video": id}});
    let refused = user
        .call(S::UNPROCESSABLE_ENTITY, "POST /v1/jobs", Some(bad))
        .await;
    assert!(refused["error"]["fields"]["recipe.steps[0].op"].is_string());
    let new_job =
        json!({"recipe_name": "thumbnail", "inputs": {"video": id}, "params": {"at": 0.5}});
    let job = user.call(S::CREATED, "POST /v1/jobs", Some(new_job)).await;
    assert_eq!(job["steps"][0]["status"], "ready");
    let job = format!("/v1/jobs/{}", job["id"].as_str().expect("job id"));
    user.call(S::OK, "GET /v1/jobs?status=queued", None).await;
    user.call(S::OK, &format!("GET {job}"), None).await;
    user.call(S::ACCEPTED, &format!("POST {job}/cancel"), None)
        .await;
    user.call(S::CONFLICT, &format!("POST {job}/cancel"), None)
        .await;
    let edit = json!({"options": {"at": 0}});
    user.call(
        S::ACCEPTED,
        &format!("POST {job}/steps/thumbnail/retry"),
        Some(edit),
    )
    .await;
    user.call(S::NOT_FOUND, &format!("POST {job}/steps/nope/retry"), None)
        .await;
    // A worker runs it: the webhook is owed a job.succeeded, whose body matches `JobEvent`.
    let job_id = job.rsplit('/').next().expect("id").parse().expect("job id");
    let task = Task {
        job: job_id,
        step: "thumbnail".to_owned(),
        attempt: 1,
    };
    let produced = Artefact {
        name: "thumbnail".to_owned(),
        key: "k/thumbnail.jpg".to_owned(),
        content_type: "image/jpeg".to_owned(),
        bytes: 3,
        sha256: "ab".repeat(32),
    };
    for change in [
        Change::Start {
            task,
            worker: "w".to_owned(),
            lease_until: chrono::Utc::now() + chrono::TimeDelta::minutes(1),
        },
        Change::Finish {
            step: "thumbnail".to_owned(),
            attempt: 1,
            outcome: StepOutcome::Succeeded {
                artefacts: vec![produced],
                result: None,
            },
        },
    ] {
        app.store
            .change_job(None, job_id, change)
            .await
            .expect("change");
    }
    let deliveries = user
        .call(S::OK, &format!("GET {hook}/deliveries"), None)
        .await;
    let events: Vec<&str> = deliveries
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|d| d["event"].as_str())
        .collect();
    assert_eq!(
        events,
        ["job.succeeded"],
        "the job's outcome, announced once"
    );
    assert_eq!(
        deliveries[0]["job"],
        job_id.to_string(),
        "the delivery names its job"
    );
    user.call(S::NO_CONTENT, &format!("DELETE {job}"), None)
        .await;
    user.call(S::NOT_FOUND, &format!("GET {job}"), None).await;
    let video_id: VideoId = id.parse().expect("video id");
    let prefix = app
        .store
        .video(None, video_id)
        .await
        .expect("video")
        .prefix();
    let mut start = Transition::to(VideoStatus::Processing);
    start.start_attempt = true;
    let mut done = Transition::to(VideoStatus::Succeeded);
    done.probe = Some(json!({"duration": 6.0}));
    done.outputs = Some(Outputs {
        zip_key: format!("{prefix}clip-frames.zip"),
        zip_bytes: 123,
        thumbnail_key: format!("{prefix}clip-thumbnail.png"),
        frames: 3,
    });
    for step in [start, done] {
        app.store
            .transition(video_id, step)
            .await
            .expect("transition");
    }
    let shown = user.call(S::OK, &format!("GET {video}"), None).await;
    let thumbnail = path_of(&shown["outputs"]["thumbnail"]["url"]);
    anyone
        .call(S::NOT_FOUND, &format!("GET {thumbnail}"), None)
        .await;
    // An event stream's body never ends; its head is checked against the description.
    let stream = format!("{video}/events");
    let events = app
        .send("GET", &stream, tokens["access_token"].as_str(), None)
        .await;
    assert_eq!(events.status, S::OK);
    assert_eq!(events.headers[header::CONTENT_TYPE], "text/event-stream");
    let described = &app.spec["paths"]["/v1/videos/{id}/events"]["get"]["responses"]["200"];
    assert!(described["content"]["text/event-stream"].is_object());
    user.call(S::OK, "GET /v1/videos?limit=1", None).await;
    user.call(S::UNPROCESSABLE_ENTITY, "GET /v1/videos?status=lost", None)
        .await;
    user.call(S::UNPROCESSABLE_ENTITY, "GET /v1/videos?limit=0", None)
        .await;

    // The success was owed to the webhook: its delivery is listed and can be redelivered.
    let deliveries = user
        .call(S::OK, &format!("GET {hook}/deliveries"), None)
        .await;
    let delivery = deliveries[0]["id"].as_str().expect("a delivery");
    let redeliver = format!("POST {hook}/deliveries/{delivery}/redeliver");
    user.call(S::ACCEPTED, &redeliver, None).await;
    let unknown = format!("POST {hook}/deliveries/{}/redeliver", VideoId::new());
    user.call(S::NOT_FOUND, &unknown, None).await;

    // A second video fails for good, then is retried and deleted.
    let made = user
        .call(
            S::CREATED,
            "POST /v1/videos",
            Some(json!({"file_name": "b.mkv"})),
        )
        .await;
    let other: VideoId = made["video"]["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("id");
    // Its job runs and meets input that can never succeed, as a worker would report it.
    let job = app
        .store
        .video(None, other)
        .await
        .expect("video")
        .job
        .expect("its job");
    let task = Task {
        job,
        step: "frames".to_owned(),
        attempt: 1,
    };
    for change in [
        Change::InputUploaded {
            video: other,
            bytes: None,
        },
        Change::Start {
            task,
            worker: "w".to_owned(),
            lease_until: chrono::Utc::now() + chrono::TimeDelta::minutes(1),
        },
        Change::Finish {
            step: "frames".to_owned(),
            attempt: 1,
            outcome: StepOutcome::Abort {
                failure: Failure {
                    code: ErrorCode::NotAVideo,
                    message: "not a video".to_owned(),
                },
            },
        },
    ] {
        app.store
            .change_job(None, job, change)
            .await
            .expect("change");
    }
    let other = format!("/v1/videos/{other}");
    let dead = user.call(S::OK, &format!("GET {other}"), None).await;
    assert_eq!(dead["last_error"]["code"], "not-a-video");
    user.call(S::ACCEPTED, &format!("POST {other}/retry"), None)
        .await;
    user.call(S::NO_CONTENT, &format!("DELETE {other}"), None)
        .await;
    user.call(S::NOT_FOUND, &format!("GET {other}"), None).await;
    user.call(S::NOT_FOUND, &format!("POST {other}/retry"), None)
        .await;
    user.call(S::NO_CONTENT, &format!("DELETE {hook}"), None)
        .await;
    user.call(S::NOT_FOUND, &format!("GET {hook}/deliveries"), None)
        .await;

    // Health, and the description itself.
    anyone.call(S::OK, "GET /healthz", None).await;
    anyone.call(S::OK, "GET /readyz", None).await;
    anyone.call(S::NOT_FOUND, "GET /metrics", None).await;
    anyone.call(S::OK, "GET /openapi.json", None).await;
}
