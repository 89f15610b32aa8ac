//! A fresh SQLite repository per test, and videos driven to an outcome through it.

use std::sync::Arc;

use chrono::Utc;
use tempfile::TempDir;
use vidsnap_db::SqliteStore;
use vidsnap_domain::{
    ErrorCode, Failure, Notification, Outputs, Repository, Transition, User, UserId, Video,
    VideoId, VideoOptions, VideoStatus, Webhook, WebhookId,
};

pub const SECRET: &str = "whsec_test_secret";

pub struct Store {
    pub repo: Arc<dyn Repository>,
    _dir: TempDir,
}

impl Store {
    pub async fn fresh() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("vidsnap.db"))
            .await
            .unwrap();
        Self {
            repo: Arc::new(store),
            _dir: dir,
        }
    }

    pub async fn user(&self, email: &str) -> User {
        let user = User {
            id: UserId::new(),
            email: email.to_owned(),
            password_hash: None,
            external_issuer: None,
            external_subject: None,
            created_at: Utc::now(),
        };
        self.repo.create_user(&user).await.unwrap();
        user
    }

    pub async fn webhook(&self, owner: UserId, url: &str) -> Webhook {
        let hook = Webhook {
            id: WebhookId::new(),
            owner,
            url: url.to_owned(),
            secret: SECRET.to_owned(),
            created_at: Utc::now(),
        };
        self.repo.create_webhook(&hook).await.unwrap();
        hook
    }

    async fn video(&self, owner: UserId, file_name: &str) -> Video {
        let at = Utc::now();
        let video = Video {
            id: VideoId::new(),
            owner,
            file_name: file_name.to_owned(),
            size: Some(1234),
            options: VideoOptions::default(),
            status: VideoStatus::AwaitingUpload,
            attempts: 0,
            max_attempts: 1,
            cycle: 0,
            last_error: None,
            probe: None,
            outputs: None,
            job: None,
            uploaded_at: None,
            source: None,
            created_at: at,
            updated_at: at,
        };
        self.repo.create_video(&video).await.unwrap();
        for to in [VideoStatus::Queued, VideoStatus::Processing] {
            let mut change = Transition::to(to);
            change.start_attempt = to == VideoStatus::Processing;
            self.repo.transition(video.id, change).await.unwrap();
        }
        video
    }

    /// A video that succeeded with 12 frames: its notifications are now owed.
    pub async fn succeeded(&self, owner: UserId, file_name: &str) -> VideoId {
        let video = self.video(owner, file_name).await;
        let mut done = Transition::to(VideoStatus::Succeeded);
        done.outputs = Some(Outputs {
            zip_key: format!("{}frames.zip", video.prefix()),
            zip_bytes: 4096,
            thumbnail_key: format!("{}image.jpg", video.prefix()),
            frames: 12,
        });
        self.repo.transition(video.id, done).await.unwrap();
        video.id
    }

    /// A video that died of a corrupt input.
    pub async fn dead(&self, owner: UserId, file_name: &str, message: &str) -> VideoId {
        let video = self.video(owner, file_name).await;
        let mut failed = Transition::to(VideoStatus::Failed);
        failed.error = Some(Some(Failure {
            code: ErrorCode::CorruptInput,
            message: message.to_owned(),
        }));
        self.repo.transition(video.id, failed).await.unwrap();
        self.repo
            .transition(video.id, Transition::to(VideoStatus::Dead))
            .await
            .unwrap();
        video.id
    }

    pub async fn notifications(&self, video: VideoId) -> Vec<Notification> {
        self.repo.notifications_for(video).await.unwrap()
    }
}
