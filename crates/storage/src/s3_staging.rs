//! Upload staging on S3: a resumable upload's bytes become the parts of an S3 multipart upload
//! on the video's key, completed (atomically) when the last byte has arrived.
//!
//! Every part but the last must be at least 5 MiB, and pieces arrive in any sizes, so the bytes
//! of a piece that do not fill a part (the tail) wait in an object of their own,
//! `{prefix}/.uploads/{upload id}/tail-{random}`, which any API process can read: the next append,
//! wherever it runs, prepends them to its piece. While a piece streams in it is buffered in a
//! temporary file in a scratch directory (never in memory); only once it has arrived whole and
//! its checksum matched do parts and the new tail go up, so a refused piece leaves nothing.
//!
//! What is staged is what [`Upload::staging`] records, never what happens to be in the bucket:
//! the multipart upload (key, id), its parts (number, ETag, size) and the tail object (name,
//! size), kept by the repository together with `uploaded_bytes`. A writer that died after
//! uploading parts or a tail but before its progress was recorded leaves parts numbered past the
//! recorded ones, which the next writer uploads again (replacing them) and which completion
//! leaves out, and a tail under another name, deleted by the next append. That is also why a tail
//! is never overwritten in place: the recorded one must stay readable until the new one is
//! recorded. Each multipart upload is announced by a marker object beside the tail
//! (`multipart-{random}`, holding its key and id), so one started by a writer that died before
//! recording it is still found and aborted.
//!
//! A stalled writer that outlives its lease could still replace a recorded part with other
//! bytes; S3 then refuses the completion (the recorded ETag no longer matches) rather than store
//! wrong bytes.

use std::{
    io::SeekFrom,
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::digest::Digester;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::{
    ObjectStore, ObjectStoreExt, PutPayload, aws::AmazonS3, multipart::MultipartStore,
    multipart::PartId, path::Path as ObjectPath,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};
use vidsnap_domain::{
    AppendError, Appended, ByteStream, Checksum, PortError, PortResult, Repository, Upload,
    UploadId, UploadStaging,
};

use crate::{
    S3Store,
    s3::{MAX_PARTS, failed, io_failed, unavailable},
    staging::STAGING,
};

/// Writes are batched this much before they reach the scratch file.
const WRITE_BUFFER: usize = 1 << 20;

/// How the names of marker objects start (`unique("multipart")`).
pub(crate) const MARKER: &str = "multipart-";

/// Where a finished upload goes. S3 needs the key when the multipart upload starts (at the first
/// full part), long before [`UploadStaging::complete`] names it.
#[async_trait]
pub trait UploadDestination: Send + Sync {
    /// The blob key the upload's bytes become.
    async fn key_of(&self, upload: &Upload) -> PortResult<String>;
}

/// The source key of the upload's video (`{owner}/{video}/{file_name}`), read from the
/// repository.
#[derive(Clone)]
pub struct VideoSourceKey(pub Arc<dyn Repository>);

impl std::fmt::Debug for VideoSourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoSourceKey").finish_non_exhaustive()
    }
}

#[async_trait]
impl UploadDestination for VideoSourceKey {
    async fn key_of(&self, upload: &Upload) -> PortResult<String> {
        Ok(self.0.video(None, upload.video).await?.source_key())
    }
}

/// [`UploadStaging`] on the bucket of an [`S3Store`].
#[derive(Clone)]
pub struct S3Staging {
    store: S3Store,
    /// Pieces are buffered here while they stream in.
    scratch: PathBuf,
    destination: Arc<dyn UploadDestination>,
}

impl std::fmt::Debug for S3Staging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Staging")
            .field("store", &self.store)
            .field("scratch", &self.scratch)
            .finish_non_exhaustive()
    }
}

/// What is staged for an upload: the JSON kept in [`Upload::staging`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Staged {
    /// Started at the first full part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    multipart: Option<Multipart>,
    /// The bytes after the last full part, when there are any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tail: Option<Tail>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Multipart {
    /// The blob key it completes into.
    key: String,
    /// S3's upload id.
    id: String,
    /// The name of its marker object.
    marker: String,
    /// Every part but the last has exactly this size.
    part_bytes: u64,
    /// Numbered 1, 2, … in order.
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Part {
    number: u32,
    etag: String,
    size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tail {
    /// The object's name under the upload's staging folder.
    name: String,
    size: u64,
}

/// A marker object's content: the multipart upload it announces.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Marker {
    /// The blob key the multipart upload completes into.
    pub(crate) key: String,
    /// S3's upload id.
    pub(crate) id: String,
}

