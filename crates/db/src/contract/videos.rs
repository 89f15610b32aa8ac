//! Videos: ownership, the listing, the status machine and what it records.

use serde_json::json;
use vidsnap_domain::{
    ErrorCode, Failure, JobId, Outputs, PortError, Repository, Transition, UserId, Video, VideoId,
    VideoStatus::{self, *},
};

use super::{assert_not_found, new_user, new_video, new_webhook, now, seconds, video, walk};

pub async fn other_users_rows_are_not_found(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let bob = new_user(repo, "bob@example.com").await;
    let clip = new_video(repo, alice.id, "clip.mp4").await;
    let hook = new_webhook(repo, alice.id, "https://alice.example/hook").await;

    assert_eq!(repo.video(Some(alice.id), clip.id).await.unwrap(), clip);
    assert_eq!(repo.video(None, clip.id).await.unwrap(), clip);
    assert_not_found(
        repo.video(Some(bob.id), clip.id).await,
        "bob reads alice's video",
    );
    assert_not_found(
        repo.delete_video(bob.id, clip.id).await,
        "bob deletes alice's video",
    );
    assert!(
        repo.videos(bob.id, None, None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_not_found(repo.video(None, VideoId::new()).await, "unknown video");
    assert_not_found(
        repo.transition(VideoId::new(), Transition::to(Queued))
            .await,
        "transition of an unknown video",
    );
    assert_not_found(
        repo.history(VideoId::new()).await,
        "history of an unknown video",
    );

    assert_eq!(repo.webhook(Some(alice.id), hook.id).await.unwrap(), hook);
    assert_eq!(repo.webhook(None, hook.id).await.unwrap(), hook);
    assert_not_found(
        repo.webhook(Some(bob.id), hook.id).await,
        "bob reads alice's hook",
    );
    assert_not_found(
        repo.delete_webhook(bob.id, hook.id).await,
        "bob deletes alice's hook",
    );
    assert_not_found(
        repo.deliveries(bob.id, hook.id).await,
        "bob reads alice's log",
    );
    assert!(repo.webhooks(bob.id).await.unwrap().is_empty());
    assert_eq!(repo.webhooks(alice.id).await.unwrap(), vec![hook.clone()]);

    assert_not_found(
        repo.create_video(&video(UserId::new(), "orphan.mp4")).await,
        "a video for an unknown user",
    );
    assert!(matches!(
        repo.create_video(&clip).await,
        Err(PortError::Conflict(_))
    ));

    repo.delete_webhook(alice.id, hook.id).await.unwrap();
    assert_not_found(repo.webhook(None, hook.id).await, "a deleted hook");
    assert_not_found(
        repo.deliveries(alice.id, hook.id).await,
        "a deleted hook's log",
    );
}

pub async fn videos_are_paged_newest_first(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let bob = new_user(repo, "bob@example.com").await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(new_video(repo, alice.id, &format!("clip{n}.mp4")).await.id);
    }
    new_video(repo, bob.id, "bob.mp4").await;
    ids.reverse();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = repo
            .videos(alice.id, None, cursor.as_deref(), 2)
            .await
            .unwrap();
        pages += 1;
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|v| v.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 10, "the cursor never ends");
    }
    assert_eq!(seen, ids, "every video once, newest first");
    assert_eq!(pages, 3);

    let whole = repo.videos(alice.id, None, None, 5).await.unwrap();
    assert_eq!(whole.items.len(), 5);
    assert_eq!(whole.next_cursor, None, "an exactly full page is the last");

    for &id in [ids[1], ids[3]].iter() {
        repo.transition(id, Transition::to(Queued)).await.unwrap();
    }
    let queued = repo.videos(alice.id, Some(Queued), None, 1).await.unwrap();
    assert_eq!(queued.items.len(), 1);
    assert_eq!(queued.items[0].id, ids[1]);
    assert_eq!(queued.items[0].status, Queued);
    let rest = repo
        .videos(alice.id, Some(Queued), queued.next_cursor.as_deref(), 1)
        .await
        .unwrap();
    assert_eq!(
        rest.items.iter().map(|v| v.id).collect::<Vec<_>>(),
        vec![ids[3]]
    );
    assert_eq!(rest.next_cursor, None);
    let awaiting = repo
        .videos(alice.id, Some(AwaitingUpload), None, 10)
        .await
        .unwrap();
    assert_eq!(awaiting.items.len(), 3);
    assert!(
        repo.videos(alice.id, Some(Dead), None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

/// The allowed path through every edge of the table, with what each step sets.
fn every_allowed_edge() -> Vec<(Transition, u32, u32)> {
    let failure = Failure {
        code: ErrorCode::Timeout,
        message: "ffmpeg ran too long".to_owned(),
    };
    let processing = || Transition {
        start_attempt: true,
        ..Transition::to(Processing)
    };
    // (transition, attempts after, cycle after)
    vec![
        (Transition::to(Queued).reason("uploaded"), 0, 0),
        (
            Transition {
                probe: Some(json!({"duration": 12.5})),
                ..processing()
            },
            1,
            0,
        ),
        (Transition::to(Queued).reason("worker stopped"), 1, 0),
        (processing(), 2, 0),
        (
            Transition {
                error: Some(Some(failure.clone())),
                ..Transition::to(Failed)
            },
            2,
            0,
        ),
        (Transition::to(Queued).reason("backoff over"), 2, 0),
        (processing(), 3, 0),
        (Transition::to(Failed), 3, 0),
        (Transition::to(Dead).reason("no attempts left"), 3, 0),
        (
            Transition {
                new_cycle: true,
                error: Some(None),
                ..Transition::to(Queued).reason("user retry")
            },
            0,
            1,
        ),
        (processing(), 1, 1),
        (
            Transition {
                outputs: Some(Outputs {
                    zip_key: "u/v/clip.zip".to_owned(),
                    zip_bytes: 4096,
                    thumbnail_key: "u/v/thumb.jpg".to_owned(),
                    frames: 2,
                }),
                ..Transition::to(Succeeded)
            },
            1,
            1,
        ),
    ]
}

pub async fn transitions_follow_the_status_machine(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let mut current = new_video(repo, alice.id, "clip.mp4").await;
    let mut expected_history = vec![(AwaitingUpload, 0, None)];

    for (change, attempts, cycle) in every_allowed_edge() {
        assert_forbidden_moves_write_nothing(repo, current.id).await;
        let before = now();
        let next = repo.transition(current.id, change.clone()).await.unwrap();
        assert_eq!(next.status, change.to);
        assert_eq!(
            (next.attempts, next.cycle),
            (attempts, cycle),
            "after {:?}",
            change.to
        );
        assert!(next.updated_at >= before);
        assert_eq!(next.created_at, current.created_at);
        assert_eq!(
            repo.video(None, current.id).await.unwrap(),
            next,
            "as returned"
        );
        expected_history.push((change.to, attempts, change.reason.clone()));
        current = next;
    }

    assert!(current.probe.is_some(), "the probe is kept");
    assert_eq!(current.last_error, None, "the retry cleared the error");
    assert_eq!(current.outputs.as_ref().map(|o| o.frames), Some(2));
    assert_forbidden_moves_write_nothing(repo, current.id).await;

    let history: Vec<_> = repo
        .history(current.id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.status, c.attempt, c.reason))
        .collect();
    assert_eq!(history, expected_history);
}

/// Tries every move the table forbids from the video's status: each is refused naming both
/// statuses, and nothing (video, history, notifications) changes.
async fn assert_forbidden_moves_write_nothing(repo: &dyn Repository, id: VideoId) {
    let video = repo.video(None, id).await.unwrap();
    let history = repo.history(id).await.unwrap();
    let notifications = repo.notifications_for(id).await.unwrap();
    for to in VideoStatus::ALL {
        if video.status.can_become(to) {
            continue;
        }
        let change = Transition {
            start_attempt: true,
            new_cycle: true,
            error: Some(None),
            ..Transition::to(to)
        };
        match repo.transition(id, change).await {
            Err(PortError::InvalidTransition { from, to: refused }) => {
                assert_eq!((from, refused), (video.status, to));
            }
            other => panic!("{} -> {to} must be refused, got {other:?}", video.status),
        }
    }
    assert_eq!(repo.video(None, id).await.unwrap(), video);
    assert_eq!(repo.history(id).await.unwrap(), history);
    assert_eq!(repo.notifications_for(id).await.unwrap(), notifications);
}

pub async fn deleting_a_video_takes_its_history_and_notifications(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    new_webhook(repo, alice.id, "https://alice.example/hook").await;
    let clip = new_video(repo, alice.id, "clip.mp4").await;
    let done = walk(repo, clip.id, &[Queued, Processing, Succeeded]).await;
    assert_eq!(repo.notifications_for(clip.id).await.unwrap().len(), 2);

    let deleted = repo.delete_video(alice.id, clip.id).await.unwrap();
    assert_eq!(deleted, done);
    assert_not_found(repo.video(None, clip.id).await, "a deleted video");
    assert_not_found(repo.history(clip.id).await, "a deleted video's history");
    assert!(repo.notifications_for(clip.id).await.unwrap().is_empty());
    assert_not_found(repo.delete_video(alice.id, clip.id).await, "deleting twice");
}

pub async fn counts_cover_every_status(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    new_video(repo, alice.id, "a.mp4").await;
    let b = new_video(repo, alice.id, "b.mp4").await;
    let c = new_video(repo, alice.id, "c.mp4").await;
    walk(repo, b.id, &[Queued]).await;
    walk(repo, c.id, &[Queued]).await;

    let mut counts = repo.count_by_status().await.unwrap();
    counts.sort_by_key(|(status, _)| status.as_str());
    let mut expected: Vec<_> = VideoStatus::ALL
        .iter()
        .map(|&s| {
            let n = match s {
                AwaitingUpload => 1,
                Queued => 2,
                _ => 0,
            };
            (s, n)
        })
        .collect();
    expected.sort_by_key(|(status, _)| status.as_str());
    assert_eq!(counts, expected);
}

/// Only pre-jobs videos (no `job`) waiting to be processed: their job is the scheduler's to make.
pub async fn stale_queued_lists_only_old_videos_without_a_job(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    new_video(repo, alice.id, "waiting.mp4").await;
    let queued = new_video(repo, alice.id, "queued.mp4").await;
    let processing = new_video(repo, alice.id, "processing.mp4").await;
    let done = new_video(repo, alice.id, "done.mp4").await;
    let with_job = Video {
        job: Some(JobId::new()),
        ..video(alice.id, "with-job.mp4")
    };
    repo.create_video(&with_job).await.unwrap();
    walk(repo, queued.id, &[Queued]).await;
    walk(repo, processing.id, &[Queued, Processing]).await;
    walk(repo, done.id, &[Queued, Processing, Succeeded]).await;
    walk(repo, with_job.id, &[Queued]).await;

    let later = now() + seconds(1);
    assert_eq!(
        repo.stale_queued(later, 10).await.unwrap(),
        vec![queued.id, processing.id],
        "oldest change first"
    );
    assert_eq!(repo.stale_queued(later, 1).await.unwrap(), vec![queued.id]);
    let earlier = now() - seconds(60);
    assert!(repo.stale_queued(earlier, 10).await.unwrap().is_empty());
    assert!(repo.stale_queued(later, 0).await.unwrap().is_empty());
}

pub async fn existing_videos_are_told_from_missing_and_deleted_ones(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let bob = new_user(repo, "bob@example.com").await;
    let kept = new_video(repo, alice.id, "kept.mp4").await;
    let others = new_video(repo, bob.id, "bobs.mp4").await;
    let deleted = new_video(repo, alice.id, "deleted.mp4").await;
    repo.delete_video(alice.id, deleted.id).await.unwrap();
    let never = VideoId::new();

    let mut found = repo
        .existing_videos(&[never, kept.id, deleted.id, others.id, kept.id])
        .await
        .unwrap();
    found.sort();
    found.dedup();
    let mut expected = vec![kept.id, others.id];
    expected.sort();
    assert_eq!(
        found, expected,
        "every owner's, never a deleted or unknown id"
    );
    assert!(repo.existing_videos(&[]).await.unwrap().is_empty());

    // As many as the audit asks at once.
    let many: Vec<VideoId> = (0..500).map(|_| VideoId::new()).chain([kept.id]).collect();
    assert_eq!(repo.existing_videos(&many).await.unwrap(), vec![kept.id]);
}

/// A watched folder's object keeps its key as the video's source, read back as stored, and
/// one object is one video: a second registration is a conflict (a repeated event, a rescan).
pub async fn a_watched_object_is_one_video(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let mut watched = video(alice.id, "clip one+é.mp4");
    watched.source = Some("inbox/2026 12/clip one+é.mp4".into());
    repo.create_video(&watched).await.unwrap();
    let read = repo.video(Some(alice.id), watched.id).await.unwrap();
    assert_eq!(read.source, watched.source);
    assert_eq!(read.source_key(), "inbox/2026 12/clip one+é.mp4");
    let mut again = video(alice.id, "clip one+é.mp4");
    again.source = watched.source.clone();
    assert!(matches!(
        repo.create_video(&again).await,
        Err(PortError::Conflict(_))
    ));
    // Uploads have no source key: any number of them.
    for _ in 0..2 {
        let upload = new_video(repo, alice.id, "clip one+é.mp4").await;
        assert_eq!(repo.video(None, upload.id).await.unwrap().source, None);
    }
}

pub async fn mark_uploaded_records_the_upload_once(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let clip = new_video(repo, alice.id, "clip.mp4").await;
    let before = now();
    assert!(repo.mark_uploaded(clip.id).await.unwrap(), "the first time");
    let marked = repo.video(None, clip.id).await.unwrap();
    let at = marked.uploaded_at.expect("uploaded_at is set");
    assert!(at >= before && at <= now());
    assert_eq!(
        marked,
        Video {
            uploaded_at: Some(at),
            source: None,
            ..clip.clone()
        },
        "nothing else changes: a video without a job stays awaiting_upload"
    );
    assert!(!repo.mark_uploaded(clip.id).await.unwrap(), "once only");
    assert_eq!(repo.video(None, clip.id).await.unwrap(), marked);
    assert_not_found(repo.mark_uploaded(VideoId::new()).await, "an unknown video");
}
