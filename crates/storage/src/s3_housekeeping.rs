//! Housekeeping on S3: the folders and blobs the orphan audit walks, the multipart uploads nobody
//! can finish any more, and the staging of resumable uploads whose session is gone.
//!
//! S3 keeps (and bills) the parts of a multipart upload that is neither completed nor aborted,
//! for ever unless a lifecycle rule removes them. They are started by `put_file` (outputs bigger
//! than one part; aborted on failure, but not when the process dies), by clients' direct
//! multipart uploads (`S3Multipart`: a client may simply go away) and by resumable uploads'
//! staging (`S3Staging`, which announces each with a marker object in the upload's staging
//! folder). A multipart upload a marker names belongs to a resumable upload and is left to it
//! (or to [`S3Store::discard`] once its session is gone); any other one is stale once it started
//! longer ago than the grace. object_store does not list multipart uploads, so
//! ListMultipartUploads is a request of our own, presigned by the store's client.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use axum::http;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use object_store::{
    ObjectMeta, ObjectStore,
    client::HttpRequestBody,
    list::{PaginatedListOptions, PaginatedListStore},
    multipart::MultipartStore,
    path::Path as ObjectPath,
    signer::{Method, SignedUrlOptions, Signer},
};
use vidsnap_domain::{
    PortError, PortResult, UploadId,
    ports::{ListedBlob, StagedUpload},
};

use crate::{
    S3Store,
    s3::unavailable,
    s3_staging::{MARKER, read_marker, staging_folder, sweep_folder},
    staging::STAGING,
};

/// Pages of ListMultipartUploads (1,000 uploads each) read per sweep at most; what is left is
/// for the next sweep.
const MAX_PAGES: usize = 100;

/// A multipart upload as ListMultipartUploads describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MultipartUpload {
    /// The object's full name in the bucket (the store's prefix included).
    pub(crate) key: String,
    pub(crate) id: String,
    pub(crate) initiated: DateTime<Utc>,
}

/// One page of ListMultipartUploads.
#[derive(Debug, Default, PartialEq, Eq)]
struct Page {
    uploads: Vec<MultipartUpload>,
    truncated: bool,
    next_key: Option<String>,
    next_id: Option<String>,
}

impl S3Store {
    /// The folder `prefix` as an object path under the store's prefix; `None` for the whole
    /// bucket.
    fn folder_location(&self, prefix: &str) -> PortResult<Option<ObjectPath>> {
        let trimmed = prefix.trim_end_matches('/');
        if trimmed.is_empty() {
            return Ok((!self.prefix().is_empty()).then(|| ObjectPath::from(self.prefix())));
        }
        self.location(trimmed).map(Some)
    }

    /// A listed object's key, without the store's prefix; `None` outside it.
    fn key_of(&self, location: &ObjectPath) -> Option<String> {
        let full = location.as_ref();
        if self.prefix().is_empty() {
            return Some(full.to_owned());
        }
        full.strip_prefix(self.prefix())?
            .strip_prefix('/')
            .map(str::to_owned)
    }

