//! Resumable uploads (tus 1.0.0 at `/v1/uploads`) against the real binary: the official clients
//! (tus-py-client and tus-js-client, installed by `scripts/test-services.sh`) upload clips that
//! are processed like presigned uploads; a client killed half-way resumes on another API process
//! (two `vidsnap serve` on one PostgreSQL database and one storage root); the protocol's answers
//! with plain HTTP (offsets, checksums, versions, content types, a second writer, termination,
//! ownership); and the scheduler expiring idle uploads while active ones survive.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines},
    net::TcpStream,
    process::{ChildStdout, Command},
};

use super::support::App;
use crate::support::clip;

// --- the official clients ----------------------------------------------------------------------

fn services_dir() -> PathBuf {
    std::env::var_os("VIDSNAP_SERVICES_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.services"),
        PathBuf::from,
    )
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e/service/tus")
        .join(name)
}

/// A tus client process, its events read from its stdout (one JSON object a line).
struct TusClient {
    child: tokio::process::Child,
    events: Lines<BufReader<ChildStdout>>,
    what: &'static str,
}

impl TusClient {
    /// tuspy (tus-py-client) from the project's virtualenv, driven by `tus/upload.py`.
    fn python(args: Value) -> TusClient {
        let python = services_dir().join("venv/bin/python");
        let installed = std::process::Command::new(&python)
            .args(["-c", "import tusclient"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            installed,
            "tuspy is not installed in {}: run scripts/test-services.sh (make test does)",
            python.display()
        );
        let mut command = Command::new(python);
        command.arg(script("upload.py")).arg(args.to_string());
        TusClient::spawn(command, "tuspy")
    }

    /// tus-js-client from `.services/node`, on the machine's Node.js, driven by `tus/upload.js`.
    fn node(args: Value) -> TusClient {
        let modules = services_dir().join("node/node_modules");
        assert!(
            modules.join("tus-js-client/package.json").exists(),
            "tus-js-client is not installed in {}: run scripts/test-services.sh (make test does)",
            modules.display()
        );
        let mut command = Command::new("node");
        command
            .env("NODE_PATH", &modules)
            .arg(script("upload.js"))
            .arg(args.to_string());
        TusClient::spawn(command, "tus-js-client")
    }

    fn spawn(mut command: Command, what: &'static str) -> TusClient {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e} (run scripts/test-services.sh)"));
        let events = BufReader::new(child.stdout.take().unwrap()).lines();
        TusClient {
            child,
            events,
            what,
        }
    }

    /// The next event, or `None` when the client has exited.
    async fn next(&mut self) -> Option<Value> {
        let line = tokio::time::timeout(Duration::from_secs(60), self.events.next_line())
            .await
            .unwrap_or_else(|_| panic!("{}: no event within 60 s", self.what))
            .unwrap()?;
        Some(serde_json::from_str(&line).unwrap_or_else(|_| panic!("{}: {line}", self.what)))
    }

    /// Reads events until `event` comes.
    async fn until(&mut self, event: &str) -> Value {
        loop {
            match self.next().await {
                Some(e) if e["event"] == event => return e,
                Some(e) if e["event"] == "error" => panic!("{}: {e}", self.what),
                Some(_) => {}
                None => panic!("{} exited before {event}", self.what),
            }
        }
    }

    /// Waits for a successful exit; returns the events it still printed.
    async fn finish(mut self) -> Vec<Value> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "{} failed: {events:?}", self.what);
        events
    }

    /// SIGKILL, as when a laptop lid closes or a phone loses the network for good.
    async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}

// --- helpers -----------------------------------------------------------------------------------

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

