//! The app under test and the checks of answers against the description.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Request, StatusCode, header},
};
use serde_json::Value;
use tower::ServiceExt;
use vidsnap_api::{
    ApiSettings, AppState, ReadinessChecks, Shared,
    auth::{passwords::PasswordCost, tokens::TokenKeys},
    events::VideoEvents,
};
use vidsnap_db::SqliteStore;
use vidsnap_domain::{Limits, VideoId};
use vidsnap_jobs::JobService;
use vidsnap_storage::{LocalStaging, LocalStore, UrlSigner};
use vidsnap_uploads::{UploadCore, UploadSettings};

/// The methods probed on every path.
pub const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

pub struct TestApp {
    pub router: Router,
    pub store: Arc<SqliteStore>,
    /// The description, as `vidsnap_api::openapi()` builds it.
    pub spec: Value,
    _dir: tempfile::TempDir,
}

/// The router with a fresh SQLite database and blob directory, storage routes merged in.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|settings| settings).await
}

/// [`spawn_app`] with the API settings changed by `change`.
pub async fn spawn_app_with(change: impl FnOnce(ApiSettings) -> ApiSettings) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("vidsnap.db"))
            .await
            .expect("open sqlite"),
    );
    let signer = UrlSigner::new(b"blob secret".to_vec(), "http://127.0.0.1:9");
    let blobs =
        Arc::new(LocalStore::open(dir.path().join("blobs"), signer.clone()).expect("blob store"));
    let events = VideoEvents::default();
    let jobs = JobService::new(store.clone(), store.clone(), 5, Arc::new(events.clone()));
    let on_upload = Arc::new(jobs.clone());
    let uploads = UploadCore::new(
        store.clone(),
        Arc::new(LocalStaging::new(&blobs).expect("staging")),
        on_upload.clone(),
        UploadSettings::default(),
    );
    let state = AppState::new(Shared {
        repo: store.clone(),
        jobs,
        queue: store.clone(),
        blobs: blobs.clone(),
        keys: TokenKeys::new(
            b"token secret",
            Duration::from_secs(300),
            Duration::from_secs(3600),
        ),
        playback: vidsnap_api::playback::PlaybackSigner::new(
            b"playback secret".to_vec(),
            "http://vidsnap.test",
        ),
        settings: change(ApiSettings {
            password_cost: PasswordCost {
                memory_kib: 64,
                iterations: 1,
            },
            ..ApiSettings::default()
        }),
        limits: Limits::default(),
        events: events.clone(),
        metrics: None,
        oidc: None,
        shutdown: tokio_util::sync::CancellationToken::new(),
        deliveries_waker: None,
        readiness: ReadinessChecks::backends(store.clone(), store.clone(), blobs.clone()),
        uploads,
        multipart: None,
    });

    let router =
        vidsnap_api::router(state).merge(vidsnap_storage::routes(blobs, signer, on_upload, None));
    let spec = serde_json::to_value(vidsnap_api::openapi()).expect("description as JSON");
    TestApp {
        router,
        store,
        spec,
        _dir: dir,
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body as JSON, `null` when it is not JSON.
    pub body: Value,
    pub text: String,
}

