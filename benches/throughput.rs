//! Throughput report: the ledger against baselines measured in the same run, on the same disk.
//!
//! `cargo bench --bench throughput` (full: 3 s per figure, 1M events for the scale figures);
//! `cargo bench --bench throughput -- --quick` (a smoke run; also run by `tests/all/bench_quick.rs`).
//! A report, not a timed test: it prints a table and asserts nothing about speed.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

#[path = "common/users.rs"]
mod users;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use user_ledger::backend::sled::layout;
use user_ledger::core::idempotency::{self, Response, TokenRecord};
use user_ledger::views::ViewTree;
use user_ledger::{core::codec, Caller, Config, CreateUserRequest, Durability, Envelope, Event, Ledger};
use user_ledger::{ApiAccess, User, UserStatus, UserType};

/// How long and how big.
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    /// How long each throughput figure runs.
    pub seconds: f64,
    /// Events in the scale figures (rebuild, verify, open, disk).
    pub events: u64,
    /// Lookups in the GetUser figure.
    pub reads: u64,
}

impl Mode {
    /// The full report.
    pub const FULL: Mode = Mode { seconds: 3.0, events: 1_000_000, reads: 200_000 };
    /// A smoke run that keeps the bench compiling and working.
    pub const QUICK: Mode = Mode { seconds: 0.2, events: 2_000, reads: 2_000 };
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured.
    pub what: String,
    /// The figure.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
    /// The ratio to its baseline, if it has one.
    pub ratio: Option<f64>,
    /// The goal for that ratio, e.g. `≥ 4x`.
    pub goal: &'static str,
}

/// Runs `op` from `callers` threads for `seconds`; returns operations per second.
fn ops_per_second(callers: usize, seconds: f64, op: impl Fn(usize, u64) + Sync) -> f64 {
    let done = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    std::thread::scope(|s| {
        for caller in 0..callers {
            let (op, done) = (&op, &done);
            s.spawn(move || {
                let mut i = 0;
                while Instant::now() < deadline {
                    op(caller, i);
                    i += 1;
                }
                done.fetch_add(i, Ordering::Relaxed);
            });
        }
    });
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// The bytes one CreateUser writes, as the ledger encodes them: log entry, user row, token record.
fn sample_bytes(i: u64) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let user = User {
        user_id: ulid::Ulid::generate().to_string(),
        status: UserStatus::Enabled,
        first_name: None,
        last_name: None,
        email_address: format!("user{i}@example.com"),
        user_type: UserType::AppUser,
        api_access: Some(ApiAccess::Disabled),
        api_access_principal_arn: None,
        create_time: 1_767_225_600_000,
        last_enabled_time: Some(1_767_225_600_000),
        last_disabled_time: None,
        last_modified_time: 1_767_225_600_000,
        last_login_time: None,
    };
    let envelope = Envelope {
        seq: i + 1,
        event_id: ulid::Ulid::generate(),
        time_ms: user.create_time,
        caller: Caller::System,
        client_token: Some(format!("token-{i}")),
        event: Event::Enabled { user_id: user.user_id.clone() },
    };
    let token = TokenRecord {
        fingerprint: [7; 32],
        response: Response::UserId(user.user_id.clone()),
        seq: Some(i + 1),
        expires_ms: 0,
    };
    (codec::seal(&envelope, [0; 32]).0, codec::encode(&user), codec::encode(&token))
}

/// Baseline: raw sled, one 3-tree transaction + flush + fdatasync per operation.
fn raw_sled(dir: &Path, callers: usize, seconds: f64) -> f64 {
    let db =
        user_ledger::backend::sled::files::open_sled(sled::Config::new().path(dir.join("raw-sled"))).unwrap();
    let trees =
        [db.open_tree("log").unwrap(), db.open_tree("users").unwrap(), db.open_tree("tokens").unwrap()];
    let data = std::fs::File::open(dir.join("raw-sled").join("db")).unwrap();
    let seq = AtomicU64::new(0);
    ops_per_second(callers, seconds, |_, _| {
        let n = seq.fetch_add(1, Ordering::Relaxed);
        let (entry, user, token) = sample_bytes(n);
        trees[..]
            .transaction(|tx| {
                tx[0].insert(&n.to_be_bytes(), entry.as_slice())?;
                tx[1].insert(format!("u{n}").as_bytes(), user.as_slice())?;
                tx[2].insert(
                    idempotency::TokenKey::new("CreateUser", &format!("t{n}")).to_bytes(),
                    token.as_slice(),
                )?;
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
            })
            .unwrap();
        db.flush().unwrap();
        data.sync_data().unwrap();
    })
}

