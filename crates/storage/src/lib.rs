//! Blob storage behind `vidsnap_domain::BlobStore`.
//!
//! # Layout
//! - [`key`]: what a valid blob key is.
//! - [`local`]: [`LocalStore`], files under a root directory.
//! - [`signed`]: HMAC-signed URLs for stores without native presigning, and the routes serving
//!   them.

pub mod key;
pub mod local;
pub mod signed;

pub use local::LocalStore;
pub use signed::{UrlSigner, routes};