impl TestApp {
    /// Sends a request; `credential` goes in `Authorization: Bearer`.
    pub async fn send(
        &self,
        method: &str,
        uri: &str,
        credential: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(credential) = credential {
            request = request.header(header::AUTHORIZATION, format!("Bearer {credential}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .expect("request");
        self.answer(request).await
    }

    /// Sends `request` as built, and reads the answer.
    pub async fn answer(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.expect("answer");
        let status = response.status();
        let headers = response.headers().clone();
        // Event streams do not end: only their head is read.
        let is_stream = headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let bytes = if is_stream {
            Default::default()
        } else {
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body")
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    /// Sends requests as the holder of `credential`, checking their answers against the
    /// description.
    pub fn client(&self, credential: Option<&str>) -> Client<'_> {
        Client {
            app: self,
            credential: credential.map(str::to_owned),
        }
    }

    /// The described path template a concrete path belongs to. A final `{key}` (a blob key)
    /// spans the remaining segments, slashes included.
    fn template_of(&self, path: &str) -> String {
        let segments: Vec<&str> = path.split('/').collect();
        let fits = |template: &str| {
            let parts: Vec<&str> = template.split('/').collect();
            let spans = parts.last() == Some(&"{key}") && segments.len() >= parts.len();
            (parts.len() == segments.len() || spans)
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t == s || t.starts_with('{'))
        };
        let templates = self.spec["paths"].as_object().expect("paths").keys();
        // The most literal template wins: `/v1/videos/{id}` over a hypothetical `/v1/{x}/{id}`.
        templates
            .filter(|t| fits(t))
            .max_by_key(|t| t.split('/').filter(|p| !p.starts_with('{')).count())
            .unwrap_or_else(|| panic!("{path} matches no described path"))
            .clone()
    }
}

pub struct Client<'a> {
    app: &'a TestApp,
    credential: Option<String>,
}

impl Client<'_> {
    /// Sends `request` (`"METHOD /path?query"`), expects `expected`, then checks that the status
    /// is documented for the operation and the body matches the documented schema. Returns the
    /// body.
    pub async fn call(&self, expected: StatusCode, request: &str, body: Option<Value>) -> Value {
        let (method, uri) = request.split_once(' ').expect("METHOD /path");
        let answer = self
            .app
            .send(method, uri, self.credential.as_deref(), body)
            .await;
        self.check(expected, request, answer).body
    }

    /// As [`call`](Self::call), with `headers` and raw bytes as the body (tus requests), and
    /// the whole answer back. Also checks that every tus header of the answer (`Tus-*`,
    /// `Upload-*`, `Vidsnap-*`, `Location`, `Link`) is documented for its status.
    pub async fn call_raw(
        &self,
        expected: StatusCode,
        request: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Answer {
        let (method, uri) = request.split_once(' ').expect("METHOD /path");
        let mut built = Request::builder().method(method).uri(uri);
        if let Some(credential) = &self.credential {
            built = built.header(header::AUTHORIZATION, format!("Bearer {credential}"));
        }
        for (name, value) in headers {
            built = built.header(*name, value);
        }
        let answer = self
            .app
            .answer(built.body(Body::from(body)).expect("request"))
            .await;
        self.check(expected, request, answer)
    }

    fn check(&self, expected: StatusCode, request: &str, answer: Answer) -> Answer {
        let (method, uri) = request.split_once(' ').expect("METHOD /path");
        let app = self.app;
        assert_eq!(answer.status, expected, "{request}: {}", answer.text);
        let template = app.template_of(uri.split('?').next().unwrap_or(uri));
        let operation = &app.spec["paths"][&template][method.to_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {template} is not described"
        );
        let documented = &operation["responses"][answer.status.as_str()];
        assert!(
            documented.is_object(),
            "{request}: {expected} is not documented"
        );
        let named: Vec<String> = documented["headers"]
            .as_object()
            .map(|h| h.keys().map(|k| k.to_ascii_lowercase()).collect())
            .unwrap_or_default();
        for name in answer.headers.keys().map(|n| n.as_str()) {
            let ours = ["tus-", "upload-", "vidsnap-"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
                || ["location", "link"].contains(&name);
            assert!(
                !ours || named.iter().any(|n| n == name),
                "{request}: header {name} of the {expected} answer is not documented"
            );
        }
        if method == "HEAD" {
            // No body, whatever the status: only its headers are the answer.
            return answer;
        }
        let content_type = answer
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let media = content_type.split(';').next().unwrap_or("");
        let Some(content) = documented.get("content").and_then(Value::as_object) else {
            assert!(answer.text.is_empty(), "{request}: undocumented body");
            return answer;
        };
        let described = content
            .iter()
            .find(|(k, _)| k.split(';').next() == Some(media))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("{request}: {content_type} is not documented"));
        if media == "application/json"
            && let Err(problem) = conforms(&app.spec, &described["schema"], &answer.body, "$")
        {
            panic!("{request}: {problem}\n{:#}", answer.body);
        }
        answer
    }
}

/// Whether `value` matches `schema` (the subset of JSON Schema the description uses), strictly:
/// an object may not carry properties its schema does not list, so undocumented fields fail.
pub fn conforms(spec: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .ok_or_else(|| format!("{at}: unexpected $ref {reference}"))?;
        let target = &spec["components"]["schemas"][name];
        if target.is_null() {
            return Err(format!("{at}: $ref {reference} does not exist"));
        }
        return conforms(spec, target, value, at);
    }
    if let Some(branches) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = branches
            .iter()
            .filter(|b| conforms(spec, b, value, at).is_ok())
            .count();
        if matching != 1 {
            return Err(format!("{at}: {matching} branches of oneOf match {value}"));
        }
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for part in all {
            conforms(spec, part, value, at)?;
        }
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let fits = types.iter().any(|t| match *t {
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "string" => value.is_string(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => false,
        });
        if !fits {
            return Err(format!("{at}: {value} is not of type {types:?}"));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let (Some(object), Some(properties)) = (
        value.as_object(),
        schema.get("properties").and_then(Value::as_object),
    ) {
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !object.contains_key(required) {
                return Err(format!("{at}: required property {required} is missing"));
            }
        }
        for (key, field) in object {
            let described = properties
                .get(key)
                .ok_or_else(|| format!("{at}: property {key} is not described"))?;
            conforms(spec, described, field, &format!("{at}.{key}"))?;
        }
    }
    if let (Some(items), Some(schema)) = (value.as_array(), schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            conforms(spec, schema, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// Every operation of the description, as (`METHOD`, path template).
pub fn described(spec: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in METHODS.into_iter().chain(["HEAD", "OPTIONS"]) {
            if item.get(method.to_lowercase()).is_some() {
                operations.insert((method.to_owned(), path.clone()));
            }
        }
    }
    operations
}

/// A concrete URI for a path template: fresh ids, and a signed-looking query for blobs.
pub fn concrete(template: &str) -> String {
    let mut uri = template
        .replace("{key}", "someone/something/clip.mp4")
        .replace("{id}", &VideoId::new().to_string())
        .replace("{delivery}", &VideoId::new().to_string());
    if template.starts_with("/v1/blobs/") {
        uri.push_str("?expires=4102444800&signature=00");
    }
    uri
}
