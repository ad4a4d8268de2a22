//! The write path of a copy: log entries sealed elsewhere (another ledger's log, checked on the
//! way) appended as they are, folded into the views in the same commit, and token records carried.
//!
//! Invariant: a commit holds whole entries with the views folded up to them, so a destination
//! is at every moment a ledger whose log is a prefix of the source's and whose views are its fold.

use std::collections::BTreeMap;

use crate::backend::{Backend, Changeset, Head};
use crate::core::event::Sealed;
use crate::core::idempotency::{TokenKey, TokenRecord};
use crate::core::merkle::Frontier;
use crate::error::{Error, Result};
use crate::write::batch::gathered;

/// Appends `entries` (the sealed bytes of each, checked to continue the chain at `head`) to
/// `backend` in one commit, with the views (and the Merkle tree, whose frontier at `head` is
/// `tree`) folded up to the last, and makes them durable; returns the new head. An entry that
/// contradicts the views is an error naming its seq, and nothing of the commit is written; so is
/// a disk below the ledger's reserve ([`Failure::DiskFull`](crate::Failure::DiskFull)).
pub fn append(
    backend: &dyn Backend,
    head: Head,
    tree: &mut Frontier,
    entries: &[(Sealed, Vec<u8>)],
) -> Result<Head> {
    // The reserve holds for a copy as for the writer: a full disk is never met inside sled.
    backend.local_disk().map_or(Ok(()), |disk| disk.check_space())?;
    let probe = |probe: &mut crate::write::batch::Batch<'_>| {
        for (sealed, bytes) in entries {
            if probe.append_sealed(&sealed.envelope, bytes.clone(), sealed.hash).is_err() {
                break;
            }
        }
    };
    let (head, grown) = gathered(backend, head, tree, true, probe, |batch| {
        for (sealed, bytes) in entries {
            let seq = sealed.envelope.seq;
            batch.append_sealed(&sealed.envelope, bytes.clone(), sealed.hash).map_err(|e| {
                Error::corrupt(format_args!("cannot fold the entry at seq {seq} into the copy's views: {e}"))
            })?;
        }
        backend.commit(&batch.changes)?;
        Ok((batch.head, batch.tree.clone()))
    })?;
    backend.sync(head)?;
    *tree = grown;
    Ok(head)
}

/// Stores `tokens` (by token key) on `backend` in one commit against `head`, durably.
pub fn carry_tokens(backend: &dyn Backend, head: Head, tokens: Vec<(TokenKey, TokenRecord)>) -> Result<()> {
    let tokens: BTreeMap<_, _> = tokens.into_iter().map(|(key, record)| (key, Some(record))).collect();
    carry(backend, Changeset { tokens, base: head, ..Changeset::default() })
}

/// Stores wrapped person keys (by user id) on `backend` in one commit against `head`, durably.
pub fn carry_person_keys(backend: &dyn Backend, head: Head, keys: Vec<(String, Vec<u8>)>) -> Result<()> {
    let person_keys = keys.into_iter().map(|(user_id, key)| (user_id, Some(key))).collect();
    carry(backend, Changeset { person_keys, base: head, ..Changeset::default() })
}

/// Commits what a copy carries beside the log (`changes` holds no entry), durably.
fn carry(backend: &dyn Backend, changes: Changeset) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    backend.local_disk().map_or(Ok(()), |disk| disk.check_space())?;
    backend.commit(&changes)?;
    backend.sync(changes.base)
}
