//! The package operation on generated clips, read back the way players read it: ffprobe and
//! ffmpeg open `master.m3u8` and `manifest.mpd`, decode every rendition to the end and list
//! its keyframes.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use serde_json::{Value, json};
use vidsnap_domain::Operation;
use vidsnap_media::{
    ExtractorCommand, MediaConfig, MediaEngine, OpInput, OpOutput, Progress, Silent,
};

use crate::support::{Percentages, Sandbox, block_on};

fn package(options: Value) -> Operation {
    Operation::parse("package", &options, "options").expect("valid package options")
}

/// Generated once per ffmpeg version and text of this file, like `support`'s clips.
fn clip(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let version = Command::new("ffmpeg")
            .arg("-version")
            .output()
            .expect("ffmpeg must be installed to run these tests (scripts/install-deps.sh)");
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&version.stdout, &mut hasher);
        std::hash::Hash::hash(include_str!("package.rs"), &mut hasher);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "package-clips-{:016x}",
            std::hash::Hasher::finish(&hasher)
        ));
        std::fs::create_dir_all(&dir).expect("clips directory");
        dir
    });
    let path = dir.join(name);
    if path.exists() {
        return path;
    }
    let picture =
        |size: &str, seconds: u32| format!("testsrc2=size={size}:rate=25:duration={seconds}");
    let stereo = |seconds: u32| {
        format!("sine=frequency=440:sample_rate=48000:duration={seconds},pan=stereo|c0=c0|c1=c0")
    };
    let mono = |seconds: u32| format!("sine=frequency=440:sample_rate=48000:duration={seconds}");
    // High quality, so a rendition larger than the source would be a fault of ours.
    let video = [
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "12", "-pix_fmt", "yuv420p",
    ];
    let aac = ["-c:a", "aac", "-b:a", "160k"];
    let (inputs, codecs): (Vec<String>, Vec<&str>) = match name {
        "ladder.mp4" => (
            vec![picture("640x360", 9), stereo(9)],
            [&video[..], &aac[..]].concat(),
        ),
        "wide-480.mp4" => (
            vec![picture("854x480", 3), stereo(3)],
            [&video[..], &aac[..]].concat(),
        ),
        "landscape.mp4" => (vec![picture("640x360", 3)], video.to_vec()),
        "mono.mp4" => (
            vec![picture("320x180", 3), mono(3)],
            [&video[..], &aac[..]].concat(),
        ),
        "rotated.mp4" => {
            // A display matrix on a landscape clip: players show it turned, portrait.
            let partial = dir.join(format!("partial-{}-{name}", std::process::id()));
            ffmpeg(&[
                "-i".into(),
                clip("landscape.mp4").display().to_string(),
                "-c".into(),
                "copy".into(),
                "-metadata:s:v:0".into(),
                "rotate=90".into(),
                partial.display().to_string(),
            ]);
            std::fs::rename(&partial, &path).expect("rename clip");
            return path;
        }
        other => panic!("no recipe for {other}"),
    };
    let partial = dir.join(format!("partial-{}-{name}", std::process::id()));
    let mut args = Vec::new();
    for input in inputs {
        args.extend(["-f".to_owned(), "lavfi".to_owned(), "-i".to_owned(), input]);
    }
    args.extend(codecs.iter().map(|a| (*a).to_owned()));
    args.push(partial.display().to_string());
    ffmpeg(&args);
    std::fs::rename(&partial, &path).expect("rename clip");
    path
}

fn ffmpeg(args: &[String]) {
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-y", "-v", "error"])
        .args(args)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg {args:?}");
}

/// The clip copied into the sandbox's `input/`.
fn input(sandbox: &Sandbox, name: &str) -> OpInput {
    let path = sandbox.dir("input").join(name);
    std::fs::copy(clip(name), &path).expect("copy clip");
    OpInput {
        path,
        file_name: name.to_owned(),
    }
}

fn run(sandbox: &Sandbox, clip_name: &str, options: Value, progress: &dyn Progress) -> OpOutput {
    let input = input(sandbox, clip_name);
    let output = block_on(sandbox.engine().run(
        &package(options),
        std::slice::from_ref(&input),
        &sandbox.work(),
        progress,
    ))
    .expect("packaged");
    sandbox.assert_nothing_outside_work(clip_name);
    output
}

