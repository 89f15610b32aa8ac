//! The behaviour every [`BlobStore`] must show, written once.
//!
//! Each check is an `async fn` over `&dyn BlobStore` that panics on the first difference. Checks
//! use keys of their own (under a folder named after the check), so they may share a store.
//! [`contract_tests!`](crate::contract_tests) turns the list into one `#[tokio::test]` per check,
//! each on its own `$fresh().await` store, so a new backend runs every check by construction:
//!
//! ```text
//! async fn fresh() -> Fresh { /* a new, empty store, kept alive with what it needs */ }
//! vidsnap_storage::contract_tests!(fresh);
//! ```
//!
//! `fresh().await` must return something that dereferences to a type implementing
//! [`BlobStore`]. What the checks expect of the store:
//! - multipart uploads with parts smaller than [`BIG_FILE_BYTES`], so the big file spans several;
//! - presigned URLs that a plain HTTP client on this machine can use (for a store without native
//!   presigning, its routes served on the URLs' host).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use chrono::{TimeDelta, Utc};
use reqwest::{StatusCode, Url};
use vidsnap_domain::{BlobStore, PortError, PresignedRequest};

/// The size of the round-trip file: with 5 MiB parts, two full parts and a short one.
pub const BIG_FILE_BYTES: usize = 12 * 1024 * 1024 + 123;

/// Generates one `#[tokio::test]` per contract check, each on its own `$fresh().await` store.
#[macro_export]
macro_rules! contract_tests {
    ($fresh:path) => {
        $crate::contract_tests!(@each $fresh:
            round_trip_in_parts,
            missing_blobs_are_not_found,
            delete_prefix_takes_the_folder_only,
            delete_takes_one_blob,
            presigned_put_then_get,
            tampered_urls_are_refused,
            expired_urls_are_refused,
            folders_and_blobs_are_listed,
            sweeping_temporaries_never_takes_a_blob,
        );
    };
    (@each $fresh:path: $($check:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $check() {
                let store = $fresh().await;
                $crate::contract::$check(&*store).await;
            }
        )*
    };
}

/// Every check, one after the other, on one store.
pub async fn blob_store_contract(store: &dyn BlobStore) {
    round_trip_in_parts(store).await;
    missing_blobs_are_not_found(store).await;
    delete_prefix_takes_the_folder_only(store).await;
    presigned_put_then_get(store).await;
    tampered_urls_are_refused(store).await;
    expired_urls_are_refused(store).await;
    folders_and_blobs_are_listed(store).await;
    sweeping_temporaries_never_takes_a_blob(store).await;
    copies_replace_the_target_and_keep_the_source(store).await;
}

/// Bytes that differ from part to part (a short repeating pattern would hide parts stored out of
/// order).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

async fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    tokio::fs::write(&path, bytes)
        .await
        .expect("write a source file");
    path
}

async fn put(store: &dyn BlobStore, dir: &Path, key: &str, bytes: &[u8]) {
    let source = write(dir, "source", bytes).await;
    let stored = store
        .put_file(key, &source, "application/octet-stream")
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e}"));
    assert_eq!(stored, bytes.len() as u64, "put_file's size for {key}");
}

async fn assert_missing(store: &dyn BlobStore, key: &str) {
    match store.size(key).await {
        Err(PortError::NotFound) => {}
        other => panic!("{key} should be gone, size says {other:?}"),
    }
}

