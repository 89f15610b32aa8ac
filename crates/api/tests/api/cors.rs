//! CORS for browser clients: preflights of tus requests from an allowed origin are answered
//! with the tus headers allowed, answers expose `Upload-Offset` and `Location`, other origins
//! get no grant, and with no origins configured there are no CORS headers at all.

#![allow(clippy::unwrap_used)]

use axum::{Router, body::Body, http::Request, routing::any};
use tower::ServiceExt;

/// A route answering like tus does, wrapped as the server wraps the API.
fn app(origins: &[&str]) -> Router {
    let origins: Vec<String> = origins.iter().map(|o| (*o).to_owned()).collect();
    let router = Router::new().route(
        "/v1/uploads/{id}",
        any(|| async { ([("upload-offset", "42"), ("tus-resumable", "1.0.0")], "") }),
    );
    match vidsnap_api::cors::layer(&origins) {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

async fn send(app: Router, request: Request<Body>) -> axum::http::HeaderMap {
    app.oneshot(request).await.unwrap().headers().clone()
}

fn preflight(origin: &str) -> Request<Body> {
    Request::options("/v1/uploads/abc")
        .header("origin", origin)
        .header("access-control-request-method", "PATCH")
        .header(
            "access-control-request-headers",
            "authorization, tus-resumable, upload-offset, content-type, upload-checksum",
        )
        .body(Body::empty())
        .unwrap()
}

fn lower(headers: &axum::http::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .unwrap_or_default()
}

#[tokio::test]
async fn an_allowed_origin_may_resume_tus_uploads() {
    let app = app(&["https://app.example.com"]);
    let headers = send(app.clone(), preflight("https://app.example.com")).await;
    assert_eq!(
        lower(&headers, "access-control-allow-origin"),
        "https://app.example.com"
    );
    let allowed = lower(&headers, "access-control-allow-headers");
    for name in [
        "tus-resumable",
        "upload-offset",
        "upload-checksum",
        "authorization",
    ] {
        assert!(allowed.contains(name), "{name} not allowed: {allowed}");
    }
    assert!(lower(&headers, "access-control-allow-methods").contains("patch"));

    let answer = send(
        app,
        Request::head("/v1/uploads/abc")
            .header("origin", "https://app.example.com")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let exposed = lower(&answer, "access-control-expose-headers");
    for name in [
        "upload-offset",
        "location",
        "tus-resumable",
        "vidsnap-video",
    ] {
        assert!(exposed.contains(name), "{name} not exposed: {exposed}");
    }
}

#[tokio::test]
async fn other_origins_get_no_grant_and_no_list_means_no_cors() {
    let headers = send(
        app(&["https://app.example.com"]),
        preflight("https://evil.example"),
    )
    .await;
    assert!(
        headers.get("access-control-allow-origin").is_none(),
        "{headers:?}"
    );

    let headers = send(app(&[]), preflight("https://app.example.com")).await;
    assert!(
        !headers
            .keys()
            .any(|k| k.as_str().starts_with("access-control-")),
        "{headers:?}"
    );

    let any = send(app(&["*"]), preflight("https://anyone.example")).await;
    assert_eq!(lower(&any, "access-control-allow-origin"), "*");
}
