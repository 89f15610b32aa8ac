//! The e-mails' words: one subject, a plain-text part and an HTML part per event.
//!
//! Every value taken from the payload is user-controlled (the file name, the error message) and
//! goes into the HTML part only through [`escape_html`]; the seed system put the video name into
//! its HTML unescaped.

use std::fmt::Write as _;

use serde_json::Value;
use vidsnap_domain::EventType;

use crate::{error::truncate, payload::EventFacts};

/// A rendered e-mail, ready for the [`Mailer`](crate::Mailer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Subjects stay readable in a mail client's list; the body has the whole name.
const MAX_SUBJECT_NAME: usize = 80;

/// The e-mail announcing `event`, from the notification's payload. Missing fields are left out
/// of the sentences rather than failing the delivery.
pub fn render(event: EventType, payload: &Value) -> Email {
    let facts = EventFacts::from_payload(payload);
    let (subject, lines) = match event {
        EventType::VideoSucceeded => succeeded(&facts),
        EventType::VideoDead => dead(&facts),
        EventType::JobSucceeded => job_succeeded(&facts),
        EventType::JobFailed | EventType::JobDead => job_failed(&facts),
        EventType::QcProcessed | EventType::QcFailed | EventType::QcUnableToProcess => {
            qc_outcome(event, &facts)
        }
    };
    let mut lines = lines;
    if let Some(id) = &facts.video_id {
        lines.push(vec![Piece::Plain("Video id: "), Piece::Code(id.clone())]);
    }
    if let Some(id) = &facts.job_id {
        lines.push(vec![Piece::Plain("Job id: "), Piece::Code(id.clone())]);
    }

    let mut text = String::from("Hello,\n\n");
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n\
         <body style=\"font-family: sans-serif; line-height: 1.5\">\n<p>Hello,</p>\n",
        escape_html(&subject)
    );
    for line in &lines {
        html.push_str("<p>");
        for piece in line {
            match piece {
                Piece::Plain(s) => {
                    text.push_str(s);
                    html.push_str(&escape_html(s));
                }
                Piece::Text(s) => {
                    text.push_str(s);
                    html.push_str(&escape_html(s));
                }
                Piece::Name(s) => {
                    let _ = write!(text, "\"{s}\"");
                    let _ = write!(html, "<strong>{}</strong>", escape_html(s));
                }
                Piece::Code(s) => {
                    text.push_str(s);
                    let _ = write!(html, "<code>{}</code>", escape_html(s));
                }
            }
        }
        text.push_str("\n\n");
        html.push_str("</p>\n");
    }
    text.push_str("-- \nVidsnap\n");
    html.push_str("<p style=\"color: #666\">&mdash; Vidsnap</p>\n</body></html>\n");
    Email {
        subject,
        text,
        html,
    }
}

