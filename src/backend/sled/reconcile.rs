//! Replacing a view with a fold of the log: both sides walked in key order, only the rows that
//! differ written, a chunk at a time.

use std::cmp::Ordering;
use std::ops::Bound;

use ::sled::Batch;

use super::{layout, storage, SledBackend};
use crate::backend::LocalDisk;
use crate::error::Result;
use crate::views::ViewTree;

impl SledBackend {
    /// Makes `view` hold exactly `wanted` (in key order): a merge walk over the stored rows
    /// finds the rows to write and the keys to remove, and applies them every `rebuild_chunk`
    /// changes, flushing after each chunk: sled holds every unflushed write
    /// in memory, and a rebuild from empty views writes millions of rows (a 1M-user rebuild
    /// grew to 8 GB before). The walk over the stored rows restarts after the last key it
    /// settled, so it never meets the rows it wrote itself.
    pub(super) fn reconcile(
        &self,
        view: ViewTree,
        wanted: &mut dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
    ) -> Result<()> {
        let mut wanted = wanted.peekable();
        let mut settled: Option<Vec<u8>> = None;
        loop {
            let (mut batch, mut pending, mut done) = (Batch::default(), 0, false);
            let mut live = self.rows_after(view, settled.as_deref()).peekable();
            while pending < self.rebuild_chunk {
                let stored = match live.peek() {
                    Some(Err(e)) => return Err(e.clone()),
                    Some(Ok(row)) => Some(row),
                    None => None,
                };
                let want = match wanted.peek() {
                    Some(Err(e)) => return Err(e.clone()),
                    Some(Ok(row)) => Some(row),
                    None => None,
                };
                let order = match (stored, want) {
                    (None, None) => {
                        done = true;
                        break;
                    }
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (Some((sk, _)), Some((wk, _))) => sk.cmp(wk),
                };
                let (key, write) = match order {
                    // A stored row the fold does not have: remove it.
                    Ordering::Less => match live.next() {
                        Some(Ok((key, _))) => (key, Some(None)),
                        _ => continue,
                    },
                    // A row the store lacks: write it.
                    Ordering::Greater => match wanted.next() {
                        Some(Ok((key, value))) => (key, Some(Some(value))),
                        _ => continue,
                    },
                    // Both have the key: write only if the bytes differ.
                    Ordering::Equal => match (live.next(), wanted.next()) {
                        (Some(Ok((_, stored))), Some(Ok((key, value)))) => {
                            let write = (stored != value).then_some(Some(value));
                            (key, write)
                        }
                        _ => continue,
                    },
                };
                pending += usize::from(write.is_some());
                match write {
                    Some(Some(value)) => batch.insert(layout::view_key(view, &key), value),
                    Some(None) => batch.remove(layout::view_key(view, &key)),
                    None => {}
                }
                settled = Some(key);
            }
            drop(live);
            if pending > 0 {
                self.tree.apply_batch(batch).inspect_err(|_| self.write_failed()).map_err(storage)?;
                self.flush()?;
            }
            if done {
                return Ok(());
            }
        }
    }

    /// The rows of `view` after key `after` (from the first if `None`), in key order.
    pub(super) fn rows_after(
        &self,
        view: ViewTree,
        after: Option<&[u8]>,
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + '_ {
        let prefix = layout::view_prefix(view);
        let lower = match after {
            Some(after) => Bound::Excluded(layout::view_key(view, after)),
            None => Bound::Included(prefix.to_vec()),
        };
        self.tree
            .range::<Vec<u8>, _>((lower, Bound::Unbounded))
            .take_while(move |entry| entry.as_ref().map_or(true, |(key, _)| key.starts_with(&prefix)))
            .map(|entry| {
                let (key, value) = entry.map_err(storage)?;
                Ok((key.get(2..).unwrap_or_default().to_vec(), value.to_vec()))
            })
    }
}
