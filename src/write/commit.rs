//! The write pipeline: a bounded queue, one writer thread that commits everything waiting as one
//! batch (group commit: one transaction, one flush), and durability (sync, periodic flusher,
//! poisoning after a failed sync).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::backend::guard::guard;
use crate::backend::{Backend, Head};
use crate::core::clock::Clock;
use crate::core::idempotency::Response;
use crate::core::Limits;
use crate::error::{Error, Failure, Result};
use crate::write::batch::{WriteRequest, Writer};
use crate::write::subscribe::Published;

/// When a write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// After it is on disk (with sled: its flush plus an fdatasync of the data file).
    Immediate,
    /// At once; a background thread makes writes durable every period.
    Periodic(Duration),
}

/// A seam for tests of failure handling: called before every sync; an error makes the sync fail.
#[derive(Clone)]
pub struct SyncHook(pub Arc<dyn Fn() -> std::io::Result<()> + Send + Sync>);

impl fmt::Debug for SyncHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SyncHook")
    }
}

/// What one committed batch did, for a host's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchReport {
    /// Requests in the batch.
    pub requests: usize,
    /// How long the batch's sync took; `None` when it did not sync (nothing written, or
    /// Periodic durability).
    pub sync: Option<Duration>,
}

/// Called after every committed batch with what it did (see [`BatchReport`]).
#[derive(Clone)]
pub struct CommitHook(pub Arc<dyn Fn(BatchReport) + Send + Sync>);

impl fmt::Debug for CommitHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CommitHook")
    }
}

/// The hooks a ledger was configured with.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    /// Called before every sync.
    pub sync: Option<SyncHook>,
    /// Called after every committed batch.
    pub commit: Option<CommitHook>,
}

/// What the writer thread and the ledger's other writers (purge, rebuild) share.
pub struct Shared {
    /// The database.
    pub backend: Arc<dyn Backend>,
    writer: Mutex<Writer>,
    limits: Limits,
    clock: Arc<dyn Clock>,
    durability: Durability,
    hooks: Hooks,
    /// Set when a sync failed: what is on disk is unknown, so writes stop until a reopen.
    poisoned: AtomicBool,
    /// Why the views cannot be trusted (found on open); until a rebuild, only audit calls work.
    stale: Mutex<Option<String>>,
    /// Whether `stale` holds a reason: read on every request, so it must not take the lock.
    is_stale: AtomicBool,
    /// Set when the ledger was opened read-only: every write is refused.
    read_only: bool,
    /// The seq subscribers may read up to.
    pub published: Arc<Published>,
}

