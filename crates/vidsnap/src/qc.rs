//! `vidsnap qc FILE`: the `qc` operation on a local file, with no server, through
//! `MediaEngine::run` as a worker runs it, like a linter: the report as text (or `qc.json` with
//! `--json`), exit 0 when the file passes and 1 when it fails or cannot be checked, 2 for usage
//! errors.
//!
//! The thresholds are the operation's options: the flags are turned into its options object
//! and read by `Operation::parse`, so the command line accepts exactly what a recipe step
//! accepts, with the same ranges and messages.

use std::{path::PathBuf, process::ExitCode};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use vidsnap_domain::{ErrorCode, Operation};
use vidsnap_media::{MediaEngine, OpInput, Progress, WorkDir};

use crate::cli::{self, Failure};

#[derive(Debug, Args)]
pub(crate) struct QcArgs {
    /// The file to check: any file ffprobe reads, audio-only ones included.
    pub input: PathBuf,
    /// Print qc.json on stdout instead of the text report (and no progress bar).
    #[arg(long)]
    pub json: bool,
    // Every number takes a sign, so that `--min-bytes -1` is refused for its value rather than
    // read as an unknown flag `-1`.
    /// The integrated loudness to meet, in LUFS (default -23, EBU R128).
    #[arg(long, value_name = "LUFS", allow_negative_numbers = true)]
    pub target_lufs: Option<f64>,
    /// How far from the target still meets it, in LU (default 1).
    #[arg(long, value_name = "LU", allow_negative_numbers = true)]
    pub lufs_tolerance: Option<f64>,
    /// Checks that must be ok for the file to pass, besides the rating, size and decode rule:
    /// comma-separated names (black,silence).
    #[arg(long, value_name = "CHECKS")]
    pub policy: Option<String>,
    /// Smaller files fail the size check (default 1048576: 1 MiB).
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
    pub min_bytes: Option<u64>,
    /// Audio below this level is silence, in dBFS (default -60).
    #[arg(long, value_name = "DB", allow_negative_numbers = true)]
    pub silence_db: Option<f64>,
}

impl QcArgs {
    /// The operation the flags describe, or what is wrong with them (by flag).
    fn operation(&self) -> Result<Operation, String> {
        let mut options = Map::new();
        let mut set = |key: &str, value: Value| {
            options.insert(key.to_owned(), value);
        };
        if let Some(lufs) = self.target_lufs {
            set("target_lufs", json!(lufs));
        }
        if let Some(tolerance) = self.lufs_tolerance {
            set("lufs_tolerance", json!(tolerance));
        }
        if let Some(policy) = &self.policy {
            set("policy", json!(policy));
        }
        if let Some(bytes) = self.min_bytes {
            set("min_bytes", json!(bytes));
        }
        if let Some(db) = self.silence_db {
            set("silence_db", json!(db));
        }
        cli::operation_from_flags("qc", options)
    }
}

