//! Starting the service, talking to it, and the real peers it talks to (SMTP, webhooks).

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// Settings that make tests fast: cheap password hashing, short leases and backoffs.
const FAST: &[(&str, &str)] = &[
    ("VIDSNAP_API__PASSWORD_COST__MEMORY_KIB", "1024"),
    ("VIDSNAP_API__PASSWORD_COST__ITERATIONS", "1"),
    ("VIDSNAP_WORKER__LEASE_SECONDS", "3"),
    ("VIDSNAP_WORKER__BACKOFF__BASE_SECONDS", "0.2"),
    ("VIDSNAP_WORKER__BACKOFF__MAX_SECONDS", "1"),
    ("VIDSNAP_WORKER__SHUTDOWN_GRACE_SECONDS", "1"),
    ("VIDSNAP_NOTIFICATIONS__BACKOFF_BASE_SECONDS", "0.2"),
    ("VIDSNAP_NOTIFICATIONS__BACKOFF_CAP_SECONDS", "1"),
    ("VIDSNAP_NOTIFICATIONS__POLL_INTERVAL_SECONDS", "0.2"),
    ("VIDSNAP_LOG", "warn"),
];

/// A running `vidsnap serve`. Dropping it kills the process.
pub struct App {
    child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    pub http: reqwest::Client,
}

impl App {
    /// Starts the service on a free port with `data_dir` and extra environment.
    pub async fn start(data_dir: &Path, env: &[(&str, String)]) -> App {
        Self::start_command(Command::new(env!("CARGO_BIN_EXE_vidsnap")), data_dir, env).await
    }

