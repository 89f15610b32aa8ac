//! Video and job changes as they happen, for server-sent events. Every change made in this
//! process (by the API or an embedded worker, through the job service) is published here; SSE
//! streams also re-read the database periodically, so changes made by other processes arrive
//! too, just later.

use tokio::sync::broadcast;
use vidsnap_domain::{Job, Video};

/// A broadcast of changed videos and jobs. Slow subscribers skip ahead (they re-read anyway).
#[derive(Debug, Clone)]
pub struct VideoEvents {
    sender: broadcast::Sender<Video>,
    jobs: broadcast::Sender<Job>,
}

impl Default for VideoEvents {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(256).0,
            jobs: broadcast::channel(256).0,
        }
    }
}

impl vidsnap_jobs::Observer for VideoEvents {
    fn job(&self, job: &Job) {
        let _ = self.jobs.send(job.clone());
    }

    fn video(&self, video: &Video) {
        self.publish(video);
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

    pub fn subscribe_jobs(&self) -> broadcast::Receiver<Job> {
        self.jobs.subscribe()
    }
}
