//! The delivery loop: claim a due notification, send it through its channel, record the
//! attempt with the next retry time (exponential backoff with jitter) or give up.

use std::{fmt, sync::Arc, time::Duration};

use chrono::Utc;
use serde::Deserialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use vidsnap_domain::{Channel, DeliveryAttempt, Notification, PortError, Repository};

use crate::{Mailer, NotifyError, WebhookSender, error_text};

/// The `[notifications]` settings: retries and pacing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Attempts per notification before it is marked `failed` (a user may then ask for a
    /// redelivery). With the default backoff, 8 attempts span about four minutes.
    pub max_attempts: u32,
    /// Delay after the first failed attempt, in seconds.
    pub backoff_base_seconds: f64,
    /// Each further failure multiplies the delay by this.
    pub backoff_factor: f64,
    /// The delay never exceeds this many seconds.
    pub backoff_cap_seconds: f64,
    /// How long a claimed notification stays ours, in seconds. Longer than any SMTP or webhook
    /// timeout, so a slow attempt is not claimed twice; short enough that a crashed process's
    /// claims come back soon.
    pub lease_seconds: u64,
    /// Longest idle wait between claims, in seconds, when the waker is not poked: how soon a
    /// due retry, or a notification created by another process, is picked up.
    pub poll_interval_seconds: f64,
    /// On shutdown, how long an in-flight attempt may take to finish and be recorded before it
    /// is abandoned (its lease then runs out and it is sent again: at-least-once).
    pub shutdown_grace_seconds: f64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            backoff_base_seconds: 2.0,
            backoff_factor: 2.0,
            backoff_cap_seconds: 600.0,
            lease_seconds: 60,
            poll_interval_seconds: 1.0,
            shutdown_grace_seconds: 15.0,
        }
    }
}

impl DeliveryConfig {
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base: seconds(self.backoff_base_seconds),
            factor: if self.backoff_factor.is_finite() {
                self.backoff_factor.max(1.0)
            } else {
                1.0
            },
            cap: seconds(self.backoff_cap_seconds),
        }
    }
}

/// A non-negative, finite number of seconds as a `Duration` (anything else is zero).
fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(Duration::ZERO)
}

/// Exponential backoff: `base * factor^(attempt - 1)`, at most `cap`, with jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    pub factor: f64,
    pub cap: Duration,
}

impl Backoff {
    /// The delay after failed attempt number `attempt` (1 for the first), without jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.base.as_secs_f64() * self.factor.powi(exponent);
        Duration::try_from_secs_f64(secs)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// The delay with "equal jitter": uniform in `[delay / 2, delay]`, so receivers that failed
    /// together do not all get retried in the same second, yet the backoff still grows.
    pub fn jittered(&self, attempt: u32) -> Duration {
        let delay = self.delay(attempt);
        delay / 2 + delay.mul_f64(fastrand::f64() / 2.0)
    }
}

/// Delivers notifications until shut down. See [`Deliverer::run`].
pub struct Deliverer {
    repo: Arc<dyn Repository>,
    mailer: Mailer,
    webhooks: WebhookSender,
    worker_id: String,
    max_attempts: u32,
    backoff: Backoff,
    lease: Duration,
    poll_interval: Duration,
    shutdown_grace: Duration,
    waker: Arc<Notify>,
}

impl fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deliverer")
            .field("worker_id", &self.worker_id)
            .field("mailer", &self.mailer)
            .field("webhooks", &self.webhooks)
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("lease", &self.lease)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

/// How one attempt ended, before it is recorded.
struct Outcome {
    status_code: Option<u16>,
    error: Option<String>,
    /// Another attempt could succeed.
    retryable: bool,
}

impl Deliverer {
    pub fn new(
        repo: Arc<dyn Repository>,
        mailer: Mailer,
        webhooks: WebhookSender,
        config: &DeliveryConfig,
    ) -> Self {
        Self {
            repo,
            mailer,
            webhooks,
            worker_id: format!("notify-{}", uuid::Uuid::new_v4()),
            max_attempts: config.max_attempts.max(1),
            backoff: config.backoff(),
            lease: Duration::from_secs(config.lease_seconds.max(1)),
            poll_interval: seconds(config.poll_interval_seconds).max(Duration::from_millis(10)),
            shutdown_grace: seconds(config.shutdown_grace_seconds),
            waker: Arc::new(Notify::new()),
        }
    }

    /// Names this deliverer in claims (default: `notify-<random uuid>`).
    pub fn with_worker_id(mut self, worker_id: impl Into<String>) -> Self {
        self.worker_id = worker_id.into();
        self
    }

