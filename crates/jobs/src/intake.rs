//! Job requests from a queue (`[[intake]]`): a message of a known shape starts a job, with no API
//! call. Seed 004's controller sent `{"recordingID": "r-17", "callEndingTimestamp": "00:00:14"}`
//! to SQS and its Lambda looked the recording's two files up in a database; here an intake says
//! where those files are in the storage, as key templates filled from the message's fields:
//!
//! ```toml
//! [[intake]]
//! name = "calls"
//! owner = "calls@example.com"
//! recipe = "call-recording"
//! inputs = { call_audio = "connect/{recordingID}.wav", recording = "screens/{recordingID}.mp4" }
//! params = { call_end = "{callEndingTimestamp}" }
//! ```
//!
//! A message that fits no intake, or whose parameters the recipe refuses (a malformed
//! `call_end`), can never make a job: it is refused with a stable reason and the consumer
//! dead-letters it at once. One whose files are not stored yet (or that meets a backend failure)
//! is left to the queue, which delivers it again and dead-letters it once its deliveries run
//! out. A job that then fails (a `call_end` past the end of the recording) fails like any other,
//! with its coded error and its `job.failed` notification.
//!
//! The job's id is derived from when the queue took the message and what it asks for, so a
//! message delivered twice (SQS delivers at least once) makes one job.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use vidsnap_domain::{
    BlobStore, JobId, PortError, RequestError, RequestListener, RequestOutcome, UserId, Video,
    VideoId, VideoOptions,
};

use crate::{JobError, JobService, RecipeSource};

/// A message shape that starts a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intake {
    /// Names the intake in logs and refusals.
    pub name: String,
    /// The e-mail of the account the jobs belong to (it must exist).
    pub owner: String,
    /// The built-in recipe the jobs run (`GET /v1/recipes`).
    pub recipe: String,
    /// Every input of the recipe: the storage key of its file (relative to the storage's root
    /// or bucket prefix), where `{field}` is the message's field of that name.
    pub inputs: BTreeMap<String, String>,
    /// The recipe's parameters. A string that is one `{field}` takes the field's JSON value
    /// as it is (a number stays a number); `{field}` inside a longer string is replaced by it.
    #[serde(default)]
    pub params: Map<String, Value>,
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(String),
}

/// `connect/{recordingID}.wav` as pieces; a lone or unclosed brace, or a field name with
/// anything but letters, digits, `_`, `-` and `.`, is an error.
fn pieces(template: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(format!("{template:?} has a '}}' with no '{{'"));
        }
        let Some(close) = rest[open..].find('}').map(|c| open + c) else {
            return Err(format!("{template:?} has a '{{' with no '}}'"));
        };
        let name = &rest[open + 1..close];
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !valid {
            return Err(format!(
                "{template:?}: {{{name}}} must name a message field (letters, digits, _ - .)"
            ));
        }
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_owned()));
        }
        pieces.push(Piece::Field(name.to_owned()));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

/// Whether `key` is what `pieces` make for some field values (each non-empty, without `/`).
fn matches(pieces: &[Piece], key: &str) -> bool {
    match pieces.split_first() {
        None => key.is_empty(),
        Some((Piece::Text(t), rest)) => key
            .strip_prefix(t.as_str())
            .is_some_and(|k| matches(rest, k)),
        Some((Piece::Field(_), rest)) => key
            .char_indices()
            .skip(1)
            .map(|(i, _)| i)
            .chain([key.len()])
            .take_while(|&i| !key[..i].contains('/'))
            .any(|i| !key.is_empty() && matches(rest, &key[i..])),
    }
}

/// The text `pieces` make, each field's value given by `value`.
fn fill(
    pieces: Vec<Piece>,
    mut value: impl FnMut(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut text = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(t) => text.push_str(&t),
            Piece::Field(f) => text.push_str(&value(&f)?),
        }
    }
    Ok(text)
}

