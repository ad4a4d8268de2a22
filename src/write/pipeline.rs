//! The bounded queue and the one writer thread that commits everything waiting as one batch
//! (group commit: one transaction, one flush).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use crate::core::idempotency::Response;
use crate::error::{Error, Failure, Result};
use crate::write::state::WriteState;
use crate::write::writer::WriteRequest;

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
    pub fn start(shared: Arc<WriteState>, capacity: usize, max_batch: usize) -> Result<Self> {
        let (sender, receiver) = mpsc::sync_channel(capacity);
        let queued = Arc::new(AtomicUsize::new(0));
        let counter = queued.clone();
        let thread = thread::Builder::new()
            .name("user-ledger-writer".into())
            .spawn(move || run(&shared, &receiver, &counter, max_batch.max(1)))
            .map_err(|e| Error::failed_by(Failure::Io, format!("cannot start the writer thread: {e}"), e))?;
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

    /// Whether it still takes requests (not closed).
    pub fn is_open(&self) -> bool {
        self.sender.lock().unwrap_or_else(|p| p.into_inner()).is_some()
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
fn run(shared: &WriteState, receiver: &Receiver<Job>, queued: &AtomicUsize, max_batch: usize) {
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
        for (reply, answer) in replies.into_iter().zip(shared.write_batch(&requests)) {
            // A panicking reply must not stop the writer: the others still need their answers.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reply(answer)));
        }
    }
}
