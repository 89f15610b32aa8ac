//! Watched folders on local storage: the directory of each `[[watch]]` prefix is scanned every
//! few seconds, and a file unchanged (size and modification time) between two scans is handed
//! to the upload listener as an object that landed, as an S3 event would hand it over. Hidden
//! files (`.name`, which includes the store's own temporary files) are not looked at; the
//! listener decides what is a video and registers each object once.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio_util::sync::CancellationToken;
use vidsnap_domain::{PortError, UploadListener, UploadOutcome};

/// What a file looked like at a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    size: u64,
    modified: Option<SystemTime>,
}

/// Scans watched folders under a local store's root.
pub struct FolderWatcher {
    root: PathBuf,
    /// Folders relative to the root, each ending in `/`.
    folders: Vec<String>,
    listener: Arc<dyn UploadListener>,
    every: Duration,
    /// The files of the last scan, and whether each was handed over in that state.
    known: HashMap<String, (Seen, bool)>,
}

impl std::fmt::Debug for FolderWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderWatcher")
            .field("root", &self.root)
            .field("folders", &self.folders)
            .finish_non_exhaustive()
    }
}

impl FolderWatcher {
    pub fn new(
        root: PathBuf,
        folders: Vec<String>,
        listener: Arc<dyn UploadListener>,
        every: Duration,
    ) -> Self {
        Self {
            root,
            folders,
            listener,
            every: every.max(Duration::from_millis(50)),
            known: HashMap::new(),
        }
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        for folder in &self.folders {
            let dir = self.root.join(folder);
            if let Err(e) = std::fs::create_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot create a watched folder");
            }
        }
        loop {
            self.scan_once().await;
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.every) => {}
            }
        }
    }

    /// One scan: hands over the files that have not changed since the previous scan and were
    /// not handed over in that state. Returns how many were handed over.
    pub async fn scan_once(&mut self) -> usize {
        let (root, folders) = (self.root.clone(), self.folders.clone());
        let files = tokio::task::spawn_blocking(move || {
            let mut files = HashMap::new();
            for folder in folders {
                walk(&root, &root.join(&folder), &mut files);
            }
            files
        })
        .await
        .unwrap_or_default();
        let mut handed = 0;
        let mut next = HashMap::with_capacity(files.len());
        for (key, seen) in files {
            let handled = match self.known.get(&key) {
                Some((before, handled)) if *before == seen => {
                    if *handled {
                        true
                    } else {
                        handed += 1;
                        self.hand_over(&key, seen.size).await
                    }
                }
                // New or still being written: look again at the next scan.
                _ => false,
            };
            next.insert(key, (seen, handled));
        }
        self.known = next;
        handed
    }

    /// Whether the object is settled (registered, or not a video); a failure is tried again at
    /// the next scan, except for a missing owner, which waits for the file to change.
    async fn hand_over(&self, key: &str, size: u64) -> bool {
        match self.listener.uploaded(key, size).await {
            Ok(UploadOutcome::Queued) => {
                tracing::info!(key, size, "a file landed in a watched folder");
                true
            }
            Ok(UploadOutcome::Duplicate | UploadOutcome::NotAnUpload) => true,
            Err(PortError::NotFound) => true,
            Err(e) => {
                tracing::warn!(key, error = %e, "registering a watched folder's file failed; retrying");
                false
            }
        }
    }
}

/// Every regular, non-hidden file under `dir`, keyed by its path relative to `root` with `/`.
fn walk(root: &Path, dir: &Path, files: &mut HashMap<String, Seen>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let path = entry.path();
        if meta.is_dir() {
            walk(root, &path, files);
        } else if meta.is_file() {
            let Ok(relative) = path.strip_prefix(root) else {
                continue;
            };
            let Some(key) = relative
                .components()
                .map(|c| c.as_os_str().to_str())
                .collect::<Option<Vec<_>>>()
            else {
                tracing::warn!(path = %path.display(), "a watched file's name is not UTF-8: skipped");
                continue;
            };
            files.insert(
                key.join("/"),
                Seen {
                    size: meta.len(),
                    modified: meta.modified().ok(),
                },
            );
        }
    }
}
