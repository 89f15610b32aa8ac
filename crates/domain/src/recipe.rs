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

mod builtins;
#[cfg(test)]
mod tests;

pub use builtins::{builtin, builtins};
