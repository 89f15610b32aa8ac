//! SQS against moto: the job queue (the shared contract, then what is SQS's own) and the S3
//! event consumer fed by a real bucket -> queue notification configuration.
//!
//! moto comes from `scripts/test-services.sh`, which writes its address to `.services/env` (or
//! `$VIDSNAP_SERVICES_DIR/env`); `VIDSNAP_TEST_MOTO_ENDPOINT` in the environment takes
//! precedence. Without a reachable moto every test here fails. Each test makes its own queues
//! and bucket (`vidsnap-test-{uuid}`) and removes them when done.

#![allow(clippy::unwrap_used)]

mod events;
mod jobs;
mod moto;
