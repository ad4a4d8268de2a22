//! What the handle and the writer thread share: the backend, the writer's head, staleness,
//! poisoning after a failed commit or sync, and writing one batch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::backend::guard::guard;
use crate::backend::{Backend, Head};
use crate::core::clock::Clock;
use crate::core::idempotency::Response;
use crate::core::Limits;
use crate::error::{Error, Failure, Result};
use crate::write::durability::Durability;
use crate::write::hooks::{BatchReport, Hooks};
use crate::write::subscribe::Published;
use crate::write::writer::{WriteRequest, Writer};

/// What the writer thread and the ledger's other writers (purge, rebuild) share.
pub struct WriteState {
    /// The database.
    pub backend: Arc<dyn Backend>,
    writer: Mutex<Writer>,
    limits: Limits,
    clock: Arc<dyn Clock>,
    durability: Durability,
    hooks: Hooks,
    /// Set when a sync failed: what is on disk is unknown, so writes stop until a reopen.
    poisoned: AtomicBool,
    /// The head up to which this process made the log durable (under Periodic durability, what
    /// the flusher synced; under Immediate, every acknowledged write): the log must always hold
    /// it, whatever it loses past it.
    durable: Mutex<Head>,
    /// Why the views cannot be trusted (found on open); until a rebuild, only audit calls work.
    stale: Mutex<Option<String>>,
    /// Why the database contradicts a signed checkpoint, if it does: writes are refused.
    contradicted: Mutex<Option<String>>,
    /// Whether `contradicted` holds a reason: read on every write.
    is_contradicted: AtomicBool,
    /// Whether `stale` holds a reason: read on every request, so it must not take the lock.
    is_stale: AtomicBool,
    /// Set when the ledger was opened read-only: every write is refused.
    read_only: bool,
    /// The seq subscribers may read up to.
    pub published: Arc<Published>,
}

