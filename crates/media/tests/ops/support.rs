//! Clips whose right answers are known by construction, a sandbox per test, and an engine whose
//! extractor child is this test executable.

use std::{
    future::Future,
    path::{Path, PathBuf},
    process::Command,
    sync::{Mutex, OnceLock},
};

use vidsnap_domain::Operation;
use vidsnap_media::{
    ExtractorCommand, MediaConfig, MediaEngine, MediaError, OpInput, OpOutput, Progress,
};

/// The first argument that makes this executable the extractor child instead of the tests.
pub const EXTRACTOR_ARG: &str = "internal-extract";

/// Frames per second of the generated clips.
pub const FPS: f64 = 25.0;

pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}

/// Generated clips are kept between runs, in a directory named after the ffmpeg version and this
/// file's text, so a changed recipe or ffmpeg never reuses a stale clip.
fn clips_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let version = Command::new("ffmpeg")
            .arg("-version")
            .output()
            .expect("ffmpeg must be installed to run these tests (scripts/install-deps.sh)");
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&version.stdout, &mut hasher);
        std::hash::Hash::hash(include_str!("support.rs"), &mut hasher);
        std::hash::Hash::hash(include_str!("av_support.rs"), &mut hasher);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "media-clips-{:016x}",
            std::hash::Hasher::finish(&hasher)
        ));
        std::fs::create_dir_all(&dir).expect("clips directory");
        dir
    })
}

/// Frame `N` of a counter clip is a flat grey of luma `16 + 4N`: the frame a picture came from
/// is read back from its brightness. Lossless, so the decoded luma is exactly that.
fn counter(seconds: f64) -> Vec<String> {
    let source = format!(
        "color=black:size=64x48:rate={FPS}:duration={seconds},format=yuv420p,\
         geq=lum='16+4*N':cb=128:cr=128"
    );
    ["-f", "lavfi", "-i", &source]
        .into_iter()
        .chain(["-c:v", "libx264", "-qp", "0", "-g", "10", "-bf", "2"])
        .map(str::to_owned)
        .collect()
}

/// `-f lavfi -i SOURCE` for each source.
fn lavfi(sources: &[&str]) -> Vec<String> {
    sources
        .iter()
        .flat_map(|source| ["-f", "lavfi", "-i", source])
        .map(str::to_owned)
        .collect()
}

/// A moving test picture (which ffmpeg's `idet` finds progressive), `seconds` long.
fn picture(size: &str, seconds: u32) -> String {
    format!("testsrc=size={size}:rate={FPS}:duration={seconds}")
}

/// A 997 Hz tone on two channels at `lufs` (EBU R128: a full-scale sine on each of two
/// channels reads 0 LUFS), `seconds` long.
fn tone(lufs: f64, seconds: u32) -> String {
    let amplitude = 10f64.powf(lufs / 20.0);
    let wave = format!("{amplitude:.5}*sin(2*PI*997*t)");
    format!("aevalsrc={wave}|{wave}:s=48000:d={seconds}")
}

fn silence(seconds: u32) -> String {
    format!("anullsrc=r=48000:cl=stereo:d={seconds}")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| (*a).to_owned()).collect()
}

