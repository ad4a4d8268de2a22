//! What the ledger signed, remembered in the database (every checkpoint that went past the
//! largest before it) and in this host's checkpoint mark outside it; the check, at open and before
//! every signature, that the database still holds the largest (the same root at that size); and
//! the new epoch, a new origin whose first event commits to the last checkpoint of the old one.
//!
//! Invariant: no origin ever gets two roots for one size from this ledger: a database that does
//! not hold what was signed takes no write and signs nothing until it holds it again or a new
//! epoch begins.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::checkpoint_mark::{self, Mark};
use super::settings::{self, CHECKPOINT_KEY, EPOCH};
use super::{guarded, Ledger};
use crate::backend::Head;
use crate::core::checkpoint::{verifier_key, Checkpoint, NoteSigner};
use crate::core::codec;
use crate::core::domain::Caller;
use crate::core::{Access, Command};
use crate::error::{Error, Failure, Result};

/// One checkpoint this ledger signed, as it records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SignedCheckpoint {
    /// The log's name (its epoch's).
    pub origin: String,
    /// The tree size.
    pub size: u64,
    /// The root at that size, base64.
    pub root: String,
    /// The signed note, as served.
    pub note: String,
    /// When it was signed (ms since the epoch).
    pub time_ms: i64,
}

/// What cosigns checkpoints before they are served: witnesses (`server::witness::Witnesses`,
/// the host's `--witness`). A checkpoint it does not return is not served.
pub trait Cosigner: Send + Sync + std::fmt::Debug {
    /// `note` (a checkpoint of `size` entries `ledger` signed) with its cosignatures, or why it
    /// is not to be served.
    fn cosign(&self, ledger: &Ledger, note: &str, size: u64) -> Result<String>;
}

/// The key derived from data key 0 (`first`) that signs epoch `epoch`'s checkpoints when no key
/// of its own is given: epoch 0's is the one every ledger signed with before epochs.
pub(super) fn derived_signer(first: &[u8; 32], epoch: u32) -> ed25519_dalek::SigningKey {
    match epoch {
        0 => crate::core::checkpoint::signing_key(first),
        n => crate::core::checkpoint::signing_key(&blake3::derive_key(
            "user-ledger 2026-12 checkpoint key of an epoch",
            &[&first[..], &n.to_be_bytes()].concat(),
        )),
    }
}

/// What is known to be signed: origin, size, root, and where it is known from.
struct Known {
    origin: String,
    size: u64,
    root: [u8; 32],
    from: String,
}

impl Ledger {
    /// The checkpoints this ledger recorded (each that went past the largest before it), in size
    /// order: those of sizes above `after`, at most `limit`.
    pub fn checkpoints(&self, after: u64, limit: usize) -> Result<Vec<SignedCheckpoint>> {
        let backend = self.inner.shared.backend.as_ref();
        guarded(|| {
            backend
                .checkpoints_after(after, limit)?
                .iter()
                .map(|(size, bytes)| codec::decode(format!("checkpoint {size}"), bytes))
                .collect()
        })
    }

    /// Why the database contradicts a checkpoint this ledger signed, if it does: it ends before
    /// the largest one's size, or holds another root there.
    pub fn contradiction(&self) -> Result<Option<String>> {
        let shared = &self.inner.shared;
        if shared.stale().is_some() {
            return Ok(None);
        }
        let origin = self.origin();
        let head = shared.head()?.seq;
        for known in self.known()? {
            if known.origin != origin {
                if known.origin.starts_with(&origin) {
                    // A later epoch of this ledger signed it: this database is from before it.
                    return Ok(Some(format!(
                        "{} holds a checkpoint of {}, a later epoch of this ledger (this database is at {origin}): \
                         the database is older than what was signed; restore a newer one",
                        known.from, known.origin
                    )));
                }
                continue;
            }
            let why = if known.size > head {
                format!("the database ends at seq {head}")
            } else {
                let root = self.tree(|tree| tree.root(known.size))?;
                if root == known.root {
                    continue;
                }
                format!(
                    "the database's tree of that size has root {} (if `verify` finds the stored tree damaged, \
                     `rebuild-views` repairs it and this)",
                    STANDARD.encode(root)
                )
            };
            return Ok(Some(format!(
                "this ledger signed checkpoint {} of {origin} (root {}, kept in {}), but {why}: the database \
                 lost or changed entries that checkpoint covers, most likely by a failover to a standby that \
                 was behind or a restore from an older backup. Writes and signatures are refused, so no second \
                 root is signed for that size. Bring back a database that holds it (the old primary, a newer \
                 backup), or run `user-ledger new-epoch`, which goes on under a new origin that commits to it",
                known.size,
                STANDARD.encode(known.root),
                known.from
            )));
        }
        Ok(None)
    }

