//! [`LocalStaging`]: what the `UploadStaging` port promises, on local disk.

use std::{collections::BTreeMap, io, path::Path};

use bytes::Bytes;
use sha2::Digest;
use vidsnap_domain::{
    AppendError, ByteStream, Checksum, ChecksumAlgorithm, PortError, Upload, UploadId,
    UploadStaging, UserId, VideoId,
};
use vidsnap_storage::{LocalStaging, LocalStore, UrlSigner};

fn staging(root: &Path) -> (LocalStore, LocalStaging) {
    let store = LocalStore::open(root, UrlSigner::new(b"s".to_vec(), "http://h")).expect("store");
    let staging = LocalStaging::new(&store).expect("staging");
    (store, staging)
}

fn session(total: u64) -> Upload {
    let at = chrono::Utc::now();
    Upload {
        id: UploadId::new(),
        owner: UserId::new(),
        video: VideoId::new(),
        total_bytes: total,
        uploaded_bytes: 0,
        metadata: BTreeMap::new(),
        staging: None,
        expires_at: at,
        created_at: at,
        updated_at: at,
    }
}

/// A body arriving in `pieces`, optionally cut off (an `Err`) at the end.
fn body(pieces: &[&[u8]], cut: bool) -> ByteStream {
    let mut items: Vec<io::Result<Bytes>> = pieces
        .iter()
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .collect();
    if cut {
        items.push(Err(io::Error::new(io::ErrorKind::ConnectionReset, "gone")));
    }
    Box::pin(futures_util::stream::iter(items))
}

fn sha1(bytes: &[u8]) -> Checksum {
    Checksum {
        algorithm: ChecksumAlgorithm::Sha1,
        digest: sha1::Sha1::digest(bytes).to_vec(),
    }
}

fn sha256(bytes: &[u8]) -> Checksum {
    Checksum {
        algorithm: ChecksumAlgorithm::Sha256,
        digest: sha2::Sha256::digest(bytes).to_vec(),
    }
}