/// What a message asks of an intake: the inputs' keys and the parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub inputs: BTreeMap<String, String>,
    pub params: Value,
}

impl Intake {
    /// The message fields its templates name.
    pub fn fields(&self) -> BTreeSet<String> {
        let templates = self.inputs.values().map(String::as_str).chain(
            self.params
                .values()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>(),
        );
        templates
            .flat_map(|t| pieces(t).unwrap_or_default())
            .filter_map(|p| match p {
                Piece::Field(name) => Some(name),
                Piece::Text(_) => None,
            })
            .collect()
    }

    /// Whether `key` is a file one of the inputs' templates names (its S3 event is no upload
    /// of a video: the message that names it will come).
    pub fn names_input(&self, key: &str) -> bool {
        self.inputs
            .values()
            .any(|t| pieces(t).is_ok_and(|p| matches(&p, key)))
    }

    /// Whether `message` has every field the templates name.
    pub fn fits(&self, message: &Map<String, Value>) -> bool {
        self.fields().iter().all(|f| message.contains_key(f))
    }

    /// The keys and parameters for `message`, or why its fields cannot fill them: a field
    /// that is not a string or a whole number, or a key field that is empty or could leave
    /// its folder (`/`, `..`, control characters).
    pub fn render(&self, message: &Map<String, Value>) -> Result<Rendered, String> {
        let text = |field: &str| -> Result<String, String> {
            match message.get(field) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
                Some(other) => Err(format!(
                    "{field} must be a string or a whole number, not {other}"
                )),
                None => Err(format!("the message has no {field}")),
            }
        };
        // A key's field must name one file inside the key's folder.
        let file_name = |field: &str| -> Result<String, String> {
            let value = text(field)?;
            let safe = !value.is_empty()
                && value.len() <= 255
                && value != "."
                && value != ".."
                && !value.contains(['/', '\\'])
                && !value.chars().any(char::is_control);
            if safe {
                Ok(value)
            } else {
                Err(format!(
                    "{field} ({value:?}) cannot name a file: it must be 1 to 255 \
                     characters without '/', '\\\\' or control characters, and not . or .."
                ))
            }
        };
        let mut inputs = BTreeMap::new();
        for (input, template) in &self.inputs {
            inputs.insert(input.clone(), fill(pieces(template)?, file_name)?);
        }
        let mut params = Map::new();
        for (name, value) in &self.params {
            let value = match value.as_str().map(pieces).transpose()? {
                Some(p) => match p.as_slice() {
                    [Piece::Field(f)] => message
                        .get(f)
                        .cloned()
                        .ok_or_else(|| format!("the message has no {f}"))?,
                    _ => Value::String(fill(p, text)?),
                },
                None => value.clone(),
            };
            params.insert(name.clone(), value);
        }
        Ok(Rendered {
            inputs,
            params: Value::Object(params),
        })
    }

    /// The id of the job `rendered` makes from a message the queue took at `sent_at`: a UUIDv7
    /// (jobs list newest first by id) whose time is `sent_at` and whose other bits are a hash of
    /// the intake and what the message asks, the same on every delivery of the message.
    pub fn job_id(&self, rendered: &Rendered, sent_at: DateTime<Utc>) -> JobId {
        let mut hash = Sha256::new();
        hash.update(self.name.as_bytes());
        hash.update([0]);
        hash.update(serde_json::to_vec(&rendered.inputs).unwrap_or_default());
        hash.update([0]);
        hash.update(serde_json::to_vec(&rendered.params).unwrap_or_default());
        let digest = hash.finalize();
        let mut random = [0u8; 10];
        random.copy_from_slice(&digest[..10]);
        let millis = u64::try_from(sent_at.timestamp_millis()).unwrap_or_default();
        JobId::from_uuid(uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid())
    }
}

