//! The OpenAPI description against the router it describes, with a real SQLite repository and
//! queue and real local storage (whose signed blob routes are merged in, as the binary does):
//! - the description is OpenAPI 3.1, complete (references resolve, path parameters declared) and
//!   lists exactly the operations in [`OPERATIONS`];
//! - every described operation is routed, answers 401 without a credential exactly when it
//!   declares security, and every other method on its path is refused with 405;
//! - no route is registered any other way than `routes!` (which describes it too);
//! - real answers, successes and errors, have documented statuses and match their schemas;
//! - `openapi-spec-validator` (from the project's virtualenv, installed by
//!   `scripts/test-services.sh`) accepts the description;
//! - `/docs` is HTML that loads nothing from elsewhere.

mod answers;
pub mod support;
mod tus;

use std::{collections::BTreeSet, path::Path};

use axum::http::{StatusCode, header};
use serde_json::{Value, json};
use support::{METHODS, concrete, described, spawn_app};

/// The API surface, by hand: adding, removing or moving a route fails [`lists_exactly_the_api`]
/// until this table (a deliberate act) and so the description agree.
const OPERATIONS: &[(&str, &str)] = &[
    ("POST", "/v1/auth/register"),
    ("POST", "/v1/auth/login"),
    ("POST", "/v1/auth/refresh"),
    ("POST", "/v1/auth/session"),
    ("DELETE", "/v1/auth/session"),
    ("GET", "/v1/me"),
    ("POST", "/v1/api-keys"),
    ("GET", "/v1/api-keys"),
    ("DELETE", "/v1/api-keys/{id}"),
    ("POST", "/v1/videos"),
    ("GET", "/v1/videos"),
    ("GET", "/v1/videos/{id}"),
    ("DELETE", "/v1/videos/{id}"),
    ("POST", "/v1/videos/{id}/retry"),
    ("POST", "/v1/videos/{id}/uploaded"),
    ("GET", "/v1/videos/{id}/events"),
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/{id}"),
    ("DELETE", "/v1/jobs/{id}"),
    ("POST", "/v1/jobs/{id}/cancel"),
    ("POST", "/v1/jobs/{id}/steps/{step}/retry"),
    ("GET", "/v1/jobs/{id}/events"),
    ("GET", "/v1/recipes"),
    ("POST", "/v1/videos/{id}/multipart"),
    ("DELETE", "/v1/videos/{id}/multipart"),
    ("POST", "/v1/videos/{id}/multipart/parts"),
    ("POST", "/v1/videos/{id}/multipart/complete"),
    ("OPTIONS", "/v1/uploads"),
    ("POST", "/v1/uploads"),
    ("HEAD", "/v1/uploads/{id}"),
    ("PATCH", "/v1/uploads/{id}"),
    ("DELETE", "/v1/uploads/{id}"),
    ("POST", "/v1/webhooks"),
    ("GET", "/v1/webhooks"),
    ("DELETE", "/v1/webhooks/{id}"),
    ("GET", "/v1/webhooks/{id}/deliveries"),
    ("POST", "/v1/webhooks/{id}/deliveries/{delivery}/redeliver"),
    ("GET", "/v1/qc/results"),
    ("GET", "/v1/qc/results/count"),
    ("PUT", "/v1/blobs/{key}"),
    ("GET", "/v1/blobs/{key}"),
    ("GET", "/v1/play/{token}/{file}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
];

fn collect_refs<'a>(value: &'a Value, refs: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("$ref", Value::String(r)) => refs.push(r),
                    _ => collect_refs(child, refs),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

#[tokio::test]
async fn serves_a_complete_openapi_3_1_description() {
    let app = spawn_app().await;
    let answer = app.send("GET", "/openapi.json", None, None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.headers[header::CONTENT_TYPE],
        "application/json",
        "content type"
    );
    let spec = answer.body;
    assert_eq!(spec, app.spec, "served and built descriptions differ");
    let version = spec["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1"), "version {version}");

    let mut refs = Vec::new();
    collect_refs(&spec, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {reference}"));
        assert!(
            spec["components"]["schemas"][name].is_object(),
            "{reference} does not exist"
        );
    }

    let tags: BTreeSet<&str> = spec["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    let schemes = spec["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    assert_eq!(
        schemes["bearer"]["scheme"], "bearer",
        "HTTP bearer scheme: {schemes:?}"
    );
    assert_eq!(schemes["api_key"]["name"], "X-Api-Key");
    let mut operation_ids = BTreeSet::new();
    for (method, path) in described(&spec) {
        let operation = &spec["paths"][&path][method.to_lowercase()];
        let name = format!("{method} {path}");
        assert!(operation["summary"].is_string(), "{name}: no summary");
        let id = operation["operationId"].as_str().expect("operation id");
        assert!(
            operation_ids.insert(id.to_owned()),
            "{name}: duplicate id {id}"
        );
        let operation_tags = operation["tags"].as_array().expect("tags");
        assert_eq!(operation_tags.len(), 1, "{name}: one tag");
        let tag = operation_tags[0].as_str().unwrap_or_default();
        assert!(tags.contains(tag), "{name}: tag {tag} is not declared");
        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{name}: no success answer"
        );
        for (status, response) in responses {
            assert!(response["description"].is_string(), "{name} {status}");
        }
        if let Some(body) = operation.get("requestBody") {
            assert!(body["content"].is_object(), "{name}: request body content");
        }
        // Every `{parameter}` of the path is declared, required, in the path.
        let declared: BTreeSet<&str> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path" && p["required"] == true)
            .filter_map(|p| p["name"].as_str())
            .collect();
        let in_template: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        assert_eq!(declared, in_template, "{name}: path parameters");
        // Authenticated operations name both schemes and document the 401.
        if let Some(security) = operation["security"].as_array() {
            for requirement in security {
                for scheme in requirement.as_object().expect("requirement").keys() {
                    assert!(schemes.contains_key(scheme), "{name}: scheme {scheme}");
                }
            }
            assert!(responses.contains_key("401"), "{name}: no 401");
        }
        if path.starts_with("/v1/") && !path.starts_with("/v1/blobs/") {
            for status in ["500", "503"] {
                assert!(responses.contains_key(status), "{name}: no {status}");
            }
        }
    }
    // The error body is one shared schema.
    let error = &spec["components"]["schemas"]["Error"];
    assert_eq!(error["required"], json!(["error"]));
}

