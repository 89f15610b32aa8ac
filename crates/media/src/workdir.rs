//! One private temporary directory per run, removed on every path out of it.

use std::path::{Path, PathBuf};

use crate::MediaError;

/// A run's scratch directory. Dropping it removes it and everything inside: on success, on error,
/// on panic (unwinding) and when the run's future is cancelled (Ctrl-C, shutdown).
#[must_use = "the directory is removed when this guard is dropped"]
#[derive(Debug)]
pub struct WorkDir {
    dir: tempfile::TempDir,
}

impl WorkDir {
    /// Creates `vidsnap-XXXXXX` under `root` (the system temp directory when `None`).
    pub fn create(root: Option<&Path>) -> Result<Self, MediaError> {
        let root: PathBuf = root.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let dir = tempfile::Builder::new()
            .prefix("vidsnap-")
            .tempdir_in(&root)
            .map_err(|e| MediaError::io("creating a temporary directory in", root, e))?;
        Ok(Self { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}
