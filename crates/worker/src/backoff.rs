//! Retry delays: exponential, capped, with jitter so that jobs failing together do not retry
//! together.

use std::{hash::BuildHasher, time::Duration};

use serde::{Deserialize, Serialize};

/// `base * factor^(attempt-1)`, capped, then scaled by a random factor in [0.5, 1.0].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Backoff {
    pub base_seconds: f64,
    pub factor: f64,
    pub max_seconds: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base_seconds: 5.0,
            factor: 2.0,
            max_seconds: 600.0,
        }
    }
}

impl Backoff {
    /// The delay before retrying after failed attempt number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30) as i32;
        let full = (self.base_seconds * self.factor.powi(exponent)).min(self.max_seconds);
        Duration::from_secs_f64((full * (0.5 + 0.5 * unit_random())).max(0.0))
    }
}

/// A number in [0, 1) from the standard library's randomly seeded hasher: plenty for jitter.
fn unit_random() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let bits = std::collections::hash_map::RandomState::new().hash_one(nanos);
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_is_capped_and_jittered() {
        let b = Backoff::default();
        for attempt in 1..=10 {
            let full = (5.0 * 2f64.powi(attempt as i32 - 1)).min(600.0);
            let d = b.delay(attempt).as_secs_f64();
            assert!(
                d >= full * 0.5 - 1e-9 && d <= full + 1e-9,
                "attempt {attempt}: {d}"
            );
        }
        let samples: std::collections::HashSet<u128> =
            (0..20).map(|_| b.delay(3).as_nanos()).collect();
        assert!(samples.len() > 1, "jitter varies");
    }
}
