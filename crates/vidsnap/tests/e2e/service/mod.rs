//! `vidsnap serve` over HTTP: the real binary on port 0 with a temporary data directory, real
//! ffmpeg, a real SMTP listener (aiosmtpd), a real webhook receiver, and the official tus
//! clients (tuspy, tus-js-client).

mod audio;
mod clients;
mod cluster;
mod failures;
mod flow;
mod isolation;
mod jobs;
mod multipart;
mod playback;
mod requests;
mod s3_events;
mod sorting;
mod support;
mod uploads;
mod watch;
mod webhooks;
