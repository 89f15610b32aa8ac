//! Watched folders: an object that lands under a watched prefix of the storage, with no API
//! call, is registered as a video of the folder's owner and processed by the folder's recipe;
//! its outputs go beside it (seed 000 wrote `{stem}-images.zip` and the first frame next to the
//! video; seed 002 sorts files dropped into a bucket). The same path serves S3 event
//! notifications and a local directory's watcher: both call [`UploadListener::uploaded`] with
//! the key.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use vidsnap_domain::{Container, PortError, PortResult, UploadOutcome, Video, VideoOptions};

use crate::{JobService, RecipeSource};

/// A folder whose new objects are processed without an API call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    /// The folder, relative to the storage's root (or bucket prefix), e.g. `inbox/`.
    pub prefix: String,
    /// The e-mail of the account the videos belong to (it must exist).
    pub owner: String,
    /// The built-in recipe that processes each object (`GET /v1/recipes`).
    #[serde(default = "default_recipe")]
    pub recipe: String,
    /// The recipe's parameters.
    #[serde(default)]
    pub params: Value,
    /// The file extensions (case-insensitive, without the dot) that are media to process; empty
    /// (the default): the accepted video containers. A `qc` folder also takes audio, e.g.
    /// `["mp4", "mov", "m4a", "mp3", "wav"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,
    /// `[watch.sort]`: seed 002's bucket workflow. Each file is decided on by its QC report and
    /// its metadata sidecar, then moved to an outcome folder; the failed folder is watched too,
    /// and what lands there is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<Sort>,
}

fn default_recipe() -> String {
    "frames".to_owned()
}

/// Where a sorted folder's files go, and the rules that decide it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sort {
    /// Files that passed (with their sidecar and report).
    pub processed: String,
    /// Files that failed; watched, and each file there is retried.
    pub failed: String,
    /// Files that failed every retry.
    pub unable_to_process: String,
    /// Whether a file needs a metadata sidecar (`a.json` beside `a.mp4`).
    pub sidecar: bool,
    /// How long a file waits for its sidecar before it fails with `metadata-missing`.
    pub sidecar_wait_seconds: f64,
    /// How far the file's duration may be from the sidecar's.
    pub duration_tolerance_seconds: f64,
    /// Decisions about a file in the failed folder before it goes to `unable_to_process`.
    pub max_retries: u32,
    /// The wait between a failed decision in the failed folder and the next try.
    pub retry_delay_seconds: f64,
}

impl Default for Sort {
    fn default() -> Self {
        Self {
            processed: "processed/".into(),
            failed: "failed/".into(),
            unable_to_process: "unable_to_process/".into(),
            sidecar: true,
            sidecar_wait_seconds: 300.0,
            duration_tolerance_seconds: 1.0,
            max_retries: 5,
            retry_delay_seconds: 60.0,
        }
    }
}

/// A prefix as a folder: no leading slash, one trailing slash.
pub fn as_folder(prefix: &str) -> String {
    format!("{}/", prefix.trim_matches('/'))
}

impl Watch {
    /// The prefix as a folder: no leading slash, one trailing slash.
    pub fn folder(&self) -> String {
        as_folder(&self.prefix)
    }

    /// The folders whose new objects this watch registers: its own, and a sorted watch's failed
    /// folder (a file placed there is retried).
    pub fn folders(&self) -> Vec<String> {
        let mut folders = vec![self.folder()];
        if let Some(sort) = &self.sort {
            folders.push(as_folder(&sort.failed));
        }
        folders
    }

    /// Whether `key` is an object of this watch's folders (at any depth).
    pub fn holds(&self, key: &str) -> bool {
        self.folders().iter().any(|folder| key.starts_with(folder))
    }

    /// Whether a file of this name is media this folder processes (outputs, sidecars and the
    /// rest are not).
    pub fn takes(&self, file_name: &str) -> bool {
        if self.extensions.is_empty() {
            return Container::from_file_name(file_name).is_some();
        }
        file_name.rsplit_once('.').is_some_and(|(_, ext)| {
            self.extensions
                .iter()
                .any(|e| e.trim_start_matches('.').eq_ignore_ascii_case(ext))
        })
    }
}

