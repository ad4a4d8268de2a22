//! The views held in memory: a fold of a log (tests, states as of a point, small logs), kept as
//! the canonical rows a store would hold, so it answers [`crate::core::State`] as every row
//! store does and compares with one row for row.

use crate::core::codec;
use crate::core::event::Envelope;
use crate::core::merkle::Frontier;
use crate::core::{ViewChange, Views};
use crate::error::Result;
use crate::views::store::{under, RowStore};
use crate::views::{fold, rows, Row, Rows, ViewTree, DATA_KEYS};

/// The views folded in memory: what the store's views must equal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemViews {
    rows: Rows,
    /// Where the Merkle tree's next leaf goes.
    frontier: Frontier,
    /// The hash of the last entry folded: what an envelope folded without its bytes is sealed
    /// onto, to hash it into the tree.
    prev_hash: [u8; 32],
}

// `fold` serves audit's tests and this crate's own (whitebox) tests.
#[cfg_attr(not(feature = "whitebox"), allow(dead_code))]
impl MemViews {
    /// Folds envelopes, in log order, from empty views.
    pub fn fold<'a>(envelopes: impl IntoIterator<Item = &'a Envelope>) -> Result<Self> {
        let mut views = MemViews::default();
        for envelope in envelopes {
            views.apply(envelope)?;
        }
        Ok(views)
    }

    /// Folds one envelope in: its effect, and its entry (sealed onto the last) into the tree.
    pub fn apply(&mut self, envelope: &Envelope) -> Result<()> {
        let (bytes, hash) = codec::seal(envelope, self.prev_hash);
        self.apply_entry(envelope, &bytes, hash)
    }

    /// Folds one log entry in: `envelope`, stored as `bytes`, whose chain hash is `hash`.
    pub fn apply_entry(&mut self, envelope: &Envelope, bytes: &[u8], hash: [u8; 32]) -> Result<()> {
        fold(self, envelope)?;
        for (node, node_hash) in self.frontier.append(bytes) {
            self.change(ViewChange::MerkleNode(node, node_hash));
        }
        self.prev_hash = hash;
        Ok(())
    }

    /// The rows the store would hold for these views.
    pub fn rows(&self) -> Rows {
        self.rows.clone()
    }

    /// The counter rows of the keyring's state: the current data key, the retired ones.
    pub fn keyring_rows(&self) -> Vec<Row> {
        self.rows_of(ViewTree::Counters)
            .filter(|(key, _)| key.starts_with(DATA_KEYS))
            .map(|(key, value)| ((ViewTree::Counters, key), value))
            .collect()
    }

    /// The (key, value) rows the store would hold in `view`, in the store's key order.
    pub fn rows_of(&self, view: ViewTree) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
        let from = (view, Vec::new());
        self.rows
            .range(from..)
            .take_while(move |((v, _), _)| *v == view)
            .map(|((_, k), v)| (k.clone(), v.clone()))
    }

    /// Makes `view` hold exactly `rows` (in any order).
    pub fn replace_view(&mut self, view: ViewTree, rows: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) {
        self.rows.retain(|(v, _), _| *v != view);
        self.rows.extend(rows.into_iter().map(|(key, value)| ((view, key), value)));
    }

    /// Whether `view` holds no row.
    pub fn is_empty(&self, view: ViewTree) -> bool {
        self.rows_of(view).next().is_none()
    }
}

impl RowStore for MemViews {
    fn row(&self, view: ViewTree, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.rows.get(&(view, key.to_vec())).cloned())
    }

    fn rows_under(
        &self,
        view: ViewTree,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let rows = under(&self.rows, view, prefix, after).take(limit);
        Ok(rows.map(|(key, value)| (key.clone(), value.clone())).collect())
    }
}

impl Views for MemViews {
    fn change(&mut self, change: ViewChange) {
        for (at, value) in rows(&change) {
            match value {
                Some(value) => self.rows.insert(at, value),
                None => self.rows.remove(&at),
            };
        }
    }
}
