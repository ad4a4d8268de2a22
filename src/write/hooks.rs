//! What a host may attach to the write path: a sync of its own, and a report of each batch.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

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
