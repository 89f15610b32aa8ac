//! The command line and its output contract.
//!
//! Exit codes: 0 success; 1 the input was refused or processing failed; 2 usage error;
//! 130 interrupted. Errors print `error[CODE]: message` on stderr, or with `--json`
//! `{"error": {"code", "message"}}` on stdout.

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};
use vidsnap_domain::{
    Container, ErrorCode, FrameInterval, FrameMode, ImageFormat, Limits, Quality,
};
use vidsnap_media::{ExtractorCommand, MediaConfig, MediaEngine, MediaError};

use crate::commands;

#[derive(Debug, Parser)]
#[command(
    name = "vidsnap",
    version,
    about = "Turn videos into frames, thumbnails and notifications."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    media: MediaArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show a video's container, duration, size, streams and validation verdict.
    Probe(ProbeArgs),
    /// Extract a frame every N seconds into DIR/{stem}-images.zip, plus DIR/{stem}-image.{ext}.
    Frames(FramesArgs),
    /// Run a recipe (a file, or a built-in's name) here, with no server: artefacts in
    /// DIR/{step}/, DIR/job.json describing them. Exit 0 succeeded, 1 failed, 2 usage error.
    Run(crate::run::RunArgs),
    /// Check a file's quality here, with no server: black, frozen and silent segments,
    /// loudness, decode errors, seed 002's rating 0-5. Exit 0 passed, 1 failed, 2 usage error.
    Qc(crate::qc::QcArgs),
    /// Package a video for adaptive streaming here, with no server: DIR gets master.m3u8 (HLS),
    /// manifest.mpd (DASH), the variant playlists and the segments. Exit 0 packaged, 1 failed,
    /// 2 usage error (a DIR that is not empty needs --force).
    Package(crate::package::PackageArgs),
    /// Run the service: API, workers and notifications (embedded defaults: SQLite, local disk).
    Serve(ServeArgs),
    /// Print the merged configuration `serve` would use, secrets redacted.
    Config(ServeArgs),
    /// Runs the in-process decoder for a parent vidsnap process (reads a spec on stdin).
    #[command(hide = true)]
    InternalExtract,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Configuration file (default: ./vidsnap.toml when present).
    #[arg(long, env = "VIDSNAP_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0: any free port).
    #[arg(long)]
    pub listen: Option<String>,
    /// Where the database, blobs and generated secrets live.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The URL clients reach this server at.
    #[arg(long)]
    pub public_url: Option<String>,
    /// Which parts to run.
    #[arg(long, value_enum)]
    pub role: Option<crate::config::Role>,
}

