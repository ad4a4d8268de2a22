//! Disk faults on real sled files: bit flips swept across the data file, flips in `conf`, in the
//! snapshot and in the acknowledgement mark, truncation at many points, deleted files. Each case
//! must end in one of two outcomes only: every acknowledged write present and `verify` clean, or
//! a clear error naming what is wrong. Never a panic, never fewer events with no error.
//!
//! Databases are written the ways users write them: by many CLI processes (each opens, writes,
//! closes: many snapshots), and by one long-lived process (everything since its start only in
//! sled's log segments). `cargo test --release --all-features --test all -- --ignored --nocapture faults::` runs the
//! long sweep.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
#![cfg(feature = "cli")]

use crate::common;

use common::cli;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use user_ledger::{Caller, Config, CreateUserRequest, Failure, Ledger, OpenMode, RootKey};

/// A database written once per test binary, copied for every case.
struct Template {
    _dir: tempfile::TempDir,
    path: PathBuf,
    /// The userIds acknowledged while writing it.
    acked: Vec<String>,
    /// The events acknowledged.
    events: u64,
}

/// Written by 40 CLI processes, 3 users each (one disabled with a clientToken).
fn by_many_processes() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut acked = Vec::new();
        for p in 0..40 {
            for u in 0..3 {
                let email = format!("p{p}u{u}@example.com");
                let out = cli(&path, &["create-user", "--email-address", &email, "--type", "APP_USER"]);
                assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
                let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                acked.push(body["userId"].as_str().unwrap().to_owned());
            }
            let id = acked.last().unwrap().clone();
            let token = format!("t{p}");
            assert_eq!(
                cli(&path, &["disable-user", "--user-id", &id, "--client-token", &token]).status.code(),
                Some(0)
            );
        }
        Template { _dir: dir, path, acked, events: 160 }
    })
}

const CHILD_DB: &str = "USER_LEDGER_FAULTS_CHILD_DB";
const LONG_LIVED_USERS: usize = 3000;

#[test]
#[ignore = "the long-lived writer of the fault tests: does nothing unless they start it"]
fn long_lived_child() {
    let Ok(path) = std::env::var(CHILD_DB) else { return };
    let ledger = Ledger::open(Config::new(&path)).unwrap();
    for i in 0..LONG_LIVED_USERS {
        let request = CreateUserRequest {
            client_token: Some(format!("c{i}")),
            ..CreateUserRequest::new(format!("long{i}@example.com"), "APP_USER")
        };
        println!("ack {}", ledger.create_user(&Caller::System, &request).unwrap().user_id);
    }
    // Ends as a long-lived host that stops without a clean close: no snapshot since its start.
    std::process::exit(0);
}

/// Written by one process that stays open for 3000 users.
fn by_one_long_lived_process() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["faults::long_lived_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_DB, &path)
            .output()
            .unwrap();
        let acked: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            // The first ack follows libtest's "test long_lived_child ... " on the same line.
            .filter_map(|line| line.rsplit_once("ack ").map(|(_, id)| id.to_owned()))
            .collect();
        assert_eq!(acked.len(), LONG_LIVED_USERS, "{}", String::from_utf8_lossy(&out.stderr));
        Template { _dir: dir, path, acked, events: LONG_LIVED_USERS as u64 }
    })
}

/// A fresh copy of `template` to damage.
fn copy_of(template: &Template) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    common::copy_dir(&template.path, &path);
    // The root key the CLI made beside the database goes with it.
    let key = template.path.with_file_name("db.key");
    if key.exists() {
        std::fs::copy(&key, dir.path().join("db.key")).unwrap();
    }
    (dir, path)
}

/// The config of the copy at `path`, with the root key beside it if the CLI made one.
fn config(path: &Path) -> Config {
    let config = Config::new(path).mode(OpenMode::Existing);
    match RootKey::from_file(&path.with_file_name("db.key")) {
        Ok(key) => config.root_key(key),
        Err(_) => config,
    }
}

/// How a damaged database ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Opened, verified clean, every acknowledged write present.
    Intact,
    /// A clear error (of this kind) naming what is wrong.
    Refused(Failure),
    /// verify found a problem.
    VerifyFailed,
}

/// Opens the damaged database at `path` and classifies what happened; panics (failing the test)
/// on a panic that escaped, on an error that names nothing, and on a silent loss.
fn outcome(template: &Template, path: &Path, case: &str) -> Outcome {
    let opened = std::panic::catch_unwind(|| Ledger::open(config(path)))
        .unwrap_or_else(|_| panic!("{case}: a panic escaped Ledger::open"));
    let ledger = match opened {
        Ok(ledger) => ledger,
        Err(e) => return refused(path, case, &e),
    };
    let report = match ledger.verify(None, &mut |_| {}) {
        Ok(report) => report,
        Err(e) => return refused(path, case, &e),
    };
    if let Some(problem) = report.problem {
        assert!(problem.seq > 0 || report.events == 0, "{case}: {problem}");
        return Outcome::VerifyFailed;
    }
    assert!(
        report.events >= template.events,
        "{case}: verify is clean with {} of {} events",
        report.events,
        template.events
    );
    for id in &template.acked {
        match ledger.get_user(&Caller::System, id) {
            Ok(user) => assert_eq!(&user.user_id, id),
            Err(e) if e.status() == 500 => return refused(path, case, &e),
            Err(e) => panic!("{case}: acknowledged user {id} is gone and nothing said so: {e}"),
        }
    }
    Outcome::Intact
}