/// A run of a sentence: fixed words, or a payload value shown a particular way.
enum Piece {
    Plain(&'static str),
    Text(String),
    Name(String),
    Code(String),
}

fn succeeded(facts: &EventFacts) -> (String, Vec<Vec<Piece>>) {
    let subject = match &facts.file_name {
        Some(name) => format!("Your video \"{}\" was processed", subject_safe(name)),
        None => "Your video was processed".to_owned(),
    };
    let mut first = video_named(facts);
    first.push(Piece::Plain(" was processed"));
    match facts.frames {
        Some(1) => first.push(Piece::Plain(": 1 frame was extracted.")),
        Some(n) => first.push(Piece::Text(format!(": {n} frames were extracted."))),
        None => first.push(Piece::Plain(".")),
    }
    (subject, vec![first])
}

fn dead(facts: &EventFacts) -> (String, Vec<Vec<Piece>>) {
    let subject = match &facts.file_name {
        Some(name) => format!(
            "Processing failed for your video \"{}\"",
            subject_safe(name)
        ),
        None => "Processing failed for your video".to_owned(),
    };
    let mut first = video_named(facts);
    first.push(Piece::Plain(" could not be processed"));
    match facts.attempts {
        Some(1) => first.push(Piece::Plain(" (1 attempt).")),
        Some(n) if n > 1 => first.push(Piece::Text(format!(" ({n} attempts)."))),
        _ => first.push(Piece::Plain(".")),
    }
    let error = error_line(facts);
    (subject, vec![first, error])
}

fn job_named(facts: &EventFacts) -> (String, Vec<Piece>) {
    match &facts.recipe_name {
        Some(name) => (
            format!("Your {} job", subject_safe(name)),
            vec![Piece::Plain("Your job "), Piece::Name(name.clone())],
        ),
        None => ("Your job".to_owned(), vec![Piece::Plain("Your job")]),
    }
}

fn job_succeeded(facts: &EventFacts) -> (String, Vec<Vec<Piece>>) {
    let (subject, mut first) = job_named(facts);
    first.push(Piece::Plain(" finished"));
    match facts.steps {
        Some((1, _)) => first.push(Piece::Plain(": its step succeeded.")),
        Some((n, _)) => first.push(Piece::Text(format!(": all {n} steps succeeded."))),
        None => first.push(Piece::Plain(".")),
    }
    (format!("{subject} finished"), vec![first])
}

fn job_failed(facts: &EventFacts) -> (String, Vec<Vec<Piece>>) {
    let (subject, mut first) = job_named(facts);
    first.push(Piece::Plain(" could not finish"));
    match &facts.failed_step {
        Some(step) => {
            first.push(Piece::Plain(": step "));
            first.push(Piece::Name(step.clone()));
            first.push(Piece::Plain(" did not succeed."));
        }
        None => first.push(Piece::Plain(".")),
    }
    let error = error_line(facts);
    (format!("{subject} could not finish"), vec![first, error])
}

/// Where the bucket workflow moved a file, and why.
fn qc_outcome(event: EventType, facts: &EventFacts) -> (String, Vec<Vec<Piece>>) {
    let name = facts
        .file_name
        .as_deref()
        .map_or("Your file".to_owned(), |n| {
            format!("\"{}\"", subject_safe(n))
        });
    let subject = match event {
        EventType::QcProcessed => format!("{name} passed quality control"),
        EventType::QcFailed => format!("{name} failed quality control"),
        _ => format!("{name} could not be processed"),
    };
    let mut first = match &facts.file_name {
        Some(name) => vec![Piece::Plain("The file "), Piece::Name(name.clone())],
        None => vec![Piece::Plain("The file")],
    };
    first.push(match event {
        EventType::QcProcessed => Piece::Plain(" passed quality control"),
        EventType::QcFailed => Piece::Plain(" failed quality control"),
        _ => Piece::Plain(" failed every retry"),
    });
    if let Some(rating) = facts.rating {
        first.push(Piece::Text(format!(" (rating {rating} of 5)")));
    }
    match &facts.moved_to {
        Some(to) => {
            first.push(Piece::Plain(" and was moved to "));
            first.push(Piece::Code(to.clone()));
        }
        None => {
            if let Some(key) = &facts.qc_key {
                first.push(Piece::Plain(" and stays at "));
                first.push(Piece::Code(key.clone()));
            }
        }
    }
    first.push(match event {
        EventType::QcProcessed => Piece::Plain("."),
        EventType::QcFailed => Piece::Plain("; it will be retried."),
        _ => Piece::Plain("; it will not be retried."),
    });
    let mut lines = vec![first];
    if event != EventType::QcProcessed {
        lines.push(error_line(facts));
    }
    (subject, lines)
}

/// `Error: code — message`, with whatever the payload said.
fn error_line(facts: &EventFacts) -> Vec<Piece> {
    let mut error = vec![Piece::Plain("Error: ")];
    match (&facts.error_code, &facts.error_message) {
        (Some(code), Some(message)) => {
            error.push(Piece::Code(code.clone()));
            error.push(Piece::Plain(" \u{2014} "));
            error.push(Piece::Text(message.clone()));
        }
        (Some(code), None) => error.push(Piece::Code(code.clone())),
        (None, Some(message)) => error.push(Piece::Text(message.clone())),
        (None, None) => error.push(Piece::Plain("no details were recorded.")),
    }
    error
}

fn video_named(facts: &EventFacts) -> Vec<Piece> {
    match &facts.file_name {
        Some(name) => vec![Piece::Plain("Your video "), Piece::Name(name.clone())],
        None => vec![Piece::Plain("Your video")],
    }
}

/// A file name fit for a header: no control characters (lettre encodes the rest), bounded.
fn subject_safe(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate(clean, MAX_SUBJECT_NAME)
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const EVIL: &str = "<script>alert(1)</script>&.mp4";

    #[test]
    fn job_failures_name_the_step_and_its_error() {
        let email = render(
            EventType::JobDead,
            &json!({"type": "job.dead", "job": {"id": "j1", "recipe_name": "preview",
            "steps": [
                {"name": "probe", "status": "succeeded"},
                {"name": "frames", "status": "dead", "last_error": {"code": "timeout", "message": EVIL}}
            ]}}),
        );
        assert!(email.subject.contains("preview"), "{}", email.subject);
        assert!(email.text.contains("\"frames\""), "{}", email.text);
        assert!(email.text.contains("timeout"));
        assert!(!email.html.contains("<script>"), "escaped: {}", email.html);
        let done = render(
            EventType::JobSucceeded,
            &json!({"job": {"steps": [{"status": "succeeded"}, {"status": "succeeded"}]}}),
        );
        assert!(done.text.contains("all 2 steps"), "{}", done.text);
    }

    #[test]
    fn escaping_covers_the_five_characters() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn succeeded_mentions_name_and_frames_and_escapes_the_name() {
        let email = render(
            EventType::VideoSucceeded,
            &json!({"video": {"id": "v1", "file_name": EVIL, "outputs": {"frames": 12}}}),
        );
        assert_eq!(
            email.subject,
            format!("Your video \"{EVIL}\" was processed")
        );
        assert!(
            email
                .text
                .contains(&format!("Your video \"{EVIL}\" was processed: 12 frames"))
        );
        assert!(email.text.contains("Video id: v1"));
        assert!(!email.html.contains("<script>"), "{}", email.html);
        assert!(
            email
                .html
                .contains("&lt;script&gt;alert(1)&lt;/script&gt;&amp;.mp4"),
            "{}",
            email.html
        );
    }

    #[test]
    fn dead_mentions_the_error_and_escapes_its_message() {
        let email = render(
            EventType::VideoDead,
            &json!({"video": {"file_name": "a.mp4", "attempts": 3,
                "last_error": {"code": "corrupt-input", "message": "<b>bad</b> & broken"}}}),
        );
        assert_eq!(email.subject, "Processing failed for your video \"a.mp4\"");
        assert!(email.text.contains("could not be processed (3 attempts)."));
        assert!(
            email
                .text
                .contains("corrupt-input \u{2014} <b>bad</b> & broken")
        );
        assert!(email.html.contains("&lt;b&gt;bad&lt;/b&gt; &amp; broken"));
        assert!(!email.html.contains("<b>"));
    }

    #[test]
    fn an_empty_payload_still_renders() {
        let email = render(EventType::VideoDead, &json!({}));
        assert_eq!(email.subject, "Processing failed for your video");
        assert!(email.text.contains("no details were recorded"));
        let email = render(EventType::VideoSucceeded, &json!(null));
        assert!(email.text.contains("Your video was processed."));
    }

    #[test]
    fn control_characters_never_reach_the_subject() {
        let email = render(
            EventType::VideoSucceeded,
            &json!({"video": {"file_name": "a\r\nBcc: x@y.z\n.mp4"}}),
        );
        assert!(!email.subject.contains('\n') && !email.subject.contains('\r'));
    }
}
