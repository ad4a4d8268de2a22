//! The write path: a bounded queue, one writer thread that decides everything waiting as one
//! batch and commits it at once (group commit), durability, and the subscriptions fed from it.
//!
//! `queue` holds the queue and the writer thread, `shared` what the thread shares with the
//! handle, `writer` the single writer's head, `batch` the decision of one batch over an overlay
//! of the backend (`overlay`), `copy` appending entries sealed elsewhere, `durability` syncing, `hooks` what a host may attach,
//! `subscribe` the feeds of committed entries.
//!
//! Invariant: a write is acknowledged only after its batch's one atomic changeset (events, view
//! changes, token records, the new tip) is committed and, under `Durability::Immediate`, synced;
//! after a failed commit or sync nothing more is written (the pipeline is poisoned).

pub mod batch;
pub mod copy;
pub mod durability;
pub mod hooks;
mod overlay;
pub mod queue;
pub mod shared;
pub mod subscribe;
pub mod writer;

pub use durability::{Durability, Flusher};
pub use hooks::{BatchReport, CommitHook, Hooks, SyncHook};
pub use queue::Pipeline;
pub use shared::Shared;