/// Why the intakes cannot work, with the index in the configuration: checked at start-up.
pub fn check_intakes(intakes: &[Intake]) -> Result<(), String> {
    let mut names = BTreeSet::new();
    for (i, intake) in intakes.iter().enumerate() {
        let at = format!("intake[{i}]");
        if intake.name.trim().is_empty() || !names.insert(intake.name.clone()) {
            return Err(format!("{at}.name must be given, and unique"));
        }
        for (input, template) in &intake.inputs {
            pieces(template).map_err(|e| format!("{at}.inputs.{input}: {e}"))?;
            if template.starts_with('/') || template.ends_with('/') || template.is_empty() {
                return Err(format!(
                    "{at}.inputs.{input} ({template:?}) must be a file's key, e.g. \
                     \"calls/{{recordingID}}.wav\""
                ));
            }
        }
        for (name, value) in &intake.params {
            if let Some(t) = value.as_str() {
                pieces(t).map_err(|e| format!("{at}.params.{name}: {e}"))?;
            }
        }
        let Some(doc) = vidsnap_domain::recipe::builtin(&intake.recipe) else {
            return Err(format!(
                "{at}.recipe: no built-in recipe {:?} (GET /v1/recipes lists them)",
                intake.recipe
            ));
        };
        let missing: BTreeSet<&String> = doc
            .params
            .iter()
            .filter(|(name, param)| param.default.is_none() && !intake.params.contains_key(*name))
            .map(|(name, _)| name)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{at}.params must give {} (recipe {:?} requires it), e.g. \"{{field}}\"",
                list(&missing),
                intake.recipe
            ));
        }
        let wanted: BTreeSet<&String> = doc.inputs.iter().collect();
        let given: BTreeSet<&String> = intake.inputs.keys().collect();
        if wanted != given {
            return Err(format!(
                "{at}.inputs names {}; recipe {:?} takes {}",
                list(&given),
                intake.recipe,
                list(&wanted)
            ));
        }
    }
    Ok(())
}

fn list(names: &BTreeSet<&String>) -> String {
    names
        .iter()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The intakes over the job service and the storage: the [`RequestListener`] queue consumers
/// hand messages to.
#[derive(Clone)]
pub struct Intakes {
    service: JobService,
    blobs: std::sync::Arc<dyn BlobStore>,
}

impl std::fmt::Debug for Intakes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intakes")
            .field("intakes", &self.service.intakes)
            .finish_non_exhaustive()
    }
}

impl Intakes {
    /// The intakes of `service` (see [`JobService::with_intakes`]).
    pub fn new(service: JobService, blobs: std::sync::Arc<dyn BlobStore>) -> Self {
        Self { service, blobs }
    }

    fn refused(reason: &'static str, message: impl Into<String>) -> RequestError {
        RequestError::Refused {
            reason,
            message: message.into(),
        }
    }

    /// The input video stored at `key` (made, and marked uploaded, the first time).
    async fn input(&self, owner: UserId, name: &str, key: &str) -> Result<VideoId, RequestError> {
        let retry = |e: PortError| RequestError::Retry(format!("input {name} ({key}): {e}"));
        let size = match self.blobs.size(key).await {
            Ok(size) => size,
            Err(PortError::NotFound) => {
                return Err(RequestError::Retry(format!(
                    "input {name} is not stored yet at {key}"
                )));
            }
            Err(e) => return Err(retry(e)),
        };
        let video = match self.service.repo().video_by_source(key).await {
            Ok(video) => video,
            Err(PortError::NotFound) => {
                let file_name = key.rsplit('/').next().unwrap_or(key).to_owned();
                let mut video = Video::awaiting_upload(
                    owner,
                    file_name,
                    Some(size),
                    VideoOptions::default(),
                    self.service.max_attempts(),
                    Utc::now(),
                );
                // An input only: stored without processing of its own.
                video.job = None;
                video.source = Some(key.to_owned());
                match self.service.repo().create_video(&video).await {
                    Ok(()) => video,
                    Err(PortError::Conflict(_)) => self
                        .service
                        .repo()
                        .video_by_source(key)
                        .await
                        .map_err(retry)?,
                    Err(e) => return Err(retry(e)),
                }
            }
            Err(e) => return Err(retry(e)),
        };
        if video.owner != owner {
            return Err(Self::refused(
                "invalid-argument",
                format!("input {name} ({key}) is another account's video"),
            ));
        }
        if video.uploaded_at.is_none() {
            self.service
                .uploaded(&video, Some(size))
                .await
                .map_err(retry)?;
        }
        Ok(video.id)
    }
}

