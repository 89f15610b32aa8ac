//! The bucket workflow's records: candidates, decisions recorded once with their move and
//! notifications, moves finished, and the read API's range queries.

use serde_json::json;
use vidsnap_domain::{
    ErrorCode, EventType, Failure, Move, QcOutcome, QcResult, QcResultId, Repository, UserId, Video,
};

use super::{new_user, now, seconds, video};

async fn watched(repo: &dyn Repository, owner: UserId, key: &str) -> Video {
    let mut watched = video(owner, key.rsplit('/').next().unwrap());
    watched.source = Some(key.to_owned());
    repo.create_video(&watched).await.unwrap();
    watched
}

fn result(video: &Video, attempt: u32, outcome: QcOutcome) -> QcResult {
    QcResult {
        id: QcResultId::new(),
        owner: video.owner,
        video: video.id,
        job: None,
        cycle: attempt,
        attempt,
        key: video.source.clone().unwrap(),
        file_name: video.file_name.clone(),
        outcome,
        rating: Some(5),
        passed: outcome == QcOutcome::Processed,
        error: (outcome != QcOutcome::Processed).then(|| Failure {
            code: ErrorCode::MetadataMissing,
            message: "no sidecar".into(),
        }),
        checks: json!([{"name": "streams", "status": "ok", "message": "video and audio"}]),
        sidecar: json!({"Duration": 1}),
        moved_to: None,
        created_at: now(),
    }
}

pub async fn a_decision_is_recorded_once_with_its_move(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let clip = watched(repo, alice.id, "uploads/a b+é.mp4").await;
    let other = watched(repo, alice.id, "elsewhere/c.mp4").await;
    let folders = ["uploads/".to_owned(), "failed/".to_owned()];
    let ids = |items: Vec<vidsnap_domain::SortItem>| {
        items.into_iter().map(|i| i.video.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(repo.sort_candidates(&folders, 10).await.unwrap()),
        [clip.id]
    );

    let mut decided = result(&clip, 0, QcOutcome::Failed);
    decided.moved_to = Some("failed/a b+é.mp4".into());
    let moving = Move {
        from: "uploads/a b+é.mp4".into(),
        to: "failed/a b+é.mp4".into(),
        outputs: None,
    };
    assert!(
        repo.record_qc_result(&decided, Some(&moving), Some(EventType::QcFailed))
            .await
            .unwrap()
    );
    let again = QcResult {
        id: QcResultId::new(),
        ..decided.clone()
    };
    assert!(
        !repo
            .record_qc_result(&again, Some(&moving), Some(EventType::QcFailed))
            .await
            .unwrap(),
        "a second decision of the same attempt changes nothing"
    );
    // Both keys are the video's until the move is done; it is a candidate whatever its folder.
    for key in ["uploads/a b+é.mp4", "failed/a b+é.mp4"] {
        assert_eq!(
            repo.video_by_source(key).await.unwrap().id,
            clip.id,
            "{key}"
        );
    }
    let items = repo
        .sort_candidates(&["nowhere/".to_owned()], 10)
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].moving_from.as_deref(), Some("uploads/a b+é.mp4"));
    assert_eq!(items[0].video.source.as_deref(), Some("failed/a b+é.mp4"));
    repo.finish_move(clip.id).await.unwrap();
    assert!(matches!(
        repo.video_by_source("uploads/a b+é.mp4").await,
        Err(vidsnap_domain::PortError::NotFound)
    ));
    assert_eq!(
        ids(repo.sort_candidates(&folders, 10).await.unwrap()),
        [clip.id]
    );
    assert_eq!(
        repo.video_by_source("elsewhere/c.mp4").await.unwrap().id,
        other.id
    );

    let stored = repo.qc_results_of(clip.id).await.unwrap();
    assert_eq!(stored, [decided]);
    let owed = repo.notifications_for(clip.id).await.unwrap();
    assert_eq!(owed.len(), 1, "one e-mail for the one decision: {owed:?}");
    assert_eq!(owed[0].event, EventType::QcFailed);
    assert_eq!(owed[0].payload["qc"]["moved_to"], "failed/a b+é.mp4");
    assert_eq!(
        owed[0].payload["video"]["last_error"]["code"],
        "metadata-missing"
    );
}

pub async fn a_move_onto_a_taken_key_is_refused_whole(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let clip = watched(repo, alice.id, "uploads/a.mp4").await;
    watched(repo, alice.id, "processed/a.mp4").await;
    let moving = Move {
        from: "uploads/a.mp4".into(),
        to: "processed/a.mp4".into(),
        outputs: None,
    };
    let decided = result(&clip, 0, QcOutcome::Processed);
    assert!(
        repo.record_qc_result(&decided, Some(&moving), Some(EventType::QcProcessed))
            .await
            .is_err()
    );
    assert!(
        repo.qc_results_of(clip.id).await.unwrap().is_empty(),
        "nothing recorded"
    );
    assert!(repo.notifications_for(clip.id).await.unwrap().is_empty());
    assert_eq!(repo.video(None, clip.id).await.unwrap().source, clip.source);
}

pub async fn results_are_read_by_time_range_and_counted(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let bob = new_user(repo, "bob@example.com").await;
    let start = now();
    let outcomes = [
        QcOutcome::Processed,
        QcOutcome::Failed,
        QcOutcome::Processed,
        QcOutcome::UnableToProcess,
        QcOutcome::Processed,
    ];
    let mut recorded = Vec::new();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let clip = watched(repo, alice.id, &format!("uploads/{i}.mp4")).await;
        let mut decided = result(&clip, 0, outcome);
        decided.created_at = start + seconds(i as i64);
        assert!(repo.record_qc_result(&decided, None, None).await.unwrap());
        recorded.push(decided);
    }
    let bobs = watched(repo, bob.id, "uploads/bob.mp4").await;
    repo.record_qc_result(&result(&bobs, 0, QcOutcome::Failed), None, None)
        .await
        .unwrap();

    let end = start + seconds(100);
    let first = repo
        .qc_results(alice.id, start, end, None, 2)
        .await
        .unwrap();
    assert_eq!(first.items, recorded[..2]);
    let cursor = first.next_cursor.expect("more");
    let rest = repo
        .qc_results(alice.id, start, end, Some(&cursor), 10)
        .await
        .unwrap();
    assert_eq!(rest.items, recorded[2..]);
    assert_eq!(rest.next_cursor, None);
    // [begin, end): the second and third only.
    let middle = repo
        .qc_results(alice.id, start + seconds(1), start + seconds(3), None, 10)
        .await
        .unwrap();
    assert_eq!(middle.items, recorded[1..3]);

    let counts = repo.count_qc_results(alice.id, start, end).await.unwrap();
    assert_eq!(
        (
            counts.processed,
            counts.failed,
            counts.unable_to_process,
            counts.total
        ),
        (3, 1, 1, 5)
    );
    let none = repo
        .count_qc_results(alice.id, end, end + seconds(1))
        .await
        .unwrap();
    assert_eq!(none.total, 0);
    assert!(matches!(
        repo.qc_results(alice.id, start, end, Some("not-a-cursor"), 10)
            .await,
        Err(vidsnap_domain::PortError::NotFound)
    ));
}
