//! Jobs over HTTP (`/v1/jobs`): built-in and custom recipes run step by step on real clips, their
//! artefacts downloaded and checked against the digests the service lists; validation answered
//! at JSON paths; a job waiting for its upload; cancel, re-run, event streams, webhooks and
//! e-mails; and the job behind every `/v1/videos` video.

#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::support::{App, Receiver, Smtp};
use crate::support::{Sandbox, clip, frame_brightness, frame_times, image_brightness, shown_at};

/// `POST /v1/jobs` with `body`.
async fn post_job(app: &App, token: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::POST, "/v1/jobs", Some(token), Some(body))
        .await
}

/// `POST /v1/jobs` that must answer 201; returns the job.
async fn create_job(app: &App, token: &str, body: Value) -> Value {
    let (status, job) = post_job(app, token, body).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    job
}

async fn get_job(app: &App, token: &str, id: &str) -> Value {
    let (status, job) = app
        .call(Method::GET, &format!("/v1/jobs/{id}"), Some(token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    job
}

/// Polls `GET /v1/jobs/{id}` until `done` holds (deadline 90 s).
async fn wait_job(
    app: &App,
    token: &str,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let job = get_job(app, token, id).await;
        if done(&job) {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_job_status(app: &App, token: &str, id: &str, status: &str) -> Value {
    wait_job(app, token, id, status, |job| job["status"] == status).await
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().unwrap().to_owned()
}

fn step<'a>(job: &'a Value, name: &str) -> &'a Value {
    job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {job}"))
}

fn step_names(job: &Value) -> Vec<String> {
    job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("a time, got {value}"))
        .parse()
        .unwrap()
}

fn artefact<'a>(step: &'a Value, name: &str) -> &'a Value {
    step["artefacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no artefact {name} in {step}"))
}

fn artefact_names(step: &Value) -> Vec<String> {
    step["artefacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect()
}

fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Downloads an artefact through its URL and checks its size and digest against the listing.
async fn download(app: &App, artefact: &Value) -> Vec<u8> {
    let url = artefact["url"].as_str().unwrap_or_else(|| {
        panic!("artefact without url: {artefact}");
    });
    let response = app.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{artefact}");
    assert_eq!(
        response.headers()["content-type"],
        artefact["content_type"].as_str().unwrap(),
        "{artefact}"
    );
    let bytes = response.bytes().await.unwrap().to_vec();
    assert_eq!(
        Some(bytes.len() as u64),
        artefact["bytes"].as_u64(),
        "{artefact}"
    );
    assert_eq!(
        hex_sha256(&bytes),
        artefact["sha256"].as_str().unwrap(),
        "{artefact}"
    );
    bytes
}

/// Every artefact of every step is listed with a link, a size and a SHA-256.
fn assert_artefacts_listed(job: &Value) {
    for step in job["steps"].as_array().unwrap() {
        let artefacts = step["artefacts"].as_array().unwrap();
        assert!(
            !artefacts.is_empty(),
            "a succeeded step has artefacts: {step}"
        );
        for artefact in artefacts {
            assert!(artefact["url"].is_string(), "{artefact}");
            assert!(artefact["bytes"].as_u64().unwrap() > 0, "{artefact}");
            let sha = artefact["sha256"].as_str().unwrap();
            assert_eq!(sha.len(), 64, "{artefact}");
            assert!(sha.bytes().all(|b| b.is_ascii_hexdigit()), "{artefact}");
        }
    }
}

/// `downstream` started only after every step of `upstream` finished.
fn assert_ran_after(job: &Value, downstream: &str, upstream: &[&str]) {
    let started = time(&step(job, downstream)["started_at"]);
    for name in upstream {
        let finished = time(&step(job, name)["finished_at"]);
        assert!(
            started >= finished,
            "{downstream} started at {started}, before {name} finished at {finished}"
        );
    }
}

/// The zip's entries by name.
fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut file = archive.by_index(i).unwrap();
            let mut content = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut content).unwrap();
            (file.name().unwrap().into_owned(), content)
        })
        .collect()
}