/// The QC clips: each defect made where the tests expect it.
fn qc_recipe(name: &str) -> Option<Vec<String>> {
    let small_video = ["-c:v", "libx264", "-pix_fmt", "yuv420p"];
    let aac = ["-c:a", "aac", "-b:a", "128k"];
    let recipe = match name {
        // 30 s: black from 3 to 6 s, the picture frozen from 10 to 14 s (frames 250-349 are
        // frame 250), silence from 20 to 25 s in a -21 LUFS tone.
        "qc-defects.mp4" => [
            lavfi(&[&picture("320x240", 30), &tone(-21.0, 30)]),
            args(&[
                "-filter_complex",
                "[0:v]drawbox=enable='gte(t,3)*lt(t,6)':color=black:t=fill,split[x][y];\
                 [x][y]freezeframes=first=250:last=349:replace=250[v];\
                 [1:a]volume=enable='gte(t,20)*lt(t,25)':volume=0[a]",
                "-map",
                "[v]",
                "-map",
                "[a]",
            ]),
            args(&small_video),
            args(&aac),
        ]
        .concat(),
        // Over 1 MiB (lossless 720p) with a -23 LUFS tone: nothing to find. The index comes
        // first, so a truncated copy still opens.
        "qc-clean.mp4" => [
            lavfi(&[&picture("1280x720", 6), &tone(-23.0, 6)]),
            args(&["-c:v", "libx264", "-preset", "ultrafast", "-qp", "0"]),
            args(&aac),
            args(&["-movflags", "+faststart"]),
        ]
        .concat(),
        "qc-video-only.mp4" => [lavfi(&[&picture("320x240", 3)]), args(&small_video)].concat(),
        "qc-silent-audio.mp4" => [
            lavfi(&[&picture("320x240", 3), &silence(3)]),
            args(&small_video),
            args(&aac),
        ]
        .concat(),
        "qc-silent.m4a" => [lavfi(&[&silence(4)]), args(&aac)].concat(),
        "qc-tone.m4a" => [lavfi(&[&tone(-10.0, 4)]), args(&aac)].concat(),
        // 50 pictures a second woven into 25 interlaced frames, coded and flagged as such.
        "qc-interlaced.mp4" => [
            lavfi(&["testsrc=size=640x360:rate=50:duration=4"]),
            args(&["-vf", "tinterlace=mode=interleave_top,setfield=tff"]),
            args(&["-c:v", "libx264", "-flags", "+ildct+ilme"]),
        ]
        .concat(),
        _ => return None,
    };
    Some(recipe)
}

/// Where the shots of `shots.mp4` start: cuts at frames 50, 90, 150 and 185 of 250.
pub const CUTS: [f64; 4] = [2.0, 3.6, 6.0, 7.4];

/// The clips of the storyboard, scenes and smart thumbnail tests (320x240, 25 fps).
fn scene_recipe(name: &str) -> Option<Vec<String>> {
    let h264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p"];
    let shot = |source: &str, seconds: f64| {
        let options = if source.contains('=') { ':' } else { '=' };
        format!(
            "{source}{options}size=320x240:rate={FPS}:duration={seconds},format=yuv420p,setsar=1"
        )
    };
    let recipe = match name {
        // Five shots, each unlike the others, cut where `CUTS` says.
        "shots.mp4" => [
            lavfi(&[
                &shot("testsrc2", CUTS[0]),
                &shot("smptehdbars", CUTS[1] - CUTS[0]),
                &shot("color=c=0xC02020", CUTS[2] - CUTS[1]),
                &shot("testsrc", CUTS[3] - CUTS[2]),
                &shot("rgbtestsrc", 10.0 - CUTS[3]),
            ]),
            args(&[
                "-filter_complex",
                "[0:v][1:v][2:v][3:v][4:v]concat=n=5:v=1:a=0[v]",
                "-map",
                "[v]",
            ]),
            args(&h264),
        ]
        .concat(),
        // One picture that never changes.
        "still.mp4" => [lavfi(&[&shot("smptebars", 4.0)]), args(&h264)].concat(),
        // A moving picture without a cut.
        "motion.mp4" => [lavfi(&[&shot("testsrc2", 4.0)]), args(&h264)].concat(),
        // Black for 2 s, a fade in from 2 to 3 s, then the picture until 6 s.
        "starts-black.mp4" => [
            lavfi(&[&shot("testsrc2", 6.0)]),
            args(&[
                "-vf",
                "drawbox=enable='lt(t,2)':color=black:t=fill,fade=t=in:st=2:d=1",
            ]),
            args(&h264),
        ]
        .concat(),
        // The same moving picture, blurred for 3 s, then sharp for 3 s.
        "blur-then-sharp.mp4" => [
            lavfi(&[&shot("testsrc2", 6.0)]),
            args(&[
                "-vf",
                "boxblur=luma_radius=6:chroma_radius=6:enable='lt(t,3)'",
            ]),
            args(&h264),
        ]
        .concat(),
        _ => return None,
    };
    Some(recipe)
}

