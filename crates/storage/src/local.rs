//! Blobs as files under a root directory.

use std::{
    fs::Metadata,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tempfile::NamedTempFile;
use vidsnap_domain::{
    BlobStore, PortError, PortResult, PresignedRequest, UploadId,
    ports::{ListedBlob, StagedUpload, SweptTemporaries},
};

use crate::{UrlSigner, key, staging::STAGING};

/// A [`BlobStore`] on the local filesystem. Workers read blobs in place; writes go through a
/// temporary file in the destination directory and a rename, so a blob is absent or complete.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    signer: UrlSigner,
}

fn unavailable(action: &str, path: &Path, e: std::io::Error) -> PortError {
    PortError::Unavailable(format!("{action} {}: {e}", path.display()))
}

impl LocalStore {
    /// Creates the root directory if needed.
    pub fn open(root: impl Into<PathBuf>, signer: UrlSigner) -> PortResult<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| unavailable("creating", &root, e))?;
        Ok(Self { root, signer })
    }

    /// The directory every blob lives under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn signer(&self) -> &UrlSigner {
        &self.signer
    }

    /// The file a (valid) key is stored in.
    pub fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Removes the temporary files of writes that never finished (a process killed mid-PUT
    /// leaves `.upload-*.partial` beside the blob it was writing) that nothing has touched for
    /// `idle`: a write in progress touches its file all the time. Returns how many it removed.
    pub fn sweep_partials(&self, idle: Duration) -> std::io::Result<u64> {
        let before = SystemTime::now() - idle;
        remove_partials(&self.root, before).map(|swept| swept.files)
    }

    /// The directory of the folder `prefix` (`""` for the root).
    fn folder_path(&self, prefix: &str) -> PortResult<PathBuf> {
        let trimmed = prefix.trim_end_matches('/');
        if trimmed.is_empty() {
            return Ok(self.root.clone());
        }
        key::check(trimmed)?;
        Ok(self.path_of(trimmed))
    }

    /// A temporary file beside `key`'s destination, and that destination.
    pub(crate) fn temp_for(&self, key: &str) -> PortResult<(NamedTempFile, PathBuf)> {
        key::check(key)?;
        let destination = self.path_of(key);
        let dir = destination.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir).map_err(|e| unavailable("creating", dir, e))?;
        let temp = tempfile::Builder::new()
            .prefix(".upload-")
            .suffix(".partial")
            .tempfile_in(dir)
            .map_err(|e| unavailable("creating a file in", dir, e))?;
        Ok((temp, destination))
    }
}

/// Whether a file is the temporary file of a write ([`LocalStore::temp_for`]).
fn is_partial(name: &str) -> bool {
    name.starts_with(".upload-") && name.ends_with(".partial")
}

fn modified(meta: &Metadata) -> DateTime<Utc> {
    meta.modified()
        .map(DateTime::<Utc>::from)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A folder that is not there (or is a file): it holds nothing.
fn missing(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// Calls `visit` with every regular file under `dir` (at any depth). A folder that vanishes
/// meanwhile (deleted by someone else) is skipped; a missing `dir` has no files.
fn walk(dir: &Path, visit: &mut impl FnMut(&Path, &Metadata)) -> std::io::Result<()> {
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if missing(&e) => continue,
            Err(e) => return Err(e),
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                folders.push(entry.path());
            } else if kind.is_file()
                && let Ok(meta) = entry.metadata()
            {
                visit(&entry.path(), &meta);
            }
        }
    }
    Ok(())
}

/// Removes the partial files under `root` last written before `before`.
fn remove_partials(root: &Path, before: SystemTime) -> std::io::Result<SweptTemporaries> {
    let mut swept = SweptTemporaries::default();
    walk(root, &mut |path, meta| {
        let partial = path
            .file_name()
            .is_some_and(|name| is_partial(&name.to_string_lossy()));
        let stale = meta.modified().is_ok_and(|at| at < before);
        if partial && stale && std::fs::remove_file(path).is_ok() {
            swept.files += 1;
            swept.bytes += meta.len();
        }
    })?;
    Ok(swept)
}

/// Runs blocking filesystem work off the async threads.
async fn blocking<T: Send + 'static>(
    what: &'static str,
    path: PathBuf,
    work: impl FnOnce(&Path) -> std::io::Result<T> + Send + 'static,
) -> PortResult<T> {
    tokio::task::spawn_blocking(move || work(&path).map_err(|e| unavailable(what, &path, e)))
        .await
        .map_err(|e| PortError::Unavailable(format!("{what} task: {e}")))?
}

#[async_trait]
impl BlobStore for LocalStore {
    async fn ping(&self) -> PortResult<()> {
        tokio::fs::metadata(&self.root)
            .await
            .map(|_| ())
            .map_err(|e| unavailable("reading", &self.root, e))
    }

    async fn size(&self, key: &str) -> PortResult<u64> {
        key::check(key)?;
        match tokio::fs::metadata(self.path_of(key)).await {
            Ok(m) if m.is_file() => Ok(m.len()),
            _ => Err(PortError::NotFound),
        }
    }

