//! Reading an options object field by field, collecting every problem with its JSON path.

use std::{collections::BTreeMap, str::FromStr};

use serde_json::{Map, Value};

use super::timestamp::{TIMESTAMP_RULE, Timestamp};

/// What is wrong with a document, by JSON path (`steps[1].options.every`). The API answers them
/// as the `fields` of a 422.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(BTreeMap<String, String>);

impl Problems {
    pub fn one(path: impl Into<String>, message: impl Into<String>) -> Self {
        let mut problems = Self::default();
        problems.add(path, message);
        problems
    }

    /// Keeps the first message for a path.
    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.entry(path.into()).or_insert_with(|| message.into());
    }

    pub fn merge(&mut self, other: Problems) {
        for (path, message) in other.0 {
            self.add(path, message);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_fields(self) -> BTreeMap<String, String> {
        self.0
    }

    /// `Ok(value)` when nothing was found wrong.
    pub fn or<T>(self, value: T) -> Result<T, Problems> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// Every path with a prefix put in front (`recipe.` + `steps[0]…`).
    pub fn prefixed(self, prefix: &str) -> Problems {
        Problems(
            self.0
                .into_iter()
                .map(|(path, message)| (format!("{prefix}{path}"), message))
                .collect(),
        )
    }
}

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (path, message) in &self.0 {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{path}: {message}")?;
        }
        Ok(())
    }
}

/// An options object being read: each getter records what is wrong and returns `None` for it;
/// [`Reader::finish`] refuses the keys nobody asked for.
pub(crate) struct Reader<'a> {
    object: &'a Map<String, Value>,
    path: &'a str,
    read: Vec<&'static str>,
    pub(crate) problems: Problems,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(object: &'a Map<String, Value>, path: &'a str) -> Self {
        Self {
            object,
            path,
            read: Vec::new(),
            problems: Problems::default(),
        }
    }

    fn at(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.read.push(key);
        self.object.get(key).filter(|value| !value.is_null())
    }

    pub(crate) fn fail(&mut self, key: &str, message: impl Into<String>) {
        let at = self.at(key);
        self.problems.add(at, message);
    }

    /// A value given as a string (`"10s"`, `"keyframe"`) through its `FromStr`, or as a number
    /// through `from_number` when that is allowed.
    pub(crate) fn parsed<T>(
        &mut self,
        key: &'static str,
        from_number: Option<fn(f64) -> Result<T, String>>,
    ) -> Option<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let value = self.get(key)?;
        let result = match (value, from_number) {
            (Value::String(text), _) => text.parse::<T>().map_err(|e| e.to_string()),
            (Value::Number(n), Some(from)) => n
                .as_f64()
                .ok_or_else(|| "must be a number".to_owned())
                .and_then(from),
            (_, Some(_)) => Err("must be a string or a number".to_owned()),
            (_, None) => Err("must be a string".to_owned()),
        };
        result.map_err(|message| self.fail(key, message)).ok()
    }

    /// A number of seconds, `>= 0`: a number or a duration string (`"1.5s"`, `"500ms"`).
    pub(crate) fn seconds(&mut self, key: &'static str) -> Option<f64> {
        let value = self.get(key)?;
        let seconds = match value {
            Value::Number(n) => n.as_f64(),
            Value::String(text) => parse_seconds(text),
            _ => None,
        };
        match seconds {
            Some(s) if s.is_finite() && s >= 0.0 => Some(s),
            _ => {
                self.fail(
                    key,
                    "must be a time >= 0: seconds, or e.g. \"1.5s\", \"500ms\", \"2m\"",
                );
                None
            }
        }
    }

    /// The value as written, of any shape (null is absent): for an option whose reading
    /// lives with its operation, e.g. `package`'s ladder.
    pub(crate) fn value(&mut self, key: &'static str) -> Option<&'a Value> {
        self.get(key)
    }

    /// A time into a file: seconds as a number, or a string that [`Timestamp`] reads
    /// (`"00:00:12.500"`, `"12.5s"`).
    pub(crate) fn timestamp(&mut self, key: &'static str) -> Option<Timestamp> {
        self.parsed::<Timestamp>(key, Some(Timestamp::from_seconds))
    }

    /// A time that must be given.
    pub(crate) fn required_timestamp(&mut self, key: &'static str) -> Option<Timestamp> {
        let given = self.object.get(key).is_some_and(|value| !value.is_null());
        if !given {
            self.read.push(key);
            self.fail(key, format!("required: {TIMESTAMP_RULE}"));
            return None;
        }
        self.timestamp(key)
    }

    pub(crate) fn boolean(&mut self, key: &'static str) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            _ => {
                self.fail(key, "must be true or false");
                None
            }
        }
    }

    /// A whole number within `range`.
    pub(crate) fn whole(
        &mut self,
        key: &'static str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Option<u64> {
        let value = self.get(key)?;
        match value.as_u64() {
            Some(n) if range.contains(&n) => Some(n),
            _ => {
                self.fail(
                    key,
                    format!(
                        "must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    /// A number within `range` (negative allowed: decibels, LUFS).
    pub(crate) fn number(
        &mut self,
        key: &'static str,
        range: std::ops::RangeInclusive<f64>,
    ) -> Option<f64> {
        let value = self.get(key)?;
        match value.as_f64() {
            Some(n) if range.contains(&n) => Some(n),
            _ => {
                self.fail(
                    key,
                    format!("must be a number from {} to {}", range.start(), range.end()),
                );
                None
            }
        }
    }

    /// A list of names through their `FromStr`: a JSON array of strings, or one string of
    /// comma-separated names (`"black,silence"`, as a command-line parameter gives it). Every
    /// bad name is reported at `key` itself, so a list that came from a recipe parameter is
    /// reported at the parameter.
    pub(crate) fn names<T>(&mut self, key: &'static str) -> Option<Vec<T>>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let value = self.get(key)?;
        let names: Vec<&str> = match value {
            Value::String(text) => text.split(',').collect(),
            Value::Array(values) => match values.iter().map(Value::as_str).collect() {
                Some(names) => names,
                None => {
                    self.fail(key, "must be a list of strings");
                    return None;
                }
            },
            _ => {
                self.fail(key, "must be a list of names or a comma-separated string");
                return None;
            }
        };
        let mut parsed = Vec::new();
        let mut wrong = Vec::new();
        for name in names.into_iter().map(str::trim).filter(|n| !n.is_empty()) {
            match name.parse::<T>() {
                Ok(item) => parsed.push(item),
                Err(e) => wrong.push(e.to_string()),
            }
        }
        if wrong.is_empty() {
            Some(parsed)
        } else {
            self.fail(key, wrong.join("; "));
            None
        }
    }

    /// Every problem found, with the keys that are not options of this operation.
    pub(crate) fn finish(mut self) -> Problems {
        for key in self.object.keys() {
            if !self.read.contains(&key.as_str()) {
                let at = self.at(key);
                let known = self.read.join(", ");
                let message = if known.is_empty() {
                    "unknown option: this operation takes none".to_owned()
                } else {
                    format!("unknown option: use {known}")
                };
                self.problems.add(at, message);
            }
        }
        self.problems
    }
}

/// `"1.5"`, `"1.5s"`, `"500ms"`, `"2m"`, `"1h"` as seconds.
pub(crate) fn parse_seconds(text: &str) -> Option<f64> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number.trim().parse().ok()?;
    let scale = match unit.trim() {
        "" | "s" | "sec" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    Some(value * scale)
}