#[tokio::test]
async fn pieces_append_and_complete_by_rename() {
    let root = tempfile::tempdir().expect("temp dir");
    let (store, staging) = staging(root.path());
    let mut upload = session(10);

    let first = staging
        .append(
            &upload,
            body(&[b"abc", b"de"], false),
            Some(&sha256(b"abcde")),
        )
        .await
        .expect("first piece");
    assert_eq!((first.bytes, first.interrupted), (5, false));
    upload.uploaded_bytes = 5;
    let second = staging
        .append(&upload, body(&[b"fghij"], false), Some(&sha1(b"fghij")))
        .await
        .expect("second piece");
    assert_eq!(second.bytes, 5);
    upload.uploaded_bytes = 10;
    assert_eq!(
        std::fs::read(staging.path_of(&upload)).expect("staged"),
        b"abcdefghij"
    );

    let key = format!("{}/{}/clip.mp4", upload.owner, upload.video);
    assert_eq!(staging.complete(&upload, &key).await.expect("complete"), 10);
    assert_eq!(
        std::fs::read(store.path_of(&key)).expect("blob"),
        b"abcdefghij"
    );
    assert!(!staging.path_of(&upload).exists(), "nothing left staged");
    // A retry after a crash between the rename and what follows it.
    assert_eq!(staging.complete(&upload, &key).await.expect("again"), 10);
    assert!(
        std::fs::read_dir(root.path().join(".uploads"))
            .expect("staging folder")
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn failed_pieces_leave_the_staged_bytes_as_recorded() {
    let root = tempfile::tempdir().expect("temp dir");
    let (_, staging) = staging(root.path());
    let mut upload = session(8);
    staging
        .append(&upload, body(&[b"1234"], false), None)
        .await
        .expect("first piece");
    upload.uploaded_bytes = 4;
    let staged = || std::fs::read(staging.path_of(&upload)).expect("staged");

    let wrong = staging
        .append(&upload, body(&[b"5678"], false), Some(&sha256(b"0000")))
        .await;
    assert!(
        matches!(wrong, Err(AppendError::ChecksumMismatch)),
        "{wrong:?}"
    );
    assert_eq!(staged(), b"1234");

    let long = staging
        .append(&upload, body(&[b"56", b"789"], false), None)
        .await;
    assert!(matches!(long, Err(AppendError::TooLarge)), "{long:?}");
    assert_eq!(staged(), b"1234");

    // Cut off with a checksum: nothing unverified is kept.
    let cut = staging
        .append(&upload, body(&[b"56"], true), Some(&sha1(b"5678")))
        .await
        .expect("an interrupted piece is not an error");
    assert_eq!((cut.bytes, cut.interrupted), (0, true));
    assert_eq!(staged(), b"1234");

    // Cut off without one: what arrived is kept (tus: store as much as possible).
    let cut = staging
        .append(&upload, body(&[b"56"], true), None)
        .await
        .expect("kept");
    assert_eq!((cut.bytes, cut.interrupted), (2, true));
    assert_eq!(staged(), b"123456");

    // A writer died after writing "56" but before recording it: the next append at the
    // recorded offset (4) overwrites it.
    let again = staging
        .append(&upload, body(&[b"ab"], false), None)
        .await
        .expect("append at the recorded offset");
    assert_eq!(again.bytes, 2);
    assert_eq!(staged(), b"1234ab");
}

#[tokio::test]
async fn lost_staged_bytes_are_an_error_and_abort_is_idempotent() {
    let root = tempfile::tempdir().expect("temp dir");
    let (_, staging) = staging(root.path());
    let mut upload = session(8);
    staging
        .append(&upload, body(&[b"1234"], false), None)
        .await
        .expect("first piece");
    staging.abort(&upload).await.expect("abort");
    assert!(!staging.path_of(&upload).exists());
    staging.abort(&upload).await.expect("abort again");

    upload.uploaded_bytes = 4;
    let lost = staging.append(&upload, body(&[b"5678"], false), None).await;
    assert!(
        matches!(&lost, Err(AppendError::Port(PortError::Unavailable(m))) if m.contains("lost")),
        "{lost:?}"
    );
    upload.uploaded_bytes = 8;
    let key = format!("{}/{}/clip.mp4", upload.owner, upload.video);
    assert!(matches!(
        staging.complete(&upload, &key).await,
        Err(PortError::Unavailable(_))
    ));
}

/// The store finds every upload staged beside it, and discards one without its session (which
/// the scheduler does once the session is gone), idempotently, leaving the others.
#[tokio::test]
async fn the_store_finds_and_discards_staged_uploads() {
    use vidsnap_domain::BlobStore;

    let root = tempfile::tempdir().expect("temp dir");
    let (store, staging) = staging(root.path());
    let (gone, live) = (session(8), session(8));
    let before = chrono::Utc::now() - chrono::TimeDelta::seconds(5);
    for (upload, piece) in [(&gone, &b"1234"[..]), (&live, &b"123456"[..])] {
        staging
            .append(upload, body(&[piece], false), None)
            .await
            .expect("a piece");
    }
    // Not an upload's: left alone.
    std::fs::write(root.path().join(".uploads/notes.txt"), b"x").expect("a stray file");

    let mut staged = store.staged_uploads().await.expect("staged uploads");
    staged.sort_by_key(|s| (s.bytes, s.upload));
    let found: Vec<_> = staged.iter().map(|s| (s.upload, s.bytes)).collect();
    assert_eq!(found, [(gone.id, 4), (live.id, 6)]);
    assert!(staged.iter().all(|s| s.modified > before));

    store.discard_staged(gone.id).await.expect("discard");
    store.discard_staged(gone.id).await.expect("discard again");
    assert!(!staging.path_of(&gone).exists());
    assert!(
        staging.path_of(&live).exists(),
        "another upload's bytes stay"
    );
    let left: Vec<_> = store
        .staged_uploads()
        .await
        .expect("staged uploads")
        .into_iter()
        .map(|s| s.upload)
        .collect();
    assert_eq!(left, [live.id]);
}
