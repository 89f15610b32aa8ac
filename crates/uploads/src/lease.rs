//! An upload's write lease, held by one request: taken by compare-and-set in the database,
//! renewed while a piece streams, released on every path (a panic included).

use std::{sync::Arc, time::Duration};

use vidsnap_domain::{Repository, Upload, UploadId, UserId};

use crate::{Inner, UploadError, UploadResult};

/// A held lease and the session as it was when taken. Dropped without [`Lease::release`] (a
/// panic), it is released from a task of its own.
pub(crate) struct Lease {
    pub(crate) upload: Upload,
    token: String,
    repo: Arc<dyn Repository>,
    lease: Duration,
    ttl: Duration,
    held: bool,
}

impl Lease {
    /// Takes the upload's lease, or fails at once: `Locked` when someone else holds it.
    pub(crate) async fn take(
        core: &Inner,
        owner: Option<UserId>,
        id: UploadId,
    ) -> UploadResult<Self> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let lease = core.settings.lease();
        let upload = core.repo.lease_upload(owner, id, &token, lease).await?;
        Ok(Self {
            upload,
            token,
            repo: core.repo.clone(),
            lease,
            ttl: core.settings.ttl(),
            held: true,
        })
    }

    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// Runs `work` while renewing the lease every third of its length. If a renewal finds the
    /// lease lost (this writer stalled past it and another took over), `work` is dropped
    /// unfinished: whatever it staged is past the recorded offset, which the next writer
    /// discards.
    pub(crate) async fn renewed_while<T>(&self, work: impl Future<Output = T>) -> UploadResult<T> {
        let mut work = std::pin::pin!(work);
        let every = self.lease / 3;
        loop {
            tokio::select! {
                done = &mut work => return Ok(done),
                () = tokio::time::sleep(every) => {
                    match self
                        .repo
                        .renew_upload_lease(self.upload.id, &self.token, self.lease, self.ttl)
                        .await
                    {
                        Ok(()) => {}
                        Err(vidsnap_domain::PortError::LeaseLost) => {
                            return Err(UploadError::LeaseLost);
                        }
                        // A database hiccup: keep writing; the record at the end will tell.
                        Err(e) => tracing::warn!(upload = %self.upload.id, error = %e, "renewing an upload lease failed"),
                    }
                }
            }
        }
    }

    pub(crate) async fn release(mut self) {
        self.held = false;
        if let Err(e) = self
            .repo
            .release_upload_lease(self.upload.id, &self.token)
            .await
        {
            // It runs out by itself.
            tracing::warn!(upload = %self.upload.id, error = %e, "releasing an upload lease failed");
        }
    }

    /// The session is gone with its lease (deleted): nothing to release.
    pub(crate) fn forget(mut self) {
        self.held = false;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        let (repo, id, token) = (self.repo.clone(), self.upload.id, self.token.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = repo.release_upload_lease(id, &token).await;
            });
        }
    }
}
