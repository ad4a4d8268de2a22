//! What the benches that count operations per second share: how long a figure runs, and the
//! count itself.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long each figure runs: `USER_LEDGER_BENCH_SECS` (default 3).
pub fn seconds() -> Duration {
    let secs = std::env::var("USER_LEDGER_BENCH_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

/// Operations per second of `callers` threads running `op(caller, i)` for [`seconds`].
pub fn rate(callers: usize, op: impl Fn(usize, u64) + Sync) -> f64 {
    let (done, stop) = (AtomicU64::new(0), AtomicBool::new(false));
    let started = Instant::now();
    std::thread::scope(|s| {
        for caller in 0..callers {
            let (done, stop, op) = (&done, &stop, &op);
            s.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    op(caller, i);
                    i += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(seconds());
        stop.store(true, Ordering::Relaxed);
    });
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}
