//! Delivers Vidsnap's notifications: an e-mail to the video's owner and a signed post to each of
//! their webhooks when a video succeeds or dies.
//!
//! # Layout
//! - [`deliver`]: [`Deliverer`], the loop that claims due notifications from the
//!   [`Repository`](vidsnap_domain::Repository), sends them and records each attempt with
//!   exponential backoff and jitter; [`DeliveryConfig`].
//! - [`email`]: [`Mailer`] (SMTP through lettre, or log-only when SMTP is not configured) and
//!   [`SmtpConfig`].
//! - [`render`](mod@render): the e-mails' subject, text and HTML from the event payload; every
//!   user-controlled value is HTML-escaped.
//! - [`webhook`]: [`WebhookSender`], and [`sign`] / [`verify`] for the `Vidsnap-Signature`
//!   header (the module doc is the receivers' guide).
//! - `payload`: the tolerant reading of the event payload the e-mails use.
//! - `error`: [`NotifyError`] and [`error_text`], the one-line form stored per attempt.
//!
//! Delivery is at-least-once: a notification whose attempt was not recorded (crash, lost lease)
//! is sent again, with the same `Vidsnap-Delivery` id.

pub mod deliver;
pub mod email;
mod error;
mod payload;
pub mod render;
pub mod webhook;

pub use deliver::{Backoff, Deliverer, DeliveryConfig};
pub use email::{Mailer, SmtpConfig, SmtpTls};
pub use error::{NotifyError, error_text};
pub use render::{Email, escape_html, render};
pub use webhook::{VerifyError, WebhookConfig, WebhookError, WebhookSender, sign, verify};
