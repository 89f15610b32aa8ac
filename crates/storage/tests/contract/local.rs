//! The contract on a [`LocalStore`] in a temporary directory, its signed-URL routes served on a
//! free port.

use std::{ops::Deref, sync::Arc};

use async_trait::async_trait;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use vidsnap_domain::{PortResult, UploadListener, UploadOutcome};
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
