//! [`S3Staging`]: what the `UploadStaging` port promises, on SeaweedFS, each test in a bucket of
//! its own with 5 MiB parts. Appends alternate between two `S3Staging`s with scratch directories
//! of their own, as two API processes would.

use std::{collections::BTreeMap, io, sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::{
    ObjectStore, ObjectStoreExt,
    path::Path as ObjectPath,
    signer::{Method, SignedUrlOptions, Signer},
};
use sha2::Digest;
use vidsnap_domain::{
    AppendError, Appended, ByteStream, Checksum, ChecksumAlgorithm, PortError, PortResult, Upload,
    UploadId, UploadStaging, UserId, VideoId,
};
use vidsnap_storage::{S3Staging, UploadDestination, contract::noise};

use crate::s3::{Fresh, PREFIX, fresh};

const MIB: usize = 1024 * 1024;

/// Every upload completes into `{owner}/{video}/clip.mp4`.
struct ClipKey;

#[async_trait]
impl UploadDestination for ClipKey {
    async fn key_of(&self, upload: &Upload) -> PortResult<String> {
        Ok(key(upload))
    }
}

fn key(upload: &Upload) -> String {
    format!("{}/{}/clip.mp4", upload.owner, upload.video)
}

/// Two stagings on one bucket, as two processes would have them, with their scratch dirs.
struct Processes {
    store: Fresh,
    a: S3Staging,
    b: S3Staging,
    scratch: [tempfile::TempDir; 2],
}

async fn processes() -> Processes {
    let store = fresh().await;
    let scratch = [
        tempfile::tempdir().expect("scratch"),
        tempfile::tempdir().expect("scratch"),
    ];
    let staging = |dir: &tempfile::TempDir| {
        S3Staging::new(&store, dir.path(), Arc::new(ClipKey)).expect("staging")
    };
    let (a, b) = (staging(&scratch[0]), staging(&scratch[1]));
    Processes {
        store,
        a,
        b,
        scratch,
    }
}

impl Processes {
    /// Object names in the upload's staging folder.
    async fn staged(&self, upload: &Upload) -> Vec<String> {
        let folder = ObjectPath::from(format!("{PREFIX}/.uploads/{}", upload.id));
        let listed: Vec<_> = self
            .store
            .raw()
            .list(Some(&folder))
            .try_collect()
            .await
            .expect("list the staging folder");
        listed
            .into_iter()
            .map(|m| m.location.filename().unwrap_or_default().to_owned())
            .collect()
    }

    async fn multipart_uploads(&self) -> Vec<String> {
        multipart_uploads(&self.store).await
    }

    /// The blob's bytes.
    async fn blob(&self, key: &str) -> Bytes {
        let location = ObjectPath::from(format!("{PREFIX}/{key}"));
        let got = self.store.raw().get(&location).await.expect("the blob");
        got.bytes().await.expect("its bytes")
    }

    fn scratch_is_empty(&self) -> bool {
        self.scratch.iter().all(|dir| {
            std::fs::read_dir(dir.path())
                .expect("scratch dir")
                .next()
                .is_none()
        })
    }
}

/// The ids of the bucket's unfinished multipart uploads (ListMultipartUploads, which
/// object_store does not offer, as a signed request).
pub(crate) async fn multipart_uploads(store: &Fresh) -> Vec<String> {
    let options = SignedUrlOptions::default().with_query([("uploads", "")]);
    let url = store
        .raw()
        .signed_url_opts(
            Method::GET,
            &ObjectPath::from(""),
            Duration::from_secs(60),
            &options,
        )
        .await
        .expect("sign ListMultipartUploads");
    let response = reqwest::get(url.as_str())
        .await
        .expect("ListMultipartUploads");
    assert!(response.status().is_success(), "{}", response.status());
    let listing = response.text().await.expect("a listing");
    listing
        .split("<UploadId>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</UploadId>").map(|(id, _)| id.to_owned()))
        .collect()
}

