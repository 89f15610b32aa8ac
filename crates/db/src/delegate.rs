//! The port traits on every SQL backend, each method handed to the dialect module that owns its
//! tables. The delegation is the same for every dialect, so it is written once here.

/// Implements `Jobs`, `Sorting`, `Repository` and `JobQueue` for `$store` by calling the functions
/// of the dialect's `accounts`, `videos`, `jobs`, `notifications`, `uploads`, `qc` and `queue` modules, which
/// must be in scope (with the domain types the signatures name) where it is invoked.
macro_rules! delegate_ports {
    ($store:ty) => {
        #[async_trait]
        impl Jobs for $store {
            async fn create_job(&self, job: &Job, events: &[StepEvent]) -> PortResult<()> {
                jobs::create_job(self, job, events).await
            }

            async fn job(&self, owner: Option<UserId>, id: JobId) -> PortResult<Job> {
                jobs::job(self, owner, id).await
            }

            async fn jobs(
                &self,
                owner: UserId,
                status: Option<JobStatus>,
                cursor: Option<&str>,
                limit: u32,
            ) -> PortResult<Page<Job>> {
                jobs::jobs(self, owner, status, cursor, limit).await
            }

            async fn job_events(&self, id: JobId) -> PortResult<Vec<StepEvent>> {
                jobs::job_events(self, id).await
            }

            async fn change_job(
                &self,
                owner: Option<UserId>,
                id: JobId,
                change: Change,
            ) -> PortResult<JobUpdate> {
                jobs::change_job(self, owner, id, change).await
            }

            async fn existing_jobs(&self, ids: &[JobId]) -> PortResult<Vec<JobId>> {
                jobs::existing_jobs(self, ids).await
            }

            async fn jobs_waiting_for(&self, video: VideoId) -> PortResult<Vec<JobId>> {
                jobs::jobs_waiting_for(self, video).await
            }
            async fn jobs_reading(&self, video: VideoId) -> PortResult<Vec<JobId>> {
                jobs::jobs_reading(self, video).await
            }

            async fn overdue_tasks(
                &self,
                before: DateTime<Utc>,
                limit: u32,
            ) -> PortResult<Vec<Task>> {
                jobs::overdue_tasks(self, before, limit).await
            }

            async fn delete_job(&self, owner: UserId, id: JobId) -> PortResult<Job> {
                jobs::delete_job(self, owner, id).await
            }
        }

        #[async_trait]
        impl Sorting for $store {
            async fn sort_candidates(
                &self,
                folders: &[String],
                limit: u32,
            ) -> PortResult<Vec<SortItem>> {
                qc::sort_candidates(self, folders, limit).await
            }

            async fn video_by_source(&self, key: &str) -> PortResult<Video> {
                qc::video_by_source(self, key).await
            }

            async fn record_qc_result(
                &self,
                result: &QcResult,
                moving: Option<&Move>,
                event: Option<EventType>,
            ) -> PortResult<bool> {
                qc::record_qc_result(self, result, moving, event).await
            }

            async fn finish_move(&self, video: VideoId) -> PortResult<()> {
                qc::finish_move(self, video).await
            }

            async fn qc_results_of(&self, video: VideoId) -> PortResult<Vec<QcResult>> {
                qc::qc_results_of(self, video).await
            }

            async fn qc_results(
                &self,
                owner: UserId,
                begin: DateTime<Utc>,
                end: DateTime<Utc>,
                cursor: Option<&str>,
                limit: u32,
            ) -> PortResult<Page<QcResult>> {
                qc::qc_results(self, owner, begin, end, cursor, limit).await
            }

            async fn count_qc_results(
                &self,
                owner: UserId,
                begin: DateTime<Utc>,
                end: DateTime<Utc>,
            ) -> PortResult<QcCounts> {
                qc::count_qc_results(self, owner, begin, end).await
            }
        }

        #[async_trait]
        impl Repository for $store {
            async fn ping(&self) -> PortResult<()> {
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map_err(port_error)?;
                Ok(())
            }

            async fn create_user(&self, user: &User) -> PortResult<()> {
                accounts::create_user(self, user).await
            }

            async fn user(&self, id: UserId) -> PortResult<User> {
                accounts::user(self, id).await
            }

            async fn user_by_email(&self, email: &str) -> PortResult<User> {
                accounts::user_by_email(self, email).await
            }

            async fn external_user(
                &self,
                issuer: &str,
                subject: &str,
                email: &str,
            ) -> PortResult<User> {
                accounts::external_user(self, issuer, subject, email).await
            }

            async fn store_refresh_token(
                &self,
                user: UserId,
                token_sha256: &str,
                expires_at: DateTime<Utc>,
            ) -> PortResult<()> {
                accounts::store_refresh_token(self, user, token_sha256, expires_at).await
            }

            async fn take_refresh_token(&self, token_sha256: &str) -> PortResult<UserId> {
                accounts::take_refresh_token(self, token_sha256).await
            }

            async fn revoke_session(&self, id: &str, expires_at: DateTime<Utc>) -> PortResult<()> {
                accounts::revoke_session(self, id, expires_at).await
            }

            async fn session_revoked(&self, id: &str) -> PortResult<bool> {
                accounts::session_revoked(self, id).await
            }

            async fn create_api_key(&self, key: &ApiKey) -> PortResult<()> {
                accounts::create_api_key(self, key).await
            }

            async fn api_key_by_secret(&self, secret_sha256: &str) -> PortResult<ApiKey> {
                accounts::api_key_by_secret(self, secret_sha256).await
            }

            async fn api_keys(&self, owner: UserId) -> PortResult<Vec<ApiKey>> {
                accounts::api_keys(self, owner).await
            }

            async fn revoke_api_key(&self, owner: UserId, id: ApiKeyId) -> PortResult<()> {
                accounts::revoke_api_key(self, owner, id).await
            }

            async fn create_video(&self, video: &Video) -> PortResult<()> {
                videos::create_video(self, video).await
            }

            async fn video(&self, owner: Option<UserId>, id: VideoId) -> PortResult<Video> {
                videos::video(self, owner, id).await
            }

            async fn videos(
                &self,
                owner: UserId,
                status: Option<VideoStatus>,
                cursor: Option<&str>,
                limit: u32,
            ) -> PortResult<Page<Video>> {
                videos::videos(self, owner, status, cursor, limit).await
            }

            async fn existing_videos(&self, ids: &[VideoId]) -> PortResult<Vec<VideoId>> {
                videos::existing_videos(self, ids).await
            }

            async fn history(&self, id: VideoId) -> PortResult<Vec<StatusChange>> {
                videos::history(self, id).await
            }

            async fn transition(&self, id: VideoId, transition: Transition) -> PortResult<Video> {
                videos::transition(self, id, transition).await
            }

            async fn mark_uploaded(&self, id: VideoId) -> PortResult<bool> {
                videos::mark_uploaded(self, id).await
            }

            async fn delete_video(&self, owner: UserId, id: VideoId) -> PortResult<Video> {
                videos::delete_video(self, owner, id).await
            }

            async fn count_by_status(&self) -> PortResult<Vec<(VideoStatus, u64)>> {
                videos::count_by_status(self).await
            }

            async fn stale_queued(
                &self,
                before: DateTime<Utc>,
                limit: u32,
            ) -> PortResult<Vec<VideoId>> {
                videos::stale_queued(self, before, limit).await
            }

            async fn create_webhook(&self, hook: &Webhook) -> PortResult<()> {
                notifications::create_webhook(self, hook).await
            }

            async fn webhooks(&self, owner: UserId) -> PortResult<Vec<Webhook>> {
                notifications::webhooks(self, owner).await
            }

            async fn webhook(&self, owner: Option<UserId>, id: WebhookId) -> PortResult<Webhook> {
                notifications::webhook(self, owner, id).await
            }

            async fn delete_webhook(&self, owner: UserId, id: WebhookId) -> PortResult<()> {
                notifications::delete_webhook(self, owner, id).await
            }

            async fn claim_notification(
                &self,
                worker: &str,
                lease_until: DateTime<Utc>,
            ) -> PortResult<Option<Notification>> {
                notifications::claim_notification(self, worker, lease_until).await
            }

            async fn record_delivery(
                &self,
                id: NotificationId,
                attempt: &DeliveryAttempt,
            ) -> PortResult<()> {
                notifications::record_delivery(self, id, attempt).await
            }

            async fn deliveries(
                &self,
                owner: UserId,
                webhook: WebhookId,
            ) -> PortResult<Vec<Notification>> {
                notifications::deliveries(self, owner, webhook).await
            }

            async fn notifications_for(&self, video: VideoId) -> PortResult<Vec<Notification>> {
                notifications::notifications_for(self, video).await
            }

            async fn redeliver(
                &self,
                owner: UserId,
                id: NotificationId,
            ) -> PortResult<Notification> {
                notifications::redeliver(self, owner, id).await
            }

            async fn create_upload(&self, video: &Video, upload: &Upload) -> PortResult<()> {
                uploads::create_upload(self, video, upload).await
            }

            async fn upload(&self, owner: Option<UserId>, id: UploadId) -> PortResult<Upload> {
                uploads::upload(self, owner, id).await
            }

            async fn upload_of_video(&self, video: VideoId) -> PortResult<Upload> {
                uploads::upload_of_video(self, video).await
            }

            async fn lease_upload(
                &self,
                owner: Option<UserId>,
                id: UploadId,
                token: &str,
                lease: Duration,
            ) -> PortResult<Upload> {
                uploads::lease_upload(self, owner, id, token, lease).await
            }

            async fn renew_upload_lease(
                &self,
                id: UploadId,
                token: &str,
                lease: Duration,
                ttl: Duration,
            ) -> PortResult<()> {
                uploads::renew_upload_lease(self, id, token, lease, ttl).await
            }

            async fn record_upload_progress(
                &self,
                id: UploadId,
                token: &str,
                from: u64,
                to: u64,
                staging: Option<&serde_json::Value>,
                ttl: Duration,
            ) -> PortResult<Upload> {
                uploads::record_upload_progress(self, id, token, from, to, staging, ttl).await
            }

            async fn release_upload_lease(&self, id: UploadId, token: &str) -> PortResult<()> {
                uploads::release_upload_lease(self, id, token).await
            }

            async fn delete_upload(
                &self,
                id: UploadId,
                token: &str,
            ) -> PortResult<(Upload, Option<Video>)> {
                uploads::delete_upload(self, id, token).await
            }

            async fn expired_uploads(
                &self,
                now: DateTime<Utc>,
                limit: u32,
            ) -> PortResult<Vec<Upload>> {
                uploads::expired_uploads(self, now, limit).await
            }

            async fn delete_expired_upload(
                &self,
                id: UploadId,
                now: DateTime<Utc>,
            ) -> PortResult<Option<(Upload, Option<Video>)>> {
                uploads::delete_expired_upload(self, id, now).await
            }

            async fn abandoned_videos(
                &self,
                before: DateTime<Utc>,
                limit: u32,
            ) -> PortResult<Vec<Video>> {
                uploads::abandoned_videos(self, before, limit).await
            }

            async fn delete_abandoned_video(
                &self,
                id: VideoId,
                before: DateTime<Utc>,
            ) -> PortResult<Option<Video>> {
                uploads::delete_abandoned_video(self, id, before).await
            }
        }

        #[async_trait]
        impl JobQueue for $store {
            async fn enqueue(&self, task: NewTask) -> PortResult<()> {
                queue::enqueue(self, task).await
            }

            async fn claim(&self, worker: &str, lease: Duration) -> PortResult<Option<Lease>> {
                queue::claim(self, worker, lease).await
            }

            async fn heartbeat(&self, lease: &Lease, extend: Duration) -> PortResult<()> {
                queue::heartbeat(self, lease, extend).await
            }

            async fn complete(&self, lease: &Lease) -> PortResult<()> {
                queue::complete(self, lease).await
            }

            async fn release(&self, lease: &Lease, at: DateTime<Utc>) -> PortResult<()> {
                queue::release(self, lease, at).await
            }

            async fn dead_letter(&self, lease: &Lease, reason: &str) -> PortResult<()> {
                queue::dead_letter(self, lease, reason).await
            }

            async fn wait_for_work(&self, max_wait: Duration) {
                queue::wait_for_work(self, max_wait).await
            }

            async fn stats(&self) -> PortResult<QueueStats> {
                queue::stats(self).await
            }
        }
    };
}

pub(crate) use delegate_ports;
