//! Audit at scale: builds ledgers of 1M and 3M users once (cached under `target/scale-ledgers`,
//! named by a fingerprint of their size, this generator and the storage format), then runs each
//! long operation in a child process of its own and reports its rate and the child's peak RSS.
//!
//! `cargo bench --bench scale` (sizes from `USER_LEDGER_SCALE_USERS`, default `1000000,3000000`;
//! `USER_LEDGER_SCALE_ONLY=verify,verify-chain` runs only those operations). With the `postgres`
//! feature, `copy-postgres` copies the ledger into a PostgreSQL cluster the bench starts.
//! A report, not a timed test: it prints a table and asserts only that every operation succeeds.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use user_ledger::backend::sled::{files, layout, FORMAT_VERSION};
use user_ledger::backend::Tip;
use user_ledger::{
    core::codec, Caller, Config, CreateUserRequest, Digest, Durability, Ledger, OpenMode, Subject,
};

/// Bump when the ledgers this bench builds change, so cached ones are built anew.
const GENERATOR: u32 = 1;
/// Entries appended after the digest the incremental verify starts from.
const TAIL: u64 = 10_000;

#[cfg(feature = "postgres")]
#[path = "../tests/all/common/postgres.rs"]
#[allow(dead_code)]
mod postgres;

/// The operations measured, in the order they run ("wipe-views" prepares the last one).
const FIGURES: [&str; 12] = [
    "proofs",
    "copy-sled",
    "copy-postgres",
    "verify",
    "verify-chain",
    "verify-since",
    "log",
    "history",
    "list-users",
    "rebuild-healthy",
    "wipe-views",
    "rebuild-empty",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        let kept: Digest = args[4].parse().unwrap();
        let (opened, done) = child(&args[2], Path::new(&args[3]), kept);
        println!("{done} {}", opened.elapsed().as_secs_f64());
        return;
    }
    let sizes = std::env::var("USER_LEDGER_SCALE_USERS").unwrap_or_else(|_| "1000000,3000000".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/scale-ledgers");
    println!("| users | operation | items | seconds (after open) | items/s | whole process | peak RSS |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for users in sizes.split(',').map(|n| n.trim().parse::<u64>().unwrap()) {
        let (path, kept) = cached(&root, users);
        let only = std::env::var("USER_LEDGER_SCALE_ONLY").ok();
        let chosen = |figure: &&str| only.as_deref().is_none_or(|only| only.split(',').any(|o| o == *figure));
        for figure in FIGURES.into_iter().filter(chosen) {
            let to = match figure {
                "copy-sled" => path.with_file_name("copy").to_str().unwrap().to_owned(),
                #[cfg(feature = "postgres")]
                "copy-postgres" => postgres::fresh_location(),
                #[cfg(not(feature = "postgres"))]
                "copy-postgres" => continue,
                _ => String::new(),
            };
            let _ = std::fs::remove_dir_all(path.with_file_name("copy"));
            let (items, took, whole, rss_kib) = run_child(figure, &path, kept, &to);
            if figure == "wipe-views" {
                continue;
            }
            let rate = items as f64 / took.as_secs_f64();
            println!(
                "| {users} | {figure} | {items} | {:.2} | {rate:.0} | {:.2} s | {:.0} MiB |",
                took.as_secs_f64(),
                whole.as_secs_f64(),
                rss_kib as f64 / 1024.0
            );
        }
    }
}

