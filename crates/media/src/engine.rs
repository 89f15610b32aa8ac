//! The engine's front door: configuration, probing and validation.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use vidsnap_domain::Limits;

use crate::{
    MediaError,
    probe::{self, DurationSource, Probe},
    runner::{Invocation, ProcessRunner},
    validate::{self, Verdict},
};

/// How the engine finds its tools and bounds its work.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// The `ffprobe` program (name on `PATH` or a path).
    pub ffprobe: PathBuf,
    /// At most this many media processes at once, across all jobs of this process.
    pub max_processes: usize,
    /// Where per-run scratch directories go; the system temp directory when unset.
    pub temp_dir: Option<PathBuf>,
    /// Every media process gets `base_timeout_seconds` plus this many seconds per second of video.
    pub timeout_per_video_second: f64,
    pub base_timeout_seconds: u64,
    /// Set from the top-level `[limits]` section, not from `[media]`.
    #[serde(skip)]
    pub limits: Limits,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            ffprobe: PathBuf::from("ffprobe"),
            max_processes: std::thread::available_parallelism().map_or(2, usize::from),
            temp_dir: None,
            timeout_per_video_second: 2.0,
            base_timeout_seconds: 60,
            limits: Limits::default(),
        }
    }
}

/// What to do when ffprobe cannot be started.
pub(crate) const INSTALL_FFMPEG: &str = "install FFmpeg (Debian/Ubuntu: `apt-get install ffmpeg`, macOS: \
     `brew install ffmpeg`) or set VIDSNAP_MEDIA__FFPROBE (`--ffprobe`) to its path";

/// The program (and leading arguments) that runs [`crate::extract::child_main`]: the `vidsnap`
/// binary itself with its hidden `internal-extract` subcommand.
#[derive(Debug, Clone)]
pub struct ExtractorCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

/// A probe with its validation verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub file: PathBuf,
    /// `None` when the file was refused before it could be probed (extension, size, unreadable).
    pub probe: Option<Probe>,
    pub verdict: Verdict,
}

/// Probes, validates and extracts. Cheap to clone; clones share the process bound.
#[derive(Debug, Clone)]
pub struct MediaEngine {
    pub(crate) config: MediaConfig,
    pub(crate) runner: ProcessRunner,
    pub(crate) extractor: ExtractorCommand,
}

impl MediaEngine {
    pub fn new(config: MediaConfig, extractor: ExtractorCommand) -> Self {
        let runner = ProcessRunner::new(config.max_processes);
        Self {
            config,
            runner,
            extractor,
        }
    }

    pub fn config(&self) -> &MediaConfig {
        &self.config
    }

    /// The `ffmpeg` program: the one beside the configured ffprobe when that is a path
    /// (`/opt/ffmpeg/bin/ffprobe` -> `/opt/ffmpeg/bin/ffmpeg`), else `ffmpeg` on `PATH`, so one
    /// setting points at one FFmpeg installation.
    pub(crate) fn ffmpeg_program(&self) -> PathBuf {
        let ffprobe = &self.config.ffprobe;
        match (ffprobe.parent(), ffprobe.file_name()) {
            (Some(dir), Some(name)) if !dir.as_os_str().is_empty() => {
                let name = name.to_string_lossy();
                let sibling = if name.contains("ffprobe") {
                    name.replacen("ffprobe", "ffmpeg", 1)
                } else {
                    "ffmpeg".to_owned()
                };
                dir.join(sibling)
            }
            _ => PathBuf::from("ffmpeg"),
        }
    }

    /// The time allowed to a media process on a video of `duration` seconds.
    pub(crate) fn timeout_for(&self, duration: f64) -> Duration {
        Duration::from_secs(self.config.base_timeout_seconds)
            + Duration::from_secs_f64(duration.max(0.0) * self.config.timeout_per_video_second)
    }

    /// Runs ffprobe on `input`. A file ffprobe cannot read is `not-a-video`.
    pub async fn probe(&self, input: &Path) -> Result<Probe, MediaError> {
        self.probe_media(input).await?.map_err(|reason| {
            MediaError::rejected(
                vidsnap_domain::ErrorCode::NotAVideo,
                format!("not a video FFmpeg can read ({reason})"),
            )
        })
    }

    /// The probe of `input`, or why ffprobe refuses it (its last error line, the path left
    /// out): for callers whose input need not be a video, which say for themselves what a
    /// refusal means.
    pub(crate) async fn probe_media(
        &self,
        input: &Path,
    ) -> Result<Result<Probe, String>, MediaError> {
        let size = file_size(input).await?;
        let json = match self.ffprobe_json(input, size).await? {
            Ok(json) => json,
            Err(reason) => return Ok(Err(reason)),
        };
        let mut probe = probe::parse(json.as_bytes())
            .map_err(|e| MediaError::Internal(format!("unexpected ffprobe output: {e}")))?;
        if probe.duration.is_none() && probe.video().is_some() {
            probe.duration = self.duration_from_packets(input, &probe).await?;
            probe.duration_source = probe.duration.map(|_| DurationSource::Packets);
        }
        Ok(Ok(probe))
    }

