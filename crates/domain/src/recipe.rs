//! Recipes: named steps, each an operation over inputs (the job's videos or earlier steps'
//! artefacts), checked as a whole before anything runs.
//!
//! A recipe is written as JSON ([`RecipeDoc`]) and becomes a [`Recipe`] only through
//! [`RecipeDoc::check`], which substitutes the job's parameters and reports every problem with
//! its JSON path: names unique and well formed, inputs that exist, no cycles, valid options.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ops::{Operation, Problems};

/// The most steps a recipe may have: a ladder of renditions plus a few checks fits easily.
pub const MAX_STEPS: usize = 64;
/// Most inputs (videos) one job may read.
pub const MAX_INPUTS: usize = 16;
/// The most attempts a step may be given.
pub const MAX_ATTEMPTS: u32 = 20;

/// A recipe as written (by a user, or built in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The job's named inputs (videos); `["video"]` when left out.
    #[serde(default = "default_inputs")]
    pub inputs: Vec<String>,
    /// Values a job supplies (`params`), referred to in step options as `{"$param": "name"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, ParamDoc>,
    pub steps: Vec<StepDoc>,
}

fn default_inputs() -> Vec<String> {
    vec!["video".to_owned()]
}

/// A recipe parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamDoc {
    /// Used when the job does not supply the parameter; without one the parameter is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A step as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDoc {
    pub name: String,
    pub op: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub options: Value,
    /// Each either a job input (`"video"`) or an earlier step's artefact (`"probe/probe"`).
    /// Left out when the recipe has one input: that input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
    /// Steps that must succeed first although none of their artefacts is an input.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
}

/// How often a step is tried before it is `dead`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    pub max_attempts: u32,
}

/// What a step reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum InputRef {
    /// A video the job was given, by the recipe's input name.
    Job(String),
    /// An artefact of an earlier step.
    Artefact { step: String, artefact: String },
}

impl InputRef {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once('/') {
            None if is_name(text) => Ok(Self::Job(text.to_owned())),
            Some((step, artefact)) if is_name(step) && !artefact.is_empty() => Ok(Self::Artefact {
                step: step.to_owned(),
                artefact: artefact.to_owned(),
            }),
            _ => Err(format!(
                "{text:?} is neither an input name nor \"step/artefact\""
            )),
        }
    }

    /// The step this input comes from, if any.
    pub fn step(&self) -> Option<&str> {
        match self {
            Self::Job(_) => None,
            Self::Artefact { step, .. } => Some(step),
        }
    }
}

impl From<InputRef> for String {
    fn from(input: InputRef) -> String {
        match input {
            InputRef::Job(name) => name,
            InputRef::Artefact { step, artefact } => format!("{step}/{artefact}"),
        }
    }
}

impl TryFrom<String> for InputRef {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text)
    }
}

/// A step that passed every check: its operation's options are typed and resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSpec {
    pub name: String,
    #[serde(flatten)]
    pub op: Operation,
    pub inputs: Vec<InputRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// The recipe's own limit; `None` takes the service's `max_attempts`.
    pub max_attempts: Option<u32>,
}

impl StepSpec {
    /// Steps this one waits for: those whose artefacts it reads and those it runs after.
    pub fn upstream(&self) -> BTreeSet<&str> {
        self.inputs
            .iter()
            .filter_map(InputRef::step)
            .chain(self.after.iter().map(String::as_str))
            .collect()
    }
}

/// A checked recipe, steps in an order where each comes after its upstream steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    pub inputs: Vec<String>,
    pub steps: Vec<StepSpec>,
}

impl Recipe {
    pub fn step(&self, name: &str) -> Option<&StepSpec> {
        self.steps.iter().find(|step| step.name == name)
    }