/// Why a watch cannot work, with its index in the configuration: checked at start-up.
pub fn check_watches(service: &JobService, watches: &[Watch]) -> Result<(), String> {
    for (i, watch) in watches.iter().enumerate() {
        let folder = watch.prefix.trim_matches('/');
        if folder.is_empty() || folder.starts_with('.') || folder.contains("//") {
            return Err(format!(
                "watch[{i}].prefix ({:?}) must name a folder, e.g. \"inbox/\"",
                watch.prefix
            ));
        }
        // The first segment must not look like an account id: those folders are the API's.
        let first = folder.split('/').next().unwrap_or_default();
        if first.parse::<vidsnap_domain::UserId>().is_ok() {
            return Err(format!(
                "watch[{i}].prefix ({:?}) is an account's folder: choose another name",
                watch.prefix
            ));
        }
        if let Err(problems) =
            service.check(RecipeSource::Named(watch.recipe.clone()), &watch.params)
        {
            return Err(format!(
                "watch[{i}].recipe {:?} with its params cannot run: {}",
                watch.recipe,
                problems
                    .into_fields()
                    .into_iter()
                    .map(|(at, why)| format!("{at}: {why}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        if let Some(sort) = &watch.sort {
            check_sort(i, watch, sort, service)?;
        }
        let taken = |w: &Watch| -> Vec<String> {
            let mut all = w.folders();
            if let Some(sort) = &w.sort {
                all.push(as_folder(&sort.processed));
                all.push(as_folder(&sort.unable_to_process));
            }
            all
        };
        let overlaps = |a: &[String], b: &[String]| {
            a.iter().any(|x| {
                b.iter()
                    .any(|y| x.starts_with(y.as_str()) || y.starts_with(x.as_str()))
            })
        };
        if watches[..i]
            .iter()
            .any(|w| overlaps(&taken(w), &taken(watch)))
        {
            return Err(format!(
                "watch[{i}].prefix ({:?}) overlaps another watched folder",
                watch.prefix
            ));
        }
    }
    Ok(())
}

/// A sorted watch's folders are distinct folders, none inside another, and its recipe has a
/// `qc` step (its report decides).
fn check_sort(i: usize, watch: &Watch, sort: &Sort, service: &JobService) -> Result<(), String> {
    let named = [
        ("prefix", watch.prefix.as_str()),
        ("sort.processed", sort.processed.as_str()),
        ("sort.failed", sort.failed.as_str()),
        ("sort.unable_to_process", sort.unable_to_process.as_str()),
    ];
    for (n, (name, folder)) in named.iter().enumerate() {
        let folder = folder.trim_matches('/');
        if folder.is_empty() || folder.starts_with('.') || folder.contains("//") {
            return Err(format!(
                "watch[{i}].{name} ({folder:?}) must name a folder, e.g. \"failed/\""
            ));
        }
        for (other, theirs) in &named[..n] {
            let (a, b) = (as_folder(folder), as_folder(theirs));
            if a.starts_with(&b) || b.starts_with(&a) {
                return Err(format!(
                    "watch[{i}].{name} ({folder:?}) overlaps watch[{i}].{other} ({theirs:?}): \
                     the outcome folders must be apart from the watched one and each other"
                ));
            }
        }
    }
    let finite = |v: f64| v.is_finite() && v >= 0.0;
    if !finite(sort.sidecar_wait_seconds)
        || !finite(sort.duration_tolerance_seconds)
        || !finite(sort.retry_delay_seconds)
    {
        return Err(format!(
            "watch[{i}].sort: sidecar_wait_seconds, duration_tolerance_seconds and \
             retry_delay_seconds must be zero or more"
        ));
    }
    let has_qc = service
        .check(RecipeSource::Named(watch.recipe.clone()), &watch.params)
        .is_ok_and(|(recipe, _)| {
            recipe
                .steps
                .iter()
                .any(|step| matches!(step.op, vidsnap_domain::Operation::Qc(_)))
        });
    if !has_qc {
        return Err(format!(
            "watch[{i}].sort needs a recipe with a qc step (recipe = \"qc\"), not {:?}",
            watch.recipe
        ));
    }
    Ok(())
}

impl JobService {
    /// The watched folder `key` is in, if any.
    pub(crate) fn watch_of(&self, key: &str) -> Option<&Watch> {
        self.watches.iter().find(|w| w.holds(key))
    }

    /// Registers the object at `key` as a video of the folder's owner and starts its job.
    /// Outputs, sidecars and anything whose extension is not an accepted container are not
    /// videos (`NotAnUpload`); an object registered already is a `Duplicate`.
    pub(crate) async fn register(
        &self,
        watch: &Watch,
        key: &str,
        size: u64,
    ) -> PortResult<UploadOutcome> {
        let file_name = key.rsplit('/').next().unwrap_or_default();
        if file_name.is_empty() || file_name.starts_with('.') {
            return Ok(UploadOutcome::NotAnUpload);
        }
        if !watch.takes(file_name) {
            return Ok(UploadOutcome::NotAnUpload);
        }
        let owner = match self.repo().user_by_email(&watch.owner).await {
            Ok(user) => user,
            Err(PortError::NotFound) => {
                tracing::warn!(
                    owner = %watch.owner, %key,
                    "a watched folder's owner has no account: create it, then put the file again"
                );
                return Err(PortError::NotFound);
            }
            Err(e) => return Err(e),
        };
        let (recipe, name) = self
            .check(RecipeSource::Named(watch.recipe.clone()), &watch.params)
            .map_err(|p| PortError::Refused(format!("watch recipe {}: {p:?}", watch.recipe)))?;
        // A key being sorted (or moved away from) belongs to its video already.
        match self.repo().video_by_source(key).await {
            Ok(_) => return Ok(UploadOutcome::Duplicate),
            Err(PortError::NotFound) => {}
            Err(e) => return Err(e),
        }
        let mut video = Video::awaiting_upload(
            owner.id,
            file_name.to_owned(),
            Some(size),
            VideoOptions::default(),
            self.max_attempts(),
            Utc::now(),
        );
        video.source = Some(key.to_owned());
        match self.repo().create_video(&video).await {
            Ok(()) => {}
            // One video per object: a repeated event, or a rescan.
            Err(PortError::Conflict(_)) => return Ok(UploadOutcome::Duplicate),
            Err(e) => return Err(e),
        }
        let job = video.job.unwrap_or_default();
        self.create_for_video_with(job, &video, recipe, name, watch.params.clone())
            .await?;
        tracing::info!(%key, video = %video.id, recipe = %watch.recipe, "registered a watched folder's object");
        Ok(self.uploaded(&video, Some(size)).await?.outcome)
    }
}
