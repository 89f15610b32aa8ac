//! [`JobService`]: the use cases over `Repository` and `JobQueue`.

use std::{collections::BTreeMap, sync::Arc};

use async_trait::async_trait;
use chrono::Utc;
use serde_json::{Value, json};
use vidsnap_domain::{
    Change, Job, JobId, JobInput, JobQueue, JobUpdate, NewTask, PortError, PortResult, Problems,
    RecipeDoc, Repository, Task, UploadListener, UploadOutcome, UserId, Video, VideoId,
    VideoOptions, VideoStatus, recipe,
};

use crate::JobError;

/// Told after every change the service makes, for live views (the API's event streams). Called
/// after the change committed; must not block.
pub trait Observer: Send + Sync {
    fn job(&self, _job: &Job) {}
    fn video(&self, _video: &Video) {}
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Observer for Silent {}

/// What recording an upload did, and the video as it left it.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub outcome: UploadOutcome,
    pub video: Video,
}

/// Where a job's recipe comes from.
#[derive(Debug, Clone)]
pub enum RecipeSource {
    /// A built-in recipe (`GET /v1/recipes`).
    Named(String),
    /// A document sent with the request.
    Doc(RecipeDoc),
}

/// The job use cases. Cheap to clone; one per process.
#[derive(Clone)]
pub struct JobService {
    repo: Arc<dyn Repository>,
    queue: Arc<dyn JobQueue>,
    /// Attempts per step where the recipe sets none.
    max_attempts: u32,
    observer: Arc<dyn Observer>,
    /// Folders whose new objects become videos (see [`crate::watch`]).
    pub(crate) watches: Vec<crate::Watch>,
    /// Queue messages that start jobs (see [`crate::intake`]): their inputs' keys are no uploads.
    pub(crate) intakes: Vec<crate::Intake>,
}

