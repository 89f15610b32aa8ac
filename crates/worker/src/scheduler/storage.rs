//! The storage sweep: what interrupted writes left behind (temporary files, multipart uploads
//! nobody can finish), and the orphan audit, blobs whose video, job or upload session has no row
//! any more (a deletion whose blob deletion failed, a write that raced a deletion, staged bytes
//! of a session whose clean-up failed).
//!
//! The audit walks the key layout: `{user}/{video}/…` belongs to a video, `{user}/jobs/{job}/…`
//! to a job (`Job::prefix`), and an upload's staged bytes to its session. Only folders whose
//! names are ids in their canonical form are considered: anything else under the storage root
//! or prefix (another deployment's prefix in a shared bucket, a file put there by hand) is left
//! alone. A folder is an orphan when the database has no row for its id *and* its newest blob is
//! older than the grace, so a write that races its row (or its deletion) is never taken; ids
//! are asked of the database in batches, and a database error leaves everything in place.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use vidsnap_domain::{
    BlobStore, JobId, PortError, PortResult, Repository, UploadId, UserId, VideoId,
    ports::SweptTemporaries,
};

/// `[scheduler.storage]`: how often the storage sweep runs and what it takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSweepConfig {
    /// How often to sweep temporaries and audit orphans; the first sweep runs at start-up (0
    /// disables both).
    pub interval_seconds: u64,
    /// A temporary file of a write (local disk) not written to for this long was interrupted:
    /// a write in progress touches its file all the time.
    pub temporary_grace_seconds: u64,
    /// A multipart upload (S3) started this long ago that no resumable upload names was
    /// abandoned. It counts from the start, so it must exceed the longest upload a client makes
    /// straight to the bucket (`/v1/videos/{id}/multipart`) or a worker makes of an output.
    pub multipart_grace_seconds: u64,
    /// The blobs of a video or job without a row, or the staged bytes of an upload session
    /// without one, are orphans once their newest byte is this old.
    pub orphan_grace_seconds: u64,
    /// Removes the orphans found; `false` only reports them (a log line each and the metrics).
    pub remove_orphans: bool,
}

impl Default for StorageSweepConfig {
    fn default() -> Self {
        Self {
            interval_seconds: 3600,
            temporary_grace_seconds: 3600,
            multipart_grace_seconds: 24 * 3600,
            orphan_grace_seconds: 3600,
            remove_orphans: true,
        }
    }
}

/// What one kind of orphan came to in an audit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Orphaned {
    /// Folders (one per video, job or upload session) without a row, past the grace.
    pub found: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Those removed (none in report-only mode), and their bytes.
    pub removed: u64,
    pub removed_bytes: u64,
}

/// What an orphan audit found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Audit {
    pub videos: Orphaned,
    pub jobs: Orphaned,
    /// Staged bytes of resumable uploads whose session is gone.
    pub uploads: Orphaned,
    /// Folders without a row whose newest blob is within the grace: left for a later audit.
    pub young: u64,
}

/// What a storage sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageSwept {
    pub temporaries: SweptTemporaries,
    pub orphans: Audit,
}

/// The kinds of orphans, as the metrics' `kind` label and the logs name them.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Video,
    Job,
    Upload,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Self::Video => "video",
            Self::Job => "job",
            Self::Upload => "upload",
        }
    }
}

impl Audit {
    fn of(&mut self, kind: Kind) -> &mut Orphaned {
        match kind {
            Kind::Video => &mut self.videos,
            Kind::Job => &mut self.jobs,
            Kind::Upload => &mut self.uploads,
        }
    }
}

/// Ids asked of the database at once.
const ID_BATCH: usize = 500;

/// The id a folder is named after, when the name is one in its canonical form.
fn id_of<T: std::str::FromStr + std::fmt::Display>(name: &str) -> Option<T> {
    name.parse::<T>().ok().filter(|id| id.to_string() == name)
}

fn seconds(n: u64) -> TimeDelta {
    TimeDelta::seconds(i64::try_from(n).unwrap_or(i64::MAX))
}

/// The storage sweep over one blob store and the repository that says what exists.
pub(super) struct StorageSweep<'a> {
    pub(super) config: &'a StorageSweepConfig,
    pub(super) repo: &'a dyn Repository,
    pub(super) blobs: &'a dyn BlobStore,
}

