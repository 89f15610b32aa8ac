//! The parent's side of the extractor child (`vidsnap internal-extract`, see [`crate::extract`]):
//! starts it on a spec, hands back each frame as the child reports it, and on failure says whose
//! fault it was, the input's or the machine's.

use vidsnap_domain::ErrorCode;

use crate::{
    MediaEngine, MediaError,
    extract::{self, Event, ExtractSpec, FrameRecord, Job},
    runner::{Invocation, Running},
};

/// What to do when the extractor cannot be started. It is our own executable, not a setting, so
/// it can only have gone missing under a running process.
const RESTART_VIDSNAP: &str = "it is the vidsnap executable itself, run as the frame extractor \
     (`vidsnap internal-extract`), and it was moved, deleted or made non-executable after this \
     process started: restart vidsnap";

/// A running extractor child. Dropping it kills the child.
#[derive(Debug)]
pub(crate) struct ExtractorRun {
    child: Running,
    /// What the child said went wrong; the last report wins.
    reported: Option<(ErrorCode, String)>,
    /// Frames (or tiles) the job must report; `None` when the job finds out how many.
    expected: Option<u64>,
    received: u64,
}

impl MediaEngine {
    /// Starts the extractor on `spec`, with the time allowed for `seconds` of video.
    pub(crate) async fn start_extractor(
        &self,
        spec: &ExtractSpec,
        seconds: f64,
    ) -> Result<ExtractorRun, MediaError> {
        self.start_job(&Job::Frames(spec.clone()), seconds).await
    }

    /// Starts the extractor on any job, with the time allowed for `seconds` of video.
    pub(crate) async fn start_job(
        &self,
        job: &Job,
        seconds: f64,
    ) -> Result<ExtractorRun, MediaError> {
        let spec_json =
            serde_json::to_vec(job).map_err(|e| MediaError::Internal(format!("spec: {e}")))?;
        let invocation = Invocation::new(
            &self.extractor.program,
            RESTART_VIDSNAP,
            self.timeout_for(seconds),
        )
        .args(self.extractor.args.iter().cloned())
        .stdin(spec_json);
        Ok(ExtractorRun {
            child: self.runner.start(invocation).await?,
            reported: None,
            expected: job.expected(),
            received: 0,
        })
    }
}

impl ExtractorRun {
    /// The next frame on disk, or `None` once the child has said everything.
    pub(crate) async fn next_frame(&mut self) -> Result<Option<FrameRecord>, MediaError> {
        while let Some(event) = self.next_event().await? {
            if let Event::Frame(record) = event {
                return Ok(Some(record));
            }
        }
        Ok(None)
    }

    /// The next thing the child reports (its errors are kept for [`ExtractorRun::finish`]),
    /// or `None` once it has said everything.
    pub(crate) async fn next_event(&mut self) -> Result<Option<Event>, MediaError> {
        while let Some(line) = self.child.next_line().await? {
            match extract::parse_event(&line) {
                Ok(Event::Error { code, message }) => self.reported = Some((code, message)),
                Ok(event) => {
                    self.received += match &event {
                        Event::Frame(_) | Event::Candidate(_) => 1,
                        Event::Sprite(sprite) => sprite.tiles.len() as u64,
                        _ => 0,
                    };
                    return Ok(Some(event));
                }
                Err(_) => tracing::warn!(%line, "unexpected extractor output"),
            }
        }
        Ok(None)
    }

    /// Waits for the child's exit; succeeds only when every target got its frame (or tile).
    pub(crate) async fn finish(self) -> Result<(), MediaError> {
        let finished = self.child.wait().await?;
        if let Some((code, message)) = self.reported {
            // The child's transient codes (a full disk, a bug) are about this machine, not the
            // input; they must not read as a verdict on the video.
            return Err(if code.is_transient() {
                MediaError::Internal(message)
            } else {
                MediaError::rejected(code, message)
            });
        }
        if !finished.status.success() {
            // Killed by a signal or crashed inside a decoder: the file is hostile or broken.
            return Err(MediaError::rejected(
                ErrorCode::CorruptInput,
                format!(
                    "decoding failed ({}): {}",
                    finished.status,
                    finished.stderr_tail.lines().last().unwrap_or("no message")
                ),
            ));
        }
        if let Some(expected) = self.expected
            && self.received != expected
        {
            return Err(MediaError::Internal(format!(
                "extractor wrote {} of {expected} frames",
                self.received
            )));
        }
        Ok(())
    }
}
