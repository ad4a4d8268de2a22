//! What a root key and rotation cost (issue 30): CreateUser (durable), GetUser, and the lookup
//! of an access key's secret that the host makes for every signed request, at 64 callers on
//! sled; a ledger whose data keys are wrapped under a root key and rotated three times (its keys
//! issued under the newest) against one whose secret is in the clear, four of each in the order
//! A B B A A B B A in one run (`cargo bench --bench keys`; a report, not a timed test). The
//! keyring is read at open and data keys are held unwrapped in memory; a lookup reads one more
//! view row (is the key's data key retired?), so the goal is no measurable cost: within 3%.
//!
//! `USER_LEDGER_BENCH_SECS` (default 3) is how long each figure runs.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

#[path = "common/rate.rs"]
mod rate;

#[path = "common/users.rs"]
mod users;

use rate::rate;
use user_ledger::{Caller, Config, CreateUserRequest, Ledger, RootKey};

/// (CreateUser/s, GetUser/s, key lookups/s) of a fresh ledger configured by `config`.
fn figures(config: Config, run: usize) -> (f64, f64, f64) {
    let rotates = config.root_key.is_some();
    let ledger = Ledger::open(config).unwrap();
    for _ in 0..3 {
        if rotates {
            ledger.rotate_keys(&Caller::System).unwrap();
        }
    }
    let creates = rate(64, |caller, i| {
        let email = format!("r{run}c{caller}n{i}@example.com");
        ledger.create_user(&Caller::System, &CreateUserRequest::new(email, "APP_USER")).unwrap();
    });
    let ids = users::first_user_ids(&ledger);
    let reads = rate(64, |caller, i| {
        let id = &ids[(caller + i as usize) % ids.len()];
        ledger.get_user(&Caller::System, id).unwrap();
    });
    let keys: Vec<String> = ids
        .iter()
        .take(32)
        .map(|id| ledger.create_access_key(&Caller::System, id).unwrap().access_key_id)
        .collect();
    let lookups = rate(64, |caller, i| {
        let key = &keys[(caller + i as usize) % keys.len()];
        assert!(ledger.credential(key).unwrap().is_some());
    });
    (creates, reads, lookups)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let root = RootKey::generate().unwrap();
    let (mut clear, mut wrapped) = (vec![], vec![]);
    // A B B A A B B A: a drift over the run (the page cache, the disk) weighs on both alike.
    for run in 0..8 {
        let path = dir.path().join(format!("run{run}"));
        if matches!(run % 4, 0 | 3) {
            clear.push(figures(Config::new(&path), run));
        } else {
            wrapped.push(figures(Config::new(&path).root_key(root.clone()), run));
        }
    }
    type Figures = (f64, f64, f64);
    let mean = |v: &[Figures], f: fn(&Figures) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    for (what, f) in [
        ("CreateUser, 64 callers", (|x: &Figures| x.0) as fn(&Figures) -> f64),
        ("GetUser, 64 callers", |x| x.1),
        ("key lookup, 64 callers", |x| x.2),
    ] {
        let (a, b) = (mean(&clear, f), mean(&wrapped, f));
        println!(
            "{what:<28} clear {a:>10.0}/s  root key, rotated {b:>10.0}/s  {:.3}x  (goal within 3%)",
            b / a
        );
    }
}
