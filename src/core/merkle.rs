//! The Merkle tree over the log's sealed entries, as RFC 9162 §2.1 defines it: SHA-256, a leaf
//! hashed over `0x00 ‖ entry`, a node over `0x01 ‖ left ‖ right`, the tree of the first n
//! entries; inclusion and consistency proofs (§2.1.3, §2.1.4) and their verification.
//!
//! What is stored is every complete subtree of level [`FLOOR`] and up: the node of `2^level`
//! leaves starting at leaf `index · 2^level`, kept once the last of them is appended (1/8 of a
//! node per entry on average; a ledger that kept its tree before the floor keeps every level, two
//! per entry). Any tree size's root and any proof are read from them, with the ≤ 2^FLOOR − 1
//! entries below a stored node hashed again. Invariant: pure; the nodes an append makes depend
//! only on the entry and the frontier (the complete subtrees of the tree before it).

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// A SHA-256 hash: a leaf's, a node's, a tree's root.
pub type Hash = [u8; 32];

/// Where a complete subtree is: its level (0 for a leaf) and its index among the subtrees of
/// that level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Node {
    /// The height: the subtree holds `2^level` leaves.
    pub level: u8,
    /// Which subtree of its level, from 0.
    pub index: u64,
}

impl Node {
    /// How many leaves the tree holds once this subtree is complete: its end.
    pub fn end(self) -> u64 {
        (self.index + 1) << self.level
    }

    /// The key this node is stored under: (end, level) big-endian, so that the nodes sort in
    /// the order appends make them.
    pub fn key(self) -> [u8; 9] {
        let mut key = [0u8; 9];
        key[..8].copy_from_slice(&self.end().to_be_bytes());
        key[8] = self.level;
        key
    }

    /// The node a [`Node::key`] names; `None` for bytes that are not one.
    #[cfg_attr(not(any(test, feature = "postgres")), allow(dead_code))]
    pub fn of_key(key: &[u8]) -> Option<Node> {
        let end = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
        let level = *key.get(8)?;
        if key.len() != 9 || level > 63 || end == 0 || !end.is_multiple_of(1u64 << level) {
            return None;
        }
        Some(Node { level, index: (end >> level) - 1 })
    }
}

/// The hash of a leaf: `SHA-256(0x00 ‖ entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    Sha256::new().chain_update([0u8]).chain_update(entry).finalize().into()
}

/// The hash of an inner node: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new().chain_update([1u8]).chain_update(left).chain_update(right).finalize().into()
}

/// The complete subtrees of a tree of `size` leaves that are not inside a larger complete one
/// (its binary decomposition), largest first: the frontier an append continues from.
pub fn peaks(size: u64) -> Vec<Node> {
    let mut peaks = vec![];
    let mut start = 0u64;
    for level in (0..64u8).rev() {
        if size & (1u64 << level) != 0 {
            peaks.push(Node { level, index: start >> level });
            start += 1u64 << level;
        }
    }
    peaks
}

/// The lowest level of the nodes a new ledger stores: a node below it covers at most
/// 2^FLOOR − 1 … 8 entries, hashed again from the log when a proof or a frontier needs it, so
/// that an entry adds 1/8 of a tree row instead of two.
pub const FLOOR: u8 = 4;

/// The complete subtrees of the tree before an append, with their hashes: what the next append
/// needs, and all it needs; and the lowest level of the nodes the ledger stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    peaks: Vec<(Node, Hash)>,
    floor: u8,
}

impl Default for Frontier {
    /// The empty tree of a ledger that stores the nodes of level [`FLOOR`] and up.
    fn default() -> Self {
        Frontier::empty(FLOOR)
    }
}

impl Frontier {
    /// The empty tree of a ledger that stores the nodes of level `floor` and up.
    pub fn empty(floor: u8) -> Frontier {
        Frontier { size: 0, peaks: vec![], floor }
    }

    /// The frontier of a tree of `size` leaves whose [`peaks`] have `hashes`, in order, of a
    /// ledger that stores the nodes of level `floor` and up.
    pub fn of_peaks(size: u64, hashes: Vec<Hash>, floor: u8) -> Frontier {
        Frontier { size, peaks: peaks(size).into_iter().zip(hashes).collect(), floor }
    }

    /// The lowest level of the nodes stored.
    pub fn floor(&self) -> u8 {
        self.floor
    }

    /// Appends `entry` as the next leaf; returns the nodes it completes that the ledger stores
    /// (of level [`Frontier::floor`] and up), lowest first.
    pub fn append(&mut self, entry: &[u8]) -> Vec<(Node, Hash)> {
        let floor = self.floor;
        let mut made = self.append_all(entry);
        made.retain(|(node, _)| node.level >= floor);
        made
    }

