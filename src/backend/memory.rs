//! A backend in memory, for tests only: the same logical state as the sled backend, kept in
//! maps. The suite runs the ledger on it to prove that the decider, the writer and its group
//! commit, audit and rebuild know nothing of sled.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{moved, Backend, Changeset, Entries, Head, Reads, RowStore, Tip, Wake, Watch};
use crate::core::codec;
use crate::core::idempotency::{TokenKey, TokenRecord};
use crate::core::Views;
use crate::error::{Error, Failure, Result};
use crate::views::{MemViews, ViewTree};

/// A ledger's state in memory; lost when dropped. Several ledgers may share one (as hosts share
/// a PostgreSQL database): commits are compare-and-set under one lock, and each ledger is woken
/// by the others' commits.
#[derive(Default)]
pub struct MemoryBackend {
    state: RwLock<Memory>,
    wakes: std::sync::Mutex<Vec<Wake>>,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend").field("state", &self.state).finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Memory {
    meta: BTreeMap<String, Vec<u8>>,
    tip: Tip,
    log: BTreeMap<u64, Vec<u8>>,
    tokens: BTreeMap<TokenKey, TokenRecord>,
    views: MemViews,
    checkpoints: BTreeMap<u64, Vec<u8>>,
    person_keys: BTreeMap<String, Vec<u8>>,
    syncs: u64,
}

impl MemoryBackend {
    /// An empty database.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times the ledger asked for a sync.
    pub fn syncs(&self) -> u64 {
        self.read().syncs
    }

    fn read(&self) -> RwLockReadGuard<'_, Memory> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Memory> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The lower bound of a keyset page: after `after`, or from the start.
fn after_bound<T>(after: Option<T>) -> Bound<T> {
    after.map_or(Bound::Unbounded, Bound::Excluded)
}

impl Reads for MemoryBackend {
    fn token(&self, key: &TokenKey) -> Result<Option<TokenRecord>> {
        Ok(self.read().tokens.get(key).cloned())
    }

    fn tokens_after(&self, after: Option<&TokenKey>, limit: usize) -> Result<Vec<(TokenKey, TokenRecord)>> {
        let memory = self.read();
        let range = memory.tokens.range((after_bound(after), Bound::Unbounded));
        Ok(range.take(limit).map(|(k, r)| (k.clone(), r.clone())).collect())
    }

