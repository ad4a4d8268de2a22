//! Crash test: a child process writes with Immediate durability from several threads and prints
//! every acknowledged userId; the parent kills it with SIGKILL at random moments (some during
//! open), reopens, and checks that every acknowledged user is present, the views equal the fold
//! of the log, the chain verifies, and every token points at a committed event.
//!
//! The child is this test binary itself, running `crash_child` with `CHILD_DB` set.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use user_ledger::{Caller, Config, CreateUserRequest, Event, Ledger};

const CHILD_DB: &str = "USER_LEDGER_CRASH_CHILD_DB";
const WRITERS: usize = 4;

#[test]
#[ignore = "the crash tests' child process: does nothing unless they start it"]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_DB) else { return };
    let ledger = Ledger::open(Config::new(&path)).unwrap();
    let run = std::process::id();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let ledger = ledger.clone();
            thread::spawn(move || {
                for i in 0.. {
                    let token = format!("{run}-{w}-{i}");
                    let request = CreateUserRequest {
                        client_token: Some(token.clone()),
                        ..CreateUserRequest::new(format!("{token}@example.com"), "APP_USER")
                    };
                    let id = ledger.create_user(&Caller::System, &request).unwrap().user_id;
                    if i % 5 == 0 {
                        ledger.disable_user(&Caller::System, &id, Some(&format!("d{token}"))).unwrap();
                    }
                    // Printed only once acknowledged, i.e. on disk.
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {id}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
}

/// Runs the child until a random moment, kills it, and returns the userIds it acknowledged.
fn run_and_kill(path: &std::path::Path, kill_after: Duration) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash::crash_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_DB, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| line.strip_prefix("ack ").filter(|id| id.len() == 26).map(str::to_owned))
            .collect::<Vec<_>>()
    });
    thread::sleep(kill_after);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap()
}

/// Reopens the database after a kill and checks every invariant (the full verify, which reads the
/// whole log, only when `full`).
fn check(path: &std::path::Path, acknowledged: &[String], cycle: usize, full: bool) {
    let ledger =
        Ledger::open_path(path).unwrap_or_else(|e| panic!("cycle {cycle}: {e} ({})", path.display()));
    assert_eq!(ledger.views_status(), None, "cycle {cycle}");
    for id in acknowledged {
        assert!(ledger.get_user(&Caller::System, id).is_ok(), "cycle {cycle}: acknowledged user {id} lost");
    }
    // The Merkle tree is neither behind nor ahead of the log: its checkpoint is of the log's
    // size, and the last entry's proof leads to its root.
    let head = ledger.digest().unwrap().seq;
    let signed =
        user_ledger::Checkpoint::open(&ledger.checkpoint(None).unwrap(), &ledger.checkpoint_key()).unwrap();
    assert_eq!(signed.size, head, "cycle {cycle}");
    if head > 0 {
        assert!(ledger.inclusion_proof(head, None).unwrap().holds(&signed), "cycle {cycle}");
    }
    if full {
        let report = ledger.verify(None, &mut |_| {}).unwrap();
        assert_eq!(report.problem, None, "cycle {cycle}: views == fold(log) and the chain verify");
    }
    for (operation, token, record) in ledger.tokens().unwrap() {
        let Some(seq) = record.seq else { continue };
        let entry = ledger.log(seq).next().unwrap().unwrap().envelope;
        assert_eq!((entry.seq, entry.client_token.as_deref()), (seq, Some(token.as_str())), "cycle {cycle}");
        let kind = match entry.event {
            Event::Created { .. } => "CreateUser",
            Event::Disabled { .. } => "DisableUser",
            other => panic!("cycle {cycle}: token {token} points at {other:?}"),
        };
        assert_eq!(kind, operation, "cycle {cycle}");
    }
}

fn crash_cycles(cycles: usize, seed: u64, verify_every: usize) {
    // Kept if a check fails, for a post-mortem; removed at the end otherwise.
    let dir = tempfile::tempdir().unwrap().keep();
    let path = dir.join("db");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut acknowledged = Vec::new();
    let started = Instant::now();
    for cycle in 0..cycles {
        // Short delays kill it while it opens (and recovers); longer ones while it writes.
        let kill_after = Duration::from_millis(if rng.bool() { rng.u64(0..30) } else { rng.u64(30..250) });
        acknowledged.extend(run_and_kill(&path, kill_after));
        check(&path, &acknowledged, cycle, cycle % verify_every == 0 || cycle + 1 == cycles);
        if cycle == 0 {
            eprintln!("crash test database: {}", path.display());
        }
    }
    let events = Ledger::open_path(&path).unwrap().digest().unwrap().seq;
    eprintln!(
        "{cycles} kills in {:?}: {} acknowledged users, {events} events, all present and verified",
        started.elapsed(),
        acknowledged.len()
    );
    assert!(!acknowledged.is_empty(), "the child acknowledged writes");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn fifty_kills_lose_no_acknowledged_write() {
    crash_cycles(50, 0x5eed, 1);
}

#[test]
#[ignore = "long: cargo test --release --all-features --test all -- --ignored crash::a_thousand_kills"]
fn a_thousand_kills_lose_no_acknowledged_write() {
    // The full verify reads the whole (growing) log: every 10th kill and after the last.
    crash_cycles(1000, 0x1000, 10);
}
