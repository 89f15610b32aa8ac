//! Clip recipes, running the binary, and reading its outputs.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::{
    collections::HashMap,
    io::Read,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::{Mutex, OnceLock},
};

use serde_json::Value;

/// Generated clips live in cargo's per-target scratch directory, so later runs reuse them. The
/// directory is named after the ffmpeg version and this file's text (the recipes), so a changed
/// recipe or ffmpeg never reuses a stale clip.
fn clips_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let version = Command::new("ffmpeg")
            .arg("-version")
            .output()
            .expect("ffmpeg must be installed to run the tests (scripts/install-deps.sh)");
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&version.stdout, &mut hasher);
        std::hash::Hash::hash(include_str!("support.rs"), &mut hasher);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("clips-{:016x}", std::hash::Hasher::finish(&hasher)));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// Luma of generated frame `N`: distinct for neighbouring frames, so the frame a picture came
/// from can be told from its mean brightness.
const ID_LUMA: &str = "mod(N*7\\,200)+16";

fn id_source(seconds: u32) -> String {
    format!(
        "color=black:size=160x120:rate=25:duration={seconds},format=yuv420p,geq=lum='{ID_LUMA}':cb=128:cr=128"
    )
}

/// ffmpeg arguments (after `-y -v error`) that produce each named clip; `{out}` is the path.
fn recipe(name: &str) -> Vec<String> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let ids12 = id_source(12);
    match name {
        "cfr61.mp4" => s(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=25:duration=61",
            "-f",
            "lavfi",
            "-i",
            "sine=duration=61",
            "-c:v",
            "libx264",
            "-g",
            "50",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            "{out}",
        ]),
        "av6.mp4" => s(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=6",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=6",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            "{out}",
        ]),
        "short3.mp4" => s(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=25:duration=3",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "{out}",
        ]),
        "long-png.mp4" => s(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x480:rate=25:duration=120",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
            "{out}",
        ]),
        "ids.mp4" => s(&[
            "-f", "lavfi", "-i", &ids12, "-c:v", "libx264", "-crf", "8", "-g", "50", "-bf", "3",
            "{out}",
        ]),
        "ids-vfr.mp4" => s(&[
            "-f",
            "lavfi",
            "-i",
            &ids12,
            "-vf",
            "setpts='(N/25+if(gte(N\\,100)\\,0.37\\,0)+if(gte(N\\,200)\\,0.51\\,0))/TB'",
            "-fps_mode",
            "passthrough",
            "-c:v",
            "libx264",
            "-crf",
            "8",
            "-g",
            "50",
            "{out}",
        ]),
        "ids.ts" => s(&[
            "-f",
            "lavfi",
            "-i",
            &ids12,
            "-f",
            "lavfi",
            "-i",
            "sine=duration=12",
            "-c:v",
            "libx264",
            "-crf",
            "8",
            "-g",
            "50",
            "-c:a",
            "aac",
            "-output_ts_offset",
            "10",
            "-f",
            "mpegts",
            "{out}",
        ]),
        "ids-hevc.mkv" => s(&[
            "-f",
            "lavfi",
            "-i",
            &ids12,
            "-c:v",
            "libx265",
            "-crf",
            "8",
            "-x265-params",
            "log-level=error:keyint=50:min-keyint=50",
            "{out}",
        ]),
        "ids-vp9.webm" => s(&[
            "-f",
            "lavfi",
            "-i",
            &ids12,
            "-c:v",
            "libvpx-vp9",
            "-crf",
            "10",
            "-b:v",
            "0",
            "-g",
            "50",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "{out}",
        ]),
        "no-duration.webm" => s(&[
            "-f",
            "lavfi",
            "-i",
            &id_source(7),
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-f",
            "webm",
            "pipe:1",
        ]),
        "gradient.mp4" => s(&[
            "-f",
            "lavfi",
            "-i",
            "color=black:size=64x32:rate=25:duration=1,format=yuv420p,geq=lum='if(gt(X\\,31)\\,235\\,16)':cb=128:cr=128",
            "-c:v",
            "libx264",
            "{out}",
        ]),
        "wide.mp4" => s(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25:duration=2",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "{out}",
        ]),
        "song.mp3" => s(&[
            "-f",
            "lavfi",
            "-i",
            "sine=duration=2",
            "-c:a",
            "libmp3lame",
            "{out}",
        ]),
        "audio-only.mp4" => s(&[
            "-f",
            "lavfi",
            "-i",
            "sine=duration=2",
            "-c:a",
            "aac",
            "{out}",
        ]),
        other => panic!("no recipe for {other}"),
    }
}

