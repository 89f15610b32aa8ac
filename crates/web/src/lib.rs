//! Vidsnap's web UI, served by the same binary as the API.
//!
//! # Layout
//! - `web/public/` (the repository's root): the UI's files, plain HTML, CSS and ES modules, no
//!   bundler. `build.rs` embeds them with the libraries' browser builds from `web/node_modules/`
//!   (tus-js-client, hls.js, dash.js), gzipped once at build time.
//! - [`router`]: answers `GET`/`HEAD` of every path it is given: `/assets/{build}/…` are the
//!   assets (cached for a year, immutable: a new build is a new folder), anything else is
//!   `index.html` (revalidated every time), whose script reads the path and shows the page. The
//!   binary puts it behind the API, which keeps `/v1/…` to itself.
//!
//! Every answer has an ETag (`If-None-Match` gives 304), `Vary: Accept-Encoding` and a content
//! security policy that runs scripts of this origin only.

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};

/// One embedded file.
#[derive(Debug)]
pub(crate) struct Asset {
    /// Under the asset folder: `js/app.js`.
    pub(crate) path: &'static str,
    pub(crate) content_type: &'static str,
    /// Hex of the bytes' SHA-256 (a prefix).
    pub(crate) etag: &'static str,
    pub(crate) body: &'static [u8],
    /// The same, gzipped, when that is smaller.
    pub(crate) gzip: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// Scripts from this origin only; images, media and playlists may come from the storage's
/// presigned URLs (an S3 bucket) and players' workers from `blob:` URLs.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src * data: blob:; media-src * blob:; connect-src *; worker-src 'self' blob:; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// The UI: every path is a page (`index.html`) or an asset.
pub fn router() -> Router {
    Router::new().fallback(serve)
}

/// The path of the current build's asset folder, `/assets/{build}`.
pub fn asset_folder() -> String {
    format!("/assets/{BUILD}")
}

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.path == path)
}

async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
        )
            .into_response();
    }
    let path = uri.path();
    let (asset, immutable) = match path.strip_prefix("/assets/") {
        Some(rest) => match rest
            .strip_prefix(BUILD)
            .and_then(|p| p.strip_prefix('/'))
            .and_then(find)
        {
            Some(asset) => (asset, true),
            // An asset of another build (a page loaded before an upgrade) or none at all.
            None => return (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
        },
        None => match find("index.html") {
            Some(asset) => (asset, false),
            None => return StatusCode::NOT_FOUND.into_response(),
        },
    };
    answer(asset, immutable, &headers, method == Method::HEAD)
}

fn answer(asset: &Asset, immutable: bool, request: &HeaderMap, head: bool) -> Response {
    let gzip = asset.gzip.filter(|_| accepts_gzip(request));
    // A strong ETag names one representation: the gzipped one has its own.
    let etag = match gzip {
        Some(_) => format!("\"{}-gz\"", asset.etag),
        None => format!("\"{}\"", asset.etag),
    };
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut headers = HeaderMap::new();
    let mut set = |name, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set(header::CACHE_CONTROL, cache);
    set(header::ETAG, &etag);
    set(header::VARY, "Accept-Encoding");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if asset.path == "index.html" {
        set(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
        set(header::REFERRER_POLICY, "same-origin");
        set(header::X_FRAME_OPTIONS, "DENY");
    }
    let matches = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    set(header::CONTENT_TYPE, asset.content_type);
    let body = match gzip {
        Some(bytes) => {
            set(header::CONTENT_ENCODING, "gzip");
            bytes
        }
        None => asset.body,
    };
    set(header::CONTENT_LENGTH, &body.len().to_string());
    let body = if head {
        Body::empty()
    } else {
        Body::from(body)
    };
    (StatusCode::OK, headers, body).into_response()
}

/// Whether `Accept-Encoding` takes gzip (and does not refuse it with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name == "gzip" || name == "*") && !refused
        })
}

#[cfg(test)]
mod tests;
