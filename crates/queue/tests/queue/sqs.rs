//! SQS tests (in progress).
