//! What a terminal outcome owes, independent of the SQL dialect: the channels to notify and the
//! event body they all receive, for a video (`video.*`) or a job (`job.*`).

use chrono::{DateTime, Utc};
use serde_json::Value;
use vidsnap_domain::{
    Channel, EventType, Job, JobEvent, JobId, NotificationId, PortError, PortResult, QcEvent,
    QcResult, UserId, Video, VideoEvent, VideoId, VideoStatus, Webhook,
};

/// The event announced on entering `status`, if it is terminal.
pub(crate) fn event_for(status: VideoStatus) -> Option<EventType> {
    match status {
        VideoStatus::Succeeded => Some(EventType::VideoSucceeded),
        VideoStatus::Dead => Some(EventType::VideoDead),
        _ => None,
    }
}

/// What an outcome is about: the notification row names exactly one video or one job (a bucket
/// workflow decision is about its video).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Subject<'a> {
    Video(&'a Video),
    Job(&'a Job),
    Qc(&'a QcResult),
}

impl Subject<'_> {
    pub(crate) fn owner(self) -> UserId {
        match self {
            Self::Video(video) => video.owner,
            Self::Job(job) => job.owner,
            Self::Qc(result) => result.owner,
        }
    }

    /// Each cycle's outcome is announced once (each decision's, for the bucket workflow).
    pub(crate) fn cycle(self) -> u32 {
        match self {
            Self::Video(video) => video.cycle,
            Self::Job(job) => job.cycle,
            Self::Qc(result) => result.attempt,
        }
    }

    pub(crate) fn video(self) -> Option<VideoId> {
        match self {
            Self::Video(video) => Some(video.id),
            Self::Job(_) => None,
            Self::Qc(result) => Some(result.video),
        }
    }

    pub(crate) fn job(self) -> Option<JobId> {
        match self {
            Self::Video(_) | Self::Qc(_) => None,
            Self::Job(job) => Some(job.id),
        }
    }

    /// The event body as stored, frozen when the outcome is recorded. Its `id` is the
    /// notification's, so a receiver can match a delivery in the log and deduplicate
    /// redeliveries.
    pub(crate) fn body(
        self,
        id: NotificationId,
        event: EventType,
        at: DateTime<Utc>,
    ) -> PortResult<String> {
        let body = match self {
            Self::Video(video) => serde_json::to_string(&VideoEvent::new(id, event, at, video)),
            Self::Job(job) => serde_json::to_string(&JobEvent::new(id, event, at, job)),
            Self::Qc(result) => serde_json::to_string(&QcEvent::new(id, event, at, result)),
        };
        body.map_err(|e| PortError::Unavailable(format!("cannot encode an event: {e}")))
    }
}

/// Each channel owed a notification, with the key that makes it unique per outcome: the e-mail is
/// keyed by kind, not address, so an address change cannot duplicate it.
pub(crate) fn channels(email: &str, hooks: &[Webhook]) -> Vec<(Channel, String)> {
    let mut owed = vec![(
        Channel::Email {
            to: email.to_owned(),
        },
        "email".to_owned(),
    )];
    owed.extend(hooks.iter().map(|hook| {
        (
            Channel::Webhook {
                webhook: hook.id,
                url: hook.url.clone(),
            },
            format!("webhook:{}", hook.id),
        )
    }));
    owed
}

/// The video a job notification reports as its `Notification::video`, which the domain type
/// requires although a job's subject is the job: its first input (inputs are ordered by name, in
/// the job and in its frozen body alike). Read from the body, which is all the row keeps of it.
pub(crate) fn job_event_video(payload: &Value) -> Option<VideoId> {
    payload["job"]["inputs"]
        .as_object()?
        .values()
        .next()?
        .as_str()?
        .parse()
        .ok()
}
