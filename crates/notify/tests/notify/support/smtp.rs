//! A private aiosmtpd per test, writing to its own Maildir, killed on drop.

use std::{
    fs,
    io::Read,
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tempfile::TempDir;

pub struct SmtpServer {
    pub port: u16,
    child: Child,
    maildir: PathBuf,
    _dir: TempDir,
}

/// `.services/venv/bin/python`, made by `scripts/test-services.sh` (or `$VIDSNAP_SERVICES_DIR`).
fn venv_python() -> PathBuf {
    let services = std::env::var_os("VIDSNAP_SERVICES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(".services")
        });
    let python = services.join("venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: the SMTP tests need aiosmtpd from the project's virtualenv. \
         Run scripts/test-services.sh once, then run the tests again.",
        python.display()
    );
    python
}

impl SmtpServer {
    pub fn start() -> Self {
        let python = venv_python();
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("maildir");
        for sub in ["tmp", "new", "cur"] {
            fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        // aiosmtpd cannot listen on port 0: pick a free port, and pick again if another process
        // takes it before aiosmtpd binds.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = super::closed_port();
            let mut child = Command::new(&python)
                .args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(&maildir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", python.display()));
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self {
                        port,
                        child,
                        maildir,
                        _dir: dir,
                    };
                }
                if let Some(status) = child.try_wait().unwrap() {
                    let mut stderr = String::new();
                    if let Some(mut pipe) = child.stderr.take() {
                        let _ = pipe.read_to_string(&mut stderr);
                    }
                    assert!(
                        !stderr.contains("No module named"),
                        "aiosmtpd is not installed in the virtualenv: run scripts/test-services.sh \
                         ({stderr})"
                    );
                    last_error = format!("aiosmtpd exited with {status}: {stderr}");
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("aiosmtpd did not listen on 127.0.0.1:{port} within 30 s");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("aiosmtpd would not start: {last_error}");
    }

    /// The messages received so far, raw, oldest first.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<_> = fs::read_dir(self.maildir.join("new"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        files.into_iter().map(|f| fs::read(f).unwrap()).collect()
    }

    /// Waits for the `count`-th message to land in the Maildir and returns them all.
    pub async fn wait_for(&self, count: usize) -> Vec<Vec<u8>> {
        super::eventually(
            &format!("{count} message(s) in the Maildir"),
            Duration::from_secs(20),
            || async {
                let messages = self.messages();
                (messages.len() >= count).then_some(messages)
            },
        )
        .await
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A received message, decoded.
#[derive(Debug)]
pub struct Received {
    pub subject: String,
    pub message_id: String,
    pub from: String,
    pub to: String,
    /// The envelope recipients, as aiosmtpd recorded them.
    pub rcpt_to: String,
    pub content_type: String,
    pub text: String,
    pub html: String,
}

pub fn parse(raw: &[u8]) -> Received {
    let mail = mailparse::parse_mail(raw).unwrap();
    let header = |name: &str| {
        mail.headers
            .iter()
            .find(|h| h.get_key().eq_ignore_ascii_case(name))
            .map(|h| h.get_value())
            .unwrap_or_default()
    };
    let part = |mime: &str| {
        let found: Vec<_> = mail
            .subparts
            .iter()
            .filter(|p| p.ctype.mimetype == mime)
            .collect();
        assert_eq!(found.len(), 1, "exactly one {mime} part");
        found[0].get_body().unwrap()
    };
    Received {
        subject: header("Subject"),
        message_id: header("Message-ID"),
        from: header("From"),
        to: header("To"),
        rcpt_to: header("X-RcptTo"),
        content_type: mail.ctype.mimetype.clone(),
        text: part("text/plain"),
        html: part("text/html"),
    }
}
