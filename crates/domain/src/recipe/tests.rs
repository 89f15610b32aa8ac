//! The recipe document's checks, and the built-in recipes'.

use serde_json::json;

use super::*;

fn doc(value: Value) -> RecipeDoc {
    serde_json::from_value(value).expect("a recipe document")
}

fn fields(result: Result<Recipe, Problems>) -> BTreeMap<String, String> {
    result.expect_err("refused").into_fields()
}

#[test]
fn builtins_check_with_their_defaults() {
    for recipe in builtins() {
        let name = recipe.name.clone().unwrap_or_default();
        // Parameters without a default (call-recording's call_end) get an example.
        let required: serde_json::Map<String, Value> = recipe
            .params
            .iter()
            .filter(|(_, param)| param.default.is_none())
            .map(|(name, _)| (name.clone(), json!("00:00:01")))
            .collect();
        recipe
            .check(&Value::Object(required))
            .unwrap_or_else(|p| panic!("{name}: {p}"));
        assert!(is_name(&name));
    }
    assert!(builtin("frames").is_some());
    assert!(builtin("nope").is_none());
}

#[test]
fn the_qc_builtin_takes_thresholds_and_a_policy() {
    let qc = builtin("qc").expect("built in");
    let recipe = qc
        .check(&json!({"policy": "black,silence", "min_bytes": 1000}))
        .expect("valid");
    match &recipe.steps[0].op {
        Operation::Qc(options) => {
            assert_eq!(options.min_bytes, 1000);
            assert_eq!(
                options.policy,
                [crate::ops::QcCheck::Black, crate::ops::QcCheck::Silence]
            );
        }
        other => panic!("{other:?}"),
    }
    let fields = fields(qc.check(&json!({"policy": ["blur"]})));
    assert!(fields["params.policy"].contains("blur"), "{fields:?}");
}

#[test]
fn the_package_builtin_takes_a_ladder_as_a_comma_separated_string() {
    let package = builtin("package").expect("built in");
    let default = package.check(&Value::Null).expect("valid");
    match &default.steps[0].op {
        Operation::Package(options) => {
            assert_eq!(options, &crate::ops::PackageOptions::default());
        }
        other => panic!("{other:?}"),
    }
    let recipe = package
        .check(&json!({"ladder": "720,480", "segment": 2}))
        .expect("valid");
    match &recipe.steps[0].op {
        Operation::Package(options) => {
            let sides: Vec<u32> = options.ladder.iter().map(|r| r.short_side).collect();
            assert_eq!((sides, options.segment), (vec![720, 480], 2.0));
        }
        other => panic!("{other:?}"),
    }
    let f = fields(package.check(&json!({"ladder": "720,721"})));
    assert!(f["params.ladder"].contains("rung 2"), "{f:?}");
}

#[test]
fn the_storyboard_scenes_and_poster_builtins_take_their_parameters() {
    let storyboard = builtin("storyboard").expect("built in");
    let recipe = storyboard
        .check(&json!({"every": "2s", "columns": 5, "mode": "keyframe"}))
        .expect("valid");
    match &recipe.steps[0].op {
        Operation::Storyboard(options) => {
            assert_eq!(options.every.seconds(), 2.0);
            assert_eq!((options.columns, options.rows), (5, 10));
            assert_eq!(options.mode, crate::FrameMode::Keyframe);
        }
        other => panic!("{other:?}"),
    }
    let f = fields(storyboard.check(&json!({"columns": 70, "width": 161})));
    assert_eq!(
        f.keys().collect::<Vec<_>>(),
        ["params.columns", "params.width"],
        "{f:?}"
    );

    let scenes = builtin("scenes").expect("built in");
    let recipe = scenes
        .check(&json!({"threshold": 0.5, "min_gap": "250ms"}))
        .expect("valid");
    match &recipe.steps[0].op {
        Operation::Scenes(options) => {
            assert_eq!((options.threshold, options.min_gap), (0.5, 0.25));
            assert_eq!(options.max_scenes, 100);
        }
        other => panic!("{other:?}"),
    }
    let f = fields(scenes.check(&json!({"max_scenes": 5000})));
    assert!(f["params.max_scenes"].contains("1000"), "{f:?}");

    let poster = builtin("smart_thumbnail").expect("built in");
    let f = fields(poster.check(&json!({"candidates": 1000})));
    assert!(f["params.candidates"].contains("100"), "{f:?}");

    // The smart thumbnail as a step beside another.
    let player = builtin("player")
        .expect("built in")
        .check(&Value::Null)
        .expect("valid");
    let ops: Vec<(&str, &str)> = player
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.op.name()))
        .collect();
    assert_eq!(
        ops,
        [("poster", "smart_thumbnail"), ("storyboard", "storyboard")]
    );
}

