//! Audit: the hash chain checked entry by entry, digests an auditor keeps, states as of a point,
//! and the fold of a whole log in bounded memory that verify and rebuild share.
//!
//! Invariant: audit reads and never writes, except `rebuild`, which replaces the views with the
//! fold of the log; memory stays within `Config::fold_memory` whatever the log's size.

pub mod chain;
pub mod merkle;
pub mod rebuild;
pub mod refold;
pub mod spill;

pub use chain::*;