/// Reads the blob through `local_copy` into a fresh scratch directory.
async fn read_back(store: &dyn BlobStore, key: &str) -> Vec<u8> {
    let scratch = tempfile::tempdir().expect("scratch dir");
    let path = store
        .local_copy(key, scratch.path())
        .await
        .unwrap_or_else(|e| panic!("local_copy {key}: {e}"));
    tokio::fs::read(&path).await.expect("read the local copy")
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list the scratch dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// A big file goes up in parts and comes back byte for byte, under its own name (the media tools
/// go by the extension), leaving nothing else in the scratch directory; a new put replaces it.
pub async fn round_trip_in_parts(store: &dyn BlobStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = "round-trip/u/v/clip one.mp4";
    let big = noise(BIG_FILE_BYTES, 1);
    let source = write(dir.path(), "upload.mp4", &big).await;
    let stored = store
        .put_file(key, &source, "video/mp4")
        .await
        .unwrap_or_else(|e| panic!("put_file: {e}"));
    assert_eq!(stored, big.len() as u64);
    assert_eq!(store.size(key).await.expect("size"), big.len() as u64);

    let scratch = tempfile::tempdir().expect("scratch dir");
    let copy = store
        .local_copy(key, scratch.path())
        .await
        .unwrap_or_else(|e| panic!("local_copy: {e}"));
    assert_eq!(
        copy.file_name().and_then(|n| n.to_str()),
        Some("clip one.mp4")
    );
    let read = tokio::fs::read(&copy).await.expect("read the copy");
    assert!(read == big, "the copy differs from what was put");
    if copy.starts_with(scratch.path()) {
        assert_eq!(entries(scratch.path()), ["clip one.mp4"]);
    }

    let small = noise(100, 2);
    put(store, dir.path(), key, &small).await;
    assert_eq!(store.size(key).await.expect("size"), 100);
    assert!(read_back(store, key).await == small);

    put(store, dir.path(), "round-trip/u/v/empty.txt", &[]).await;
    assert_eq!(
        store.size("round-trip/u/v/empty.txt").await.expect("size"),
        0
    );
}

/// Missing blobs are `NotFound` (and leave no file behind); bad keys are refused.
pub async fn missing_blobs_are_not_found(store: &dyn BlobStore) {
    let key = "missing/u/v/none.mp4";
    assert_missing(store, key).await;
    let scratch = tempfile::tempdir().expect("scratch dir");
    match store.local_copy(key, scratch.path()).await {
        Err(PortError::NotFound) => {}
        other => panic!("local_copy of a missing blob: {other:?}"),
    }
    assert!(entries(scratch.path()).is_empty(), "left files in scratch");
    store
        .delete_prefix("missing/u/nothing/")
        .await
        .expect("deleting nothing succeeds");
    for bad in ["../escape.mp4", "/abs.mp4", "a//b.mp4"] {
        assert!(store.size(bad).await.is_err(), "size({bad:?})");
        assert!(
            store
                .presign_put(bad, Duration::from_secs(60))
                .await
                .is_err(),
            "presign_put({bad:?})"
        );
    }
}

/// `delete_prefix` takes a folder, with or without the trailing slash, and nothing beside it
/// (`u/vx` is not in `u/v`); deleting again succeeds.
pub async fn delete_prefix_takes_the_folder_only(store: &dyn BlobStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let gone = ["delete/u/v/clip.mp4", "delete/u/v/out/frames.zip"];
    let kept = [
        "delete/u/vx/clip.mp4",
        "delete/u/v.mp4",
        "delete/u/w/clip.mp4",
    ];
    for (i, key) in gone.iter().chain(&kept).enumerate() {
        put(store, dir.path(), key, &noise(10 + i, i as u64)).await;
    }
    store.delete_prefix("delete/u/v/").await.expect("delete");
    for key in gone {
        assert_missing(store, key).await;
    }
    for key in kept {
        assert!(store.size(key).await.is_ok(), "{key} should be kept");
    }
    store.delete_prefix("delete/u/v/").await.expect("again");
    store.delete_prefix("delete/u/w").await.expect("no slash");
    assert_missing(store, "delete/u/w/clip.mp4").await;
    assert!(store.size("delete/u/vx/clip.mp4").await.is_ok());
}

/// `delete` takes exactly the blob named (not another that starts with its name), and a
/// missing one is not an error.
pub async fn delete_takes_one_blob(store: &dyn BlobStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = [
        "one/u/v/clip-image.jpg",
        "one/u/v/clip-image.jpg.bak",
        "one/u/v/clip.mp4",
    ];
    for (i, key) in keys.iter().enumerate() {
        put(store, dir.path(), key, &noise(10 + i, i as u64)).await;
    }
    store
        .delete("one/u/v/clip-image.jpg")
        .await
        .expect("delete");
    assert_missing(store, "one/u/v/clip-image.jpg").await;
    for key in &keys[1..] {
        assert!(store.size(key).await.is_ok(), "{key} should be kept");
    }
    store.delete("one/u/v/clip-image.jpg").await.expect("again");
    store.delete("one/u/v/never.jpg").await.expect("missing");
}

/// A copy has the source's bytes, replaces what was at the target, and leaves the source; a
/// missing source is `NotFound` and creates nothing (the bucket workflow's moves rely on it).
pub async fn copies_replace_the_target_and_keep_the_source(store: &dyn BlobStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let bytes = noise(300_000, 7);
    put(store, dir.path(), "copy/uploads/a b+é.mp4", &bytes).await;
    put(store, dir.path(), "copy/failed/a b+é.mp4", &noise(10, 8)).await;
    store
        .copy("copy/uploads/a b+é.mp4", "copy/failed/a b+é.mp4")
        .await
        .expect("copy");
    assert_eq!(read_back(store, "copy/failed/a b+é.mp4").await, bytes);
    assert_eq!(read_back(store, "copy/uploads/a b+é.mp4").await, bytes);
    assert!(matches!(
        store
            .copy("copy/uploads/none.mp4", "copy/processed/none.mp4")
            .await,
        Err(PortError::NotFound)
    ));
    assert_missing(store, "copy/processed/none.mp4").await;
    store.delete_prefix("copy/").await.expect("clean up");
}

/// `folders` names the folders directly inside a folder, `list` every blob below it with its
/// size and the time it was written; a folder is matched whole (`u/v` is not a part of `u/v1`),
/// and a missing one has neither.
pub async fn folders_and_blobs_are_listed(store: &dyn BlobStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    // S3 keeps whole seconds; the server's clock may be a little off ours.
    let before = Utc::now() - TimeDelta::seconds(5);
    let blobs = [
        ("listing/u/v1/clip.mp4", 10),
        ("listing/u/v1/frames/0001.jpg", 20),
        ("listing/u/v2/a.bin", 30),
        ("listing/u/jobs/j/probe/probe.json", 5),
        ("listing/u/top.txt", 1),
        ("listing/other/x.bin", 1),
    ];
    for (i, (key, size)) in blobs.iter().enumerate() {
        put(store, dir.path(), key, &noise(*size, 40 + i as u64)).await;
    }
    let after = Utc::now() + TimeDelta::seconds(5);

    let folders = |prefix: &'static str| async move {
        let mut names = store
            .folders(prefix)
            .await
            .unwrap_or_else(|e| panic!("folders of {prefix:?}: {e}"));
        names.sort();
        names
    };
    assert_eq!(folders("listing/u/").await, ["jobs", "v1", "v2"]);
    assert_eq!(folders("listing/u").await, ["jobs", "v1", "v2"], "no slash");
    assert_eq!(folders("listing/").await, ["other", "u"]);
    assert!(folders("listing/u/v").await.is_empty(), "not a folder");
    assert!(
        folders("listing/none/").await.is_empty(),
        "a missing folder"
    );
    assert!(folders("").await.contains(&"listing".to_owned()), "the top");

    let list = |prefix: &'static str| async move {
        let mut listed = store
            .list(prefix)
            .await
            .unwrap_or_else(|e| panic!("list {prefix:?}: {e}"));
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        listed
    };
    let v1 = list("listing/u/v1/").await;
    let found: Vec<(&str, u64)> = v1.iter().map(|b| (b.key.as_str(), b.size)).collect();
    assert_eq!(
        found,
        [
            ("listing/u/v1/clip.mp4", 10),
            ("listing/u/v1/frames/0001.jpg", 20)
        ]
    );
    for blob in &v1 {
        assert!(
            blob.modified > before && blob.modified < after,
            "{} written at {}, between {before} and {after}",
            blob.key,
            blob.modified
        );
    }
    assert_eq!(list("listing/u").await.len(), 5, "every depth, no slash");
    assert!(list("listing/u/v").await.is_empty(), "not a folder");
    assert!(list("listing/none/").await.is_empty(), "a missing folder");
    assert!(matches!(
        store.list("listing/../u").await,
        Err(PortError::Conflict(_))
    ));
}