    /// Appends `entry` as the next leaf; returns every node it completes, leaf first.
    fn append_all(&mut self, entry: &[u8]) -> Vec<(Node, Hash)> {
        let leaf = (Node { level: 0, index: self.size }, leaf_hash(entry));
        let mut made = vec![leaf];
        self.peaks.push(leaf);
        self.size += 1;
        while let [.., (left, l), (right, r)] = self.peaks[..] {
            if left.level != right.level {
                break;
            }
            let joined = (Node { level: left.level + 1, index: left.index / 2 }, node_hash(&l, &r));
            self.peaks.truncate(self.peaks.len() - 2);
            self.peaks.push(joined);
            made.push(joined);
        }
        made
    }

    /// The root of the tree: its peaks joined right to left (the empty tree's is SHA-256 of
    /// nothing, as RFC 9162 says).
    #[cfg(test)]
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        let Some((_, last)) = peaks.next() else { return Sha256::digest([]).into() };
        peaks.fold(*last, |right, (_, left)| node_hash(left, &right))
    }
}

/// The hash of the complete subtree whose leaves are `entries` (a power of two of them); `None`
/// for another count.
pub fn subtree_hash<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Option<Hash> {
    let mut tree = Frontier::empty(0);
    for entry in entries {
        tree.append_all(entry);
    }
    match tree.peaks.as_slice() {
        [(_, hash)] => Some(*hash),
        _ => None,
    }
}

/// The largest power of two smaller than `n` (n ≥ 2): where RFC 9162 splits a tree of n leaves.
fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Reads a tree's stored complete subtrees: the source of roots and proofs.
pub struct Tree<'a> {
    node: &'a dyn Fn(Node) -> Result<Hash>,
}

impl<'a> Tree<'a> {
    /// A tree whose complete subtrees `node` reads (an error for one that is not stored).
    pub fn new(node: &'a dyn Fn(Node) -> Result<Hash>) -> Self {
        Tree { node }
    }

    /// MTH(D[lo:hi]) for a range the RFC's recursion names: aligned at a subtree's start.
    fn range(&self, lo: u64, hi: u64) -> Result<Hash> {
        let n = hi - lo;
        if n.is_power_of_two() && lo.is_multiple_of(n) {
            return (self.node)(Node { level: n.trailing_zeros() as u8, index: lo / n });
        }
        let k = split(n);
        Ok(node_hash(&self.range(lo, lo + k)?, &self.range(lo + k, hi)?))
    }

    /// The root of the tree of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash> {
        match size {
            0 => Ok(Sha256::digest([]).into()),
            size => self.range(0, size),
        }
    }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves (RFC 9162 §2.1.3.1):
    /// the sibling hashes from the leaf up.
    pub fn inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>> {
        if index >= size {
            return Err(Error::validation(
                "leafIndex",
                crate::Rule::Bounded(crate::error::Bound::TreeIndex(size)),
            ));
        }
        let mut path = vec![];
        self.path(index, 0, size, &mut path)?;
        Ok(path)
    }

    fn path(&self, m: u64, lo: u64, hi: u64, out: &mut Vec<Hash>) -> Result<()> {
        let n = hi - lo;
        if n == 1 {
            return Ok(());
        }
        let k = split(n);
        if m < k {
            self.path(m, lo, lo + k, out)?;
            out.push(self.range(lo + k, hi)?);
        } else {
            self.path(m - k, lo + k, hi, out)?;
            out.push(self.range(lo, lo + k)?);
        }
        Ok(())
    }

    /// The consistency proof between the trees of `first` and `second` leaves (RFC 9162
    /// §2.1.4.1), 0 < first ≤ second.
    pub fn consistency(&self, first: u64, second: u64) -> Result<Vec<Hash>> {
        if first > second {
            return Err(Error::validation(
                "firstSize",
                crate::Rule::Bounded(crate::error::Bound::SecondSize(second)),
            ));
        }
        // Every tree extends the empty one: its proof is empty.
        if first == 0 {
            return Ok(vec![]);
        }
        let mut proof = vec![];
        self.subproof(first, 0, second, true, &mut proof)?;
        Ok(proof)
    }

    fn subproof(&self, m: u64, lo: u64, hi: u64, whole: bool, out: &mut Vec<Hash>) -> Result<()> {
        let n = hi - lo;
        if m == n {
            if !whole {
                out.push(self.range(lo, hi)?);
            }
            return Ok(());
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, lo, lo + k, whole, out)?;
            out.push(self.range(lo + k, hi)?);
        } else {
            self.subproof(m - k, lo + k, hi, false, out)?;
            out.push(self.range(lo, lo + k)?);
        }
        Ok(())
    }
}

/// Checks an inclusion proof (RFC 9162 §2.1.3.2): that the leaf of hash `leaf` is leaf `index`
/// of the tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let mut r = *leaf;
    let climbed = climb(index, size - 1, path, |p, left| {
        r = if left { node_hash(p, &r) } else { node_hash(&r, p) };
    });
    climbed && &r == root
}

