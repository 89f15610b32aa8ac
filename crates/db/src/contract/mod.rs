//! The behaviour every backend of [`Repository`] and [`JobQueue`] must show, written once.
//!
//! Each check is an `async fn` over `&dyn Repository` or `&dyn JobQueue` that panics on the
//! first difference, and expects a fresh, empty database. [`contract_tests!`](crate::contract_tests)
//! turns the whole list into `#[tokio::test]`s for one backend, so a new backend runs every
//! check by construction:
//!
//! ```text
//! async fn fresh() -> Fresh { /* a new, empty store, kept alive with its temp dir */ }
//! vidsnap_db::contract_tests!(fresh);
//! ```
//!
//! `fresh().await` must return something that dereferences to a type implementing both traits.
//!
//! [`Repository`]: vidsnap_domain::Repository
//! [`JobQueue`]: vidsnap_domain::JobQueue

// Contract checks fail by panicking, like any test.
#![allow(clippy::unwrap_used)]

pub mod accounts;
pub mod jobs;
pub mod notifications;
pub mod queue;
pub mod sorting;
pub mod uploads;
pub mod videos;

use std::{future::Future, time::Duration};

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use vidsnap_domain::{
    PortError, Repository, Transition, User, UserId, Video, VideoId, VideoOptions, VideoStatus,
    Webhook, WebhookId,
};

/// Generates one `#[tokio::test]` per contract check, each on its own `$fresh().await` store.
#[macro_export]
macro_rules! contract_tests {
    ($fresh:path) => {
        $crate::contract_tests!(@each $fresh, accounts:
            emails_are_unique_ignoring_case,
            external_users_are_created_once,
            refresh_tokens_are_single_use_and_expire,
            signed_out_sessions_stay_revoked,
            api_keys_work_until_revoked,
        );
        $crate::contract_tests!(@each $fresh, videos:
            other_users_rows_are_not_found,
            videos_are_paged_newest_first,
            transitions_follow_the_status_machine,
            deleting_a_video_takes_its_history_and_notifications,
            counts_cover_every_status,
            stale_queued_lists_only_old_videos_without_a_job,
            mark_uploaded_records_the_upload_once,
            existing_videos_are_told_from_missing_and_deleted_ones,
            a_watched_object_is_one_video,
        );
        $crate::contract_tests!(@each $fresh, jobs:
            jobs_read_back_as_created,
            other_users_jobs_are_not_found,
            jobs_are_paged_newest_first,
            changes_are_applied_and_persisted,
            refused_changes_write_nothing,
            a_stale_start_writes_nothing,
            racing_starts_start_once,
            a_dead_workers_last_attempt_is_recorded,
            a_videos_job_mirrors_its_video,
            a_finished_job_notifies_once_per_channel_per_cycle,
            jobs_waiting_for_an_upload,
            overdue_tasks_are_ready_steps_past_due,
            deleting_a_job_takes_its_steps_and_events,
            deleting_a_video_takes_its_own_job_only,
            existing_jobs_are_told_from_missing_and_deleted_ones,
        );
        $crate::contract_tests!(@each $fresh, uploads:
            uploads_are_created_with_their_video_and_owned,
            one_writer_at_a_time,
            racing_writers_get_one_lease,
            deleting_an_upload_takes_its_waiting_video,
            only_idle_uploads_expire,
            abandoned_videos_are_unused_presigned_uploads,
        );
        $crate::contract_tests!(@each $fresh, notifications:
            terminal_outcomes_notify_once_per_channel,
            a_new_cycle_notifies_again,
            notifications_are_leased_retried_and_redelivered,
            deliveries_are_the_webhooks_newest_first,
        );
        $crate::contract_tests!(@each $fresh, sorting:
            a_decision_is_recorded_once_with_its_move,
            a_move_onto_a_taken_key_is_refused_whole,
            results_are_read_by_time_range_and_counted,
        );
        $crate::contract_tests!(@each $fresh, queue:
            enqueue_is_idempotent_per_job_step,
            enqueue_during_a_run_queues_the_next,
            claims_take_the_oldest_due_task,
            expired_leases_are_taken_over,
            release_and_dead_letter,
            stats_count_and_age,
            wait_for_work_wakes_on_enqueue,
            wait_for_work_wakes_when_a_task_or_lease_falls_due,
        );
    };
    (@each $fresh:path, $module:ident: $($check:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $check() {
                let store = $fresh().await;
                $crate::contract::$module::$check(&*store).await;
            }
        )*
    };
}

/// Now, at the precision every backend keeps (microseconds), so values compare equal after a
/// round trip.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub(crate) fn seconds(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

pub fn user(email: &str) -> User {
    User {
        id: UserId::new(),
        email: email.to_owned(),
        password_hash: Some("$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".to_owned()),
        external_issuer: None,
        external_subject: None,
        created_at: now(),
    }
}

pub(crate) async fn new_user(repo: &dyn Repository, email: &str) -> User {
    let user = user(email);
    repo.create_user(&user).await.unwrap();
    user
}

pub fn video(owner: UserId, file_name: &str) -> Video {
    let at = now();
    Video {
        id: VideoId::new(),
        owner,
        file_name: file_name.to_owned(),
        size: Some(1234),
        options: VideoOptions::default(),
        status: VideoStatus::AwaitingUpload,
        attempts: 0,
        max_attempts: 3,
        cycle: 0,
        last_error: None,
        probe: None,
        outputs: None,
        job: None,
        uploaded_at: None,
        source: None,
        created_at: at,
        updated_at: at,
    }
}

pub(crate) async fn new_video(repo: &dyn Repository, owner: UserId, file_name: &str) -> Video {
    let video = video(owner, file_name);
    repo.create_video(&video).await.unwrap();
    video
}

pub(crate) async fn new_webhook(repo: &dyn Repository, owner: UserId, url: &str) -> Webhook {
    let hook = Webhook {
        id: WebhookId::new(),
        owner,
        url: url.to_owned(),
        secret: "whsec_test".to_owned(),
        created_at: now(),
    };
    repo.create_webhook(&hook).await.unwrap();
    hook
}

/// Drives `video` through the given statuses, starting an attempt on entering `processing`.
pub(crate) async fn walk(repo: &dyn Repository, video: VideoId, path: &[VideoStatus]) -> Video {
    let mut last = None;
    for &to in path {
        let mut change = Transition::to(to);
        change.start_attempt = to == VideoStatus::Processing;
        last = Some(repo.transition(video, change).await.unwrap());
    }
    last.expect("a non-empty path")
}

pub(crate) fn assert_not_found<T: std::fmt::Debug>(result: Result<T, PortError>, what: &str) {
    assert!(
        matches!(result, Err(PortError::NotFound)),
        "{what}: expected NotFound, got {result:?}"
    );
}

/// Polls `probe` until it yields, for at most `within`; panics naming `what` otherwise.
pub(crate) async fn eventually<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
