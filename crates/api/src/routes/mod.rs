//! One module per resource.

pub mod auth;
pub mod docs;
mod follow;
pub mod health;
pub mod jobs;
pub mod multipart;
pub mod playback;
pub mod qc;
pub mod session;
pub mod uploads;
pub mod videos;
pub mod webhooks;