fn ffmpeg(args: &[String]) {
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-y", "-v", "error"])
        .args(args)
        .status()
        .expect("ffmpeg must be installed to run the tests (scripts/install-deps.sh)");
    assert!(status.success(), "ffmpeg {args:?} failed");
}

/// The path of a generated clip, made on first use. Also derived clips: a rotated copy, a file
/// with zeros in place of its video data, text, empty and mislabelled files. Generation holds
/// one lock so two tests never write the same clip.
pub fn clip(name: &str) -> PathBuf {
    static MADE: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut made = MADE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    ensure(&mut made, name)
}

fn ensure(made: &mut HashMap<String, PathBuf>, name: &str) -> PathBuf {
    if let Some(path) = made.get(name) {
        return path.clone();
    }
    let path = clips_dir().join(name);
    if path.exists() {
        made.insert(name.into(), path.clone());
        return path;
    }
    // Made under a temporary name and renamed, so an interrupted run never leaves half a clip.
    let partial = clips_dir().join(format!("partial-{}-{name}", std::process::id()));
    make(made, name, &partial);
    std::fs::rename(&partial, &path).unwrap();
    made.insert(name.into(), path.clone());
    path
}

fn make(made: &mut HashMap<String, PathBuf>, name: &str, path: &Path) {
    let arg = |p: &Path| p.display().to_string();
    match name {
        "text.mp4" => std::fs::write(path, "this is not a video\n".repeat(200)).unwrap(),
        "empty.mp4" => std::fs::write(path, b"").unwrap(),
        "song-named.mp4" => {
            std::fs::copy(ensure(made, "song.mp3"), path).unwrap();
        }
        "rotated.mp4" => {
            let source = ensure(made, "gradient.mp4");
            ffmpeg(&[
                "-i".into(),
                arg(&source),
                "-c".into(),
                "copy".into(),
                "-metadata:s:v:0".into(),
                "rotate=90".into(),
                arg(path),
            ]);
        }
        "corrupt.mp4" => {
            let source = ensure(made, "ids.mp4");
            let faststart = path.with_extension("faststart.mp4");
            ffmpeg(&[
                "-i".into(),
                arg(&source),
                "-c".into(),
                "copy".into(),
                "-movflags".into(),
                "+faststart".into(),
                arg(&faststart),
            ]);
            let mut bytes = std::fs::read(&faststart).unwrap();
            let mdat = bytes
                .windows(4)
                .position(|w| w == b"mdat")
                .expect("mdat box")
                + 4;
            bytes[mdat..].fill(0);
            std::fs::write(path, bytes).unwrap();
            std::fs::remove_file(faststart).unwrap();
        }
        "no-duration.webm" => {
            let output = Command::new("ffmpeg")
                .args(["-nostdin", "-v", "error"])
                .args(recipe(name))
                .output()
                .unwrap();
            assert!(output.status.success());
            std::fs::write(path, output.stdout).unwrap();
        }
        _ => {
            let args: Vec<String> = recipe(name)
                .into_iter()
                .map(|a| a.replace("{out}", &arg(path)))
                .collect();
            ffmpeg(&args);
        }
    }
}