/// One stream of a manifest as ffprobe reads it, decoded to the end.
#[derive(Debug)]
struct Stream {
    kind: String,
    width: u64,
    height: u64,
    sample_aspect: f64,
    channels: u64,
    frames: u64,
    /// Presentation times of its keyframes (video) in seconds.
    keyframes: Vec<f64>,
    /// Where its last packet starts.
    last: f64,
}

/// Every stream of a manifest, every frame decoded (`-count_frames`), with no decoding error.
fn read_manifest(manifest: &Path) -> Vec<Stream> {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-of",
            "json",
            "-show_entries",
        ])
        .arg(
            "stream=index,codec_type,width,height,channels,nb_read_frames,sample_aspect_ratio:\
             packet=stream_index,pts_time,flags",
        )
        .arg(manifest)
        .output()
        .expect("ffprobe runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "{}: {stderr}",
        manifest.display()
    );
    let json: Value = serde_json::from_slice(&output.stdout).expect("ffprobe JSON");
    let number = |v: &Value| v.as_u64().or_else(|| v.as_str()?.parse().ok()).unwrap_or(0);
    let mut streams: BTreeMap<u64, Stream> = BTreeMap::new();
    for s in json["streams"].as_array().expect("streams") {
        let sample_aspect = s["sample_aspect_ratio"]
            .as_str()
            .and_then(|r| r.split_once(':'))
            .and_then(|(n, d)| Some(n.parse::<f64>().ok()? / d.parse::<f64>().ok()?))
            .unwrap_or(1.0);
        streams.insert(
            number(&s["index"]),
            Stream {
                kind: s["codec_type"].as_str().unwrap_or_default().to_owned(),
                width: number(&s["width"]),
                height: number(&s["height"]),
                sample_aspect,
                channels: number(&s["channels"]),
                frames: number(&s["nb_read_frames"]),
                keyframes: Vec::new(),
                last: 0.0,
            },
        );
    }
    for p in json["packets"].as_array().expect("packets") {
        let stream = streams
            .get_mut(&number(&p["stream_index"]))
            .expect("a packet of a listed stream");
        let Some(pts) = p["pts_time"].as_str().and_then(|t| t.parse::<f64>().ok()) else {
            continue;
        };
        stream.last = stream.last.max(pts);
        if p["flags"].as_str().is_some_and(|f| f.starts_with('K')) && stream.kind == "video" {
            stream.keyframes.push(pts);
        }
    }
    streams.into_values().collect()
}

fn videos(streams: &[Stream]) -> Vec<&Stream> {
    streams.iter().filter(|s| s.kind == "video").collect()
}

fn sizes(streams: &[Stream]) -> Vec<(u64, u64)> {
    let mut sizes: Vec<(u64, u64)> = videos(streams)
        .iter()
        .map(|s| (s.width, s.height))
        .collect();
    sizes.sort_by(|a, b| b.cmp(a));
    sizes
}

/// A file of the package.
fn file(output: &OpOutput, file_name: &str) -> PathBuf {
    output
        .produced
        .iter()
        .find(|p| p.file_name == file_name)
        .unwrap_or_else(|| panic!("{file_name} in {:?}", output.produced))
        .path
        .clone()
}

fn bytes_under(output: &OpOutput, prefix: &str) -> u64 {
    output
        .produced
        .iter()
        .filter(|p| p.file_name.starts_with(prefix))
        .map(|p| std::fs::metadata(&p.path).expect("file").len())
        .sum()
}