impl ServeArgs {
    fn flags(&self) -> crate::config::Flags {
        crate::config::Flags {
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            public_url: self.public_url.clone(),
            role: self.role,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct ProbeArgs {
    pub input: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct FramesArgs {
    pub input: PathBuf,
    /// Time between frames: 10s, 1.5s, 500ms, 2m.
    #[arg(long, default_value = "10s", allow_hyphen_values = true)]
    pub every: FrameInterval,
    /// exact: the frame shown at each time; keyframe: the keyframe at or before it (faster).
    #[arg(long, default_value = "exact")]
    pub mode: FrameMode,
    /// Image format: jpg, png or webp.
    #[arg(long, default_value = "jpg")]
    pub format: ImageFormat,
    /// Image quality, 1 (smallest) to 100 (best); PNG ignores it.
    #[arg(long, default_value = "95")]
    pub quality: Quality,
    /// Scale frames wider than this down to it, keeping the aspect ratio.
    #[arg(long, value_parser = clap::value_parser!(u32).range(16..))]
    pub max_width: Option<u32>,
    /// Output directory; defaults to the input's directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print JSON instead of text (and no progress bar).
    #[arg(long)]
    pub json: bool,
}

/// Media settings shared by every command. Each can also be set through its environment variable.
#[derive(Debug, Args)]
struct MediaArgs {
    /// Accepted containers, comma-separated.
    #[arg(
        long,
        global = true,
        env = "VIDSNAP_LIMITS__CONTAINERS",
        value_delimiter = ','
    )]
    containers: Option<Vec<Container>>,
    /// Largest accepted file in bytes (0 = no limit).
    #[arg(long, global = true, env = "VIDSNAP_LIMITS__MAX_BYTES")]
    limit_bytes: Option<u64>,
    /// Longest accepted video in seconds (0 = no limit).
    #[arg(long, global = true, env = "VIDSNAP_LIMITS__MAX_DURATION_SECONDS")]
    limit_duration: Option<f64>,
    /// Widest accepted video in pixels (0 = no limit).
    #[arg(long, global = true, env = "VIDSNAP_LIMITS__MAX_WIDTH")]
    limit_width: Option<u32>,
    /// Tallest accepted video in pixels (0 = no limit).
    #[arg(long, global = true, env = "VIDSNAP_LIMITS__MAX_HEIGHT")]
    limit_height: Option<u32>,
    /// Most frames one extraction may make (0 = no limit).
    #[arg(long, global = true, env = "VIDSNAP_LIMITS__MAX_FRAMES")]
    limit_frames: Option<u64>,
    /// The ffprobe program.
    #[arg(
        long,
        global = true,
        env = "VIDSNAP_MEDIA__FFPROBE",
        default_value = "ffprobe"
    )]
    ffprobe: PathBuf,
    /// Where per-run scratch directories go (default: the system temp directory).
    #[arg(long, global = true, env = "VIDSNAP_MEDIA__TEMP_DIR")]
    temp_dir: Option<PathBuf>,
    /// At most this many media processes at once.
    #[arg(long, global = true, env = "VIDSNAP_MEDIA__MAX_PROCESSES")]
    max_processes: Option<usize>,
}

impl MediaArgs {
    fn config(&self) -> MediaConfig {
        let defaults = Limits::default();
        let bound = |flag: Option<u64>, default: Option<u64>| match flag {
            Some(0) => None,
            Some(n) => Some(n),
            None => default,
        };
        let limits = Limits {
            containers: self.containers.clone().unwrap_or(defaults.containers),
            max_bytes: bound(self.limit_bytes, defaults.max_bytes),
            max_duration_seconds: match self.limit_duration {
                Some(d) if d <= 0.0 => None,
                Some(d) => Some(d),
                None => defaults.max_duration_seconds,
            },
            max_width: bound(
                self.limit_width.map(u64::from),
                defaults.max_width.map(u64::from),
            )
            .map(|n| n as u32),
            max_height: bound(
                self.limit_height.map(u64::from),
                defaults.max_height.map(u64::from),
            )
            .map(|n| n as u32),
            max_frames: bound(self.limit_frames, defaults.max_frames),
        };
        let mut config = MediaConfig {
            ffprobe: self.ffprobe.clone(),
            temp_dir: self.temp_dir.clone(),
            limits,
            ..MediaConfig::default()
        };
        if let Some(n) = self.max_processes {
            config.max_processes = n;
        }
        config
    }
}

/// A failure on its way to the user: its code, its message, whether to print JSON.
pub(crate) struct Failure {
    pub code: ErrorCode,
    pub message: String,
}

impl From<MediaError> for Failure {
    fn from(error: MediaError) -> Self {
        Self {
            code: error.code(),
            message: error.to_string(),
        }
    }
}

