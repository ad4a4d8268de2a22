//! Subscriptions: the log's envelopes in seq order from any point, then new ones as they commit,
//! for a host's own projections and side effects.
//!
//! The writer only publishes the seq it reached and wakes whoever waits; each subscriber reads
//! the log at its own pace, so a slow one never holds the writer back.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::backend::guard::guard;
use crate::core::codec;
use crate::core::event::Sealed;
use crate::error::{Error, Failure, Result};
use crate::write::WriteState;

/// How long a subscription on a backend that recovers by itself (PostgreSQL) goes on trying to
/// read its next entry while the server is away (restarting, failing over) before it ends with
/// the error.
pub const RESUME_WAIT: Duration = Duration::from_secs(60);

/// What the writer publishes: the last seq subscribers may read, and whether more will come.
#[derive(Debug, Default)]
pub struct Published {
    state: Mutex<(u64, bool)>,
    changed: Condvar,
}

impl Published {
    /// Published up to `seq`.
    pub fn new(seq: u64) -> Self {
        Published { state: Mutex::new((seq, false)), changed: Condvar::new() }
    }

    /// Makes entries up to `seq` visible and wakes subscribers.
    pub fn publish(&self, seq: u64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.0 = state.0.max(seq);
        self.changed.notify_all();
    }

    /// No more entries will come (the ledger closed): subscribers end once they caught up.
    pub fn close(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.1 = true;
        self.changed.notify_all();
    }

    /// The last published seq once it is at least `seq` (or `None` if closed before that), waiting
    /// at most `wait` (then `Some` of whatever is published).
    fn wait_for(&self, seq: u64, wait: Option<Duration>) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if state.0 >= seq {
                return Some(state.0);
            }
            if state.1 {
                return None;
            }
            match wait {
                None => state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(wait) => {
                    let (next, timeout) =
                        self.changed.wait_timeout(state, wait).unwrap_or_else(|p| p.into_inner());
                    state = next;
                    if timeout.timed_out() {
                        return Some(state.0);
                    }
                }
            }
        }
    }
}

/// Committed envelopes from a seq on, then new ones as they commit: a blocking iterator that
/// ends when the ledger is closed and every published entry was delivered. Delivery is
/// at-least-once across restarts: a host keeps the last seq it handled and resubscribes after it.
pub struct Subscription {
    shared: Arc<WriteState>,
    published: Arc<Published>,
    next: u64,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("next", &self.next).finish_non_exhaustive()
    }
}

impl Subscription {
    /// A subscription starting at `from_seq` (0 and 1 both mean the first entry).
    pub(crate) fn new(shared: Arc<WriteState>, published: Arc<Published>, from_seq: u64) -> Self {
        Subscription { shared, published, next: from_seq.max(1) }
    }

    /// Whether the ledger closed and every published entry was delivered.
    pub fn is_finished(&self) -> bool {
        let state = self.published.state.lock().unwrap_or_else(|p| p.into_inner());
        state.1 && state.0 < self.next
    }

    /// The seq the next envelope will have.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// The next envelope, waiting at most `wait` for one to commit: `Ok(None)` if none did
    /// (or the ledger closed).
    pub fn next_timeout(&mut self, wait: Duration) -> Result<Option<Sealed>> {
        match self.published.wait_for(self.next, Some(wait)) {
            Some(seq) if seq >= self.next => self.read().map(Some),
            _ => Ok(None),
        }
    }

    /// The next entry; on a backend that recovers by itself, a read that fails because the
    /// server is away is tried again, every 250 ms for at most [`RESUME_WAIT`].
    fn read(&mut self) -> Result<Sealed> {
        let started = Instant::now();
        loop {
            match self.read_once() {
                Err(e)
                    if self.shared.backend.shared().is_some()
                        && matches!(e.failure(), Some(Failure::Io | Failure::Timeout))
                        && started.elapsed() < RESUME_WAIT =>
                {
                    std::thread::sleep(Duration::from_millis(250));
                }
                done => return done,
            }
        }
    }

    fn read_once(&mut self) -> Result<Sealed> {
        let seq = self.next;
        let backend = &self.shared.backend;
        let entry = guard("while reading the log", || {
            backend.log_entry(seq)?.map(|bytes| codec::unseal(seq, &bytes)).transpose()
        })?;
        let sealed = entry.ok_or_else(|| {
            Error::corrupt(format_args!("the log has no entry at seq {seq}, which was committed"))
        })?;
        self.next += 1;
        Ok(sealed)
    }
}

impl Iterator for Subscription {
    type Item = Result<Sealed>;

    fn next(&mut self) -> Option<Self::Item> {
        self.published.wait_for(self.next, None)?;
        Some(self.read())
    }
}
