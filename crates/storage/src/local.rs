//! Blobs as files under a root directory.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use async_trait::async_trait;
use tempfile::NamedTempFile;
use vidsnap_domain::{BlobStore, PortError, PortResult, PresignedRequest};

use crate::{UrlSigner, key};

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
    pub fn sweep_partials(&self, idle: std::time::Duration) -> std::io::Result<u64> {
        let now = std::time::SystemTime::now();
        let mut removed = 0;
        let mut folders = vec![self.root.clone()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder)?.flatten() {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    folders.push(path);
                    continue;
                }
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if !(name.starts_with(".upload-") && name.ends_with(".partial")) {
                    continue;
                }
                let stale = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|at| now.duration_since(at).unwrap_or_default() >= idle);
                if stale && std::fs::remove_file(&path).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
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

    async fn presign_put(&self, key: &str, expires: Duration) -> PortResult<PresignedRequest> {
        key::check(key)?;
        Ok(self.signer.sign("PUT", key, expires))
    }

    async fn presign_get(&self, key: &str, expires: Duration) -> PortResult<PresignedRequest> {
        key::check(key)?;
        Ok(self.signer.sign("GET", key, expires))
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
