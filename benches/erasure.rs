//! What sealing personal data costs (issue 34): durable CreateUser and GetUser at 64 callers on
//! sled, a ledger that seals each new user's emailAddress, firstName and lastName under a person
//! key of its own (drawn, wrapped and stored outside the chain with the commit; opened on every
//! read) against one that writes them in the clear, as before; four of each in the order
//! A B B A A B B A in one run (`cargo bench --features whitebox --bench erasure`; a report, not a
//! timed test). Goal: CreateUser within 5%.
//!
//! `USER_LEDGER_BENCH_SECS` (default 3) is how long each figure runs.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

#[path = "common/rate.rs"]
mod rate;

#[path = "common/users.rs"]
mod users;

use rate::rate;
use user_ledger::{Caller, Config, CreateUserRequest, Ledger};

/// (CreateUser/s, GetUser/s) of a fresh ledger configured by `config`.
fn figures(config: Config, run: usize) -> (f64, f64) {
    let ledger = Ledger::open(config).unwrap();
    let creates = rate(64, |caller, i| {
        let request = CreateUserRequest {
            first_name: Some(format!("First{caller}")),
            last_name: Some(format!("Last{i}")),
            ..CreateUserRequest::new(format!("r{run}c{caller}n{i}@example.com"), "APP_USER")
        };
        ledger.create_user(&Caller::System, &request).unwrap();
    });
    let ids = users::first_user_ids(&ledger);
    let reads = rate(64, |caller, i| {
        let id = &ids[(caller + i as usize) % ids.len()];
        ledger.get_user(&Caller::System, id).unwrap();
    });
    (creates, reads)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (mut clear, mut sealed) = (vec![], vec![]);
    // A B B A A B B A: a drift over the run (the page cache, the disk) weighs on both alike.
    for run in 0..8 {
        let mut config = Config::new(dir.path().join(format!("run{run}")));
        if matches!(run % 4, 0 | 3) {
            config.seal_personal_data = false;
            clear.push(figures(config, run));
        } else {
            sealed.push(figures(config, run));
        }
    }
    let mean = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    for (what, f, goal) in [
        ("CreateUser, 64 callers", (|x: &(f64, f64)| x.0) as fn(&(f64, f64)) -> f64, "goal within 5%"),
        ("GetUser, 64 callers", |x| x.1, "no goal set"),
    ] {
        let (a, b) = (mean(&clear, f), mean(&sealed, f));
        println!("{what:<24} clear {a:>10.0}/s  sealed {b:>10.0}/s  {:.3}x  ({goal})", b / a);
    }
}
