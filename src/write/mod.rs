//! The write path: a bounded queue, one writer thread that decides everything waiting as one
//! batch and commits it at once (group commit), durability, and the subscriptions fed from it.
//!
//! `pipeline` holds the bounded queue and the writer thread, `state` what the thread shares with
//! the handle ([`WriteState`]: the refusals, the durable head, one batch written and synced),
//! `writer` the single writer's head and its retries, `batch` the decision of one batch over an
//! `overlay` of the backend, `copy` appending entries sealed elsewhere, `durability` syncing,
//! `hooks` what a host may attach, `subscribe` the feeds of committed entries.
//!
//! One CreateUser, end to end:
//!
//! ```text
//! Ledger::create_user ─ Pipeline::submit_then (pipeline.rs: bounded queue) ─▶ writer thread
//!   WriteState::write_batch (state.rs)    refuse if read-only, poisoned, contradicted, stale, full
//!     Writer::write (writer.rs)           take the turn (shared backends); check the log still
//!                                         holds what this host made durable; decide again on
//!                                         a moved head, up to MAX_CONFLICTS times
//!       Batch::execute (batch.rs)         clientToken replay, or core::decide → events
//!         Batch::append                   seal the entry, fold it into the overlay (overlay.rs),
//!                                         extend the Merkle frontier
//!       Backend::commit                   one atomic changeset: entries, view changes, tokens, tip
//!     WriteState::sync                    Immediate: durable before the answer (a barrier on a
//!                                         shared backend for answers it did not write itself)
//!     Published::publish (subscribe.rs)   subscribers see it
//!   answers ─▶ each caller's channel
//! ```
//!
//! Invariant: a write is acknowledged only after its batch's one atomic changeset (events, view
//! changes, token records, the new tip) is committed and, under `Durability::Immediate`, synced;
//! after a failed commit or sync nothing more is written (the pipeline is poisoned).

pub mod batch;
pub mod copy;
pub mod durability;
pub mod hooks;
mod overlay;
pub mod pipeline;
pub mod state;
pub mod subscribe;
pub mod writer;

pub use durability::{Durability, Flusher};
pub use hooks::{BatchReport, CommitHook, Hooks, SyncHook};
pub use pipeline::Pipeline;
pub use state::WriteState;