/// A sweep of temporaries takes no blob, however old it is.
pub async fn sweeping_temporaries_never_takes_a_blob(store: &dyn BlobStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = "sweep/u/v/clip.mp4";
    let bytes = noise(BIG_FILE_BYTES, 50);
    put(store, dir.path(), key, &bytes).await;
    store
        .sweep_temporaries(
            Utc::now() + TimeDelta::hours(1),
            Utc::now() + TimeDelta::hours(1),
        )
        .await
        .expect("sweep");
    assert_eq!(read_back(store, key).await, bytes);
}

async fn send(request: &PresignedRequest, url: &Url, body: Option<Vec<u8>>) -> reqwest::Response {
    let method = request.method.parse().expect("an HTTP method");
    send_as(method, request, url, body).await
}

async fn send_as(
    method: reqwest::Method,
    request: &PresignedRequest,
    url: &Url,
    body: Option<Vec<u8>>,
) -> reqwest::Response {
    let mut builder = reqwest::Client::new().request(method, url.clone());
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    if let Some(body) = body {
        builder = builder.body(body);
    }
    builder
        .send()
        .await
        .unwrap_or_else(|e| panic!("{} {url}: {e}", request.method))
}

fn url_of(request: &PresignedRequest) -> Url {
    Url::parse(&request.url).unwrap_or_else(|e| panic!("{}: {e}", request.url))
}