fn refused(path: &Path, case: &str, e: &user_ledger::Error) -> Outcome {
    let message = e.to_string();
    if std::env::var_os("FAULTS_SHOW").is_some() {
        eprintln!("{case}: {message}");
    }
    assert_eq!(e.status(), 500, "{case}: {message}");
    let names = message.contains(&path.display().to_string())
        || message.contains("seq ")
        || message.contains("log entry")
        || message.contains('[');
    assert!(names, "{case}: the error names no file, tree, key or seq: {message}");
    Outcome::Refused(e.failure().unwrap_or(Failure::Other))
}

/// Flips bit `bit` of byte `at` in `file`.
fn flip(file: &Path, at: u64, bit: u8) {
    let mut bytes = std::fs::read(file).unwrap();
    bytes[at as usize] ^= 1 << bit;
    std::fs::write(file, bytes).unwrap();
}

/// Flips `count` random bits across `file_name` of each template, with a fixed seed.
fn sweep(file_name: &str, count: usize, seed: u64) -> Vec<(String, Outcome)> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut outcomes = Vec::new();
    for (name, template) in [("processes", by_many_processes()), ("long-lived", by_one_long_lived_process())]
    {
        let len = std::fs::metadata(template.path.join(file_name)).unwrap().len();
        for _ in 0..count {
            let (at, bit) = (rng.u64(..len), rng.u8(..8));
            let (_dir, path) = copy_of(template);
            flip(&path.join(file_name), at, bit);
            let case = format!("{name}: {file_name} byte {at} bit {bit} (seed {seed})");
            let result = outcome(template, &path, &case);
            outcomes.push((case, result));
        }
    }
    outcomes
}

fn summary(outcomes: &[(String, Outcome)]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for (_, o) in outcomes {
        *counts.entry(format!("{o:?}")).or_insert(0) += 1;
    }
    format!("{counts:?}")
}

#[test]
fn bit_flips_across_the_data_file_lose_nothing_silently() {
    let outcomes = sweep("db", 40, 9);
    eprintln!("data file flips: {}", summary(&outcomes));
}

#[test]
#[ignore = "long sweep: cargo test --release --all-features --test all -- --ignored --nocapture faults::"]
fn a_long_sweep_of_bit_flips_across_the_data_file() {
    let outcomes = sweep("db", 1000, 2026);
    eprintln!("data file flips: {}", summary(&outcomes));
}

/// The newest finished snapshot of the database at `path`.
fn newest_snapshot(path: &Path) -> PathBuf {
    let mut snapshots: Vec<_> = std::fs::read_dir(path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("snap."))
        .collect();
    snapshots.sort();
    snapshots.pop().expect("sled wrote a snapshot")
}

/// Opens a damaged copy and returns the error, which must be of kind `failure` and name `what`.
fn refused_naming(template: &Template, path: &Path, case: &str, failure: Failure, what: &str) {
    let err = match Ledger::open(config(path)) {
        Ok(_) => panic!("{case}: opened"),
        Err(e) => e,
    };
    assert_eq!(err.failure(), Some(failure), "{case}: {err}");
    assert!(err.to_string().contains(what), "{case}: the error does not name {what}: {err}");
    assert_eq!(outcome(template, path, case), Outcome::Refused(failure), "{case}");
}

#[test]
fn every_flipped_bit_of_conf_is_refused_naming_conf() {
    let template = by_many_processes();
    let len = std::fs::metadata(template.path.join("conf")).unwrap().len();
    for at in 0..len {
        for bit in [0, 7] {
            let (_dir, path) = copy_of(template);
            flip(&path.join("conf"), at, bit);
            let conf = path.join("conf").display().to_string();
            refused_naming(template, &path, &format!("conf byte {at} bit {bit}"), Failure::Corrupt, &conf);
        }
    }
}

#[test]
fn flipped_bits_in_the_snapshot_are_refused_naming_it() {
    // The long-lived process's database has no snapshot: sled writes them only on open.
    for template in [by_many_processes()] {
        let snapshot = newest_snapshot(&template.path);
        let len = std::fs::metadata(&snapshot).unwrap().len();
        let name = snapshot.file_name().unwrap().to_owned();
        // A snapshot is its body, an 8-byte length and a crc32 of the body.
        for at in [0, 1, len / 3, len / 2, len - 13, len - 4, len - 1] {
            let (_dir, path) = copy_of(template);
            flip(&path.join(&name), at, 3);
            let shown = path.join(&name).display().to_string();
            refused_naming(template, &path, &format!("{name:?} byte {at}"), Failure::Corrupt, &shown);
        }
        // sled reads the length only for compressed snapshots (ours are not): a flip there
        // changes nothing it reads.
        let (_dir, path) = copy_of(template);
        flip(&path.join(&name), len - 12, 3);
        assert_eq!(outcome(template, &path, "snapshot length field"), Outcome::Intact);
    }
}

