//! Format 1 → format 2: the migration on open is lossless, and a crash at any moment of it —
//! at each of its steps, or at a random instant (SIGKILL) — leaves either the old database or
//! the new one, never a mix.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::raw::{dump, to_format_1, Dump};
use common::SYSTEM;
use tempfile::TempDir;
use user_ledger::{Config, CreateUserRequest, Digest, Durability, Ledger, OpenMode};

fn copy_of(template: &Path) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    common::copy_dir(template, &path);
    (dir, path)
}

const FORMAT_1_TREES: [&str; 3] = ["log", "meta", "users"];

#[test]
fn the_format_1_fixture_migrates_without_losing_a_byte() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format1-db");
    let (_original_dir, original) = copy_of(&fixture);
    let before = dump(&original);
    assert!(FORMAT_1_TREES.iter().all(|t| before.contains_key(*t)), "{:?}", before.keys());

    let (_dir, path) = copy_of(&fixture);
    let ledger = Ledger::open(Config::new(&path).mode(OpenMode::Existing)).unwrap();
    assert_eq!(ledger.verify(None, &mut |_| {}).unwrap().problem, None);
    drop(ledger);
    let after = dump(&path);
    assert_eq!(after.keys().collect::<Vec<_>>(), ["ledger"], "format 1's trees are gone");

    // Laid out the old way again, the migrated database is the fixture, record for record, and
    // the Merkle tree over its 5 entries that opening built (no node: it stores levels 4 and up,
    // the first at 16 entries), with the mark that says the ledger keeps it from now on and the
    // floor it keeps it from.
    to_format_1(&path);
    let mut after = dump(&path);
    assert_eq!(after.remove("merkle").map(|nodes| nodes.len()), None);
    let meta = after.get_mut("meta").unwrap();
    let floor = meta.iter().position(|(key, _)| key.as_slice() == b"merkle_floor").expect("the tree's floor");
    assert_eq!(meta.remove(floor).1, [4]);
    let mark = meta.iter().position(|(key, _)| key.as_slice() == b"merkle_tree").expect("the tree's mark");
    assert_eq!(meta.remove(mark).1, b"1");
    assert_eq!(after, before);
}

/// A format-1 database of `users` users (and a token each), and the digest of its log.
fn format_1_database(users: usize) -> (TempDir, PathBuf, Digest) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let config = Config::new(&path).durability(Durability::Periodic(Duration::from_secs(60)));
    let ledger = Ledger::open(config).unwrap();
    std::thread::scope(|s| {
        for w in 0..4 {
            let ledger = &ledger;
            s.spawn(move || {
                for i in (w..users).step_by(4) {
                    let request = CreateUserRequest {
                        client_token: Some(format!("t{i}")),
                        ..CreateUserRequest::new(format!("u{i}@example.com"), "APP_USER")
                    };
                    ledger.create_user(&SYSTEM, &request).unwrap();
                }
            });
        }
    });
    let digest = ledger.digest().unwrap();
    drop(ledger);
    to_format_1(&path);
    (dir, path, digest)
}

/// What a crash left: the untouched format-1 database, or a format-2 one that holds it all.
fn assert_old_or_new(path: &Path, old: &Dump, digest: Digest, users: u64) {
    let found = dump(path);
    let stamped = found.get("ledger").is_some_and(|records| {
        records.iter().any(|(k, v)| k.as_slice() == b"mformat" && v.as_slice() == [2])
    });
    if !stamped {
        // Not yet migrated: every format-1 tree exactly as it was (a partial copy may sit beside).
        let format_1: std::collections::BTreeMap<_, _> =
            found.into_iter().filter(|(name, _)| name != "ledger").collect();
        assert_eq!(&format_1, old, "the old database is untouched");
    }
    let ledger = Ledger::open(Config::new(path).mode(OpenMode::Existing)).unwrap();
    let report = ledger.verify(None, &mut |_| {}).unwrap();
    assert_eq!(report.problem, None);
    assert_eq!(report.head, digest);
    assert_eq!(ledger.stats().unwrap().users, users);
    assert_eq!(ledger.token_count().unwrap(), users);
    drop(ledger);
    assert_eq!(dump(path).keys().collect::<Vec<_>>(), ["ledger"], "and the next open finished it");
}

fn migrate_in_child(path: &Path, crash: Option<&str>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_user-ledger"));
    command.arg("--db").arg(path).arg("stats").stdout(Stdio::null()).stderr(Stdio::null());
    if let Some(crash) = crash {
        command.env("USER_LEDGER_MIGRATION_CRASH", crash);
    }
    command
}