    /// Every step that reads (directly or not) what `name` makes, in recipe order.
    pub fn downstream(&self, name: &str) -> Vec<&str> {
        let mut reached: BTreeSet<&str> = BTreeSet::from([name]);
        let mut found = Vec::new();
        // Steps are in dependency order, so one pass reaches everything.
        for step in &self.steps {
            if step.upstream().iter().any(|up| reached.contains(up)) {
                reached.insert(&step.name);
                found.push(step.name.as_str());
            }
        }
        found
    }
}

/// A recipe name, step name, input or parameter name: a letter, then letters, digits, `_` or
/// `-`, at most 64 characters (they appear in URLs and blob keys).
pub fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && text.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

const NAME_RULE: &str = "must start with a lower-case letter and hold only a-z, 0-9, _ and - (at \
                         most 64)";

impl RecipeDoc {
    /// A document from JSON, or what is wrong with its shape at its JSON path (`steps[0]`: an
    /// unknown field, `steps[1].retry.max_attempts`: not a number), under `prefix`.
    pub fn from_json(value: Value, prefix: &str) -> Result<Self, Problems> {
        serde_path_to_error::deserialize(value).map_err(|error| {
            let path = error.path().to_string();
            let at = if path == "." || path.is_empty() {
                prefix.to_owned()
            } else {
                format!("{prefix}.{path}")
            };
            Problems::one(at, error.into_inner().to_string())
        })
    }

