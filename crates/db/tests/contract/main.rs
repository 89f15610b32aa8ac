//! The crate's one integration-test binary: every contract check against each backend, each on
//! its own fresh database (a temp file for SQLite, a scratch database on the test server for
//! PostgreSQL), then what only that backend has to prove, and what both backends' upgrade tests
//! check once the older database is upgraded (`assert_upgraded`).
//!
//! `cargo test -p vidsnap-db --test contract sqlite::` (or `postgres::`) runs one backend. The
//! PostgreSQL half needs a server (`scripts/test-services.sh`) and fails, never skips, without
//! one.

mod postgres;
mod sqlite;

use vidsnap_db::contract;
use vidsnap_domain::{JobQueue, Repository, Transition, VideoId, VideoStatus};

/// What every backend's upgraded database must show; `videos` are the pre-jobs videos in
/// `VideoStatus::ALL` order, the `processing` one owing an e-mail for `video.succeeded`. One
/// still waiting for its upload gets the id of the job its upload will make; the others none.
pub(crate) async fn assert_upgraded<S: Repository + JobQueue>(
    store: &S,
    videos: &[(VideoId, VideoStatus)],
) {
    for &(id, status) in videos {
        let video = store.video(None, id).await.expect("an old video");
        assert_eq!((video.status, video.uploaded_at), (status, None));
        assert_eq!(
            video.job.is_some(),
            status == VideoStatus::AwaitingUpload,
            "{status}: {:?}",
            video.job
        );
    }
    let stats = store.stats().await.expect("stats");
    assert_eq!(
        (stats.queued, stats.running, stats.dead),
        (0, 0, 0),
        "the old queue's rows are gone"
    );
    assert_eq!(
        store
            .stale_queued(contract::now(), 10)
            .await
            .expect("the sweep"),
        vec![videos[1].0, videos[2].0],
        "queued and processing, for the scheduler to give a job"
    );
    let processing = videos[2].0;
    let owed = store.notifications_for(processing).await.expect("kept");
    assert_eq!(owed.len(), 1);
    store
        .transition(processing, Transition::to(VideoStatus::Succeeded))
        .await
        .expect("the old video moves on");
    assert_eq!(
        store.notifications_for(processing).await.expect("kept"),
        owed,
        "an outcome already owed is not owed twice"
    );
}