pub fn both_manifests_decode_every_rendition_to_the_end() {
    const SECONDS: f64 = 9.0;
    const SEGMENT: f64 = 2.0;
    const FPS: f64 = 25.0;
    let sandbox = Sandbox::new();
    let percentages = Percentages::default();
    let output = run(
        &sandbox,
        "ladder.mp4",
        json!({"ladder": [360, 240, 144], "segment": SEGMENT}),
        &percentages,
    );

    // The layout: names, paths, content types; the master playlist last.
    let mut expected = vec!["manifest.mpd".to_owned(), "master.m3u8".to_owned()];
    for i in 0..4 {
        expected.push(format!("media_{i}.m3u8"));
        expected.push(format!("stream{i}/init.mp4"));
        for n in 1..=5 {
            expected.push(format!("stream{i}/seg-{n:05}.m4s"));
        }
    }
    expected.sort();
    let mut listed: Vec<String> = output
        .produced
        .iter()
        .map(|p| p.file_name.clone())
        .collect();
    listed.sort();
    assert_eq!(listed, expected);
    let mut in_work: Vec<String> = sandbox
        .files("work")
        .into_iter()
        .map(|f| {
            f.strip_prefix("package/")
                .expect("under package/")
                .to_owned()
        })
        .collect();
    in_work.sort();
    assert_eq!(in_work, expected, "nothing else in the work directory");
    let last: Vec<(&str, &str, &str)> = output.produced[output.produced.len() - 2..]
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.file_name.as_str(),
                p.content_type.as_str(),
            )
        })
        .collect();
    assert_eq!(
        last,
        [
            ("dash", "manifest.mpd", "application/dash+xml"),
            ("hls", "master.m3u8", "application/vnd.apple.mpegurl")
        ]
    );
    let type_of = |name: &str| {
        output
            .produced
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.content_type.as_str())
            .unwrap_or_else(|| panic!("{name}"))
    };
    assert_eq!(type_of("media_0.m3u8"), "application/vnd.apple.mpegurl");
    assert_eq!(type_of("stream0/init.mp4"), "video/mp4");
    assert_eq!(type_of("stream0/seg-00001.m4s"), "video/iso.segment");
    assert_eq!(type_of("stream3/init.mp4"), "audio/mp4");
    assert_eq!(type_of("stream3/seg-00001.m4s"), "audio/mp4");

    // Both manifests: three video renditions and one audio, every frame decodes.
    let master = file(&output, "master.m3u8");
    let mpd = file(&output, "manifest.mpd");
    for manifest in [&master, &mpd] {
        let streams = read_manifest(manifest);
        assert_eq!(
            sizes(&streams),
            [(640, 360), (426, 240), (256, 144)],
            "{manifest:?}"
        );
        let audio: Vec<&Stream> = streams.iter().filter(|s| s.kind == "audio").collect();
        assert_eq!(audio.len(), 1, "{streams:?}");
        assert_eq!(audio[0].channels, 2);
        let keyframes = &videos(&streams)[0].keyframes;
        for video in videos(&streams) {
            let expected = SECONDS * FPS;
            assert!(
                (video.frames as f64 - expected).abs() <= SEGMENT * FPS,
                "{} frames, not about {expected}: {video:?}",
                video.frames
            );
            assert!(video.last >= SECONDS - SEGMENT, "{video:?}");
            // Keyframes at the same times in every rendition: each segment boundary.
            assert_eq!(&video.keyframes, keyframes, "{manifest:?}");
            // Displayed aspect kept (sample aspect included) within 1%.
            let aspect = video.width as f64 * video.sample_aspect / video.height as f64;
            assert!((aspect / (16.0 / 9.0) - 1.0).abs() < 0.01, "{video:?}");
        }
        let boundaries: Vec<f64> = (0..5).map(|n| f64::from(n) * SEGMENT).collect();
        assert_eq!(keyframes.len(), boundaries.len(), "{keyframes:?}");
        for (k, b) in keyframes.iter().zip(&boundaries) {
            assert!((k - b).abs() < 1.0 / FPS, "{keyframes:?}");
        }
    }

    // The playlists are VOD, with relative URIs only, and the MPD a SegmentTemplate.
    let master_text = std::fs::read_to_string(&master).expect("master");
    assert!(
        master_text.contains("#EXT-X-INDEPENDENT-SEGMENTS"),
        "{master_text}"
    );
    let variant = std::fs::read_to_string(file(&output, "media_0.m3u8")).expect("variant");
    assert!(variant.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{variant}");
    assert!(variant.contains("#EXT-X-ENDLIST"), "{variant}");
    assert!(!variant.contains("PROGRAM-DATE-TIME"), "{variant}");
    let mpd_text = std::fs::read_to_string(&mpd).expect("mpd");
    assert_eq!(mpd_text.matches("<AdaptationSet").count(), 2, "{mpd_text}");
    assert!(mpd_text.contains("<SegmentTemplate"), "{mpd_text}");

    // No rendition is larger than the source.
    let source = std::fs::metadata(clip("ladder.mp4")).expect("clip").len();
    for i in 0..4 {
        let bytes = bytes_under(&output, &format!("stream{i}/"));
        assert!(
            bytes < source,
            "stream{i}: {bytes} bytes, the source {source}"
        );
    }

    let result = output.result.expect("result");
    assert_eq!(result["hls"], "master.m3u8");
    assert_eq!(result["dash"], "manifest.mpd");
    assert_eq!(result["segments"], 5);
    assert_eq!(result["renditions"].as_array().map(Vec::len), Some(4));
    assert_eq!(result["renditions"][1]["short_side"], 240);

    let said = percentages.said();
    assert_eq!(said.first(), Some(&0));
    assert_eq!(said.last(), Some(&100));
    assert!(said.len() > 2, "percent of the duration encoded: {said:?}");
    assert!(said.windows(2).all(|w| w[0] < w[1]), "{said:?}");
}