/// `.services/venv/bin/python` (or under `$VIDSNAP_SERVICES_DIR`), made by
/// `scripts/test-services.sh`.
fn venv_python() -> std::path::PathBuf {
    let services = std::env::var_os("VIDSNAP_SERVICES_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.services"));
    services.join("venv/bin/python")
}

#[tokio::test]
async fn an_independent_validator_accepts_the_description() {
    let app = spawn_app().await;
    let python = venv_python();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, app.spec.to_string()).expect("write the description");
    // A test tool, run once to completion: not the media runner's business.
    #[allow(clippy::disallowed_methods)]
    let output = std::process::Command::new(&python)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}. This test needs openapi-spec-validator in the project's virtualenv: \
                 run scripts/test-services.sh once, then the tests again.",
                python.display()
            )
        });
    let said = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "openapi-spec-validator refused the description (if it is missing, run \
         scripts/test-services.sh):\n{said}"
    );
}

#[tokio::test]
async fn lists_exactly_the_api() {
    let app = spawn_app().await;
    let expected: BTreeSet<(String, String)> = OPERATIONS
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let described = described(&app.spec);
    let missing: Vec<_> = expected.difference(&described).collect();
    let unexpected: Vec<_> = described.difference(&expected).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "not described: {missing:?}; described but not in OPERATIONS: {unexpected:?}"
    );
}

#[tokio::test]
async fn every_described_operation_is_routed_and_guarded_as_described() {
    let app = spawn_app().await;
    let operations = described(&app.spec);
    let paths: BTreeSet<&String> = operations.iter().map(|(_, p)| p).collect();
    for path in paths {
        let uri = concrete(path);
        // Every path is probed with the usual methods; HEAD and OPTIONS only where described
        // (axum answers HEAD wherever GET is routed, and tus discovery is OPTIONS).
        let extra = operations
            .iter()
            .filter(|(m, p)| p == path && !METHODS.contains(&m.as_str()))
            .map(|(m, _)| m.as_str());
        for method in METHODS.into_iter().chain(extra) {
            let answer = app.send(method, &uri, None, None).await;
            let name = format!("{method} {uri}");
            let Some(operation) = app.spec["paths"][path].get(method.to_lowercase()) else {
                assert_eq!(
                    answer.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{name} is routed but not described"
                );
                continue;
            };
            assert!(
                !answer.text.contains("no such route")
                    && answer.status != StatusCode::METHOD_NOT_ALLOWED,
                "{name} is described but not routed ({})",
                answer.status
            );
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty());
            assert_eq!(
                answer.status == StatusCode::UNAUTHORIZED,
                secured,
                "{name}: answered {} without a credential; described security: {}",
                answer.status,
                operation["security"]
            );
        }
    }
}

/// `routes!` routes a handler and describes it at once; anything else (`.route(…)`, a nested
/// or merged plain `Router`) would serve a route the description does not know.
#[test]
fn routes_are_registered_only_through_routes_macro() {
    fn visit(dir: &Path, offenders: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                visit(&path, offenders);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read source");
                for (n, line) in text.lines().enumerate() {
                    let plain = [
                        ".route(",
                        ".route_service(",
                        ".nest(",
                        ".nest_service(",
                        "Router::new()",
                        "routing::",
                    ];
                    // `OpenApiRouter::new()` is the described kind.
                    let line = line.replace("OpenApiRouter::new()", "");
                    if plain.iter().any(|p| line.contains(p)) {
                        offenders.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    let mut offenders = Vec::new();
    visit(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut offenders,
    );
    assert!(
        offenders.is_empty(),
        "register routes with utoipa_axum::routes! so they are described:\n{}",
        offenders.join("\n")
    );
}

#[tokio::test]
async fn docs_page_is_html_that_loads_nothing_from_elsewhere() {
    let app = spawn_app().await;
    let answer = app.send("GET", "/docs", None, None).await;
    assert_eq!(answer.status, StatusCode::OK);
    let content_type = answer.headers[header::CONTENT_TYPE].to_str().expect("type");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = answer.text.to_lowercase();
    assert!(
        page.contains("openapi.json"),
        "the page reads the description"
    );
    for absolute in [
        "http://",
        "https://",
        "src=\"//",
        "href=\"//",
        "url(//",
        "@import",
    ] {
        assert!(!page.contains(absolute), "the page refers to {absolute}…");
    }
    for tag in ["<script src", "<link "] {
        assert!(!page.contains(tag), "the page loads a file: {tag}");
    }
}
