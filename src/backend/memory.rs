//! A backend in memory, for tests only: the same logical state as the sled backend, kept in
//! maps. The suite runs the ledger on it to prove that the decider, the writer and its group
//! commit, audit and rebuild know nothing of sled.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{moved, Backend, Changeset, Entries, Head, Listings, Page, Reads, Tip, Wake};
use crate::core::codec;
use crate::core::domain::{
    AccessKey, KxUser, PermissionGroup, PrincipalKey, TemporaryCredential, User, UserId,
};
use crate::core::event::Subject;
use crate::core::idempotency::TokenRecord;
use crate::core::State;
use crate::error::{Error, Result};
use crate::views::{subject_prefix, MemViews, ViewTree};

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
    tokens: BTreeMap<Vec<u8>, TokenRecord>,
    views: MemViews,
    checkpoints: BTreeMap<u64, Vec<u8>>,
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

/// The first `limit` items, and whether more follow.
fn page<T>(mut items: impl Iterator<Item = T>, limit: usize) -> Page<T> {
    let page: Vec<T> = items.by_ref().take(limit).collect();
    let more = items.next().is_some();
    (page, more)
}

/// The lower bound of a keyset page: after `after`, or from the start.
fn after_bound<T>(after: Option<T>) -> Bound<T> {
    after.map_or(Bound::Unbounded, Bound::Excluded)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Reads for MemoryBackend {
    fn token(&self, key: &[u8]) -> Result<Option<TokenRecord>> {
        Ok(self.read().tokens.get(key).cloned())
    }

    fn tokens_after(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, TokenRecord)>> {
        let memory = self.read();
        let range = memory.tokens.range::<[u8], _>((after_bound(after), Bound::Unbounded));
        Ok(range.take(limit).map(|(k, r)| (k.clone(), r.clone())).collect())
    }

    fn merkle_node(&self, node: crate::core::merkle::Node) -> Result<Option<crate::core::merkle::Hash>> {
        Ok(self.read().views.merkle.get(&node.key()[..]).copied())
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
            change.apply(&mut memory.views);
        }
        for (key, record) in &changes.tokens {
            match record {
                Some(record) => memory.tokens.insert(key.clone(), record.clone()),
                None => memory.tokens.remove(key),
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

    fn watch(&self, wake: Wake) -> Result<()> {
        self.wakes.lock().unwrap_or_else(|p| p.into_inner()).push(wake);
        Ok(())
    }

    fn sync(&self, _head: Head) -> Result<()> {
        self.write().syncs += 1;
        Ok(())
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

    fn history(&self, subject: Subject) -> Result<Vec<u64>> {
        let prefix = subject_prefix(subject);
        let memory = self.read();
        let keys = memory.views.history.range(prefix.clone()..).take_while(|key| key.starts_with(&prefix));
        keys.map(|key| {
            key.get(prefix.len()..)
                .and_then(codec::seq_of)
                .ok_or_else(|| Error::corrupt("corrupt history: key without a seq"))
        })
        .collect()
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
        set_view(&mut self.write().views, view, rows)
    }

    fn size_on_disk(&self) -> Result<u64> {
        Ok(0)
    }
}

impl State for MemoryBackend {
    fn user(&self, user_id: &str) -> Result<Option<User>> {
        self.read().views.user(user_id)
    }

    fn email_owner(&self, email_key: &str) -> Result<Option<UserId>> {
        self.read().views.email_owner(email_key)
    }

    fn enabled_users(&self) -> Result<u64> {
        self.read().views.enabled_users()
    }

    fn kx_user(&self, environment_id: &str, user_name: &str) -> Result<Option<KxUser>> {
        self.read().views.kx_user(environment_id, user_name)
    }

    fn kx_users_in(&self, environment_id: &str) -> Result<u64> {
        self.read().views.kx_users_in(environment_id)
    }

    fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>> {
        self.read().views.access_key(access_key_id)
    }

    fn permission_group(&self, group: &str) -> Result<Option<PermissionGroup>> {
        self.read().views.permission_group(group)
    }

    fn is_member(&self, group: &str, user: &str) -> Result<bool> {
        self.read().views.is_member(group, user)
    }

    fn groups_of(&self, user: &str) -> Result<Vec<String>> {
        self.read().views.groups_of(user)
    }

    fn members_of(&self, group: &str) -> Result<Vec<UserId>> {
        self.read().views.members_of(group)
    }

    fn password_hash(&self, user: &str) -> Result<Option<String>> {
        self.read().views.password_hash(user)
    }

    fn principal_key(&self, access_key_id: &str) -> Result<Option<PrincipalKey>> {
        self.read().views.principal_key(access_key_id)
    }

    fn temporary_credential(&self, access_key_id: &str) -> Result<Option<TemporaryCredential>> {
        self.read().views.temporary_credential(access_key_id)
    }

    fn users_with_principal(&self, principal_arn: &str) -> Result<Vec<User>> {
        self.read().views.users_with_principal(principal_arn)
    }

    fn current_data_key(&self) -> Result<u32> {
        self.read().views.current_data_key()
    }

    fn data_key_retired(&self, key_id: u32) -> Result<bool> {
        self.read().views.data_key_retired(key_id)
    }
}

/// Makes `view` of `views` hold exactly `rows`, decoded from their canonical form.
fn set_view(views: &mut MemViews, view: ViewTree, rows: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
    let what = view.name();
    match view {
        ViewTree::Users => views.users = by_key(what, &rows)?,
        ViewTree::Emails => views.emails = by_key(what, &rows)?,
        ViewTree::Counters => {
            views.enabled_users = 0;
            views.kx_counts.clear();
            for (key, value) in rows {
                let count: u64 = codec::decode(what, &value)?;
                match key.strip_prefix(b"kx_users/") {
                    Some(env) => {
                        views.kx_counts.insert(key_text(env)?, count);
                    }
                    None => views.enabled_users = count,
                }
            }
        }
        ViewTree::KxUsers => {
            views.kx_users = rows
                .iter()
                .map(|(_, v)| {
                    let user: KxUser = codec::decode(what, v)?;
                    Ok(((user.environment_id.clone(), user.user_name.clone()), user))
                })
                .collect::<Result<_>>()?
        }
        ViewTree::History => views.history = rows.into_iter().map(|(k, _)| k).collect(),
        ViewTree::Merkle => {
            views.merkle = rows
                .into_iter()
                .map(|(k, v)| {
                    Ok((k, v.try_into().map_err(|_| Error::corrupt("a merkle row that is not a hash"))?))
                })
                .collect::<Result<_>>()?
        }
        ViewTree::AccessKeys => views.access_keys = by_key(what, &rows)?,
        ViewTree::Groups => views.groups = by_key(what, &rows)?,
        ViewTree::Memberships => {
            // Each membership is indexed both ways; the (group, user) keys say it all.
            views.memberships = rows
                .iter()
                .filter_map(|(k, _)| k.strip_prefix(b"g\0"))
                .map(|rest| {
                    let text = key_text(rest)?;
                    let (group, user) =
                        text.split_once('\0').ok_or_else(|| Error::corrupt("a membership key"))?;
                    Ok((group.to_owned(), user.to_owned()))
                })
                .collect::<Result<_>>()?
        }
        ViewTree::Passwords => views.passwords = by_key(what, &rows)?,
        ViewTree::PrincipalKeys => views.principal_keys = by_key(what, &rows)?,
        ViewTree::TemporaryCredentials => views.temporary_credentials = by_key(what, &rows)?,
    }
    Ok(())
}

/// A stored view key as text.
fn key_text(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::corrupt("a view key is not UTF-8"))
}

/// Rows keyed by text, with decoded values.
fn by_key<T: serde::de::DeserializeOwned>(
    what: &str,
    rows: &[(Vec<u8>, Vec<u8>)],
) -> Result<BTreeMap<String, T>> {
    rows.iter().map(|(key, value)| Ok((key_text(key)?, codec::decode(what, value)?))).collect()
}

impl Listings for MemoryBackend {
    fn users_after(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<User>> {
        let memory = self.read();
        let after = after.map(text);
        let range = memory.views.users.range::<str, _>((after_bound(after.as_deref()), Bound::Unbounded));
        Ok(page(range.map(|(_, u)| u.clone()), limit))
    }

    fn kx_users_after(
        &self,
        environment_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<KxUser>> {
        let memory = self.read();
        let users = memory.views.kx_users.iter().filter(|((env, name), _)| {
            env == environment_id && after.is_none_or(|after| name.as_str() > after)
        });
        Ok(page(users.map(|(_, u)| u.clone()), limit))
    }

    fn groups_after(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<PermissionGroup>> {
        let memory = self.read();
        let after = after.map(text);
        let range = memory.views.groups.range::<str, _>((after_bound(after.as_deref()), Bound::Unbounded));
        Ok(page(range.map(|(_, g)| g.clone()), limit))
    }

    fn members_after(&self, group: &str, after: Option<&str>, limit: usize) -> Result<Page<UserId>> {
        let memory = self.read();
        let members = memory
            .views
            .memberships
            .iter()
            .filter(|(g, user)| g == group && after.is_none_or(|after| user.as_str() > after));
        Ok(page(members.map(|(_, user)| user.clone()), limit))
    }

    fn groups_of_after(&self, user: &str, after: Option<&str>, limit: usize) -> Result<Page<String>> {
        let memory = self.read();
        let groups = memory
            .views
            .memberships
            .iter()
            .filter(|(group, u)| u == user && after.is_none_or(|after| group.as_str() > after));
        Ok(page(groups.map(|(group, _)| group.clone()), limit))
    }

    fn access_keys(&self) -> Result<Vec<AccessKey>> {
        Ok(self.read().views.access_keys.values().cloned().collect())
    }

    fn principal_keys(&self) -> Result<Vec<PrincipalKey>> {
        Ok(self.read().views.principal_keys.values().cloned().collect())
    }
}
