//! Identifiers. Each is a UUID (v7: time-ordered, so they sort by creation and make good cursors)
//! behind its own type, so a user id can never be passed where a video id is expected.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(text).map(Self)
            }
        }
    };
}

id!(
    /// An account.
    UserId
);
id!(
    /// A video and everything derived from it.
    VideoId
);
id!(
    /// One run of a recipe over its input videos.
    JobId
);
id!(
    /// A queue message: one delivery of a [`Task`](crate::Task), as the queue backend knows it.
    TaskId
);
id!(
    /// A machine client's credential.
    ApiKeyId
);
id!(
    /// A user's registered webhook endpoint.
    WebhookId
);
id!(
    /// One notification to deliver (one per terminal outcome per channel).
    NotificationId
);
id!(
    /// A resumable upload session: the bytes of one video arriving in pieces.
    UploadId
);
id!(
    /// One decision of the bucket workflow (`sorting`) about one file.
    QcResultId
);
