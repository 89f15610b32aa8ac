//! The parts of the `Jobs` port written once for every dialect. Above all `change_job`: lock the
//! job, let [`Job::apply`] decide, write what changed, mirror a `/v1/videos` job onto its video,
//! owe the notifications a finished job owes, commit; a dialect supplies only the statements, as
//! a [`JobTx`].

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use vidsnap_domain::{
    Change, EventType, Job, JobId, JobInput, JobUpdate, PortError, PortResult, StepEvent,
    Transition, UserId, Video, VideoId,
};

use crate::{clock, error::corrupt};

/// One dialect's write transaction over a job, from [`lock`](Self::lock) to
/// [`commit`](Self::commit). Dropping it rolls back.
#[async_trait]
pub(crate) trait JobTx: Send + Sized {
    /// The job with its steps, held against every other change to it until the transaction
    /// ends. `NotFound` when it is missing or, with an `owner`, another user's.
    async fn lock(&mut self, owner: Option<UserId>, id: JobId) -> PortResult<Job>;

    /// Writes the job's own row when `row` is set and the steps at `steps` (indexes into
    /// `job.steps`), and appends `events` to the job's history.
    async fn save(
        &mut self,
        job: &Job,
        row: bool,
        steps: &[usize],
        events: &[StepEvent],
    ) -> PortResult<()>;

    /// `Repository::transition` of `video`, inside this transaction.
    async fn transition(&mut self, video: VideoId, change: Transition) -> PortResult<Video>;

    /// Creates the notifications `job`'s outcome owes (`event`), once per job, cycle, event and
    /// channel.
    async fn owe(&mut self, job: &Job, event: EventType, at: DateTime<Utc>) -> PortResult<()>;

    async fn commit(self) -> PortResult<()>;

    /// Ends a transaction that wrote nothing, releasing its locks now rather than whenever its
    /// connection is next used.
    async fn rollback(self);
}

/// Applies `change` to job `id` in `tx`, as [`Jobs::change_job`](vidsnap_domain::Jobs::change_job)
/// describes.
///
/// Whatever the verdict, a change that left the job as it was writes nothing: a stale or busy
/// delivery, a report about another attempt. One that changed it is written even when its
/// verdict is `Stale`: taking over a dead worker's step with no attempts left makes the step
/// `dead` and says the delivery is stale, and dropping that would leave the step `running` for
/// ever.
pub(crate) async fn change_job<T: JobTx>(
    mut tx: T,
    owner: Option<UserId>,
    id: JobId,
    change: Change,
) -> PortResult<JobUpdate> {
    let mut job = tx.lock(owner, id).await?;
    let before = job.clone();
    let at = clock::now();
    let applied = match job.apply(change, at) {
        Ok(applied) => applied,
        Err(refused) => {
            tx.rollback().await;
            return Err(refused.into());
        }
    };
    if job == before {
        tx.rollback().await;
        return Ok(JobUpdate { job, applied });
    }
    let row = (
        job.status,
        job.cycle,
        job.updated_at,
        &job.recipe,
        &job.inputs,
    ) != (
        before.status,
        before.cycle,
        before.updated_at,
        &before.recipe,
        &before.inputs,
    );
    let steps: Vec<usize> = job
        .steps
        .iter()
        .zip(&before.steps)
        .enumerate()
        .filter(|(_, (now, was))| now != was)
        .map(|(i, _)| i)
        .collect();
    tx.save(&job, row, &steps, &applied.events).await?;
    match job.video {
        Some(video) => {
            for transition in &applied.video {
                match tx.transition(video, transition.clone()).await {
                    Ok(_) => {}
                    // The video moved on its own (a user's retry through the old route, a
                    // transition already mirrored by a repeated report): the job is the record.
                    Err(PortError::InvalidTransition { from, to }) => tracing::debug!(
                        job = %job.id,
                        %video,
                        %from,
                        %to,
                        "the video's status no longer allows the job's transition: skipped"
                    ),
                    Err(other) => return Err(other),
                }
            }
        }
        // Only here: a /v1/videos job is announced by its video's transitions (`video.*`).
        None => {
            if let Some(event) = applied.finished.and_then(EventType::for_job) {
                tx.owe(&job, event, at).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(JobUpdate { job, applied })
}

/// Of the jobs reading `video` (by the input index, as their id and `inputs` JSON), the ones whose
/// own record says it is not uploaded yet: the index row does not know, the job's inputs do.
pub(crate) fn waiting_for<'a, Id>(
    jobs: impl IntoIterator<Item = (Id, &'a str)>,
    video: VideoId,
) -> PortResult<Vec<Id>> {
    let mut found = Vec::new();
    for (id, inputs) in jobs {
        let inputs: BTreeMap<String, JobInput> =
            serde_json::from_str(inputs).map_err(|e| corrupt("jobs.inputs", e))?;
        if inputs.values().any(|i| i.video == video && !i.uploaded) {
            found.push(id);
        }
    }
    Ok(found)
}

/// Whether a job may be deleted: not while a step runs (its worker would store artefacts into a
/// folder already removed). Checked under the job's lock, so a worker cannot start it meanwhile.
pub(crate) fn deletable(job: &vidsnap_domain::Job) -> vidsnap_domain::PortResult<()> {
    if job
        .steps
        .iter()
        .any(|s| s.status == vidsnap_domain::StepStatus::Running)
    {
        return Err(vidsnap_domain::PortError::Refused(
            "the job is running: cancel it first".to_owned(),
        ));
    }
    Ok(())
}