#[test]
fn a_truncated_data_file_never_opens_as_a_new_or_shorter_ledger() {
    for template in [by_many_processes(), by_one_long_lived_process()] {
        let len = std::fs::metadata(template.path.join("db")).unwrap().len();
        let mut points: Vec<u64> = (1..10).map(|k| len * k / 10).collect();
        points.extend([0, 4096, len - 4096, len - 100, len - 1]);
        let mut outcomes = Vec::new();
        for at in points {
            let (_dir, path) = copy_of(template);
            std::fs::OpenOptions::new().write(true).open(path.join("db")).unwrap().set_len(at).unwrap();
            let case = format!("data file of {len} bytes truncated to {at}");
            let result = outcome(template, &path, &case);
            if at <= 4096 {
                // sled would open these as a brand-new, empty database.
                assert!(matches!(result, Outcome::Refused(_)), "{case}: {result:?}");
            }
            outcomes.push((case, result));
        }
        eprintln!("truncations: {}", summary(&outcomes));
    }
}

#[test]
fn deleted_files_are_refused_naming_them_or_lose_nothing() {
    let template = by_many_processes();
    let (_dir, path) = copy_of(template);
    std::fs::remove_file(path.join("db")).unwrap();
    refused_naming(template, &path, "data file deleted", Failure::Missing, "sled's data file");
    assert!(!path.join("db").exists(), "opening must not make a new data file");

    let (_dir, path) = copy_of(template);
    std::fs::remove_file(path.join("ledger.mark")).unwrap();
    refused_naming(template, &path, "mark deleted", Failure::Missing, "ledger.mark is missing");

    // sled writes a missing conf anew with the same settings: nothing is lost.
    let (_dir, path) = copy_of(template);
    std::fs::remove_file(path.join("conf")).unwrap();
    assert_eq!(outcome(template, &path, "conf deleted"), Outcome::Intact);

    // Without its snapshots sled replays what its segments hold; whatever it makes of that, the
    // ending is one of the two allowed.
    let (_dir, path) = copy_of(template);
    while let Some(snapshot) = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("snap."))
    {
        std::fs::remove_file(snapshot).unwrap();
    }
    let result = outcome(template, &path, "snapshots deleted");
    eprintln!("snapshots deleted: {result:?}");

    // Everything but the mark: an emptied directory never opens as a new ledger.
    let (_dir, path) = copy_of(template);
    for entry in std::fs::read_dir(&path).unwrap() {
        let entry = entry.unwrap().path();
        if entry.file_name().unwrap() != "ledger.mark" {
            let _ = std::fs::remove_dir_all(&entry).or_else(|_| std::fs::remove_file(&entry));
        }
    }
    refused_naming(template, &path, "all but the mark deleted", Failure::Missing, "sled's data file");
}

#[test]
fn a_damaged_mark_is_refused_naming_it() {
    let template = by_many_processes();
    let (_dir, path) = copy_of(template);
    // Slot 0 holds the mark written when the database was created; later writes moved on.
    flip(&path.join("ledger.mark"), 20, 1);
    refused_naming(
        template,
        &path,
        "mark slot 0",
        Failure::Corrupt,
        "ledger.mark is damaged: slot 0 fails its checksum",
    );
    let (_dir, path) = copy_of(template);
    std::fs::write(path.join("ledger.mark"), b"short").unwrap();
    refused_naming(template, &path, "mark truncated", Failure::Corrupt, "holds 5 bytes, not 4096");
}

#[test]
fn the_cli_never_exits_101_on_a_damaged_database() {
    // Flip bits until one makes sled panic on open, then check the CLI turns it into JSON.
    let template = by_one_long_lived_process();
    let len = std::fs::metadata(template.path.join("db")).unwrap().len();
    let mut rng = fastrand::Rng::with_seed(7);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let (_dir, path) = copy_of(template);
        flip(&path.join("db"), rng.u64(..len), rng.u8(..8));
        let out = cli(&path, &["verify"]);
        let code = out.status.code();
        assert!(matches!(code, Some(0 | 1 | 3)), "exit {code:?}: {}", String::from_utf8_lossy(&out.stderr));
        if code == Some(1) {
            let body: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap_or_else(|_| {
                panic!("stderr is not one JSON error: {}", String::from_utf8_lossy(&out.stderr))
            });
            assert_eq!(body["__type"], "InternalServerException");
            seen.insert(body["message"].as_str().unwrap().contains("the storage panicked"));
        }
        if seen.contains(&true) {
            return;
        }
    }
    panic!("no flip made sled panic; the test proves nothing (errors seen: {seen:?})");
}
