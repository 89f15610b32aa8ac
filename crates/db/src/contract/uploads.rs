//! Resumable upload sessions: created with their video, owned, written by one lease holder at a
//! time, deleted with a waiting video, and swept only when idle.

use std::{collections::BTreeMap, time::Duration};

use serde_json::json;
use vidsnap_domain::{
    PortError, Repository, Transition, Upload, UploadId, UserId, Video, VideoId,
    VideoStatus::{self, *},
};

use super::{assert_not_found, new_user, now, seconds, video};

const LEASE: Duration = Duration::from_secs(30);
const TTL: Duration = Duration::from_secs(3600);

/// A session of `total` bytes for `video`, expiring in an hour.
pub fn upload(video: &Video, total: u64) -> Upload {
    let at = now();
    Upload {
        id: UploadId::new(),
        owner: video.owner,
        video: video.id,
        total_bytes: total,
        uploaded_bytes: 0,
        metadata: BTreeMap::from([("filename".to_owned(), video.file_name.clone())]),
        staging: None,
        expires_at: at + seconds(3600),
        created_at: at,
        updated_at: at,
    }
}

async fn new_upload(repo: &dyn Repository, owner: UserId, total: u64) -> (Video, Upload) {
    let clip = video(owner, "clip.mp4");
    let session = upload(&clip, total);
    repo.create_upload(&clip, &session).await.unwrap();
    (clip, session)
}

pub async fn uploads_are_created_with_their_video_and_owned(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let bob = new_user(repo, "bob@example.com").await;
    let (clip, session) = new_upload(repo, alice.id, 1000).await;

    assert_eq!(
        repo.upload(Some(alice.id), session.id).await.unwrap(),
        session
    );
    assert_eq!(repo.upload(None, session.id).await.unwrap(), session);
    assert_eq!(repo.upload_of_video(clip.id).await.unwrap(), session);
    assert_eq!(repo.video(Some(alice.id), clip.id).await.unwrap(), clip);
    let history = repo.history(clip.id).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].status, AwaitingUpload);

    assert_not_found(
        repo.upload(Some(bob.id), session.id).await,
        "bob reads alice's upload",
    );
    assert_not_found(
        repo.lease_upload(Some(bob.id), session.id, "bob", LEASE)
            .await,
        "bob writes to alice's upload",
    );
    assert_not_found(repo.upload(None, UploadId::new()).await, "unknown upload");
    assert_not_found(
        repo.upload_of_video(VideoId::new()).await,
        "a video without a session",
    );
    assert!(matches!(
        repo.create_upload(&clip, &session).await,
        Err(PortError::Conflict(_))
    ));
    let stranger = video(UserId::new(), "orphan.mp4");
    assert_not_found(
        repo.create_upload(&stranger, &upload(&stranger, 1)).await,
        "an upload for an unknown user",
    );
    // Nothing half-created: the failed session left no video either.
    assert_not_found(repo.video(None, stranger.id).await, "the orphan's video");
}

