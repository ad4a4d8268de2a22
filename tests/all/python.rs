//! The real AWS clients: boto3 1.43.116 / botocore 1.43.116 (the last with FinSpace) and aws-cli
//! 1.46.3, from PyPI into a venv this test creates, run with pytest against `user-ledger serve`
//! (tests/python: every operation's shape, typed errors, the paginator, clientTokens, 429
//! retries, authentication, user keys, aws-cli, and SIGKILL under load); and several `serve`
//! processes on one PostgreSQL under boto3 load (tests/python/test_hosts.py).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
#![cfg(all(feature = "server", feature = "postgres"))]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

const PACKAGES: [&str; 4] = ["boto3==1.43.116", "botocore==1.43.116", "awscli==1.46.3", "pytest==8.4.2"];

/// The venv's python, made once per test process (the tests here share it).
fn venv() -> &'static Path {
    static VENV: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    VENV.get_or_init(make_venv)
}

/// The venv, created once per target directory and reused while its pins are the same.
fn make_venv() -> PathBuf {
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

/// Runs pytest on `args` in tests/python with `env`, and asserts it passed with nothing skipped.
fn pytest(args: &[&str], env: &[(&str, String)]) {
    let python = venv();
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let run = Command::new(python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"])
        .args(args)
        .current_dir(&suite)
        .env("USER_LEDGER_BIN", env!("CARGO_BIN_EXE_user-ledger"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    println!("{report}");
    assert!(run.status.success(), "the pytest suite failed:\n{report}");
    assert!(report.contains(" passed"), "{report}");
    assert!(!report.contains("skipped"), "nothing may be skipped:\n{report}");
}

#[test]
fn boto3_and_aws_cli_work_against_serve_unchanged() {
    pytest(&["--ignore=test_hosts.py", "."], &[]);
}

#[test]
fn boto3_load_on_several_hosts_of_one_postgres_keeps_every_invariant() {
    // Each test of the file takes its ledgers (schemas) from this list, one per ledger.
    let locations: Vec<String> = (0..4).map(|_| common::postgres::fresh_location()).collect();
    pytest(&["test_hosts.py"], &[("USER_LEDGER_TEST_LOCATIONS", locations.join(" "))]);
}
