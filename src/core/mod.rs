//! The pure core: `decide(state, command) -> events` and `apply(views, event)`, the types they
//! speak (domain records, events, clientToken records), the one encoding of stored bytes, the
//! injected clock and the sealing of secrets.
//!
//! The rules are kept by family, each family's decisions and folds in one file (`users`, `kx`,
//! `keys`, `groups`), as cqrs-es keeps an aggregate's `handle` and `apply` together: a new
//! command touches its family's file, `command`, and the two dispatchers.
//!
//! Invariant: nothing here does I/O or starts a thread, time comes only through a [`clock::Clock`]
//! the caller injects, and state comes in through [`State`] and [`Views`], so the same rules run
//! over the in-memory fold, a commit batch and every backend. Nothing here names a layer above it
//! (`tests/all/arrows.rs` holds that).

pub mod checkpoint;
pub mod clock;
pub mod codec;
pub mod domain;
pub mod event;
pub mod idempotency;
pub mod merkle;
pub mod personal;
pub mod seal;

mod apply;
mod authorize;
mod command;
mod decide;
mod groups;
mod keyring;
mod keys;
mod kx;
mod state;
mod users;

#[cfg(test)]
mod tests;

pub use apply::{apply, no_such_user};
pub use authorize::{authorize, Access};
pub use command::{Command, Limits};
pub use decide::decide;
pub use keyring::{data_key_of, id_suffix, MAX_DATA_KEYS};
pub use state::{State, ViewChange, Views};
pub use users::{email_taken, SIGN_IN_FAILED};
