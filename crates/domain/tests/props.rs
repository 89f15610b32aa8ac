//! Property tests of the domain's parsers of outside input (issue #11, hardening): recipe JSON
//! (`RecipeDoc::from_json`, then `check` with a job's `params`) and the tus checksum algorithm
//! names. Arbitrary and near-valid inputs never panic; every refusal is a set of problems, each
//! at a JSON path that exists in the grammar of a recipe document (what the API answers as the
//! `fields` of a 422 `validation-failed`); valid documents are accepted with what they were built
//! from.

#![allow(clippy::unwrap_used)]

use proptest::{prelude::*, sample::Index, test_runner::Config};
use serde_json::{Map, Value, json};
use vidsnap_domain::{
    ChecksumAlgorithm, InputRef, Operation, Problems, RecipeDoc, recipe::MAX_STEPS,
};

/// Cases per property: enough to find the shallow bugs, few enough that the file runs in seconds.
fn config() -> Config {
    Config {
        cases: 384,
        failure_persistence: None,
        ..Config::default()
    }
}

// ---- generators -------------------------------------------------------------------------

/// Strings that trip parsers: empty, whitespace, NaN-like, huge and negative numbers as text,
/// separators, unicode, control characters, very long.
fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(" ".to_owned()),
        Just("NaN".to_owned()),
        Just("-inf".to_owned()),
        Just("infinity".to_owned()),
        Just("1e400".to_owned()),
        Just("-1".to_owned()),
        Just("0".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("video".to_owned()),
        Just("probe/probe".to_owned()),
        Just("a/".to_owned()),
        Just("/zip".to_owned()),
        Just("$param".to_owned()),
        Just("動画 ☕".to_owned()),
        Just("a\u{0}b\nc".to_owned()),
        "[a-z][a-z0-9_-]{0,70}",
        "\\PC{0,24}",
        any::<String>(),
        "[a-z]{1,8}".prop_map(|s| s.repeat(200)),
    ]
}

fn nasty_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(1e308)),
        Just(json!(-1e308)),
        Just(json!(5e-324)),
    ]
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        nasty_number(),
        nasty_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    nasty_string(),
                    prop::sample::select(
                        &[
                            "name",
                            "op",
                            "options",
                            "inputs",
                            "after",
                            "retry",
                            "steps",
                            "params",
                            "default",
                            "max_attempts",
                            "every",
                            "at",
                            "$param",
                        ][..]
                    )
                    .prop_map(str::to_owned),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A step name, unique by its index.
fn step_name(i: usize, stem: &str) -> String {
    format!("{stem}{i}")
}

/// A valid operation with valid options, as JSON: `(op, options)`.
fn valid_op() -> impl Strategy<Value = (String, Value)> {
    let frames = (
        prop_oneof![
            (0.001f64..1e6).prop_map(Value::from),
            (1u32..100_000).prop_map(|s| Value::from(format!("{s}s"))),
            (1u32..100_000).prop_map(|s| Value::from(format!("{s}ms"))),
            (1u32..1000).prop_map(|s| Value::from(format!("{s}m"))),
        ],
        prop::sample::select(&["exact", "keyframe"][..]),
        prop::sample::select(&["jpg", "png", "webp"][..]),
        1u64..=100,
        prop::option::of(16u64..=16384),
        any::<bool>(),
    )
        .prop_map(|(every, mode, format, quality, max_width, images)| {
            let mut options = json!({
                "every": every, "mode": mode, "format": format, "quality": quality,
                "images": images,
            });
            if let Some(width) = max_width {
                options["max_width"] = json!(width);
            }
            ("frames".to_owned(), options)
        });
    let thumbnail = (
        prop_oneof![
            (0.0f64..1e6).prop_map(Value::from),
            (0u32..10_000).prop_map(|s| Value::from(format!("{s}s"))),
        ],
        prop::sample::select(&["jpg", "png", "webp"][..]),
        1u64..=100,
    )
        .prop_map(|(at, format, quality)| {
            (
                "thumbnail".to_owned(),
                json!({"at": at, "format": format, "quality": quality}),
            )
        });
    prop_oneof![
        Just(("probe".to_owned(), Value::Null)),
        Just(("probe".to_owned(), json!({}))),
        frames,
        thumbnail,
    ]
}

