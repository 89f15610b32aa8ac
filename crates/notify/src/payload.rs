//! What the e-mails need from an event payload, read tolerantly.
//!
//! The payload is written by the repository when the outcome is recorded (the typed bodies of
//! `vidsnap_domain::events`): `{"id", "type", "version", "created_at", "video": {"id",
//! "file_name", "status", "attempts", "last_error": {"code", "message"} | null, "outputs": {...}
//! | null}}` for `video.*`, `{…, "job": {"id", "recipe_name", "status", "steps": [{"name",
//! "status", "attempts", "last_error", "artefacts"}]}}` for `job.*`. An older or newer shape must
//! still produce an e-mail, so every field is optional here and a wrong type reads as absent.

use serde_json::Value;

/// The facts an e-mail mentions; `None` where the payload did not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EventFacts {
    pub video_id: Option<String>,
    pub file_name: Option<String>,
    pub attempts: Option<u64>,
    pub frames: Option<u64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub job_id: Option<String>,
    pub recipe_name: Option<String>,
    /// The first step that did not succeed, for job failures.
    pub failed_step: Option<String>,
    /// Steps and how many succeeded.
    pub steps: Option<(u64, u64)>,
    /// `qc.*`: where the file was checked, where it went, its rating and how many decisions
    /// came before this one.
    pub qc_key: Option<String>,
    pub moved_to: Option<String>,
    pub rating: Option<u64>,
    pub qc_attempt: Option<u64>,
}

impl EventFacts {
    pub(crate) fn from_payload(payload: &Value) -> Self {
        let video = payload.get("video");
        let text = |value: Option<&Value>| {
            value
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let field = |name: &str| video.and_then(|v| v.get(name));
        let job = payload.get("job");
        let qc = payload.get("qc");
        let steps = job.and_then(|j| j.get("steps")).and_then(Value::as_array);
        let failed = steps.and_then(|steps| {
            steps.iter().find(|s| {
                matches!(
                    s.get("status").and_then(Value::as_str),
                    Some("failed" | "dead")
                )
            })
        });
        let last_error = field("last_error").or_else(|| failed.and_then(|s| s.get("last_error")));
        Self {
            job_id: text(job.and_then(|j| j.get("id"))),
            recipe_name: text(job.and_then(|j| j.get("recipe_name"))),
            failed_step: text(failed.and_then(|s| s.get("name"))),
            steps: steps.map(|steps| {
                let ok = steps
                    .iter()
                    .filter(|s| s.get("status").and_then(Value::as_str) == Some("succeeded"))
                    .count();
                (steps.len() as u64, ok as u64)
            }),
            video_id: text(field("id")),
            file_name: text(field("file_name")),
            attempts: field("attempts").and_then(Value::as_u64),
            frames: field("outputs")
                .and_then(|o| o.get("frames"))
                .and_then(Value::as_u64),
            qc_key: text(qc.and_then(|q| q.get("key"))),
            moved_to: text(qc.and_then(|q| q.get("moved_to"))),
            rating: qc.and_then(|q| q.get("rating")).and_then(Value::as_u64),
            qc_attempt: qc.and_then(|q| q.get("attempt")).and_then(Value::as_u64),
            error_code: text(last_error.and_then(|e| e.get("code"))),
            error_message: text(last_error.and_then(|e| e.get("message"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_full_payload_is_read() {
        let facts = EventFacts::from_payload(&json!({
            "id": "n1", "type": "video.dead", "created_at": "2026-01-01T00:00:00Z",
            "video": {
                "id": "v1", "file_name": "clip.mp4", "status": "dead", "attempts": 3,
                "last_error": {"code": "corrupt-input", "message": "cannot decode"},
                "outputs": {"frames": 12, "zip_key": "k"}
            }
        }));
        assert_eq!(facts.video_id.as_deref(), Some("v1"));
        assert_eq!(facts.file_name.as_deref(), Some("clip.mp4"));
        assert_eq!(facts.attempts, Some(3));
        assert_eq!(facts.frames, Some(12));
        assert_eq!(facts.error_code.as_deref(), Some("corrupt-input"));
        assert_eq!(facts.error_message.as_deref(), Some("cannot decode"));
    }

    #[test]
    fn missing_or_mistyped_fields_read_as_absent() {
        assert_eq!(
            EventFacts::from_payload(&json!(null)),
            EventFacts::default()
        );
        assert_eq!(EventFacts::from_payload(&json!({})), EventFacts::default());
        let facts = EventFacts::from_payload(&json!({
            "video": {"file_name": 7, "attempts": "two", "last_error": null, "outputs": null}
        }));
        assert_eq!(facts, EventFacts::default());
    }
}
