//! URLs with S3 presigned-URL semantics for stores that cannot presign: the signature covers the
//! method, the key and the expiry, so a URL is good for one operation on one object until it
//! expires. Tampering with any of them, or waiting past the expiry, gets a 403.

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    body::Body,
    extract::{
        Path, Query, State,
        rejection::{PathRejection, QueryRejection},
    },
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::put,
};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use vidsnap_domain::{PortError, PresignedRequest, UploadListener};

use crate::{LocalStore, key};

/// Characters left as they are in a key's URL path: unreserved characters and `/`.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Signs and checks blob URLs with a server secret.
#[derive(Clone)]
pub struct UrlSigner {
    secret: Arc<Vec<u8>>,
    /// Where clients reach this server, e.g. `http://127.0.0.1:8080`.
    public_url: String,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSigner")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl UrlSigner {
    pub fn new(secret: Vec<u8>, public_url: impl Into<String>) -> Self {
        Self {
            secret: Arc::new(secret),
            public_url: public_url.into().trim_end_matches('/').to_owned(),
        }
    }

    fn mac(&self, method: &str, key: &str, expires: i64) -> Hmac<Sha256> {
        #[allow(clippy::expect_used)] // HMAC accepts keys of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(format!("{method}\n{key}\n{expires}").as_bytes());
        mac
    }

    /// A URL for `method` on `key`, valid for `ttl`.
    pub fn sign(&self, method: &str, key: &str, ttl: Duration) -> PresignedRequest {
        let expires_at = Utc::now() + ttl;
        let expires = expires_at.timestamp();
        let signature = hex::encode(self.mac(method, key, expires).finalize().into_bytes());
        PresignedRequest {
            method: method.to_owned(),
            url: format!(
                "{}/v1/blobs/{}?expires={expires}&signature={signature}",
                self.public_url,
                utf8_percent_encode(key, PATH)
            ),
            headers: Vec::new(),
            expires_at: DateTime::from_timestamp(expires, 0).unwrap_or(expires_at),
        }
    }

    /// Checks a URL's signature (constant time) and expiry.
    pub fn verify(
        &self,
        method: &str,
        key: &str,
        expires: i64,
        signature: &str,
    ) -> Result<(), Refusal> {
        let bytes = hex::decode(signature).map_err(|_| Refusal::BadSignature)?;
        self.mac(method, key, expires)
            .verify_slice(&bytes)
            .map_err(|_| Refusal::BadSignature)?;
        if Utc::now().timestamp() > expires {
            return Err(Refusal::Expired);
        }
        Ok(())
    }
}

/// Why a signed URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    BadSignature,
    Expired,
}

#[derive(Debug, Deserialize)]
struct Signed {
    expires: i64,
    signature: String,
}

#[derive(Clone)]
struct BlobRoutes {
    store: Arc<LocalStore>,
    signer: UrlSigner,
    listener: Arc<dyn UploadListener>,
    max_bytes: Option<u64>,
}

/// `PUT` and `GET /v1/blobs/{key}` for signed URLs. A completed PUT is reported to `listener`.
pub fn routes(
    store: Arc<LocalStore>,
    signer: UrlSigner,
    listener: Arc<dyn UploadListener>,
    max_bytes: Option<u64>,
) -> Router {
    Router::new()
        .route("/v1/blobs/{*key}", put(upload).get(download))
        .with_state(BlobRoutes {
            store,
            signer,
            listener,
            max_bytes,
        })
}

/// A refusal in the API's error format.
struct Refused {
    status: StatusCode,
    code: &'static str,
    message: &'static str,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

fn refuse(status: StatusCode, code: &'static str, message: &'static str) -> Refused {
    Refused {
        status,
        code,
        message,
    }
}

/// A URL without a well-formed `expires` and `signature`: refused as S3 refuses an unsigned
/// request, in the API's error format (not axum's plain-text query rejection).
fn unsigned() -> Refused {
    refuse(
        StatusCode::FORBIDDEN,
        "signature-mismatch",
        "the URL is not signed: use the URL the API handed out, whole",
    )
}

fn invalid_key() -> Refused {
    refuse(StatusCode::BAD_REQUEST, "invalid-key", "invalid blob key")
}

/// The key in the path: a percent-escape that is not UTF-8 (`%FF`) is an invalid key, in the
/// API's error format (not axum's plain-text path rejection).
fn key_of(path: Result<Path<String>, PathRejection>) -> Result<String, Refused> {
    path.map(|Path(key)| key).map_err(|_| invalid_key())
}

fn check(routes: &BlobRoutes, method: &str, key: &str, signed: &Signed) -> Result<(), Refused> {
    key::check(key).map_err(|_| invalid_key())?;
    routes
        .signer
        .verify(method, key, signed.expires, &signed.signature)
        .map_err(|refusal| match refusal {
            Refusal::BadSignature => refuse(
                StatusCode::FORBIDDEN,
                "signature-mismatch",
                "the URL's signature does not match",
            ),
            Refusal::Expired => refuse(StatusCode::FORBIDDEN, "url-expired", "the URL has expired"),
        })
}

/// Reads and drops what a refused client is still sending, when that is little: answering
/// before the body is read makes the server close the connection under the client, which then
/// sees a broken connection instead of the refusal. Large bodies are not worth reading.
async fn discard_small_body(body: Body) {
    const LIMIT: usize = 8 << 20;
    let read = axum::body::to_bytes(body, LIMIT);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), read).await;
}

