//! Upgrading several hosts on one PostgreSQL the way docs/design.md's rule says (issues 33, 34):
//! a host of an older release (commit 1b97721, before the `checkpoints` table) made the ledger;
//! the new binary's `migrate --check` says what it changes, `serve --no-migrate` refuses until
//! `migrate` does it. This release raises the schema version (person keys), so the older host
//! stops first and refuses the migrated ledger by name; the new host reads what it wrote (in the
//! clear) beside what it writes (sealed), signs, and verify is clean.
//!
//! Long (it builds the older release, once per target directory): run it with
//! `cargo test --all-features --test all upgrade:: -- --ignored`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
#![cfg(all(feature = "postgres", feature = "server", feature = "cli"))]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::host::Process;
use common::postgres::{start_cluster, test_root_key_env};
use serde_json::json;
use user_ledger::server::{ADMIN, FINSPACE_DATA};
use user_ledger::Checkpoint;

/// The older release: the last commit before the `checkpoints` table.
const OLD: &str = "1b97721b21d3ac457fafbab1c48c9e787b095a32";

/// The older release's `user-ledger`, built from a worktree of this repository's history.
fn old_binary() -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("upgrade-{}", &OLD[..7]));
    let binary = root.join("target/debug/user-ledger");
    if binary.exists() {
        return binary;
    }
    let tree = root.join("src");
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(&root).unwrap();
    let repo = env!("CARGO_MANIFEST_DIR");
    let added = Command::new("git")
        .args(["-C", repo, "worktree", "add", "--detach", "--force"])
        .arg(&tree)
        .arg(OLD)
        .output()
        .expect("git");
    assert!(added.status.success(), "git worktree add: {}", String::from_utf8_lossy(&added.stderr));
    let built = Command::new(env!("CARGO"))
        .args(["build", "--locked", "--bin", "user-ledger"])
        .current_dir(&tree)
        .env("CARGO_TARGET_DIR", root.join("target"))
        .status()
        .unwrap();
    assert!(built.success(), "building {OLD} failed");
    let _ = Command::new("git").args(["-C", repo, "worktree", "remove", "--force"]).arg(&tree).status();
    binary
}

fn create(host: &Process, email: &str) -> String {
    let body = json!({ "emailAddress": email, "type": "APP_USER" }).to_string();
    let reply = host.root().send("POST", FINSPACE_DATA, "/user", body.as_bytes()).unwrap();
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()["userId"].as_str().unwrap().to_owned()
}

fn listed(host: &Process) -> usize {
    let reply = host.root().send("GET", FINSPACE_DATA, "/user?maxResults=100", b"").unwrap();
    assert_eq!(reply.status, 200);
    reply.json()["users"].as_array().unwrap().len()
}

#[test]
#[ignore = "builds an older release: cargo test --all-features --test all upgrade:: -- --ignored"]
fn an_older_host_stops_then_refuses_the_migrated_ledger_and_the_newer_reads_its_writes() {
    let old = old_binary();
    let server = start_cluster();
    let location = format!("{}?schema=upgrade", server.url);
    let db = Path::new(&location);
    let (name, key) = test_root_key_env();
    let env = [(name, key.as_str())];
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("root-credentials.json");
    let args = ["--root-credentials-file", credentials.to_str().unwrap()];

    let older = Process::start_binary(&old, db, &args, &env, &dir.path().join("old.log"));
    for n in 0..3 {
        create(&older, &format!("old-{n}@example.com"));
    }
    let new = |command: &[&str]| common::cli_with(db, command, &[(name, std::ffi::OsStr::new(&key))]);
    let check = new(&["migrate", "--check"]);
    assert_eq!(check.status.code(), Some(3), "{}", String::from_utf8_lossy(&check.stderr));
    assert!(String::from_utf8_lossy(&check.stdout).contains("make the checkpoints table"));
    let refused = new(&["serve", "--no-migrate", "--listen", "127.0.0.1:0"]);
    assert_eq!(refused.status.code(), Some(1));
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("make the checkpoints table") && why.contains("--no-migrate"), "{why}");
    // The schema version changes with this release (person keys): the older hosts stop first.
    assert!(older.terminate().success());
    let migrated = new(&["migrate"]);
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let old_again =
        Command::new(&old).arg("--db").arg(&location).arg("stats").env(name, &key).output().unwrap();
    assert!(!old_again.status.success(), "an older binary refuses the migrated ledger");
    let why = String::from_utf8_lossy(&old_again.stderr);
    assert!(why.contains("schema version 2; this build reads version 1"), "{why}");

    let mut newer_args = args.to_vec();
    newer_args.push("--no-migrate");
    let newer = Process::start_with(db, &newer_args, &env, &dir.path().join("new.log"));
    for n in 0..3 {
        create(&newer, &format!("new-{n}@example.com"));
    }
    assert_eq!(listed(&newer), 6, "the older host's users and the new ones");
    let reply = newer.root().send("GET", FINSPACE_DATA, "/user?maxResults=100", b"").unwrap();
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    let mut emails: Vec<&str> =
        body["users"].as_array().unwrap().iter().map(|u| u["emailAddress"].as_str().unwrap()).collect();
    emails.sort_unstable();
    assert_eq!(
        emails,
        [
            "new-0@example.com",
            "new-1@example.com",
            "new-2@example.com",
            "old-0@example.com",
            "old-1@example.com",
            "old-2@example.com"
        ]
    );
    let reply = newer.root().send("GET", ADMIN, "/ledger/checkpoint", b"").unwrap();
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let verifier = String::from_utf8(new(&["checkpoint-key"]).stdout).unwrap();
    let signed = Checkpoint::open(&String::from_utf8(reply.body).unwrap(), verifier.trim()).unwrap();
    assert_eq!(signed.size, 6);
    assert!(newer.terminate().success());
    let verified = new(&["verify"]);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stdout));
}