impl Staged {
    fn of(upload: &Upload) -> PortResult<Self> {
        let staged: Self = match &upload.staging {
            None => Self::default(),
            Some(value) => serde_json::from_value(value.clone()).map_err(|e| {
                PortError::Unavailable(format!(
                    "upload {} has staging state this S3 staging did not write ({e}): was it \
                     started on another storage backend?",
                    upload.id
                ))
            })?,
        };
        if let Some(multipart) = &staged.multipart {
            let numbered =
                multipart.parts.iter().zip(1..).all(|(part, number)| {
                    part.number == number && part.size == multipart.part_bytes
                });
            if !numbered {
                return Err(PortError::Unavailable(format!(
                    "upload {}: the recorded parts are not 1, 2, … of {} bytes",
                    upload.id, multipart.part_bytes
                )));
            }
        }
        if staged.size() != upload.uploaded_bytes {
            return Err(PortError::Unavailable(format!(
                "upload {} records {} bytes but its staging state holds {}",
                upload.id,
                upload.uploaded_bytes,
                staged.size()
            )));
        }
        Ok(staged)
    }

    fn size(&self) -> u64 {
        let parts = self
            .multipart
            .as_ref()
            .map_or(0, |m| m.parts.iter().map(|p| p.size).sum());
        parts + self.tail.as_ref().map_or(0, |t| t.size)
    }