async fn upload(
    State(routes): State<BlobRoutes>,
    key: Result<Path<String>, PathRejection>,
    signed: Result<Query<Signed>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let key = match key_of(key) {
        Ok(key) => key,
        Err(refused) => {
            discard_small_body(body).await;
            return refused.into_response();
        }
    };
    let signed = match signed {
        Ok(Query(signed)) => signed,
        Err(_) => {
            discard_small_body(body).await;
            return unsigned().into_response();
        }
    };
    if let Err(refused) = check(&routes, "PUT", &key, &signed) {
        discard_small_body(body).await;
        return refused.into_response();
    }
    // Before a byte is written: a deleted video's URL, or one whose upload already came, writes
    // nothing (the URL outlives both).
    match routes.listener.expects(&key).await {
        Ok(()) => {}
        Err(PortError::NotFound) => {
            discard_small_body(body).await;
            return refuse(
                StatusCode::NOT_FOUND,
                "not-found",
                "no video waits for this upload (it was deleted)",
            )
            .into_response();
        }
        Err(PortError::Refused(_)) => {
            discard_small_body(body).await;
            return refuse(
                StatusCode::CONFLICT,
                "invalid-state",
                "this video's upload has arrived already",
            )
            .into_response();
        }
        Err(e) => {
            tracing::error!(%key, error = %e, "upload listener failed");
            discard_small_body(body).await;
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "try the upload again",
            )
            .into_response();
        }
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let (Some(max), Some(len)) = (routes.max_bytes, declared)
        && len > max
    {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "the body exceeds the size limit",
        )
        .into_response();
    }
    let size = match write_body(&routes, &key, body).await {
        Ok(size) => size,
        Err(refused) => return refused.into_response(),
    };
    match routes.listener.uploaded(&key, size).await {
        Ok(_) => StatusCode::OK.into_response(),
        Err(PortError::NotFound) => StatusCode::OK.into_response(),
        Err(e) => {
            tracing::error!(%key, error = %e, "upload listener failed");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "try the upload again",
            )
            .into_response()
        }
    }
}

/// Streams the body to a temporary file beside the destination and renames it into place.
async fn write_body(routes: &BlobRoutes, key: &str, body: Body) -> Result<u64, Refused> {
    let internal = |e: &dyn std::fmt::Display| {
        tracing::error!(%key, error = %e, "writing an upload failed");
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "storing the upload failed",
        )
    };
    let (temp, destination) = routes.store.temp_for(key).map_err(|e| internal(&e))?;
    let (file, temp_path) = temp.into_parts();
    let mut file = tokio::fs::File::from_std(file);
    let mut stream = body.into_data_stream();
    let mut size: u64 = 0;
    loop {
        let chunk = match stream.try_next().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            // The client went away: the temporary file is removed with `temp_path`.
            Err(_) => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "incomplete-body",
                    "the upload was interrupted",
                ));
            }
        };
        size += chunk.len() as u64;
        if routes.max_bytes.is_some_and(|max| size > max) {
            return Err(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "the body exceeds the size limit",
            ));
        }
        file.write_all(&chunk).await.map_err(|e| internal(&e))?;
    }
    file.sync_all().await.map_err(|e| internal(&e))?;
    drop(file);
    temp_path.persist(&destination).map_err(|e| internal(&e))?;
    Ok(size)
}

