//! Several processes writing one database: each request either succeeds or is told the database
//! is in use by another process; nothing in the directory is touched before the lock is held.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
#![cfg(feature = "cli")]

use crate::common;

use common::cli;
use std::thread;

#[test]
fn four_processes_writing_one_database_only_succeed_or_hear_it_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    const PROCESSES: usize = 4;
    const EACH: usize = 15;
    let runs: Vec<_> = (0..PROCESSES)
        .map(|p| {
            let db = db.clone();
            thread::spawn(move || {
                (0..EACH)
                    .map(|i| {
                        let email = format!("p{p}-{i}@example.com");
                        let out = cli(&db, &["create-user", "--email-address", &email, "--type", "APP_USER"]);
                        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                        match out.status.code() {
                            Some(0) => true,
                            Some(1) if stderr.contains("is in use by another process") => false,
                            other => panic!("{email}: exit {other:?}: {stderr}"),
                        }
                    })
                    .filter(|&ok| ok)
                    .count()
            })
        })
        .collect();
    let succeeded: usize = runs.into_iter().map(|r| r.join().unwrap()).sum();
    // The lock is waited for (5 s), so on any sane machine every request gets through.
    assert!(succeeded > 0);
    let verified = cli(&db, &["verify"]);
    assert_eq!(verified.status.code(), Some(0), "{}", String::from_utf8_lossy(&verified.stdout));
    let report: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(report["events"], succeeded as u64, "one event per acknowledged request");
    eprintln!("{succeeded} of {} requests succeeded", PROCESSES * EACH);
}