/// A valid recipe document: steps named `{stem}{i}`, each running after some earlier ones, in
/// shuffled order; the ops and options it was built from.
fn valid_recipe() -> impl Strategy<Value = (Value, Vec<(String, String, Value)>)> {
    (
        "[a-z][a-z0-9_]{0,6}",
        prop::collection::vec(
            (
                valid_op(),
                prop::collection::vec(any::<Index>(), 0..3),
                prop::option::of(1u32..=20),
            ),
            1..8,
        ),
        any::<bool>(),
    )
        .prop_flat_map(|(stem, steps, with_params)| {
            let mut built = Vec::new();
            let mut docs = Vec::new();
            for (i, ((op, options), after, retry)) in steps.into_iter().enumerate() {
                let name = step_name(i, &stem);
                let mut step = json!({"name": name, "op": op});
                if !options.is_null() {
                    step["options"] = options.clone();
                }
                if i > 0 && !after.is_empty() {
                    let mut earlier: Vec<String> = after
                        .iter()
                        .map(|index| step_name(index.index(i), &stem))
                        .collect();
                    earlier.sort();
                    earlier.dedup();
                    step["after"] = json!(earlier);
                }
                if let Some(max_attempts) = retry {
                    step["retry"] = json!({"max_attempts": max_attempts});
                }
                built.push((name, op, options));
                docs.push(step);
            }
            let unused = with_params.then(|| json!({"unused": {"default": 1, "description": "d"}}));
            // The order a recipe is written in must not matter.
            Just(docs).prop_shuffle().prop_map(move |docs| {
                let mut doc = json!({"steps": docs});
                if let Some(params) = &unused {
                    doc["params"] = params.clone();
                }
                (doc, built.clone())
            })
        })
}

/// Every JSON pointer into `value`, the root included.
fn pointers(value: &Value) -> Vec<String> {
    fn walk(value: &Value, at: String, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    let escaped = key.replace('~', "~0").replace('/', "~1");
                    walk(inner, format!("{at}/{escaped}"), out);
                }
            }
            Value::Array(items) => {
                for (i, inner) in items.iter().enumerate() {
                    walk(inner, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
        out.push(at);
    }
    let mut out = Vec::new();
    walk(value, String::new(), &mut out);
    out
}

/// One change to a document.
#[derive(Debug, Clone)]
enum Mutation {
    /// The node becomes another value (wrong type, huge, negative, NaN-like text...).
    Replace(Value),
    /// The node's key or element is removed.
    Remove,
    /// An object gains a key (unknown fields).
    Insert(String, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any_json().prop_map(Mutation::Replace),
        nasty_number().prop_map(Mutation::Replace),
        nasty_string().prop_map(|s| Mutation::Replace(Value::String(s))),
        Just(Mutation::Remove),
        (nasty_string(), any_json()).prop_map(|(k, v)| Mutation::Insert(k, v)),
    ]
}

fn mutate(doc: &mut Value, at: &str, change: Mutation) {
    match change {
        Mutation::Replace(value) => {
            if let Some(node) = doc.pointer_mut(at) {
                *node = value;
            }
        }
        Mutation::Insert(key, value) => {
            if let Some(Value::Object(map)) = doc.pointer_mut(at) {
                map.insert(key, value);
            }
        }
        Mutation::Remove => {
            let Some((parent, last)) = at.rsplit_once('/') else {
                return;
            };
            let last = last.replace("~1", "/").replace("~0", "~");
            match doc.pointer_mut(parent) {
                Some(Value::Object(map)) => {
                    map.remove(&last);
                }
                Some(Value::Array(items)) => {
                    if let Ok(i) = last.parse::<usize>()
                        && i < items.len()
                    {
                        items.remove(i);
                    }
                }
                _ => {}
            }
        }
    }
}

/// A valid document with a few mutations applied at random places.
fn near_valid_recipe() -> impl Strategy<Value = Value> {
    (
        valid_recipe(),
        prop::collection::vec((any::<Index>(), mutation()), 1..4),
    )
        .prop_map(|((mut doc, _), changes)| {
            for (index, change) in changes {
                let all = pointers(&doc);
                mutate(&mut doc, &all[index.index(all.len())], change);
            }
            doc
        })
}

/// What a job may send as `params`.
fn params() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => Just(Value::Null),
        1 => any_json(),
        2 => prop::collection::btree_map(
            prop_oneof![
                prop::sample::select(&["every", "at", "mode", "format", "unused"][..])
                    .prop_map(str::to_owned),
                nasty_string(),
            ],
            prop_oneof![any_json(), nasty_number()],
            0..4,
        )
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
    ]
}

