//! The contract on a [`LocalStore`] in a temporary directory, its signed-URL routes served on a
//! free port.

use std::{ops::Deref, sync::Arc};

use async_trait::async_trait;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use vidsnap_domain::{BlobStore, PortResult, UploadListener, UploadOutcome};
use vidsnap_storage::{LocalStore, UrlSigner};

/// Uploads go nowhere: the contract reads them back through the store.
struct Ignore;

#[async_trait]
impl UploadListener for Ignore {
    async fn uploaded(&self, _key: &str, _size: u64) -> PortResult<UploadOutcome> {
        Ok(UploadOutcome::NotAnUpload)
    }
}

/// A store on a new directory, with its routes served until dropped.
pub struct Fresh {
    store: LocalStore,
    server: JoinHandle<()>,
    _root: TempDir,
}

impl Deref for Fresh {
    type Target = LocalStore;
    fn deref(&self) -> &LocalStore {
        &self.store
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub async fn fresh() -> Fresh {
    let root = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let address = listener.local_addr().expect("local address");
    let signer = UrlSigner::new(b"contract secret".to_vec(), format!("http://{address}"));
    let store = LocalStore::open(root.path().join("blobs"), signer.clone()).expect("open");
    let app = vidsnap_storage::routes(Arc::new(store.clone()), signer, Arc::new(Ignore), None);
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .await
            .expect("serve the blob routes");
    });
    Fresh {
        store,
        server,
        _root: root,
    }
}

vidsnap_storage::contract_tests!(fresh);

/// The checks keep to keys of their own, so they can share one store (as `blob_store_contract`
/// runs them for callers without a fresh store per check).
#[tokio::test]
async fn every_check_on_one_store() {
    let store = fresh().await;
    vidsnap_storage::contract::blob_store_contract(&*store).await;
}

/// The temporary file of an interrupted write goes once it has not been written to since the
/// cutoff; one written to since, and every blob, stay.
#[tokio::test]
async fn stale_partial_files_are_swept_and_fresh_ones_kept() {
    let store = fresh().await;
    let folder = store.root().join("user/video");
    std::fs::create_dir_all(&folder).expect("a folder");
    let stale = folder.join(".upload-stale.partial");
    let fresh_one = folder.join(".upload-fresh.partial");
    let blob = folder.join("clip.mp4");
    std::fs::write(&stale, vec![1; 1000]).expect("a partial file");
    std::fs::write(&fresh_one, b"bytes").expect("a partial file");
    std::fs::write(&blob, b"blob").expect("a blob");
    let now = chrono::Utc::now();
    let two_hours_ago = std::time::SystemTime::from(now - chrono::TimeDelta::hours(2));
    for path in [&stale, &blob] {
        std::fs::File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(two_hours_ago))
            .expect("an old file");
    }

    let swept = store
        .sweep_temporaries(now - chrono::TimeDelta::hours(1), now)
        .await
        .expect("sweep");
    assert_eq!(
        (swept.files, swept.bytes, swept.multipart_uploads),
        (1, 1000, 0)
    );
    assert!(!stale.exists());
    assert!(fresh_one.exists(), "written to within the grace");
    assert!(blob.exists(), "a blob is never swept");

    let listed = store.list("user/video").await.expect("list");
    assert_eq!(
        listed.len(),
        2,
        "temporary files are listed too: {listed:?}"
    );
}