use sled::Transactional;

/// Baseline: SQLite in WAL mode, the same event append + view upsert + token insert per transaction.
fn sqlite(dir: &Path, name: &str, synchronous: &str, callers: usize, seconds: f64) -> f64 {
    let path = dir.join(format!("{name}.sqlite"));
    let open = || {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.busy_timeout(Duration::from_secs(60)).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.pragma_update(None, "synchronous", synchronous).unwrap();
        c
    };
    open()
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, bytes BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, bytes BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS tokens (key BLOB PRIMARY KEY, bytes BLOB NOT NULL);",
        )
        .unwrap();
    let connections: Vec<_> = (0..callers).map(|_| std::sync::Mutex::new(open())).collect();
    let seq = AtomicU64::new(0);
    ops_per_second(callers, seconds, |caller, _| {
        let n = seq.fetch_add(1, Ordering::Relaxed);
        let (entry, user, token) = sample_bytes(n);
        let mut c = connections[caller].lock().unwrap();
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
        tx.execute("INSERT INTO log (bytes) VALUES (?1)", [&entry]).unwrap();
        tx.execute("INSERT OR REPLACE INTO users (id, bytes) VALUES (?1, ?2)", (format!("u{n}"), &user))
            .unwrap();
        tx.execute("INSERT INTO tokens (key, bytes) VALUES (?1, ?2)", (format!("t{n}").into_bytes(), &token))
            .unwrap();
        tx.commit().unwrap();
    })
}

/// The ledger: CreateUser (with a clientToken) from `callers` threads.
fn ledger_creates(dir: &Path, name: &str, durability: Durability, callers: usize, seconds: f64) -> f64 {
    creates(Config::new(dir.join(name)).durability(durability), callers, seconds)
}