    /// Starts the service with at most `fds` open files (soft and hard limit), as `ulimit -n`.
    pub async fn start_with_file_limit(data_dir: &Path, env: &[(&str, String)], fds: u32) -> App {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            &format!("ulimit -n {fds} && exec \"$0\" \"$@\""),
            env!("CARGO_BIN_EXE_vidsnap"),
        ]);
        Self::start_command(command, data_dir, env).await
    }

    async fn start_command(mut command: Command, data_dir: &Path, env: &[(&str, String)]) -> App {
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        // No stray configuration: no ./vidsnap.toml where it runs, no VIDSNAP_CONFIG.
        command.current_dir(data_dir).env_remove("VIDSNAP_CONFIG");
        for (key, value) in FAST {
            command.env(key, value);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start vidsnap serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("vidsnap serve did not start within 30 s")
            .unwrap()
            .expect("vidsnap serve exited before listening");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("the start-up line names the URL")
            .to_owned();
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        App {
            child,
            url,
            data_dir: data_dir.to_path_buf(),
            http: reqwest::Client::new(),
        }
    }

    /// SIGKILL: no chance to clean up, as when a machine dies.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }

    /// Waits (up to a minute) for the process to exit on its own.
    pub async fn exited(mut self) -> std::process::ExitStatus {
        tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("the server did not exit within a minute")
            .unwrap()
    }

    /// SIGTERM and wait for a graceful exit.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("graceful shutdown within 60 s")
            .unwrap()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.url)
        };
        let mut request = self.http.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).unwrap());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let bytes = response.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Registers a user and returns its access token.
    pub async fn register(&self, email: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/auth/register",
                None,
                Some(json!({"email": email, "password": "correct horse battery"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Creates a video (`POST /v1/videos` with `body`) and returns the 201 answer.
    pub async fn create(&self, token: &str, body: Value) -> Value {
        let (status, created) = self
            .call(Method::POST, "/v1/videos", Some(token), Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created
    }

    /// Creates a video and uploads `file` through its presigned URL; returns the video id.
    pub async fn upload(&self, token: &str, file: &Path, name: &str, every: &str) -> String {
        let created = self
            .create(
                token,
                json!({"file_name": name, "options": {"every": every}}),
            )
            .await;
        let url = created["upload"]["url"].as_str().unwrap();
        let response = self
            .http
            .put(url)
            .body(std::fs::read(file).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        created["video"]["id"].as_str().unwrap().to_owned()
    }

    pub async fn video(&self, token: &str, id: &str) -> Value {
        let (status, body) = self
            .call(Method::GET, &format!("/v1/videos/{id}"), Some(token), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Polls the video until `done` holds (deadline 60 s).
    pub async fn wait_for(
        &self,
        token: &str,
        id: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let video = self.video(token, id).await;
            if done(&video) {
                return video;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {video}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls a listing until `done` holds (deadline 60 s).
    pub async fn wait_for_log(
        &self,
        token: &str,
        path: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self.call(Method::GET, path, Some(token), None).await;
            if status == StatusCode::OK
                && body.as_array().is_some_and(|a| !a.is_empty())
                && done(&body)
            {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting on {path}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_for_status(&self, token: &str, id: &str, status: &str) -> Value {
        self.wait_for(token, id, status, |v| v["status"] == status)
            .await
    }
}

/// Statuses in a video's history, in order.
pub fn history(video: &Value) -> Vec<String> {
    video["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap().to_owned())
        .collect()
}

/// Where `scripts/test-services.sh` keeps the test services: `.services/` at the repository's
/// root, or `$VIDSNAP_SERVICES_DIR`.
pub fn services_dir() -> PathBuf {
    std::env::var_os("VIDSNAP_SERVICES_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.services"),
        PathBuf::from,
    )
}

/// `.services/env` (written by scripts/test-services.sh) or the environment: a test service's
/// address. Panics, saying how to start the services, when it is missing.
pub fn service(name: &str) -> String {
    if let Ok(value) = std::env::var(name)
        && !value.is_empty()
    {
        return value;
    }
    let env = std::fs::read_to_string(services_dir().join("env")).unwrap_or_default();
    env.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}=")))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            panic!("{name} is not set: run scripts/test-services.sh (make test does) first")
        })
}

/// A real SMTP server (aiosmtpd) writing to a Maildir, on a free port. Killed on drop.
pub struct Smtp {
    child: std::process::Child,
    pub port: u16,
    pub maildir: tempfile::TempDir,
}

impl Smtp {
    pub async fn start() -> Smtp {
        let python = services_dir().join("venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/test-services.sh (make test does) to install aiosmtpd",
            python.display()
        );
        let maildir = tempfile::tempdir().unwrap();
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir(maildir.path().join(sub)).unwrap();
        }
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = std::process::Command::new(&python)
                .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(maildir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Smtp {
                        child,
                        port,
                        maildir,
                    };
                }
                if child.try_wait().unwrap().is_some() {
                    break; // the port was taken meanwhile: try another
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("aiosmtpd did not start");
    }

    /// Environment for `vidsnap serve` to send here.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("VIDSNAP_SMTP__HOST", "127.0.0.1".into()),
            ("VIDSNAP_SMTP__PORT", self.port.to_string()),
            ("VIDSNAP_SMTP__TLS", "none".into()),
        ]
    }

    /// Every message received so far, raw.
    pub fn messages(&self) -> Vec<String> {
        std::fs::read_dir(self.maildir.path().join("new"))
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect()
    }

    /// Waits until at least `n` messages arrived (deadline 30 s) and returns all.
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} e-mails, got {}",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request a webhook receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub signature: String,
    pub event: String,
    pub delivery: String,
    pub body: Vec<u8>,
}

/// A webhook receiver on a free port that answers 500 to the first `failures` requests.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub async fn start(failures: usize) -> Receiver {
        use axum::{body::Bytes, http::HeaderMap, routing::post};
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let log = received.clone();
        let app = axum::Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| {
                let log = log.clone();
                async move {
                    let header = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let mut log = log.lock().unwrap();
                    log.push(Received {
                        signature: header("vidsnap-signature"),
                        event: header("vidsnap-event"),
                        delivery: header("vidsnap-delivery"),
                        body: body.to_vec(),
                    });
                    if log.len() <= failures {
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        axum::http::StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, received }
    }

    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.received.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} webhook posts, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