async fn user_id(app: &App, token: &str) -> String {
    let (status, me) = app.call(Method::GET, "/v1/me", Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    me["id"].as_str().unwrap().to_owned()
}

/// A tus request with a credential and `Tus-Resumable: 1.0.0`.
fn tus(app: &App, method: Method, url: &str, token: &str) -> reqwest::RequestBuilder {
    let url = if url.starts_with("http") {
        url.to_owned()
    } else {
        format!("{}{url}", app.url)
    };
    app.http
        .request(method, url)
        .bearer_auth(token)
        .header("tus-resumable", "1.0.0")
}

pub(super) async fn head(app: &App, url: &str, token: &str) -> (StatusCode, HeaderMap) {
    let response = tus(app, Method::HEAD, url, token).send().await.unwrap();
    (response.status(), response.headers().clone())
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {headers:?}"))
        .to_str()
        .unwrap()
        .to_owned()
}

async fn offset(app: &App, url: &str, token: &str) -> u64 {
    let (status, headers) = head(app, url, token).await;
    assert_eq!(status, StatusCode::OK);
    header(&headers, "upload-offset").parse().unwrap()
}

/// `Upload-Metadata` for the pairs given.
fn metadata(pairs: &[(&str, &str)]) -> String {
    use base64::Engine;
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{k} {}",
                base64::engine::general_purpose::STANDARD.encode(v)
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Creates an upload of `length` bytes named `name`; returns its path and its video's id.
pub(super) async fn create(app: &App, token: &str, length: u64, name: &str) -> (String, String) {
    let response = tus(app, Method::POST, "/v1/uploads", token)
        .header("upload-length", length.to_string())
        .header("upload-metadata", metadata(&[("filename", name)]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let headers = response.headers();
    assert_eq!(header(headers, "tus-resumable"), "1.0.0");
    (
        header(headers, "location"),
        header(headers, "vidsnap-video"),
    )
}

async fn patch(
    app: &App,
    url: &str,
    token: &str,
    offset: u64,
    bytes: &'static [u8],
    checksum: Option<String>,
) -> reqwest::Response {
    let mut request = tus(app, Method::PATCH, url, token)
        .header("upload-offset", offset.to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(bytes);
    if let Some(checksum) = checksum {
        request = request.header("upload-checksum", checksum);
    }
    request.send().await.unwrap()
}

fn sha1_header(bytes: &[u8]) -> String {
    use base64::Engine;
    let digest = sha1::Sha1::digest(bytes);
    format!(
        "sha1 {}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

fn sha256_header(bytes: &[u8]) -> String {
    use base64::Engine;
    format!(
        "sha256 {}",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
    )
}

async fn error_code(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    assert_eq!(
        response
            .headers()
            .get("tus-resumable")
            .map(|v| v.as_bytes()),
        Some(&b"1.0.0"[..]),
        "every answer carries Tus-Resumable"
    );
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    (status, body["error"]["code"].as_str().unwrap().to_owned())
}

/// The files left in the staging folder.
fn staged(data: &Path) -> Vec<String> {
    let dir = data.join("blobs/.uploads");
    match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

pub(super) fn upload_id(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

/// A PATCH written by hand on a socket, so a test decides when its body arrives (or that it
/// never does).
struct RawPatch {
    stream: TcpStream,
}

impl RawPatch {
    async fn start(app: &App, path: &str, token: &str, offset: u64, length: u64) -> RawPatch {
        let address = app.url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).await.unwrap();
        let head = format!(
            "PATCH {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
             Tus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\n\
             Content-Type: application/offset+octet-stream\r\nContent-Length: {length}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        RawPatch { stream }
    }

    /// Whether the server has answered already (before the body was complete: refused).
    fn answered(&self) -> bool {
        let mut byte = [0u8; 1];
        !matches!(self.stream.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// The answer's status and head, once the body is complete.
    async fn answer(mut self) -> (u16, String) {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(30), self.stream.read(&mut byte))
                .await
                .expect("an answer within 30 s")
                .unwrap();
            assert_eq!(n, 1, "the server closed the connection: {head:?}");
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_lowercase())
    }
}

// --- the official clients ----------------------------------------------------------------------

/// tuspy uploads a clip in 256 KiB PATCHes, each with `Upload-Checksum: sha1`; the video is
/// processed, and the stored object is the source, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tuspy_uploads_a_clip_that_is_processed() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &[]).await;
    let token = app.register("ana@example.com").await;
    let source = clip("cfr61.mp4");

    let mut client = TusClient::python(json!({
        "endpoint": format!("{}/v1/uploads", app.url),
        "token": token,
        "file": source,
        "metadata": {"filename": "holiday.mp4", "every": "20s"},
        "chunk_size": 256 * 1024,
        "checksum": true,
    }));
    let url = client.until("url").await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let events = client.finish().await;
    let size = std::fs::metadata(&source).unwrap().len();
    assert_eq!(events.last().unwrap()["offset"], size, "{events:?}");
    assert!(events.len() > 4, "several PATCHes: {events:?}");

    let (status, headers) = head(&app, &url, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "upload-offset"), size.to_string());
    let video = header(&headers, "vidsnap-video");
    let done = app.wait_for_status(&token, &video, "succeeded").await;
    assert_eq!(done["file_name"], "holiday.mp4");
    assert_eq!(done["options"]["every"], 20.0);
    assert_eq!(done["outputs"]["frames"], 4);
    assert_eq!(
        super::support::history(&done),
        ["awaiting_upload", "queued", "processing", "succeeded"]
    );

    let stored = data
        .path()
        .join("blobs")
        .join(user_id(&app, &token).await)
        .join(&video)
        .join("holiday.mp4");
    assert_eq!(sha256_of(&stored), sha256_of(&source));
    assert_eq!(
        staged(data.path()),
        Vec::<String>::new(),
        "nothing left staged"
    );
}

/// tus-js-client uploads a clip in one PATCH; processed the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_uploads_a_clip_that_is_processed() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &[]).await;
    let token = app.register("ana@example.com").await;
    let source = clip("short3.mp4");

    let client = TusClient::node(json!({
        "endpoint": format!("{}/v1/uploads", app.url),
        "token": token,
        "file": source,
        "metadata": {"filename": "short.mp4", "every": "1s", "format": "png"},
    }));
    let events = client.finish().await;
    let url = events.last().unwrap()["url"].as_str().unwrap().to_owned();
    assert_eq!(events.last().unwrap()["event"], "success", "{events:?}");

    let (_, headers) = head(&app, &url, &token).await;
    let video = header(&headers, "vidsnap-video");
    let done = app.wait_for_status(&token, &video, "succeeded").await;
    assert_eq!(done["options"]["format"], "png");
    assert_eq!(done["outputs"]["frames"], 3);
    let stored = data
        .path()
        .join("blobs")
        .join(user_id(&app, &token).await)
        .join(&video)
        .join("short.mp4");
    assert_eq!(sha256_of(&stored), sha256_of(&source));
    assert_eq!(staged(data.path()), Vec::<String>::new());
}

/// tus-js-client, SIGKILLed after its first chunk was acknowledged by one API process, resumes
/// from the server's offset against another API process: sessions live in the shared database
/// (PostgreSQL), bytes in the shared storage root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_killed_half_way_resumes_on_another_api_process() {
    let database = vidsnap_db::testing::ScratchDatabase::create("vidsnap_e2e").await;
    let shared = tempfile::tempdir().unwrap();
    let root = shared.path().join("blobs");
    let env = [
        ("VIDSNAP_DATABASE__KIND", "postgres".to_owned()),
        ("VIDSNAP_DATABASE__URL", database.url().to_owned()),
        ("VIDSNAP_STORAGE__ROOT", root.display().to_string()),
        (
            "VIDSNAP_AUTH__SECRET",
            "one secret for both API processes, 32+ characters".to_owned(),
        ),
    ];
    let (first_data, second_data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = App::start(first_data.path(), &env).await;
    let second = App::start(second_data.path(), &env).await;
    let token = first.register("ana@example.com").await;
    let source = clip("cfr61.mp4");
    let size = std::fs::metadata(&source).unwrap().len();

    let mut client = TusClient::node(json!({
        "endpoint": format!("{}/v1/uploads", first.url),
        "token": token,
        "file": source,
        "metadata": {"filename": "resumed.mp4", "every": "20s"},
        "chunkSize": 256 * 1024,
    }));
    let url = client.until("url").await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let acknowledged = client.until("chunk").await["offset"].as_u64().unwrap();
    client.kill().await;
    assert!(acknowledged > 0 && acknowledged < size);

    // The other process knows the upload: at least what the first acknowledged is stored.
    let path = &url[url.find("/v1/uploads/").unwrap()..];
    let on_second = format!("{}{path}", second.url);
    let at = offset(&second, &on_second, &token).await;
    assert!(at >= acknowledged && at < size, "{at} of {size}");

    let resumed = TusClient::node(json!({
        "endpoint": format!("{}/v1/uploads", second.url),
        "uploadUrl": on_second,
        "token": token,
        "file": source,
        "chunkSize": 256 * 1024,
    }));
    let events = resumed.finish().await;
    let chunks: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "chunk")
        .map(|e| e["offset"].as_u64().unwrap())
        .collect();
    assert!(
        chunks
            .first()
            .is_some_and(|&first| first > at.min(size - 1)),
        "resumed from the server's offset {at}, not from 0: {chunks:?}"
    );
    assert_eq!(events.last().unwrap()["event"], "success", "{events:?}");

    let (_, headers) = head(&second, &on_second, &token).await;
    let video = header(&headers, "vidsnap-video");
    second.wait_for_status(&token, &video, "succeeded").await;
    let stored = root
        .join(user_id(&second, &token).await)
        .join(&video)
        .join("resumed.mp4");
    assert_eq!(sha256_of(&stored), sha256_of(&source));
    let left = std::fs::read_dir(root.join(".uploads")).unwrap().count();
    assert_eq!(left, 0, "nothing left staged");
    assert!(second.stop().await.success());
    assert!(first.stop().await.success());
}

// --- the protocol --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_answers_follow_the_protocol() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &[]).await;
    let token = app.register("ana@example.com").await;

    // Discovery needs no credential.
    let options = app
        .http
        .request(Method::OPTIONS, format!("{}/v1/uploads", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(options.status(), StatusCode::NO_CONTENT);
    let headers = options.headers();
    assert_eq!(header(headers, "tus-resumable"), "1.0.0");
    assert_eq!(header(headers, "tus-version"), "1.0.0");
    assert_eq!(
        header(headers, "tus-extension"),
        "creation,creation-with-upload,termination,expiration,checksum"
    );
    assert_eq!(header(headers, "tus-checksum-algorithm"), "sha1,sha256");
    assert_eq!(header(headers, "tus-max-size"), "10737418240");

    // Creation: version, length and metadata are checked.
    let post = || tus(&app, Method::POST, "/v1/uploads", &token);
    let unversioned = app
        .http
        .post(format!("{}/v1/uploads", app.url))
        .bearer_auth(&token)
        .header("upload-length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(header(unversioned.headers(), "tus-version"), "1.0.0");
    assert_eq!(
        error_code(unversioned).await,
        (
            StatusCode::PRECONDITION_FAILED,
            "unsupported-version".into()
        )
    );
    let old = app
        .http
        .post(format!("{}/v1/uploads", app.url))
        .bearer_auth(&token)
        .header("tus-resumable", "0.2.2")
        .header("upload-length", "10")
        .header("upload-metadata", metadata(&[("filename", "a.mp4")]))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::PRECONDITION_FAILED);
    let no_length = post()
        .header("upload-metadata", metadata(&[("filename", "a.mp4")]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(no_length).await,
        (StatusCode::BAD_REQUEST, "invalid-header".into())
    );
    let huge = post()
        .header("upload-length", (20u64 << 30).to_string())
        .header("upload-metadata", metadata(&[("filename", "a.mp4")]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(huge).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "too-large".into())
    );
    let bad = post()
        .header("upload-length", "10")
        .header(
            "upload-metadata",
            metadata(&[("filename", "notes.txt"), ("every", "0s"), ("mode", "fast")]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = serde_json::from_slice(&bad.bytes().await.unwrap()).unwrap();
    for field in ["metadata.filename", "metadata.every", "metadata.mode"] {
        assert!(
            body["error"]["fields"][field].is_string(),
            "{field}: {body}"
        );
    }
    let unnamed = post().header("upload-length", "10").send().await.unwrap();
    assert_eq!(unnamed.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // An upload of 10 bytes; its video is visible at once.
    let (url, video) = create(&app, &token, 10, "clip.mp4").await;
    assert!(url.starts_with("/v1/uploads/"), "{url}");
    assert_eq!(app.video(&token, &video).await["status"], "awaiting_upload");
    let (status, headers) = head(&app, &url, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "upload-offset"), "0");
    assert_eq!(header(&headers, "upload-length"), "10");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert!(header(&headers, "upload-expires").ends_with(" GMT"));
    assert_eq!(
        header(&headers, "upload-metadata"),
        metadata(&[("filename", "clip.mp4")])
    );

    // Pieces: content type, version, offset.
    let wrong_type = tus(&app, Method::PATCH, &url, &token)
        .header("upload-offset", "0")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(wrong_type).await,
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type".into()
        )
    );
    let unversioned = app
        .http
        .patch(format!("{}{url}", app.url))
        .bearer_auth(&token)
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(unversioned.status(), StatusCode::PRECONDITION_FAILED);
    let first = patch(
        &app,
        &url,
        &token,
        0,
        b"hello",
        Some(sha256_header(b"hello")),
    )
    .await;
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(first.headers(), "upload-offset"), "5");
    assert_eq!(header(first.headers(), "tus-resumable"), "1.0.0");
    assert!(first.headers().contains_key("upload-expires"));
    let again = patch(&app, &url, &token, 0, b"hello", None).await;
    assert_eq!(
        error_code(again).await,
        (StatusCode::CONFLICT, "offset-mismatch".into())
    );

    // A piece that does not match its checksum is discarded: the offset stays, and so do the
    // staged bytes.
    let corrupt = patch(&app, &url, &token, 5, b"world", Some(sha1_header(b"w0rld"))).await;
    assert_eq!(
        error_code(corrupt).await,
        (
            StatusCode::from_u16(460).unwrap(),
            "checksum-mismatch".into()
        )
    );
    assert_eq!(offset(&app, &url, &token).await, 5);
    let staged_file = data.path().join("blobs/.uploads").join(upload_id(&url));
    assert_eq!(std::fs::read(&staged_file).unwrap(), b"hello");
    let unknown = patch(&app, &url, &token, 5, b"world", Some("md5 AAAA".into())).await;
    assert_eq!(
        error_code(unknown).await,
        (StatusCode::BAD_REQUEST, "invalid-header".into())
    );
    let long = patch(&app, &url, &token, 5, b"world!", None).await;
    assert_eq!(
        error_code(long).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "too-large".into())
    );
    assert_eq!(offset(&app, &url, &token).await, 5);

    // Another user's upload is a 404, like a missing one.
    let bob = app.register("bob@example.com").await;
    let (status, _) = head(&app, &url, &bob).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let theirs = patch(&app, &url, &bob, 5, b"world", None).await;
    assert_eq!(
        error_code(theirs).await,
        (StatusCode::NOT_FOUND, "not-found".into())
    );
    let delete = tus(&app, Method::DELETE, &url, &bob).send().await.unwrap();
    assert_eq!(delete.status(), StatusCode::NOT_FOUND);
    let (status, _) = head(&app, "/v1/uploads/not-an-id", &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The last piece completes it: stored under the video's key, queued, nothing staged.
    let last = patch(&app, &url, &token, 5, b"world", Some(sha1_header(b"world"))).await;
    assert_eq!(last.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(last.headers(), "upload-offset"), "10");
    assert!(!last.headers().contains_key("upload-expires"));
    let video_now = app
        .wait_for(&token, &video, "leaving awaiting_upload", |v| {
            v["status"] != "awaiting_upload"
        })
        .await;
    assert_eq!(super::support::history(&video_now)[1], "queued");
    assert_eq!(
        video_now["history"][1]["reason"],
        "upload complete (10 bytes)"
    );
    let stored = data
        .path()
        .join("blobs")
        .join(user_id(&app, &token).await)
        .join(&video)
        .join("clip.mp4");
    assert_eq!(std::fs::read(stored).unwrap(), b"helloworld");
    assert_eq!(staged(data.path()), Vec::<String>::new());
    assert_eq!(
        offset(&app, &url, &token).await,
        10,
        "HEAD after completion"
    );

    // Creation with upload: the body is the first piece.
    let response = post()
        .header("upload-length", "8")
        .header("upload-metadata", metadata(&[("filename", "both.mp4")]))
        .header("content-type", "application/offset+octet-stream")
        .header("upload-checksum", sha1_header(b"1234"))
        .body("1234")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(header(response.headers(), "upload-offset"), "4");
    let both = header(response.headers(), "location");
    assert_eq!(offset(&app, &both, &token).await, 4);

    // Termination: the staged bytes and the waiting video go.
    let both_video = header(&head(&app, &both, &token).await.1, "vidsnap-video");
    assert_eq!(staged(data.path()), vec![upload_id(&both).to_owned()]);
    let terminated = tus(&app, Method::DELETE, &both, &token)
        .send()
        .await
        .unwrap();
    assert_eq!(terminated.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(terminated.headers(), "tus-resumable"), "1.0.0");
    let (status, _) = head(&app, &both, &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/v1/videos/{both_video}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(staged(data.path()), Vec::<String>::new());

    // Deleting the video of an upload in progress drops its staged bytes too.
    let (url, video) = create(&app, &token, 10, "dropped.mp4").await;
    assert_eq!(
        patch(&app, &url, &token, 0, b"abc", None).await.status(),
        StatusCode::NO_CONTENT
    );
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/videos/{video}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(staged(data.path()), Vec::<String>::new());
    let (status, _) = head(&app, &url, &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// While a piece streams into an upload, a second writer is refused at once with 423 (its own
/// upload's writes are not blocked, and HEAD still answers); a piece cut off without a
/// checksum keeps what arrived; after the first piece, the upload is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_writer_per_upload_and_never_a_global_lock() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(data.path(), &[]).await;
    let token = app.register("ana@example.com").await;
    let (url, _) = create(&app, &token, 100, "busy.mp4").await;
    let (other, _) = create(&app, &token, 10, "other.mp4").await;

    let start_slow = || async {
        let mut slow = RawPatch::start(&app, &url, &token, 0, 60).await;
        slow.send(&[b'a'; 20]).await;
        slow
    };
    let mut slow = start_slow().await;
    // A probe with a stale offset changes nothing whoever gets the lease: 409 until the slow
    // PATCH holds it, then 423. A probe holds the lease for an instant too, so the slow PATCH
    // may arrive then and be refused (423): like any tus client, it is sent again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let probe = patch(&app, &url, &token, 1, b"x", None).await;
        match error_code(probe).await {
            (StatusCode::LOCKED, code) => {
                assert_eq!(code, "upload-locked");
                break;
            }
            (StatusCode::CONFLICT, _) => {
                if slow.answered() {
                    slow = start_slow().await;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "the slow PATCH never held the upload"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let busy = patch(&app, &url, &token, 0, b"x", None).await;
    assert_eq!(
        busy.status(),
        StatusCode::LOCKED,
        "the right offset waits too"
    );
    let terminate = tus(&app, Method::DELETE, &url, &token)
        .send()
        .await
        .unwrap();
    assert_eq!(terminate.status(), StatusCode::LOCKED);
    // Another upload is not blocked, and the busy one can still be asked about.
    let elsewhere = patch(&app, &other, &token, 0, b"0123456789", None).await;
    assert_eq!(elsewhere.status(), StatusCode::NO_CONTENT);
    assert_eq!(offset(&app, &url, &token).await, 0);

    slow.send(&[b'b'; 40]).await;
    let (status, head_text) = slow.answer().await;
    assert_eq!(status, 204, "{head_text}");
    assert!(head_text.contains("upload-offset: 60"), "{head_text}");
    assert!(head_text.contains("tus-resumable: 1.0.0"), "{head_text}");
    assert_eq!(offset(&app, &url, &token).await, 60);

    // A client that dies mid-piece (no checksum): what arrived is kept, and the upload is free.
    let mut dying = RawPatch::start(&app, &url, &token, 60, 40).await;
    dying.send(&[b'c'; 15]).await;
    drop(dying);
    let deadline = Instant::now() + Duration::from_secs(30);
    while offset(&app, &url, &token).await != 75 {
        assert!(
            Instant::now() < deadline,
            "the interrupted piece was not recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rest = patch(&app, &url, &token, 75, &[b'd'; 25], None).await;
    assert_eq!(rest.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(rest.headers(), "upload-offset"), "100");
}

/// With a 2 s lifetime, the scheduler removes an idle upload (its staged bytes and its video)
/// and a video whose presigned upload never came, while an upload written to every 300 ms,
/// and one whose single slow piece is still streaming, survive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_uploads_expire_and_active_ones_survive() {
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("VIDSNAP_UPLOADS__TTL_SECONDS", "2".to_owned()),
        ("VIDSNAP_UPLOADS__LEASE_SECONDS", "3".to_owned()),
        ("VIDSNAP_SCHEDULER__CLEANUP_SECONDS", "0.2".to_owned()),
        ("VIDSNAP_API__UPLOAD_URL_SECONDS", "1".to_owned()),
        ("VIDSNAP_SCHEDULER__ABANDONED_GRACE_SECONDS", "0".to_owned()),
    ];
    let app = App::start(data.path(), &env).await;
    let token = app.register("ana@example.com").await;

    let (idle, idle_video) = create(&app, &token, 100, "idle.mp4").await;
    assert_eq!(
        patch(&app, &idle, &token, 0, b"some", None).await.status(),
        StatusCode::NO_CONTENT
    );
    let (active, active_video) = create(&app, &token, 100, "active.mp4").await;
    let (streaming, _) = create(&app, &token, 100, "streaming.mp4").await;
    let presigned = app.create(&token, json!({"file_name": "never.mp4"})).await;
    let never = presigned["video"]["id"].as_str().unwrap().to_owned();
    let mut slow = RawPatch::start(&app, &streaming, &token, 0, 10).await;
    slow.send(b"12345").await;

    // The active upload gets a byte every 300 ms until the idle one and the unused video are
    // gone (their lifetimes are 2 s and 1 s).
    let mut written = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = patch(&app, &active, &token, written, b"x", None).await;
        assert_eq!(
            response.status(),
            StatusCode::NO_CONTENT,
            "the active upload lives"
        );
        written += 1;
        let (idle_status, _) = head(&app, &idle, &token).await;
        let (never_status, _) = app
            .call(
                Method::GET,
                &format!("/v1/videos/{never}"),
                Some(&token),
                None,
            )
            .await;
        if idle_status == StatusCode::NOT_FOUND && never_status == StatusCode::NOT_FOUND {
            break;
        }
        // Expired but not yet swept: 410.
        assert!(
            [StatusCode::OK, StatusCode::GONE].contains(&idle_status),
            "{idle_status}"
        );
        assert!(
            Instant::now() < deadline,
            "the idle upload was never removed"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        written >= 6,
        "it took at least the 2 s lifetime: {written} writes"
    );
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/v1/videos/{idle_video}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the idle upload's video went with it"
    );
    assert_eq!(
        app.video(&token, &active_video).await["status"],
        "awaiting_upload"
    );
    assert_eq!(offset(&app, &active, &token).await, written);

    // The slow piece started before the idle upload expired and is still streaming: its
    // upload was kept (leased), and the piece completes.
    slow.send(b"67890").await;
    let (status, head_text) = slow.answer().await;
    assert_eq!(status, 204, "{head_text}");
    assert_eq!(offset(&app, &streaming, &token).await, 10);

    let mut left = staged(data.path());
    left.sort();
    let mut expected = vec![
        upload_id(&active).to_owned(),
        upload_id(&streaming).to_owned(),
    ];
    expected.sort();
    assert_eq!(left, expected, "the idle upload's bytes are gone");
    let metrics = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let removed = |what: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "vidsnap_scheduler_removed_total{{what=\"{what}\"}}"
                ))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert_eq!(removed("upload"), 1.0, "{metrics}");
    assert_eq!(removed("video"), 2.0, "{metrics}");
}

/// Seed 003's transport, wired into the real server: an upload session created with tus, its
/// bytes sent as AMQP chunks with a reply queue of the test's own; every chunk answered `ack`
/// only once stored, and the video processed like any other upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_chunks_fill_an_upload_that_is_processed() {
    use futures_util::StreamExt;
    use lapin::{
        BasicProperties,
        options::{
            BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions,
        },
        types::{AMQPValue, FieldTable, LongString, ShortString},
    };

    let url = super::cluster::service("VIDSNAP_TEST_AMQP_URL");
    let queue = format!("vidsnap-e2e-chunks-{}", uuid::Uuid::new_v4().simple());
    let data = tempfile::tempdir().unwrap();
    let app = App::start(
        data.path(),
        &[
            ("VIDSNAP_CHUNKS__URL", url.clone()),
            ("VIDSNAP_CHUNKS__QUEUE", queue.clone()),
        ],
    )
    .await;
    let token = app.register("ana@example.com").await;
    let bytes = std::fs::read(clip("short3.mp4")).unwrap();
    let (location, video) = create(&app, &token, bytes.len() as u64, "chunked.mp4").await;
    let session = upload_id(&location).to_owned();

    let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
        .await
        .expect("RabbitMQ answers: run scripts/test-services.sh");
    let channel = connection.create_channel().await.unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue.as_str().into(), durable, FieldTable::default())
        .await
        .unwrap();
    let private = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    let reply_queue = channel
        .queue_declare("".into(), private, FieldTable::default())
        .await
        .unwrap()
        .name()
        .clone();
    let mut replies = channel
        .basic_consume(
            reply_queue.clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    let mut start = 0u64;
    for (i, chunk) in bytes.chunks(16 * 1024).enumerate() {
        let mut headers = FieldTable::default();
        headers.insert("x-session-id".into(), text(&session));
        headers.insert("x-start-byte".into(), AMQPValue::LongLongInt(start as i64));
        headers.insert("x-size".into(), AMQPValue::LongLongInt(chunk.len() as i64));
        headers.insert("x-correlation-id".into(), text(&format!("chunk-{i}")));
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_reply_to(reply_queue.clone())
            .with_headers(headers);
        channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                chunk,
                properties,
            )
            .await
            .unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(30), replies.next())
            .await
            .expect("a reply within 30 s")
            .unwrap()
            .unwrap();
        let headers = reply.properties.headers().clone().unwrap_or_default();
        let status = headers.inner().get(&ShortString::from("x-status")).cloned();
        assert_eq!(status, Some(text("ack")), "chunk {i}: {headers:?}");
        start += chunk.len() as u64;
        assert_eq!(
            offset(&app, &location, &token).await,
            start,
            "acknowledged means stored"
        );
    }
    let done = app.wait_for_status(&token, &video, "succeeded").await;
    assert_eq!(done["outputs"]["frames"], 1, "{done}");
    assert!(app.stop().await.success());
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let _ = connection.close(200, "done".into()).await;
}