pub(crate) fn run() -> ExitCode {
    let wants_json = std::env::args().any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if wants_json && e.use_stderr() => {
            let message = e.kind().to_string();
            let detail = e.to_string();
            let first = detail
                .lines()
                .next()
                .unwrap_or(&message)
                .trim_start_matches("error: ");
            print_failure(
                true,
                &Failure {
                    code: ErrorCode::InvalidArgument,
                    message: first.to_owned(),
                },
            );
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    if matches!(cli.command, Command::InternalExtract) {
        return vidsnap_media::extract::child_main();
    }
    init_logging();
    // One TLS provider for every client (SMTP, webhooks, object storage): aws-lc-rs.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match &cli.command {
        Command::Serve(args) => return run_serve(args),
        Command::Config(args) => return print_config(args),
        _ => {}
    }
    let engine = match extractor() {
        Ok(extractor) => MediaEngine::new(cli.media.config(), extractor),
        Err(failure) => {
            print_failure(false, &failure);
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error[internal]: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (json, outcome) = runtime.block_on(async {
        match cli.command {
            Command::Probe(args) => (
                args.json,
                interruptible(commands::probe(&engine, args)).await,
            ),
            Command::Frames(args) => (
                args.json,
                interruptible(commands::frames(&engine, args)).await,
            ),
            Command::Run(args) => (args.json, crate::run::run(engine, args).await),
            Command::Qc(args) => (args.json, interruptible(crate::qc::qc(&engine, args)).await),
            Command::Package(args) => (
                args.json,
                interruptible(crate::package::package(&engine, args)).await,
            ),
            Command::InternalExtract | Command::Serve(_) | Command::Config(_) => {
                (false, Ok(ExitCode::SUCCESS))
            }
        }
    });
    match outcome {
        Ok(code) => code,
        Err(failure) => {
            print_failure(json, &failure);
            if failure.code == ErrorCode::Interrupted {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Ctrl-C drops the command's future: its guards kill child processes and remove scratch and
/// partial files before we report.
async fn interruptible(
    command: impl Future<Output = Result<ExitCode, Failure>>,
) -> Result<ExitCode, Failure> {
    tokio::select! {
        outcome = command => outcome,
        _ = tokio::signal::ctrl_c() => Err(MediaError::Interrupted.into()),
    }
}

fn run_serve(args: &ServeArgs) -> ExitCode {
    let config = match crate::config::load(args.config.as_deref(), &args.flags()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error[invalid-config]: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error[internal]: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::serve::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error[startup-failed]: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_config(args: &ServeArgs) -> ExitCode {
    let checked = crate::config::load(args.config.as_deref(), &args.flags())
        .and_then(|_| crate::config::redacted(args.config.as_deref(), &args.flags()));
    match checked {
        Ok(value) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error[invalid-config]: {e}");
            ExitCode::from(2)
        }
    }
}

fn extractor() -> Result<ExtractorCommand, Failure> {
    let program = std::env::current_exe().map_err(|e| Failure {
        code: ErrorCode::Internal,
        message: format!("cannot find the vidsnap executable: {e}"),
    })?;
    Ok(ExtractorCommand {
        program,
        args: vec!["internal-extract".into()],
    })
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIDSNAP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// The operation `op` with options gathered from command-line flags; every problem is named by
/// its flag (`--target-lufs: …`), all of them joined, as a usage error says them.
pub(crate) fn operation_from_flags(
    op: &str,
    options: serde_json::Map<String, serde_json::Value>,
) -> Result<vidsnap_domain::Operation, String> {
    vidsnap_domain::Operation::parse(op, &serde_json::Value::Object(options), op).map_err(
        |problems| {
            let prefix = format!("{op}.");
            let lines: Vec<String> = problems
                .into_fields()
                .into_iter()
                .map(|(path, message)| {
                    let key = path.strip_prefix(&prefix).unwrap_or(&path);
                    format!("--{}: {message}", key.replace('_', "-"))
                })
                .collect();
            lines.join("; ")
        },
    )
}

pub(crate) fn print_failure(json: bool, failure: &Failure) {
    if json {
        let body = serde_json::json!({
            "error": { "code": failure.code, "message": failure.message }
        });
        println!("{body}");
    } else {
        eprintln!("error[{}]: {}", failure.code, failure.message);
    }
}