impl WriteState {
    /// WriteState state for a backend whose log ends at the writer's head.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        backend: Arc<dyn Backend>,
        writer: Writer,
        limits: Limits,
        clock: Arc<dyn Clock>,
        durability: Durability,
        hooks: Hooks,
        stale: Option<String>,
        read_only: bool,
    ) -> Self {
        let head = writer.head();
        WriteState {
            read_only,
            backend,
            writer: Mutex::new(writer),
            limits,
            clock,
            durability,
            hooks,
            poisoned: AtomicBool::new(false),
            durable: Mutex::new(head),
            published: Arc::new(Published::new(head.seq)),
            is_stale: AtomicBool::new(stale.is_some()),
            contradicted: Mutex::new(None),
            is_contradicted: AtomicBool::new(false),
            stale: Mutex::new(stale),
        }
    }

    /// The writer, for commits and for anything that must not interleave with them.
    pub fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        // A panic while holding the lock leaves the head as last committed: still valid.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current time from the configured clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Whether a write must be on disk before it is acknowledged.
    pub fn immediate(&self) -> bool {
        self.durability == Durability::Immediate
    }

    /// Why the views cannot be trusted, if they cannot.
    pub fn stale(&self) -> Option<String> {
        self.stale.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Why the database contradicts a checkpoint this ledger signed, if it does.
    pub fn contradicted(&self) -> Option<String> {
        if !self.is_contradicted.load(Ordering::SeqCst) {
            return None;
        }
        self.contradicted.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records why the database contradicts a signed checkpoint (`None`: it no longer does).
    pub fn set_contradicted(&self, why: Option<String>) {
        let mut held = self.contradicted.lock().unwrap_or_else(|p| p.into_inner());
        self.is_contradicted.store(why.is_some(), Ordering::SeqCst);
        *held = why;
    }

    /// Marks the views as trusted again (after a rebuild).
    pub fn set_fresh(&self) {
        *self.stale.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.is_stale.store(false, Ordering::SeqCst);
    }

    /// The head of the log as the backend has it now: this writer's last commit, or a later one
    /// of another writer sharing the backend.
    pub fn head(&self) -> Result<Head> {
        Ok(self.backend.tip()?.head)
    }

    /// An error if the views cannot be trusted.
    pub fn refuse_if_stale(&self) -> Result<()> {
        if !self.is_stale.load(Ordering::SeqCst) {
            return Ok(());
        }
        match self.stale() {
            Some(why) => {
                Err(Error::failed(Failure::StaleViews, format_args!("{why}; rebuild the views to repair")))
            }
            None => Ok(()),
        }
    }

    /// An error if writes must stop: read-only, after a failed sync, or while the views cannot be
    /// trusted.
    pub fn refuse_writes(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::failed(
                Failure::ReadOnly,
                "the ledger was opened read-only; it takes no writes",
            ));
        }
        self.refuse_if_poisoned()?;
        if let Some(why) = self.contradicted() {
            return Err(Error::failed(Failure::Contradicted, why));
        }
        self.refuse_if_stale()
    }

    /// An error if a commit or a sync failed (or panicked): what is on disk past the last
    /// acknowledged write is unknown, so nothing more is written until a reopen.
    pub fn refuse_if_poisoned(&self) -> Result<()> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(Error::failed(
                Failure::Poisoned,
                "the ledger refuses writes after a failed commit or sync (a full disk, an I/O error) or a \
                 panicked commit; reopen it once the cause is gone (opening rebuilds the views from the log)",
            ));
        }
        Ok(())
    }

    /// Makes committed writes, up to the log's `head` at least, durable; a failure poisons the
    /// ledger.
    pub fn sync(&self, head: Head) -> Result<()> {
        let hooked = match &self.hooks.sync {
            Some(hook) => (hook.0)().map_err(Error::from),
            None => Ok(()),
        };
        hooked.and_then(|()| self.backend.sync(head)).map_err(|e| self.stop_writing(e))?;
        self.keep(head);
        Ok(())
    }

    /// Makes what any host committed up to `at` durable as configured before this host relies on
    /// it (a checkpoint another commit recorded, whose wait for a standby may have been
    /// cancelled): a barrier on a shared backend, which refuses a database that no longer holds
    /// `at`; nothing on a backend this process alone writes.
    pub fn make_durable(&self, at: Head) -> Result<()> {
        if self.backend.shared().is_none() {
            return Ok(());
        }
        self.sync(at)
    }

    /// Raises the head the log must always hold to `head`: a checkpoint signed or taken in at its
    /// size. The writer refuses a log that lost it.
    pub fn keep(&self, head: Head) {
        let mut durable = self.durable.lock().unwrap_or_else(|p| p.into_inner());
        if head.seq > durable.seq {
            *durable = head;
        }
    }

    /// The head up to which this process made the log durable: what it acknowledged (under
    /// Periodic durability, what it synced). A log that no longer holds it lost acknowledged writes.
    pub fn durable_head(&self) -> Head {
        *self.durable.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The seq up to which the log is durable as configured: the head under Immediate
    /// durability, the last sync under Periodic. Checkpoints sign no further.
    pub fn durable_seq(&self) -> Result<u64> {
        let head = self.head()?.seq;
        Ok(if self.immediate() { head } else { self.durable_head().seq.min(head) })
    }

    /// After a failed commit or sync (`e`): no more writes until a reopen, the backend told, and
    /// `e` with what happens now; unless the backend recovers by itself.
    fn stop_writing(&self, e: Error) -> Error {
        if self.backend.shared().is_some() {
            // All or nothing, and a later commit compares and sets the head: the next batch
            // simply tries again (a server back after a restart serves without a reopen).
            return e;
        }
        self.poisoned.store(true, Ordering::SeqCst);
        if let Some(disk) = self.backend.local_disk() {
            disk.write_failed();
        }
        Error::failed(
            e.failure().unwrap_or(Failure::Io),
            format_args!(
                "{e}; the ledger stopped writing: reopen it once the cause is gone (a full disk has space \
                 again): opening rebuilds the views from the log"
            ),
        )
    }

    /// Decides and commits `requests` as one batch, syncs once if required; one answer each.
    pub(super) fn write_batch(&self, requests: &[WriteRequest]) -> Vec<Result<Response>> {
        let all = |e: Error| vec![Err(e); requests.len()];
        if let Err(e) = self.refuse_writes() {
            return all(e);
        }
        if let Err(e) = self.backend.local_disk().map_or(Ok(()), |disk| disk.check_space()) {
            return all(e);
        }
        let mut writer = self.lock_writer();
        let kept = self.durable_head();
        let commit = || writer.write(self.backend.as_ref(), &self.limits, self.now_ms(), requests, kept);
        let committed = match guard("while committing a batch", commit) {
            Ok(committed) => committed,
            // The log went back under this host: nothing more is written or signed.
            Err(e) if e.failure() == Some(Failure::Contradicted) => {
                self.set_contradicted(Some(e.to_string()));
                return all(e);
            }
            // The engine refused what one request brought (a value it cannot store) and wrote
            // nothing: each request alone, so that one caller's value fails only its own write.
            Err(e)
                if requests.len() > 1
                    && self.backend.shared().is_some()
                    && e.failure() == Some(Failure::Other) =>
            {
                drop(writer);
                return requests.iter().flat_map(|r| self.write_batch(std::slice::from_ref(r))).collect();
            }
            // What a failed or panicked commit left in the engine is unknown (sled 0.34 may
            // have applied part of the batch in memory, and may never flush again after a
            // failed write): stop writing until a reopen.
            Err(e) => return all(self.stop_writing(e)),
        };
        let mut synced = None;
        // A retry's stored answer, or an answer decided on what another host committed, stands
        // only once that is durable too: on a shared backend it may be on a primary alone (a
        // commit whose wait for the standby was cancelled, or whose answer was lost).
        let answered = committed.results.iter().any(Result::is_ok);
        let must_sync = committed.wrote || (answered && self.backend.shared().is_some());
        if must_sync && self.immediate() {
            let started = Instant::now();
            if let Err(e) = self.sync(writer.head()) {
                return all(Error::failed(
                    e.failure().unwrap_or(Failure::Io),
                    format_args!("the batch may not be on disk: {e}"),
                ));
            }
            synced = Some(started.elapsed());
        }
        if committed.wrote {
            // After the sync under Immediate durability: subscribers see only what is on disk.
            self.published.publish(writer.head().seq);
        }
        if let Some(hook) = &self.hooks.commit {
            (hook.0)(BatchReport { requests: requests.len(), sync: synced });
        }
        committed.results
    }
}