    pub(crate) async fn folders_in(&self, prefix: &str) -> PortResult<Vec<String>> {
        let location = self.folder_location(prefix)?;
        let listed = self
            .client()
            .list_with_delimiter(location.as_ref())
            .await
            .map_err(|e| unavailable("listing", prefix, e))?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|folder| folder.filename())
            .map(str::to_owned)
            .collect())
    }

    pub(crate) async fn list_in(&self, prefix: &str) -> PortResult<Vec<ListedBlob>> {
        let location = self.folder_location(prefix)?;
        let listed: Vec<ObjectMeta> = self
            .client()
            .list(location.as_ref())
            .try_collect()
            .await
            .map_err(|e| unavailable("listing", prefix, e))?;
        Ok(listed
            .into_iter()
            .filter_map(|meta| {
                Some(ListedBlob {
                    key: self.key_of(&meta.location)?,
                    size: meta.size,
                    modified: meta.last_modified,
                })
            })
            .collect())
    }

    /// Every object in the staging folders (`.uploads/{id}/…`).
    ///
    /// SeaweedFS keeps its own multipart uploads in folders named `.uploads` and leaves every
    /// folder of that name out of listings (`.uploads/` lists nothing), while a prefix that
    /// goes on into a name (`.uploads/0`) lists what is there. Upload ids are UUIDs, so the
    /// staging folders are listed by the sixteen hex digits they can start with: the same
    /// objects on every server.
    async fn staging_objects(&self) -> PortResult<Vec<ListedBlob>> {
        let base = if self.prefix().is_empty() {
            format!("{STAGING}/")
        } else {
            format!("{}/{STAGING}/", self.prefix())
        };
        let mut listed = Vec::new();
        for digit in "0123456789abcdef".chars() {
            let prefix = format!("{base}{digit}");
            let mut page_token = None;
            loop {
                let options = PaginatedListOptions {
                    page_token: page_token.take(),
                    ..Default::default()
                };
                let page = self
                    .client()
                    .list_paginated(Some(&prefix), options)
                    .await
                    .map_err(|e| unavailable("listing", STAGING, e))?;
                listed.extend(page.result.objects.into_iter().filter_map(|meta| {
                    Some(ListedBlob {
                        key: self.key_of(&meta.location)?,
                        size: meta.size,
                        modified: meta.last_modified,
                    })
                }));
                match page.page_token {
                    Some(token) => page_token = Some(token),
                    None => break,
                }
            }
        }
        Ok(listed)
    }

    /// Every upload's staging folder (`.uploads/{id}/`), its objects summed up.
    pub(crate) async fn staged(&self) -> PortResult<Vec<StagedUpload>> {
        let mut staged: HashMap<UploadId, StagedUpload> = HashMap::new();
        for blob in self.staging_objects().await? {
            let Some(upload) = blob
                .key
                .strip_prefix(STAGING)
                .and_then(|rest| rest.strip_prefix('/'))
                .and_then(|rest| rest.split('/').next())
                .and_then(|id| id.parse::<UploadId>().ok())
            else {
                continue;
            };
            let entry = staged.entry(upload).or_insert(StagedUpload {
                upload,
                bytes: 0,
                modified: blob.modified,
            });
            entry.bytes += blob.size;
            entry.modified = entry.modified.max(blob.modified);
        }
        Ok(staged.into_values().collect())
    }

    /// Removes an upload's staging folder, aborting the multipart uploads its markers name.
    pub(crate) async fn discard(&self, upload: UploadId) -> PortResult<()> {
        sweep_folder(self, &staging_folder(upload), &[]).await
    }

    /// Aborts the multipart uploads under the store's prefix that started before `before` and
    /// that no staging marker names; returns how many.
    pub(crate) async fn sweep_multipart(&self, before: DateTime<Utc>) -> PortResult<u64> {
        let stale: Vec<MultipartUpload> = self
            .multipart_uploads()
            .await?
            .into_iter()
            .filter(|upload| upload.initiated < before)
            .collect();
        if stale.is_empty() {
            return Ok(0);
        }
        // Read after the uploads were listed: a resumable upload's multipart upload is created
        // just before its marker, so one whose marker is not written yet started moments ago,
        // well within the grace.
        let named = self.marked_uploads().await?;
        let mut aborted = 0;
        for upload in stale {
            if named.contains(&upload.id) {
                continue;
            }
            let location = match ObjectPath::parse(&upload.key) {
                Ok(location) => location,
                Err(e) => {
                    tracing::warn!(key = %upload.key, error = %e, "a multipart upload of a key object_store cannot name: left alone");
                    continue;
                }
            };
            match self.client().abort_multipart(&location, &upload.id).await {
                Ok(()) => {
                    tracing::info!(key = %upload.key, started = %upload.initiated, "aborted a multipart upload nobody finished");
                    aborted += 1;
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(key = %upload.key, error = %e, "aborting a stale multipart upload failed");
                }
            }
        }
        Ok(aborted)
    }

    /// The ids of the multipart uploads staging markers name.
    async fn marked_uploads(&self) -> PortResult<HashSet<String>> {
        let mut named = HashSet::new();
        for blob in self.staging_objects().await? {
            if !blob
                .key
                .rsplit('/')
                .next()
                .is_some_and(|name| name.starts_with(MARKER))
            {
                continue;
            }
            if let Some(marker) = read_marker(self, &self.location(&blob.key)?).await? {
                named.insert(marker.id);
            }
        }
        Ok(named)
    }

    /// The unfinished multipart uploads under the store's prefix, page after page (at most
    /// [`MAX_PAGES`]). Some servers (SeaweedFS) give no `NextKeyMarker`: the last key listed
    /// stands in for it, and a page that brings nothing new ends the listing.
    pub(crate) async fn multipart_uploads(&self) -> PortResult<Vec<MultipartUpload>> {
        let prefix = if self.prefix().is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix())
        };
        let mut uploads = Vec::new();
        let mut seen = HashSet::new();
        let mut markers = None;
        for _ in 0..MAX_PAGES {
            let page = self.multipart_page(&prefix, markers.as_ref()).await?;
            let known = uploads.len();
            let last = page.uploads.last().map(|u| (u.key.clone(), u.id.clone()));
            for upload in page.uploads {
                if seen.insert(upload.id.clone()) {
                    uploads.push(upload);
                }
            }
            let Some((last_key, last_id)) = last else {
                break;
            };
            if !page.truncated || uploads.len() == known {
                break;
            }
            markers = Some((
                page.next_key.unwrap_or(last_key),
                page.next_id.unwrap_or(last_id),
            ));
        }
        Ok(uploads)
    }

    /// One page of ListMultipartUploads after `markers` (key, upload id).
    async fn multipart_page(
        &self,
        prefix: &str,
        markers: Option<&(String, String)>,
    ) -> PortResult<Page> {
        let failed =
            |what: String| PortError::Unavailable(format!("listing multipart uploads: {what}"));
        let mut query = vec![("uploads", String::new())];
        if !prefix.is_empty() {
            query.push(("prefix", prefix.to_owned()));
        }
        if let Some((key, id)) = markers {
            query.push(("key-marker", key.clone()));
            query.push(("upload-id-marker", id.clone()));
        }
        let (status, text) = self.bucket_get(query).await.map_err(failed)?;
        if !status.is_success() {
            let code = element(&text, "Code").unwrap_or_default();
            return Err(failed(format!("{status} {code}")));
        }
        parse_page(&text).map_err(failed)
    }

    /// A GET of the bucket itself with `query` (a subresource such as `?uploads` or
    /// `?notification`, which object_store has no call for), presigned by the store's client:
    /// the status and the body.
    pub(crate) async fn bucket_get(
        &self,
        query: Vec<(&'static str, String)>,
    ) -> Result<(http::StatusCode, String), String> {
        let url = self
            .client()
            .signed_url_opts(
                Method::GET,
                &ObjectPath::from(""),
                Duration::from_secs(60),
                &SignedUrlOptions::default().with_query(query),
            )
            .await
            .map_err(|e| format!("signing the request: {e}"))?;
        let request = http::Request::builder()
            .method(http::Method::GET)
            .uri(url.as_str())
            .body(HttpRequestBody::empty())
            .map_err(|e| e.to_string())?;
        let response = self
            .http()
            .execute(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .bytes()
            .await
            .map_err(|e| e.to_string())?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// Reads a ListMultipartUploads answer.
fn parse_page(xml: &str) -> Result<Page, String> {
    if !xml.contains("<ListMultipartUploadsResult") {
        return Err("not a ListMultipartUploadsResult".to_owned());
    }
    let mut uploads = Vec::new();
    for block in elements(xml, "Upload") {
        let (Some(key), Some(id), Some(initiated)) = (
            element(block, "Key"),
            element(block, "UploadId"),
            element(block, "Initiated"),
        ) else {
            return Err(format!("an upload without its key, id or start: {block}"));
        };
        let initiated = DateTime::parse_from_rfc3339(initiated.trim())
            .map_err(|e| format!("Initiated {initiated:?}: {e}"))?
            .with_timezone(&Utc);
        uploads.push(MultipartUpload {
            key: unescape(key),
            id: unescape(id),
            initiated,
        });
    }
    let non_empty = |name| element(xml, name).filter(|v| !v.is_empty()).map(unescape);
    Ok(Page {
        uploads,
        truncated: element(xml, "IsTruncated").is_some_and(|v| v.trim() == "true"),
        next_key: non_empty("NextKeyMarker"),
        next_id: non_empty("NextUploadIdMarker"),
    })
}

/// The text of every `<name>…</name>` element, in order (not nested in one another).
pub(crate) fn elements<'a>(xml: &'a str, name: &str) -> impl Iterator<Item = &'a str> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let end = start + rest[start..].find(&close)?;
        let text = &rest[start..end];
        rest = &rest[end + close.len()..];
        Some(text)
    })
}