pub fn nothing_is_upscaled() {
    let sandbox = Sandbox::new();
    let output = run(&sandbox, "wide-480.mp4", json!({"segment": 1}), &Silent);
    let streams = read_manifest(&file(&output, "manifest.mpd"));
    assert_eq!(sizes(&streams), [(854, 480), (640, 360)]);
    let sides: Vec<&Value> = output.result.as_ref().expect("result")["renditions"]
        .as_array()
        .expect("renditions")
        .iter()
        .map(|r| &r["short_side"])
        .collect();
    assert_eq!(sides, [&json!(480), &json!(360), &Value::Null]);
}

pub fn a_rotated_source_gives_upright_portrait_renditions() {
    let sandbox = Sandbox::new();
    let output = run(
        &sandbox,
        "rotated.mp4",
        json!({"ladder": "360,240"}),
        &Silent,
    );
    let master = file(&output, "master.m3u8");
    assert_eq!(sizes(&read_manifest(&master)), [(360, 640), (240, 426)]);
    // Turned in the pixels: browsers ignore a rotation matrix, so none is left.
    for playlist in ["media_0.m3u8", "media_1.m3u8"] {
        let shown = Command::new("ffprobe")
            .args(["-v", "error", "-show_streams", "-of", "json"])
            .arg(file(&output, playlist))
            .output()
            .expect("ffprobe");
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(
            !text.contains("Display Matrix") && !text.contains("\"rotation\""),
            "{text}"
        );
    }
    // Upright: the picture is what ffmpeg shows for the source (it honours the matrix), not
    // that picture upside down.
    let ours = gray_frame(&file(&output, "media_1.m3u8"), &[]);
    let shown = gray_frame(&clip("rotated.mp4"), &["-vf", "scale=240:426"]);
    let upside_down = gray_frame(&clip("rotated.mp4"), &["-vf", "scale=240:426,hflip,vflip"]);
    let (right, wrong) = (difference(&ours, &shown), difference(&ours, &upside_down));
    assert!(
        right < 8.0 && wrong > 3.0 * right,
        "right {right}, wrong {wrong}"
    );
}

/// The first frame of a video as 8-bit luma.
fn gray_frame(video: &Path, filters: &[&str]) -> Vec<u8> {
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(video)
        .args(filters)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(output.status.success(), "decoding {}", video.display());
    output.stdout
}

/// Mean absolute difference of two pictures of the same size.
fn difference(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "same size");
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(x.abs_diff(*y)))
        .sum::<f64>()
        / a.len() as f64
}

