//! `vidsnap config`: the merged configuration, layered and redacted.

#![allow(clippy::unwrap_used)]

use serde_json::Value;

use crate::support::Sandbox;

#[test]
fn file_then_environment_then_flags_and_secrets_redacted() {
    let sandbox = Sandbox::new();
    let file = sandbox.root.path().join("vidsnap.toml");
    std::fs::write(
        &file,
        "[server]\nlisten = \"127.0.0.1:9000\"\ndata_dir = \"/srv/vidsnap\"\n\
         [auth]\nsecret = \"0123456789abcdef0123456789abcdef\"\n\
         [worker]\nconcurrency = 3\nmax_attempts = 7\n",
    )
    .unwrap();
    let output = sandbox
        .vidsnap()
        .current_dir(sandbox.root.path())
        .env("VIDSNAP_WORKER__CONCURRENCY", "4")
        .args(["config", "--data-dir", "/data"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let config: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        config["server"]["listen"], "127.0.0.1:9000",
        "from the file"
    );
    assert_eq!(config["worker"]["max_attempts"], 7, "from the file");
    assert_eq!(
        config["worker"]["concurrency"], 4,
        "the environment beats the file"
    );
    assert_eq!(
        config["server"]["data_dir"], "/data",
        "flags beat everything"
    );
    assert_eq!(config["auth"]["secret"], "<redacted>");
    assert_eq!(
        config["limits"]["max_width"], 7680,
        "defaults fill the rest"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("0123456789abcdef"));
}

#[test]
fn unknown_keys_and_bad_values_are_refused() {
    let sandbox = Sandbox::new();
    std::fs::write(
        sandbox.root.path().join("vidsnap.toml"),
        "[worker]\nconcurency = 3\n",
    )
    .unwrap();
    let output = sandbox
        .vidsnap()
        .current_dir(sandbox.root.path())
        .arg("config")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error[invalid-config]") && stderr.contains("concurency"),
        "{stderr}"
    );

    let output = sandbox
        .vidsnap()
        .current_dir(sandbox.root.path())
        .env("VIDSNAP_CONFIG", "/nonexistent/vidsnap.toml")
        .arg("config")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}