/// ffmpeg arguments (before the output path) for each clip.
fn recipe(name: &str) -> Vec<String> {
    if let Some(recipe) = qc_recipe(name) {
        return recipe;
    }
    if let Some(recipe) = scene_recipe(name) {
        return recipe;
    }
    if let Some(recipe) = crate::av_support::recipe(name) {
        return recipe;
    }
    match name {
        // 50 frames, 0.00 s to 1.96 s.
        "counter.mp4" => counter(2.0),
        // 13 frames, 0.00 s to 0.48 s.
        "counter-half.mp4" => counter(0.5),
        other => panic!("no recipe for {other}"),
    }
}

/// The path of a generated clip, made on first use (under a temporary name, renamed when whole).
/// The harness runs one test at a time, so two tests never make the same clip.
pub fn clip(name: &str) -> PathBuf {
    let path = clips_dir().join(name);
    if path.exists() {
        return path;
    }
    let partial = clips_dir().join(format!("partial-{}-{name}", std::process::id()));
    if name == "notes.mp4" {
        std::fs::write(&partial, "a shopping list, not a video\n".repeat(100)).expect("text");
    } else if name == "qc-rotated.mp4" {
        // A display matrix on the video-only clip (`rotate` is honoured when copying).
        let status = Command::new("ffmpeg")
            .args(["-nostdin", "-y", "-v", "error", "-i"])
            .arg(clip("qc-video-only.mp4"))
            .args(["-c", "copy", "-metadata:s:v:0", "rotate=90"])
            .arg(&partial)
            .status()
            .expect("ffmpeg runs");
        assert!(status.success(), "making {name}");
    } else if name == "qc-truncated.mp4" {
        // The clean clip cut at 55%: its index (at the front) still states 6 s.
        let whole = std::fs::read(clip("qc-clean.mp4")).expect("clean clip");
        std::fs::write(&partial, &whole[..whole.len() * 55 / 100]).expect("truncated");
    } else {
        let status = Command::new("ffmpeg")
            .args(["-nostdin", "-y", "-v", "error"])
            .args(recipe(name))
            .arg(&partial)
            .status()
            .expect("ffmpeg runs");
        assert!(status.success(), "making {name}");
    }
    std::fs::rename(&partial, &path).expect("rename clip");
    path
}

/// A test's own directories: `input/` (a copy of the clip), `work/` (given to the operation) and
/// `scratch/` (the engine's temp_dir), to check where files appear.
#[derive(Debug)]
pub struct Sandbox {
    root: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        let root = tempfile::Builder::new()
            .prefix("vidsnap-media-test-")
            .tempdir()
            .expect("sandbox");
        for dir in ["input", "work", "scratch"] {
            std::fs::create_dir(root.path().join(dir)).expect("sandbox directory");
        }
        Self { root }
    }

    pub fn dir(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    pub fn work(&self) -> PathBuf {
        self.dir("work")
    }

    /// The clip copied into `input/`, named `file_name` for the operation.
    pub fn input(&self, clip_name: &str, file_name: &str) -> OpInput {
        let path = self.dir("input").join(clip_name);
        std::fs::copy(clip(clip_name), &path).expect("copy clip");
        OpInput {
            path,
            file_name: file_name.to_owned(),
        }
    }

    /// An engine whose scratch directories go to `scratch/`.
    pub fn engine(&self) -> MediaEngine {
        let config = MediaConfig {
            temp_dir: Some(self.dir("scratch")),
            ..MediaConfig::default()
        };
        let program = std::env::current_exe().expect("test executable");
        MediaEngine::new(
            config,
            ExtractorCommand {
                program,
                args: vec![EXTRACTOR_ARG.into()],
            },
        )
    }

    /// Every file under `dir`, relative to it, sorted.
    pub fn files(&self, dir: &str) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("read_dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    walk(base, &path, out);
                } else {
                    let relative = path.strip_prefix(base).expect("under base");
                    out.push(relative.to_string_lossy().into_owned());
                }
            }
        }
        let base = self.dir(dir);
        let mut files = Vec::new();
        walk(&base, &base, &mut files);
        files.sort();
        files
    }

    /// Nothing but the clip in `input/`, nothing in `scratch/`.
    pub fn assert_nothing_outside_work(&self, clip_name: &str) {
        assert_eq!(self.files("input"), [clip_name], "input/ changed");
        assert_eq!(self.files("scratch"), Vec::<String>::new(), "scratch left");
    }
}