/// CreateUser (with a clientToken) from `callers` threads on the ledger `config` opens.
fn creates(config: Config, callers: usize, seconds: f64) -> f64 {
    let ledger = Ledger::open(config).unwrap();
    let seq = AtomicU64::new(0);
    ops_per_second(callers, seconds, |_, _| {
        let n = seq.fetch_add(1, Ordering::Relaxed);
        let request = CreateUserRequest {
            client_token: Some(format!("t{n}")),
            ..CreateUserRequest::new(format!("user{n}@example.com"), "APP_USER")
        };
        ledger.create_user(&Caller::System, &request).unwrap();
    })
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Measures everything; returns the rows of the report.
pub fn run(mode: Mode) -> Vec<Row> {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = mode.seconds;
    let mut rows = Vec::new();
    let mut row = |what: String, value: f64, unit, ratio: Option<f64>, goal| {
        eprintln!("{what}: {value:.1} {unit}");
        rows.push(Row { what, value, unit, ratio, goal });
    };

    for callers in [1, 8, 64] {
        let ours = ledger_creates(d, &format!("durable-{callers}"), Durability::Immediate, callers, s);
        // What the acknowledgement mark (its write and fdatasync after every batch) costs.
        let mut unmarked = Config::new(d.join(format!("unmarked-{callers}")));
        unmarked.record_mark = false;
        let unmarked = creates(unmarked, callers, s);
        let sled_base = raw_sled(&d.join(format!("sled-{callers}")), callers, s);
        let sqlite_full = sqlite(d, &format!("full-{callers}"), "FULL", callers, s);
        let goal = |g| if callers == 64 { g } else { "" };
        row(format!("durable CreateUser, {callers} callers"), ours, "ops/s", None, "");
        let what = format!("  vs the same without the acknowledgement mark ({unmarked:.0} ops/s)");
        row(what, ours, "ops/s", Some(ours / unmarked), "");
        let what = format!("  vs raw sled txn+flush+fdatasync per op ({sled_base:.0} ops/s)");
        row(what, ours, "ops/s", Some(ours / sled_base), goal("≥ 8x"));
        let what = format!("  vs SQLite WAL synchronous=FULL ({sqlite_full:.0} ops/s)");
        row(what, ours, "ops/s", Some(ours / sqlite_full), goal("≥ 4x"));
    }
    let periodic = Durability::Periodic(Duration::from_millis(50));
    let ours = ledger_creates(d, "periodic-64", periodic, 64, s);
    let sqlite_normal = sqlite(d, "normal-64", "NORMAL", 64, s);
    let what =
        format!("Periodic CreateUser, 64 callers, vs SQLite synchronous=NORMAL ({sqlite_normal:.0} ops/s)");
    row(what, ours, "ops/s", Some(ours / sqlite_normal), "≥ 1.5x");

    // Scale: a ledger of mode.events events (creates, with every fourth request an update).
    let path = d.join("scale");
    let ledger = Ledger::open(Config::new(&path).durability(periodic)).unwrap();
    let seq = AtomicU64::new(0);
    let build = Instant::now();
    std::thread::scope(|sc| {
        for _ in 0..64 {
            sc.spawn(|| loop {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                if n >= mode.events {
                    break;
                }
                ledger
                    .create_user(
                        &Caller::System,
                        &CreateUserRequest::new(format!("user{n}@example.com"), "APP_USER"),
                    )
                    .unwrap();
            });
        }
    });
    ledger.sync().unwrap();
    let rate = mode.events as f64 / build.elapsed().as_secs_f64();
    row(format!("build {} users (Periodic, 64 callers)", mode.events), rate, "ops/s", None, "");

    // GetUser against raw sled get + decode of the same bytes, in the same tree: the ledger is
    // closed while raw sled reads its `users` tree, then reopened. Both read the same ids, warm.
    let ids = users::first_user_ids(&ledger);
    drop(ledger);
    let raw = {
        let db = user_ledger::backend::sled::files::open_sled(sled::Config::new().path(&path)).unwrap();
        let tree = db.open_tree(layout::TREE).unwrap();
        let read = |i: u64| {
            let key = layout::view_key(ViewTree::Users, ids[i as usize % ids.len()].as_bytes());
            let bytes = tree.get(key).unwrap().unwrap();
            std::hint::black_box(codec::decode::<User>("users", &bytes).unwrap());
        };
        (0..mode.reads).for_each(read);
        let started = Instant::now();
        (0..mode.reads).for_each(read);
        mode.reads as f64 / started.elapsed().as_secs_f64()
    };
    let ledger = Ledger::open(Config::new(&path).durability(periodic)).unwrap();
    let read = |i: u64| {
        std::hint::black_box(ledger.get_user(&Caller::System, &ids[i as usize % ids.len()]).unwrap());
    };
    (0..mode.reads).for_each(read);
    let started = Instant::now();
    (0..mode.reads).for_each(read);
    let ours = mode.reads as f64 / started.elapsed().as_secs_f64();
    row(
        format!("GetUser vs raw sled get + decode, same tree ({raw:.0} ops/s)"),
        ours,
        "ops/s",
        Some(ours / raw),
        "≥ 0.75x",
    );

    let started = Instant::now();
    assert_eq!(ledger.verify(None, &mut |_| {}).unwrap().problem, None);
    let rate = mode.events as f64 / started.elapsed().as_secs_f64();
    row(format!("verify {} events", mode.events), rate, "events/s", None, "≥ 1M events/s");
    let started = Instant::now();
    ledger.rebuild_views(&mut |_| {}).unwrap();
    let rate = mode.events as f64 / started.elapsed().as_secs_f64();
    row(format!("rebuild {} events", mode.events), rate, "events/s", None, "≥ 200k events/s");

    let stats = ledger.stats().unwrap();
    let logical: u64 =
        ledger.raw_log().map(|e| e.map(|(k, v)| (k.len() + v.len()) as u64).unwrap()).sum::<u64>()
            + ledger.view_rows().unwrap().iter().map(|((_, k), v)| (k.len() + v.len()) as u64).sum::<u64>();
    let users = stats.users as f64;
    row("bytes on disk per user".into(), stats.bytes_on_disk as f64 / users, "B", None, "");
    row("logical bytes per user (log + views)".into(), logical as f64 / users, "B", None, "");
    let ratio = stats.bytes_on_disk as f64 / logical as f64;
    row("disk / logical".into(), ratio, "x", Some(ratio), "≤ 3x");
    drop(ledger);
    let started = Instant::now();
    let reopened = Ledger::open_path(&path).unwrap();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    row(format!("open a ledger of {} users", stats.users), ms, "ms", None, "≤ 1000 ms");
    drop(reopened);
    row("peak RSS of the bench process".into(), peak_rss_mib(), "MiB", None, "");
    rows
}

/// Prints the rows as a Markdown table.
pub fn print(rows: &[Row]) {
    println!("| figure | value | ratio to baseline | goal |");
    println!("|---|---:|---:|---:|");
    for r in rows {
        let ratio = r.ratio.map(|x| format!("{x:.2}x")).unwrap_or_default();
        let value = if r.value < 10.0 { format!("{:.2}", r.value) } else { format!("{:.0}", r.value) };
        println!("| {} | {value} {} | {ratio} | {} |", r.what, r.unit, r.goal);
    }
}

#[allow(dead_code)] // when included by tests/all/bench_quick.rs
fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    print(&run(if quick { Mode::QUICK } else { Mode::FULL }));
}