    fn to_json(&self) -> serde_json::Value {
        // A struct of strings and numbers always serializes.
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// A piece as it arrived, in a scratch file after the previous tail's bytes.
struct Buffered {
    file: tokio::fs::File,
    /// The previous tail's bytes at the file's start.
    tail: u64,
    /// The piece's bytes after them.
    piece: u64,
    interrupted: bool,
}

/// A name no other writer picks.
fn unique(kind: &str) -> String {
    format!("{kind}-{}", uuid::Uuid::new_v4().simple())
}

fn lost(upload: &Upload, what: &str) -> PortError {
    PortError::Unavailable(format!(
        "the staged bytes of upload {} are lost: {what}",
        upload.id
    ))
}

/// An upload's staging folder, as a blob key.
pub(crate) fn staging_folder(upload: UploadId) -> String {
    format!("{STAGING}/{upload}")
}

/// Removes every object of the staging folder `folder` but those named in `keep`; the
/// multipart upload a removed marker announces is aborted first.
pub(crate) async fn sweep_folder(store: &S3Store, folder: &str, keep: &[&str]) -> PortResult<()> {
    let location = store.location(folder)?;
    let listed: Vec<_> = store
        .client()
        .list(Some(&location))
        .try_collect()
        .await
        .map_err(|e| unavailable("listing", folder, e))?;
    for object in listed {
        let name = object.location.filename().unwrap_or_default();
        if keep.contains(&name) {
            continue;
        }
        if name.starts_with(MARKER)
            && let Some(marked) = read_marker(store, &object.location).await?
        {
            abort_multipart(store, &marked.key, &marked.id).await?;
        }
        match store.client().delete(&object.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(unavailable("deleting", object.location.as_ref(), e)),
        }
    }
    Ok(())
}

/// The multipart upload a marker object announces; `None` when the marker is gone or
/// unreadable (nothing can be aborted by it then).
pub(crate) async fn read_marker(
    store: &S3Store,
    marker: &ObjectPath,
) -> PortResult<Option<Marker>> {
    let body = match store.client().get(marker).await {
        Ok(got) => got
            .bytes()
            .await
            .map_err(|e| unavailable("reading", marker.as_ref(), e))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(unavailable("reading", marker.as_ref(), e)),
    };
    match serde_json::from_slice::<Marker>(&body) {
        Ok(marked) => Ok(Some(marked)),
        Err(_) => {
            tracing::warn!(%marker, "an unreadable multipart marker");
            Ok(None)
        }
    }
}

/// Aborts a multipart upload; one already gone (aborted, completed) is fine.
pub(crate) async fn abort_multipart(store: &S3Store, key: &str, id: &str) -> PortResult<()> {
    let location = store.location(key)?;
    match store
        .client()
        .abort_multipart(&location, &id.to_owned())
        .await
    {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(unavailable("aborting the multipart upload of", key, e)),
    }
}

impl S3Staging {
    /// Stages in `store`'s bucket, buffering pieces in `scratch` (created if needed);
    /// `destination` says which key each upload completes into.
    pub fn new(
        store: &S3Store,
        scratch: impl Into<PathBuf>,
        destination: Arc<dyn UploadDestination>,
    ) -> PortResult<Self> {
        let scratch = scratch.into();
        std::fs::create_dir_all(&scratch).map_err(|e| io_failed("creating", &scratch, e))?;
        Ok(Self {
            store: store.clone(),
            scratch,
            destination,
        })
    }

    fn s3(&self) -> &AmazonS3 {
        self.store.client()
    }

    /// The upload's staging folder, as a blob key.
    fn folder(upload: &Upload) -> String {
        staging_folder(upload.id)
    }

    fn staged_object(&self, upload: &Upload, name: &str) -> PortResult<ObjectPath> {
        self.store
            .location(&format!("{}/{name}", Self::folder(upload)))
    }

    /// Every part but the last of `upload`: the configured size, or bigger when 10,000 parts of
    /// it would not hold the upload.
    fn part_bytes_for(&self, upload: &Upload, staged: &Staged) -> u64 {
        match &staged.multipart {
            Some(multipart) => multipart.part_bytes,
            None => self
                .store
                .part_bytes()
                .max(upload.total_bytes.div_ceil(MAX_PARTS)),
        }
    }

    /// Removes what the staging folder holds beyond `keep`: tails and multipart uploads of
    /// writers that died before recording them, tails superseded since, or (with `None`)
    /// everything.
    async fn sweep(&self, upload: &Upload, keep: Option<&Staged>) -> PortResult<()> {
        let kept_tail = keep.and_then(|s| s.tail.as_ref()).map(|t| t.name.as_str());
        let kept_marker = keep
            .and_then(|s| s.multipart.as_ref())
            .map(|m| m.marker.as_str());
        let kept: Vec<&str> = kept_tail.into_iter().chain(kept_marker).collect();
        sweep_folder(&self.store, &Self::folder(upload), &kept).await
    }

    /// Aborts a multipart upload; one already gone (aborted, completed) is fine.
    async fn abort_multipart(&self, key: &str, id: &str) -> PortResult<()> {
        abort_multipart(&self.store, key, id).await
    }

    /// Starts the multipart upload `upload` completes into, with its marker.
    async fn start_multipart(&self, upload: &Upload, part_bytes: u64) -> PortResult<Multipart> {
        let key = self.destination.key_of(upload).await?;
        let location = self.store.location(&key)?;
        let id = self
            .s3()
            .create_multipart(&location)
            .await
            .map_err(|e| unavailable("starting a multipart upload of", &key, e))?;
        let marker = unique("multipart");
        let content = serde_json::to_vec(&Marker {
            key: key.clone(),
            id: id.clone(),
        })
        .unwrap_or_default();
        let marked = self
            .s3()
            .put(
                &self.staged_object(upload, &marker)?,
                PutPayload::from(content),
            )
            .await;
        if let Err(e) = marked {
            self.abort_multipart(&key, &id).await?;
            return Err(unavailable("storing the marker of", &key, e));
        }
        Ok(Multipart {
            key,
            id,
            marker,
            part_bytes,
            parts: Vec::new(),
        })
    }

    /// Makes the staged bytes the blob at `location`: the tail uploaded as the last part and the
    /// multipart upload completed, or, below one part, the tail copied server-side.
    async fn finish(
        &self,
        staged: &Staged,
        tail: Option<(ObjectPath, u64)>,
        location: &ObjectPath,
    ) -> Result<(), object_store::Error> {
        let Some(multipart) = &staged.multipart else {
            return match tail {
                Some((tail, _)) => self.s3().copy(&tail, location).await,
                None => self
                    .s3()
                    .put(location, PutPayload::default())
                    .await
                    .map(|_| ()),
            };
        };
        let mut parts: Vec<PartId> = multipart
            .parts
            .iter()
            .map(|p| PartId {
                content_id: p.etag.clone(),
            })
            .collect();
        if let Some((tail, size)) = tail {
            let bytes = self.s3().get(&tail).await?.bytes().await?;
            if bytes.len() as u64 != size {
                return Err(object_store::Error::Generic {
                    store: "S3",
                    source: format!("{tail} holds {} bytes, not {size}", bytes.len()).into(),
                });
            }
            let last = self
                .s3()
                .put_part(location, &multipart.id, parts.len(), bytes.into())
                .await?;
            parts.push(last);
        }
        self.s3()
            .complete_multipart(location, &multipart.id, parts)
            .await
            .map(|_| ())
    }

    /// Streams the recorded tail, then the piece, into a scratch file, checking the piece's
    /// length and digest on the way.
    async fn buffer(
        &self,
        upload: &Upload,
        staged: &Staged,
        mut body: ByteStream,
        checksum: Option<&Checksum>,
    ) -> Result<Buffered, AppendError> {
        let scratch = self.scratch.clone();
        let file = tokio::task::spawn_blocking(move || tempfile::tempfile_in(&scratch))
            .await
            .map_err(|e| PortError::Unavailable(format!("creating a scratch file: {e}")))?
            .map_err(|e| io_failed("creating a file in", &self.scratch, e))?;
        let write_failed = |e| AppendError::Port(io_failed("writing in", &self.scratch, e));
        let mut writer = BufWriter::with_capacity(WRITE_BUFFER, tokio::fs::File::from_std(file));

        let mut tail = 0;
        if let Some(recorded) = &staged.tail {
            let location = self.staged_object(upload, &recorded.name)?;
            let mut stream = match self.s3().get(&location).await {
                Ok(got) => got.into_stream(),
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(lost(upload, "its tail object is missing").into());
                }
                Err(e) => return Err(unavailable("reading", location.as_ref(), e).into()),
            };
            while let Some(chunk) = stream
                .try_next()
                .await
                .map_err(|e| unavailable("reading", location.as_ref(), e))?
            {
                tail += chunk.len() as u64;
                writer.write_all(&chunk).await.map_err(write_failed)?;
            }
            if tail != recorded.size {
                return Err(lost(
                    upload,
                    &format!("its tail holds {tail} bytes, not {}", recorded.size),
                )
                .into());
            }
        }

        let limit = upload.remaining();
        let mut digest = checksum.map(|c| Digester::new(c.algorithm));
        let mut piece: u64 = 0;
        let mut interrupted = false;
        while let Some(item) = body.next().await {
            let Ok(chunk) = item else {
                interrupted = true;
                break;
            };
            piece += chunk.len() as u64;
            if piece > limit {
                return Err(AppendError::TooLarge);
            }
            if let Some(digest) = &mut digest {
                digest.update(&chunk);
            }
            writer.write_all(&chunk).await.map_err(write_failed)?;
        }
        writer.flush().await.map_err(write_failed)?;
        if let (Some(expected), Some(digest)) = (checksum, digest) {
            if interrupted {
                // Nothing unverified is kept.
                piece = 0;
            } else if digest.finish() != expected.digest {
                return Err(AppendError::ChecksumMismatch);
            }
        }
        Ok(Buffered {
            file: writer.into_inner(),
            tail,
            piece,
            interrupted,
        })
    }
}

/// Reads exactly `len` bytes (a part or a tail, bounded by the part size).
async fn read_exact(file: &mut tokio::fs::File, len: u64, scratch: &Path) -> PortResult<Bytes> {
    let mut buffer = vec![0; len as usize];
    file.read_exact(&mut buffer)
        .await
        .map_err(|e| io_failed("reading in", scratch, e))?;
    Ok(Bytes::from(buffer))
}

#[async_trait]
impl UploadStaging for S3Staging {
    async fn append(
        &self,
        upload: &Upload,
        body: ByteStream,
        checksum: Option<&Checksum>,
    ) -> Result<Appended, AppendError> {
        let mut staged = Staged::of(upload)?;
        self.sweep(upload, Some(&staged)).await?;
        let Buffered {
            mut file,
            tail,
            piece,
            interrupted,
        } = self.buffer(upload, &staged, body, checksum).await?;
        if piece == 0 {
            return Ok(Appended {
                bytes: 0,
                staging: None,
                interrupted,
            });
        }

        let part_bytes = self.part_bytes_for(upload, &staged);
        let buffered = tail + piece;
        let full_parts = buffered / part_bytes;
        file.seek(SeekFrom::Start(0))
            .await
            .map_err(|e| io_failed("reading in", &self.scratch, e))?;
        if full_parts > 0 {
            let mut multipart = match staged.multipart.take() {
                Some(multipart) => multipart,
                None => self.start_multipart(upload, part_bytes).await?,
            };
            let location = self.store.location(&multipart.key)?;
            for _ in 0..full_parts {
                let index = multipart.parts.len();
                let bytes = read_exact(&mut file, part_bytes, &self.scratch).await?;
                // Replaces whatever a writer that died left under this number.
                let PartId { content_id } = self
                    .s3()
                    .put_part(&location, &multipart.id, index, PutPayload::from(bytes))
                    .await
                    .map_err(|e| unavailable("uploading a part of", &multipart.key, e))?;
                multipart.parts.push(Part {
                    number: u32::try_from(index + 1).unwrap_or(u32::MAX),
                    etag: content_id,
                    size: part_bytes,
                });
            }
            staged.multipart = Some(multipart);
        }
        let rest = buffered % part_bytes;
        staged.tail = if rest == 0 {
            None
        } else {
            // A new object: the recorded tail stays readable until this one is recorded.
            let name = unique("tail");
            let bytes = read_exact(&mut file, rest, &self.scratch).await?;
            self.s3()
                .put(&self.staged_object(upload, &name)?, PutPayload::from(bytes))
                .await
                .map_err(|e| {
                    unavailable("storing the tail of upload", &upload.id.to_string(), e)
                })?;
            Some(Tail { name, size: rest })
        };
        Ok(Appended {
            bytes: piece,
            staging: Some(staged.to_json()),
            interrupted,
        })
    }

