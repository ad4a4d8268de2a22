//! Reading sled: one key, a view's rows, a page of a view, counters; the rows decoded, naming
//! the view and key of one that does not decode; and the [`State`] the decider asks of it.

use std::ops::Bound;

use super::{layout, storage, SledBackend};
use crate::error::{Error, Result};
use crate::views::store::RowStore;
use crate::views::ViewTree;

impl SledBackend {
    /// Flushes sled and fdatasyncs its data file.
    pub(super) fn flush(&self) -> Result<()> {
        self.db.flush().map_err(storage)?;
        self.data_file.sync_data()?;
        Ok(())
    }

    pub(super) fn get(&self, key: &[u8]) -> Result<Option<::sled::IVec>> {
        self.tree.get(key).map_err(storage)
    }

    pub(super) fn rows(&self, view: ViewTree) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + '_ {
        self.rows_after(view, None)
    }

    /// How many records have keys starting with `prefix`.
    pub(super) fn count(&self, prefix: &[u8]) -> Result<u64> {
        let mut count = 0;
        for key in self.tree.scan_prefix(prefix).keys() {
            key.map_err(storage)?;
            count += 1;
        }
        Ok(count)
    }
}

/// The seq of a log key, or the error naming the bad key.
pub(super) fn log_seq(key: &[u8]) -> Result<u64> {
    layout::seq_of_log_key(key)
        .ok_or_else(|| Error::corrupt(format_args!("corrupt log: key of {} bytes", key.len())))
}

impl RowStore for SledBackend {
    fn row(&self, view: ViewTree, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.get(&layout::view_key(view, key))?.map(|v| v.to_vec()))
    }

    fn rows_under(
        &self,
        view: ViewTree,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let start = layout::view_key(view, after.unwrap_or(prefix));
        let lower = if after.is_some() { Bound::Excluded(start) } else { Bound::Included(start) };
        let full_prefix = layout::view_key(view, prefix);
        let mut rows = Vec::with_capacity(limit.min(128));
        for entry in self.tree.range::<Vec<u8>, _>((lower, Bound::Unbounded)) {
            let (key, value) = entry.map_err(storage)?;
            if !key.starts_with(&full_prefix) || rows.len() == limit {
                break;
            }
            rows.push((key.get(2..).unwrap_or_default().to_vec(), value.to_vec()));
        }
        Ok(rows)
    }
}
