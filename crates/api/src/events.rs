//! Video changes as they happen, for server-sent events. Every status change made in this process
//! (by the API or an embedded worker) is published here; SSE streams also re-read the database
//! periodically, so changes made by other processes arrive too, just later.

use tokio::sync::broadcast;
use vidsnap_domain::Video;

/// A broadcast of changed videos. Slow subscribers skip ahead (they re-read the video anyway).
#[derive(Debug, Clone)]
pub struct VideoEvents {
    sender: broadcast::Sender<Video>,
}

impl Default for VideoEvents {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(256).0,
        }
    }
}

impl VideoEvents {
    pub fn publish(&self, video: &Video) {
        // No subscribers is fine.
        let _ = self.sender.send(video.clone());
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Video> {
        self.sender.subscribe()
    }
}