    /// Checks the database against what was signed; a contradiction refuses writes from now on,
    /// and is the error.
    pub(super) fn refuse_to_contradict(&self) -> Result<()> {
        let shared = &self.inner.shared;
        if let Some(why) = shared.contradicted() {
            return Err(Error::failed(Failure::Contradicted, why));
        }
        self.refresh_epoch()?;
        match self.contradiction()? {
            None => self.absorb_recorded(),
            Some(why) => {
                shared.set_contradicted(Some(why.clone()));
                Err(Error::failed(Failure::Contradicted, why))
            }
        }
    }

    /// Why writes and signatures are refused because the database contradicts a checkpoint this
    /// ledger signed (`None` while it does not): what stats, metrics and readiness report.
    pub fn contradicted(&self) -> Option<String> {
        self.inner.shared.contradicted()
    }

    /// Latches a contradiction found outside the ledger (a witness holding a larger tree, or
    /// another root): writes and signatures are refused from now on.
    pub fn contradicted_by(&self, why: String) {
        self.inner.shared.set_contradicted(Some(why));
    }

    /// Takes into this host's mark the largest checkpoint the database recorded, once it holds it
    /// (checked just before): another host of the ledger signed it, and a failover that loses it
    /// must be refused here too.
    pub(super) fn absorb_recorded(&self) -> Result<()> {
        let Some(path) = &self.inner.config.checkpoint_mark else { return Ok(()) };
        let backend = self.inner.shared.backend.as_ref();
        let Some((size, bytes)) = guarded(|| backend.latest_checkpoint())? else { return Ok(()) };
        let record: SignedCheckpoint = codec::decode(format!("checkpoint {size}"), &bytes)?;
        let _one_at_a_time = self.inner.remembering.lock().unwrap_or_else(PoisonError::into_inner);
        let marked = checkpoint_mark::read(path)?;
        if record.origin != self.origin()
            || marked.is_some_and(|m| m.origin == record.origin && m.size >= size)
        {
            return Ok(());
        }
        let root = STANDARD
            .decode(&record.root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| Error::corrupt(format_args!("corrupt checkpoints: the root of {size}")))?;
        // A database that does not hold it is the contradiction check's to report.
        let Some(at) = self.head_at(size)? else { return Ok(()) };
        // The record's own commit may have been one whose wait for the standby was cancelled:
        // taken in only once durable, or a failover that loses it would be refused for nothing.
        self.inner.shared.make_durable(at)?;
        self.inner.shared.keep(at);
        checkpoint_mark::write(path, &Mark { origin: record.origin, size, root })
    }

    /// The head of the log at `size` (its entry there, whose hash chains every entry before it);
    /// `None` if the log does not reach it.
    pub(super) fn head_at(&self, size: u64) -> Result<Option<Head>> {
        if size == 0 {
            return Ok(Some(Head::default()));
        }
        let backend = self.inner.shared.backend.as_ref();
        let Some(bytes) = guarded(|| backend.log_entry(size))? else { return Ok(None) };
        let entry = codec::unseal(size, &bytes)?;
        Ok(Some(Head { seq: size, hash: entry.hash, time_ms: entry.envelope.time_ms }))
    }

    /// Remembers a checkpoint just signed over the log ending at `at` (read before its root):
    /// recorded in the database if it is the largest yet, and in the mark if it is larger than
    /// the mark's (or of a newer origin). The database must still hold `at`, durably: from then
    /// on the writer refuses a log that does not, so a failover under a running host that lost
    /// a signed tail is caught before anything is written over it.
    pub(super) fn remember(&self, checkpoint: &Checkpoint, note: &str, at: Head) -> Result<()> {
        let _one_at_a_time = self.inner.remembering.lock().unwrap_or_else(PoisonError::into_inner);
        let backend = self.inner.shared.backend.as_ref();
        let record = SignedCheckpoint {
            origin: checkpoint.origin.clone(),
            size: checkpoint.size,
            root: STANDARD.encode(checkpoint.root),
            note: note.to_owned(),
            time_ms: self.inner.shared.now_ms(),
        };
        guarded(|| {
            let latest = backend.latest_checkpoint()?.map(|(size, _)| size);
            if latest.is_none_or(|latest| checkpoint.size > latest) {
                backend.record_checkpoint(checkpoint.size, &codec::encode(&record))?;
            }
            // Also when another commit recorded it, whose wait for the standby may have been
            // cancelled; and on the server the barrier reaches, which must hold `at` (the root
            // was read on the one before a failover, perhaps).
            self.inner.shared.make_durable(at)
        })?;
        self.inner.shared.keep(at);
        let Some(path) = &self.inner.config.checkpoint_mark else { return Ok(()) };
        let marked = checkpoint_mark::read(path)?;
        let grows = marked.is_none_or(|m| m.origin != checkpoint.origin || checkpoint.size > m.size);
        if grows {
            let mark =
                Mark { origin: checkpoint.origin.clone(), size: checkpoint.size, root: checkpoint.root };
            checkpoint_mark::write(path, &mark)?;
        }
        Ok(())
    }

