//! End-to-end tests of the `vidsnap` binary on clips generated with real ffmpeg: the command line
//! (`probe`, `frames`) and the service (`serve`, over HTTP, with a real SMTP listener).
//!
//! One test binary (modules below) so the workspace links once. Clips are generated on first use
//! into a per-run directory (`support::clip`); every test gets its own output and scratch
//! directories so cleanup can be asserted.

// Tests drive ffmpeg, ffprobe and the binary directly, as a user would.
#![allow(clippy::disallowed_methods)]

mod call_recording;
mod cleanup;
mod config;
mod errors;
mod frames;
mod package;
mod probe;
mod qc_cli;
mod run;
mod service;
mod support;