    fn merkle_node(&self, node: crate::core::merkle::Node) -> Result<Option<crate::core::merkle::Hash>> {
        crate::views::store::merkle_node(self, node)
    }
}

impl Backend for MemoryBackend {
    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.read().meta.get(name).cloned())
    }

    fn insert_meta(&self, name: &str, value: &[u8]) -> Result<Vec<u8>> {
        Ok(self.write().meta.entry(name.to_owned()).or_insert_with(|| value.to_vec()).clone())
    }

    fn swap_meta(&self, name: &str, expected: &[u8], value: &[u8]) -> Result<bool> {
        let mut memory = self.write();
        match memory.meta.get_mut(name) {
            Some(held) if held.as_slice() == expected => {
                *held = value.to_vec();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn record_checkpoint(&self, size: u64, record: &[u8]) -> Result<()> {
        self.write().checkpoints.entry(size).or_insert_with(|| record.to_vec());
        Ok(())
    }

    fn checkpoints_after(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let Some(from) = after.checked_add(1) else { return Ok(vec![]) };
        let memory = self.read();
        Ok(memory
            .checkpoints
            .range(from..)
            .take(limit)
            .map(|(size, record)| (*size, record.clone()))
            .collect())
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>> {
        Ok(self.read().checkpoints.iter().next_back().map(|(size, record)| (*size, record.clone())))
    }

    fn person_key(&self, user_id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.read().person_keys.get(user_id).cloned())
    }

    fn person_keys_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<(String, Vec<u8>)>> {
        let memory = self.read();
        let from = after.map_or(std::ops::Bound::Unbounded, |a| std::ops::Bound::Excluded(a.to_owned()));
        let keys = memory.person_keys.range((from, std::ops::Bound::Unbounded));
        Ok(keys.take(limit).map(|(id, key)| (id.clone(), key.clone())).collect())
    }

    fn remove_meta(&self, name: &str) -> Result<()> {
        self.write().meta.remove(name);
        Ok(())
    }

    fn tip(&self) -> Result<Tip> {
        Ok(self.read().tip)
    }

    fn set_tip(&self, tip: Tip) -> Result<()> {
        self.write().tip = tip;
        Ok(())
    }

    fn last_seq(&self) -> Result<u64> {
        Ok(self.read().log.keys().next_back().copied().unwrap_or(0))
    }

    fn commit(&self, changes: &Changeset) -> Result<()> {
        let mut memory = self.write();
        if memory.tip.head != changes.base {
            return Err(moved(memory.tip.head, changes.base));
        }
        for (seq, bytes) in &changes.log {
            memory.log.insert(*seq, bytes.clone());
        }
        for change in &changes.views {
            memory.views.change(change.clone());
        }
        for (key, record) in &changes.tokens {
            match record {
                Some(record) => memory.tokens.insert(key.clone(), record.clone()),
                None => memory.tokens.remove(key),
            };
        }
        for (user_id, key) in &changes.person_keys {
            match key {
                Some(key) => memory.person_keys.insert(user_id.clone(), key.clone()),
                None => memory.person_keys.remove(user_id),
            };
        }
        if let Some(tip) = changes.tip {
            memory.tip = tip;
        }
        let seq = memory.tip.head.seq;
        drop(memory);
        for wake in self.wakes.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            wake(seq);
        }
        Ok(())
    }

    fn watcher(&self) -> Option<&dyn Watch> {
        Some(self)
    }

    /// A shared backend's barrier: refuses a head this memory does not hold, as PostgreSQL's.
    fn sync(&self, head: Head) -> Result<()> {
        let mut memory = self.write();
        memory.syncs += 1;
        if head.is_entry(memory.log.get(&head.seq).map(Vec::as_slice)) {
            return Ok(());
        }
        Err(Error::failed(
            Failure::Io,
            format_args!(
                "syncing: the memory backend does not hold the entry at seq {} that was read",
                head.seq
            ),
        ))
    }

    fn log(&self, from_seq: u64) -> Entries<'_> {
        let entries: Vec<_> = self
            .read()
            .log
            .range(from_seq..)
            .map(|(seq, bytes)| Ok((codec::seq_key(*seq).to_vec(), bytes.clone())))
            .collect();
        Box::new(entries.into_iter())
    }

    fn log_entry(&self, seq: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.read().log.get(&seq).cloned())
    }

    fn token_count(&self) -> Result<u64> {
        Ok(self.read().tokens.len() as u64)
    }

    fn view_len(&self, view: ViewTree) -> Result<u64> {
        Ok(self.read().views.rows_of(view).count() as u64)
    }

    fn view_rows(&self, view: ViewTree) -> Entries<'_> {
        let rows: Vec<_> = self.read().views.rows_of(view).map(Ok).collect();
        Box::new(rows.into_iter())
    }

    fn replace_view(
        &self,
        view: ViewTree,
        rows: &mut dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
    ) -> Result<()> {
        let rows = rows.collect::<Result<Vec<_>>>()?;
        self.write().views.replace_view(view, rows);
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64> {
        Ok(0)
    }
}

impl Watch for MemoryBackend {
    fn watch(&self, wake: Wake) -> Result<()> {
        self.wakes.lock().unwrap_or_else(|p| p.into_inner()).push(wake);
        Ok(())
    }
}

impl RowStore for MemoryBackend {
    fn row(&self, view: ViewTree, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.read().views.row(view, key)
    }

    fn rows_under(
        &self,
        view: ViewTree,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.read().views.rows_under(view, prefix, after, limit)
    }
}
