//! A full disk under `user-ledger serve`, on a real filesystem that fills (a small tmpfs the test
//! mounts, which needs root, as CI has): writes fail clearly and never hang, what was not
//! acknowledged never shows up after a restart, SIGTERM still ends the host, and once space is
//! back a reopen plus `rebuild-views` makes a ledger that verifies and holds every acknowledged write.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
#![cfg(feature = "server")]

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::disk::{available_bytes, Tmpfs};
use common::host::{unsafe_kill, Process};
use serde_json::json;
use user_ledger::server::client::Client;
use user_ledger::server::FINSPACE;

/// The largest tags the model allows: 50 of 128 + 256 characters, so each event is ~20 KB.
fn big_tags(n: usize) -> BTreeMap<String, String> {
    (0..50).map(|i| (format!("k{i:02}{n:06}{}", "k".repeat(119)), "v".repeat(256))).collect()
}

fn create_kx_user(client: &Client, n: usize) -> (u16, Option<String>, String) {
    let body = json!({ "userName": format!("u{n:05}"), "iamRole": "arn:aws:iam::123456789012:role/r", "tags": big_tags(n) });
    let started = Instant::now();
    let reply =
        client.send("POST", FINSPACE, "/kx/environments/env1/users", body.to_string().as_bytes()).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a write took {:?}: it must never hang",
        started.elapsed()
    );
    let message = reply.json()["message"].as_str().unwrap_or("").to_owned();
    (reply.status, reply.error_type().map(str::to_owned), message)
}

fn cli(db: &Path, args: &[&str]) -> std::process::Output {
    common::cli(db, args)
}

/// Every kdb user the CLI lists in env1, in order.
fn listed_names(db: &Path) -> Vec<String> {
    let mut names = vec![];
    let mut token: Option<String> = None;
    loop {
        let mut args = vec!["list-kx-users", "--environment-id", "env1", "--max-results", "100"];
        if let Some(token) = &token {
            args.extend(["--next-token", token.as_str()]);
        }
        let out = cli(db, &args);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let page: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        names.extend(
            page["users"].as_array().unwrap().iter().map(|u| u["userName"].as_str().unwrap().to_owned()),
        );
        match page["nextToken"].as_str() {
            Some(next) => token = Some(next.to_owned()),
            None => return names,
        }
    }
}

/// Creates 10 kdb users, fills the filesystem at `fs` up to `leave` bytes free with a file (whose
/// path it returns), then creates more until a write is refused; returns the users acknowledged
/// (by number) and the refusal (status, type, message).
fn fill_until_refused(
    root: &Client,
    fs: &Path,
    leave: u64,
) -> (PathBuf, Vec<usize>, (u16, Option<String>, String)) {
    let mut acknowledged = vec![];
    for n in 0..10 {
        assert_eq!(create_kx_user(root, n).0, 200);
        acknowledged.push(n);
    }
    let filler = fs.join("filler");
    let free = available_bytes(fs);
    std::fs::write(&filler, vec![0u8; usize::try_from(free - leave).unwrap()]).unwrap();
    for n in 10..5000 {
        match create_kx_user(root, n) {
            (200, _, _) => acknowledged.push(n),
            refused => return (filler, acknowledged, refused),
        }
    }
    panic!("no write was refused");
}

/// With the default reserve the engine never meets the full disk: writes are refused before it
/// is touched, reads go on, and writes work again as soon as there is space, with no restart.
#[test]
fn below_the_reserve_writes_are_refused_untouched_and_resume_when_space_returns() {
    let fs = Tmpfs::mount(48);
    let db = fs.path().join("db");
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("serve.log");
    let host = Process::start_logging_to(&db, &["--disk-reserve-mib", "16"], &log);
    let root = host.root();
    // Leave 20 MiB: past 4 MiB more, the reserve of 16 is reached.
    let (filler, mut acknowledged, (status, kind, message)) = fill_until_refused(&root, fs.path(), 20 << 20);
    assert_eq!((status, kind.as_deref()), (500, Some("InternalServerException")), "{message}");
    assert!(message.contains("below the ledger's reserve of 16384 KiB"), "{message}");
    assert!(message.contains("nothing was written"), "{message}");
    assert!(available_bytes(fs.path()) > 8 * 1024 * 1024, "the engine never came near the full disk");
    // Reads go on.
    let last = acknowledged.last().unwrap();
    let reply = root.send("GET", FINSPACE, &format!("/kx/environments/env1/users/u{last:05}"), b"").unwrap();
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    // Space returns: writes work again at once.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(create_kx_user(&root, 9000).0, 200);
    acknowledged.push(9000);
    let exit = host.terminate();
    assert_eq!(exit.code(), Some(0));
    let verified = cli(&db, &["verify"]);
    assert_eq!(verified.status.code(), Some(0), "{}", String::from_utf8_lossy(&verified.stdout));
    let expected: Vec<String> = acknowledged.iter().map(|n| format!("u{n:05}")).collect();
    assert_eq!(listed_names(&db), expected);
}

