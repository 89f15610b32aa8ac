//! `vidsnap package FILE --out DIR`: the `package` operation on a local file, with no server,
//! through `MediaEngine::run` as a worker runs it. DIR then holds `master.m3u8`,
//! `manifest.mpd`, the variant playlists and the segments (docs/streaming.md has the layout).
//!
//! Nothing partial is ever left in DIR: the package is written into a scratch directory beside
//! it (same file system) and renamed into place once whole; a failure or Ctrl-C removes the
//! scratch directory and leaves DIR as it was. Exit 0 packaged, 1 the file was refused or the
//! encode failed, 2 usage errors (bad flags, a DIR that is not empty without `--force`).

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Map, Value, json};
use vidsnap_domain::{ErrorCode, Operation};
use vidsnap_media::{MediaEngine, OpInput, Progress, WorkDir};

use crate::cli::{self, Failure};

#[derive(Debug, Args)]
pub(crate) struct PackageArgs {
    /// The video to package.
    pub input: PathBuf,
    /// The folder to write (created if missing). One that is not empty is refused unless
    /// --force.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The renditions by the short side of their picture, comma-separated (default
    /// 1080,720,480,360); those larger than the video are left out, never upscaled.
    #[arg(long, value_name = "SIDES")]
    pub ladder: Option<String>,
    /// Seconds per segment, 1 to 20 (default 4): 4, 2.5, 6s.
    #[arg(long, value_name = "SECONDS")]
    pub segment: Option<String>,
    /// x264's preset: ultrafast to veryslow (default veryfast).
    #[arg(long)]
    pub preset: Option<String>,
    /// Replace what DIR holds.
    #[arg(long)]
    pub force: bool,
    /// Print the result as JSON on stdout (and no progress bar).
    #[arg(long)]
    pub json: bool,
}

impl PackageArgs {
    /// The operation the flags describe, or what is wrong with them (by flag).
    fn operation(&self) -> Result<Operation, String> {
        let mut options = Map::new();
        if let Some(ladder) = &self.ladder {
            options.insert("ladder".into(), json!(ladder));
        }
        if let Some(segment) = &self.segment {
            let value = segment
                .trim()
                .parse::<f64>()
                .map_or_else(|_| json!(segment), |seconds| json!(seconds));
            options.insert("segment".into(), value);
        }
        if let Some(preset) = &self.preset {
            options.insert("preset".into(), json!(preset));
        }
        cli::operation_from_flags("package", options)
    }
}

