//! Blob storage behind `vidsnap_domain::BlobStore`.
//!
//! # Layout
//! - [`key`]: what a valid blob key is.
//! - [`local`]: [`LocalStore`], files under a root directory.
//! - [`signed`]: HMAC-signed URLs for stores without native presigning, and the routes serving
//!   them.
//! - [`s3`]: [`S3Store`], objects in an S3-compatible bucket (AWS S3, SeaweedFS, MinIO, Garage),
//!   configured by [`S3Config`]; presigned URLs are S3's own (SigV4).
//! - `contract` (feature `contract`): the behaviour every backend must show, written once as async
//!   functions over `&dyn BlobStore`; each backend's tests run them.

#[cfg(feature = "contract")]
pub mod contract;
pub mod key;
pub mod local;
pub mod s3;
pub mod signed;

pub use local::LocalStore;
pub use s3::{S3Config, S3ConfigError, S3Store};
pub use signed::{UrlSigner, routes};