/// Checks a consistency proof (RFC 9162 §2.1.4.2): that the tree of `second` leaves with root
/// `second_root` extends the tree of `first` leaves with root `first_root`.
pub fn verify_consistency(
    first: u64,
    second: u64,
    path: &[Hash],
    first_root: &Hash,
    second_root: &Hash,
) -> bool {
    if first > second {
        return false;
    }
    // Every tree extends the empty one, whose root is SHA-256 of nothing (RFC 9162).
    if first == 0 {
        return path.is_empty() && *first_root == <[u8; 32]>::from(Sha256::digest([]));
    }
    if first == second {
        return path.is_empty() && first_root == second_root;
    }
    // A first tree that is one complete subtree is its own first hash; the proof leaves it out.
    let (start, rest) = match path.split_first() {
        _ if first.is_power_of_two() => (first_root, path),
        Some(split) => split,
        None => return false,
    };
    let (mut f_n, mut s_n) = (first - 1, second - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut fr, mut sr) = (*start, *start);
    let climbed = climb(f_n, s_n, rest, |c, left| {
        if left {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
        } else {
            sr = node_hash(&sr, c);
        }
    });
    climbed && &fr == first_root && &sr == second_root
}

/// Walks `path` up from node `f_n` of a level whose last node is `s_n`, as both of RFC 9162's
/// verifications do: `step(hash, left)` folds in each hash, the sibling on the left when `left`.
/// Whether the walk ends at the root: a path too long or too short does not.
fn climb(mut f_n: u64, mut s_n: u64, path: &[Hash], mut step: impl FnMut(&Hash, bool)) -> bool {
    for hash in path {
        if s_n == 0 {
            return false;
        }
        let left = f_n & 1 == 1 || f_n == s_n;
        step(hash, left);
        if left {
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A tree of `n` leaves `b"entry i"`, its stored nodes, and each size's root by appends.
    fn tree(n: u64) -> (BTreeMap<Node, Hash>, Vec<Hash>) {
        let mut frontier = Frontier::empty(0);
        let mut nodes = BTreeMap::new();
        let mut roots = vec![frontier.root()];
        for i in 0..n {
            nodes.extend(frontier.append(format!("entry {i}").as_bytes()));
            roots.push(frontier.root());
        }
        (nodes, roots)
    }

    /// MTH straight from RFC 9162's definition, for the leaves `b"entry lo".."entry hi"`.
    fn mth(lo: u64, hi: u64) -> Hash {
        match hi - lo {
            0 => Sha256::digest([]).into(),
            1 => leaf_hash(format!("entry {lo}").as_bytes()),
            n => {
                let k = split(n);
                node_hash(&mth(lo, lo + k), &mth(lo + k, hi))
            }
        }
    }

    #[test]
    fn roots_by_append_and_by_stored_nodes_are_the_definitions_mth() {
        let (nodes, roots) = tree(70);
        let read = |n: Node| nodes.get(&n).copied().ok_or_else(|| Error::corrupt("missing"));
        let stored = Tree::new(&read);
        for size in 0..=70 {
            assert_eq!(roots[size as usize], mth(0, size), "size {size}");
            assert_eq!(stored.root(size).unwrap(), mth(0, size), "size {size}");
        }
    }

    #[test]
    fn every_inclusion_and_consistency_proof_of_small_trees_verifies_and_a_wrong_one_does_not() {
        let (nodes, roots) = tree(40);
        let read = |n: Node| nodes.get(&n).copied().ok_or_else(|| Error::corrupt("missing"));
        let stored = Tree::new(&read);
        for size in 1..=40u64 {
            let root = roots[size as usize];
            for index in 0..size {
                let path = stored.inclusion(index, size).unwrap();
                let leaf = leaf_hash(format!("entry {index}").as_bytes());
                assert!(verify_inclusion(&leaf, index, size, &path, &root), "{index} in {size}");
                assert!(!verify_inclusion(&leaf, index, size, &path, &roots[size as usize - 1]));
                let other = leaf_hash(b"forged");
                assert!(!verify_inclusion(&other, index, size, &path, &root));
            }
            for first in 1..=size {
                let path = stored.consistency(first, size).unwrap();
                let first_root = roots[first as usize];
                assert!(verify_consistency(first, size, &path, &first_root, &root), "{first} → {size}");
                if first < size {
                    assert!(!verify_consistency(first, size, &path, &roots[first as usize - 1], &root));
                }
            }
        }
    }

    #[test]
    fn node_keys_sort_in_append_order_and_read_back() {
        let (nodes, _) = tree(33);
        let mut frontier = Frontier::empty(0);
        let mut made = vec![];
        for i in 0..33 {
            made.extend(frontier.append(format!("entry {i}").as_bytes()).into_iter().map(|(n, _)| n));
        }
        let mut by_key = made.clone();
        by_key.sort_by_key(|n| n.key());
        assert_eq!(by_key, made);
        assert_eq!(made.len(), nodes.len());
        for node in made {
            assert_eq!(Node::of_key(&node.key()), Some(node));
        }
        assert_eq!(Node::of_key(&[0; 9]), None);
    }
}