/// A test's private output and scratch directories.
pub struct Sandbox {
    pub root: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        let root = tempfile::Builder::new()
            .prefix("vidsnap-test-")
            .tempdir()
            .unwrap();
        std::fs::create_dir(root.path().join("out")).unwrap();
        std::fs::create_dir(root.path().join("scratch")).unwrap();
        Self { root }
    }

    pub fn out(&self) -> PathBuf {
        self.root.path().join("out")
    }

    pub fn scratch(&self) -> PathBuf {
        self.root.path().join("scratch")
    }

    /// `vidsnap` with this sandbox's scratch directory.
    pub fn vidsnap(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vidsnap"));
        command.env("VIDSNAP_MEDIA__TEMP_DIR", self.scratch());
        command
    }

    /// Runs `vidsnap frames CLIP --out OUT --json EXTRA...` and returns its parsed stdout.
    pub fn frames(&self, clip: &Path, extra: &[&str]) -> (Output, Value) {
        let output = self
            .vidsnap()
            .arg("frames")
            .arg(clip)
            .arg("--out")
            .arg(self.out())
            .arg("--json")
            .args(extra)
            .output()
            .unwrap();
        let json = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        (output, json)
    }

    /// Names in a directory, sorted.
    pub fn list(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    pub fn assert_scratch_empty(&self) {
        assert_eq!(
            Self::list(&self.scratch()),
            Vec::<String>::new(),
            "scratch left behind"
        );
    }
}

/// Every entry of a zip: name, compression method, bytes.
pub fn zip_entries(path: &Path) -> Vec<(String, zip::CompressionMethod, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut file = archive.by_index(i).unwrap();
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).unwrap();
            (file.name().unwrap().into_owned(), file.compression(), bytes)
        })
        .collect()
}

/// The manifest inside a frames zip.
pub fn manifest(zip_path: &Path) -> Value {
    let entries = zip_entries(zip_path);
    let (_, _, bytes) = entries
        .iter()
        .find(|(name, _, _)| name == "manifest.json")
        .expect("manifest.json in the zip");
    serde_json::from_slice(bytes).unwrap()
}

/// Decoded frames of a video as ffprobe lists them: (seconds from the container start, is key).
pub fn frame_times(video: &Path) -> Vec<(f64, bool)> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args([
            "frame=best_effort_timestamp_time,key_frame:format=start_time",
            "-of",
            "json",
        ])
        .arg(video)
        .output()
        .unwrap();
    assert!(output.status.success());
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    let start: f64 = json["format"]["start_time"]
        .as_str()
        .unwrap_or("0")
        .parse()
        .unwrap();
    json["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let t: f64 = f["best_effort_timestamp_time"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            (t - start, f["key_frame"].as_i64() == Some(1))
        })
        .collect()
}

/// The index of the frame shown at `t`: the last whose time is <= t, or the first.
pub fn shown_at(times: &[(f64, bool)], t: f64, keyframes_only: bool) -> usize {
    times
        .iter()
        .enumerate()
        .filter(|(_, (time, key))| *time <= t + 1e-6 && (*key || !keyframes_only))
        .map(|(i, _)| i)
        .next_back()
        .unwrap_or(0)
}

/// Mean brightness (full-range gray) of every frame of a video, in presentation order.
pub fn frame_brightness(video: &Path, pixels: usize) -> Vec<f64> {
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(video)
        .args([
            "-map",
            "0:v:0",
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    output.stdout.chunks(pixels).map(mean).collect()
}

/// Mean brightness of an image file (any format ffmpeg reads).
pub fn image_brightness(bytes: &[u8], dir: &Path, name: &str) -> f64 {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap();
    assert!(output.status.success());
    mean(&output.stdout)
}

fn mean(bytes: &[u8]) -> f64 {
    bytes.iter().map(|b| f64::from(*b)).sum::<f64>() / bytes.len().max(1) as f64
}