    async fn put_file(&self, key: &str, path: &Path, _content_type: &str) -> PortResult<u64> {
        let (temp, destination) = self.temp_for(key)?;
        let source = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let mut temp = temp;
            let size = std::io::copy(&mut std::fs::File::open(&source)?, temp.as_file_mut())?;
            temp.as_file().sync_all()?;
            use std::os::unix::fs::PermissionsExt;
            temp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))?;
            temp.persist(&destination).map_err(|e| e.error)?;
            Ok(size)
        })
        .await
        .map_err(|e| PortError::Unavailable(format!("copy task: {e}")))?
        .map_err(|e| unavailable("storing", path, e))
    }

    async fn local_copy(&self, key: &str, _scratch: &Path) -> PortResult<PathBuf> {
        self.size(key).await?;
        Ok(self.path_of(key))
    }

    async fn delete_prefix(&self, prefix: &str) -> PortResult<()> {
        let trimmed = prefix.trim_end_matches('/');
        key::check(trimmed)?;
        let path = self.path_of(trimmed);
        match tokio::fs::remove_dir_all(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(unavailable("deleting", &path, e)),
        }
    }

    async fn delete(&self, key: &str) -> PortResult<()> {
        key::check(key)?;
        let path = self.path_of(key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(unavailable("deleting", &path, e)),
        }
    }

    async fn copy(&self, from: &str, to: &str) -> PortResult<()> {
        key::check(from)?;
        self.size(from).await?;
        // Through a temporary file renamed into place, like every write: a watcher never sees
        // half a copy.
        self.put_file(to, &self.path_of(from), "").await.map(drop)
    }

    async fn presign_put(&self, key: &str, expires: Duration) -> PortResult<PresignedRequest> {
        key::check(key)?;
        Ok(self.signer.sign("PUT", key, expires))
    }

    async fn presign_get(&self, key: &str, expires: Duration) -> PortResult<PresignedRequest> {
        key::check(key)?;
        Ok(self.signer.sign("GET", key, expires))
    }

    async fn folders(&self, prefix: &str) -> PortResult<Vec<String>> {
        let dir = self.folder_path(prefix)?;
        blocking("listing", dir, |dir| {
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) if missing(&e) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            Ok(entries
                .flatten()
                .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect())
        })
        .await
    }

    async fn list(&self, prefix: &str) -> PortResult<Vec<ListedBlob>> {
        let dir = self.folder_path(prefix)?;
        let root = self.root.clone();
        blocking("listing", dir, move |dir| {
            let mut listed = Vec::new();
            walk(dir, &mut |path, meta| {
                let Ok(relative) = path.strip_prefix(&root) else {
                    return;
                };
                let key: Vec<_> = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect();
                listed.push(ListedBlob {
                    key: key.join("/"),
                    size: meta.len(),
                    modified: modified(meta),
                });
            })?;
            Ok(listed)
        })
        .await
    }

    /// Only the temporary files of writes (`.upload-*.partial`): local disk has no multipart
    /// uploads.
    async fn sweep_temporaries(
        &self,
        written_before: DateTime<Utc>,
        _started_before: DateTime<Utc>,
    ) -> PortResult<SweptTemporaries> {
        let before = SystemTime::from(written_before);
        blocking("sweeping", self.root.clone(), move |root| {
            remove_partials(root, before)
        })
        .await
    }

    async fn staged_uploads(&self) -> PortResult<Vec<StagedUpload>> {
        blocking("listing", self.root.join(STAGING), |dir| {
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) if missing(&e) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            Ok(entries
                .flatten()
                .filter_map(|entry| {
                    let upload = entry.file_name().to_str()?.parse::<UploadId>().ok()?;
                    let meta = entry.metadata().ok().filter(Metadata::is_file)?;
                    Some(StagedUpload {
                        upload,
                        bytes: meta.len(),
                        modified: modified(&meta),
                    })
                })
                .collect())
        })
        .await
    }

    async fn discard_staged(&self, upload: UploadId) -> PortResult<()> {
        let path = self.root.join(STAGING).join(upload.to_string());
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(unavailable("deleting", &path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    #[test]
    fn stale_partial_writes_are_swept_and_fresh_ones_kept() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store =
            LocalStore::open(dir.path(), UrlSigner::new(vec![1; 32], "http://x")).expect("a store");
        let folder = dir.path().join("user/video");
        std::fs::create_dir_all(&folder).expect("a folder");
        let stale = folder.join(".upload-abc.partial");
        let fresh = folder.join(".upload-def.partial");
        let blob = folder.join("clip.mp4");
        for path in [&stale, &fresh, &blob] {
            std::fs::write(path, b"bytes").expect("a file");
        }
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        for path in [&stale, &blob] {
            std::fs::File::options()
                .write(true)
                .open(path)
                .and_then(|f| f.set_modified(hour_ago))
                .expect("an old file");
        }
        assert_eq!(store.sweep_partials(Duration::from_secs(600)).ok(), Some(1));
        assert!(!stale.exists());
        assert!(fresh.exists(), "a write in progress");
        assert!(blob.exists(), "a blob is never swept");
    }
}