pub async fn one_writer_at_a_time(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let (_, session) = new_upload(repo, alice.id, 100).await;
    let (_, other) = new_upload(repo, alice.id, 100).await;
    let id = session.id;

    let leased = repo
        .lease_upload(Some(alice.id), id, "first", LEASE)
        .await
        .unwrap();
    assert_eq!(leased, session);
    assert!(
        matches!(
            repo.lease_upload(Some(alice.id), id, "second", LEASE).await,
            Err(PortError::Locked)
        ),
        "a held lease refuses a second writer"
    );
    // Another upload is never blocked by this one.
    repo.lease_upload(None, other.id, "elsewhere", LEASE)
        .await
        .unwrap();

    // Progress needs the lease and the offset it was decided on.
    let refused = repo
        .record_upload_progress(id, "second", 0, 10, None, TTL)
        .await;
    assert!(matches!(refused, Err(PortError::LeaseLost)), "{refused:?}");
    let state = json!({"parts": [1]});
    let written = repo
        .record_upload_progress(id, "first", 0, 10, Some(&state), TTL)
        .await
        .unwrap();
    assert_eq!(written.uploaded_bytes, 10);
    assert_eq!(written.staging, Some(state.clone()));
    assert!(
        written.expires_at > session.expires_at,
        "a write pushes the expiry"
    );
    assert!(written.updated_at >= session.updated_at);
    let stale = repo
        .record_upload_progress(id, "first", 0, 20, None, TTL)
        .await;
    assert!(matches!(stale, Err(PortError::LeaseLost)), "{stale:?}");
    let written = repo
        .record_upload_progress(id, "first", 10, 20, None, TTL)
        .await
        .unwrap();
    assert_eq!(written.uploaded_bytes, 20);
    assert_eq!(written.staging, Some(state), "None keeps the staging state");
    repo.renew_upload_lease(id, "first", LEASE, TTL)
        .await
        .unwrap();

    // Releasing with another token does nothing; the holder's release frees it.
    repo.release_upload_lease(id, "second").await.unwrap();
    assert!(matches!(
        repo.lease_upload(None, id, "second", LEASE).await,
        Err(PortError::Locked)
    ));
    repo.release_upload_lease(id, "first").await.unwrap();
    repo.lease_upload(None, id, "second", Duration::ZERO)
        .await
        .unwrap();

    // An expired lease (its writer stalled or died) is taken over, and the stalled writer can
    // neither record, renew nor delete any more.
    let taken = repo.lease_upload(None, id, "third", LEASE).await.unwrap();
    assert_eq!(taken.uploaded_bytes, 20);
    for result in [
        repo.record_upload_progress(id, "second", 20, 30, None, TTL)
            .await
            .map(|_| ()),
        repo.renew_upload_lease(id, "second", LEASE, TTL).await,
        repo.delete_upload(id, "second").await.map(|_| ()),
    ] {
        assert!(matches!(result, Err(PortError::LeaseLost)), "{result:?}");
    }
    assert_eq!(repo.upload(None, id).await.unwrap().uploaded_bytes, 20);
}

pub async fn racing_writers_get_one_lease(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let (_, session) = new_upload(repo, alice.id, 100).await;
    let lease = |token: &'static str| repo.lease_upload(Some(alice.id), session.id, token, LEASE);
    let results = tokio::join!(
        lease("a"),
        lease("b"),
        lease("c"),
        lease("d"),
        lease("e"),
        lease("f")
    );
    let results = [
        results.0, results.1, results.2, results.3, results.4, results.5,
    ];
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(PortError::Locked))),
        "{results:?}"
    );
}

pub async fn deleting_an_upload_takes_its_waiting_video(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let (clip, session) = new_upload(repo, alice.id, 100).await;
    repo.lease_upload(None, session.id, "writer", LEASE)
        .await
        .unwrap();
    assert!(matches!(
        repo.delete_upload(session.id, "someone else").await,
        Err(PortError::LeaseLost)
    ));
    let (deleted, video) = repo.delete_upload(session.id, "writer").await.unwrap();
    assert_eq!(deleted.id, session.id);
    assert_eq!(video.map(|v| v.id), Some(clip.id));
    assert_not_found(repo.upload(None, session.id).await, "a deleted upload");
    assert_not_found(repo.video(None, clip.id).await, "its waiting video");

    // A video already queued is processed as usual: only the session goes.
    let (queued, done) = new_upload(repo, alice.id, 100).await;
    repo.transition(queued.id, Transition::to(Queued))
        .await
        .unwrap();
    repo.lease_upload(None, done.id, "writer", LEASE)
        .await
        .unwrap();
    let (_, video) = repo.delete_upload(done.id, "writer").await.unwrap();
    assert_eq!(video, None);
    assert_eq!(repo.video(None, queued.id).await.unwrap().status, Queued);

    // A video uploaded without a job stays `awaiting_upload`, but its bytes are stored: it stays.
    let (stored, session) = new_upload(repo, alice.id, 100).await;
    assert!(repo.mark_uploaded(stored.id).await.unwrap());
    repo.lease_upload(None, session.id, "writer", LEASE)
        .await
        .unwrap();
    let (_, video) = repo.delete_upload(session.id, "writer").await.unwrap();
    assert_eq!(video, None);
    assert_eq!(
        repo.video(None, stored.id).await.unwrap().status,
        AwaitingUpload
    );

    // Deleting the video ends its session too.
    let (clip, session) = new_upload(repo, alice.id, 100).await;
    repo.delete_video(alice.id, clip.id).await.unwrap();
    assert_not_found(
        repo.upload(None, session.id).await,
        "the session of a deleted video",
    );
}

