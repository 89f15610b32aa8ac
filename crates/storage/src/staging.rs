//! Upload staging on local disk: an upload's bytes are appended to `{root}/.uploads/{id}` and the
//! finished file is renamed into its blob key, so completing a 2 GB upload moves no bytes.
//!
//! The staging folder sits inside the blob root so the rename never crosses filesystems; blob
//! keys start with a user id (a UUID), so `.uploads` never collides with one. Every API process
//! that serves uploads must see the same root (one disk, or a shared volume): the bytes of a
//! session live here, its offset in the database.

use std::{
    io::SeekFrom,
    path::{Path, PathBuf},
};

use crate::digest::Digester;
use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufWriter};
use vidsnap_domain::{
    AppendError, Appended, ByteStream, Checksum, PortError, PortResult, Upload, UploadStaging,
};

use crate::{LocalStore, key};

/// The folder, under the blob root (or the bucket's prefix on S3), where resumable uploads'
/// bytes are staged.
pub(crate) const STAGING: &str = ".uploads";

/// Writes are batched this much before they reach the file (the body arrives in small frames).
const WRITE_BUFFER: usize = 1 << 20;

/// [`UploadStaging`] next to a [`LocalStore`]'s blobs.
#[derive(Debug, Clone)]
pub struct LocalStaging {
    store: LocalStore,
    dir: PathBuf,
}

fn unavailable(action: &str, path: &Path, e: std::io::Error) -> PortError {
    PortError::Unavailable(format!("{action} {}: {e}", path.display()))
}

impl LocalStaging {
    /// Stages under `{store root}/.uploads`, created if needed.
    pub fn new(store: &LocalStore) -> PortResult<Self> {
        let dir = store.root().join(STAGING);
        std::fs::create_dir_all(&dir).map_err(|e| unavailable("creating", &dir, e))?;
        Ok(Self {
            store: store.clone(),
            dir,
        })
    }

    /// Where an upload's bytes are staged.
    pub fn path_of(&self, upload: &Upload) -> PathBuf {
        self.dir.join(upload.id.to_string())
    }
}

/// fsync of a directory: makes a file created or renamed in it survive a crash.
async fn sync_dir(dir: &Path) -> PortResult<()> {
    let file = tokio::fs::File::open(dir)
        .await
        .map_err(|e| unavailable("opening", dir, e))?;
    file.sync_all()
        .await
        .map_err(|e| unavailable("syncing", dir, e))
}

#[async_trait]
impl UploadStaging for LocalStaging {
    async fn append(
        &self,
        upload: &Upload,
        mut body: ByteStream,
        checksum: Option<&Checksum>,
    ) -> Result<Appended, AppendError> {
        let path = self.path_of(upload);
        let offset = upload.uploaded_bytes;
        let io = |action: &'static str| {
            let path = path.clone();
            move |e| AppendError::Port(unavailable(action, &path, e))
        };
        let existed = tokio::fs::try_exists(&path).await.unwrap_or(false);
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .await
            .map_err(io("opening"))?;
        if !existed {
            sync_dir(&self.dir).await?;
        }
        let staged = file.metadata().await.map_err(io("reading"))?.len();
        if staged < offset {
            if !existed {
                let _ = tokio::fs::remove_file(&path).await;
            }
            return Err(AppendError::Port(PortError::Unavailable(format!(
                "{} holds {staged} bytes but the upload recorded {offset}: the staged bytes are \
                 lost (do all API processes share the storage root?)",
                path.display()
            ))));
        }
        // Bytes past the recorded offset were never acknowledged: a writer died after writing
        // them and before recording them.
        file.set_len(offset).await.map_err(io("truncating"))?;
        file.seek(SeekFrom::Start(offset))
            .await
            .map_err(io("seeking in"))?;

        let mut writer = BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut digest = checksum.map(|c| Digester::new(c.algorithm));
        let limit = upload.remaining();
        let mut written: u64 = 0;
        let mut interrupted = false;
        let mut failure = None;
        while let Some(item) = body.next().await {
            let chunk = match item {
                Ok(chunk) => chunk,
                Err(_) => {
                    interrupted = true;
                    break;
                }
            };
            written += chunk.len() as u64;
            if written > limit {
                failure = Some(AppendError::TooLarge);
                break;
            }
            if let Some(digest) = &mut digest {
                digest.update(&chunk);
            }
            if let Err(e) = writer.write_all(&chunk).await {
                failure = Some(io("writing")(e));
                break;
            }
        }
        if failure.is_none()
            && let Err(e) = writer.flush().await
        {
            failure = Some(io("writing")(e));
        }
        let file = writer.into_inner();
        if failure.is_none()
            && let (Some(expected), Some(digest)) = (checksum, digest)
        {
            if interrupted {
                // Nothing unverified is kept.
                written = 0;
            } else if digest.finish() != expected.digest {
                failure = Some(AppendError::ChecksumMismatch);
            }
        }
        if let Some(failure) = failure {
            // Best effort: the next append truncates to the recorded offset anyway.
            let _ = file.set_len(offset).await;
            return Err(failure);
        }
        if written == 0 && interrupted {
            file.set_len(offset).await.map_err(io("truncating"))?;
        }
        // Durable before it is acknowledged.
        file.sync_data().await.map_err(io("syncing"))?;
        Ok(Appended {
            bytes: written,
            staging: None,
            interrupted,
        })
    }

    async fn complete(&self, upload: &Upload, key: &str) -> PortResult<u64> {
        key::check(key)?;
        let staged = self.path_of(upload);
        let destination = self.store.path_of(key);
        let dir = destination
            .parent()
            .map_or_else(|| self.store.root().to_path_buf(), Path::to_path_buf);
        let size = match tokio::fs::metadata(&staged).await {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Completed before (a retry after a crash between the rename and the queueing).
                return match tokio::fs::metadata(&destination).await {
                    Ok(meta) if meta.len() == upload.total_bytes => Ok(meta.len()),
                    _ => Err(PortError::Unavailable(format!(
                        "{} is missing: the staged bytes of upload {} are lost",
                        staged.display(),
                        upload.id
                    ))),
                };
            }
            Err(e) => return Err(unavailable("reading", &staged, e)),
        };
        if size < upload.total_bytes {
            return Err(PortError::Unavailable(format!(
                "{} holds {size} of {} bytes",
                staged.display(),
                upload.total_bytes
            )));
        }
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(&staged)
            .await
            .map_err(|e| unavailable("opening", &staged, e))?;
        if size > upload.total_bytes {
            // Unacknowledged bytes of a writer that died.
            file.set_len(upload.total_bytes)
                .await
                .map_err(|e| unavailable("truncating", &staged, e))?;
            file.sync_data()
                .await
                .map_err(|e| unavailable("syncing", &staged, e))?;
        }
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o644))
                .await
                .map_err(|e| unavailable("setting permissions of", &staged, e))?;
        }
        drop(file);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| unavailable("creating", &dir, e))?;
        tokio::fs::rename(&staged, &destination)
            .await
            .map_err(|e| unavailable("moving into place", &destination, e))?;
        sync_dir(&dir).await?;
        Ok(upload.total_bytes)
    }

    async fn abort(&self, upload: &Upload) -> PortResult<()> {
        let path = self.path_of(upload);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(unavailable("deleting", &path, e)),
        }
    }
}