pub(crate) async fn qc(engine: &MediaEngine, args: QcArgs) -> Result<ExitCode, Failure> {
    let op = match args.operation() {
        Ok(op) => op,
        Err(message) => {
            let code = ErrorCode::InvalidArgument;
            cli::print_failure(args.json, &Failure { code, message });
            return Ok(ExitCode::from(2));
        }
    };
    let input = OpInput {
        path: args.input.clone(),
        file_name: args
            .input
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    // Dropped on every way out of this function, cancellation (Ctrl-C) included.
    let work = WorkDir::create(engine.config().temp_dir.as_deref())?;
    let bar = Bar::new(!args.json);
    let output = engine.run(&op, &[input], work.path(), &bar).await;
    bar.0.finish_and_clear();
    let output = output?;
    let produced = output
        .produced
        .iter()
        .find(|produced| produced.name == "report")
        .ok_or_else(|| internal("the qc operation wrote no report".to_owned()))?;
    let bytes = tokio::fs::read(&produced.path)
        .await
        .map_err(|e| internal(format!("reading qc.json: {e}")))?;
    let report: Report = serde_json::from_slice(&bytes)
        .map_err(|e| internal(format!("qc.json is not a report: {e}")))?;
    drop(work);

    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    // A reader that went away (`| head`) is not the file's failure: the exit code still tells.
    let _ = if args.json {
        stdout
            .write_all(&bytes)
            .and_then(|()| stdout.write_all(b"\n"))
    } else {
        stdout.write_all(describe(&args.input, &report).as_bytes())
    };
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn internal(message: String) -> Failure {
    Failure {
        code: ErrorCode::Internal,
        message,
    }
}

/// The parts of `qc.json` (version 1) the text report shows.
#[derive(Debug, Deserialize)]
struct Report {
    passed: bool,
    rating: u8,
    checks: Vec<Check>,
    #[serde(default)]
    policy: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Check {
    name: String,
    status: String,
    message: String,
    #[serde(default)]
    ranges: Vec<Range>,
}

#[derive(Debug, Deserialize)]
struct Range {
    start: f64,
    end: f64,
}

/// Seed 002's ratings, as the README's table words them.
fn rating_meaning(rating: u8) -> &'static str {
    match rating {
        0 => "unreadable, corrupt or no audio or video stream",
        1 => "silent audio only",
        2 => "audio only",
        3 => "video only",
        4 => "video with silent audio",
        5 => "video with audio",
        _ => "unknown rating",
    }
}

/// The text report: the file, its rating, each check on a line (name, status, message, and
/// the ranges the message does not already list), then the verdict and why.
fn describe(input: &std::path::Path, report: &Report) -> String {
    let mut text = format!("file:    {}\n", input.display());
    text.push_str(&format!(
        "rating:  {} ({})\n\n",
        report.rating,
        rating_meaning(report.rating)
    ));
    let width = report
        .checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    for check in &report.checks {
        text.push_str(&format!(
            "{:width$}  {:7}  {}\n",
            check.name, check.status, check.message
        ));
        let unlisted: Vec<String> = check
            .ranges
            .iter()
            .map(|r| format!("{:.2}-{:.2} s", r.start, r.end))
            .filter(|range| !check.message.contains(range.as_str()))
            .collect();
        if !unlisted.is_empty() {
            text.push_str(&format!("{:width$}  at {}\n", "", unlisted.join(", ")));
        }
    }
    text.push('\n');
    if report.passed {
        text.push_str("passed\n");
    } else {
        text.push_str(&format!("failed: {}\n", reasons(report).join("; ")));
    }
    text
}

/// Why a report did not pass: seed 002's rule (rating, size, decode), then the policy's checks.
fn reasons(report: &Report) -> Vec<String> {
    let mut reasons = Vec::new();
    if report.rating < 2 {
        reasons.push(format!("rating {} is below 2", report.rating));
    }
    let failing = |name: &str| {
        report
            .checks
            .iter()
            .any(|c| c.name == name && c.status != "ok")
    };
    for name in ["size", "decode"] {
        if failing(name) {
            reasons.push(format!("{name} is not ok"));
        }
    }
    for name in &report.policy {
        if failing(name) && !["size", "decode"].contains(&name.as_str()) {
            reasons.push(format!("{name} is not ok (policy)"));
        }
    }
    reasons
}

/// The pass's progress on stderr, on a terminal only (indicatif draws nothing on a pipe).
struct Bar(ProgressBar);

impl Bar {
    fn new(enabled: bool) -> Self {
        let target = if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(100), target);
        bar.set_style(
            ProgressStyle::with_template("qc {bar:40.cyan/blue} {pos:>3}%  {elapsed_precise}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self(bar)
    }
}

impl Progress for Bar {
    fn percent(&self, done: u8) {
        self.0.set_position(u64::from(done.min(100)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(value: Value) -> Report {
        serde_json::from_value(value).expect("a report")
    }

    #[test]
    fn flags_become_the_operations_options() {
        let args = QcArgs {
            input: "a.mp4".into(),
            json: false,
            target_lufs: Some(-16.0),
            lufs_tolerance: None,
            policy: Some("black,silence".into()),
            min_bytes: Some(1000),
            silence_db: None,
        };
        let Ok(Operation::Qc(options)) = args.operation() else {
            panic!("a qc operation");
        };
        assert_eq!(options.target_lufs, -16.0);
        assert_eq!(options.min_bytes, 1000);
        assert_eq!(options.policy.len(), 2);
        assert_eq!(options.silence_db, -60.0);
    }

    #[test]
    fn bad_values_are_reported_by_flag() {
        let args = QcArgs {
            input: "a.mp4".into(),
            json: false,
            target_lufs: Some(5.0),
            lufs_tolerance: None,
            policy: Some("blur".into()),
            min_bytes: None,
            silence_db: None,
        };
        let message = args.operation().expect_err("refused");
        assert!(
            message.starts_with("--policy: unknown check \"blur\""),
            "{message}"
        );
        assert!(message.contains("; --target-lufs: "), "{message}");
    }

    #[test]
    fn the_text_lists_every_check_and_says_why_it_failed() {
        let report = report(json!({
            "passed": false, "rating": 5, "policy": ["black"],
            "checks": [
                {"name": "size", "status": "ok", "message": "2000 bytes"},
                {"name": "decode", "status": "error",
                 "message": "decoding stopped at 2.20 s of 4.00 s",
                 "ranges": [{"start": 2.2, "end": 4.0}]},
                {"name": "black", "status": "warning",
                 "message": "1 black segment, 3.00 s in all: 3.00-6.00 s",
                 "ranges": [{"start": 3.0, "end": 6.0}]}
            ]
        }));
        let text = describe(std::path::Path::new("a.mp4"), &report);
        assert_eq!(
            text,
            "file:    a.mp4\n\
             rating:  5 (video with audio)\n\n\
             size    ok       2000 bytes\n\
             decode  error    decoding stopped at 2.20 s of 4.00 s\n\
             \x20       at 2.20-4.00 s\n\
             black   warning  1 black segment, 3.00 s in all: 3.00-6.00 s\n\n\
             failed: decode is not ok; black is not ok (policy)\n"
        );
    }

    #[test]
    fn a_low_rating_is_a_reason() {
        let report = report(json!({
            "passed": false, "rating": 1,
            "checks": [{"name": "size", "status": "error", "message": "10 bytes"}]
        }));
        assert_eq!(reasons(&report), ["rating 1 is below 2", "size is not ok"]);
    }
}