impl StorageSweep<'_> {
    /// The audit, then the temporaries (an orphaned upload's staging discarded by the audit
    /// no longer names its multipart upload, which the same sweep then aborts once stale).
    pub(super) async fn run(&self, now: DateTime<Utc>) -> StorageSwept {
        let orphans = self.audit(now).await;
        let temporaries = self.sweep_temporaries(now).await;
        StorageSwept {
            temporaries,
            orphans,
        }
    }

    pub(super) async fn sweep_temporaries(&self, now: DateTime<Utc>) -> SweptTemporaries {
        let written_before = now - seconds(self.config.temporary_grace_seconds);
        let started_before = now - seconds(self.config.multipart_grace_seconds);
        let swept = match self
            .blobs
            .sweep_temporaries(written_before, started_before)
            .await
        {
            Ok(swept) => swept,
            Err(e) => {
                tracing::warn!(error = %e, "sweeping storage temporaries failed");
                return SweptTemporaries::default();
            }
        };
        if swept != SweptTemporaries::default() {
            tracing::info!(
                files = swept.files,
                bytes = swept.bytes,
                multipart_uploads = swept.multipart_uploads,
                "removed what interrupted writes left in storage"
            );
        }
        metrics::counter!("vidsnap_storage_temporaries_removed_total", "kind" => "file")
            .increment(swept.files);
        metrics::counter!("vidsnap_storage_temporaries_removed_total", "kind" => "multipart")
            .increment(swept.multipart_uploads);
        metrics::counter!("vidsnap_storage_temporaries_removed_bytes_total").increment(swept.bytes);
        swept
    }

    pub(super) async fn audit(&self, now: DateTime<Utc>) -> Audit {
        let before = now - seconds(self.config.orphan_grace_seconds);
        let mut audit = Audit::default();
        match self.blobs.folders("").await {
            Ok(top) => {
                for user in top.iter().filter_map(|name| id_of::<UserId>(name)) {
                    if let Err(e) = self.audit_user(user, before, &mut audit).await {
                        tracing::warn!(%user, error = %e, "auditing a user's blobs failed");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing the storage for the orphan audit failed"),
        }
        if let Err(e) = self.audit_staged(before, &mut audit).await {
            tracing::warn!(error = %e, "auditing staged uploads failed");
        }
        for kind in [Kind::Video, Kind::Job, Kind::Upload] {
            let orphaned = *audit.of(kind);
            let label = kind.label();
            metrics::counter!("vidsnap_storage_orphans_found_total", "kind" => label)
                .increment(orphaned.found);
            metrics::gauge!("vidsnap_storage_orphan_bytes", "kind" => label)
                .set(orphaned.bytes as f64);
            metrics::counter!("vidsnap_storage_orphans_removed_total", "kind" => label)
                .increment(orphaned.removed);
            metrics::counter!("vidsnap_storage_orphans_removed_bytes_total", "kind" => label)
                .increment(orphaned.removed_bytes);
        }
        let found = audit.videos.found + audit.jobs.found + audit.uploads.found;
        if found > 0 {
            let bytes = audit.videos.bytes + audit.jobs.bytes + audit.uploads.bytes;
            let removed = audit.videos.removed + audit.jobs.removed + audit.uploads.removed;
            tracing::warn!(
                found,
                bytes,
                removed,
                videos = audit.videos.found,
                jobs = audit.jobs.found,
                uploads = audit.uploads.found,
                "the storage held blobs without a row"
            );
        }
        audit
    }

    /// The folders of one user's videos and jobs that have no row.
    async fn audit_user(
        &self,
        user: UserId,
        before: DateTime<Utc>,
        audit: &mut Audit,
    ) -> PortResult<()> {
        let names = self.blobs.folders(&format!("{user}/")).await?;
        let videos: Vec<VideoId> = names.iter().filter_map(|name| id_of(name)).collect();
        for batch in videos.chunks(ID_BATCH) {
            let existing: HashSet<VideoId> = self
                .repo
                .existing_videos(batch)
                .await?
                .into_iter()
                .collect();
            for video in batch.iter().filter(|id| !existing.contains(id)) {
                self.orphan(Kind::Video, &format!("{user}/{video}/"), before, audit)
                    .await?;
            }
        }
        if !names.iter().any(|name| name == "jobs") {
            return Ok(());
        }
        let names = self.blobs.folders(&format!("{user}/jobs/")).await?;
        let jobs: Vec<JobId> = names.iter().filter_map(|name| id_of(name)).collect();
        for batch in jobs.chunks(ID_BATCH) {
            let existing: HashSet<JobId> =
                self.repo.existing_jobs(batch).await?.into_iter().collect();
            for job in batch.iter().filter(|id| !existing.contains(id)) {
                self.orphan(Kind::Job, &format!("{user}/jobs/{job}/"), before, audit)
                    .await?;
            }
        }
        Ok(())
    }

    /// A folder whose row is missing: an orphan (reported, and removed unless report-only)
    /// when its newest blob is older than `before`.
    async fn orphan(
        &self,
        kind: Kind,
        prefix: &str,
        before: DateTime<Utc>,
        audit: &mut Audit,
    ) -> PortResult<()> {
        let blobs = self.blobs.list(prefix).await?;
        let Some(newest) = blobs.iter().map(|blob| blob.modified).max() else {
            return Ok(());
        };
        if newest >= before {
            audit.young += 1;
            return Ok(());
        }
        let bytes: u64 = blobs.iter().map(|blob| blob.size).sum();
        let orphaned = audit.of(kind);
        orphaned.found += 1;
        orphaned.bytes += bytes;
        let kind = kind.label();
        if !self.config.remove_orphans {
            tracing::warn!(kind, %prefix, blobs = blobs.len(), bytes, %newest, "blobs without a row (report only: not removed)");
            return Ok(());
        }
        match self.blobs.delete_prefix(prefix).await {
            Ok(()) => {
                orphaned.removed += 1;
                orphaned.removed_bytes += bytes;
                tracing::info!(kind, %prefix, blobs = blobs.len(), bytes, %newest, "removed blobs without a row");
            }
            Err(e) => {
                tracing::warn!(kind, %prefix, error = %e, "removing blobs without a row failed");
            }
        }
        Ok(())
    }

    /// Staged bytes of upload sessions that are gone (their expiry or termination failed to
    /// discard them). A session that exists keeps its bytes however old they are: it is
    /// expired, with its bytes, by the scheduler's cleanup.
    async fn audit_staged(&self, before: DateTime<Utc>, audit: &mut Audit) -> PortResult<()> {
        for staged in self.blobs.staged_uploads().await? {
            if self.session_exists(staged.upload).await? {
                continue;
            }
            if staged.modified >= before {
                audit.young += 1;
                continue;
            }
            audit.uploads.found += 1;
            audit.uploads.bytes += staged.bytes;
            let upload = staged.upload;
            if !self.config.remove_orphans {
                tracing::warn!(kind = "upload", %upload, bytes = staged.bytes, "staged bytes without a session (report only: not removed)");
                continue;
            }
            match self.blobs.discard_staged(upload).await {
                Ok(()) => {
                    audit.uploads.removed += 1;
                    audit.uploads.removed_bytes += staged.bytes;
                    tracing::info!(kind = "upload", %upload, bytes = staged.bytes, "removed staged bytes without a session");
                }
                Err(e) => {
                    tracing::warn!(kind = "upload", %upload, error = %e, "removing staged bytes without a session failed");
                }
            }
        }
        Ok(())
    }

    async fn session_exists(&self, upload: UploadId) -> PortResult<bool> {
        match self.repo.upload(None, upload).await {
            Ok(_) => Ok(true),
            Err(PortError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_ids_name_folders() {
        let id = VideoId::new();
        assert_eq!(id_of::<VideoId>(&id.to_string()), Some(id));
        assert_eq!(id_of::<VideoId>(&id.to_string().to_uppercase()), None);
        assert_eq!(id_of::<VideoId>(&id.as_uuid().simple().to_string()), None);
        for name in ["jobs", ".uploads", "tenant", ""] {
            assert_eq!(id_of::<VideoId>(name), None, "{name:?}");
        }
    }

    #[test]
    fn the_defaults_keep_live_uploads() {
        let config = StorageSweepConfig::default();
        assert!(config.remove_orphans);
        assert!(
            config.multipart_grace_seconds >= 24 * 3600,
            "a client's direct multipart upload may take hours"
        );
        let parsed: StorageSweepConfig =
            serde_json::from_str(r#"{"remove_orphans": false}"#).expect("a config");
        assert_eq!(parsed.interval_seconds, 3600);
        assert!(serde_json::from_str::<StorageSweepConfig>(r#"{"grace": 1}"#).is_err());
    }
}
