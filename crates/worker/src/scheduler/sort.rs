//! Seed 002's bucket workflow, after the `qc` job: each file of a sorted watch is decided on
//! (its report, its sidecar, its job's outcome) and moved to an outcome folder, and files in the
//! failed folder are retried.
//!
//! Crash safety: a decision is recorded first, in one transaction with its notifications and the
//! video's new key (`moving_from` keeps the old one); the objects are then copied and the
//! originals deleted, and the move is marked done. Every step is idempotent, so a crash anywhere
//! is finished by the next pass (copy again what is still at the old key, delete, mark done):
//! nothing lost, nothing duplicated. Racing schedulers decide once (one result per attempt).

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use vidsnap_domain::{
    BlobStore, Change, ErrorCode, EventType, Job, JobStatus, MediaFacts, Mismatch, Move, Operation,
    PortError, PortResult, QcOutcome, QcResult, QcResultId, Repository, Sidecar, SortItem, Step,
    Video, sorting::MAX_SIDECAR_BYTES,
};
use vidsnap_jobs::{JobService, Sort, Watch, as_folder};

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sorted {
    pub processed: u64,
    pub failed: u64,
    pub unable_to_process: u64,
    /// Failed files whose job was run again.
    pub retried: u64,
    /// Moves finished (including those a crash left half done).
    pub moved: u64,
    /// Files left for the next pass because something failed (storage, database).
    pub errors: u64,
}

pub(super) struct Sorter<'a> {
    pub repo: &'a Arc<dyn Repository>,
    pub blobs: &'a Arc<dyn BlobStore>,
    pub jobs: &'a JobService,
}

/// At most this many files per pass.
const BATCH: u32 = 200;