// ---- what a refusal must look like ------------------------------------------------------

/// `steps[3]` -> `("steps", Some(3))`; `params` -> `("params", None)`.
fn segment(text: &str) -> Option<(&str, Option<usize>)> {
    match text.split_once('[') {
        None => Some((text, None)),
        Some((name, rest)) => {
            let index = rest.strip_suffix(']')?.parse().ok()?;
            Some((name, Some(index)))
        }
    }
}

/// Whether `path` names a place in `doc` (or a parameter): the paths `check` reports.
fn is_recipe_path(path: &str, doc: &RecipeDoc) -> bool {
    if path == "params" || path.starts_with("params.") {
        return true;
    }
    let (head, rest) = path.split_once('.').unwrap_or((path, ""));
    match segment(head) {
        Some(("inputs", None)) => rest.is_empty(),
        Some(("inputs", Some(i))) => rest.is_empty() && i < doc.inputs.len(),
        Some(("steps", None)) => rest.is_empty(),
        Some(("steps", Some(i))) if i < doc.steps.len() => {
            let step = &doc.steps[i];
            let (field, deeper) = rest.split_once('.').unwrap_or((rest, ""));
            match segment(field) {
                Some(("name" | "op" | "after" | "inputs", None)) => deeper.is_empty(),
                Some(("after", Some(j))) => deeper.is_empty() && j < step.after.len(),
                Some(("inputs", Some(j))) => {
                    deeper.is_empty() && j < step.inputs.as_ref().map_or(0, Vec::len)
                }
                Some(("retry", None)) => deeper == "max_attempts" && step.retry.is_some(),
                // `options` itself or any key under it (unknown options are named).
                Some(("options", None)) => true,
                _ => false,
            }
        }
        _ => false,
    }
}

fn assert_problems_at_recipe_paths(problems: Problems, doc: &RecipeDoc) {
    let fields = problems.into_fields();
    assert!(!fields.is_empty(), "a refusal without a problem");
    for (path, message) in &fields {
        assert!(
            is_recipe_path(path, doc),
            "{path:?} is not a path of the document ({message}); all: {fields:?}"
        );
        assert!(!message.trim().is_empty(), "{path}: an empty message");
    }
}

/// `from_json`'s problems are at `prefix` or under it, one per refusal.
fn assert_shape_problems(problems: Problems, prefix: &str) {
    let fields = problems.into_fields();
    assert_eq!(fields.len(), 1, "{fields:?}");
    for (path, message) in &fields {
        assert!(
            path == prefix || path.starts_with(&format!("{prefix}.")),
            "{path:?} is not under {prefix:?}"
        );
        assert!(!message.trim().is_empty(), "{path}: an empty message");
    }
}

/// The whole pipeline the API runs on a recipe: shape, then the checks with `params`.
fn parse_and_check(value: Value, params: &Value) {
    match RecipeDoc::from_json(value, "recipe") {
        Err(problems) => assert_shape_problems(problems, "recipe"),
        Ok(doc) => match doc.check(params) {
            Ok(recipe) => {
                assert!(!recipe.steps.is_empty() && recipe.steps.len() <= MAX_STEPS);
                // Dependency order: every step after what it waits for.
                for (i, step) in recipe.steps.iter().enumerate() {
                    for up in step.upstream() {
                        let at = recipe.steps.iter().position(|s| s.name == up);
                        assert!(at.is_some_and(|at| at < i), "{up} before {}", step.name);
                    }
                }
            }
            Err(problems) => assert_problems_at_recipe_paths(problems, &doc),
        },
    }
}