/// The URL with its query rebuilt, each parameter's value passed through `edit` (by name).
fn edit_query(url: &Url, edit: impl Fn(&str, &str) -> String) -> Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(name, value)| {
            let edited = edit(&name, &value);
            (name.into_owned(), edited)
        })
        .collect();
    let mut edited = url.clone();
    edited.query_pairs_mut().clear().extend_pairs(pairs);
    edited
}

/// The URL with the value of the query parameter whose name contains `part` (any case) edited.
fn edit_param(url: &Url, part: &str, edit: impl Fn(&str) -> String) -> Url {
    assert!(
        url.query_pairs()
            .any(|(name, _)| name.to_ascii_lowercase().contains(part)),
        "{url} has no parameter named like {part:?}"
    );
    edit_query(url, |name, value| {
        if name.to_ascii_lowercase().contains(part) {
            edit(value)
        } else {
            value.to_owned()
        }
    })
}

fn with_path(url: &Url, from: &str, to: &str) -> Url {
    assert!(url.path().ends_with(from), "{url} does not end in {from}");
    let mut edited = url.clone();
    let path = format!("{}{to}", &url.path()[..url.path().len() - from.len()]);
    edited.set_path(&path);
    edited
}

/// A presigned PUT stores the body; a presigned GET returns it; both expire when they say.
pub async fn presigned_put_then_get(store: &dyn BlobStore) {
    let key = "presigned/u/v/my clip.mp4";
    let body = noise(1024 * 1024 + 7, 3);
    let before = Utc::now();
    let upload = store
        .presign_put(key, Duration::from_secs(60))
        .await
        .expect("presign_put");
    assert_eq!(upload.method, "PUT");
    let lifetime = upload.expires_at - before;
    assert!(
        lifetime > TimeDelta::seconds(58) && lifetime <= TimeDelta::seconds(60),
        "a 60 s URL expires in {lifetime}"
    );
    let response = send(&upload, &url_of(&upload), Some(body.clone())).await;
    assert!(
        response.status().is_success(),
        "presigned PUT: {}",
        response.status()
    );
    assert_eq!(store.size(key).await.expect("size"), body.len() as u64);

    let download = store
        .presign_get(key, Duration::from_secs(60))
        .await
        .expect("presign_get");
    assert_eq!(download.method, "GET");
    let response = send(&download, &url_of(&download), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let got = response.bytes().await.expect("GET body");
    assert!(got == body, "the presigned GET returned other bytes");
}

async fn assert_refused(request: &PresignedRequest, url: &Url, body: Option<Vec<u8>>, what: &str) {
    let status = send(request, url, body).await.status();
    assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {url}");
}

/// A URL is good for its method on its key until its expiry, as signed: changing the key, the
/// signature, the expiry or the method gets a 403 and changes nothing.
pub async fn tampered_urls_are_refused(store: &dyn BlobStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (noise(1000, 4), noise(1000, 5));
    put(store, dir.path(), "tampered/a.bin", &a).await;
    put(store, dir.path(), "tampered/b.bin", &b).await;
    let ttl = Duration::from_secs(300);

    let get = store
        .presign_get("tampered/a.bin", ttl)
        .await
        .expect("sign");
    let url = url_of(&get);
    // The control: rebuilding the query changes nothing the server checks, so the refusals below
    // come from the edits and not from re-encoding.
    let rebuilt = edit_query(&url, |_, value| value.to_owned());
    let response = send(&get, &rebuilt, None).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the untouched URL: {rebuilt}"
    );
    assert!(response.bytes().await.expect("body") == a);

    let other_key = with_path(&rebuilt, "/tampered/a.bin", "/tampered/b.bin");
    assert_refused(&get, &other_key, None, "another key").await;
    let forged = edit_param(&rebuilt, "signature", flip_last);
    assert_refused(&get, &forged, None, "another signature").await;
    let later = edit_param(&rebuilt, "expires", add_1000);
    assert_refused(&get, &later, None, "a later expiry").await;
    let status = send_as(reqwest::Method::PUT, &get, &rebuilt, Some(b.clone()))
        .await
        .status();
    assert_eq!(status, StatusCode::FORBIDDEN, "a GET URL used to PUT");
    assert!(read_back(store, "tampered/a.bin").await == a, "a changed");

    let put_a = store
        .presign_put("tampered/a.bin", ttl)
        .await
        .expect("sign");
    let rebuilt = edit_query(&url_of(&put_a), |_, value| value.to_owned());
    let elsewhere = with_path(&rebuilt, "/tampered/a.bin", "/tampered/c.bin");
    assert_refused(&put_a, &elsewhere, Some(b.clone()), "a PUT to another key").await;
    assert_missing(store, "tampered/c.bin").await;
    let forged = edit_param(&rebuilt, "signature", flip_last);
    assert_refused(
        &put_a,
        &forged,
        Some(b.clone()),
        "a PUT with another signature",
    )
    .await;
    let later = edit_param(&rebuilt, "expires", add_1000);
    assert_refused(&put_a, &later, Some(b.clone()), "a PUT with a later expiry").await;
    assert!(read_back(store, "tampered/a.bin").await == a, "a changed");
}