async fn download(
    State(routes): State<BlobRoutes>,
    key: Result<Path<String>, PathRejection>,
    signed: Result<Query<Signed>, QueryRejection>,
    request_headers: axum::http::HeaderMap,
) -> Response {
    let key = match key_of(key) {
        Ok(key) => key,
        Err(refused) => return refused.into_response(),
    };
    let Ok(Query(signed)) = signed else {
        return unsigned().into_response();
    };
    if let Err(refused) = check(&routes, "GET", &key, &signed) {
        return refused.into_response();
    }
    let path = routes.store.path_of(&key);
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(_) => {
            return refuse(StatusCode::NOT_FOUND, "not-found", "no such blob").into_response();
        }
    };
    let length = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let wanted = match byte_range(request_headers.get(header::RANGE), length) {
        Ok(wanted) => wanted,
        Err(()) => {
            let mut response = refuse(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range-not-satisfiable",
                "the range lies outside the blob",
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{length}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return response;
        }
    };
    let (status, first, count) = match wanted {
        Some((first, last)) => (StatusCode::PARTIAL_CONTENT, first, last - first + 1),
        None => (StatusCode::OK, 0, length),
    };
    let mut file = file;
    if first > 0
        && let Err(e) = file.seek(std::io::SeekFrom::Start(first)).await
    {
        tracing::error!(%key, error = %e, "reading a blob failed");
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "reading the blob failed",
        )
        .into_response();
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file.take(count)));
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&key)),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some((first, last)) = wanted
        && let Ok(value) = HeaderValue::from_str(&format!("bytes {first}-{last}/{length}"))
    {
        headers.insert(header::CONTENT_RANGE, value);
    }
    response
}

/// The one byte range (first and last byte, inclusive) a `Range: bytes=…` header asks of a
/// blob of `length` bytes: `Ok(None)` for no header, another unit or several ranges (served
/// whole, as HTTP allows); `Err` when it cannot be satisfied.
fn byte_range(header: Option<&HeaderValue>, length: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.trim().strip_prefix("bytes="))
    else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (first, last) = spec.split_once('-').ok_or(())?;
    let (first, last) = (first.trim(), last.trim());
    let (first, last) = if first.is_empty() {
        // The last N bytes.
        let n: u64 = last.parse().map_err(drop)?;
        if n == 0 || length == 0 {
            return Err(());
        }
        (length.saturating_sub(n), length - 1)
    } else {
        let first: u64 = first.parse().map_err(drop)?;
        let last = if last.is_empty() {
            length.saturating_sub(1)
        } else {
            last.parse::<u64>()
                .map_err(drop)?
                .min(length.saturating_sub(1))
        };
        (first, last)
    };
    if first >= length || first > last {
        return Err(());
    }
    Ok(Some((first, last)))
}

/// The content type of an output or upload, by extension.
pub fn content_type(key: &str) -> &'static str {
    match key
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("zip") => "application/zip",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("mp4") => "video/mp4",
        Some("json") => "application/json",
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("mpd") => "application/dash+xml",
        Some("m4s") => "video/iso.segment",
        Some("m4a") => "audio/mp4",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_are_read_as_http_says() {
        let range =
            |text: &str| byte_range(Some(&HeaderValue::from_str(text).expect("ascii")), 100);
        assert_eq!(byte_range(None, 100), Ok(None));
        assert_eq!(range("bytes=0-9"), Ok(Some((0, 9))));
        assert_eq!(range("bytes=90-"), Ok(Some((90, 99))));
        assert_eq!(range("bytes=-10"), Ok(Some((90, 99))));
        assert_eq!(range("bytes=-1000"), Ok(Some((0, 99))));
        assert_eq!(range("bytes=50-1000"), Ok(Some((50, 99))));
        assert_eq!(range("bytes=0-1,5-6"), Ok(None), "several: served whole");
        assert_eq!(range("items=0-1"), Ok(None));
        for bad in [
            "bytes=100-",
            "bytes=9-1",
            "bytes=-0",
            "bytes=x-1",
            "bytes=5",
        ] {
            assert_eq!(range(bad), Err(()), "{bad}");
        }
    }

    #[test]
    fn signatures_cover_method_key_and_expiry() {
        let signer = UrlSigner::new(b"secret".to_vec(), "http://h");
        let url = signer.sign("PUT", "u/v/a b.mp4", Duration::from_secs(60));
        assert!(
            url.url
                .starts_with("http://h/v1/blobs/u/v/a%20b.mp4?expires=")
        );
        let query = url.url.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let expires: i64 = query
            .split('&')
            .find_map(|p| p.strip_prefix("expires="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_default();
        let signature = query
            .split('&')
            .find_map(|p| p.strip_prefix("signature="))
            .unwrap_or_default();
        assert_eq!(
            signer.verify("PUT", "u/v/a b.mp4", expires, signature),
            Ok(())
        );
        assert_eq!(
            signer.verify("GET", "u/v/a b.mp4", expires, signature),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            signer.verify("PUT", "u/v/other.mp4", expires, signature),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            signer.verify("PUT", "u/v/a b.mp4", expires + 1, signature),
            Err(Refusal::BadSignature)
        );
        let other = UrlSigner::new(b"other".to_vec(), "http://h");
        assert_eq!(
            other.verify("PUT", "u/v/a b.mp4", expires, signature),
            Err(Refusal::BadSignature)
        );
        let past = Utc::now().timestamp() - 10;
        let old = hex::encode(signer.mac("PUT", "k", past).finalize().into_bytes());
        assert_eq!(signer.verify("PUT", "k", past, &old), Err(Refusal::Expired));
    }
}