    async fn complete(&self, upload: &Upload, key: &str) -> PortResult<u64> {
        let staged = Staged::of(upload)?;
        let location = self.store.location(key)?;
        if upload.uploaded_bytes != upload.total_bytes {
            return Err(PortError::Conflict(format!(
                "upload {} holds {} of {} bytes",
                upload.id, upload.uploaded_bytes, upload.total_bytes
            )));
        }
        if let Some(multipart) = &staged.multipart
            && multipart.key != key
        {
            return Err(PortError::Conflict(format!(
                "upload {} was staged for {}, not {key}",
                upload.id, multipart.key
            )));
        }
        let tail = match &staged.tail {
            Some(tail) => Some((self.staged_object(upload, &tail.name)?, tail.size)),
            None => None,
        };
        match self.finish(&staged, tail, &location).await {
            Ok(()) => {}
            // Completed before: a retry after a crash between the completion and what follows.
            Err(object_store::Error::NotFound { .. }) => {
                let size = match self.s3().head(&location).await {
                    Ok(meta) => meta.size,
                    Err(object_store::Error::NotFound { .. }) => {
                        return Err(lost(upload, "its parts or tail are missing"));
                    }
                    Err(e) => return Err(failed("reading the size of", key, e)),
                };
                if size != upload.total_bytes {
                    return Err(lost(upload, &format!("{key} holds {size} bytes")));
                }
            }
            Err(e) => return Err(unavailable("completing the upload into", key, e)),
        }
        self.sweep(upload, None).await?;
        Ok(upload.total_bytes)
    }

