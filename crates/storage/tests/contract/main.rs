//! The crate's one integration-test binary: every `BlobStore` contract check against the local
//! store and against a real S3 server (SeaweedFS, from `scripts/test-services.sh`), then what only
//! S3 needs (parts, the public endpoint, credentials, direct multipart uploads); and the upload
//! staging on local disk and on S3; and property tests of the signed-URL routes' parsing.

mod local;
mod multipart_s3;
mod props;
mod s3;
mod staging;
mod staging_s3;
