//! The write path: a bounded queue, one writer thread that decides everything waiting as one
//! batch and commits it at once (group commit), durability, and the subscriptions fed from it.
//!
//! Invariant: a write is acknowledged only after its batch's one atomic changeset (events, view
//! changes, token records, the new tip) is committed and, under `Durability::Immediate`, synced;
//! after a failed commit or sync nothing more is written (the pipeline is poisoned).

pub mod batch;
pub mod commit;
pub mod subscribe;

pub use commit::*;
