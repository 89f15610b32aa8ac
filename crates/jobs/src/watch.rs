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
}

fn default_recipe() -> String {
    "frames".to_owned()
}

impl Watch {
    /// The prefix as a folder: no leading slash, one trailing slash.
    pub fn folder(&self) -> String {
        format!("{}/", self.prefix.trim_matches('/'))
    }

    /// Whether `key` is an object of this folder (at any depth).
    pub fn holds(&self, key: &str) -> bool {
        key.starts_with(&self.folder())
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
        if watches[..i]
            .iter()
            .any(|w| w.holds(&watch.folder()) || watch.holds(&w.folder()))
        {
            return Err(format!(
                "watch[{i}].prefix ({:?}) overlaps another watched folder",
                watch.prefix
            ));
        }
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