#[async_trait]
impl RequestListener for Intakes {
    async fn requested(
        &self,
        body: &str,
        sent_at: DateTime<Utc>,
    ) -> Result<RequestOutcome, RequestError> {
        let message = match serde_json::from_str::<Value>(body) {
            Ok(Value::Object(message)) => message,
            _ => {
                return Err(Self::refused(
                    "unknown-message",
                    "not a JSON object".to_owned(),
                ));
            }
        };
        let Some(intake) = self.service.intakes.iter().find(|i| i.fits(&message)) else {
            let expected: Vec<String> = self
                .service
                .intakes
                .iter()
                .map(|i| {
                    let fields: Vec<String> = i.fields().into_iter().collect();
                    format!("{} ({})", fields.join(", "), i.name)
                })
                .collect();
            return Err(Self::refused(
                "unknown-message",
                format!(
                    "no intake takes this message: expected the fields {}",
                    expected.join(" or ")
                ),
            ));
        };
        let rendered = intake
            .render(&message)
            .map_err(|e| Self::refused("invalid-argument", e))?;
        let source = RecipeSource::Named(intake.recipe.clone());
        // `create_as` checks again; this first check refuses a bad parameter before any input
        // video is made for the message.
        if let Err(problems) = self.service.check(source.clone(), &rendered.params) {
            return Err(Self::refused("invalid-argument", problems.to_string()));
        }
        let id = intake.job_id(&rendered, sent_at);
        match self.service.repo().job(None, id).await {
            Ok(_) => return Ok(RequestOutcome::Duplicate(id)),
            Err(PortError::NotFound) => {}
            Err(e) => return Err(RequestError::Retry(e.to_string())),
        }
        let owner = match self.service.repo().user_by_email(&intake.owner).await {
            Ok(user) => user.id,
            Err(e) => {
                return Err(RequestError::Retry(format!(
                    "intake {}'s owner {}: {e} (create the account)",
                    intake.name, intake.owner
                )));
            }
        };
        let mut inputs = BTreeMap::new();
        for (name, key) in &rendered.inputs {
            inputs.insert(name.clone(), self.input(owner, name, key).await?);
        }
        match self
            .service
            .create_as(id, owner, source, rendered.params, inputs)
            .await
        {
            Ok(job) => {
                tracing::info!(job = %job.id, intake = %intake.name, "a queue message made a job");
                Ok(RequestOutcome::Created(job.id))
            }
            Err(JobError::Port(PortError::Conflict(_))) => Ok(RequestOutcome::Duplicate(id)),
            Err(JobError::Invalid(problems)) => {
                Err(Self::refused("invalid-argument", problems.to_string()))
            }
            Err(JobError::Port(e)) => Err(RequestError::Retry(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn calls() -> Intake {
        serde_json::from_value(json!({
            "name": "calls",
            "owner": "calls@example.com",
            "recipe": "call-recording",
            "inputs": {"call_audio": "connect/{recordingID}.wav",
                       "recording": "screens/{recordingID}/screen.mp4"},
            "params": {"call_end": "{callEndingTimestamp}"}
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn message(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_seed_message_names_the_files_and_the_parameters() {
        let intake = calls();
        assert_eq!(
            intake.fields().into_iter().collect::<Vec<_>>(),
            ["callEndingTimestamp", "recordingID"]
        );
        let m = message(json!({"recordingID": "r-17", "callEndingTimestamp": "00:00:14"}));
        assert!(intake.fits(&m));
        let rendered = intake.render(&m).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rendered.inputs["call_audio"], "connect/r-17.wav");
        assert_eq!(rendered.inputs["recording"], "screens/r-17/screen.mp4");
        assert_eq!(rendered.params, json!({"call_end": "00:00:14"}));
        // A whole-field parameter keeps the JSON value; a number fills a key as text.
        let m = message(json!({"recordingID": 17, "callEndingTimestamp": 14.5}));
        let rendered = intake.render(&m).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rendered.inputs["call_audio"], "connect/17.wav");
        assert_eq!(rendered.params, json!({"call_end": 14.5}));
        assert!(!intake.fits(&message(json!({"recordingID": "r-17"}))));
    }

    #[test]
    fn field_values_cannot_leave_the_folder() {
        let intake = calls();
        for bad in [
            json!("../etc"),
            json!(".."),
            json!("a/b"),
            json!("a\\b"),
            json!(""),
            json!("a\nb"),
            json!(1.5),
            json!(null),
            json!(["r"]),
            json!("x".repeat(256)),
        ] {
            let m = message(json!({"recordingID": bad, "callEndingTimestamp": "00:00:01"}));
            assert!(intake.render(&m).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn templates_are_checked() {
        for bad in ["a/{x", "a/x}", "a/{}", "a/{x y}.wav"] {
            assert!(pieces(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(
            pieces("a{x}b{y}").unwrap_or_default(),
            [
                Piece::Text("a".into()),
                Piece::Field("x".into()),
                Piece::Text("b".into()),
                Piece::Field("y".into())
            ]
        );
        let mut intake = calls();
        assert_eq!(check_intakes(std::slice::from_ref(&intake)), Ok(()));
        intake.params.clear();
        let why = check_intakes(std::slice::from_ref(&intake)).expect_err("refused");
        assert!(why.contains("call_end"), "{why}");
        let mut intake = calls();
        intake.inputs.remove("recording");
        let why = check_intakes(&[intake]).expect_err("refused");
        assert!(why.contains("takes call_audio, recording"), "{why}");
        let mut intake = calls();
        intake.recipe = "nope".into();
        assert!(check_intakes(&[intake]).is_err());
        assert!(
            check_intakes(&[calls(), calls()]).is_err(),
            "duplicate names"
        );
    }

    #[test]
    fn the_inputs_keys_are_recognised() {
        let intake = calls();
        assert!(intake.names_input("connect/r-17.wav"));
        assert!(intake.names_input("screens/r 17/screen.mp4"));
        assert!(!intake.names_input("connect/.wav"));
        assert!(!intake.names_input("connect/a/b.wav"));
        assert!(!intake.names_input("connect/r-17.mp3"));
        assert!(!intake.names_input("screens/r-17/other.mp4"));
    }

    #[test]
    fn a_message_names_its_job() {
        let intake = calls();
        let m = message(json!({"recordingID": "r-17", "callEndingTimestamp": "00:00:14"}));
        let rendered = intake.render(&m).unwrap_or_else(|e| panic!("{e}"));
        let at = DateTime::<Utc>::from_timestamp_millis(1_800_000_000_123).unwrap_or_default();
        let id = intake.job_id(&rendered, at);
        assert_eq!(id, intake.job_id(&rendered, at), "the same on redelivery");
        assert_eq!(id.as_uuid().get_version_num(), 7);
        let (seconds, _) = id
            .as_uuid()
            .get_timestamp()
            .unwrap_or_else(|| panic!())
            .to_unix();
        assert_eq!(seconds, 1_800_000_000);
        let later = at + chrono::Duration::milliseconds(1);
        assert_ne!(
            id,
            intake.job_id(&rendered, later),
            "sent again: another job"
        );
        let other = message(json!({"recordingID": "r-18", "callEndingTimestamp": "00:00:14"}));
        let other = intake.render(&other).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(id, intake.job_id(&other, at));
    }
}
