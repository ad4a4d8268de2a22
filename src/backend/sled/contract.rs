//! The [`Backend`] contract kept by sled: meta and tip, atomic commits, syncs, the log, tokens,
//! pages of the views.

use std::ops::Bound;

use ::sled::Batch;

use super::mark::{Mark, MarkFile};
use super::reads::log_seq;
use super::{layout, storage, SledBackend};
use crate::backend::{moved, stored_token_key, Backend, Changeset, Entries, Head, LocalDisk, Reads, Tip};
use crate::core::codec;
use crate::core::event::Subject;
use crate::core::idempotency::{TokenKey, TokenRecord};
use crate::error::{Error, Failure, Result};
use crate::views::{subject_prefix, ViewTree};

impl Reads for SledBackend {
    fn token(&self, key: &TokenKey) -> Result<Option<TokenRecord>> {
        let key = key.to_bytes();
        self.get(&layout::token_key(&key))?
            .map(|v| codec::decode(format_args!("tokens[{}]", String::from_utf8_lossy(&key)), &v))
            .transpose()
    }

    fn tokens_after(&self, after: Option<&TokenKey>, limit: usize) -> Result<Vec<(TokenKey, TokenRecord)>> {
        let lower = match after {
            Some(after) => Bound::Excluded(layout::token_key(&after.to_bytes())),
            None => Bound::Included(layout::TOKENS_PREFIX.to_vec()),
        };
        let mut records = Vec::new();
        for entry in self.tree.range::<Vec<u8>, _>((lower, Bound::Unbounded)) {
            let (key, value) = entry.map_err(storage)?;
            let Some(key) = key.strip_prefix(&layout::TOKENS_PREFIX) else { break };
            if records.len() == limit {
                break;
            }
            let what = format_args!("tokens[{}]", String::from_utf8_lossy(key)).to_string();
            records.push((stored_token_key(key)?, codec::decode(what, &value)?));
        }
        Ok(records)
    }

    fn merkle_node(&self, node: crate::core::merkle::Node) -> Result<Option<crate::core::merkle::Hash>> {
        crate::views::store::merkle_node(self, node)
    }
}