fn session(total: usize) -> Upload {
    let at = chrono::Utc::now();
    Upload {
        id: UploadId::new(),
        owner: UserId::new(),
        video: VideoId::new(),
        total_bytes: total as u64,
        uploaded_bytes: 0,
        metadata: BTreeMap::new(),
        staging: None,
        expires_at: at,
        created_at: at,
        updated_at: at,
    }
}

/// `bytes` arriving in 64 KiB frames, cut off (an `Err`) at the end when `cut`.
fn body(bytes: &[u8], cut: bool) -> ByteStream {
    let mut items: Vec<io::Result<Bytes>> = bytes
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    if cut {
        items.push(Err(io::Error::new(io::ErrorKind::ConnectionReset, "gone")));
    }
    Box::pin(futures_util::stream::iter(items))
}

fn sha256(bytes: &[u8]) -> Checksum {
    Checksum {
        algorithm: ChecksumAlgorithm::Sha256,
        digest: sha2::Sha256::digest(bytes).to_vec(),
    }
}

fn sha1(bytes: &[u8]) -> Checksum {
    Checksum {
        algorithm: ChecksumAlgorithm::Sha1,
        digest: sha1::Sha1::digest(bytes).to_vec(),
    }
}

/// What the repository does after an append returned: the new offset and state.
fn record(upload: &mut Upload, appended: &Appended) {
    upload.uploaded_bytes += appended.bytes;
    if let Some(staging) = &appended.staging {
        upload.staging = Some(staging.clone());
    }
}

async fn append(
    staging: &S3Staging,
    upload: &mut Upload,
    bytes: &[u8],
    checksum: Option<&Checksum>,
) -> Appended {
    let appended = staging
        .append(upload, body(bytes, false), checksum)
        .await
        .unwrap_or_else(|e| panic!("append at {}: {e}", upload.uploaded_bytes));
    assert_eq!(appended.bytes, bytes.len() as u64);
    assert!(!appended.interrupted);
    record(upload, &appended);
    appended
}

fn parts(upload: &Upload) -> usize {
    upload.staging.as_ref().map_or(0, |s| {
        s["multipart"]["parts"].as_array().map_or(0, Vec::len)
    })
}

