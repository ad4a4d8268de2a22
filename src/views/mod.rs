//! Materialized views: their canonical rows (what every backend's views must reproduce), and an
//! in-memory fold of the log.
//!
//! Invariant: the views are a fold of the log and nothing else; the rows here are the one
//! canonical form, so any two folds of the same log (in memory, on any backend, rebuilt) are equal
//! row for row.

use std::collections::BTreeMap;

use crate::core::event::Envelope;
use crate::core::{self, ViewChange, Views};
use crate::error::Result;

mod keys;
mod memory;
mod rows;
pub mod store;

pub use keys::{
    groups_prefix, history_key, kx_count_key, kx_key, members_prefix, membership_keys, retired_key,
    subject_prefix, CURRENT_DATA_KEY, DATA_KEYS,
};
pub use memory::MemViews;
pub use rows::{rows, Row};

/// A view derived from the log.
///
/// Each view's discriminant is its stored tag (sled's key prefix `b'a' + tag`, the audit's spill
/// keys) and orders the views: append new views with the next number; never reorder or reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ViewTree {
    /// userId → user record.
    Users = 0,
    /// lowercased email → userId.
    Emails = 1,
    /// counter name → count.
    Counters = 2,
    /// (environmentId, userName) → kdb user record.
    KxUsers = 3,
    /// (subject, seq) → nothing: every event of one user or kdb user, in log order.
    History = 4,
    /// accessKeyId → access key record.
    AccessKeys = 5,
    /// permissionGroupId → permission group record.
    Groups = 6,
    /// (group, user) and (user, group) → nothing: each membership, indexed both ways.
    Memberships = 7,
    /// userId → the argon2id hash of the user's password.
    Passwords = 8,
    /// accessKeyId → a principal's key.
    PrincipalKeys = 9,
    /// accessKeyId → temporary credentials.
    TemporaryCredentials = 10,
    /// (tree size at which it completes, level) → hash: every complete subtree (of the ledger's
    /// floor and up, see [`crate::core::merkle::FLOOR`]) of the RFC 9162
    /// Merkle tree over the log's entries (see [`crate::core::merkle`]).
    Merkle = 11,
}

impl ViewTree {
    /// Every view, in tag order.
    pub const ALL: [ViewTree; 12] = [
        ViewTree::Users,
        ViewTree::Emails,
        ViewTree::Counters,
        ViewTree::KxUsers,
        ViewTree::History,
        ViewTree::AccessKeys,
        ViewTree::Groups,
        ViewTree::Memberships,
        ViewTree::Passwords,
        ViewTree::PrincipalKeys,
        ViewTree::TemporaryCredentials,
        ViewTree::Merkle,
    ];

    /// The view's name, in messages (and format 1's tree of it).
    pub fn name(self) -> &'static str {
        match self {
            ViewTree::Users => "users",
            ViewTree::Emails => "emails",
            ViewTree::Counters => "counters",
            ViewTree::KxUsers => "kx_users",
            ViewTree::History => "history",
            ViewTree::AccessKeys => "access_keys",
            ViewTree::Groups => "permission_groups",
            ViewTree::Memberships => "memberships",
            ViewTree::Passwords => "passwords",
            ViewTree::PrincipalKeys => "principal_keys",
            ViewTree::TemporaryCredentials => "temporary_credentials",
            ViewTree::Merkle => "merkle",
        }
    }

    /// The view's stored tag: its discriminant.
    pub fn tag(self) -> u8 {
        self as u8
    }
}

/// The key of the enabled-users counter in [`ViewTree::Counters`].
pub const ENABLED_USERS: &[u8] = b"enabled_users";

/// Every stored row of the views, keyed by (tree, key): what byte-for-byte comparisons compare.
pub type Rows = BTreeMap<(ViewTree, Vec<u8>), Vec<u8>>;

/// Folds one logged envelope into the views: the event's effect, and its history entry.
///
/// The live writer, the in-memory fold and rebuild all go through here, so they cannot differ.
pub fn fold(views: &mut impl Views, envelope: &Envelope) -> Result<()> {
    core::apply(views, &envelope.event, envelope.time_ms)?;
    views.change(ViewChange::History(envelope.event.subject().into(), envelope.seq));
    if let Some(other) = envelope.event.also_about() {
        views.change(ViewChange::History(other.into(), envelope.seq));
    }
    Ok(())
}
