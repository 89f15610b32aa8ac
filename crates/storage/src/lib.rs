//! Blob storage behind `vidsnap_domain::BlobStore`.
//!
//! # Layout
//! - [`key`]: what a valid blob key is.
//! - [`local`]: [`LocalStore`], files under a root directory.
//! - [`signed`]: HMAC-signed URLs for stores without native presigning, and the routes serving
//!   them.
//! - [`staging`]: [`LocalStaging`], resumable uploads' bytes appended on local disk and renamed
//!   into their blob key when complete.
//! - [`s3`]: [`S3Store`], objects in an S3-compatible bucket (AWS S3, SeaweedFS, MinIO, Garage),
//!   configured by [`S3Config`]; presigned URLs are S3's own (SigV4).
//! - [`s3_multipart`]: [`S3Multipart`], multipart uploads clients send straight to the bucket
//!   through presigned part URLs.
//! - [`s3_staging`]: [`S3Staging`], resumable uploads' bytes as the parts of an S3 multipart
//!   upload, the tail of each piece in an object of its own, completed into the blob key.
//! - `s3_housekeeping`: what the scheduler's storage sweep asks of an [`S3Store`]: folders and
//!   blobs for the orphan audit, multipart uploads nobody can finish (ListMultipartUploads, a
//!   presigned request of our own), the staging folders of resumable uploads.
//! - [`s3_notifications`]: where the bucket's event notifications go, for the start-up check
//!   that they reach the queue `[s3_events]` reads.
//! - `contract` (feature `contract`): the behaviour every backend must show, written once as async
//!   functions over `&dyn BlobStore`; each backend's tests run them.

#[cfg(feature = "contract")]
pub mod contract;
mod digest;
pub mod key;
pub mod local;
pub mod s3;
mod s3_housekeeping;
pub mod s3_multipart;
pub mod s3_notifications;
pub mod s3_staging;
pub mod signed;
pub mod staging;

pub use local::LocalStore;
pub use s3::{S3Config, S3ConfigError, S3Store};
pub use s3_multipart::S3Multipart;
pub use s3_staging::{S3Staging, UploadDestination, VideoSourceKey};
pub use signed::{UrlSigner, routes};
pub use staging::LocalStaging;