/// The cached ledger of `users` users and the digest kept [`TAIL`] entries before its end,
/// built if it is not there yet.
fn cached(root: &Path, users: u64) -> (PathBuf, Digest) {
    let dir = root.join(format!("users-{users}-g{GENERATOR}-f{FORMAT_VERSION}"));
    let ready = dir.join("ready");
    let path = dir.join("db");
    if let Ok(kept) = std::fs::read_to_string(&ready) {
        return (path, kept.trim().parse().unwrap());
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let started = Instant::now();
    let config = Config::new(&path).durability(Durability::Periodic(Duration::from_millis(200)));
    let ledger = Ledger::open(config).unwrap();
    create_users(&ledger, 0, users - TAIL);
    let kept = ledger.digest().unwrap();
    create_users(&ledger, users - TAIL, users);
    ledger.sync().unwrap();
    drop(ledger);
    eprintln!("built {users} users in {:.0} s", started.elapsed().as_secs_f64());
    std::fs::write(&ready, kept.to_string()).unwrap();
    (path, kept)
}

/// Creates users numbered `from..to` from 64 threads.
fn create_users(ledger: &Ledger, from: u64, to: u64) {
    std::thread::scope(|s| {
        for t in 0..64 {
            s.spawn(move || {
                for i in (from + t..to).step_by(64) {
                    let request = CreateUserRequest::new(format!("user{i}@example.com"), "APP_USER");
                    ledger.create_user(&Caller::System, &request).unwrap();
                }
            });
        }
    });
}

/// Runs `figure` in a child process (a copy's to `copy_to`); returns what it counted, how long the operation took after
/// the ledger was open, how long the whole process took, and its peak RSS in KiB (from `wait4`).
fn run_child(figure: &str, path: &Path, kept: Digest, copy_to: &str) -> (u64, Duration, Duration, i64) {
    let started = Instant::now();
    // Reaped by wait4 below, which also reports its peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--child", figure])
        .arg(path)
        .arg(kept.to_string())
        .env("USER_LEDGER_SCALE_COPY_TO", copy_to)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value, and wait4 only writes into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet waited for; the pointers are to live locals.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let took = started.elapsed();
    assert_eq!(waited, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{figure} failed: {status}");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.unwrap(), &mut out).unwrap();
    let (items, op) = out.trim().split_once(' ').unwrap();
    (items.parse().unwrap(), Duration::from_secs_f64(op.parse().unwrap()), took, usage.ru_maxrss)
}

/// The child: runs one operation on the ledger at `path`; returns when the ledger was open, and
/// how many items the operation handled.
fn child(figure: &str, path: &Path, kept: Digest) -> (Instant, u64) {
    if figure == "wipe-views" {
        return (Instant::now(), wipe_views(path));
    }
    let mut config = Config::new(path).mode(OpenMode::Existing);
    if let Ok(mib) = std::env::var("USER_LEDGER_SCALE_CACHE_MIB") {
        config = config.cache_capacity(mib.parse::<u64>().unwrap() << 20);
    }
    if let Ok(mib) = std::env::var("USER_LEDGER_SCALE_FOLD_MIB") {
        config = config.fold_memory(mib.parse::<usize>().unwrap() << 20);
    }
    let ledger = Ledger::open(config).unwrap();
    let opened = Instant::now();
    let sound = |report: user_ledger::Report| {
        assert_eq!(report.problem, None);
        report.events
    };
    let items = match figure {
        "verify" => sound(ledger.verify(None, &mut |_| {}).unwrap()),
        "verify-chain" => sound(ledger.verify_chain(None, &mut |_| {}).unwrap()),
        "verify-since" => sound(ledger.verify_since(kept, &mut |_| {}).unwrap()),
        "log" => {
            let mut entries = 0;
            for entry in ledger.log(1) {
                entry.unwrap();
                entries += 1;
            }
            entries
        }
        "history" => {
            let first = ledger.list_users(&Caller::System, Some(1), None).unwrap().users[0].user_id.clone();
            ledger.history(Subject::User(&first)).unwrap().len() as u64
        }
        "list-users" => {
            let (mut users, mut next) = (0, None::<String>);
            loop {
                let page = ledger.list_users(&Caller::System, Some(100), next.as_deref()).unwrap();
                users += page.users.len() as u64;
                match page.next_token {
                    Some(token) => next = Some(token),
                    None => break users,
                }
            }
        }
        "rebuild-healthy" | "rebuild-empty" => ledger.rebuild_views(&mut |_| {}).unwrap(),
        "proofs" => {
            // Inclusion and consistency proofs of the whole tree, at seqs spread over the log.
            let size = ledger.digest().unwrap().seq;
            let bound = 64 - (size - 1).leading_zeros() as usize;
            let mut x = 0x2545_f491_4f6c_dd1d_u64;
            for _ in 0..5_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let seq = 1 + x % size;
                assert!(ledger.inclusion_proof(seq, None).unwrap().path.len() <= bound);
                assert!(ledger.consistency_proof(seq, None).unwrap().path.len() <= 2 * bound);
            }
            10_000
        }
        "copy-sled" | "copy-postgres" => {
            let mut to = Config::new(std::env::var("USER_LEDGER_SCALE_COPY_TO").unwrap());
            if let Ok(mib) = std::env::var("USER_LEDGER_SCALE_CACHE_MIB") {
                to = to.cache_capacity(mib.parse::<u64>().unwrap() << 20);
            }
            ledger.copy_to(to, user_ledger::CopyOptions::new(), &mut |_| {}).unwrap().events
        }
        other => panic!("no figure {other}"),
    };
    (opened, items)
}

/// Removes every view row and marks the views as folded up to seq 0: what a rebuild from
/// nothing starts from. Returns how many rows it removed.
fn wipe_views(path: &Path) -> u64 {
    let db = files::open_sled(sled::Config::new().path(path)).unwrap();
    let tree = db.open_tree(layout::TREE).unwrap();
    let mut removed = 0;
    loop {
        let keys: Vec<_> = tree.scan_prefix(b"v").keys().take(100_000).map(|k| k.unwrap()).collect();
        if keys.is_empty() {
            break;
        }
        let mut batch = sled::Batch::default();
        for key in &keys {
            batch.remove(key);
        }
        tree.apply_batch(batch).unwrap();
        removed += keys.len() as u64;
    }
    let tip_key = layout::meta_key(layout::TIP);
    let tip: Tip = codec::decode("tip", &tree.get(&tip_key).unwrap().unwrap()).unwrap();
    tree.insert(tip_key, codec::encode(&Tip { views_seq: 0, ..tip })).unwrap();
    db.flush().unwrap();
    removed
}