// ---- properties -------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn recipe_json_of_any_shape_is_refused_at_a_path(value in any_json(), params in params()) {
        parse_and_check(value, &params);
    }

    #[test]
    fn recipe_text_of_any_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        // The API reads the body as JSON first; whatever parses goes on to the recipe parser.
        if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
            parse_and_check(value, &Value::Null);
        }
    }

    #[test]
    fn near_valid_recipes_are_accepted_or_refused_at_a_path(
        doc in near_valid_recipe(),
        params in params(),
    ) {
        parse_and_check(doc, &params);
    }

    #[test]
    fn valid_recipes_are_accepted_with_what_they_were_built_from(
        (doc, built) in valid_recipe(),
    ) {
        let parsed = RecipeDoc::from_json(doc.clone(), "recipe")
            .unwrap_or_else(|p| panic!("{p}: {doc}"));
        // The document round-trips through its own serialisation.
        let again = RecipeDoc::from_json(serde_json::to_value(&parsed).unwrap(), "recipe")
            .unwrap_or_else(|p| panic!("{p}"));
        prop_assert_eq!(&again, &parsed);
        let recipe = parsed.check(&Value::Null).unwrap_or_else(|p| panic!("{p}: {doc}"));
        prop_assert_eq!(recipe.steps.len(), built.len());
        for (name, op, options) in &built {
            let step = recipe.step(name).unwrap_or_else(|| panic!("{name} is missing"));
            prop_assert_eq!(step.op.name(), op.as_str());
            prop_assert_eq!(step.inputs.clone(), vec![InputRef::Job("video".into())]);
            // The typed options are the ones written: parsing the written JSON gives them.
            let written = Operation::parse(op, options, "o").unwrap_or_else(|p| panic!("{p}"));
            prop_assert_eq!(&step.op, &written);
            // And they read back from their own JSON.
            let back = Operation::parse(op, &step.op.options(), "o")
                .unwrap_or_else(|p| panic!("{p}"));
            prop_assert_eq!(&back, &step.op);
        }
    }

    #[test]
    fn frames_every_from_a_param_is_substituted_or_refused_at_the_param(every in any_json()) {
        let frames = vidsnap_domain::recipe::builtin("frames").unwrap();
        match frames.check(&json!({"every": every})) {
            Ok(recipe) => {
                let Operation::Frames(options) = &recipe.steps[0].op else {
                    panic!("{:?}", recipe.steps[0].op)
                };
                let seconds = options.every.seconds();
                prop_assert!(seconds.is_finite() && seconds > 0.0, "{seconds}");
            }
            Err(problems) => {
                let fields = problems.into_fields();
                prop_assert_eq!(fields.keys().collect::<Vec<_>>(), vec!["params.every"]);
            }
        }
    }

    #[test]
    fn input_refs_parse_what_they_print(text in nasty_string()) {
        if let Ok(input) = InputRef::parse(&text) {
            prop_assert_eq!(String::from(input), text);
        }
    }

    #[test]
    fn checksum_algorithms_are_sha1_and_sha256_in_any_case(name in prop_oneof![
        nasty_string(),
        prop::sample::select(&["sha1", "SHA1", "Sha256", "sha256", "sha-256", "md5", "sha1 "][..])
            .prop_map(str::to_owned),
    ]) {
        match ChecksumAlgorithm::parse(&name) {
            Some(algorithm) => {
                prop_assert!(algorithm.as_str().eq_ignore_ascii_case(&name));
                prop_assert_eq!(ChecksumAlgorithm::parse(algorithm.as_str()), Some(algorithm));
            }
            None => prop_assert!(
                !["sha1", "sha256"].iter().any(|known| known.eq_ignore_ascii_case(&name))
            ),
        }
    }
}