    /// Checks the recipe with the job's parameters (`params`, a JSON object or null) and returns
    /// it with every option resolved. Paths in the problems are relative to the recipe document,
    /// except `params.NAME` for a parameter the job got wrong.
    pub fn check(&self, params: &Value) -> Result<Recipe, Problems> {
        let mut problems = Problems::default();
        let supplied = match params {
            Value::Null => serde_json::Map::new(),
            Value::Object(map) => map.clone(),
            _ => {
                return Err(Problems::one("params", "must be an object"));
            }
        };

        let inputs: Vec<String> = self.inputs.clone();
        if inputs.is_empty() {
            problems.add("inputs", "a recipe needs at least one input");
        }
        if inputs.len() > MAX_INPUTS {
            problems.add("inputs", format!("at most {MAX_INPUTS} inputs"));
        }
        for (i, input) in inputs.iter().enumerate() {
            if !is_name(input) {
                problems.add(format!("inputs[{i}]"), NAME_RULE);
            } else if inputs[..i].contains(input) {
                problems.add(format!("inputs[{i}]"), format!("{input:?} is listed twice"));
            }
        }

        // Parameters: every supplied one declared, every declared one supplied or defaulted.
        let mut values = BTreeMap::new();
        for (name, param) in &self.params {
            if !is_name(name) {
                problems.add(format!("params.{name}"), NAME_RULE);
            }
            match supplied.get(name).or(param.default.as_ref()) {
                Some(value) => {
                    values.insert(name.clone(), value.clone());
                }
                None => {
                    problems.add(
                        format!("params.{name}"),
                        "required: this recipe has no default for it",
                    );
                    // Reported once, here: the options using it take their default meanwhile
                    // rather than a second (and wrong) "no parameter named" at each use.
                    values.insert(name.clone(), Value::Null);
                }
            }
        }
        for name in supplied.keys() {
            if !self.params.contains_key(name) {
                let declared: Vec<&str> = self.params.keys().map(String::as_str).collect();
                let hint = if declared.is_empty() {
                    "this recipe takes no parameters".to_owned()
                } else {
                    format!("this recipe takes {}", declared.join(", "))
                };
                problems.add(
                    format!("params.{name}"),
                    format!("unknown parameter: {hint}"),
                );
            }
        }

        if self.steps.is_empty() {
            problems.add("steps", "a recipe needs at least one step");
        }
        if self.steps.len() > MAX_STEPS {
            problems.add("steps", format!("at most {MAX_STEPS} steps"));
        }

        let mut specs = Vec::new();
        let mut index_of = BTreeMap::new();
        for (i, step) in self.steps.iter().enumerate() {
            let at = format!("steps[{i}]");
            if !is_name(&step.name) {
                problems.add(format!("{at}.name"), NAME_RULE);
            } else if index_of.insert(step.name.as_str(), i).is_some() {
                problems.add(
                    format!("{at}.name"),
                    format!(
                        "{:?} names another step too: step names are unique",
                        step.name
                    ),
                );
            }
            let mut origins = BTreeMap::new();
            let options = substitute(
                &step.options,
                &values,
                &format!("{at}.options"),
                &mut origins,
            );
            let op = match options {
                Ok(options) => Operation::parse(&step.op, &options, &format!("{at}.options"))
                    .map_err(|p| {
                        // A bad value that came from a parameter is the parameter's problem.
                        let mut moved = Problems::default();
                        for (path, message) in p.into_fields() {
                            match origins.get(&path) {
                                Some(name) => moved.add(format!("params.{name}"), message),
                                None => moved.add(path, message),
                            }
                        }
                        moved
                    }),
                Err(p) => Err(p),
            };
            let max_attempts = match step.retry {
                Some(RetryPolicy { max_attempts })
                    if (1..=MAX_ATTEMPTS).contains(&max_attempts) =>
                {
                    Some(max_attempts)
                }
                Some(_) => {
                    problems.add(
                        format!("{at}.retry.max_attempts"),
                        format!("must be from 1 to {MAX_ATTEMPTS}"),
                    );
                    None
                }
                None => None,
            };
            let inputs = match &step.inputs {
                Some(listed) => listed.clone(),
                None if inputs.len() == 1 => inputs.clone(),
                None => {
                    problems.add(
                        format!("{at}.inputs"),
                        "required: the recipe has several inputs",
                    );
                    Vec::new()
                }
            };
            let mut refs = Vec::new();
            for (j, text) in inputs.iter().enumerate() {
                match InputRef::parse(text) {
                    Ok(input) => refs.push(input),
                    Err(message) => problems.add(format!("{at}.inputs[{j}]"), message),
                }
            }
            match op {
                Ok(op) => {
                    // Also when left out: one recipe input is one input, which `mux` refuses.
                    let info = op.info();
                    if !info.takes(refs.len()) && (step.inputs.is_some() || !refs.is_empty()) {
                        problems.add(
                            format!("{at}.inputs"),
                            format!("{} takes {}, got {}", op.name(), info.arity(), refs.len()),
                        );
                    }
                    specs.push(StepSpec {
                        name: step.name.clone(),
                        op,
                        inputs: refs,
                        after: step.after.clone(),
                        max_attempts,
                    });
                }
                Err(p) => problems.merge(p),
            }
        }

        // References: job inputs that exist, steps that exist and make that artefact.
        for (i, step) in self.steps.iter().enumerate() {
            let listed = step.inputs.clone().unwrap_or_default();
            for (j, text) in listed.iter().enumerate() {
                let at = format!("steps[{i}].inputs[{j}]");
                match InputRef::parse(text) {
                    Ok(InputRef::Job(name)) if !inputs.contains(&name) => problems.add(
                        at,
                        format!(
                            "no input or step output {name:?}: inputs are {}",
                            inputs.join(", ")
                        ),
                    ),
                    Ok(InputRef::Artefact {
                        step: from,
                        artefact,
                    }) => match self.steps.iter().find(|s| s.name == from) {
                        None => problems.add(at, format!("no step named {from:?}")),
                        Some(_) if from == step.name => {
                            problems.add(at, "a step cannot read its own artefacts")
                        }
                        Some(source) => {
                            let made = crate::ops::Operation::ALL
                                .iter()
                                .find(|info| info.name == source.op)
                                .map_or(&[][..], |info| info.artefacts);
                            if !made.contains(&artefact.as_str()) {
                                problems.add(
                                    at,
                                    format!(
                                        "step {from:?} ({}) makes no artefact {artefact:?}: it \
                                             makes {}",
                                        source.op,
                                        made.join(", ")
                                    ),
                                );
                            }
                        }
                    },
                    _ => {}
                }
            }
            for (j, name) in step.after.iter().enumerate() {
                let at = format!("steps[{i}].after[{j}]");
                if name == &step.name {
                    problems.add(at, "a step cannot run after itself");
                } else if !index_of.contains_key(name.as_str()) {
                    problems.add(at, format!("no step named {name:?}"));
                }
            }
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        let steps = order(specs, &index_of)?;
        Ok(Recipe { inputs, steps })
    }
}

/// The steps in dependency order (Kahn's algorithm, stable in recipe order), or the steps caught
/// in a cycle.
fn order(
    specs: Vec<StepSpec>,
    index_of: &BTreeMap<&str, usize>,
) -> Result<Vec<StepSpec>, Problems> {
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut left = specs;
    let mut ordered = Vec::new();
    loop {
        let before = left.len();
        let (ready, waiting): (Vec<_>, Vec<_>) = left
            .into_iter()
            .partition(|s| s.upstream().iter().all(|up| done.contains(*up)));
        for step in &ready {
            done.insert(step.name.clone());
        }
        ordered.extend(ready);
        left = waiting;
        if left.is_empty() {
            return Ok(ordered);
        }
        if left.len() == before {
            let mut problems = Problems::default();
            let names: Vec<&str> = left.iter().map(|s| s.name.as_str()).collect();
            for step in &left {
                let i = index_of.get(step.name.as_str()).copied().unwrap_or(0);
                // The field that ties it into the cycle: an artefact it reads, or else `after`.
                let reads = step
                    .inputs
                    .iter()
                    .filter_map(InputRef::step)
                    .any(|up| names.contains(&up));
                let field = if reads { "inputs" } else { "after" };
                problems.add(
                    format!("steps[{i}].{field}"),
                    format!("a cycle: {} wait for each other", names.join(", ")),
                );
            }
            return Err(problems);
        }
    }
}

/// Options with every `{"$param": "name"}` replaced by the parameter's value.
/// `origins` gets the path of each option that came from a parameter, with the parameter's name,
/// so a bad value is reported where the request said it (`params.every`).
fn substitute(
    value: &Value,
    params: &BTreeMap<String, Value>,
    path: &str,
    origins: &mut BTreeMap<String, String>,
) -> Result<Value, Problems> {
    match value {
        Value::Object(map) if map.len() == 1 && map.contains_key("$param") => {
            match map.get("$param").and_then(Value::as_str) {
                Some(name) => {
                    origins.insert(path.to_owned(), name.to_owned());
                    params.get(name).cloned().ok_or_else(|| {
                        Problems::one(path, format!("no parameter named {name:?} in the recipe"))
                    })
                }
                None => Err(Problems::one(path, "$param must name a parameter")),
            }
        }
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            let mut problems = Problems::default();
            for (key, inner) in map {
                match substitute(inner, params, &format!("{path}.{key}"), origins) {
                    Ok(v) => {
                        out.insert(key.clone(), v);
                    }
                    Err(p) => problems.merge(p),
                }
            }
            problems.or(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

/// The recipes every installation has, by name.
pub fn builtin(name: &str) -> Option<RecipeDoc> {
    builtins()
        .into_iter()
        .find(|r| r.name.as_deref() == Some(name))
}

/// Every built-in recipe.
pub fn builtins() -> Vec<RecipeDoc> {
    let doc = |json: Value| -> RecipeDoc {
        serde_json::from_value(json).unwrap_or_else(|e| unreachable!("a built-in recipe: {e}"))
    };
    vec![
        doc(serde_json::json!({
            "name": "frames",
            "description": "A frame every `every` seconds, zipped with a manifest, the first frame \
                            kept as the thumbnail (what /v1/videos does).",
            "params": {
                "every": {"default": "10s", "description": "seconds between frames (\"10s\", 2.5, \"500ms\")"},
                "mode": {"default": "exact", "description": "exact or keyframe"},
                "format": {"default": "jpg", "description": "jpg, png or webp"},
                "images": {"default": true, "description": "also store the manifest and each frame \
                           as artefacts of their own (false: the zip and the thumbnail only)"}
            },
            "steps": [{
                "name": "frames",
                "op": "frames",
                "options": {
                    "every": {"$param": "every"},
                    "mode": {"$param": "mode"},
                    "format": {"$param": "format"},
                    "images": {"$param": "images"}
                }
            }]
        })),
        doc(serde_json::json!({
            "name": "thumbnail",
            "description": "One frame at `at` seconds (clamped to the duration).",
            "params": {"at": {"default": 1, "description": "seconds from the start"}},
            "steps": [{"name": "thumbnail", "op": "thumbnail", "options": {"at": {"$param": "at"}}}]
        })),
        doc(serde_json::json!({
            "name": "probe",
            "description": "Container and stream facts, checked against the limits.",
            "steps": [{"name": "probe", "op": "probe"}]
        })),
        doc(serde_json::json!({
            "name": "qc",
            "description": "A quality-control report (qc.json) from one decoding pass, with seed \
                            002's rating 0-5 and pass rule; `policy` names checks that must pass.",
            "params": {
                "min_bytes": {"default": crate::ops::MIB, "description": "smaller files fail the size check"},
                "black_min_duration": {"default": 1, "description": "seconds of black before it is reported"},
                "freeze_min_duration": {"default": 2, "description": "seconds of a still picture before it is reported"},
                "silence_min_duration": {"default": 2, "description": "seconds of silence before it is reported"},
                "silence_db": {"default": -60, "description": "dBFS below which audio is silence"},
                "target_lufs": {"default": -23, "description": "integrated loudness to meet (EBU R128)"},
                "lufs_tolerance": {"default": 1, "description": "LU from the target that still meets it"},
                "policy": {"default": [], "description": "checks that must be ok to pass: a list or \"black,silence\""}
            },
            "steps": [{
                "name": "qc",
                "op": "qc",
                "options": {
                    "min_bytes": {"$param": "min_bytes"},
                    "black_min_duration": {"$param": "black_min_duration"},
                    "freeze_min_duration": {"$param": "freeze_min_duration"},
                    "silence_min_duration": {"$param": "silence_min_duration"},
                    "silence_db": {"$param": "silence_db"},
                    "target_lufs": {"$param": "target_lufs"},
                    "lufs_tolerance": {"$param": "lufs_tolerance"},
                    "policy": {"$param": "policy"}
                }
            }]
        })),
        doc(serde_json::json!({
            "name": "package",
            "description": "HLS and DASH from one encode: an H.264 ladder (never upscaled) and AAC \
                            audio in CMAF segments; the step's folder holds master.m3u8, \
                            manifest.mpd, the variant playlists and the segments.",
            "params": {
                "ladder": {"default": "1080,720,480,360", "description": "short sides of the \
                           renditions (\"720,480\"), or a list of {short_side, kbps, profile}"},
                "segment": {"default": 4, "description": "seconds per segment (1-20)"},
                "audio_kbps": {"default": 128, "description": "stereo AAC bit rate; mono gets half"}
            },
            "steps": [{
                "name": "package",
                "op": "package",
                "options": {
                    "ladder": {"$param": "ladder"},
                    "segment": {"$param": "segment"},
                    "audio_kbps": {"$param": "audio_kbps"}
                }
            }]
        })),
        doc(serde_json::json!({
            "name": "call-recording",
            "description": "Seed 004: a call centre's audio merged into a screen recording. One \
                            MP4 whose video is the recording's (copied) and whose audio is the \
                            call on [0, call_end) (padded with silence or cut) then the \
                            recording's own audio to its end; and a thumbnail of it at 1 s.",
            "inputs": ["call_audio", "recording"],
            "params": {
                "call_end": {"description": "where the call ends in the recording: seconds \
                             (12.5) or HH:MM:SS(.mmm) (\"00:00:12\")"}
            },
            "steps": [
                {"name": "merge", "op": "merge_call", "inputs": ["call_audio", "recording"],
                 "options": {"call_end": {"$param": "call_end"}}},
                {"name": "thumbnail", "op": "thumbnail", "inputs": ["merge/video"],
                 "options": {"at": 1}}
            ]
        })),
        doc(serde_json::json!({
            "name": "preview",
            "description": "Probe and thumbnail side by side, then the frames once both succeeded.",
            "params": {
                "every": {"default": "10s", "description": "seconds between frames"},
                "at": {"default": 1, "description": "the thumbnail's time, in seconds"}
            },
            "steps": [
                {"name": "probe", "op": "probe"},
                {"name": "thumbnail", "op": "thumbnail", "options": {"at": {"$param": "at"}}},
                {"name": "frames", "op": "frames", "options": {"every": {"$param": "every"}},
                 "after": ["probe", "thumbnail"]}
            ]
        })),
        doc(serde_json::json!({
            "name": "storyboard",
            "description": "Sprite sheets of a tile every `every` seconds, with the WebVTT file \
                            players read for scrubbing previews.",
            "params": {
                "every": {"default": "5s", "description": "seconds between tiles"},
                "width": {"default": 160, "description": "tile width in pixels (even); the height \
                          follows the video"},
                "columns": {"default": 10, "description": "tiles per row of a sheet"},
                "rows": {"default": 10, "description": "rows per sheet"},
                "mode": {"default": "exact", "description": "exact or keyframe (faster)"}
            },
            "steps": [{
                "name": "storyboard",
                "op": "storyboard",
                "options": {
                    "every": {"$param": "every"},
                    "width": {"$param": "width"},
                    "columns": {"$param": "columns"},
                    "rows": {"$param": "rows"},
                    "mode": {"$param": "mode"}
                }
            }]
        })),
        doc(serde_json::json!({
            "name": "scenes",
            "description": "The frames where a new shot starts, with their scores and times, \
                            zipped with a manifest.",
            "params": {
                "threshold": {"default": 0.3, "description": "score (0-1) above which a frame \
                              starts a new shot, as ffmpeg's scene score"},
                "min_gap": {"default": 1, "description": "seconds within which two cuts are one"},
                "max_scenes": {"default": 100, "description": "keep at most this many cuts, the \
                               strongest"}
            },
            "steps": [{
                "name": "scenes",
                "op": "scenes",
                "options": {
                    "threshold": {"$param": "threshold"},
                    "min_gap": {"$param": "min_gap"},
                    "max_scenes": {"$param": "max_scenes"}
                }
            }]
        })),
        doc(serde_json::json!({
            "name": "smart_thumbnail",
            "description": "The best poster frame among evenly spaced candidates (not black, not \
                            blurred, not a fade), with a manifest scoring each.",
            "params": {
                "candidates": {"default": 10, "description": "how many frames to measure"}
            },
            "steps": [{
                "name": "thumbnail",
                "op": "smart_thumbnail",
                "options": {"candidates": {"$param": "candidates"}}
            }]
        })),
        doc(serde_json::json!({
            "name": "player",
            "description": "What a video player shows before and while it plays: the best poster \
                            frame and a storyboard for scrubbing, side by side.",
            "params": {
                "every": {"default": "5s", "description": "seconds between storyboard tiles"}
            },
            "steps": [
                {"name": "poster", "op": "smart_thumbnail"},
                {"name": "storyboard", "op": "storyboard", "options": {"every": {"$param": "every"}}}
            ]
        })),
    ]
}

#[cfg(test)]
mod tests {
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
        let f =
            wrong(json!({"steps": [{"name": "a", "op": "probe", "retry": {"max_attempts": -1}}]}));
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
}
