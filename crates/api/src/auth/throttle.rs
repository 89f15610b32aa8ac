//! Failed logins counted per account and per client address, so passwords cannot be guessed at
//! the speed of the server: past the limit, logins are refused (429 with `Retry-After`) until the
//! window ends, before any password is checked.
//!
//! Counts live in this process's memory: with several API processes an attacker gets each
//! process's allowance (still a few dozen guesses per window, not millions). Behind a proxy every
//! client has the proxy's address: raise `per_address` or set it to 0 there.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// How many failed logins are allowed, per what, per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginLimits {
    /// Failed logins of one account (e-mail) per window; 0 turns the limit off.
    pub per_account: u32,
    /// Failed logins from one client address per window; 0 turns the limit off.
    pub per_address: u32,
    pub window_seconds: u64,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_account: 10,
            per_address: 100,
            window_seconds: 900,
        }
    }
}

/// Beyond this many tracked keys, expired windows are dropped at the next failure: memory stays
/// bounded by the failures of one window.
const PRUNE_ABOVE: usize = 10_000;

/// The failed-login counts.
#[derive(Debug)]
pub struct LoginThrottle {
    limits: LoginLimits,
    failures: Mutex<HashMap<Key, Window>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

impl LoginThrottle {
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            limits,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.limits.window_seconds.max(1))
    }

    fn keys(&self, account: &str, address: Option<IpAddr>) -> Vec<(Key, u32)> {
        let mut keys = vec![(Key::Account(account.to_owned()), self.limits.per_account)];
        if let Some(address) = address {
            keys.push((Key::Address(address), self.limits.per_address));
        }
        keys.retain(|(_, limit)| *limit > 0);
        keys
    }

    /// `Err(wait)` when the account or the address used up its failures: try again after `wait`.
    pub fn check(
        &self,
        account: &str,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Duration> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let window = self.window();
        let mut wait = None;
        for (key, limit) in self.keys(account, address) {
            if let Some(w) = failures.get(&key)
                && now.duration_since(w.started) < window
                && w.failures >= limit
            {
                let left = window.saturating_sub(now.duration_since(w.started));
                wait = Some(wait.map_or(left, |other: Duration| other.max(left)));
            }
        }
        wait.map_or(Ok(()), Err)
    }

    /// A wrong password (or an unknown account).
    pub fn failed(&self, account: &str, address: Option<IpAddr>, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let window = self.window();
        if failures.len() > PRUNE_ABOVE {
            failures.retain(|_, w| now.duration_since(w.started) < window);
        }
        for (key, _) in self.keys(account, address) {
            let entry = failures.entry(key).or_insert(Window {
                started: now,
                failures: 0,
            });
            if now.duration_since(entry.started) >= window {
                *entry = Window {
                    started: now,
                    failures: 0,
                };
            }
            entry.failures += 1;
        }
    }

    /// A successful login forgets the account's failures (not the address's).
    pub fn succeeded(&self, account: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(&Key::Account(account.to_owned()));
    }
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(LoginLimits::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(per_account: u32, per_address: u32) -> LoginThrottle {
        LoginThrottle::new(LoginLimits {
            per_account,
            per_address,
            window_seconds: 60,
        })
    }

    #[test]
    fn an_account_is_refused_after_its_failures_until_the_window_ends() {
        let throttle = throttle(3, 0);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(throttle.check("ana", None, start).is_ok());
            throttle.failed("ana", None, start);
        }
        let wait = throttle.check("ana", None, start).expect_err("refused");
        assert_eq!(wait, Duration::from_secs(60));
        assert!(throttle.check("bob", None, start).is_ok(), "others are not");
        let later = start + Duration::from_secs(61);
        assert!(throttle.check("ana", None, later).is_ok(), "a new window");
    }

    #[test]
    fn an_address_is_refused_across_accounts() {
        let throttle = throttle(0, 2);
        let address: IpAddr = "192.0.2.7".parse().expect("an address");
        let now = Instant::now();
        throttle.failed("a", Some(address), now);
        throttle.failed("b", Some(address), now);
        assert!(throttle.check("c", Some(address), now).is_err());
        assert!(throttle.check("c", None, now).is_ok());
    }

    #[test]
    fn a_success_forgets_the_accounts_failures() {
        let throttle = throttle(2, 0);
        let now = Instant::now();
        throttle.failed("ana", None, now);
        throttle.succeeded("ana");
        throttle.failed("ana", None, now);
        assert!(throttle.check("ana", None, now).is_ok());
    }
}
