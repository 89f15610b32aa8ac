//! vidsnap-notify against real things: an aiosmtpd SMTP listener (Maildir read back), an HTTP
//! receiver on port 0, and the SQLite repository. One test binary for the crate.
//!
//! Needs the project's Python tools: `scripts/test-services.sh` creates `.services/venv` with
//! aiosmtpd. Without it the SMTP tests fail, saying so.

// The support module starts aiosmtpd itself (a process per test, killed on drop); the media
// runner's process rules are for production code.
#![allow(clippy::disallowed_methods)]
// Tests fail by panicking.
#![allow(clippy::unwrap_used)]

mod deliver;
mod email;
mod support;
mod webhook;