    async fn abort(&self, upload: &Upload) -> PortResult<()> {
        // Unreadable state still has its folder swept.
        if let Ok(Staged {
            multipart: Some(multipart),
            ..
        }) = Staged::of(upload)
        {
            self.abort_multipart(&multipart.key, &multipart.id).await?;
        }
        self.sweep(upload, None).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;
    use vidsnap_domain::{UploadId, UserId, VideoId};

    use super::*;

    fn upload(uploaded: u64, staging: Option<serde_json::Value>) -> Upload {
        let at = chrono::Utc::now();
        Upload {
            id: UploadId::new(),
            owner: UserId::new(),
            video: VideoId::new(),
            total_bytes: 100,
            uploaded_bytes: uploaded,
            metadata: BTreeMap::new(),
            staging,
            expires_at: at,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn the_state_must_hold_what_the_upload_records() {
        let state = json!({
            "multipart": {"key": "u/v/a.mp4", "id": "m", "marker": "multipart-1", "part_bytes": 30,
                          "parts": [{"number": 1, "etag": "\"e1\"", "size": 30},
                                    {"number": 2, "etag": "\"e2\"", "size": 30}]},
            "tail": {"name": "tail-1", "size": 7}
        });
        let staged = Staged::of(&upload(67, Some(state.clone()))).expect("consistent");
        assert_eq!(staged.size(), 67);
        assert_eq!(staged.to_json(), state, "round trip");
        assert!(
            Staged::of(&upload(60, Some(state.clone()))).is_err(),
            "offset"
        );
        assert_eq!(
            Staged::of(&upload(0, None)).expect("nothing"),
            Staged::default()
        );
        assert!(Staged::of(&upload(5, None)).is_err(), "bytes without state");

        let mut gap = state.clone();
        gap["multipart"]["parts"][1]["number"] = json!(3);
        assert!(
            Staged::of(&upload(67, Some(gap))).is_err(),
            "numbered 1, 2, …"
        );
        let mut short = state;
        short["multipart"]["parts"][0]["size"] = json!(29);
        assert!(Staged::of(&upload(66, Some(short))).is_err(), "full parts");
        // Another backend's state.
        assert!(Staged::of(&upload(5, Some(json!({"path": "x"})))).is_err());
    }
}
