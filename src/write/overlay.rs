//! The batch as the decider sees it: the rows its changes set so far, over the rows of the
//! backend ([`RowStore`], and through it [`crate::core::State`]), and the fold of its events
//! into them ([`Views`]).

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::backend::{RowStore, ViewChange};
use crate::core::Views;
use crate::error::Result;
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
        let start = match after {
            Some(after) => Bound::Excluded((view, after.to_vec())),
            None => Bound::Included((view, prefix.to_vec())),
        };
        let mine: Vec<_> = self
            .rows
            .range((start, Bound::Unbounded))
            .take_while(|((v, key), _)| *v == view && key.starts_with(prefix))
            .collect();
        let fetched = below.rows_under(view, prefix, after, limit.saturating_add(mine.len()))?;
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = fetched.into_iter().collect();
        for ((_, key), value) in mine {
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