impl std::fmt::Debug for JobService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobService")
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl JobService {
    pub fn new(
        repo: Arc<dyn Repository>,
        queue: Arc<dyn JobQueue>,
        max_attempts: u32,
        observer: Arc<dyn Observer>,
    ) -> Self {
        Self {
            repo,
            queue,
            max_attempts: max_attempts.clamp(1, recipe::MAX_ATTEMPTS),
            observer,
            watches: Vec::new(),
            intakes: Vec::new(),
        }
    }

    /// The service with these watched folders (check them first with
    /// [`check_watches`](crate::check_watches)).
    pub fn with_watches(mut self, watches: Vec<crate::Watch>) -> Self {
        self.watches = watches;
        self
    }

    /// The service with these intakes (check them first with
    /// [`check_intakes`](crate::check_intakes)).
    pub fn with_intakes(mut self, intakes: Vec<crate::Intake>) -> Self {
        self.intakes = intakes;
        self
    }

    pub fn watches(&self) -> &[crate::Watch] {
        &self.watches
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    pub fn repo(&self) -> &Arc<dyn Repository> {
        &self.repo
    }

    /// The recipe named or sent, checked with `params`: its `Recipe` and the built-in's name,
    /// or every problem at its JSON path (`recipe.steps[0].op`, `recipe_name`, `params.every`).
    pub fn check(
        &self,
        source: RecipeSource,
        params: &Value,
    ) -> Result<(vidsnap_domain::Recipe, Option<String>), Problems> {
        let (doc, name) = match source {
            RecipeSource::Named(name) => match recipe::builtin(&name) {
                Some(doc) => (doc, Some(name)),
                None => {
                    let known: Vec<String> = recipe::builtins()
                        .into_iter()
                        .filter_map(|r| r.name)
                        .collect();
                    return Err(Problems::one(
                        "recipe_name",
                        format!("no built-in recipe {name:?}: use {}", known.join(", ")),
                    ));
                }
            },
            RecipeSource::Doc(doc) => (doc, None),
        };
        match doc.check(params) {
            Ok(recipe) => Ok((recipe, name)),
            Err(p) => {
                // Parameter problems are the request's; the rest are the recipe document's.
                let prefix = if name.is_some() {
                    "recipe_name."
                } else {
                    "recipe."
                };
                let mut all = Problems::default();
                for (path, message) in p.into_fields() {
                    if path.starts_with("params") {
                        all.add(path, message);
                    } else {
                        all.add(format!("{prefix}{path}"), message);
                    }
                }
                Err(all)
            }
        }
    }

    /// Checks the recipe with `params` against the named `inputs` (the owner's videos), stores
    /// the job and queues its first steps (or leaves them waiting for their uploads).
    pub async fn create(
        &self,
        owner: UserId,
        source: RecipeSource,
        params: Value,
        inputs: BTreeMap<String, VideoId>,
    ) -> Result<Job, JobError> {
        self.create_as(JobId::new(), owner, source, params, inputs)
            .await
    }

    /// [`create`](Self::create) under a given id: a job stored under `id` already is a
    /// `Conflict`, which makes a request that names its job idempotent.
    pub async fn create_as(
        &self,
        id: JobId,
        owner: UserId,
        source: RecipeSource,
        params: Value,
        inputs: BTreeMap<String, VideoId>,
    ) -> Result<Job, JobError> {
        let mut problems = Problems::default();
        let (recipe, name) = match self.check(source, &params) {
            Ok((recipe, name)) => (Some(recipe), name),
            Err(p) => {
                problems.merge(p);
                (None, None)
            }
        };
        let mut job_inputs = BTreeMap::new();
        let wanted = recipe
            .as_ref()
            .map_or_else(|| inputs.keys().cloned().collect(), |r| r.inputs.clone());
        for input in &wanted {
            if !inputs.contains_key(input) {
                problems.add(format!("inputs.{input}"), "required: a video id");
            }
        }
        for (name, &id) in &inputs {
            if !wanted.contains(name) {
                problems.add(
                    format!("inputs.{name}"),
                    format!(
                        "the recipe has no input {name:?}: it takes {}",
                        wanted.join(", ")
                    ),
                );
                continue;
            }
            match self.repo.video(Some(owner), id).await {
                Ok(video) => {
                    job_inputs.insert(
                        name.clone(),
                        JobInput {
                            video: id,
                            uploaded: is_uploaded(&video),
                        },
                    );
                }
                Err(PortError::NotFound) => problems.add(format!("inputs.{name}"), "no such video"),
                Err(e) => return Err(e.into()),
            }
        }
        let Some(recipe) = recipe.filter(|_| problems.is_empty()) else {
            return Err(JobError::Invalid(problems));
        };
        let (job, applied) = Job::new(
            id,
            owner,
            name,
            recipe,
            params,
            job_inputs,
            None,
            self.max_attempts,
            Utc::now(),
        );
        self.repo.create_job(&job, &applied.events).await?;
        self.enqueue(&applied.tasks).await;
        self.observer.job(&job);
        // An upload that completed between the check above and the insert found no job
        // waiting for it: look again now that the job is stored.
        let mut job = job;
        for (name, input) in job.inputs.clone() {
            if input.uploaded {
                continue;
            }
            let video = self.repo.video(None, input.video).await?;
            if is_uploaded(&video) {
                tracing::debug!(job = %job.id, input = %name, "uploaded meanwhile");
                job = self
                    .change(
                        None,
                        job.id,
                        Change::InputUploaded {
                            video: video.id,
                            bytes: None,
                        },
                    )
                    .await?
                    .job;
            }
        }
        Ok(job)
    }

    /// The job `/v1/videos` runs for `video` (stored with `video.job` set to `id`): frames with
    /// the video's options, artefacts beside the video. Its steps wait for the upload.
    pub async fn create_for_video(&self, id: JobId, video: &Video) -> PortResult<Job> {
        let job = video_job(id, video);
        let (job, applied) = job?;
        self.store_new(job, applied).await
    }

    /// The job `/v1/videos` runs for `video` with a recipe of its own (checked with
    /// [`check`](Self::check), one input: the video), artefacts beside the video.
    pub async fn create_for_video_with(
        &self,
        id: JobId,
        video: &Video,
        recipe: vidsnap_domain::Recipe,
        name: Option<String>,
        params: Value,
    ) -> PortResult<Job> {
        let [input] = recipe.inputs.as_slice() else {
            return Err(PortError::Refused(
                "a video's recipe takes exactly one input: the video".to_owned(),
            ));
        };
        let inputs = BTreeMap::from([(
            input.clone(),
            JobInput {
                video: video.id,
                uploaded: is_uploaded(video),
            },
        )]);
        let (job, applied) = Job::new(
            id,
            video.owner,
            name,
            recipe,
            params,
            inputs,
            Some(video.id),
            video.max_attempts.max(1),
            Utc::now(),
        );
        self.store_new(job, applied).await
    }

    async fn store_new(&self, job: Job, applied: vidsnap_domain::Applied) -> PortResult<Job> {
        self.repo.create_job(&job, &applied.events).await?;
        self.enqueue(&applied.tasks).await;
        self.observer.job(&job);
        Ok(job)
    }

    /// Records that `video`'s bytes are stored and starts what waited for them: its
    /// `/v1/videos` job and any job reading it. Idempotent: a repeated notification (an S3
    /// event and the client's own report, moto's two events for one multipart upload) finds
    /// the video already uploaded and changes nothing.
    /// Returns the video as the upload left it (before any worker could take its job).
    pub async fn uploaded(&self, video: &Video, bytes: Option<u64>) -> PortResult<Uploaded> {
        // A video from before jobs, past its upload: nothing of ours to start.
        if video.job.is_none() && video.status != VideoStatus::AwaitingUpload {
            return Ok(Uploaded {
                outcome: UploadOutcome::Duplicate,
                video: video.clone(),
            });
        }
        let first = video.uploaded_at.is_none() && self.repo.mark_uploaded(video.id).await?;
        // Even a repeated notification tells the jobs still waiting: an earlier one may have
        // recorded the upload and then failed before it started them (the change is
        // idempotent: only waiting steps become ready).
        let mut waiting = self.repo.jobs_waiting_for(video.id).await?;
        if let Some(own) = video.job {
            // Its own job first: the video's status follows it.
            let own_waits = waiting.contains(&own);
            waiting.retain(|id| *id != own);
            if first || own_waits || !self.has_job(own).await? {
                waiting.insert(0, own);
            }
        }
        let mut seen = None;
        for id in waiting {
            let change = Change::InputUploaded {
                video: video.id,
                bytes,
            };
            let changed = match self.change_seen(None, id, change.clone()).await {
                Err(PortError::NotFound) if Some(id) == video.job => {
                    // The video's own job was never stored (its creation failed after the
                    // video's), or the video is from before jobs: make it now.
                    tracing::warn!(video = %video.id, job = %id, "the video's job is missing: making it");
                    match self.create_for_video(id, video).await {
                        Ok(_) | Err(PortError::Conflict(_)) => {
                            self.change_seen(None, id, change).await
                        }
                        Err(e) => Err(e),
                    }
                }
                changed => changed,
            };
            match changed {
                Ok((_, Some(mirrored))) if mirrored.id == video.id => seen = Some(mirrored),
                Ok(_) | Err(PortError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        let video = match seen {
            Some(video) => video,
            None => {
                let video = self.repo.video(None, video.id).await?;
                if first {
                    self.observer.video(&video);
                }
                video
            }
        };
        Ok(Uploaded {
            outcome: if first {
                UploadOutcome::Queued
            } else {
                UploadOutcome::Duplicate
            },
            video,
        })
    }

    /// Whether job `id` is stored.
    async fn has_job(&self, id: JobId) -> PortResult<bool> {
        match self.repo.job(None, id).await {
            Ok(_) => Ok(true),
            Err(PortError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Applies `change` to job `id` (scoped to `owner` for users), then queues what it made
    /// ready and tells the observer.
    pub async fn change(
        &self,
        owner: Option<UserId>,
        id: JobId,
        change: Change,
    ) -> PortResult<JobUpdate> {
        Ok(self.change_seen(owner, id, change).await?.0)
    }

    /// [`change`](Self::change), with the job's video as the change left it when it mirrored
    /// one: read (and told to the observer) before the new tasks are queued, so no worker has
    /// moved it on yet.
    async fn change_seen(
        &self,
        owner: Option<UserId>,
        id: JobId,
        change: Change,
    ) -> PortResult<(JobUpdate, Option<Video>)> {
        let update = self.repo.change_job(owner, id, change).await?;
        if !update.applied.events.is_empty() {
            self.observer.job(&update.job);
        }
        let mut seen = None;
        if let Some(video) = update.job.video
            && !update.applied.video.is_empty()
        {
            match self.repo.video(None, video).await {
                Ok(video) => {
                    self.observer.video(&video);
                    seen = Some(video);
                }
                Err(e) => tracing::debug!(%video, error = %e, "cannot read the video back"),
            }
        }
        self.enqueue(&update.applied.tasks).await;
        Ok((update, seen))
    }

    /// Queues tasks. A failed enqueue is logged, not returned: the change that made the task
    /// ready is committed. It is tried again in the background for about a minute (a broker or
    /// database restarting), and past that the scheduler's sweep (`Jobs::overdue_tasks`, after
    /// `requeue_after_seconds`) queues it again.
    pub async fn enqueue(&self, tasks: &[(Task, chrono::DateTime<Utc>)]) {
        for (task, at) in tasks {
            let new = NewTask {
                task: task.clone(),
                not_before: *at,
            };
            if let Err(e) = self.queue.enqueue(new.clone()).await {
                tracing::warn!(job = %task.job, step = %task.step, error = %e, "enqueue failed; trying again");
                let queue = Arc::clone(&self.queue);
                tokio::spawn(async move {
                    let mut delay = std::time::Duration::from_secs(1);
                    for _ in 0..6 {
                        tokio::time::sleep(delay).await;
                        if queue.enqueue(new.clone()).await.is_ok() {
                            tracing::info!(job = %new.task.job, step = %new.task.step, "queued at a later try");
                            return;
                        }
                        delay = (delay * 2).min(std::time::Duration::from_secs(30));
                    }
                    tracing::warn!(job = %new.task.job, step = %new.task.step, "enqueue still failing; the scheduler's sweep will queue it again");
                });
            }
        }
    }
}

/// Whether a video's bytes are stored: `uploaded_at` says, except for a video from before jobs
/// (no job), whose status past `awaiting_upload` does.
fn is_uploaded(video: &Video) -> bool {
    video.uploaded_at.is_some()
        || (video.job.is_none() && video.status != VideoStatus::AwaitingUpload)
}

/// The `/v1/videos` job of `video`: one `frames` step with its options, the manifest and frames
/// kept inside the zip (the folder beside the video holds the zip and the thumbnail only).
fn video_job(id: JobId, video: &Video) -> PortResult<(Job, vidsnap_domain::Applied)> {
    let doc = frames_doc(&video.options);
    let recipe = doc
        .check(&Value::Null)
        .map_err(|p| PortError::Refused(format!("the video's options: {p}")))?;
    let inputs = BTreeMap::from([(
        "video".to_owned(),
        JobInput {
            video: video.id,
            uploaded: is_uploaded(video),
        },
    )]);
    Ok(Job::new(
        id,
        video.owner,
        Some("frames".to_owned()),
        recipe,
        Value::Null,
        inputs,
        Some(video.id),
        video.max_attempts.max(1),
        Utc::now(),
    ))
}

fn frames_doc(options: &VideoOptions) -> RecipeDoc {
    let doc = json!({
        "name": "frames",
        "steps": [{
            "name": "frames",
            "op": "frames",
            "options": {
                "every": options.every.seconds(),
                "mode": options.mode.as_str(),
                "format": options.format.extension(),
                "images": false
            }
        }]
    });
    serde_json::from_value(doc).unwrap_or_else(|e| unreachable!("the frames recipe: {e}"))
}

#[async_trait]
impl UploadListener for JobService {
    /// Keys are `{user}/{video}/{file_name}`, or objects of a watched folder; anything else is
    /// not an upload of ours.
    async fn uploaded(&self, key: &str, size: u64) -> PortResult<UploadOutcome> {
        if let Some(watch) = self.watch_of(key) {
            return self.register(&watch.clone(), key, size).await;
        }
        let video = match self.video_of(key).await {
            Ok(Some(video)) => video,
            Ok(None) => return Ok(UploadOutcome::NotAnUpload),
            // A file an intake's message will name (its S3 event is no upload of a video).
            Err(PortError::NotFound) if self.intakes.iter().any(|i| i.names_input(key)) => {
                return Ok(UploadOutcome::NotAnUpload);
            }
            Err(e) => return Err(e),
        };
        Ok(JobService::uploaded(self, &video, Some(size))
            .await?
            .outcome)
    }

    async fn expects(&self, key: &str) -> PortResult<()> {
        match self.video_of(key).await? {
            Some(video) if is_uploaded(&video) => Err(PortError::Refused(
                "this video's upload has arrived already: create another video".to_owned(),
            )),
            _ => Ok(()),
        }
    }
}

impl JobService {
    /// The video whose upload `key` is; `None` for another blob beside a known video (an
    /// output), a job's artefact or a staged piece; `NotFound` when no known video has that key.
    async fn video_of(&self, key: &str) -> PortResult<Option<Video>> {
        // Resumable uploads stage pieces under `.uploads/{upload}/` (vidsnap-storage's S3
        // staging writes an object per piece): their events are not uploads, nor unknown keys.
        if key.starts_with(".uploads/") {
            return Ok(None);
        }
        let mut parts = key.splitn(3, '/');
        let (Some(user), Some(video), Some(file)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(PortError::NotFound);
        };
        // A job's artefacts (`{user}/jobs/{job}/{step}/…`): outputs, not uploads.
        if video == "jobs" && user.parse::<UserId>().is_ok() {
            return Ok(None);
        }
        let id: VideoId = video.parse().map_err(|_| PortError::NotFound)?;
        let video = self.repo.video(None, id).await?;
        if file.is_empty() || !key.starts_with(&format!("{}/", video.owner)) {
            return Err(PortError::NotFound);
        }
        if video.source_key() != key {
            return Ok(None);
        }
        Ok(Some(video))
    }
}
