//! The audio/video operations' clips, whose sound is known by construction (a 440 Hz call, an
//! 880 Hz recording, a sawtooth whose samples count themselves), and how their outputs are
//! measured: frequencies from zero crossings of the decoded PCM, stream facts and packet hashes
//! from ffprobe and ffmpeg, independently of the engine.

use std::{path::Path, process::Command};

use serde_json::Value;
use vidsnap_domain::Operation;
use vidsnap_media::{MediaError, OpInput, OpOutput, Progress};

use crate::support::{Sandbox, block_on};

/// Frames per second of the recordings.
pub const RECORDING_FPS: f64 = 25.0;
/// Seconds of the recordings.
pub const RECORDING_SECONDS: f64 = 20.0;
/// The call's tone and the recording's.
pub const CALL_HZ: f64 = 440.0;
pub const RECORDING_HZ: f64 = 880.0;
/// The rate PCM is decoded at for measuring.
pub const MEASURE_RATE: u32 = 48_000;

fn lavfi(source: &str) -> Vec<String> {
    ["-f", "lavfi", "-i", source]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| (*a).to_owned()).collect()
}

/// A sine of `hz` at `rate` on `channels`, `seconds` long.
fn sine(hz: f64, rate: u32, channels: u32, seconds: f64) -> Vec<String> {
    let wave = format!("0.5*sin(2*PI*{hz}*t)");
    let waves = vec![wave; channels as usize].join("|");
    lavfi(&format!("aevalsrc={waves}:s={rate}:d={seconds}"))
}

/// The recording's picture, an input.
fn picture(seconds: f64) -> Vec<String> {
    lavfi(&format!(
        "testsrc=size=160x120:rate={RECORDING_FPS}:duration={seconds}"
    ))
}

