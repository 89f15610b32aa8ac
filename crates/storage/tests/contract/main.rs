//! The crate's one integration-test binary: every `BlobStore` contract check against the local
//! store and against a real S3 server (SeaweedFS, from `scripts/test-services.sh`), then what only
//! S3 needs (parts, the public endpoint, credentials).

mod local;
mod s3;
