//! Time as every dialect stores it: UTC at microsecond precision.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};

/// The current time at the precision stored, so a value written and read back compares equal.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// `at + span`, saturating at the latest representable time (a lease "for ever").
pub(crate) fn after(at: DateTime<Utc>, span: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(span)
        .ok()
        .and_then(|span| at.checked_add_signed(span))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}