const USERS: usize = 3_000;

#[test]
fn a_crash_at_each_step_of_the_migration_leaves_the_old_or_the_new_database() {
    let (_template_dir, template, digest) = format_1_database(USERS);
    let old = dump(&template);
    // 3 000 users: the log, users, emails and history trees each pass a 2 048-record chunk.
    let points =
        ["cleared:1", "chunk:1", "chunk:3", "copied:1", "stamped:1", "dropped:1", "dropped:9", "dropped:14"];
    for point in points {
        let (_dir, path) = copy_of(&template);
        let status = migrate_in_child(&path, Some(point)).status().unwrap();
        assert!(!status.success(), "{point}: the child was to abort, it exited {status}");
        assert_old_or_new(&path, &old, digest, USERS as u64);
    }
    // A crash during a second attempt, after a first one was cut short, is no different.
    let (_dir, path) = copy_of(&template);
    assert!(!migrate_in_child(&path, Some("chunk:2")).status().unwrap().success());
    assert!(!migrate_in_child(&path, Some("copied:1")).status().unwrap().success());
    assert_old_or_new(&path, &old, digest, USERS as u64);
}

#[test]
fn a_sigkill_at_random_moments_of_the_migration_leaves_the_old_or_the_new_database() {
    let (_template_dir, template, digest) = format_1_database(USERS);
    let old = dump(&template);
    // How long a whole migration (and the process around it) takes here.
    let (_dir, path) = copy_of(&template);
    let started = Instant::now();
    assert!(migrate_in_child(&path, None).status().unwrap().success());
    let whole = started.elapsed();
    let mut rng = fastrand::Rng::with_seed(12);
    for _ in 0..12 {
        let (_dir, path) = copy_of(&template);
        let mut child = migrate_in_child(&path, None).spawn().unwrap();
        std::thread::sleep(whole.mul_f64(rng.f64()));
        let _ = child.kill();
        child.wait().unwrap();
        assert_old_or_new(&path, &old, digest, USERS as u64);
    }
}

/// Given the format-1 fixture, when `migrate --check` and `serve --no-migrate` meet it, then
/// the check says it would lift format 1 (exit 3) and the host refuses naming that, and neither
/// writes a byte; `migrate` lifts it, after which the check finds nothing, until a root key is
/// given, which the ledger's clear secret would be wrapped under: said, and refused, the same way.
#[cfg(all(feature = "cli", feature = "server"))]
#[test]
fn migrate_check_says_what_opening_would_change_and_serve_no_migrate_refuses_it() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format1-db");
    let (_dir, path) = copy_of(&fixture);
    let before = dump(&path);
    let check = common::cli(&path, &["migrate", "--check"]);
    assert_eq!(check.status.code(), Some(3), "{}", String::from_utf8_lossy(&check.stderr));
    let said: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    let change = said["wouldChange"][0].as_str().unwrap();
    assert!(change.contains("lift format 1 to format 2"), "{said}");
    let refused = common::cli(&path, &["serve", "--no-migrate", "--listen", "127.0.0.1:0"]);
    let why = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{why}");
    assert!(why.contains("lift format 1 to format 2") && why.contains("--no-migrate"), "{why}");
    assert_eq!(dump(&path), before, "neither wrote a byte");

    let migrated = common::cli(&path, &["migrate"]);
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let check = common::cli(&path, &["migrate", "--check"]);
    assert_eq!(check.status.code(), Some(0), "{}", String::from_utf8_lossy(&check.stderr));
    let said: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(said["wouldChange"], serde_json::json!([]));

    let key = path.with_extension("root-key");
    assert!(common::cli(&path, &["new-root-key", "--out", key.to_str().unwrap()]).status.success());
    let keyed = |args: &[&str]| {
        let mut all = vec!["--root-key-file", key.to_str().unwrap()];
        all.extend_from_slice(args);
        common::cli(&path, &all)
    };
    let check = keyed(&["migrate", "--check"]);
    assert_eq!(check.status.code(), Some(3));
    let said: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert!(said["wouldChange"][0].as_str().unwrap().contains("wrap the ledger's clear secret"), "{said}");
    let refused = keyed(&["serve", "--no-migrate", "--listen", "127.0.0.1:0"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("wrap the ledger's clear secret"));
    assert!(keyed(&["migrate"]).status.success());
    assert_eq!(keyed(&["migrate", "--check"]).status.code(), Some(0));
}
