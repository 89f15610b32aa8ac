//! `vidsnap serve` over HTTP: the real binary on port 0 with a temporary data directory, real
//! ffmpeg, a real SMTP listener (aiosmtpd) and a real webhook receiver.

mod cluster;
mod failures;
mod flow;
mod isolation;
mod support;
mod webhooks;
