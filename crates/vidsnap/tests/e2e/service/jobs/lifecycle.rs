//! A job's life over HTTP: waiting for its upload, cancel, re-runs, event streams, webhooks and
//! e-mails, and the job behind every `/v1/videos` video.

#![allow(clippy::unwrap_used)]

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waits_for_its_upload_then_runs_and_its_event_stream_ends_with_it() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &[]).await;
    let token = app.register("ana@example.com").await;
    let created = app
        .create(
            &token,
            json!({"file_name": "later.mp4", "options": {"every": "10s"}}),
        )
        .await;
    let video = created["video"]["id"].as_str().unwrap().to_owned();

    let job = create_job(
        &app,
        &token,
        json!({"recipe_name": "thumbnail", "inputs": {"video": video}, "params": {"at": 2}}),
    )
    .await;
    assert_eq!(job["status"], "waiting", "{job}");
    assert_eq!(step(&job, "thumbnail")["status"], "waiting");
    let id = id_of(&job);

    // Followed from before the upload.
    let follower = tokio::spawn(follow_job(
        app.http.clone(),
        app.url.clone(),
        token.clone(),
        id.clone(),
    ));
    // Nothing can start it but the upload.
    let still = get_job(&app, &token, &id).await;
    assert_eq!(still["status"], "waiting", "{still}");
    assert!(step(&still, "thumbnail")["started_at"].is_null());
    assert_eq!(step(&still, "thumbnail")["attempts"], 0);

    let response = app
        .http
        .put(created["upload"]["url"].as_str().unwrap())
        .body(std::fs::read(clip("ids.mp4")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let events = follower.await.unwrap();
    let statuses: Vec<&str> = events
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.first(), Some(&"waiting"), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&"succeeded"), "{statuses:?}");
    assert!(
        statuses[..statuses.len() - 1]
            .iter()
            .all(|s| ["waiting", "queued", "running"].contains(s)),
        "only the last event is terminal: {statuses:?}"
    );
    // The last event is the whole job, as GET shows it, with its links.
    let last = events.last().unwrap();
    assert_eq!(last["id"], id.as_str());
    let thumbnail = step(last, "thumbnail");
    assert_eq!(thumbnail["status"], "succeeded");
    let bytes = download(&app, artefact(thumbnail, "thumbnail")).await;
    assert_eq!(&bytes[..2], &[0xFF, 0xD8], "a JPEG");
    assert_eq!(thumbnail["result"]["frame_time"], 2.0);

    let job = get_job(&app, &token, &id).await;
    assert_eq!(job["status"], "succeeded");
    let history: Vec<&str> = job["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    // A new job's steps start `waiting` (no event): the upload makes the step ready.
    assert_eq!(history, ["ready", "running", "succeeded"]);

    // Following a finished job: one event, then the end.
    let events = follow_job(app.http.clone(), app.url.clone(), token, id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_running_step_and_cleans_its_scratch_then_a_rerun_finishes() {
    let data = tempfile::tempdir().unwrap();
    // Heartbeats carry progress and notice a cancel: often, so the test sees both soon.
    let env = [("VIDSNAP_WORKER__STEP_HEARTBEAT_SECONDS", "0.2".to_owned())];
    let app = App::start(data.path(), &env).await;
    let (token, video) = user_with_video(&app, "ana@example.com", "long-png.mp4", "60s").await;
    // The video's own job first, so the scratch directory is the frames step's alone.
    app.wait_for_status(&token, &video, "succeeded").await;
    assert!(scratch_empty(data.path()));

    // 120 s of 640x480 every 0.1 s as PNG: 1200 frames, many seconds of work.
    let created = create_job(
        &app,
        &token,
        json!({"recipe_name": "frames", "inputs": {"video": video},
               "params": {"every": "0.1s", "format": "png"}}),
    )
    .await;
    let id = id_of(&created);
    let follower = tokio::spawn(follow_job(
        app.http.clone(),
        app.url.clone(),
        token.clone(),
        id.clone(),
    ));
    let running = wait_job(&app, &token, &id, "progress", |job| {
        let frames = step(job, "frames");
        frames["status"] == "running" && frames["progress"].as_u64().is_some_and(|p| p > 0)
    })
    .await;
    assert_eq!(running["status"], "running");
    assert!(
        step(&running, "frames")["progress"].as_u64().unwrap() < 50,
        "most of the work is still ahead: {running}"
    );
    assert!(!scratch_empty(data.path()), "the step works in the scratch");

    let (status, cancelled) = app
        .call(
            Method::POST,
            &format!("/v1/jobs/{id}/cancel"),
            Some(&token),
            None,
        )
        .await;
    let asked = Instant::now();
    assert_eq!(status, StatusCode::ACCEPTED, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(step(&cancelled, "frames")["status"], "cancelled");

    // The worker stops the run: its scratch files go within seconds (the next heartbeat sees
    // the cancel). Left to finish, the run would take longer than this: 1200 PNGs of 640x480
    // take about 8 s here, and the cancel came at a few percent.
    let deadline = asked + Duration::from_secs(6);
    while !scratch_empty(data.path()) {
        assert!(
            Instant::now() < deadline,
            "scratch left after the cancel: {:?}",
            Sandbox::list(&data.path().join("tmp"))
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The event stream ended with the cancel.
    let events = follower.await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last["status"], "cancelled", "{last}");
    assert_eq!(step(last, "frames")["status"], "cancelled");
    assert!(
        events[..events.len() - 1]
            .iter()
            .all(|e| e["status"] != "cancelled"),
        "one terminal event"
    );
    // And it recorded nothing over the cancel.
    let job = get_job(&app, &token, &id).await;
    assert_eq!(job["status"], "cancelled", "{job}");
    let frames = step(&job, "frames");
    assert_eq!(frames["status"], "cancelled");
    assert_eq!(
        frames["artefacts"],
        json!([]),
        "nothing of a cancelled step"
    );
    assert!(frames["finished_at"].is_string());
    let history: Vec<&str> = job["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(history.last(), Some(&"cancelled"), "{history:?}");
    assert!(!history.contains(&"succeeded"), "{history:?}");
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v1/jobs/{id}/cancel"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "invalid-state");

    // A cancelled step can be re-run, here with a gentler interval.
    let (status, rerun) = app
        .call(
            Method::POST,
            &format!("/v1/jobs/{id}/steps/frames/retry"),
            Some(&token),
            Some(json!({"options": {"every": "30s"}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{rerun}");
    assert_eq!(rerun["cycle"], 1);
    assert_eq!(step(&rerun, "frames")["options"]["every"], 30.0);
    assert_eq!(
        step(&rerun, "frames")["options"]["format"],
        "jpg",
        "left out: the default"
    );
    let job = wait_job_status(&app, &token, &id, "succeeded").await;
    assert_eq!(step(&job, "frames")["attempts"], 1);
    // 120 s every 30 s: 0, 30, 60, 90.
    check_frames_step(&app, step(&job, "frames"), 4, ".jpg").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !scratch_empty(data.path()) {
        assert!(Instant::now() < deadline, "scratch left after the re-run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_failing_on_bad_input_fails_the_job_and_each_rerun_cycle_is_announced_once() {
    let smtp = Smtp::start().await;
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &smtp.env()).await;
    let (token, video) = user_with_video(&app, "ana@example.com", "text.mp4", "10s").await;
    // The video's own job dies too, with its own (video.dead) e-mail.
    app.wait_for_status(&token, &video, "dead").await;

    let created = create_job(
        &app,
        &token,
        json!({"recipe_name": "thumbnail", "inputs": {"video": video}}),
    )
    .await;
    let id = id_of(&created);
    let follower = tokio::spawn(follow_job(
        app.http.clone(),
        app.url.clone(),
        token.clone(),
        id.clone(),
    ));
    let job = wait_job_status(&app, &token, &id, "failed").await;
    let events = follower.await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        last["status"], "failed",
        "the stream ends on failure: {last}"
    );
    assert_eq!(step(last, "thumbnail")["last_error"]["code"], "not-a-video");
    let thumbnail = step(&job, "thumbnail");
    assert_eq!(thumbnail["status"], "failed");
    assert_eq!(thumbnail["attempts"], 1, "bad input is not retried");
    assert_eq!(
        thumbnail["last_error"]["code"], "not-a-video",
        "{thumbnail}"
    );
    assert_eq!(thumbnail["artefacts"], json!([]));
    assert_eq!(job["cycle"], 0);

    smtp.wait_for(2).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while job_failed_mails(&smtp, &id) < 1 {
        assert!(Instant::now() < deadline, "no job.failed e-mail");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Bad options are refused at their path; an unknown step is a 404.
    let retry = format!("/v1/jobs/{id}/steps/thumbnail/retry");
    let (status, body) = app
        .call(
            Method::POST,
            &retry,
            Some(&token),
            Some(json!({"options": {"at": -1, "colour": "red"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let keys: BTreeSet<&str> = body["error"]["fields"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["options.at", "options.colour"]),
        "{body}"
    );
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v1/jobs/{id}/steps/nope/retry"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        get_job(&app, &token, &id).await["cycle"],
        0,
        "refusals change nothing"
    );

    // A re-run with edited options: a new cycle, failing again, announced again.
    let (status, rerun) = app
        .call(
            Method::POST,
            &retry,
            Some(&token),
            Some(json!({"options": {"at": 2, "format": "png"}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{rerun}");
    assert_eq!(rerun["cycle"], 1);
    let options = &step(&rerun, "thumbnail")["options"];
    assert_eq!(
        (options["at"].as_f64(), options["format"].as_str()),
        (Some(2.0), Some("png"))
    );
    let job = wait_job(&app, &token, &id, "the second failure", |job| {
        job["cycle"] == 1 && job["status"] == "failed"
    })
    .await;
    let thumbnail = step(&job, "thumbnail");
    assert_eq!(thumbnail["attempts"], 1, "attempts restart with the cycle");
    assert_eq!(thumbnail["last_error"]["code"], "not-a-video");
    let history: Vec<&str> = job["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        history.iter().filter(|s| **s == "failed").count(),
        2,
        "{history:?}"
    );

    smtp.wait_for(3).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while job_failed_mails(&smtp, &id) < 2 {
        assert!(Instant::now() < deadline, "no second job.failed e-mail");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Exactly one per cycle: still so once the service stopped, its outbox drained.
    assert!(app.stop().await.success());
    assert_eq!(job_failed_mails(&smtp, &id), 2);
    assert_eq!(
        smtp.messages().len(),
        3,
        "one video.dead and two job.failed"
    );
    let mail = smtp
        .messages()
        .into_iter()
        .find(|m| m.contains(&id))
        .unwrap();
    assert!(
        mail.contains("Subject: Your thumbnail job could not finish"),
        "{mail}"
    );
    assert!(mail.contains("not-a-video"), "{mail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_receives_the_signed_job_succeeded_event_with_the_artefacts() {
    let receiver = Receiver::start(0).await;
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &[]).await;
    let (token, video) = user_with_video(&app, "ana@example.com", "short3.mp4", "10s").await;
    let (status, hook) = app
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(&token),
            Some(json!({"url": receiver.url})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();

    let created = create_job(
        &app,
        &token,
        json!({"recipe_name": "preview", "inputs": {"video": video}, "params": {"every": "1s"}}),
    )
    .await;
    let id = id_of(&created);
    let job = wait_job_status(&app, &token, &id, "succeeded").await;

    // The video's own job posts video.succeeded; the job's post is the one about it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let post = loop {
        let found = receiver
            .received
            .lock()
            .unwrap()
            .iter()
            .find(|p| p.event == "job.succeeded")
            .cloned();
        if let Some(post) = found {
            break post;
        }
        assert!(Instant::now() < deadline, "no job.succeeded post");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let now = Utc::now().timestamp();
    vidsnap_notify::verify(
        secret.as_bytes(),
        &post.signature,
        &post.body,
        now,
        Duration::from_secs(300),
    )
    .expect("the signature verifies");
    let mut tampered = post.body.clone();
    tampered[0] = b' ';
    assert!(
        vidsnap_notify::verify(
            secret.as_bytes(),
            &post.signature,
            &tampered,
            now,
            Duration::from_secs(300)
        )
        .is_err()
    );

    let body: Value = serde_json::from_slice(&post.body).unwrap();
    assert_eq!(body["type"], "job.succeeded");
    assert_eq!(body["version"], 1);
    assert!(
        body["id"].is_string() && body["created_at"].is_string(),
        "{body}"
    );
    let summary = &body["job"];
    assert_eq!(summary["id"], id.as_str());
    assert_eq!(summary["recipe_name"], "preview");
    assert_eq!(summary["status"], "succeeded");
    assert_eq!(summary["cycle"], 0);
    assert_eq!(summary["inputs"]["video"], video.as_str());
    let steps = summary["steps"].as_array().unwrap();
    let mut names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["frames", "probe", "thumbnail"]);
    for posted in steps {
        let name = posted["name"].as_str().unwrap();
        assert_eq!(posted["op"], name, "{posted}");
        assert_eq!(posted["status"], "succeeded");
        assert_eq!(posted["attempts"], 1);
        assert!(posted["last_error"].is_null());
        // The same artefacts as the API lists, by name, size and digest, with their keys.
        let listed = step(&job, name)["artefacts"].as_array().unwrap();
        let posted_artefacts = posted["artefacts"].as_array().unwrap();
        assert_eq!(posted_artefacts.len(), listed.len(), "{name}");
        for (p, l) in posted_artefacts.iter().zip(listed) {
            assert_eq!(p["name"], l["name"]);
            assert_eq!(p["bytes"], l["bytes"]);
            assert_eq!(p["sha256"], l["sha256"]);
            assert_eq!(p["content_type"], l["content_type"]);
            let key = p["key"].as_str().unwrap();
            assert!(key.contains(&format!("/jobs/{id}/{name}/")), "{key}");
        }
    }
    // 3 s every second: three frames.
    let frames = steps.iter().find(|s| s["name"] == "frames").unwrap();
    let images = frames["artefacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"].as_str().unwrap().starts_with("frames/"))
        .count();
    assert_eq!(images, 3);
    // One post for the job, delivered once.
    let posts = receiver.received.lock().unwrap().clone();
    assert_eq!(
        posts.iter().filter(|p| p.event == "job.succeeded").count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_videos_video_is_processed_by_a_job_listed_with_it() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &[]).await;
    let (token, video) = user_with_video(&app, "ana@example.com", "short3.mp4", "1s").await;
    let done = app.wait_for_status(&token, &video, "succeeded").await;
    assert_eq!(done["outputs"]["frames"], 3);

    let (status, list) = app.call(Method::GET, "/v1/jobs", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    let listed = &items[0];
    assert_eq!(listed["video"], video.as_str());
    assert_eq!(listed["inputs"]["video"], video.as_str());
    assert_eq!(listed["recipe_name"], "frames");
    assert_eq!(listed["status"], "succeeded");
    assert_eq!(step_names(listed), ["frames"]);
    assert_eq!(step(listed, "frames")["options"]["every"], 1.0);
    assert_eq!(step(listed, "frames")["options"]["images"], false);
    assert!(listed.get("history").is_none(), "lists carry no history");

    // Shown alone: the zip and the thumbnail the video lists, the same bytes.
    let id = id_of(listed);
    let job = get_job(&app, &token, &id).await;
    let frames = step(&job, "frames");
    let mut names = artefact_names(frames);
    names.sort();
    assert_eq!(names, ["thumbnail", "zip"]);
    let zip = download(&app, artefact(frames, "zip")).await;
    let from_video = app
        .http
        .get(done["outputs"]["zip"]["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(zip, from_video.to_vec());
    let (status, filtered) = app
        .call(Method::GET, "/v1/jobs?status=succeeded", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(filtered["items"][0]["id"], id.as_str());

    // It goes with its video, not on its own.
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/v1/jobs/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "invalid-state");
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/videos/{video}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .call(Method::GET, &format!("/v1/jobs/{id}"), Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "deleted with its video");
}