#[test]
fn call_recording_takes_call_end_as_seconds_or_a_clock_time() {
    let recipe = builtin("call-recording").expect("built in");
    let checked = recipe
        .check(&json!({"call_end": "00:00:12"}))
        .expect("valid");
    assert_eq!(checked.inputs, ["call_audio", "recording"]);
    let names: Vec<&str> = checked.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["merge", "thumbnail"],
        "the thumbnail is of the merge"
    );
    match &checked.steps[0].op {
        Operation::MergeCall(options) => assert_eq!(options.call_end.seconds(), 12.0),
        other => panic!("{other:?}"),
    }
    assert!(recipe.check(&json!({"call_end": 12.5})).is_ok());
    for (params, wanted) in [
        (json!({}), "required"),
        (json!({"call_end": "12:00"}), "HH:MM:SS"),
        (json!({"call_end": "soon"}), "HH:MM:SS"),
        (json!({"call_end": -1}), "HH:MM:SS"),
    ] {
        let f = fields(recipe.check(&params));
        assert_eq!(
            f.keys().collect::<Vec<_>>(),
            ["params.call_end"],
            "{params}"
        );
        assert!(f["params.call_end"].contains(wanted), "{params}: {f:?}");
    }
}

#[test]
fn a_list_of_inputs_is_bounded_by_its_operation() {
    let names: Vec<String> = (0..MAX_INPUTS).map(|i| format!("v{i}")).collect();
    let recipe = |inputs: &[String]| {
        doc(json!({
            "inputs": names,
            "steps": [{"name": "join", "op": "concat", "inputs": inputs}]
        }))
        .check(&Value::Null)
    };
    assert!(recipe(&names[..2]).is_ok());
    assert!(recipe(&names[..16]).is_ok());
    let seventeen = [&names[..], &names[..1]].concat();
    for inputs in [&names[..1], &seventeen[..]] {
        let f = fields(recipe(inputs));
        assert!(f["steps[0].inputs"].contains("2 to 16 inputs"), "{f:?}");
    }
    // A two-input operation in a one-input recipe, inputs left out.
    let f = fields(doc(json!({"steps": [{"name": "m", "op": "mux"}]})).check(&Value::Null));
    assert!(
        f["steps[0].inputs"].contains("takes 2 inputs, got 1"),
        "{f:?}"
    );
}

#[test]
fn params_are_substituted_and_checked() {
    let frames = builtin("frames").expect("built in");
    let recipe = frames.check(&json!({"every": "2s"})).expect("valid");
    match &recipe.steps[0].op {
        Operation::Frames(options) => assert_eq!(options.every.seconds(), 2.0),
        other => panic!("{other:?}"),
    }
    let f = fields(frames.check(&json!({"every": "0s", "colour": 1})));
    assert!(
        f.contains_key("params.every"),
        "where the request said it: {f:?}"
    );
    assert!(f["params.colour"].contains("every"), "{f:?}");

    let required = doc(json!({
        "params": {"at": {}},
        "steps": [{"name": "t", "op": "thumbnail", "options": {"at": {"$param": "at"}}}]
    }));
    let f = fields(required.check(&Value::Null));
    assert_eq!(
        f.keys().collect::<Vec<_>>(),
        ["params.at"],
        "reported once: {f:?}"
    );
    assert!(required.check(&json!({"at": 3})).is_ok());
}

#[test]
fn names_must_be_unique_and_well_formed() {
    let f = fields(
        doc(json!({"steps": [
            {"name": "a", "op": "probe"},
            {"name": "a", "op": "probe"},
            {"name": "Bad Name", "op": "probe"}
        ]}))
        .check(&Value::Null),
    );
    assert_eq!(
        f.keys().collect::<Vec<_>>(),
        ["steps[1].name", "steps[2].name"]
    );
}

