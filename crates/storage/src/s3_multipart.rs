//! Direct multipart uploads on S3: clients PUT the parts of a multipart upload straight to the
//! bucket through presigned `UploadPart` URLs; the server only starts, completes and aborts it.
//!
//! A part's URL must carry `partNumber` and `uploadId` as signed query parameters (S3 refuses
//! them otherwise), which object_store's `Signer::signed_url_opts` signs; the URLs are signed for
//! the public endpoint, like every presigned URL of [`S3Store`].

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use object_store::{
    ObjectStoreExt,
    multipart::{MultipartStore, PartId},
    signer::{Method, SignedUrlOptions, Signer},
};
use vidsnap_domain::{
    PortError, PortResult, PresignedRequest,
    ports::{DirectMultipart, MultipartStarted, UploadedPart},
};

use crate::{
    S3Store,
    s3::{MAX_PARTS, MAX_PRESIGN, failed, unavailable},
};

/// S3 error codes that mean the client's parts are wrong, not that the store failed.
const REFUSED_PARTS: &[&str] = &[
    "InvalidPart",
    "InvalidPartOrder",
    "EntityTooSmall",
    "MalformedXML",
    "InvalidArgument",
];

/// [`DirectMultipart`] on an [`S3Store`]'s bucket.
#[derive(Debug, Clone)]
pub struct S3Multipart {
    store: S3Store,
}

impl S3Multipart {
    pub fn new(store: &S3Store) -> Self {
        Self {
            store: store.clone(),
        }
    }
}

/// The S3 error code (`<Code>…</Code>`) in a failure's text, when it is one of `codes`.
fn error_code(error: &object_store::Error, codes: &[&'static str]) -> Option<&'static str> {
    let text = error.to_string();
    codes
        .iter()
        .find(|code| text.contains(&format!("<Code>{code}</Code>")))
        .copied()
}

#[async_trait]
impl DirectMultipart for S3Multipart {
    async fn start(&self, key: &str) -> PortResult<MultipartStarted> {
        let location = self.store.location(key)?;
        let upload_id = self
            .store
            .client()
            .create_multipart(&location)
            .await
            .map_err(|e| unavailable("starting a multipart upload of", key, e))?;
        Ok(MultipartStarted {
            upload_id,
            part_bytes: self.store.part_bytes(),
        })
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        expires: Duration,
    ) -> PortResult<PresignedRequest> {
        let location = self.store.location(key)?;
        if !(1..=MAX_PARTS).contains(&u64::from(number)) {
            return Err(PortError::Conflict(format!(
                "part numbers are 1 to {MAX_PARTS}, not {number}"
            )));
        }
        if expires > MAX_PRESIGN {
            return Err(PortError::Conflict(
                "presigned URLs last at most 7 days".to_owned(),
            ));
        }
        // As in `S3Store::presign`: at or just before the expiry the store enforces.
        let now = Utc::now();
        let signed_at = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
        let options = SignedUrlOptions::default().with_query([
            ("partNumber", number.to_string()),
            ("uploadId", upload_id.to_owned()),
        ]);
        let url = self
            .store
            .url_signer()
            .signed_url_opts(Method::PUT, &location, expires, &options)
            .await
            .map_err(|e| unavailable("signing a part URL for", key, e))?;
        Ok(PresignedRequest {
            method: "PUT".to_owned(),
            url: url.into(),
            headers: Vec::new(),
            expires_at: signed_at + Duration::from_secs(expires.as_secs()),
        })
    }

    async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> PortResult<u64> {
        let location = self.store.location(key)?;
        // object_store numbers parts by their position.
        if parts.is_empty() || !parts.iter().zip(1..).all(|(part, n)| part.number == n) {
            return Err(PortError::Conflict(
                "parts must be numbered 1, 2, … in order, without gaps".to_owned(),
            ));
        }
        let ids = parts
            .iter()
            .map(|p| PartId {
                content_id: p.etag.clone(),
            })
            .collect();
        match self
            .store
            .client()
            .complete_multipart(&location, &upload_id.to_owned(), ids)
            .await
        {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => return Err(PortError::NotFound),
            Err(e) => {
                return Err(match error_code(&e, REFUSED_PARTS) {
                    Some(code) => PortError::Conflict(format!(
                        "the store refused the parts ({code}): check each part's number and ETag"
                    )),
                    None => unavailable("completing the multipart upload of", key, e),
                });
            }
        }
        let meta = self
            .store
            .client()
            .head(&location)
            .await
            .map_err(|e| failed("reading the size of", key, e))?;
        Ok(meta.size)
    }

    async fn abort(&self, key: &str, upload_id: &str) -> PortResult<()> {
        let location = self.store.location(key)?;
        match self
            .store
            .client()
            .abort_multipart(&location, &upload_id.to_owned())
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable("aborting the multipart upload of", key, e)),
        }
    }
}
