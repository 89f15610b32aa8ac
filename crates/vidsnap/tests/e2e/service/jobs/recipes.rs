//! Recipes over HTTP: built-in and custom recipes run step by step on real clips, their
//! artefacts downloaded and checked against the digests the service lists; validation answered
//! at JSON paths.

#![allow(clippy::unwrap_used)]

use super::*;

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