/// With the reserve off (or when something else fills the disk faster), the full disk is met
/// inside sled's write: that write and every later one fail at once naming why, nothing hangs,
/// SIGTERM ends the host, and the restarted host rebuilds the views from the log by itself,
/// after which the ledger verifies, holds exactly what was acknowledged, and takes writes again.
#[test]
fn a_full_disk_inside_the_engine_stops_writes_never_hangs_and_the_next_open_repairs_it() {
    let fs = Tmpfs::mount(24);
    let db = fs.path().join("db");
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("serve.log");
    let host = Process::start_logging_to(&db, &["--disk-reserve-mib", "0"], &log);
    let root = host.root();
    // Leave 2 MiB: a few dozen more events fit, then the disk is full inside sled's write.
    let (filler, acknowledged, (status, kind, message)) = fill_until_refused(&root, fs.path(), 2 << 20);
    eprintln!("first failure after {} users: {status} {kind:?} {message}", acknowledged.len());
    assert_eq!((status, kind.as_deref()), (500, Some("InternalServerException")), "{message}");
    assert!(
        message.contains("No space left on device") || message.contains("space"),
        "names the cause: {message}"
    );
    assert!(message.contains("stopped writing"), "says writes stopped: {message}");

    // Every later write is refused at once, naming why, before and after space returns.
    let (status, _, message) = create_kx_user(&root, 5000);
    assert_eq!(status, 500);
    assert!(message.contains("refuses writes after a failed commit or sync"), "{message}");
    std::fs::remove_file(&filler).unwrap();
    let (status, _, message) = create_kx_user(&root, 5001);
    assert_eq!(status, 500, "{message}");
    assert!(message.contains("reopen it"), "says how to recover: {message}");

    // A read answers at once: what it found, or sled 0.34's stored I/O error (it answers that
    // to every read that reaches its log after a failed write, until a reopen).
    let last = acknowledged.last().unwrap();
    let started = Instant::now();
    let reply = root.send("GET", FINSPACE, &format!("/kx/environments/env1/users/u{last:05}"), b"").unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let read = reply.json();
    assert!(
        reply.status == 200
            || (reply.status == 500 && read["message"].as_str().unwrap().contains("No space left")),
        "{read}"
    );

    // SIGTERM ends the host within its grace period.
    let started = Instant::now();
    let exit = host.terminate();
    assert!(started.elapsed() < Duration::from_secs(25), "SIGTERM took {:?}", started.elapsed());
    assert!(exit.code().is_some(), "{exit:?}");

    // Restarted: the host repairs itself (the views rebuilt from the log, said once on stderr
    // and in stats), then serves exactly what was acknowledged and takes writes again.
    let host = Process::start_logging_to(&db, &["--disk-reserve-mib", "0"], &log);
    let said = host.log();
    let warning =
        format!("the last write before this open failed (a write after seq {} failed", acknowledged.len());
    assert_eq!(said.matches(&warning).count(), 1, "{said}");
    assert_eq!(create_kx_user(&host.root(), 6000).0, 200);
    unsafe_kill(host.child.id() as i32, "TERM");
    drop(host);
    let verified = cli(&db, &["verify"]);
    assert_eq!(verified.status.code(), Some(0), "{}", String::from_utf8_lossy(&verified.stdout));
    let mut expected: Vec<String> = acknowledged.iter().map(|n| format!("u{n:05}")).collect();
    expected.push("u06000".into());
    assert_eq!(listed_names(&db), expected, "every acknowledged user, and nothing that was refused");
    let stats = cli(&db, &["stats"]);
    assert!(!String::from_utf8_lossy(&stats.stdout).contains("repairedAtOpen"), "repaired once, not again");

    // And it takes writes again.
    let host = Process::start_logging_to(&db, &["--disk-reserve-mib", "4"], &log);
    assert_eq!(create_kx_user(&host.root(), 7000).0, 200);
}

#[test]
fn a_copy_below_the_reserve_is_refused_before_sled_is_touched() {
    let source_dir = tempfile::tempdir().unwrap();
    let source = user_ledger::Ledger::open_path(source_dir.path().join("db")).unwrap();
    for i in 0..5 {
        let request = user_ledger::CreateUserRequest::new(format!("u{i}@example.com"), "APP_USER");
        source.create_user(&user_ledger::Caller::System, &request).unwrap();
    }
    let fs = Tmpfs::mount(16);
    let to = user_ledger::Config::new(fs.path().join("copy")).disk_reserve(64 << 20);
    let refused = source.copy_to(to, user_ledger::CopyOptions::new(), &mut |_| {}).unwrap_err();
    assert_eq!(refused.failure(), Some(user_ledger::Failure::DiskFull), "{refused}");
    assert!(refused.to_string().contains("below the ledger's reserve"), "{refused}");
}