    /// ffprobe's JSON (format and streams) for `input` of `size` bytes; `Ok(Err(why))` when
    /// ffprobe refuses the file (its last error line, the path left out), `Err` when ffprobe
    /// itself failed: missing, timed out, or killed by a signal (out of memory, a stop), which
    /// says nothing about the file and may well pass at another attempt.
    pub(crate) async fn ffprobe_json(
        &self,
        input: &Path,
        size: u64,
    ) -> Result<Result<String, String>, MediaError> {
        // Reading a header is quick whatever the size; the allowance covers slow disks.
        let timeout = self.timeout_for(size as f64 / 50e6);
        let invocation = Invocation::new(&self.config.ffprobe, INSTALL_FFMPEG, timeout)
            .args(["-v", "error", "-hide_banner", "-print_format", "json"])
            .args(["-show_format", "-show_streams"])
            .arg(file_url(input));
        let mut running = self.runner.start(invocation).await?;
        let mut json = String::new();
        while let Some(line) = running.next_line().await? {
            json.push_str(&line);
            json.push('\n');
        }
        let finished = running.wait().await?;
        if finished.status.code().is_none() {
            return Err(finished.into_error());
        }
        if !finished.status.success() {
            let reason = finished.stderr_tail.lines().last().unwrap_or("unreadable");
            return Ok(Err(strip_path(reason, input)));
        }
        Ok(Ok(json))
    }

    /// When neither the container nor the stream states a duration, the last video packet does.
    async fn duration_from_packets(
        &self,
        input: &Path,
        probe: &Probe,
    ) -> Result<Option<f64>, MediaError> {
        let timeout = self.timeout_for(probe.size_bytes as f64 / 5e6);
        let invocation = Invocation::new(&self.config.ffprobe, INSTALL_FFMPEG, timeout)
            .args(["-v", "error", "-hide_banner", "-select_streams", "v:0"])
            .args([
                "-show_entries",
                "packet=pts_time,duration_time",
                "-of",
                "csv=p=0",
            ])
            .arg(file_url(input));
        let csv = self.runner.output(invocation).await?;
        Ok(probe::duration_from_packets(
            &String::from_utf8_lossy(&csv),
            probe.start_time,
        ))
    }

    /// Probes and validates: the verdict every caller (CLI, API, worker) acts on. Errors are
    /// reserved for what is not the input's fault (missing tools, timeouts) and a missing file.
    pub async fn inspect(&self, input: &Path) -> Result<Inspection, MediaError> {
        self.inspect_named(input, &file_name_of(input)).await
    }

    /// The probe of an accepted input, or why it is refused. `name` is what the extension rule
    /// reads: the video's own name, which a worker's local copy need not have.
    pub(crate) async fn accept(&self, input: &Path, name: &str) -> Result<Probe, MediaError> {
        let inspection = self.inspect_named(input, name).await?;
        inspection.verdict.into_result()?;
        inspection
            .probe
            .ok_or_else(|| MediaError::Internal("accepted without a probe".into()))
    }

    async fn inspect_named(&self, input: &Path, name: &str) -> Result<Inspection, MediaError> {
        let limits = &self.config.limits;
        let refuse = |error: MediaError, probe: Option<Probe>| Inspection {
            file: input.to_path_buf(),
            probe,
            verdict: Verdict::reject(&error),
        };
        if let Err(e) = validate::check_file_name(name, limits) {
            return Ok(refuse(e, None));
        }
        let size = file_size(input).await?;
        if let Err(e) = validate::check_size(size, limits) {
            return Ok(refuse(e, None));
        }
        let probe = match self.probe(input).await {
            Ok(probe) => probe,
            Err(e @ MediaError::Rejected { .. }) => return Ok(refuse(e, None)),
            Err(e) => return Err(e),
        };
        let verdict = match validate::check_probe(&probe, limits) {
            Ok(container) => Verdict::accept(container),
            Err(e) => Verdict::reject(&e),
        };
        Ok(Inspection {
            file: input.to_path_buf(),
            probe: Some(probe),
            verdict,
        })
    }
}

pub(crate) fn file_name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(crate) async fn file_size(input: &Path) -> Result<u64, MediaError> {
    let metadata = tokio::fs::metadata(input).await.map_err(|e| {
        MediaError::rejected(
            vidsnap_domain::ErrorCode::InputNotFound,
            format!("cannot read {}: {e}", input.display()),
        )
    })?;
    if !metadata.is_file() {
        return Err(MediaError::rejected(
            vidsnap_domain::ErrorCode::InputNotFound,
            format!("{} is not a file", input.display()),
        ));
    }
    Ok(metadata.len())
}

/// `file:` keeps a name that starts with `-` or contains `:` from being read as an option or a
/// protocol (`concat:`, `http:`).
pub(crate) fn file_url(input: &Path) -> OsString {
    let absolute = std::path::absolute(input).unwrap_or_else(|_| input.to_path_buf());
    let mut url = OsString::from("file:");
    url.push(absolute.as_os_str());
    url
}

/// ffprobe prefixes messages with the path; the user already knows which file it was.
pub(crate) fn strip_path(message: &str, input: &Path) -> String {
    let url = file_url(input).to_string_lossy().into_owned();
    message
        .replace(&format!("{url}: "), "")
        .replace(&url, "the file")
}
