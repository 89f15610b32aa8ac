//! [`S3Multipart`]: direct multipart uploads a client sends to SeaweedFS through presigned part
//! URLs, with 5 MiB parts.

use std::time::Duration;

use object_store::{ObjectStoreExt, path::Path as ObjectPath};
use reqwest::StatusCode;
use vidsnap_domain::{
    PortError,
    ports::{DirectMultipart, UploadedPart},
};
use vidsnap_storage::{S3Multipart, contract::noise};

use crate::{
    s3::{PREFIX, fresh},
    staging_s3::multipart_uploads,
};

const MIB: usize = 1024 * 1024;
const TTL: Duration = Duration::from_secs(300);

/// PUTs `bytes` to a presigned URL as a client would; the status and the ETag answered.
async fn put(url: &str, bytes: &[u8]) -> (StatusCode, String) {
    let response = reqwest::Client::new()
        .put(url)
        .body(bytes.to_vec())
        .send()
        .await
        .expect("PUT a part");
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (response.status(), etag)
}

#[tokio::test]
async fn parts_put_through_presigned_urls_complete_into_the_blob() {
    let store = fresh().await;
    let multipart = S3Multipart::new(&store);
    let key = "u/v/big.mp4";
    let started = multipart.start(key).await.expect("start");
    assert_eq!(started.part_bytes, 5 * MIB as u64);
    let id = &started.upload_id;

    let source = noise(12 * MIB + 5, 31);
    let mut parts = Vec::new();
    for (number, chunk) in (1..).zip(source.chunks(5 * MIB)) {
        let request = multipart
            .presign_part(key, id, number, TTL)
            .await
            .expect("presign a part");
        assert_eq!(request.method, "PUT");
        assert!(request.expires_at > chrono::Utc::now());
        let (status, etag) = put(&request.url, chunk).await;
        assert_eq!(status, StatusCode::OK, "part {number}");
        assert!(!etag.is_empty(), "part {number} has an ETag");
        parts.push(UploadedPart { number, etag });
    }
    // The part number is signed: the URL cannot be used for another part.
    let signed = multipart
        .presign_part(key, id, 3, TTL)
        .await
        .expect("presign");
    let moved = signed.url.replace("partNumber=3", "partNumber=4");
    assert_ne!(moved, signed.url);
    assert_eq!(put(&moved, b"x").await.0, StatusCode::FORBIDDEN);

    let mut wrong = parts.clone();
    wrong[1].etag = "\"0123456789abcdef0123456789abcdef\"".to_owned();
    let refused = multipart.complete(key, id, &wrong).await;
    assert!(
        matches!(refused, Err(PortError::Conflict(_))),
        "{refused:?}"
    );
    let gap = [parts[0].clone(), parts[2].clone()];
    let refused = multipart.complete(key, id, &gap).await;
    assert!(
        matches!(refused, Err(PortError::Conflict(_))),
        "{refused:?}"
    );

    // Refused parts change nothing: the right ones still complete.
    let size = multipart.complete(key, id, &parts).await.expect("complete");
    assert_eq!(size, source.len() as u64);
    let blob = store
        .raw()
        .get(&ObjectPath::from(format!("{PREFIX}/{key}")))
        .await
        .expect("the blob")
        .bytes()
        .await
        .expect("its bytes");
    assert!(blob == source, "the blob is the source");
    assert!(multipart_uploads(&store).await.is_empty());
    // Completing again is a retry: the same blob (SeaweedFS, like S3 for a while after the
    // completion), or an upload the store no longer knows.
    let again = multipart.complete(key, id, &parts).await;
    assert!(
        matches!(again, Ok(size) if size == source.len() as u64)
            || matches!(again, Err(PortError::NotFound)),
        "{again:?}"
    );
    let other = multipart.complete("u/v/other.mp4", id, &parts).await;
    assert!(matches!(other, Err(PortError::NotFound)), "{other:?}");
}

#[tokio::test]
async fn aborted_uploads_leave_no_parts() {
    let store = fresh().await;
    let multipart = S3Multipart::new(&store);
    let key = "u/v/big.mp4";
    let started = multipart.start(key).await.expect("start");
    let id = &started.upload_id;
    let request = multipart
        .presign_part(key, id, 1, TTL)
        .await
        .expect("presign");
    assert_eq!(put(&request.url, &noise(MIB, 32)).await.0, StatusCode::OK);
    assert_eq!(multipart_uploads(&store).await, std::slice::from_ref(id));

    multipart.abort(key, id).await.expect("abort");
    assert!(multipart_uploads(&store).await.is_empty());
    multipart.abort(key, id).await.expect("abort again");
    assert!(matches!(
        store
            .raw()
            .head(&ObjectPath::from(format!("{PREFIX}/{key}")))
            .await,
        Err(object_store::Error::NotFound { .. })
    ));
    for number in [0, 10_001] {
        assert!(matches!(
            multipart.presign_part(key, id, number, TTL).await,
            Err(PortError::Conflict(_))
        ));
    }
}
