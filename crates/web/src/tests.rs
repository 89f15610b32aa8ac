//! The UI's routes through `oneshot`: pages, assets, caching, compression; and that every
//! asset `index.html` and the modules name is embedded.

#![allow(clippy::unwrap_used)]

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use tower::ServiceExt;

use super::*;

async fn get(path: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    router()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn text(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn every_page_path_is_the_index_revalidated_with_a_strict_policy() {
    for path in ["/", "/jobs/0190", "/account/keys?x=1"] {
        let answer = get(path, &[]).await;
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        let h = answer.headers();
        assert_eq!(h[header::CACHE_CONTROL], "no-cache");
        assert!(
            h[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let policy = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(policy.contains("script-src 'self'"), "{policy}");
        let page = text(answer).await;
        assert!(
            page.contains(&asset_folder()),
            "the index names this build's folder"
        );
        assert!(!page.contains("{{ASSETS}}"));
    }
}

#[tokio::test]
async fn assets_are_immutable_gzipped_when_accepted_and_revalidated_by_etag() {
    let path = format!("{}/js/app.js", asset_folder());
    let plain = get(&path, &[]).await;
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(
        plain.headers()[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
    let etag = plain.headers()[header::ETAG].to_str().unwrap().to_owned();
    assert_eq!(
        get(&path, &[("if-none-match", &etag)]).await.status(),
        StatusCode::NOT_MODIFIED
    );

    let big = format!("{}/vendor/tus.min.js", asset_folder());
    let zipped = get(&big, &[("accept-encoding", "br, gzip;q=0.8")]).await;
    assert_eq!(zipped.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(zipped.headers()[header::VARY], "Accept-Encoding");
    let refused = get(&big, &[("accept-encoding", "gzip;q=0")]).await;
    assert!(refused.headers().get(header::CONTENT_ENCODING).is_none());
}

#[tokio::test]
async fn unknown_assets_are_404_and_writes_405() {
    let other_build = get("/assets/000000000000/js/app.js", &[]).await;
    assert_eq!(other_build.status(), StatusCode::NOT_FOUND);
    let missing = get(&format!("{}/nope.js", asset_folder()), &[]).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let post = router()
        .oneshot(Request::post("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// What a page or module names: `{{ASSETS}}/x` in the index, `'./x.js'` and `'../x.js'` in
/// modules (static and dynamic imports).
#[test]
fn every_asset_named_by_the_index_and_the_modules_is_embedded() {
    let folder = format!("{}/", asset_folder());
    let index = std::str::from_utf8(find("index.html").unwrap().body).unwrap();
    let mut named: Vec<String> = index
        .split(&folder)
        .skip(1)
        .map(|rest| rest.split(['"', '\'']).next().unwrap().to_owned())
        .collect();
    // The libraries are bundles of their own.
    let ours = ASSETS
        .iter()
        .filter(|a| a.path.ends_with(".js") && !a.path.starts_with("vendor/"));
    for asset in ours {
        let text = std::str::from_utf8(asset.body).unwrap();
        let dir = asset.path.rsplit_once('/').map_or("", |(d, _)| d);
        for quoted in text.split(['\'', '"']).filter(|s| {
            (s.starts_with("./") || s.starts_with("../"))
                && (s.ends_with(".js") || s.ends_with(".mjs"))
        }) {
            let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
            for segment in quoted.split('/') {
                match segment {
                    "." => {}
                    ".." => {
                        parts.pop();
                    }
                    other => parts.push(other),
                }
            }
            named.push(parts.join("/"));
        }
    }
    assert!(named.len() > 3, "{named:?}");
    for path in named {
        assert!(find(&path).is_some(), "{path} is named but not embedded");
    }
}