impl Shared {
    /// Shared state for a backend whose log ends at the writer's head.
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
        let head_seq = writer.head().seq;
        Shared {
            read_only,
            backend,
            writer: Mutex::new(writer),
            limits,
            clock,
            durability,
            hooks,
            poisoned: AtomicBool::new(false),
            published: Arc::new(Published::new(head_seq)),
            is_stale: AtomicBool::new(stale.is_some()),
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

    /// Marks the views as trusted again (after a rebuild).
    pub fn set_fresh(&self) {
        *self.stale.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.is_stale.store(false, Ordering::SeqCst);
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
        self.refuse_if_stale()
    }

    /// An error if a commit or a sync failed (or panicked): what is on disk past the last
    /// acknowledged write is unknown, so nothing more is written until a reopen.
    pub fn refuse_if_poisoned(&self) -> Result<()> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(Error::failed(
                Failure::Poisoned,
                "the ledger refuses writes after a failed commit or sync (a full disk, an I/O error) or a \
                 panicked commit; reopen it once the cause is gone (rebuild the views if it says so)",
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
        hooked.and_then(|()| self.backend.sync(head)).map_err(|e| self.stop_writing(e))
    }

    /// After a failed commit or sync (`e`): no more writes until a reopen, the backend told, and
    /// `e` with what happens now.
    fn stop_writing(&self, e: Error) -> Error {
        self.poisoned.store(true, Ordering::SeqCst);
        self.backend.write_failed();
        Error::failed(
            e.failure().unwrap_or(Failure::Io),
            format_args!(
                "{e}; the ledger stopped writing: reopen it once the cause is gone (a full disk has space \
                 again), and rebuild the views if it then says so"
            ),
        )
    }

    /// Decides and commits `requests` as one batch, syncs once if required; one answer each.
    fn commit_batch(&self, requests: &[WriteRequest]) -> Vec<Result<Response>> {
        let all = |e: Error| vec![Err(e); requests.len()];
        if let Err(e) = self.refuse_writes() {
            return all(e);
        }
        if let Err(e) = self.backend.check_space() {
            return all(e);
        }
        let mut writer = self.lock_writer();
        let commit = || writer.commit(self.backend.as_ref(), &self.limits, self.now_ms(), requests);
        let committed = match guard("while committing a batch", commit) {
            Ok(committed) => committed,
            // What a failed or panicked commit left in the engine is unknown (sled 0.34 may
            // have applied part of the batch in memory, and may never flush again after a
            // failed write): stop writing until a reopen.
            Err(e) => return all(self.stop_writing(e)),
        };
        let mut synced = None;
        if committed.wrote && self.immediate() {
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
        committed.results.into_iter().map(|r| r.map(|outcome| outcome.response)).collect()
    }
}

/// Where a write's answer goes: called once, on the writer thread, so it must be quick.
pub type Reply = Box<dyn FnOnce(Result<Response>) + Send>;

/// A request waiting in the queue, with where to send its answer.
struct Job {
    request: WriteRequest,
    reply: Reply,
}

/// The queue and the writer thread that empties it in batches.
pub struct Pipeline {
    sender: Mutex<Option<SyncSender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

impl Pipeline {
    /// Starts the writer thread: batches of at most `max_batch`, a queue of at most `capacity`.
    pub fn start(shared: Arc<Shared>, capacity: usize, max_batch: usize) -> Result<Self> {
        let (sender, receiver) = mpsc::sync_channel(capacity);
        let queued = Arc::new(AtomicUsize::new(0));
        let counter = queued.clone();
        let thread = thread::Builder::new()
            .name("user-ledger-writer".into())
            .spawn(move || run(&shared, &receiver, &counter, max_batch.max(1)))
            .map_err(|e| Error::internal(format_args!("cannot start the writer thread: {e}")))?;
        Ok(Pipeline { sender: Mutex::new(Some(sender)), thread: Mutex::new(Some(thread)), queued, capacity })
    }

    /// Queues `request` and waits for its answer; Throttling at once if the queue is full.
    pub fn submit(&self, request: WriteRequest) -> Result<Response> {
        let (reply, answer) = mpsc::channel();
        self.submit_then(
            request,
            Box::new(move |response| {
                // A caller that went away does not need its answer.
                let _ = reply.send(response);
            }),
        )?;
        answer.recv().unwrap_or_else(|_| {
            Err(Error::failed(Failure::Closed, "the ledger's writer stopped before answering"))
        })
    }

    /// Queues `request` and returns at once; `reply` is called with the answer on the writer
    /// thread once the batch is committed (and synced, under Immediate durability). A full
    /// queue is Throttling, and `reply` is not called.
    pub fn submit_then(&self, request: WriteRequest, reply: Reply) -> Result<()> {
        let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        let Some(sender) = sender.as_ref() else {
            return Err(Error::failed(Failure::Closed, "the ledger is closed"));
        };
        self.queued.fetch_add(1, Ordering::SeqCst);
        match sender.try_send(Job { request, reply }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                Err(Error::Throttling {
                    message: format!(
                        "The write queue is full ({} requests waiting); retry later",
                        self.capacity
                    ),
                })
            }
            Err(TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                Err(Error::failed(Failure::Closed, "the ledger's writer has stopped"))
            }
        }
    }

    /// How many requests wait in the queue (not yet taken into a batch).
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Stops taking requests, commits every queued one, and waits for the writer to finish.
    pub fn close(&self) {
        drop(self.sender.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer thread: take everything waiting (up to `max_batch`), commit it as one, answer each.
/// Ends when the queue is closed and empty, so nothing accepted is dropped.
fn run(shared: &Shared, receiver: &Receiver<Job>, queued: &AtomicUsize, max_batch: usize) {
    while let Ok(first) = receiver.recv() {
        let mut jobs = vec![first];
        while jobs.len() < max_batch {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        queued.fetch_sub(jobs.len(), Ordering::SeqCst);
        let (requests, replies): (Vec<_>, Vec<_>) = jobs.into_iter().map(|j| (j.request, j.reply)).unzip();
        for (reply, answer) in replies.into_iter().zip(shared.commit_batch(&requests)) {
            // A panicking reply must not stop the writer: the others still need their answers.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reply(answer)));
        }
    }
}

/// A thread that syncs the store every period, and once more when dropped.
pub struct Flusher {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts syncing `shared`'s store every `period`.
    pub fn spawn(shared: Arc<Shared>, period: Duration) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::spawn(move || loop {
            let last = matches!(stopped.recv_timeout(period), Err(RecvTimeoutError::Disconnected));
            // Read before the sync: everything committed up to this head is in it.
            let head = shared.lock_writer().head();
            // A failure poisons the ledger; there is no caller here to tell.
            let _ = shared.sync(head);
            if last {
                break;
            }
        });
        Flusher { stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