/// Mean luma of every frame of a video, in presentation order, as ffmpeg decodes it.
pub fn frame_brightness(video: &Path) -> Vec<f64> {
    gray(video, &["-map", "0:v:0", "-fps_mode", "passthrough"])
        .chunks(64 * 48)
        .map(mean)
        .collect()
}

/// Mean luma of an image file.
pub fn image_brightness(image: &Path) -> f64 {
    mean(&gray(image, &[]))
}

fn gray(input: &Path, options: &[&str]) -> Vec<u8> {
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(input)
        .args(options)
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(output.status.success(), "decoding {}", input.display());
    output.stdout
}

fn mean(bytes: &[u8]) -> f64 {
    bytes.iter().map(|b| f64::from(*b)).sum::<f64>() / bytes.len().max(1) as f64
}

/// Mean luma of the rectangle `w`x`h` at `(x, y)` of an image.
pub fn region_brightness(image: &Path, x: u32, y: u32, w: u32, h: u32) -> f64 {
    mean(&gray(image, &["-vf", &format!("crop={w}:{h}:{x}:{y}")]))
}

/// Width and height of an image (or a video's first stream), as ffprobe reads them.
pub fn picture_size(path: &Path) -> (u32, u32) {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=width,height", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let (w, h) = text.trim().split_once(',').expect("width,height");
    (w.parse().expect("width"), h.parse().expect("height"))
}

/// The container's duration in seconds, as ffprobe reads it.
pub fn duration(path: &Path) -> f64 {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("a duration")
}

/// The index of the frame of `video` an image was made from: the one nearest in brightness,
/// asserted to be clearly nearer than any other.
pub fn source_frame(image: &Path, video: &Path) -> usize {
    nearest_frame(image_brightness(image), video, &image.display().to_string())
}

/// The index of the frame of `video` nearest in brightness to `target`, asserted to be clearly
/// nearer than any other (`what` names the picture in the message).
pub fn nearest_frame(target: f64, video: &Path, what: &str) -> usize {
    let mut by_distance: Vec<(f64, usize)> = frame_brightness(video)
        .iter()
        .enumerate()
        .map(|(i, b)| ((b - target).abs(), i))
        .collect();
    by_distance.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (best, index) = by_distance[0];
    assert!(
        by_distance[1].0 - best > 1.0,
        "{what} is ambiguous: {by_distance:?}"
    );
    index
}

/// Runs `op` on one input with the sandbox's engine, into `work/`.
pub fn run(
    sandbox: &Sandbox,
    op: &Operation,
    input: &OpInput,
    progress: &dyn Progress,
) -> Result<OpOutput, MediaError> {
    block_on(
        sandbox
            .engine()
            .run(op, std::slice::from_ref(input), &sandbox.work(), progress),
    )
}

/// Every percentage a run reported, in order.
#[derive(Debug, Default)]
pub struct Percentages(Mutex<Vec<u8>>);

impl Percentages {
    pub fn said(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Progress for Percentages {
    fn percent(&self, done: u8) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(done);
    }
}

/// Every entry of a zip: name and bytes, in order.
pub fn zip_entries(path: &Path) -> Vec<(String, Vec<u8>)> {
    let file = std::fs::File::open(path).expect("zip opens");
    let mut archive = zip::ZipArchive::new(file).expect("a zip");
    (0..archive.len())
        .map(|i| {
            let mut entry = archive.by_index(i).expect("entry");
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).expect("entry bytes");
            (entry.name().expect("entry name").into_owned(), bytes)
        })
        .collect()
}
