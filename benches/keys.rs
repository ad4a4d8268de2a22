//! What a root key costs (issue 30): CreateUser (durable) and GetUser at 64 callers on sled, a
//! ledger whose secret is wrapped under a root key against one whose secret is in the clear,
//! alternated A, B, A, B … (four of each) in one run (`cargo bench --bench keys`; a report, not a timed test).
//! The keyring is read once at open and every request derives from the same 32 bytes as before,
//! so the goal is no measurable cost: within 3%.
//!
//! `USER_LEDGER_BENCH_SECS` (default 3) is how long each figure runs.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use user_ledger::{Caller, Config, CreateUserRequest, Ledger, RootKey};

fn seconds() -> Duration {
    let secs = std::env::var("USER_LEDGER_BENCH_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

/// Operations per second of 64 threads running `op(caller, i)` for the bench's time.
fn rate(op: impl Fn(usize, u64) + Sync) -> f64 {
    let (done, stop) = (AtomicU64::new(0), AtomicBool::new(false));
    let started = Instant::now();
    std::thread::scope(|s| {
        for caller in 0..64 {
            let (done, stop, op) = (&done, &stop, &op);
            s.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    op(caller, i);
                    i += 1;
                }
                done.fetch_add(i, Ordering::Relaxed);
            });
        }
        std::thread::sleep(seconds());
        stop.store(true, Ordering::Relaxed);
    });
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// (CreateUser/s, GetUser/s) of a fresh ledger configured by `config`.
fn figures(config: Config, run: usize) -> (f64, f64) {
    let ledger = Ledger::open(config).unwrap();
    let creates = rate(|caller, i| {
        let email = format!("r{run}c{caller}n{i}@example.com");
        ledger.create_user(&Caller::System, &CreateUserRequest::new(email, "APP_USER")).unwrap();
    });
    let ids: Vec<String> = ledger
        .list_users(&Caller::System, Some(100), None)
        .unwrap()
        .users
        .into_iter()
        .map(|u| u.user_id)
        .collect();
    let reads = rate(|caller, i| {
        let id = &ids[(caller + i as usize) % ids.len()];
        ledger.get_user(&Caller::System, id).unwrap();
    });
    (creates, reads)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let root = RootKey::generate().unwrap();
    let (mut clear, mut wrapped) = (vec![], vec![]);
    for run in 0..8 {
        let path = dir.path().join(format!("run{run}"));
        if run % 2 == 0 {
            clear.push(figures(Config::new(&path), run));
        } else {
            wrapped.push(figures(Config::new(&path).root_key(root.clone()), run));
        }
    }
    let mean = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    for (what, f) in [
        ("CreateUser, 64 callers", (|x: &(f64, f64)| x.0) as fn(&(f64, f64)) -> f64),
        ("GetUser, 64 callers", |x| x.1),
    ] {
        let (a, b) = (mean(&clear, f), mean(&wrapped, f));
        println!("{what:<28} clear {a:>10.0}/s  root key {b:>10.0}/s  {:.3}x  (goal within 3%)", b / a);
    }
}