fn tail_name(upload: &Upload) -> Option<String> {
    let staging = upload.staging.as_ref()?;
    staging["tail"]["name"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn pieces_of_odd_sizes_become_parts_and_complete_from_either_process() {
    let p = processes().await;
    let sizes = [MIB + 7, 3 * MIB + 1001, 2 * MIB + 3, 6 * MIB + 11, MIB + 5];
    let total: usize = sizes.iter().sum();
    let source = noise(total, 21);
    let mut upload = session(total);

    // Parts after each piece: 4 MiB stays a tail; 6 MiB fills part 1; 13 MiB fills part 2.
    let expected_parts = [0, 0, 1, 2, 2];
    let mut at = 0;
    for (i, size) in sizes.into_iter().enumerate() {
        let piece = &source[at..at + size];
        let checksum = match i {
            0 => Some(sha256(piece)),
            2 => Some(sha1(piece)),
            _ => None,
        };
        let staging = if i % 2 == 0 { &p.a } else { &p.b };
        append(staging, &mut upload, piece, checksum.as_ref()).await;
        at += size;
        assert_eq!(parts(&upload), expected_parts[i], "parts after piece {i}");
        let tail = tail_name(&upload).expect("every piece leaves a tail here");
        assert!(
            p.staged(&upload).await.contains(&tail),
            "the tail is stored"
        );
    }
    assert!(p.scratch_is_empty(), "no scratch file is left behind");

    let key = key(&upload);
    let size = p.b.complete(&upload, &key).await.expect("complete");
    assert_eq!(size, total as u64);
    let blob = p.blob(&key).await;
    assert_eq!(
        sha2::Sha256::digest(&blob),
        sha2::Sha256::digest(&source),
        "the blob is the source"
    );
    let meta = p
        .store
        .raw()
        .head(&ObjectPath::from(format!("{PREFIX}/{key}")))
        .await
        .expect("head");
    let etag = meta.e_tag.unwrap_or_default();
    assert!(
        etag.trim_matches('"').ends_with("-3"),
        "3 parts: ETag {etag}"
    );
    assert!(p.staged(&upload).await.is_empty(), "nothing left staged");
    assert!(p.multipart_uploads().await.is_empty());

    // A retry after a crash between the completion and what follows it.
    let again = p.a.complete(&upload, &key).await.expect("complete again");
    assert_eq!(again, total as u64);
}

#[tokio::test]
async fn refused_pieces_leave_the_staged_bytes_as_recorded() {
    let p = processes().await;
    let total = 12 * MIB;
    let source = noise(total, 22);
    let mut upload = session(total);
    append(&p.a, &mut upload, &source[..4 * MIB], None).await;
    let recorded = upload.clone();
    let only_the_tail = vec![tail_name(&upload).expect("a tail")];

    // Crosses the first part's end, but its checksum is wrong: no part may go up.
    let rest = &source[4 * MIB..];
    let wrong =
        p.b.append(
            &upload,
            body(&rest[..3 * MIB], false),
            Some(&sha256(b"other")),
        )
        .await;
    assert!(
        matches!(wrong, Err(AppendError::ChecksumMismatch)),
        "{wrong:?}"
    );
    assert!(p.multipart_uploads().await.is_empty(), "no part went up");
    assert_eq!(p.staged(&upload).await, only_the_tail);

    let mut long = rest.to_vec();
    long.push(0);
    let too_long = p.a.append(&upload, body(&long, false), None).await;
    assert!(
        matches!(too_long, Err(AppendError::TooLarge)),
        "{too_long:?}"
    );
    assert!(p.multipart_uploads().await.is_empty(), "no part went up");
    assert_eq!(p.staged(&upload).await, only_the_tail);

    // Cut off with a checksum: nothing unverified is kept.
    let cut =
        p.b.append(
            &upload,
            body(&rest[..2 * MIB], true),
            Some(&sha256(&rest[..3 * MIB])),
        )
        .await
        .expect("an interrupted piece is not an error");
    assert_eq!((cut.bytes, cut.interrupted), (0, true));
    record(&mut upload, &cut);
    assert_eq!(upload, recorded);
    assert!(p.multipart_uploads().await.is_empty(), "no part went up");

    // Cut off without one: what arrived is kept (tus: store as much as possible), here across
    // the first part's end.
    let cut =
        p.a.append(&upload, body(&rest[..2 * MIB], true), None)
            .await
            .expect("kept");
    assert_eq!((cut.bytes, cut.interrupted), (2 * MIB as u64, true));
    record(&mut upload, &cut);
    assert_eq!(parts(&upload), 1);

    append(
        &p.b,
        &mut upload,
        &rest[2 * MIB..],
        Some(&sha256(&rest[2 * MIB..])),
    )
    .await;
    let key = key(&upload);
    p.a.complete(&upload, &key).await.expect("complete");
    assert_eq!(p.blob(&key).await, source);
    assert!(p.scratch_is_empty());
}

#[tokio::test]
async fn what_a_writer_left_before_dying_is_discarded() {
    let p = processes().await;
    let total = 16 * MIB;
    let source = noise(total, 23);
    let garbage = noise(total, 99);
    let mut upload = session(total);

    // A writer died after starting the multipart upload and uploading a part: nothing recorded.
    let dead =
        p.a.append(&upload, body(&garbage[..6 * MIB], false), None)
            .await
            .expect("the dead writer's append");
    assert_eq!(dead.bytes, 6 * MIB as u64);
    let orphan = p.multipart_uploads().await;
    assert_eq!(orphan.len(), 1);

    // The next writer starts from what is recorded (nothing): the orphan is aborted.
    append(&p.b, &mut upload, &source[..6 * MIB], None).await;
    let uploads = p.multipart_uploads().await;
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    assert_ne!(uploads, orphan, "the orphan was aborted");
    let after_first = p.staged(&upload).await;
    assert_eq!(
        after_first.len(),
        2,
        "a marker and the tail: {after_first:?}"
    );

    // Another writer uploads parts 2 and 3 and a new tail, then dies before recording them.
    p.a.append(&upload, body(&garbage[6 * MIB..], false), None)
        .await
        .expect("the dead writer's append");
    let with_dead = p.staged(&upload).await;
    let dead_tail: Vec<_> = with_dead
        .iter()
        .filter(|name| !after_first.contains(name))
        .collect();
    assert_eq!(dead_tail.len(), 1, "its tail is there too: {with_dead:?}");

    // The next append at the recorded offset replaces part 2 and drops the stale tail; the
    // recorded tail stays until the new one is recorded.
    let previous = tail_name(&upload).expect("a tail");
    append(&p.b, &mut upload, &source[6 * MIB..11 * MIB], None).await;
    let staged = p.staged(&upload).await;
    assert!(!staged.contains(dead_tail[0]), "{staged:?}");
    assert!(staged.contains(&previous), "{staged:?}");
    assert!(staged.contains(&tail_name(&upload).expect("a tail")));
    assert_eq!(staged.len(), 3, "a marker and two tails: {staged:?}");
    append(&p.a, &mut upload, &source[11 * MIB..], None).await;

    let key = key(&upload);
    p.b.complete(&upload, &key).await.expect("complete");
    assert_eq!(
        sha2::Sha256::digest(p.blob(&key).await),
        sha2::Sha256::digest(&source)
    );
    assert!(p.staged(&upload).await.is_empty());
    assert!(p.multipart_uploads().await.is_empty());
}

#[tokio::test]
async fn abort_leaves_no_multipart_upload_and_no_tail() {
    let p = processes().await;
    let total = 20 * MIB;
    let source = noise(total, 24);
    let mut upload = session(total);
    append(&p.a, &mut upload, &source[..7 * MIB], None).await;
    // And what a writer that died left beside it.
    p.b.append(&upload, body(&source[7 * MIB..15 * MIB], false), None)
        .await
        .expect("append");
    assert_eq!(p.multipart_uploads().await.len(), 1);
    assert!(!p.staged(&upload).await.is_empty());

    p.b.abort(&upload).await.expect("abort");
    assert!(p.multipart_uploads().await.is_empty());
    assert!(p.staged(&upload).await.is_empty());
    p.a.abort(&upload).await.expect("abort again");
    p.a.abort(&session(10))
        .await
        .expect("abort of nothing staged");

    // The bytes are gone: continuing is an error, not a blob with a hole.
    let lost = p.a.append(&upload, body(b"more", false), None).await;
    assert!(
        matches!(&lost, Err(AppendError::Port(PortError::Unavailable(m))) if m.contains("lost")),
        "{lost:?}"
    );
    assert!(matches!(
        p.a.complete(&upload, &key(&upload)).await,
        Err(PortError::Conflict(_))
    ));
}

#[tokio::test]
async fn uploads_below_one_part_and_empty_ones_complete() {
    let p = processes().await;
    let source = noise(1000, 25);
    let mut upload = session(source.len());
    append(&p.a, &mut upload, &source[..300], None).await;
    append(
        &p.b,
        &mut upload,
        &source[300..],
        Some(&sha256(&source[300..])),
    )
    .await;
    assert!(
        p.multipart_uploads().await.is_empty(),
        "no multipart upload"
    );
    let key = key(&upload);
    assert_eq!(p.a.complete(&upload, &key).await.expect("complete"), 1000);
    assert_eq!(p.blob(&key).await, source);
    assert!(p.staged(&upload).await.is_empty());
    assert_eq!(p.b.complete(&upload, &key).await.expect("again"), 1000);

    let empty = session(0);
    let key = self::key(&empty);
    assert_eq!(p.a.complete(&empty, &key).await.expect("complete"), 0);
    assert!(p.blob(&key).await.is_empty());
}

/// The storage sweep on S3: a multipart upload nobody can finish (a client's abandoned direct
/// upload) is aborted once it started before the cutoff, and kept until then; one a resumable
/// upload's staging names is kept however old, as is anything outside the store's prefix. The
/// store finds the staged uploads, and discards one whose session is gone with its multipart
/// upload; the other still completes whole.
#[tokio::test]
async fn stale_multipart_uploads_are_aborted_and_staged_ones_kept() {
    use chrono::{TimeDelta, Utc};
    use object_store::multipart::MultipartStore;
    use vidsnap_domain::{
        BlobStore,
        ports::{DirectMultipart, SweptTemporaries},
    };
    use vidsnap_storage::S3Multipart;

    let p = processes().await;
    let start = Utc::now() - TimeDelta::seconds(5);
    let total = 12 * MIB;
    let source = noise(total, 60);
    let mut live = session(total);
    append(&p.a, &mut live, &source[..6 * MIB], None).await;
    let mut gone = session(total);
    append(&p.b, &mut gone, &source[..5 * MIB + 3], None).await;
    assert_eq!((parts(&live), parts(&gone)), (1, 1), "both started theirs");
    let direct = S3Multipart::new(&p.store)
        .start(&format!("{}/{}/direct.mp4", UserId::new(), VideoId::new()))
        .await
        .expect("a direct multipart upload");
    let outside_key = ObjectPath::from("elsewhere/x.mp4");
    let outside = p
        .store
        .raw()
        .create_multipart(&outside_key)
        .await
        .expect("a multipart upload outside the prefix");
    assert_eq!(p.multipart_uploads().await.len(), 4);

    let young = p
        .store
        .sweep_temporaries(Utc::now(), start - TimeDelta::hours(1))
        .await
        .expect("sweep");
    assert_eq!(young, SweptTemporaries::default(), "all started since");
    assert_eq!(p.multipart_uploads().await.len(), 4);

    let swept = p
        .store
        .sweep_temporaries(Utc::now(), Utc::now() + TimeDelta::minutes(1))
        .await
        .expect("sweep");
    assert_eq!(swept.multipart_uploads, 1, "{swept:?}");
    let left = p.multipart_uploads().await;
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(!left.contains(&direct.upload_id), "the abandoned one");
    assert!(left.contains(&outside), "outside the store's prefix");

    let mut staged: Vec<_> = p
        .store
        .staged_uploads()
        .await
        .expect("staged uploads")
        .into_iter()
        .map(|s| {
            assert!(s.modified > start, "{s:?}");
            assert!(s.bytes > 0, "{s:?}");
            s.upload
        })
        .collect();
    staged.sort();
    let mut expected = vec![live.id, gone.id];
    expected.sort();
    assert_eq!(staged, expected);

    p.store.discard_staged(gone.id).await.expect("discard");
    p.store
        .discard_staged(gone.id)
        .await
        .expect("discard again");
    assert!(p.staged(&gone).await.is_empty());
    assert_eq!(
        p.multipart_uploads().await.len(),
        2,
        "its multipart upload went with it"
    );

    append(&p.b, &mut live, &source[6 * MIB..], None).await;
    let key = key(&live);
    p.a.complete(&live, &key).await.expect("complete");
    assert_eq!(
        sha2::Sha256::digest(&p.blob(&key).await),
        sha2::Sha256::digest(&source)
    );
    p.store
        .raw()
        .abort_multipart(&outside_key, &outside)
        .await
        .expect("abort the one outside");
}
