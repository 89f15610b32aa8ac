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

use super::support::{App, services_dir};
use crate::support::clip;

mod chunks;
mod clients;
mod expiry;
mod protocol;

// --- the official clients ----------------------------------------------------------------------

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