impl Backend for SledBackend {
    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get(&layout::meta_key(name))?.map(|v| v.to_vec()))
    }

    fn insert_meta(&self, name: &str, value: &[u8]) -> Result<Vec<u8>> {
        let key = layout::meta_key(name);
        // Only this process writes (the directory is locked), but the contract is the same.
        let stored = match self.tree.compare_and_swap(&key, None::<&[u8]>, Some(value)).map_err(storage)? {
            Ok(()) => value.to_vec(),
            Err(existing) => existing.current.map_or_else(|| value.to_vec(), |v| v.to_vec()),
        };
        self.flush()?;
        Ok(stored)
    }

    fn swap_meta(&self, name: &str, expected: &[u8], value: &[u8]) -> Result<bool> {
        let key = layout::meta_key(name);
        let swapped = self.tree.compare_and_swap(&key, Some(expected), Some(value)).map_err(storage)?.is_ok();
        self.flush()?;
        Ok(swapped)
    }

    fn record_checkpoint(&self, size: u64, record: &[u8]) -> Result<()> {
        let key = layout::checkpoint_key(size);
        self.tree.compare_and_swap(key, None::<&[u8]>, Some(record)).map_err(storage)?.ok();
        self.flush()
    }

    fn checkpoints_after(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let Some(from) = after.checked_add(1) else { return Ok(vec![]) };
        let range = layout::checkpoint_key(from).to_vec()..vec![layout::CHECKPOINTS_PREFIX[0] + 1];
        self.tree
            .range(range)
            .take(limit)
            .map(|entry| {
                let (key, value) = entry.map_err(storage)?;
                Ok((checkpoint_size(&key)?, value.to_vec()))
            })
            .collect()
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>> {
        let range = layout::CHECKPOINTS_PREFIX.to_vec()..vec![layout::CHECKPOINTS_PREFIX[0] + 1];
        match self.tree.range(range).next_back().transpose().map_err(storage)? {
            None => Ok(None),
            Some((key, value)) => Ok(Some((checkpoint_size(&key)?, value.to_vec()))),
        }
    }

    fn person_key(&self, user_id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get(&layout::person_key(user_id))?.map(|v| v.to_vec()))
    }

    fn person_keys_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<(String, Vec<u8>)>> {
        let prefix = layout::PERSON_KEYS_PREFIX[0];
        let from = after.map_or(std::ops::Bound::Included(vec![prefix]), |a| {
            std::ops::Bound::Excluded(layout::person_key(a))
        });
        self.tree
            .range::<Vec<u8>, _>((from, std::ops::Bound::Excluded(vec![prefix + 1])))
            .take(limit)
            .map(|entry| {
                let (key, value) = entry.map_err(storage)?;
                let id = key.get(1..).and_then(|id| std::str::from_utf8(id).ok()).ok_or_else(|| {
                    Error::corrupt(format_args!("corrupt person keys: key {key:?} is not a user id"))
                })?;
                Ok((id.to_owned(), value.to_vec()))
            })
            .collect()
    }

    fn remove_meta(&self, name: &str) -> Result<()> {
        self.tree.remove(layout::meta_key(name)).map_err(storage)?;
        self.flush()
    }

    fn tip(&self) -> Result<Tip> {
        match self.get(&layout::meta_key(layout::TIP))? {
            Some(bytes) => codec::decode("meta tip", &bytes),
            None => Ok(Tip::default()),
        }
    }

    fn set_tip(&self, tip: Tip) -> Result<()> {
        self.tree.insert(layout::meta_key(layout::TIP), codec::encode(&tip)).map_err(storage)?;
        Ok(())
    }

    fn last_seq(&self) -> Result<u64> {
        let log = layout::log_key(0).to_vec()..layout::log_end().to_vec();
        match self.tree.range(log).next_back().transpose().map_err(storage)? {
            None => Ok(0),
            Some((key, _)) => log_seq(&key),
        }
    }

    fn commit(&self, changes: &Changeset) -> Result<()> {
        // The directory's lock makes this process the only writer, so the head cannot move
        // between this check and the batch; the check keeps the contract all the same.
        let head = self.tip()?.head;
        if head != changes.base {
            return Err(moved(head, changes.base));
        }
        let mut batch = Batch::default();
        for (seq, bytes) in &changes.log {
            batch.insert(&layout::log_key(*seq)[..], bytes.as_slice());
        }
        // A later change of the same row replaces an earlier one: sled's batch keeps the last.
        for change in &changes.views {
            for ((view, key), value) in crate::views::rows(change) {
                let key = layout::view_key(view, &key);
                match value {
                    Some(value) => batch.insert(key, value),
                    None => batch.remove(key),
                }
            }
        }
        for (key, record) in &changes.tokens {
            let key = layout::token_key(&key.to_bytes());
            match record {
                Some(record) => batch.insert(key, codec::encode(record)),
                None => batch.remove(key),
            }
        }
        for (user_id, key) in &changes.person_keys {
            match key {
                Some(key) => batch.insert(layout::person_key(user_id), key.as_slice()),
                None => batch.remove(layout::person_key(user_id)),
            }
        }
        if let Some(tip) = &changes.tip {
            batch.insert(layout::meta_key(layout::TIP), codec::encode(tip));
        }
        self.tree.apply_batch(batch).map_err(storage)?;
        Ok(())
    }

    fn sync(&self, head: Head) -> Result<()> {
        if self.failed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::failed(Failure::Poisoned, "an earlier write failed; reopen the database"));
        }
        self.flush().inspect_err(|_| self.write_failed())?;
        let mut mark = self.mark.lock().unwrap_or_else(|p| p.into_inner());
        match mark.as_mut() {
            Some(mark) => mark.record(Mark { seq: head.seq, hash: head.hash }),
            None => Ok(()),
        }
    }

    fn local_disk(&self) -> Option<&dyn LocalDisk> {
        Some(self)
    }

    fn log(&self, from_seq: u64) -> Entries<'_> {
        let log = layout::log_key(from_seq).to_vec()..layout::log_end().to_vec();
        Box::new(self.tree.range(log).map(|entry| {
            let (key, value) = entry.map_err(storage)?;
            Ok((key.get(1..).unwrap_or_default().to_vec(), value.to_vec()))
        }))
    }

    fn log_entry(&self, seq: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.get(&layout::log_key(seq))?.map(|v| v.to_vec()))
    }

    fn history(&self, subject: Subject) -> Result<Vec<u64>> {
        let prefix = subject_prefix(subject);
        self.tree
            .scan_prefix(layout::view_key(ViewTree::History, &prefix))
            .keys()
            .map(|key| {
                let key = key.map_err(storage)?;
                key.get(2 + prefix.len()..)
                    .and_then(codec::seq_of)
                    .ok_or_else(|| Error::corrupt("corrupt history: key without a seq"))
            })
            .collect()
    }

    fn token_count(&self) -> Result<u64> {
        self.count(&layout::TOKENS_PREFIX)
    }

    fn view_len(&self, view: ViewTree) -> Result<u64> {
        self.count(&layout::view_prefix(view))
    }

    fn view_rows(&self, view: ViewTree) -> Entries<'_> {
        Box::new(self.rows(view))
    }

    fn replace_view(
        &self,
        view: ViewTree,
        rows: &mut dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
    ) -> Result<()> {
        self.reconcile(view, rows)
    }

    fn size_on_disk(&self) -> Result<u64> {
        self.db.size_on_disk().map_err(storage)
    }
}

/// The tree size a signed checkpoint's key names.
fn checkpoint_size(key: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = key
        .get(1..)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| crate::error::Error::corrupt("corrupt checkpoints: a key of the wrong length"))?;
    Ok(u64::from_be_bytes(bytes))
}

impl LocalDisk for SledBackend {
    fn check_space(&self) -> Result<()> {
        let reserve = self.reserve.load(std::sync::atomic::Ordering::Relaxed);
        if reserve == 0 {
            return Ok(());
        }
        let free = fs2::available_space(&self.dir.path).map_err(|e| {
            Error::failed(
                Failure::Io,
                format_args!("cannot read the free space of {}: {e}", self.path.display()),
            )
        })?;
        if free >= reserve {
            return Ok(());
        }
        Err(Error::failed(
            Failure::DiskFull,
            format_args!(
                "the disk holding {} has {} KiB free, below the ledger's reserve of {} KiB (--disk-reserve-mib, \
                 Config::disk_reserve); nothing was written: free some space and retry",
                self.path.display(),
                free / 1024,
                reserve / 1024
            ),
        ))
    }

    /// sled 0.34 applies a batch key by key and writes its I/O buffers in the background, so a
    /// failed write may leave part of a batch in memory and, later, on disk. The mark records
    /// the failure (its slot overwrites bytes the file has, so a full disk does not stop it) and
    /// nothing is flushed again, not even on drop.
    fn write_failed(&self) {
        if self.failed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let mut mark = self.mark.lock().unwrap_or_else(|p| p.into_inner());
        // If even this fails, the open after it cannot know; the error that got here is reported.
        let _ = mark.as_mut().map(MarkFile::record_failure);
    }
}