pub(crate) async fn package(engine: &MediaEngine, args: PackageArgs) -> Result<ExitCode, Failure> {
    let usage = |message: String| {
        let failure = Failure {
            code: ErrorCode::InvalidArgument,
            message,
        };
        cli::print_failure(args.json, &failure);
        Ok(ExitCode::from(2))
    };
    let op = match args.operation() {
        Ok(op) => op,
        Err(message) => return usage(message),
    };
    let out = std::path::absolute(&args.out).map_err(|e| output_failed(&args.out, e))?;
    if let Err(message) = check_out(&out, &args.input, args.force) {
        return usage(message);
    }
    let Some(parent) = out.parent() else {
        return usage(format!("--out {}: not a folder to write", out.display()));
    };
    std::fs::create_dir_all(parent).map_err(|e| output_failed(parent, e))?;

    let input = OpInput {
        path: args.input.clone(),
        file_name: args
            .input
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    // Beside DIR, so that the package is renamed into place rather than copied; removed on
    // every way out of this function, cancellation (Ctrl-C) included.
    let scratch = WorkDir::create(Some(parent))?;
    let bar = Bar::new(!args.json);
    let output = engine.run(&op, &[input], scratch.path(), &bar).await;
    bar.0.finish_and_clear();
    let output = output?;
    let files = output.produced.len();
    let mut bytes = 0;
    for produced in &output.produced {
        bytes += std::fs::metadata(&produced.path)
            .map_err(|e| output_failed(&produced.path, e))?
            .len();
    }
    let Some(built) = output
        .produced
        .iter()
        .find(|p| p.name == "hls")
        .and_then(|p| p.path.parent())
    else {
        return Err(Failure {
            code: ErrorCode::Internal,
            message: "the package operation wrote no master playlist".into(),
        });
    };
    replace(built, &out, scratch.path())?;
    drop(scratch);

    let result = output.result.unwrap_or(Value::Null);
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    // A reader that went away (`| head`) is not our failure: DIR has it all.
    let _ = if args.json {
        let report = json!({
            "out": out,
            "hls": out.join("master.m3u8"),
            "dash": out.join("manifest.mpd"),
            "files": files,
            "bytes": bytes,
            "result": result,
        });
        writeln!(stdout, "{report:#}")
    } else {
        stdout.write_all(describe(&out, &result, files, bytes).as_bytes())
    };
    Ok(ExitCode::SUCCESS)
}

/// Why DIR cannot be written, if it cannot: a file, a folder with something in it (without
/// `--force`), or a folder holding the input (which `--force` would delete).
fn check_out(out: &Path, input: &Path, force: bool) -> Result<(), String> {
    let shown = out.display();
    if out.exists() && !out.is_dir() {
        return Err(format!("--out {shown}: not a folder"));
    }
    if let Ok(input) = std::path::absolute(input)
        && input.starts_with(out)
    {
        return Err(format!(
            "--out {shown} holds the input, which writing the package there would remove"
        ));
    }
    let has_entries = std::fs::read_dir(out).is_ok_and(|mut entries| entries.next().is_some());
    if has_entries && !force {
        return Err(format!(
            "--out {shown} is not empty: choose another folder, or --force to replace what it \
             holds"
        ));
    }
    Ok(())
}

/// Puts the folder `built` at `out`: what `out` held is first moved into `scratch` (removed with
/// it), so `out` is at every moment either the old folder or the whole new one, and a failure
/// to move the new one in puts the old one back.
fn replace(built: &Path, out: &Path, scratch: &Path) -> Result<(), Failure> {
    let old = scratch.join("replaced");
    let moved = if out.exists() {
        std::fs::rename(out, &old).map_err(|e| output_failed(out, e))?;
        true
    } else {
        false
    };
    if let Err(e) = std::fs::rename(built, out) {
        if moved {
            let _ = std::fs::rename(&old, out);
        }
        return Err(output_failed(out, e));
    }
    Ok(())
}

fn output_failed(path: &Path, e: std::io::Error) -> Failure {
    Failure {
        code: ErrorCode::OutputFailed,
        message: format!("{}: {e}", path.display()),
    }
}

/// The renditions on a line each, then where the two manifests are.
fn describe(out: &Path, result: &Value, files: usize, bytes: u64) -> String {
    let mut text = String::new();
    for rendition in result["renditions"].as_array().into_iter().flatten() {
        let line = if rendition["kind"] == "video" {
            format!(
                "{:>5}p  {}x{}  {} kb/s  {}",
                rendition["short_side"],
                rendition["width"],
                rendition["height"],
                rendition["kbps"],
                rendition["profile"].as_str().unwrap_or_default(),
            )
        } else {
            let channels = match rendition["channels"].as_u64() {
                Some(1) => "mono",
                _ => "stereo",
            };
            format!("audio   AAC {channels}  {} kb/s", rendition["kbps"])
        };
        text.push_str(&line);
        text.push('\n');
    }
    text.push_str(&format!(
        "{} segments of {} s per rendition; {files} files, {:.1} MB\n",
        result["segments"],
        result["segment"],
        bytes as f64 / 1e6
    ));
    text.push_str(&format!("HLS:  {}\n", out.join("master.m3u8").display()));
    text.push_str(&format!("DASH: {}\n", out.join("manifest.mpd").display()));
    text
}

/// The encode's progress on stderr, on a terminal only (indicatif draws nothing on a pipe).
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
            ProgressStyle::with_template(
                "package {bar:40.cyan/blue} {pos:>3}%  {elapsed_precise}  ETA {eta}",
            )
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

    fn args(ladder: Option<&str>, segment: Option<&str>) -> PackageArgs {
        PackageArgs {
            input: "a.mp4".into(),
            out: "out".into(),
            ladder: ladder.map(str::to_owned),
            segment: segment.map(str::to_owned),
            preset: None,
            force: false,
            json: false,
        }
    }

    #[test]
    fn flags_become_the_operations_options() {
        let Ok(Operation::Package(options)) = args(Some("480,720"), Some("2")).operation() else {
            panic!("a package operation");
        };
        let sides: Vec<u32> = options.ladder.iter().map(|r| r.short_side).collect();
        assert_eq!((sides, options.segment), (vec![720, 480], 2.0));
        let Ok(Operation::Package(options)) = args(None, Some("6s")).operation() else {
            panic!("a package operation");
        };
        assert_eq!(options.segment, 6.0);
    }

    #[test]
    fn bad_values_are_reported_by_flag() {
        let message = args(Some("720,721"), Some("0"))
            .operation()
            .expect_err("bad");
        assert!(message.starts_with("--ladder: rung 2: "), "{message}");
        assert!(message.contains("; --segment: "), "{message}");
    }

    #[test]
    fn a_folder_with_something_in_it_needs_force() {
        let dir = std::env::temp_dir().join(format!("vidsnap-check-out-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        assert_eq!(
            check_out(&dir, Path::new("/elsewhere/a.mp4"), false),
            Ok(())
        );
        std::fs::write(dir.join("old.txt"), "x").expect("file");
        let refused = check_out(&dir, Path::new("/elsewhere/a.mp4"), false).expect_err("full");
        assert!(refused.contains("--force"), "{refused}");
        assert_eq!(check_out(&dir, Path::new("/elsewhere/a.mp4"), true), Ok(()));
        let inside = check_out(&dir, &dir.join("a.mp4"), true).expect_err("holds the input");
        assert!(inside.contains("holds the input"), "{inside}");
        let file = check_out(&dir.join("old.txt"), Path::new("/elsewhere/a.mp4"), true);
        assert!(file.expect_err("a file").contains("not a folder"));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