impl Sorter<'_> {
    pub(super) async fn sort(&self, now: DateTime<Utc>) -> Sorted {
        let mut sorted = Sorted::default();
        let watches: Vec<&Watch> = self
            .jobs
            .watches()
            .iter()
            .filter(|w| w.sort.is_some())
            .collect();
        if watches.is_empty() {
            return sorted;
        }
        let folders: Vec<String> = watches.iter().flat_map(|w| w.folders()).collect();
        let items = match self.repo.sort_candidates(&folders, BATCH).await {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the files to sort");
                sorted.errors += 1;
                metrics::counter!("vidsnap_qc_sort_errors_total").increment(1);
                return sorted;
            }
        };
        for item in items {
            if let Err(e) = self.sort_one(&watches, &item, now, &mut sorted).await {
                tracing::warn!(video = %item.video.id, key = ?item.video.source, error = %e,
                               "sorting a watched file failed; the next pass tries again");
                sorted.errors += 1;
                metrics::counter!("vidsnap_qc_sort_errors_total").increment(1);
            }
        }
        sorted
    }

    async fn sort_one(
        &self,
        watches: &[&Watch],
        item: &SortItem,
        now: DateTime<Utc>,
        sorted: &mut Sorted,
    ) -> PortResult<()> {
        let video = &item.video;
        let Some(key) = video.source.as_deref() else {
            return Ok(());
        };
        if let Some(from) = &item.moving_from {
            self.finish_move(video, from, key).await?;
            sorted.moved += 1;
            return Ok(());
        }
        let Some((watch, sort)) = watches.iter().find_map(|w| {
            let sort = w.sort.as_ref()?;
            w.holds(key).then_some((*w, sort))
        }) else {
            return Ok(());
        };
        let Some(job_id) = video.job else {
            return Ok(());
        };
        let job = match self.repo.job(None, job_id).await {
            Ok(job) => job,
            Err(PortError::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        if !job.status.is_terminal() {
            return Ok(());
        }
        let in_failed = key.starts_with(&as_folder(&sort.failed));
        let results = self.repo.qc_results_of(video.id).await?;
        if let Some(last) = results.last()
            && last.job == Some(job.id)
            && last.cycle == job.cycle
        {
            // This run is decided. A failure that stays in the failed folder is run again after
            // the delay.
            let due = last.created_at + seconds(sort.retry_delay_seconds);
            if in_failed && last.outcome == QcOutcome::Failed && now >= due {
                self.retry(&job).await?;
                sorted.retried += 1;
            }
            return Ok(());
        }

        // The sidecar, unless the file may still wait for it.
        let sidecar_key = Sidecar::key_for(key);
        let sidecar = if sort.sidecar {
            self.read_sidecar(&sidecar_key).await?
        } else {
            None
        };
        let waited = now - video.created_at >= seconds(sort.sidecar_wait_seconds);
        if sort.sidecar && sidecar.is_none() && !in_failed && !waited {
            return Ok(());
        }

        let qc = qc_step(&job);
        let mut problems = Vec::new();
        if job.status != JobStatus::Succeeded {
            let failure = qc
                .and_then(|step| step.last_error.clone())
                .or_else(|| job.steps.iter().find_map(|s| s.last_error.clone()));
            problems.push(match failure {
                Some(failure) => Mismatch {
                    code: failure.code,
                    message: failure.message,
                },
                None => Mismatch {
                    code: ErrorCode::QcFailed,
                    message: format!("the qc job ended {}", job.status.as_str()),
                },
            });
        }
        let summary = qc
            .and_then(|step| step.result.clone())
            .unwrap_or(Value::Null);
        let passed = summary["passed"].as_bool().unwrap_or(false);
        let rating = summary["rating"]
            .as_u64()
            .and_then(|r| u8::try_from(r).ok());
        if job.status == JobStatus::Succeeded && !passed {
            let findings: Vec<&str> = summary["failed"]
                .as_array()
                .or_else(|| summary["findings"].as_array())
                .map(|f| f.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            problems.push(Mismatch {
                code: ErrorCode::QcFailed,
                message: format!(
                    "the file failed quality control (rating {}{})",
                    rating.map_or("unknown".to_owned(), |r| r.to_string()),
                    if findings.is_empty() {
                        String::new()
                    } else {
                        format!("; findings: {}", findings.join(", "))
                    }
                ),
            });
        }
        let mut sidecar_json = Value::Null;
        if sort.sidecar {
            match &sidecar {
                None => problems.push(Mismatch {
                    code: ErrorCode::MetadataMissing,
                    message: format!(
                        "no metadata sidecar {sidecar_key} arrived within {} s",
                        sort.sidecar_wait_seconds
                    ),
                }),
                Some((raw, parsed)) => {
                    sidecar_json = serde_json::from_slice(raw)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(raw).into()));
                    match parsed {
                        Err(invalid) => problems.extend(invalid.iter().cloned()),
                        // Without a probe (the file could not be read), its own failure says why.
                        Ok(sidecar) => {
                            if let Some(facts) = MediaFacts::from_probe(&summary) {
                                problems
                                    .extend(sidecar.check(&facts, sort.duration_tolerance_seconds));
                            }
                        }
                    }
                }
            }
        }

        let retries = results
            .iter()
            .filter(|r| r.key.starts_with(&as_folder(&sort.failed)))
            .count() as u32;
        let outcome = if problems.is_empty() {
            QcOutcome::Processed
        } else if in_failed && retries + 1 >= sort.max_retries.max(1) {
            QcOutcome::UnableToProcess
        } else {
            QcOutcome::Failed
        };
        let folder = match outcome {
            QcOutcome::Processed => Some(&sort.processed),
            QcOutcome::Failed if in_failed => None,
            QcOutcome::Failed => Some(&sort.failed),
            QcOutcome::UnableToProcess => Some(&sort.unable_to_process),
        };
        let moved_to = match folder {
            Some(folder) => Some(self.destination(watch, sort, video, key, folder).await?),
            None => None,
        };
        let checks = self.report_checks(qc).await;
        let result = QcResult {
            id: QcResultId::new(),
            owner: video.owner,
            video: video.id,
            job: Some(job.id),
            cycle: job.cycle,
            attempt: results.len() as u32,
            key: key.to_owned(),
            file_name: video.file_name.clone(),
            outcome,
            rating,
            passed,
            error: Mismatch::failure(&problems),
            checks,
            sidecar: sidecar_json,
            moved_to: moved_to.clone(),
            created_at: now,
        };
        let moving = moved_to.as_ref().map(|to| Move {
            from: key.to_owned(),
            to: to.clone(),
            outputs: Some((job.id, beside(key), beside(to))),
        });
        let event = moving.as_ref().map(|_| EventType::for_qc(outcome));
        if !self
            .repo
            .record_qc_result(&result, moving.as_ref(), event)
            .await?
        {
            return Ok(());
        }
        metrics::counter!("vidsnap_qc_outcomes_total", "outcome" => outcome.as_str()).increment(1);
        tracing::info!(%key, video = %video.id, outcome = outcome.as_str(), to = ?moved_to,
                       error = ?result.error.as_ref().map(|e| e.code), "sorted a watched file");
        match outcome {
            QcOutcome::Processed => sorted.processed += 1,
            QcOutcome::Failed => sorted.failed += 1,
            QcOutcome::UnableToProcess => sorted.unable_to_process += 1,
        }
        if let Some(to) = &moved_to {
            self.finish_move(video, key, to).await?;
            sorted.moved += 1;
        }
        Ok(())
    }

    /// The sidecar's bytes and what they parse to; `None` when there is none.
    #[allow(clippy::type_complexity)]
    async fn read_sidecar(
        &self,
        key: &str,
    ) -> PortResult<Option<(Vec<u8>, Result<Sidecar, Vec<Mismatch>>)>> {
        let size = match self.blobs.size(key).await {
            Ok(size) => size,
            Err(PortError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        if size > MAX_SIDECAR_BYTES {
            let why = vec![Mismatch {
                code: ErrorCode::SidecarInvalid,
                message: format!(
                    "the sidecar has {size} bytes; at most {MAX_SIDECAR_BYTES} are read"
                ),
            }];
            return Ok(Some((Vec::new(), Err(why))));
        }
        let bytes = self.read_small(key).await?;
        let parsed = Sidecar::parse(&bytes);
        Ok(Some((bytes, parsed)))
    }

    async fn read_small(&self, key: &str) -> PortResult<Vec<u8>> {
        let scratch = tempfile::tempdir()
            .map_err(|e| PortError::Unavailable(format!("a scratch directory: {e}")))?;
        let path = self.blobs.local_copy(key, scratch.path()).await?;
        tokio::fs::read(&path)
            .await
            .map_err(|e| PortError::Unavailable(format!("reading {key}: {e}")))
    }

    /// The report's checks, `null` when it cannot be read (the summary is kept either way).
    async fn report_checks(&self, qc: Option<&Step>) -> Value {
        let Some(artefact) = qc.and_then(|s| s.artefacts.iter().find(|a| a.name == "report"))
        else {
            return Value::Null;
        };
        match self.read_small(&artefact.key).await {
            Ok(bytes) => serde_json::from_slice::<Value>(&bytes)
                .map(|report| report["checks"].clone())
                .unwrap_or(Value::Null),
            Err(e) => {
                tracing::warn!(key = %artefact.key, error = %e, "cannot read a qc report");
                Value::Null
            }
        }
    }

    /// The key the file gets in `folder`: its path below the watched folder kept, and a name
    /// taken by another video made unique with the video's id.
    async fn destination(
        &self,
        watch: &Watch,
        sort: &Sort,
        video: &Video,
        key: &str,
        folder: &str,
    ) -> PortResult<String> {
        let relative = [watch.folder(), as_folder(&sort.failed)]
            .iter()
            .find_map(|f| key.strip_prefix(f.as_str()))
            .unwrap_or_else(|| key.rsplit('/').next().unwrap_or(key))
            .to_owned();
        let wanted = format!("{}{relative}", as_folder(folder));
        match self.repo.video_by_source(&wanted).await {
            Err(PortError::NotFound) => Ok(wanted),
            Ok(other) if other.id == video.id => Ok(wanted),
            Ok(_) => {
                let (stem, ext) = wanted.rsplit_once('.').unwrap_or((&wanted, ""));
                let short = &video.id.to_string()[..8];
                Ok(if ext.is_empty() {
                    format!("{stem}-{short}")
                } else {
                    format!("{stem}-{short}.{ext}")
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Copies what is still at the old keys (the file, its sidecar, the job's outputs beside
    /// it) to the new ones, deletes the old, and marks the move done.
    async fn finish_move(&self, video: &Video, from: &str, to: &str) -> PortResult<()> {
        let mut pairs = vec![
            (from.to_owned(), to.to_owned()),
            (Sidecar::key_for(from), Sidecar::key_for(to)),
        ];
        if let Some(job) = video.job {
            match self.repo.job(None, job).await {
                Ok(job) => {
                    let (old, new) = (beside(from), beside(to));
                    for artefact in job.steps.iter().flat_map(|s| &s.artefacts) {
                        if let Some(rest) = artefact.key.strip_prefix(&new) {
                            pairs.push((format!("{old}{rest}"), artefact.key.clone()));
                        }
                    }
                }
                Err(PortError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        for (old, new) in &pairs {
            match self.blobs.copy(old, new).await {
                Ok(()) | Err(PortError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        for (old, _) in &pairs {
            self.blobs.delete(old).await?;
        }
        self.repo.finish_move(video.id).await
    }

    /// Runs the job's qc step again (and what follows it): the next decision is the retry's.
    async fn retry(&self, job: &Job) -> PortResult<()> {
        let step = qc_step(job)
            .or_else(|| job.steps.first())
            .map(|s| s.name.clone())
            .ok_or_else(|| PortError::Refused("the job has no step".into()))?;
        self.jobs
            .change(None, job.id, Change::Repeat { step })
            .await
            .map(drop)
    }
}

/// The job's qc step's state.
fn qc_step(job: &Job) -> Option<&Step> {
    let spec = job
        .recipe
        .steps
        .iter()
        .find(|s| matches!(s.op, Operation::Qc(_)))?;
    job.steps.iter().find(|s| s.name == spec.name)
}

/// The prefix of the outputs a watched file's job writes beside it (`Video::beside`):
/// `{folder}/{stem}-`.
fn beside(key: &str) -> String {
    let (folder, name) = key.rsplit_once('/').map_or(("", key), |(f, n)| (f, n));
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    if folder.is_empty() {
        format!("{stem}-")
    } else {
        format!("{folder}/{stem}-")
    }
}

fn seconds(value: f64) -> TimeDelta {
    TimeDelta::milliseconds((value.max(0.0) * 1000.0) as i64)
}
