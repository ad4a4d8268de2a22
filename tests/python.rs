//! The real AWS clients: boto3 1.43.116 / botocore 1.43.116 (the last with FinSpace) and aws-cli
//! 1.46.3, from PyPI into a venv this test creates, run with pytest against `user-ledger serve`
//! (tests/python: every operation's shape, typed errors, the paginator, clientTokens, 429
//! retries, authentication, user keys, aws-cli, and SIGKILL under load).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
#![cfg(feature = "server")]

use std::path::{Path, PathBuf};
use std::process::Command;

const PACKAGES: [&str; 4] = ["boto3==1.43.116", "botocore==1.43.116", "awscli==1.46.3", "pytest==8.4.2"];

/// The venv, created once per target directory and reused while its pins are the same.
fn venv() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("py-venv");
    let python = venv.join("bin/python");
    let stamp = venv.join("pins.txt");
    let pins = PACKAGES.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(pins.as_str()) && python.exists() {
        return python;
    }
    let _ = std::fs::remove_dir_all(&venv);
    let created =
        Command::new("python3").args(["-m", "venv"]).arg(&venv).status().expect("python3 must be installed");
    assert!(created.success(), "python3 -m venv failed");
    let installed = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
        .args(PACKAGES)
        .status()
        .unwrap();
    assert!(installed.success(), "pip install {PACKAGES:?} failed");
    std::fs::write(&stamp, pins).unwrap();
    python
}

#[test]
fn boto3_and_aws_cli_work_against_serve_unchanged() {
    let python = venv();
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let run = Command::new(python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"])
        .arg(&suite)
        .current_dir(&suite)
        .env("USER_LEDGER_BIN", env!("CARGO_BIN_EXE_user-ledger"))
        .output()
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    println!("{report}");
    assert!(run.status.success(), "the pytest suite failed:\n{report}");
    assert!(report.contains(" passed"), "{report}");
    assert!(!report.contains("skipped"), "nothing may be skipped:\n{report}");
}
