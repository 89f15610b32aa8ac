//! The one place Vidsnap starts a process.
//!
//! Invariants: argv only (never a shell); stdin is closed unless the caller feeds it, and then it
//! is fed from a task of its own, within the deadline, so that no pipe can stall the others; the
//! child is killed when its handle is dropped (timeout, error, cancellation, panic); the child
//! runs in its own process group so a terminal's Ctrl-C reaches only us and we decide how to stop
//! it; at most `max_concurrent` children run at once; the last lines of stderr are kept for the
//! error.

use std::{
    collections::VecDeque,
    ffi::OsString,
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStdout, Command},
    sync::{OwnedSemaphorePermit, Semaphore},
    task::JoinHandle,
    time::Instant,
};

use crate::MediaError;

/// How many stderr lines an error message carries.
const STDERR_TAIL_LINES: usize = 12;

/// A program to run: what, with which arguments, for how long.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Program path or name looked up on `PATH`.
    pub program: OsString,
    pub args: Vec<OsString>,
    /// Bytes written to the child's stdin, which is then closed.
    pub stdin: Option<Vec<u8>>,
    /// Wall-clock limit for the whole run, feeding stdin included.
    pub timeout: Duration,
    /// What to do when the program cannot be started, for [`MediaError::ToolMissing`].
    pub remedy: &'static str,
    /// The child's working directory (ours when unset): where relative paths in its arguments
    /// point, e.g. files a filter graph writes, which are simpler to name than to escape.
    pub current_dir: Option<std::path::PathBuf>,
}

impl Invocation {
    pub fn new(program: impl Into<OsString>, remedy: &'static str, timeout: Duration) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            stdin: None,
            timeout,
            remedy,
            current_dir: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn current_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    pub fn stdin(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(bytes);
        self
    }

    fn program_name(&self) -> String {
        self.program.to_string_lossy().into_owned()
    }
}

/// Spawns processes under a concurrency bound. Cheap to clone; clones share the bound.
#[derive(Debug, Clone)]
pub struct ProcessRunner {
    permits: Arc<Semaphore>,
}

impl ProcessRunner {
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
        }
    }

    /// Runs to completion and returns stdout; a non-zero exit is [`MediaError::ToolFailed`]
    /// carrying the stderr tail. Use [`ProcessRunner::start`] to interpret failures yourself.
    pub async fn output(&self, invocation: Invocation) -> Result<Vec<u8>, MediaError> {
        let mut running = self.start(invocation).await?;
        let mut stdout = Vec::new();
        let reader = running.stdout.take().map(BufReader::into_inner);
        if let Some(mut reader) = reader {
            let read = reader.read_to_end(&mut stdout);
            running.within_deadline(read).await?.map_err(|e| {
                MediaError::Internal(format!("reading {} output: {e}", running.program))
            })?;
        }
        let finished = running.wait().await?;
        finished.success_or_error()?;
        Ok(stdout)
    }

    /// Starts a process whose stdout is read line by line while it runs.
    pub async fn start(&self, invocation: Invocation) -> Result<Running, MediaError> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| MediaError::Internal("process runner closed".into()))?;
        let program = invocation.program_name();
        #[allow(clippy::disallowed_methods)] // This is the one place allowed to.
        let mut command = Command::new(&invocation.program);
        command
            .args(&invocation.args)
            .stdin(if invocation.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("AV_LOG_FORCE_NOCOLOR", "1")
            .kill_on_drop(true)
            .process_group(0);
        if let Some(dir) = &invocation.current_dir {
            command.current_dir(dir);
        }
        die_with_parent(&mut command);
        let mut child = command.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                MediaError::ToolMissing {
                    program: program.clone(),
                    remedy: invocation.remedy,
                }
            }
            _ => MediaError::Internal(format!("starting {program}: {e}")),
        })?;
        tracing::debug!(%program, args = ?invocation.args, "started");

        let deadline = Instant::now() + invocation.timeout;
        // Fed from a task of its own: a child that reads its stdin late (or never) while it
        // fills stdout or stderr would otherwise block this write, and with it the readers of
        // those pipes, for ever. The caller's reads and waits are what the deadline bounds.
        let stdin_task = match (invocation.stdin, child.stdin.take()) {
            (Some(bytes), Some(mut stdin)) => Some(AbortOnDrop(tokio::spawn(async move {
                // A child that exits early closes its end; that surfaces as its exit status.
                let _ = tokio::time::timeout_at(deadline, stdin.write_all(&bytes)).await;
            }))),
            _ => None,
        };
        let tail = Arc::new(Mutex::new(Stderr::default()));
        let stderr_task = child.stderr.take().map(|stderr| {
            let tail = Arc::clone(&tail);
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
                    tail.lines += 1;
                    if tail.last.len() == STDERR_TAIL_LINES {
                        tail.last.pop_front();
                    }
                    tail.last.push_back(line);
                }
            })
        });
        let stdout = child.stdout.take().map(BufReader::new);
        Ok(Running {
            program,
            child,
            stdout,
            lines: None,
            stderr_task,
            tail,
            deadline,
            limit: invocation.timeout,
            _stdin_task: stdin_task,
            _permit: permit,
        })
    }
}

/// A started process. Dropping it kills the process.
#[derive(Debug)]
pub struct Running {
    program: String,
    // Field order matters: the child is dropped (killed) before anything else is released.
    child: Child,
    stdout: Option<BufReader<ChildStdout>>,
    lines: Option<Lines<BufReader<ChildStdout>>>,
    stderr_task: Option<JoinHandle<()>>,
    tail: Arc<Mutex<Stderr>>,
    deadline: Instant,
    limit: Duration,
    _stdin_task: Option<AbortOnDrop>,
    _permit: OwnedSemaphorePermit,
}

