//! A progress bar with frames done/total and ETA on a terminal; nothing on a pipe or with `--json`.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vidsnap_media::{Progress, extract::FrameRecord};

#[derive(Debug)]
pub(crate) struct FramesBar {
    bar: ProgressBar,
}

impl FramesBar {
    /// A bar drawn on stderr only when it is a terminal and `enabled`.
    pub(crate) fn new(enabled: bool) -> Self {
        let target = if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40.cyan/blue} {pos}/{len} frames  {elapsed_precise}  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self { bar }
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for FramesBar {
    fn started(&self, total: usize) {
        self.bar.set_length(total as u64);
    }

    fn frame(&self, _record: &FrameRecord) {
        self.bar.inc(1);
    }
}