fn flip_last(value: &str) -> String {
    let mut chars: Vec<char> = value.chars().collect();
    if let Some(last) = chars.last_mut() {
        *last = if *last == '0' { '1' } else { '0' };
    }
    chars.into_iter().collect()
}

fn add_1000(value: &str) -> String {
    let n: i64 = value
        .parse()
        .unwrap_or_else(|e| panic!("expiry {value:?}: {e}"));
    (n + 1000).to_string()
}

/// URLs stop working once expired: GET and PUT alike.
pub async fn expired_urls_are_refused(store: &dyn BlobStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = noise(1000, 6);
    put(store, dir.path(), "expired/a.bin", &a).await;
    let ttl = Duration::from_secs(1);
    let get = store.presign_get("expired/a.bin", ttl).await.expect("sign");
    let put_url = store.presign_put("expired/a.bin", ttl).await.expect("sign");
    // Both kinds of URL count whole seconds and `expires_at` may read up to a second before the
    // expiry the server enforces, so a second past `expires_at` every URL is dead.
    let dead = get.expires_at.max(put_url.expires_at) + TimeDelta::seconds(1);
    while Utc::now() <= dead {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_refused(&get, &url_of(&get), None, "an expired GET").await;
    assert_refused(
        &put_url,
        &url_of(&put_url),
        Some(noise(10, 7)),
        "an expired PUT",
    )
    .await;
    assert!(read_back(store, "expired/a.bin").await == a, "a changed");
}
