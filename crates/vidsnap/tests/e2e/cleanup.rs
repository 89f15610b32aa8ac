//! Nothing is left behind: scratch directories and partial outputs are removed on success, on
//! error, on Ctrl-C and on panic; a terminal shows progress and a pipe shows none.

#![allow(clippy::unwrap_used)]

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use vidsnap_domain::{FrameInterval, FrameMode, ImageFormat, Quality};
use vidsnap_media::{
    ExtractorCommand, FramesRequest, MediaConfig, MediaEngine, Progress, extract::FrameRecord,
};

use crate::support::{Sandbox, clip};

/// Polls `condition` until it holds or `limit` passes; no fixed sleeps as synchronisation.
fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}

#[test]
fn ctrl_c_mid_run_removes_everything() {
    let sandbox = Sandbox::new();
    let mut child = sandbox
        .vidsnap()
        .arg("frames")
        .arg(clip("long-png.mp4"))
        .args(["--every", "1s", "--format", "png", "--out"])
        .arg(sandbox.out())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Mid-run: the scratch directory exists and holds the first frame.
    let started = wait_until(Duration::from_secs(60), || {
        std::fs::read_dir(sandbox.scratch())
            .unwrap()
            .filter_map(Result::ok)
            .any(|dir| std::fs::read_dir(dir.path()).is_ok_and(|mut d| d.next().is_some()))
    });
    assert!(started, "extraction never started");
    assert!(
        Sandbox::list(&sandbox.out())
            .iter()
            .any(|n| n.ends_with(".partial")),
        "a partial zip exists mid-run"
    );
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    sandbox.assert_scratch_empty();
    assert_eq!(Sandbox::list(&sandbox.out()), Vec::<String>::new());
}

struct PanicAfter(usize);

impl Progress for PanicAfter {
    fn frame(&self, record: &FrameRecord) {
        if record.index + 1 == self.0 {
            panic!("observer panics on purpose");
        }
    }
}

#[test]
fn panic_mid_run_removes_everything() {
    let sandbox = Sandbox::new();
    let config = MediaConfig {
        temp_dir: Some(sandbox.scratch()),
        ..MediaConfig::default()
    };
    let engine = MediaEngine::new(
        config,
        ExtractorCommand {
            program: env!("CARGO_BIN_EXE_vidsnap").into(),
            args: vec!["internal-extract".into()],
        },
    );
    let request = FramesRequest {
        input: clip("cfr61.mp4"),
        out_dir: sandbox.out(),
        interval: FrameInterval::from_seconds(5.0).unwrap(),
        mode: FrameMode::Exact,
        format: ImageFormat::Jpg,
        quality: Quality::DEFAULT,
        max_width: None,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome = runtime.block_on(async move {
        tokio::spawn(async move { engine.extract_frames(&request, &PanicAfter(3)).await }).await
    });
    assert!(outcome.unwrap_err().is_panic());
    drop(runtime);
    sandbox.assert_scratch_empty();
    assert_eq!(Sandbox::list(&sandbox.out()), Vec::<String>::new());
}

#[test]
fn progress_on_a_terminal_and_silence_on_a_pipe() {
    let sandbox = Sandbox::new();
    let video = clip("cfr61.mp4");
    let piped = sandbox
        .vidsnap()
        .arg("frames")
        .arg(&video)
        .arg("--out")
        .arg(sandbox.out())
        .output()
        .unwrap();
    assert!(piped.status.success());
    assert_eq!(
        String::from_utf8_lossy(&piped.stderr),
        "",
        "nothing on a pipe"
    );

    // `script` gives the command a pseudo-terminal, as a person's shell would.
    let command = format!(
        "{} frames '{}' --out '{}'",
        env!("CARGO_BIN_EXE_vidsnap"),
        video.display(),
        sandbox.out().display()
    );
    let tty = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("VIDSNAP_MEDIA__TEMP_DIR", sandbox.scratch())
        .output()
        .expect("`script` (util-linux) runs the command under a pseudo-terminal");
    assert!(tty.status.success());
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(
        screen.contains("/7 frames"),
        "progress bar with done/total:\n{screen}"
    );
    assert!(screen.contains("ETA"), "{screen}");
}