/// Checks a succeeded frames step: one `frames/…` artefact per frame of the manifest (each the
/// zip's entry), the manifest, the zip and the thumbnail (the first frame), all downloaded.
/// Returns the manifest.
async fn check_frames_step(app: &App, step: &Value, frames: usize, extension: &str) -> Value {
    let names = artefact_names(step);
    let images: Vec<&String> = names.iter().filter(|n| n.starts_with("frames/")).collect();
    assert_eq!(images.len(), frames, "{names:?}");
    for other in ["manifest", "zip", "thumbnail"] {
        assert!(names.contains(&other.to_owned()), "{other} in {names:?}");
    }
    assert_eq!(names.len(), frames + 3, "{names:?}");
    assert_eq!(step["result"]["frames"], frames);

    let manifest: Value = serde_json::from_slice(&download(app, artefact(step, "manifest")).await)
        .expect("the manifest is JSON");
    let listed = manifest["frames"].as_array().unwrap();
    assert_eq!(listed.len(), frames, "{manifest}");
    let entries = unzip(&download(app, artefact(step, "zip")).await);
    let entry = |name: &str| {
        entries
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no {name} in the zip"))
            .1
            .clone()
    };
    assert_eq!(
        serde_json::from_slice::<Value>(&entry("manifest.json")).unwrap(),
        manifest
    );
    for frame in listed {
        let file = frame["file"].as_str().unwrap();
        assert!(file.ends_with(extension), "{file}");
        let bytes = download(app, artefact(step, &format!("frames/{file}"))).await;
        assert_eq!(bytes, entry(file), "frames/{file} is the zip's entry");
    }
    let first = entry(listed[0]["file"].as_str().unwrap());
    assert_eq!(
        download(app, artefact(step, "thumbnail")).await,
        first,
        "the thumbnail is the first frame"
    );
    manifest
}

