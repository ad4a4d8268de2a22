//! How durable an acknowledged write is: synced before the answer, or by a periodic flusher.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::write::state::WriteState;

/// When a write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// After it is on disk (with sled: its flush plus an fdatasync of the data file).
    Immediate,
    /// At once; a background thread makes writes durable every period.
    Periodic(Duration),
}

/// A thread that syncs the store every period, and once more when dropped.
pub struct Flusher {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts syncing `shared`'s store every `period`.
    pub fn spawn(shared: Arc<WriteState>, period: Duration) -> Self {
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