#[test]
fn inputs_and_steps_are_bounded() {
    let names: Vec<String> = (0..=MAX_INPUTS).map(|i| format!("v{i}")).collect();
    let steps: Vec<Value> = (0..=MAX_STEPS)
        .map(|i| json!({"name": format!("s{i}"), "op": "probe", "inputs": ["v0"]}))
        .collect();
    let problems = doc(json!({"inputs": names, "steps": steps}))
        .check(&Value::Null)
        .expect_err("too big");
    let text = format!("{problems:?}");
    assert!(
        text.contains(&format!("at most {MAX_INPUTS} inputs")),
        "{text}"
    );
    assert!(
        text.contains(&format!("at most {MAX_STEPS} steps")),
        "{text}"
    );
}

#[test]
fn inputs_must_exist() {
    let f = fields(
        doc(json!({"steps": [
            {"name": "a", "op": "probe", "inputs": ["clip"]},
            {"name": "b", "op": "thumbnail", "inputs": ["ghost/zip"]},
            {"name": "c", "op": "thumbnail", "inputs": ["a/zip"]},
            {"name": "d", "op": "probe", "after": ["nobody"]},
            {"name": "e", "op": "probe", "inputs": ["video", "video"]}
        ]}))
        .check(&Value::Null),
    );
    assert!(f["steps[0].inputs[0]"].contains("clip"), "{f:?}");
    assert!(f["steps[1].inputs[0]"].contains("ghost"), "{f:?}");
    assert!(f["steps[2].inputs[0]"].contains("makes probe"), "{f:?}");
    assert!(f.contains_key("steps[3].after[0]"), "{f:?}");
    assert!(f["steps[4].inputs"].contains("takes 1"), "{f:?}");
}

#[test]
fn cycles_are_refused() {
    let f = fields(
        doc(json!({"steps": [
            {"name": "a", "op": "probe", "after": ["b"]},
            {"name": "b", "op": "probe", "after": ["a"]},
            {"name": "c", "op": "probe"}
        ]}))
        .check(&Value::Null),
    );
    assert_eq!(
        f.keys().collect::<Vec<_>>(),
        ["steps[0].after", "steps[1].after"]
    );
    assert!(f["steps[0].after"].contains("cycle"));
}

#[test]
fn steps_come_in_dependency_order_and_downstream_is_transitive() {
    let recipe = doc(json!({"steps": [
        {"name": "last", "op": "probe", "after": ["mid"]},
        {"name": "mid", "op": "probe", "after": ["first"]},
        {"name": "first", "op": "probe"},
        {"name": "aside", "op": "probe"}
    ]}))
    .check(&Value::Null)
    .expect("valid");
    let names: Vec<&str> = recipe.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["first", "aside", "mid", "last"]);
    assert_eq!(recipe.downstream("first"), ["mid", "last"]);
    assert!(recipe.downstream("aside").is_empty());
}

#[test]
fn retry_policy_is_bounded() {
    let f = fields(
        doc(json!({"steps": [{"name": "a", "op": "probe", "retry": {"max_attempts": 0}}]}))
            .check(&Value::Null),
    );
    assert!(f.contains_key("steps[0].retry.max_attempts"));
}

#[test]
fn shape_errors_name_their_path() {
    let wrong = |value: Value| {
        RecipeDoc::from_json(value, "recipe")
            .expect_err("refused")
            .into_fields()
    };
    let f = wrong(
        json!({"steps": [{"name": "a", "op": "probe"}, {"name": "b", "op": "probe", "optoins": {}}]}),
    );
    assert!(f.keys().any(|k| k.starts_with("recipe.steps[1]")), "{f:?}");
    let f = wrong(json!({"steps": [{"name": "a", "op": "probe", "retry": {"max_attempts": -1}}]}));
    assert!(
        f.contains_key("recipe.steps[0].retry.max_attempts"),
        "{f:?}"
    );
    let f = wrong(json!({"steps": "all of them"}));
    assert!(f.contains_key("recipe.steps"), "{f:?}");
    assert!(RecipeDoc::from_json(json!({"steps": []}), "recipe").is_ok());
}

#[test]
fn input_refs_round_trip() {
    for text in ["video", "probe/probe", "frames/zip"] {
        let input = InputRef::parse(text).expect("valid");
        assert_eq!(String::from(input), text);
    }
    assert!(InputRef::parse("/zip").is_err());
    assert!(InputRef::parse("Video").is_err());
}