/// A user with a video uploaded through `/v1/videos`; returns (token, video id).
async fn user_with_video(app: &App, email: &str, clip_name: &str, every: &str) -> (String, String) {
    let token = app.register(email).await;
    let id = app.upload(&token, &clip(clip_name), clip_name, every).await;
    (token, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_runs_probe_and_thumbnail_then_frames_with_downloadable_artefacts() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &[]).await;
    let (token, video) = user_with_video(&app, "ana@example.com", "ids.mp4", "10s").await;

    let created = create_job(
        &app,
        &token,
        json!({"recipe_name": "preview", "inputs": {"video": video},
               "params": {"every": "1s", "at": 0.5}}),
    )
    .await;
    assert_eq!(created["recipe_name"], "preview");
    assert_eq!(created["inputs"]["video"], video.as_str());
    assert_eq!(created["cycle"], 0);
    assert_eq!(step_names(&created), ["probe", "thumbnail", "frames"]);
    assert_eq!(
        step(&created, "frames")["after"],
        json!(["probe", "thumbnail"])
    );
    assert_eq!(step(&created, "frames")["options"]["every"], 1.0);
    assert_eq!(step(&created, "thumbnail")["options"]["at"], 0.5);
    let id = id_of(&created);

    let job = wait_job_status(&app, &token, &id, "succeeded").await;
    for name in ["probe", "thumbnail", "frames"] {
        let s = step(&job, name);
        assert_eq!(s["status"], "succeeded", "{s}");
        assert_eq!(s["attempts"], 1, "{s}");
        assert!(s["last_error"].is_null(), "{s}");
        assert_eq!(s["progress"], 100, "{s}");
    }
    assert_ran_after(&job, "frames", &["probe", "thumbnail"]);
    assert_artefacts_listed(&job);

    // probe: the facts of a 12 s clip, as JSON.
    let probe: Value =
        serde_json::from_slice(&download(&app, artefact(step(&job, "probe"), "probe")).await)
            .unwrap();
    assert_eq!(probe["duration"], 12.0, "{probe}");
    assert_eq!(probe["file_name"], "ids.mp4");

    // frames: 12 s every second gives 0..=11 s.
    let manifest = check_frames_step(&app, step(&job, "frames"), 12, ".jpg").await;
    let times: Vec<f64> = manifest["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["requested_time"].as_f64().unwrap())
        .collect();
    assert_eq!(times, (0..12).map(f64::from).collect::<Vec<_>>());

    // thumbnail: the picture shown at 0.5 s (each generated frame has its own brightness).
    let thumbnail = step(&job, "thumbnail");
    assert_eq!(artefact_names(thumbnail), ["thumbnail"]);
    let bytes = download(&app, artefact(thumbnail, "thumbnail")).await;
    let source = clip("ids.mp4");
    let listed = frame_times(&source);
    let brightness = frame_brightness(&source, 160 * 120);
    let expected = shown_at(&listed, 0.5, false);
    assert_eq!(expected, 12, "25 fps: frame 12 starts at 0.48 s");
    let frame_time = thumbnail["result"]["frame_time"].as_f64().unwrap();
    assert!(
        (frame_time - listed[expected].0).abs() < 1e-3,
        "{thumbnail}"
    );
    let sandbox = Sandbox::new();
    let seen = image_brightness(&bytes, sandbox.root.path(), "thumbnail.jpg");
    let distance = |i: usize| (seen - brightness[i]).abs();
    assert!(distance(expected) < 3.5, "the thumbnail is not frame 12");
    for neighbour in [expected - 1, expected + 1] {
        assert!(
            distance(expected) < distance(neighbour),
            "frame {neighbour}"
        );
    }

    // A succeeded step cannot be re-run.
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v1/jobs/{id}/steps/thumbnail/retry"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "invalid-state");
    // Nor cancelled once finished.
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
    assert_eq!(get_job(&app, &token, &id).await["cycle"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_recipe_runs_parallel_steps_then_the_downstream_one_for_its_owner_only() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &[]).await;
    let (ana, video) = user_with_video(&app, "ana@example.com", "ids.mp4", "10s").await;
    let bo = app.register("bo@example.com").await;

    let recipe = json!({
        "params": {"gap": {"default": "4s"}},
        "steps": [
            {"name": "facts", "op": "probe"},
            {"name": "poster", "op": "thumbnail", "options": {"at": 2, "format": "png"}},
            {"name": "sheet", "op": "frames",
             "options": {"every": {"$param": "gap"}, "format": "png"},
             "after": ["facts", "poster"]}
        ]
    });
    let created = create_job(
        &app,
        &ana,
        json!({"recipe": recipe, "inputs": {"video": video}, "params": {"gap": 3}}),
    )
    .await;
    assert!(created["recipe_name"].is_null());
    assert_eq!(step_names(&created), ["facts", "poster", "sheet"]);
    let id = id_of(&created);
    let job = wait_job_status(&app, &ana, &id, "succeeded").await;
    assert_ran_after(&job, "sheet", &["facts", "poster"]);
    assert_artefacts_listed(&job);
    // 12 s every 3 s: 0, 3, 6, 9.
    check_frames_step(&app, step(&job, "sheet"), 4, ".png").await;
    let poster = step(&job, "poster");
    assert_eq!(artefact(poster, "thumbnail")["content_type"], "image/png");
    assert_eq!(poster["result"]["frame_time"], 2.0);
    let png = download(&app, artefact(poster, "thumbnail")).await;
    assert_eq!(&png[..4], b"\x89PNG");
    download(&app, artefact(step(&job, "facts"), "probe")).await;

    // Listed by status.
    let listed = |status: &'static str| {
        let (app, ana) = (&app, &ana);
        async move {
            let (code, list) = app
                .call(
                    Method::GET,
                    &format!("/v1/jobs?status={status}"),
                    Some(ana),
                    None,
                )
                .await;
            assert_eq!(code, StatusCode::OK, "{list}");
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(id_of)
                .collect::<Vec<_>>()
        }
    };
    assert!(listed("succeeded").await.contains(&id));
    assert!(!listed("failed").await.contains(&id));
    let (status, body) = app
        .call(Method::GET, "/v1/jobs?status=done", Some(&ana), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["fields"]["status"].is_string(), "{body}");

    // Another user: every job route is a 404, the same as for a job that does not exist.
    let missing = vidsnap_domain::JobId::new().to_string();
    for (method, path) in [
        (Method::GET, "/v1/jobs/{id}"),
        (Method::POST, "/v1/jobs/{id}/cancel"),
        (Method::POST, "/v1/jobs/{id}/steps/poster/retry"),
        (Method::GET, "/v1/jobs/{id}/events"),
        (Method::DELETE, "/v1/jobs/{id}"),
    ] {
        let theirs = app
            .call(method.clone(), &path.replace("{id}", &id), Some(&bo), None)
            .await;
        let nobodys = app
            .call(
                method.clone(),
                &path.replace("{id}", &missing),
                Some(&bo),
                None,
            )
            .await;
        assert_eq!(
            theirs.0,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            theirs.1
        );
        assert_eq!(theirs.1["error"]["code"], "not-found");
        assert_eq!(theirs, nobodys, "{method} {path}: indistinguishable");
    }
    let (_, list) = app.call(Method::GET, "/v1/jobs", Some(&bo), None).await;
    assert_eq!(list["items"], json!([]), "bo has no jobs");
    // Untouched for its owner.
    let again = get_job(&app, &ana, &id).await;
    assert_eq!(again["status"], "succeeded");
    assert_eq!(again["cycle"], 0);

    // The owner deletes it: rows and artefacts go.
    let folder = job_folder(data.path(), &id);
    assert!(folder.join("sheet").is_dir(), "{}", folder.display());
    let (status, body) = app
        .call(Method::DELETE, &format!("/v1/jobs/{id}"), Some(&ana), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _) = app
        .call(Method::GET, &format!("/v1/jobs/{id}"), Some(&ana), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!folder.exists(), "the job's artefacts are deleted");
    // The input video is not the job's: it stays.
    assert_eq!(app.video(&ana, &video).await["id"], video.as_str());
}

/// `{data}/blobs/{owner}/jobs/{job}`: where a job's artefacts are stored.
fn job_folder(data: &std::path::Path, job: &str) -> std::path::PathBuf {
    std::fs::read_dir(data.join("blobs"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join("jobs").join(job))
        .find(|path| path.exists())
        .unwrap_or_else(|| panic!("no folder for job {job}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_recipes_params_and_inputs_are_answered_at_their_json_paths() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &[]).await;
    let ana = app.register("ana@example.com").await;
    let bo = app.register("bo@example.com").await;
    let video = app.create(&ana, json!({"file_name": "a.mp4"})).await["video"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bos_video = app.create(&bo, json!({"file_name": "b.mp4"})).await["video"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let custom = |steps: Value| json!({"recipe": {"steps": steps}, "inputs": {"video": video}});

    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "a cycle",
            custom(json!([
                {"name": "a", "op": "probe", "after": ["b"]},
                {"name": "b", "op": "probe", "after": ["a"]},
                {"name": "c", "op": "probe"}
            ])),
            vec!["recipe.steps[0].after", "recipe.steps[1].after"],
        ),
        (
            "an unknown operation",
            custom(json!([{"name": "a", "op": "transmogrify"}])),
            vec!["recipe.steps[0].op"],
        ),
        (
            "a duplicate step name",
            custom(json!([{"name": "a", "op": "probe"}, {"name": "a", "op": "probe"}])),
            vec!["recipe.steps[1].name"],
        ),
        (
            "an unknown input",
            custom(json!([
                {"name": "a", "op": "probe"},
                {"name": "b", "op": "thumbnail", "inputs": ["clip"]}
            ])),
            vec!["recipe.steps[1].inputs[0]"],
        ),
        (
            "an unknown upstream step",
            custom(json!([{"name": "a", "op": "thumbnail", "inputs": ["ghost/zip"]}])),
            vec!["recipe.steps[0].inputs[0]"],
        ),
        (
            "a bad option",
            custom(json!([{"name": "a", "op": "frames", "options": {"every": 0}}])),
            vec!["recipe.steps[0].options.every"],
        ),
        (
            "an unknown option",
            custom(json!([{"name": "a", "op": "probe", "options": {"deep": true}}])),
            vec!["recipe.steps[0].options.deep"],
        ),
        (
            "a missing parameter",
            json!({"recipe": {"params": {"at": {}}, "steps": [
                {"name": "t", "op": "thumbnail", "options": {"at": {"$param": "at"}}}
            ]}, "inputs": {"video": video}}),
            vec!["params.at"],
        ),
        (
            "an unknown parameter",
            json!({"recipe_name": "probe", "inputs": {"video": video}, "params": {"x": 1}}),
            vec!["params.x"],
        ),
        (
            "an unknown built-in recipe",
            json!({"recipe_name": "sparkle", "inputs": {"video": video}}),
            vec!["recipe_name"],
        ),
        (
            "both a recipe and a name",
            json!({"recipe_name": "probe", "recipe": {"steps": []}, "inputs": {"video": video}}),
            vec!["recipe"],
        ),
        (
            "a missing job input",
            json!({"recipe_name": "probe", "inputs": {}}),
            vec!["inputs.video"],
        ),
        (
            "an input the recipe does not take",
            json!({"recipe_name": "probe", "inputs": {"video": video, "clip": video}}),
            vec!["inputs.clip"],
        ),
        (
            "an input that is not a video id",
            json!({"recipe_name": "probe", "inputs": {"video": "nope"}}),
            vec!["inputs.video"],
        ),
        (
            "another user's video",
            json!({"recipe_name": "probe", "inputs": {"video": bos_video}}),
            vec!["inputs.video"],
        ),
    ];
    for (what, body, expected) in cases {
        let (status, answer) = post_job(&app, &ana, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {answer}");
        assert_eq!(answer["error"]["code"], "validation-failed", "{what}");
        let fields = answer["error"]["fields"].as_object().unwrap();
        let keys: BTreeSet<&str> = fields.keys().map(String::as_str).collect();
        let expected: BTreeSet<&str> = expected.into_iter().collect();
        assert_eq!(keys, expected, "{what}: {answer}");
        assert!(
            fields
                .values()
                .all(|m| m.as_str().is_some_and(|m| !m.is_empty())),
            "{what}: {answer}"
        );
    }
    // Another user's video reads as missing, the same as a video that does not exist.
    let (_, theirs) = post_job(
        &app,
        &ana,
        json!({"recipe_name": "probe", "inputs": {"video": bos_video}}),
    )
    .await;
    let (_, nobodys) = post_job(
        &app,
        &ana,
        json!({"recipe_name": "probe",
               "inputs": {"video": vidsnap_domain::VideoId::new().to_string()}}),
    )
    .await;
    assert_eq!(
        theirs["error"]["fields"], nobodys["error"]["fields"],
        "indistinguishable"
    );

    // A built-in's parameter with a bad value: refused where the request said it.
    let (status, answer) = post_job(
        &app,
        &ana,
        json!({"recipe_name": "frames", "inputs": {"video": video}, "params": {"every": 0}}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let fields = answer["error"]["fields"].as_object().unwrap();
    assert_eq!(fields.len(), 1, "{answer}");
    assert!(fields.contains_key("params.every"), "{answer}");

    // Every problem at once, each at its path.
    let (status, answer) = post_job(
        &app,
        &ana,
        json!({"recipe": {"steps": [
                  {"name": "a", "op": "frames", "options": {"every": "0s", "format": "gif"}},
                  {"name": "a", "op": "blur"}
              ]},
              "inputs": {"video": video}, "params": {"x": 1}}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let keys: BTreeSet<&str> = answer["error"]["fields"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "recipe.steps[0].options.every",
        "recipe.steps[0].options.format",
        "recipe.steps[1].name",
        "recipe.steps[1].op",
        "params.x",
    ] {
        assert!(keys.contains(key), "{key}: {answer}");
    }

    // Nothing was stored: only the videos' own jobs are listed.
    let (_, list) = app.call(Method::GET, "/v1/jobs", Some(&ana), None).await;
    let items = list["items"].as_array().unwrap();
    assert!(items.iter().all(|j| j["video"] == video.as_str()), "{list}");
}

/// Reads a job's event stream to its end; returns each event's data in order.
async fn follow_job(http: reqwest::Client, url: String, token: String, id: String) -> Vec<Value> {
    let mut response = http
        .get(format!("{url}/v1/jobs/{id}/events"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut buffer = String::new();
    let mut events = Vec::new();
    loop {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("the stream ends within 90 s")
            .unwrap();
        let Some(chunk) = chunk else {
            return events;
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) else {
                continue; // a keep-alive comment
            };
            assert!(
                event.lines().any(|l| l == "event: job"),
                "an event named job: {event}"
            );
            events.push(serde_json::from_str(data.trim()).unwrap());
        }
    }
}

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

/// Whether the scratch directory holds nothing (or was never made).
fn scratch_empty(data: &std::path::Path) -> bool {
    let scratch = data.join("tmp");
    !scratch.exists() || Sandbox::list(&scratch).is_empty()
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

/// E-mails that announce job `id` failed.
fn job_failed_mails(smtp: &Smtp, id: &str) -> usize {
    smtp.messages()
        .iter()
        .filter(|m| m.contains("could not finish") && m.contains(id))
        .count()
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
