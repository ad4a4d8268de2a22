//! The Merkle tree as stored: its frontier for the writer, its roots and proofs for auditors,
//! and building it from the log for a database written before there was one.
//!
//! Invariant: the stored tree is the fold of the log like every view (verify compares it, rebuild
//! remakes it); what is read here only reads it, except [`ensure`], which writes a missing tree.

use crate::backend::{Backend, Reads};
use crate::core::codec;
use crate::core::merkle::{peaks, Frontier, Hash, Node, Tree};
use crate::error::{Error, Result};
use crate::views::ViewTree;

/// The hash of stored node `node`; a missing one is an error naming it.
pub fn node(reads: &dyn Reads, node: Node) -> Result<Hash> {
    reads.merkle_node(node)?.ok_or_else(|| missing(node))
}

fn missing(node: Node) -> Error {
    Error::corrupt(format_args!(
        "the Merkle tree lacks its node of level {} at index {} (tree size {}); rebuild the views",
        node.level,
        node.index,
        node.end()
    ))
}

/// The frontier of the tree of the first `size` entries, read from the stored nodes at once.
pub fn frontier(reads: &dyn Reads, size: u64) -> Result<Frontier> {
    let peaks = peaks(size);
    let hashes = reads.merkle_nodes(&peaks)?;
    let hashes =
        peaks.iter().zip(hashes).map(|(n, h)| h.ok_or_else(|| missing(*n))).collect::<Result<_>>()?;
    Ok(Frontier::of_peaks(size, hashes))
}

/// Runs `read` on the stored tree.
pub fn with_tree<T>(reads: &dyn Reads, read: impl FnOnce(&Tree<'_>) -> Result<T>) -> Result<T> {
    let lookup = |n: Node| node(reads, n);
    read(&Tree::new(&lookup))
}

/// Makes sure the tree holds every entry of a log of `size` entries: a database written
/// before the tree existed gets it built from its log (in one pass, in bounded memory); one
/// that has it is left alone. Returns the frontier the writer continues from.
pub fn ensure(backend: &dyn Backend, size: u64) -> Result<Frontier> {
    if size > 0 && backend.merkle_node(Node { level: 0, index: size - 1 })?.is_none() {
        let mut tree = Frontier::default();
        let mut pending = std::collections::VecDeque::new();
        let mut log = backend.log(1);
        let mut rows = std::iter::from_fn(|| loop {
            if let Some(row) = pending.pop_front() {
                return Some(Ok(row));
            }
            match log.next()? {
                Ok((key, bytes)) if codec::seq_of(&key).is_some_and(|seq| seq <= size) => {
                    let made = tree.append(&bytes);
                    pending
                        .extend(made.into_iter().map(|(n, h): (Node, Hash)| (n.key().to_vec(), h.to_vec())));
                }
                Ok(_) => return None,
                Err(e) => return Some(Err(e)),
            }
        });
        backend.replace_view(ViewTree::Merkle, &mut rows)?;
    }
    frontier(backend, size)
}
