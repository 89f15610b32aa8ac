//! What a [`Transition`] does to a video, independent of the SQL dialect: each dialect loads the
//! video under its lock, applies this, and writes the result with its history entry.

use chrono::{DateTime, Utc};
use vidsnap_domain::{PortError, PortResult, Transition, Video};

/// Applies `change` to `video` at `at`, or refuses it (leaving `video` as it was) when the status
/// machine forbids it.
pub(crate) fn apply(video: &mut Video, change: &Transition, at: DateTime<Utc>) -> PortResult<()> {
    if !video.status.can_become(change.to) {
        return Err(PortError::InvalidTransition {
            from: video.status,
            to: change.to,
        });
    }
    if change.new_cycle {
        video.attempts = 0;
        video.cycle = video.cycle.saturating_add(1);
    }
    if change.start_attempt {
        video.attempts = video.attempts.saturating_add(1);
    }
    video.status = change.to;
    video.updated_at = at;
    if let Some(error) = &change.error {
        video.last_error = error.clone();
    }
    if let Some(probe) = &change.probe {
        video.probe = Some(probe.clone());
    }
    if let Some(outputs) = &change.outputs {
        video.outputs = Some(outputs.clone());
    }
    Ok(())
}
