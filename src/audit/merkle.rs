//! The Merkle tree as stored: its frontier for the writer, its roots and proofs for auditors,
//! and building it from the log for a database written before there was one.
//!
//! Invariant: the stored tree is the fold of the log like every view (verify compares it, rebuild
//! remakes it); what is read here only reads it, except [`ensure`], which writes a missing tree.

use crate::backend::Backend;
use crate::core::codec;
use crate::core::merkle::{peaks, subtree_hash, Frontier, Hash, Node, Tree};
use crate::error::{Error, Result};
use crate::views::ViewTree;

/// The hash of node `node` of a ledger that stores the nodes of level `floor` and up: read, or
/// hashed again from the ≤ 2^floor entries below it; a missing one is an error naming it.
pub fn node(backend: &dyn Backend, floor: u8, node: Node) -> Result<Hash> {
    if node.level >= floor {
        return backend.merkle_node(node)?.ok_or_else(|| missing(node));
    }
    let width = 1u64 << node.level;
    let entries = entries(backend, node.index * width, width)?;
    subtree_hash(entries.iter().map(Vec::as_slice)).ok_or_else(|| missing(node))
}

/// The `count` log entries after the first `after`, in order; fewer is an error naming the seq.
fn entries(backend: &dyn Backend, after: u64, count: u64) -> Result<Vec<Vec<u8>>> {
    let mut read = Vec::with_capacity(count as usize);
    for entry in backend.log(after + 1).take(count as usize) {
        let (key, bytes) = entry?;
        let seq = after + read.len() as u64 + 1;
        if codec::seq_of(&key) != Some(seq) {
            break;
        }
        read.push(bytes);
    }
    if (read.len() as u64) < count {
        let seq = after + read.len() as u64 + 1;
        return Err(Error::corrupt(format_args!(
            "the log lacks its entry at seq {seq}, which the Merkle tree covers"
        )));
    }
    Ok(read)
}

fn missing(node: Node) -> Error {
    Error::corrupt(format_args!(
        "the Merkle tree lacks its node of level {} at index {} (tree size {}); rebuild the views",
        node.level,
        node.index,
        node.end()
    ))
}

/// The frontier of the tree of the first `size` entries of a ledger that stores the nodes of
/// level `floor` and up: the stored peaks read at once, and the ≤ 2^floor − 1 entries past them
/// appended again.
pub fn frontier(backend: &dyn Backend, size: u64, floor: u8) -> Result<Frontier> {
    let base = size & !((1u64 << floor) - 1);
    let peaks = peaks(base);
    let hashes = backend.merkle_nodes(&peaks)?;
    let hashes =
        peaks.iter().zip(hashes).map(|(n, h)| h.ok_or_else(|| missing(*n))).collect::<Result<_>>()?;
    let mut tree = Frontier::of_peaks(base, hashes, floor);
    for entry in entries(backend, base, size - base)? {
        tree.append(&entry);
    }
    Ok(tree)
}

/// Runs `read` on the tree of a ledger that stores the nodes of level `floor` and up.
pub fn with_tree<T>(
    backend: &dyn Backend,
    floor: u8,
    read: impl FnOnce(&Tree<'_>) -> Result<T>,
) -> Result<T> {
    let lookup = |n: Node| node(backend, floor, n);
    read(&Tree::new(&lookup))
}

/// Makes sure the tree (its nodes of level `floor` and up) holds every entry of a log of
/// `size` entries: a database written before the tree existed gets it built from its log (in
/// one pass, in bounded memory); one that has it is left alone. Returns the frontier the writer
/// continues from.
pub fn ensure(backend: &dyn Backend, size: u64, floor: u8) -> Result<Frontier> {
    let base = size & !((1u64 << floor) - 1);
    let built = match peaks(base).last() {
        Some(lowest) => backend.merkle_node(*lowest)?.is_some(),
        None => true,
    };
    if !built {
        let mut tree = Frontier::empty(floor);
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
    frontier(backend, size, floor)
}