/// What a process wrote to stderr: how many lines, and the last of them.
#[derive(Debug, Default)]
struct Stderr {
    lines: usize,
    last: VecDeque<String>,
}

/// A task that must not outlive its process: the stdin writer holds the pipe open.
#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Running {
    /// The child's process id (`None` once it has been reaped).
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    async fn within_deadline<F: Future>(&self, future: F) -> Result<F::Output, MediaError> {
        tokio::time::timeout_at(self.deadline, future)
            .await
            .map_err(|_| MediaError::Timeout {
                program: self.program.clone(),
                limit: self.limit,
            })
    }

    /// The next stdout line, or `None` once stdout is closed.
    pub async fn next_line(&mut self) -> Result<Option<String>, MediaError> {
        if self.lines.is_none() {
            match self.stdout.take() {
                Some(stdout) => self.lines = Some(stdout.lines()),
                None => return Ok(None),
            }
        }
        let deadline = self.deadline;
        let limit = self.limit;
        let program = self.program.clone();
        let Some(lines) = self.lines.as_mut() else {
            return Ok(None);
        };
        tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .map_err(|_| MediaError::Timeout { program, limit })?
            .map_err(|e| MediaError::Internal(format!("reading output: {e}")))
    }

    /// Waits for the exit and collects the stderr tail.
    pub async fn wait(mut self) -> Result<Finished, MediaError> {
        let status = tokio::time::timeout_at(self.deadline, self.child.wait())
            .await
            .map_err(|_| MediaError::Timeout {
                program: self.program.clone(),
                limit: self.limit,
            })?
            .map_err(|e| MediaError::Internal(format!("waiting for {}: {e}", self.program)))?;
        if let Some(task) = self.stderr_task.take() {
            // stderr closes when the process exits; a grandchild holding it is bounded by the deadline.
            let _ = self.within_deadline(task).await;
        }
        let tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        Ok(Finished {
            program: self.program.clone(),
            status,
            stderr_tail: tail.last.iter().cloned().collect::<Vec<_>>().join("\n"),
            stderr_lines: tail.lines,
        })
    }
}

/// How a process ended.
#[derive(Debug)]
pub struct Finished {
    pub program: String,
    pub status: ExitStatus,
    /// The last lines the process wrote to stderr.
    pub stderr_tail: String,
    /// How many lines it wrote to stderr in all (with `-v error`, ffmpeg's count of errors).
    pub stderr_lines: usize,
}

impl Finished {
    pub fn success_or_error(self) -> Result<Self, MediaError> {
        if self.status.success() {
            Ok(self)
        } else {
            Err(self.into_error())
        }
    }

    pub fn into_error(self) -> MediaError {
        MediaError::ToolFailed {
            program: self.program,
            status: self.status.to_string(),
            stderr_tail: self.stderr_tail,
        }
    }
}

/// The child is killed when this process dies, even by SIGKILL (when `kill_on_drop` never runs):
/// an extraction must not outlive the worker that would have recorded its result. Linux only;
/// elsewhere the child is stopped by `kill_on_drop` alone.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    use rustix::process::{Pid, Signal, getppid, set_parent_process_death_signal};
    let parent = Pid::from_raw(i32::try_from(std::process::id()).unwrap_or(i32::MAX));
    // SAFETY: the closure runs in the child between fork and exec; it makes two system calls
    // (prctl, getppid), both async-signal-safe, and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            set_parent_process_death_signal(Some(Signal::KILL))?;
            // The parent may have died before the signal was armed.
            if getppid() != parent {
                return Err(std::io::Error::other("the parent process exited"));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_: &mut Command) {}

#[cfg(test)]
mod tests {
    use std::time::Instant as StdInstant;

    use super::*;

    /// More than a pipe buffer (64 KiB on Linux), so the child must read for the write to end.
    const LARGE: usize = 1 << 20;

    #[tokio::test]
    async fn a_child_that_never_reads_stdin_times_out() {
        let runner = ProcessRunner::new(1);
        let invocation = Invocation::new("sleep", "install coreutils", Duration::from_secs(1))
            .arg("60")
            .stdin(vec![b'x'; LARGE]);
        let started = StdInstant::now();
        let result = runner.output(invocation).await;
        assert!(
            matches!(result, Err(MediaError::Timeout { .. })),
            "{result:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn stdin_is_fed_while_stdout_is_read() {
        // `cat` writes as it reads: with stdin fed before stdout was read, both pipes filled up.
        let runner = ProcessRunner::new(1);
        let bytes: Vec<u8> = (0..LARGE).map(|i| (i % 251) as u8).collect();
        let invocation = Invocation::new("cat", "install coreutils", Duration::from_secs(20))
            .stdin(bytes.clone());
        let echoed = runner
            .output(invocation)
            .await
            .expect("cat echoes its stdin");
        assert!(echoed == bytes, "{} bytes back", echoed.len());
    }

    #[tokio::test]
    async fn a_missing_program_names_its_remedy() {
        let runner = ProcessRunner::new(1);
        let invocation = Invocation::new(
            "/nonexistent/vidsnap-tool",
            "do the thing",
            Duration::from_secs(5),
        );
        let error = runner.output(invocation).await.expect_err("missing");
        assert_eq!(
            error.to_string(),
            "/nonexistent/vidsnap-tool could not be started: do the thing"
        );
        assert!(error.is_retryable());
    }
}
