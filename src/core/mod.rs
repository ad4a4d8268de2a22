//! The pure core: `decide(state, command) -> events` and `apply(views, event)`, the types they
//! speak (domain records, events, clientToken records), the one encoding of stored bytes, the
//! injected clock and the sealing of secrets.
//!
//! Invariant: nothing here does I/O or starts a thread, time comes only through a [`clock::Clock`]
//! the caller injects, and state comes in through [`State`] and [`Views`], so the same rules run
//! over the in-memory fold, a commit batch and every backend. Nothing here names a layer above it (`tests/arrows.rs` holds that).

pub mod clock;
pub mod codec;
pub mod decider;
pub mod domain;
pub mod event;
pub mod idempotency;
pub mod seal;

pub use decider::*;
