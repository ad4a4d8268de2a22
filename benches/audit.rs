//! Audit throughput: verify (chain + fold + views comparison) and rebuild, in events per second.
//!
//! `cargo bench --bench audit`; the ledger size is `USER_LEDGER_BENCH_EVENTS` (default 100 000).
//! The ledger is built once with Periodic durability (the write path is not what is measured).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use user_ledger::{Caller, Config, CreateUserRequest, Durability, Ledger, UpdateUserRequest};

fn events() -> u64 {
    std::env::var("USER_LEDGER_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000)
}

/// A ledger of `n` events: users created, and every fourth one updated.
fn build(dir: &std::path::Path, n: u64) -> Ledger {
    let config = Config::new(dir.join("db")).durability(Durability::Periodic(Duration::from_millis(200)));
    let ledger = Ledger::open(config).unwrap();
    let mut made = 0;
    let mut last = String::new();
    while made < n {
        if made % 4 == 3 {
            let update =
                UpdateUserRequest { first_name: Some(format!("n{made}")), ..UpdateUserRequest::new(&last) };
            ledger.update_user(&Caller::System, &update).unwrap();
        } else {
            let request = CreateUserRequest::new(format!("user{made}@example.com"), "APP_USER");
            last = ledger.create_user(&Caller::System, &request).unwrap().user_id;
        }
        made += 1;
    }
    ledger.sync().unwrap();
    ledger
}

fn audit(c: &mut Criterion) {
    let n = events();
    let dir = tempfile::tempdir().unwrap();
    let ledger = build(dir.path(), n);
    let mut group = c.benchmark_group("audit");
    group.sample_size(10).throughput(Throughput::Elements(n));
    group.bench_function(format!("verify {n} events"), |b| {
        b.iter(|| assert_eq!(ledger.verify(None, &mut |_| {}).unwrap().problem, None))
    });
    group.bench_function(format!("rebuild {n} events"), |b| {
        b.iter(|| assert_eq!(ledger.rebuild_views(&mut |_| {}).unwrap(), n))
    });
    group.finish();
}

criterion_group!(benches, audit);
criterion_main!(benches);
