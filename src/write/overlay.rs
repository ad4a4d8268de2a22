//! The batch as the decider sees it: the rows its changes set so far, over the rows of the
//! backend ([`RowStore`], and through it [`crate::core::State`]), and the fold of its events
//! into them ([`Views`]).

use std::collections::BTreeMap;

use crate::backend::{RowStore, ViewChange};
use crate::core::Views;
use crate::error::Result;
use crate::views::store::under;
use crate::views::{rows, ViewTree};
use crate::write::batch::Batch;

/// The rows a batch changed, over the rows below it: `None` marks a row removed.
#[derive(Debug, Default)]
pub(super) struct Overlay {
    rows: BTreeMap<(ViewTree, Vec<u8>), Option<Vec<u8>>>,
}

impl Overlay {
    /// Lays `change`'s rows over the ones before.
    fn set(&mut self, change: &ViewChange) {
        self.rows.extend(rows(change));
    }

    /// Row `key` of `view` as the batch left it.
    fn row(&self, below: &(impl RowStore + ?Sized), view: ViewTree, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.rows.get(&(view, key.to_vec())) {
            Some(value) => Ok(value.clone()),
            None => below.row(view, key),
        }
    }

    /// Rows of `view` under `prefix` after `after`, at most `limit`, as the batch left them.
    /// Below, `limit` rows plus one for each row the batch changed in range suffice: each change
    /// hides at most one row below, so the rows past them cannot be among the first `limit`.
    fn rows_under(
        &self,
        below: &(impl RowStore + ?Sized),
        view: ViewTree,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mine: Vec<_> = under(&self.rows, view, prefix, after).collect();
        let fetched = below.rows_under(view, prefix, after, limit.saturating_add(mine.len()))?;
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = fetched.into_iter().collect();
        for (key, value) in mine {
            match value {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        Ok(merged.into_iter().take(limit).collect())
    }
}

impl RowStore for Batch<'_> {
    fn row(&self, view: ViewTree, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.overlay.row(self.reads, view, key)
    }

    fn rows_under(
        &self,
        view: ViewTree,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.overlay.rows_under(self.reads, view, prefix, after, limit)
    }
}

impl Views for Batch<'_> {
    fn change(&mut self, change: ViewChange) {
        self.overlay.set(&change);
        self.changes.views.push(change);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::MemViews;
    use proptest::prelude::*;

    /// Rows of the memberships view as (key, present): keys share prefixes, so pages cut across
    /// the batch's changes and the rows below.
    fn key(n: u8) -> Vec<u8> {
        vec![b'g', n % 3, n]
    }

    proptest! {
        /// A page read through the overlay equals the page of the rows below with the batch's
        /// changes applied, whatever the rows, the changes, the prefix, the start and the limit.
        #[test]
        fn a_page_through_the_overlay_is_the_page_of_the_changed_rows(
            below in proptest::collection::btree_set(0u8..40, 0..30),
            changes in proptest::collection::vec((0u8..40, any::<bool>()), 0..20),
            prefix in proptest::option::of(0u8..3),
            after in proptest::option::of(0u8..40),
            limit in 0usize..12,
        ) {
            let view = ViewTree::Memberships;
            let mut rows = MemViews::default();
            rows.replace_view(view, below.iter().map(|n| (key(*n), vec![*n])));
            let mut overlay = Overlay::default();
            let mut applied = rows.clone();
            for (n, put) in &changes {
                let value = put.then(|| vec![n.wrapping_add(100)]);
                overlay.rows.insert((view, key(*n)), value.clone());
                let mut all: Vec<_> = applied.rows_of(view).collect();
                all.retain(|(k, _)| *k != key(*n));
                all.extend(value.map(|v| (key(*n), v)));
                applied.replace_view(view, all);
            }
            let prefix = prefix.map_or(vec![b'g'], |p| vec![b'g', p]);
            let after = after.map(key).filter(|k| k.starts_with(&prefix));
            let got = overlay.rows_under(&rows, view, &prefix, after.as_deref(), limit).unwrap();
            let want = applied.rows_under(view, &prefix, after.as_deref(), limit).unwrap();
            prop_assert_eq!(got, want);
        }
    }
}