pub async fn only_idle_uploads_expire(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let past = now() - seconds(1);
    let expired = |clip: &Video| Upload {
        expires_at: past,
        ..upload(clip, 100)
    };
    let idle_video = video(alice.id, "idle.mp4");
    let idle = expired(&idle_video);
    repo.create_upload(&idle_video, &idle).await.unwrap();
    let busy_video = video(alice.id, "busy.mp4");
    let busy = expired(&busy_video);
    repo.create_upload(&busy_video, &busy).await.unwrap();
    let (_, fresh) = new_upload(repo, alice.id, 100).await;
    // A writer is streaming into `busy` right now.
    repo.lease_upload(None, busy.id, "writer", LEASE)
        .await
        .unwrap();

    let at = now();
    let listed: Vec<UploadId> = repo
        .expired_uploads(at, 10)
        .await
        .unwrap()
        .iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(listed, vec![idle.id]);
    assert_eq!(repo.delete_expired_upload(busy.id, at).await.unwrap(), None);
    assert_eq!(
        repo.delete_expired_upload(fresh.id, at).await.unwrap(),
        None
    );
    let (deleted, video) = repo
        .delete_expired_upload(idle.id, at)
        .await
        .unwrap()
        .expect("the idle upload is deleted");
    assert_eq!(deleted.id, idle.id);
    assert_eq!(video.map(|v| v.id), Some(idle_video.id));
    assert_not_found(
        repo.video(None, idle_video.id).await,
        "the idle upload's video",
    );
    assert_eq!(
        repo.delete_expired_upload(idle.id, at).await.unwrap(),
        None,
        "a second scheduler finds nothing to do"
    );

    // The writer's progress pushes the expiry: once it lets go, the session is not idle.
    repo.record_upload_progress(busy.id, "writer", 0, 50, None, TTL)
        .await
        .unwrap();
    repo.release_upload_lease(busy.id, "writer").await.unwrap();
    assert!(repo.expired_uploads(now(), 10).await.unwrap().is_empty());
    assert_eq!(
        repo.delete_expired_upload(busy.id, now()).await.unwrap(),
        None
    );
    assert_eq!(repo.upload(None, busy.id).await.unwrap().uploaded_bytes, 50);
}

pub async fn abandoned_videos_are_unused_presigned_uploads(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let long_ago = now() - seconds(7200);
    let old = |status: VideoStatus, name: &str| Video {
        status,
        created_at: long_ago,
        updated_at: long_ago,
        ..video(alice.id, name)
    };
    let abandoned = old(AwaitingUpload, "abandoned.mp4");
    repo.create_video(&abandoned).await.unwrap();
    let resumable = old(AwaitingUpload, "resumable.mp4");
    repo.create_upload(&resumable, &upload(&resumable, 10))
        .await
        .unwrap();
    let processed = old(Queued, "queued.mp4");
    repo.create_video(&processed).await.unwrap();
    let recent = video(alice.id, "recent.mp4");
    repo.create_video(&recent).await.unwrap();
    // Uploaded for jobs of its own, so still `awaiting_upload`: its bytes are there.
    let uploaded = old(AwaitingUpload, "uploaded.mp4");
    repo.create_video(&uploaded).await.unwrap();
    assert!(repo.mark_uploaded(uploaded.id).await.unwrap());

    let before = now() - seconds(3600);
    let listed: Vec<VideoId> = repo
        .abandoned_videos(before, 10)
        .await
        .unwrap()
        .iter()
        .map(|v| v.id)
        .collect();
    assert_eq!(listed, vec![abandoned.id]);
    for keep in [&resumable, &processed, &recent, &uploaded] {
        assert_eq!(
            repo.delete_abandoned_video(keep.id, before).await.unwrap(),
            None,
            "{}",
            keep.file_name
        );
        repo.video(None, keep.id).await.unwrap();
    }
    let deleted = repo
        .delete_abandoned_video(abandoned.id, before)
        .await
        .unwrap();
    assert_eq!(deleted.map(|v| v.id), Some(abandoned.id));
    assert_eq!(
        repo.delete_abandoned_video(abandoned.id, before)
            .await
            .unwrap(),
        None
    );
}
