//! The checkpoint key, rotated: the new key's verifier key published in a handover checkpoint
//! signed by the old key and the new, so an auditor who trusts the old key learns the new one
//! from the ledger itself. The log records each rotation (CheckpointKeyRotated); meta keeps the
//! key that signs now and the handovers, in order.
//!
//! Invariant: once a rotation is recorded, only the new key signs: a host given another key is
//! refused at open, and refuses to sign.

use std::sync::{Arc, PoisonError};

use super::settings::{self, CHECKPOINT_HANDOVERS, CHECKPOINT_KEY};
use super::{guarded, Ledger};
use crate::backend::Backend;
use crate::core::checkpoint::{verifier_key, Checkpoint, NoteSigner};
use crate::core::codec;
use crate::core::domain::Caller;
use crate::core::event::Event;
use crate::core::{Access, Command};
use crate::error::{Error, Failure, Result};

/// Refuses `signer` when a rotation made another key the one that signs this ledger's
/// checkpoints (`origin`'s).
pub(super) fn check_current(backend: &dyn Backend, origin: &str, signer: &dyn NoteSigner) -> Result<()> {
    let Some(bytes) = backend.meta(CHECKPOINT_KEY)? else { return Ok(()) };
    let current: String = codec::decode("meta checkpoint_key", &bytes)?;
    let given = verifier_key(origin, &signer.verifying_key());
    if given == current {
        return Ok(());
    }
    Err(Error::failed(
        Failure::Config,
        format_args!(
            "the checkpoint key given ({given}) was rotated away: this ledger's checkpoints are signed by \
             {current}; give that key (--checkpoint-key-file)"
        ),
    ))
}

impl Ledger {
    /// The key that signs this ledger's checkpoints now.
    pub(super) fn signer(&self) -> Arc<dyn NoteSigner> {
        self.inner.checkpoint_key.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Rotates the checkpoint key to `new` (named as the ledger's checkpoints are): a
    /// CheckpointKeyRotated event naming both verifier keys, then a handover checkpoint of the
    /// tree that holds it, signed by the old key and the new, whose extension line names the new
    /// verifier key. From then on `new` signs; every host must be given it (one given the old key
    /// is refused). Returns the handover, which [`Ledger::checkpoint_handovers`] lists too.
    pub fn rotate_checkpoint_key(&self, caller: &Caller, new: Arc<dyn NoteSigner>) -> Result<String> {
        self.authorize(caller, Access::Keys)?;
        let origin = self.origin();
        if let Some(name) = new.name().filter(|name| *name != origin) {
            return Err(Error::failed(
                Failure::Config,
                format_args!("the new checkpoint key is named {name}, but this ledger's checkpoints are named {origin}"),
            ));
        }
        let old = self.signer();
        let (old_verifier_key, new_verifier_key) =
            (verifier_key(&origin, &old.verifying_key()), verifier_key(&origin, &new.verifying_key()));
        if old_verifier_key == new_verifier_key {
            return Err(Error::failed(Failure::Config, "the new checkpoint key is the one that signs now"));
        }
        let from = self.inner.shared.head()?.seq;
        let command = Command::RotateCheckpointKey {
            old_verifier_key: old_verifier_key.clone(),
            new_verifier_key: new_verifier_key.clone(),
        };
        self.command(caller, None, command)?;
        let size = self.seq_of_rotation(from, &new_verifier_key)?;
        let root = self.tree_root(size)?;
        let handover = Checkpoint { origin, size, root, next_key: Some(new_verifier_key.clone()) }
            .sign(&[old.as_ref(), new.as_ref()])?;
        let backend = self.inner.shared.backend.as_ref();
        guarded(|| {
            let mut handovers = self.checkpoint_handovers()?;
            handovers.push(handover.clone());
            settings::put_meta(backend, CHECKPOINT_HANDOVERS, &codec::encode(&handovers))?;
            settings::put_meta(backend, CHECKPOINT_KEY, &codec::encode(&new_verifier_key))
        })?;
        *self.inner.checkpoint_key.write().unwrap_or_else(PoisonError::into_inner) = new;
        Ok(handover)
    }

    /// The handover checkpoints of every rotation of the checkpoint key, oldest first: what an
    /// auditor follows from a key it trusts to the key that signs now (`verify-proof
    /// --handovers`).
    pub fn checkpoint_handovers(&self) -> Result<Vec<String>> {
        let backend = self.inner.shared.backend.as_ref();
        guarded(|| {
            backend
                .meta(CHECKPOINT_HANDOVERS)?
                .map_or(Ok(vec![]), |bytes| codec::decode("meta checkpoint_handovers", &bytes))
        })
    }

    /// The seq of the CheckpointKeyRotated event to `new_verifier_key`, appended after `from`.
    fn seq_of_rotation(&self, from: u64, new_verifier_key: &str) -> Result<u64> {
        for sealed in self.log(from + 1) {
            let sealed = sealed?;
            if let Event::CheckpointKeyRotated { new_verifier_key: key, .. } = &sealed.envelope.event {
                if key == new_verifier_key {
                    return Ok(sealed.envelope.seq);
                }
            }
        }
        Err(Error::internal("the rotation of the checkpoint key is not in the log after its commit"))
    }

    /// The root of the tree of the first `size` entries.
    fn tree_root(&self, size: u64) -> Result<crate::core::merkle::Hash> {
        self.tree(|tree| tree.root(size))
    }
}