    /// Begins a new epoch: a new origin (`…/epoch-<n>`), signed by `new_key` (named for it) or,
    /// for a ledger whose checkpoint key is derived, by the key derived for the epoch; an
    /// EpochStarted event committing to the last checkpoint of the old origin (the largest known,
    /// which the database may no longer hold); then the new origin's first checkpoint, returned.
    /// From then on the ledger writes and signs again. Only the root (`Caller::System`) may.
    pub fn new_epoch(&self, caller: &Caller, new_key: Option<Arc<dyn NoteSigner>>) -> Result<String> {
        self.authorize(caller, Access::Keys)?;
        let shared = &self.inner.shared;
        let old_origin = self.origin();
        let last = self.known()?.into_iter().find(|k| k.origin == old_origin);
        let epoch = self.inner.epoch.load(Ordering::SeqCst) + 1;
        let origin = super::proofs::origin_of(&self.inner.identity, &self.inner.environment_id, epoch);
        let signer: Arc<dyn NoteSigner> = match (new_key, &self.inner.config.checkpoint_key) {
            (Some(key), _) => match key.name() {
                Some(name) if name != origin => {
                    return Err(Error::failed(
                        Failure::Config,
                        format_args!("the new checkpoint key is named {name}, but the new epoch's checkpoints are named {origin}"),
                    ))
                }
                _ => key,
            },
            (None, Some(_)) => {
                return Err(Error::failed(
                    Failure::Config,
                    format_args!(
                        "this ledger signs with a checkpoint key of its own: give one named {origin} for the new \
                         epoch (`user-ledger new-checkpoint-key --name {origin} --out PATH`)"
                    ),
                ))
            }
            (None, None) => Arc::new(derived_signer(&self.data_key(0)?.raw, epoch)),
        };
        let backend = shared.backend.as_ref();
        guarded(|| {
            settings::put_meta(backend, EPOCH, &codec::encode(&epoch))?;
            let verifier = verifier_key(&origin, &signer.verifying_key());
            if backend.meta(CHECKPOINT_KEY)?.is_some() {
                settings::put_meta(backend, CHECKPOINT_KEY, &codec::encode(&verifier))?;
            }
            Ok(())
        })?;
        self.inner.epoch.store(epoch, Ordering::SeqCst);
        *self.inner.checkpoint_key.write().unwrap_or_else(PoisonError::into_inner) = signer;
        shared.set_contradicted(None);
        let (previous_size, previous_root) =
            last.map_or((0, String::new()), |k| (k.size, STANDARD.encode(k.root)));
        let command =
            Command::StartEpoch { previous_origin: old_origin, previous_size, previous_root, origin };
        self.command(caller, None, command)?;
        self.checkpoint(None)
    }

    /// A new epoch another host began is this host's too; a host whose checkpoint key is its own
    /// must be restarted with one named for the new origin.
    fn refresh_epoch(&self) -> Result<()> {
        let stored = guarded(|| settings::epoch(self.inner.shared.backend.as_ref()))?;
        if stored == self.inner.epoch.load(Ordering::SeqCst) {
            return Ok(());
        }
        if self.inner.config.checkpoint_key.is_some() {
            let origin = super::proofs::origin_of(&self.inner.identity, &self.inner.environment_id, stored);
            return Err(Error::failed(
                Failure::Config,
                format_args!("another host began epoch {stored}: restart this one with a checkpoint key named {origin}"),
            ));
        }
        let signer = derived_signer(&self.data_key(0)?.raw, stored);
        *self.inner.checkpoint_key.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(signer);
        self.inner.epoch.store(stored, Ordering::SeqCst);
        Ok(())
    }

    /// The largest checkpoint recorded in the database, and the mark's, largest first.
    fn known(&self) -> Result<Vec<Known>> {
        let backend = self.inner.shared.backend.as_ref();
        let mut known = vec![];
        if let Some(path) = &self.inner.config.checkpoint_mark {
            if let Some(mark) = checkpoint_mark::read(path)? {
                let from = format!("the checkpoint mark {}", path.display());
                known.push(Known { origin: mark.origin, size: mark.size, root: mark.root, from });
            }
        }
        if let Some((size, bytes)) = guarded(|| backend.latest_checkpoint())? {
            let record: SignedCheckpoint = codec::decode(format!("checkpoint {size}"), &bytes)?;
            let root = STANDARD
                .decode(&record.root)
                .ok()
                .and_then(|r| r.try_into().ok())
                .ok_or_else(|| Error::corrupt(format_args!("corrupt checkpoints: the root of {size}")))?;
            known.push(Known { origin: record.origin, size, root, from: "the database".into() });
        }
        known.sort_by_key(|k| std::cmp::Reverse(k.size));
        Ok(known)
    }
}
