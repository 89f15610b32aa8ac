//! The process runner: a child never outlives the process that started it, even when that
//! process is killed with SIGKILL (so its `kill_on_drop` never runs).

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use vidsnap_media::runner::{Invocation, ProcessRunner};

use crate::support::block_on;

/// The first argument that makes this executable a parent that starts `sleep 600` through the
/// runner, prints the child's pid and waits to be killed.
pub const PARENT_ARG: &str = "internal-runner-parent";

pub fn parent_main() -> std::process::ExitCode {
    block_on(async {
        let runner = ProcessRunner::new(1);
        let running = runner
            .start(
                Invocation::new("sleep", "install coreutils", Duration::from_secs(600)).arg("600"),
            )
            .await
            .expect("start sleep");
        println!("{}", running.id().expect("a running child has a pid"));
        std::future::pending::<()>().await;
    });
    std::process::ExitCode::SUCCESS
}

/// Whether `pid` is a live process (a zombie waiting for its reaper is dead).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the command name, which is in parentheses.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}

pub fn a_child_dies_with_its_sigkilled_parent() {
    let mut parent = Command::new(std::env::current_exe().expect("this executable"))
        .arg(PARENT_ARG)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the parent");
    let mut line = String::new();
    BufReader::new(parent.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the child's pid");
    let child: u32 = line.trim().parse().expect("a pid");
    assert!(alive(child), "sleep 600 is running");
    parent.kill().expect("SIGKILL the parent");
    parent.wait().expect("reap the parent");
    // Without the parent-death signal, `sleep 600` would live ten minutes.
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(child) {
        assert!(
            Instant::now() < deadline,
            "the child {child} outlived its parent"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