pub fn a_source_without_audio_has_no_audio_rendition() {
    let sandbox = Sandbox::new();
    let output = run(
        &sandbox,
        "landscape.mp4",
        json!({"ladder": [360, 240]}),
        &Silent,
    );
    for manifest in ["master.m3u8", "manifest.mpd"] {
        let streams = read_manifest(&file(&output, manifest));
        assert_eq!(streams.len(), 2, "{manifest}: {streams:?}");
        assert!(streams.iter().all(|s| s.kind == "video"), "{streams:?}");
    }
    let master = std::fs::read_to_string(file(&output, "master.m3u8")).expect("master");
    assert!(!master.contains("TYPE=AUDIO"), "{master}");
    assert!(
        !output
            .produced
            .iter()
            .any(|p| p.file_name.starts_with("stream2/"))
    );
}

pub fn mono_stays_mono() {
    let sandbox = Sandbox::new();
    let output = run(&sandbox, "mono.mp4", json!({}), &Silent);
    let streams = read_manifest(&file(&output, "manifest.mpd"));
    assert_eq!(
        sizes(&streams),
        [(320, 180)],
        "a source below every rung: its own size"
    );
    let audio: Vec<&Stream> = streams.iter().filter(|s| s.kind == "audio").collect();
    assert_eq!(audio.len(), 1);
    assert_eq!(audio[0].channels, 1);
    let result = output.result.expect("result");
    assert_eq!(result["renditions"][1]["kbps"], 64, "half the stereo rate");
}

pub fn bad_ladders_are_field_errors() {
    for (options, field) in [
        (json!({"ladder": [720, 721]}), "steps[0].options.ladder"),
        (
            json!({"ladder": (0..9).map(|i| 200 + 2 * i).collect::<Vec<_>>()}),
            "steps[0].options.ladder",
        ),
        (
            json!({"ladder": [{"short_side": 720, "kbps": 0}]}),
            "steps[0].options.ladder",
        ),
        (json!({"segment": 0}), "steps[0].options.segment"),
    ] {
        let fields = Operation::parse("package", &options, "steps[0].options")
            .expect_err("refused")
            .into_fields();
        assert_eq!(fields.keys().collect::<Vec<_>>(), [field], "{options}");
    }
}

/// One ffmpeg process (one `-i`, one filter graph splitting the decoded picture) makes every
/// rendition, after the probes.
pub fn one_ffmpeg_process_makes_every_rendition() {
    let sandbox = Sandbox::new();
    let tools = tempfile::tempdir().expect("tools dir");
    let log = tools.path().join("calls.log");
    for program in ["ffprobe", "ffmpeg"] {
        let real = std::env::split_paths(&std::env::var_os("PATH").expect("PATH"))
            .map(|d| d.join(program))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{program} on PATH"));
        let script = tools.path().join(program);
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\" -- >> '{}'\nexec '{}' \"$@\"\n",
                log.display(),
                real.display()
            ),
        )
        .expect("script");
        let mut permissions = std::fs::metadata(&script).expect("script").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&script, permissions).expect("chmod");
    }
    let engine = MediaEngine::new(
        MediaConfig {
            ffprobe: tools.path().join("ffprobe"),
            temp_dir: Some(sandbox.dir("scratch")),
            ..MediaConfig::default()
        },
        ExtractorCommand {
            program: std::env::current_exe().expect("test executable"),
            args: vec![crate::support::EXTRACTOR_ARG.into()],
        },
    );
    let input = input(&sandbox, "wide-480.mp4");
    block_on(engine.run(
        &package(json!({"segment": 1})),
        std::slice::from_ref(&input),
        &sandbox.work(),
        &Silent,
    ))
    .expect("packaged");
    let text = std::fs::read_to_string(&log).expect("calls");
    let calls: Vec<Vec<&str>> = text
        .split("--\n")
        .filter(|call| !call.is_empty())
        .map(|call| call.lines().collect())
        .collect();
    let ffmpeg: Vec<&Vec<&str>> = calls.iter().filter(|c| c[0].ends_with("/ffmpeg")).collect();
    assert_eq!(ffmpeg.len(), 1, "{text}");
    let args = ffmpeg[0];
    assert_eq!(args.iter().filter(|a| **a == "-i").count(), 1, "{text}");
    let graph = args
        .iter()
        .position(|a| *a == "-filter_complex")
        .map(|i| args[i + 1])
        .expect("a filter graph");
    assert!(graph.contains("split=2"), "{graph}");
}