    /// A handle to poke (`notify_one`) after creating notifications in this process, so they
    /// go out now instead of at the next poll. A poke while a delivery runs is not lost.
    pub fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.waker)
    }

    /// Claims one due notification, attempts it and records the outcome. `Ok(false)` when
    /// nothing was due. A failed attempt is not an error (it is recorded); an error means the
    /// repository could not claim or record.
    pub async fn deliver_once(&self) -> Result<bool, NotifyError> {
        let lease_until = Utc::now() + self.lease;
        let Some(notification) = self
            .repo
            .claim_notification(&self.worker_id, lease_until)
            .await?
        else {
            return Ok(false);
        };
        let outcome = self.attempt(&notification).await;
        // `attempts` counts the attempts recorded before this one.
        let attempt_number = notification.attempts.saturating_add(1);
        let channel = channel_name(&notification.channel);
        let attempt = match outcome.error {
            None => {
                tracing::info!(notification = %notification.id, channel, attempt = attempt_number, "notification delivered");
                metrics::counter!("vidsnap_notifications_total", "channel" => channel, "outcome" => "delivered").increment(1);
                DeliveryAttempt {
                    ok: true,
                    status_code: outcome.status_code,
                    error: None,
                    retry_at: None,
                }
            }
            Some(error) => {
                let retry_at = (outcome.retryable && attempt_number < self.max_attempts)
                    .then(|| Utc::now() + self.backoff.jittered(attempt_number));
                let verdict = if retry_at.is_some() {
                    "retry"
                } else {
                    "failed"
                };
                tracing::warn!(
                    notification = %notification.id, channel, attempt = attempt_number,
                    status_code = outcome.status_code, retry_at = ?retry_at, %error,
                    "notification attempt failed"
                );
                metrics::counter!("vidsnap_notifications_total", "channel" => channel, "outcome" => verdict).increment(1);
                DeliveryAttempt {
                    ok: false,
                    status_code: outcome.status_code,
                    error: Some(error),
                    retry_at,
                }
            }
        };
        self.repo.record_delivery(notification.id, &attempt).await?;
        Ok(true)
    }

    async fn attempt(&self, notification: &Notification) -> Outcome {
        match &notification.channel {
            Channel::Email { to } => match self.mailer.send_notification(to, notification).await {
                Ok(()) => Outcome {
                    status_code: None,
                    error: None,
                    retryable: false,
                },
                Err(e) => Outcome {
                    status_code: None,
                    error: Some(error_text(&e)),
                    retryable: e.is_retryable(),
                },
            },
            Channel::Webhook { webhook, url } => {
                // The secret is not part of the notification: read it at send time.
                let secret = match self.repo.webhook(None, *webhook).await {
                    Ok(hook) => hook.secret,
                    Err(PortError::NotFound) => {
                        return Outcome {
                            status_code: None,
                            error: Some("the webhook was deleted".into()),
                            retryable: false,
                        };
                    }
                    Err(e) => {
                        return Outcome {
                            status_code: None,
                            error: Some(format!("reading the webhook: {}", error_text(&e))),
                            retryable: true,
                        };
                    }
                };
                match self
                    .webhooks
                    .send(notification, url, secret.as_bytes())
                    .await
                {
                    Ok(status) => Outcome {
                        status_code: Some(status),
                        error: None,
                        retryable: false,
                    },
                    Err(e) => Outcome {
                        status_code: e.status_code(),
                        error: Some(error_text(&e)),
                        retryable: true,
                    },
                }
            }
        }
    }

    /// Delivers until `shutdown` is cancelled: claims while anything is due, otherwise waits
    /// for the [waker](Self::waker) or the poll interval, never spinning. On shutdown, stops
    /// claiming at once; an attempt in flight gets the shutdown grace to finish and be recorded.
    /// Repository errors are logged and retried after the poll interval.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(worker = %self.worker_id, "notification deliverer started");
        while !shutdown.is_cancelled() {
            let work = self.deliver_once();
            tokio::pin!(work);
            let result = tokio::select! {
                result = &mut work => result,
                () = shutdown.cancelled() => {
                    match tokio::time::timeout(self.shutdown_grace, &mut work).await {
                        Ok(Err(e)) => tracing::warn!(error = %error_text(&e), "notification delivery"),
                        Ok(Ok(_)) => {}
                        Err(_) => tracing::warn!(
                            "abandoned an in-flight notification at shutdown; it is sent again when its lease ends"
                        ),
                    }
                    break;
                }
            };
            let idle = match result {
                Ok(handled) => !handled,
                Err(e) => {
                    tracing::warn!(error = %error_text(&e), "notification delivery");
                    true
                }
            };
            if idle {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = self.waker.notified() => {}
                    () = tokio::time::sleep(self.poll_interval) => {}
                }
            }
        }
        tracing::info!(worker = %self.worker_id, "notification deliverer stopped");
    }
}

fn channel_name(channel: &Channel) -> &'static str {
    match channel {
        Channel::Email { .. } => "email",
        Channel::Webhook { .. } => "webhook",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_the_cap() {
        let backoff = DeliveryConfig::default().backoff();
        let secs: Vec<u64> = (1..=10).map(|n| backoff.delay(n).as_secs()).collect();
        assert_eq!(secs, [2, 4, 8, 16, 32, 64, 128, 256, 512, 600]);
        assert_eq!(backoff.delay(1_000), Duration::from_secs(600));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(600));
    }

    #[test]
    fn jitter_stays_between_half_and_the_whole_delay() {
        let backoff = DeliveryConfig::default().backoff();
        for attempt in 1..=12 {
            let delay = backoff.delay(attempt);
            for _ in 0..50 {
                let jittered = backoff.jittered(attempt);
                assert!(
                    jittered >= delay / 2 && jittered <= delay,
                    "{jittered:?} vs {delay:?}"
                );
            }
        }
    }

    #[test]
    fn nonsense_settings_are_tamed() {
        let config = DeliveryConfig {
            backoff_base_seconds: -1.0,
            backoff_factor: f64::NAN,
            backoff_cap_seconds: f64::INFINITY,
            ..DeliveryConfig::default()
        };
        let backoff = config.backoff();
        assert_eq!(backoff.delay(5), Duration::ZERO);
        assert!((backoff.factor - 1.0).abs() < f64::EPSILON);
    }
}