/// The text of the first `<name>…</name>` element.
pub(crate) fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    elements(xml, name).next()
}

/// Resolves XML's character references (`&amp;`, `&#38;`, `&#x26;` …).
pub(crate) fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';') else {
            break;
        };
        let entity = &rest[1..end];
        let resolved = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|hex| u32::from_str_radix(hex, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match resolved {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_is_read_with_its_markers_and_escapes() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket>
<KeyMarker></KeyMarker><NextKeyMarker>p/u/w/x.mp4</NextKeyMarker>
<NextUploadIdMarker>id-2</NextUploadIdMarker><IsTruncated>true</IsTruncated>
<Upload><Key>p/u/v/a b&amp;c &#233;.mp4</Key><UploadId>id-1</UploadId>
<Initiator><ID>x</ID></Initiator><Initiated>2026-12-07T01:57:52.000Z</Initiated></Upload>
<Upload><Initiated>2026-12-07T02:00:00Z</Initiated><Key>p/u/w/x.mp4</Key><UploadId>id-2</UploadId></Upload>
</ListMultipartUploadsResult>"#;
        let page = parse_page(xml).expect("a page");
        assert_eq!(page.uploads.len(), 2);
        assert_eq!(page.uploads[0].key, "p/u/v/a b&c é.mp4");
        assert_eq!(page.uploads[0].id, "id-1");
        assert_eq!(
            page.uploads[0].initiated,
            DateTime::parse_from_rfc3339("2026-12-07T01:57:52Z")
                .expect("a time")
                .with_timezone(&Utc)
        );
        assert_eq!(page.uploads[1].key, "p/u/w/x.mp4");
        assert!(page.truncated);
        assert_eq!(page.next_key.as_deref(), Some("p/u/w/x.mp4"));
        assert_eq!(page.next_id.as_deref(), Some("id-2"));

        let empty = parse_page(
            "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated><NextKeyMarker></NextKeyMarker></ListMultipartUploadsResult>",
        )
        .expect("an empty page");
        assert_eq!(empty, Page::default());
        assert!(parse_page("<Error><Code>AccessDenied</Code></Error>").is_err());
        assert!(
            parse_page("<ListMultipartUploadsResult><Upload><Key>k</Key></Upload></ListMultipartUploadsResult>")
                .is_err(),
            "an upload without its id is not skipped silently"
        );
    }

    #[test]
    fn unknown_references_are_kept_as_they_are() {
        assert_eq!(unescape("a &bogus; b & c &#xZZ;"), "a &bogus; b & c &#xZZ;");
        assert_eq!(unescape("&lt;&gt;&quot;&apos;&#x41;&#66;"), "<>\"'AB");
    }
}
