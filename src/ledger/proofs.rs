//! What an outside auditor is given: signed checkpoints of the Merkle tree, and inclusion and
//! consistency proofs against them, read from the stored tree (never by re-hashing the log).

use super::{guarded, Ledger};
use crate::audit::merkle::with_tree;
use crate::core::checkpoint::{verifier_key, Checkpoint, ConsistencyProof, InclusionProof};
use crate::error::{Bound, Error, Failure, Result, Rule};

/// The name of a ledger's checkpoints: `user-ledger/<account>/<environmentId>`, and after a
/// new epoch `…/epoch-<n>`.
pub(super) fn origin_of(
    identity: &crate::core::domain::Identity,
    environment_id: &str,
    epoch: u32,
) -> String {
    match epoch {
        0 => format!("user-ledger/{}/{environment_id}", identity.account),
        n => format!("user-ledger/{}/{environment_id}/epoch-{n}", identity.account),
    }
}

impl Ledger {
    /// The log's name in checkpoints, and its key's: `user-ledger/<account>/<environmentId>`.
    pub fn origin(&self) -> String {
        let epoch = self.inner.epoch.load(std::sync::atomic::Ordering::SeqCst);
        origin_of(&self.inner.identity, &self.inner.environment_id, epoch)
    }

    /// The verifier key of this ledger's checkpoints (`name+hash+base64key`), for auditors to
    /// keep: of the checkpoint key given ([`crate::Config::checkpoint_key`]), else derived from the
    /// database's secret, so a copy signs with the same key.
    pub fn checkpoint_key(&self) -> String {
        verifier_key(&self.origin(), &self.signer().verifying_key())
    }

    /// The tree of the first `size` entries (default: the whole log), signed: a C2SP signed
    /// note with a `tlog-checkpoint` body.
    pub fn checkpoint(&self, size: Option<u64>) -> Result<String> {
        // Signed no further than the log is durable: under Periodic durability, the last sync.
        let durable = self.inner.shared.durable_seq()?;
        let size = match size {
            None => durable,
            Some(size) if size <= durable => size,
            Some(_) => {
                return Err(Error::validation("treeSize", Rule::Bounded(Bound::Durable(durable))));
            }
        };
        self.refuse_to_contradict()?;
        // Read before the root: the record's barrier then refuses a database that no longer
        // holds it (a failover while signing), whose root may be another.
        let at = self.head_at(size)?.ok_or_else(|| {
            Error::failed(
                Failure::Io,
                format_args!("the log no longer reaches seq {size} (a failover while signing): retry"),
            )
        })?;
        let root = self.tree(|tree| tree.root(size))?;
        let signer = self.signer();
        // A host whose key another host rotated away signs nothing an auditor would follow.
        guarded(|| {
            super::checkpoint_keys::check_current(
                self.inner.shared.backend.as_ref(),
                &self.origin(),
                signer.as_ref(),
            )
        })?;
        let checkpoint = Checkpoint { origin: self.origin(), size, root, next_key: None };
        let mut note = checkpoint.sign(&[signer.as_ref()])?;
        if let Some(cosigner) = &self.inner.config.cosigner {
            note = cosigner.cosign(self, &note, size)?;
        }
        self.remember(&checkpoint, &note, at)?;
        Ok(note)
    }

    /// The proof that the entry at `seq` is in the tree of `size` entries (default: the whole
    /// log), with the entry's sealed bytes.
    pub fn inclusion_proof(&self, seq: u64, size: Option<u64>) -> Result<InclusionProof> {
        let size = self.tree_size("treeSize", size)?;
        if seq == 0 || seq > size {
            return Err(Error::validation("seq", Rule::Bounded(Bound::TreeSeq(size))));
        }
        let entry = guarded(|| self.inner.shared.backend.log_entry(seq))?
            .ok_or_else(|| Error::corrupt(format_args!("the log lacks its entry at seq {seq}")))?;
        let path = self.tree(|tree| tree.inclusion(seq - 1, size))?;
        Ok(InclusionProof { index: seq - 1, size, entry, path })
    }

    /// The proof that the tree of `second` entries (default: the whole log) extends the tree of
    /// `first`.
    pub fn consistency_proof(&self, first: u64, second: Option<u64>) -> Result<ConsistencyProof> {
        let second = self.tree_size("secondSize", second)?;
        let path = self.tree(|tree| tree.consistency(first, second))?;
        Ok(ConsistencyProof { first, second, path })
    }

    /// `size`, or the log's size now; refused past it.
    fn tree_size(&self, member: &'static str, size: Option<u64>) -> Result<u64> {
        let head = self.inner.shared.head()?.seq;
        match size {
            None => Ok(head),
            Some(size) if size <= head => Ok(size),
            Some(_) => Err(Error::validation(member, Rule::Bounded(Bound::LogSize(head)))),
        }
    }

    /// Reads the stored tree, once the views are trusted (it is one of them).
    pub(super) fn tree<T>(
        &self,
        read: impl FnOnce(&crate::core::merkle::Tree<'_>) -> Result<T>,
    ) -> Result<T> {
        let shared = &self.inner.shared;
        shared.refuse_if_stale()?;
        let backend = shared.backend.as_ref();
        guarded(|| with_tree(backend, super::settings::tree_floor(backend)?, read))
    }
}
