//! Cross-origin requests from browsers (tus-js-client, Uppy, a web app on another origin): which
//! origins may call, and which headers they may send and read. The tus headers must be both, or
//! a browser client cannot resume (it never sees `Upload-Offset`).

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Headers a browser may send: credentials, JSON, and tus's request headers.
const REQUEST_HEADERS: [&str; 10] = [
    "authorization",
    "content-type",
    "x-api-key",
    "tus-resumable",
    "upload-length",
    "upload-metadata",
    "upload-offset",
    "upload-checksum",
    "upload-defer-length",
    "x-http-method-override",
];

/// Headers a browser may read: tus's answers, where a created upload and its video are.
const RESPONSE_HEADERS: [&str; 10] = [
    "location",
    "tus-resumable",
    "tus-version",
    "tus-extension",
    "tus-max-size",
    "tus-checksum-algorithm",
    "upload-offset",
    "upload-length",
    "upload-expires",
    "vidsnap-video",
];

/// The CORS layer for `origins` (`["*"]`: any origin); `None` when the list is empty (no CORS
/// headers at all). Origins that are not valid header values are skipped with a warning.
pub fn layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|origin| {
                let value = HeaderValue::from_str(origin.trim_end_matches('/')).ok();
                if value.is_none() {
                    tracing::warn!(%origin, "api.cors_origins: not a valid origin; ignored");
                }
                value
            })
            .collect();
        AllowOrigin::list(list)
    };
    let names = |names: &[&'static str]| -> Vec<HeaderName> {
        names.iter().copied().map(HeaderName::from_static).collect()
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers(names(&REQUEST_HEADERS))
            .expose_headers(names(&RESPONSE_HEADERS))
            .max_age(Duration::from_secs(3600)),
    )
}