/// ffmpeg arguments (before the output path) for the clips of these tests, by name.
pub fn recipe(name: &str) -> Option<Vec<String>> {
    let aac = args(&["-c:a", "aac", "-b:a", "128k"]);
    // H.264 with a keyframe every 2 s.
    let h264 = args(&["-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "50"]);
    let pcm = args(&["-c:a", "pcm_s16le"]);
    let recipe = match name {
        // 20 s, 25 fps, with an 880 Hz tone at 48 kHz stereo.
        "av-recording.mp4" => [
            picture(RECORDING_SECONDS),
            sine(RECORDING_HZ, 48_000, 2, RECORDING_SECONDS),
            args(&["-map", "0:v", "-map", "1:a"]),
            h264.clone(),
            aac.clone(),
        ]
        .concat(),
        // The same picture without sound.
        "av-recording-silent.mp4" => [picture(RECORDING_SECONDS), h264.clone()].concat(),
        // 3 s of the picture with the 880 Hz tone: a part of a video to join.
        "av-clip-3s.mp4" => [
            picture(3.0),
            sine(RECORDING_HZ, 48_000, 2, 3.0),
            args(&["-map", "0:v", "-map", "1:a"]),
            h264,
            aac.clone(),
        ]
        .concat(),
        // A call centre's recording: 440 Hz, 8 kHz mono WAV, 15 s (longer than the call).
        "av-call.wav" => [sine(CALL_HZ, 8_000, 1, 15.0), pcm.clone()].concat(),
        // A call recording shorter than the call: 6 s.
        "av-call-short.wav" => [sine(CALL_HZ, 8_000, 1, 6.0), pcm.clone()].concat(),
        // Three parts to join, every one different: rate, channels, codec.
        "av-part-8k-mono.wav" => [sine(CALL_HZ, 8_000, 1, 1.0), pcm.clone()].concat(),
        "av-part-44k-stereo.mp3" => [
            sine(RECORDING_HZ, 44_100, 2, 1.5),
            args(&["-c:a", "libmp3lame", "-b:a", "128k"]),
        ]
        .concat(),
        "av-part-48k-stereo.m4a" => [sine(CALL_HZ, 48_000, 2, 0.5), aac.clone()].concat(),
        // 4 s at 48 kHz whose sample n is (n mod 256 - 128) / 256: exact in 16 bits, so a
        // decoded sample says which one it was (modulo 256).
        "av-sawtooth.wav" => [
            lavfi("aevalsrc=(mod(n\\,256)-128)/256:s=48000:d=4"),
            pcm.clone(),
        ]
        .concat(),
        // A 1 s 440 Hz AAC track, to put under a 2 s picture.
        "av-tone-1s.m4a" => [sine(CALL_HZ, 48_000, 2, 1.0), aac].concat(),
        // The same as WAV: not AAC, so mux encodes it.
        "av-tone-1s.wav" => [sine(CALL_HZ, 48_000, 2, 1.0), pcm].concat(),
        _ => return None,
    };
    Some(recipe)
}

/// The file's first audio stream decoded to mono 16-bit PCM at [`MEASURE_RATE`].
pub fn pcm(path: &Path) -> Vec<i16> {
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-ac", "1", "-ar"])
        .arg(MEASURE_RATE.to_string())
        .args(["-f", "s16le", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(output.status.success(), "decoding {}", path.display());
    output
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// What a window of sound is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sound {
    Silence,
    /// A tone of about this many hertz (zero crossings / 2 / seconds).
    Tone(f64),
}

/// Each `seconds`-long window of `samples` (at [`MEASURE_RATE`]): silence below -40 dBFS RMS,
/// else the frequency its zero crossings give.
pub fn windows(samples: &[i16], seconds: f64) -> Vec<Sound> {
    let size = (seconds * f64::from(MEASURE_RATE)).round() as usize;
    samples
        .chunks_exact(size)
        .map(|window| {
            let power = window
                .iter()
                .map(|s| (f64::from(*s) / 32768.0).powi(2))
                .sum::<f64>()
                / size as f64;
            if power.sqrt() < 0.01 {
                return Sound::Silence;
            }
            let crossings = window
                .windows(2)
                .filter(|pair| (pair[0] < 0) != (pair[1] < 0))
                .count();
            Sound::Tone(crossings as f64 / 2.0 / seconds)
        })
        .collect()
}

/// Whether a window is a tone within 10% of `hz`.
pub fn is_tone(sound: Sound, hz: f64) -> bool {
    matches!(sound, Sound::Tone(f) if (f - hz).abs() <= hz * 0.1)
}

/// Where, in seconds, the sound turns into `hz` for good: the start of the first 5 ms window
/// after `after` from which 20 windows in a row (100 ms) read above the middle of the two
/// tones. Accurate to a window.
pub fn join_time(samples: &[i16], after: f64, low_hz: f64, high_hz: f64) -> f64 {
    let step = 0.005;
    let sounds = windows(samples, step);
    let middle = (low_hz + high_hz) / 2.0;
    let high = |s: &Sound| matches!(s, Sound::Tone(f) if *f > middle);
    let first = (after / step) as usize;
    (first..sounds.len().saturating_sub(20))
        .find(|&i| sounds[i..i + 20].iter().all(high))
        .map(|i| i as f64 * step)
        .unwrap_or_else(|| panic!("no {high_hz} Hz after {after} s"))
}

/// ffprobe's JSON (format, streams with their extradata hash) for `path`.
pub fn ffprobe(path: &Path) -> Value {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_format"])
        .args(["-show_streams", "-show_data_hash", "md5"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(output.status.success(), "probing {}", path.display());
    serde_json::from_slice(&output.stdout).expect("ffprobe JSON")
}

/// The first stream of a kind (`video`, `audio`) in ffprobe's JSON.
pub fn stream<'a>(probe: &'a Value, kind: &str) -> &'a Value {
    probe["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["codec_type"] == kind))
        .unwrap_or_else(|| panic!("no {kind} stream in {probe:#}"))
}

/// How many streams of a kind there are.
pub fn stream_count(probe: &Value, kind: &str) -> usize {
    probe["streams"]
        .as_array()
        .map_or(0, |s| s.iter().filter(|s| s["codec_type"] == kind).count())
}

/// A number ffprobe wrote as a string.
pub fn number(value: &Value) -> f64 {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| value.as_f64())
        .unwrap_or_else(|| panic!("a number, got {value}"))
}

/// The codec parameters a stream copy must keep, from ffprobe's stream JSON.
pub fn codec_parameters(stream: &Value) -> Value {
    let keys = [
        "codec_name",
        "profile",
        "level",
        "width",
        "height",
        "coded_width",
        "coded_height",
        "pix_fmt",
        "has_b_frames",
        "field_order",
        "color_range",
        "r_frame_rate",
        "avg_frame_rate",
        "extradata_hash",
        "sample_rate",
        "channels",
        "channel_layout",
    ];
    keys.iter()
        .filter(|k| !stream[**k].is_null())
        .map(|k| ((*k).to_owned(), stream[*k].clone()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The packets of the file's first stream of a kind (`v`, `a`): their count, and one hash of
/// them all (ffmpeg's `streamhash` over a stream copy), equal only for the same packets.
pub fn packets(path: &Path, kind: &str) -> (u64, String) {
    let count = Command::new("ffprobe")
        .args(["-v", "error", "-count_packets", "-select_streams"])
        .arg(format!("{kind}:0"))
        .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let count = String::from_utf8_lossy(&count.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("a packet count for {}", path.display()));
    let hash = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", &format!("0:{kind}:0"), "-c", "copy"])
        .args(["-f", "streamhash", "-hash", "md5", "-"])
        .output()
        .expect("ffmpeg runs");
    let hash = String::from_utf8_lossy(&hash.stdout).trim().to_owned();
    let hash = hash.rsplit('=').next().unwrap_or_default().to_owned();
    (count, hash)
}

/// Runs `op` on several inputs with the sandbox's engine, into `work/`.
pub fn run(
    sandbox: &Sandbox,
    op: &Operation,
    inputs: &[OpInput],
    progress: &dyn Progress,
) -> Result<OpOutput, MediaError> {
    block_on(sandbox.engine().run(op, inputs, &sandbox.work(), progress))
}

/// `op` parsed from its JSON options.
pub fn op(name: &str, options: Value) -> Operation {
    Operation::parse(name, &options, "options").expect("valid options")
}

/// The inputs are as they were copied in, the work directory holds only `made`, nothing is
/// left in the engine's scratch directory.
pub fn assert_only(sandbox: &Sandbox, inputs: &[&str], made: &[&str]) {
    let mut inputs: Vec<String> = inputs.iter().map(|s| (*s).to_owned()).collect();
    inputs.sort();
    inputs.dedup();
    assert_eq!(sandbox.files("input"), inputs, "input/ changed");
    assert_eq!(sandbox.files("work"), made, "work/");
    assert_eq!(
        sandbox.files("scratch"),
        Vec::<String>::new(),
        "scratch left"
    );
}

/// Every window of `seconds` from `from` to `to` (seconds) is `expected`.
pub fn assert_sound(samples: &[i16], from: f64, to: f64, expected: &str) {
    let step = 0.1;
    let sounds = windows(samples, step);
    let first = (from / step).round() as usize;
    let last = ((to / step).round() as usize).min(sounds.len());
    assert!(
        first < last,
        "no windows from {from} to {to} in {} s",
        sounds.len() as f64 * step
    );
    for (i, sound) in sounds.iter().enumerate().take(last).skip(first) {
        let ok = match expected {
            "silence" => *sound == Sound::Silence,
            "call" => is_tone(*sound, CALL_HZ),
            "recording" => is_tone(*sound, RECORDING_HZ),
            other => panic!("no sound {other}"),
        };
        assert!(ok, "at {:.1} s: {sound:?}, not {expected}", i as f64 * step);
    }
}

/// The indices of the keyframes of the file's first video stream at `fps`, from its packets.
pub fn keyframes(path: &Path, fps: f64) -> Vec<usize> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=pts_time,flags", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let mut keyframes: Vec<usize> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (time, flags) = line.split_once(',')?;
            let time: f64 = time.parse().ok()?;
            flags.contains('K').then(|| (time * fps).round() as usize)
        })
        .collect();
    keyframes.sort_unstable();
    keyframes
}
