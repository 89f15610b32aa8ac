//! SQS job queue and S3 events (in progress).
