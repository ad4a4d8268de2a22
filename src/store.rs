//! The sled store: the log, the views and meta, one transaction per commit. Knows no API rule.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Transactional, Tree};

use crate::codec::{self, FORMAT_VERSION};
use crate::decider::State;
use crate::domain::{Identity, KxUser, User, UserId};
use crate::error::{Error, Result};
use crate::event::{Sealed, Subject};
use crate::idempotency::{self, TokenRecord};
use crate::views::{kx_count_key, kx_key, subject_prefix, Rows, ViewTree, ENABLED_USERS};

const META_FORMAT: &[u8] = b"format";
const META_HEAD: &[u8] = b"head";
const META_PAGE_SECRET: &[u8] = b"page_secret";
const META_IDENTITY: &[u8] = b"identity";
/// The seq the views are folded up to; equal to the head's seq except during a rebuild.
const META_VIEWS_SEQ: &[u8] = b"views_seq";

/// The end of the log: what the next envelope chains onto.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Seq of the last envelope; 0 for an empty log.
    pub seq: u64,
    /// Hash of the last envelope; all zeros for an empty log.
    pub hash: [u8; 32],
    /// Time of the last envelope, so times never go backwards.
    pub time_ms: i64,
}

/// Everything one commit writes: appended log entries, the new head, other writes and deletes.
#[derive(Debug, Default)]
pub struct Changes {
    /// (seq, sealed bytes), in seq order.
    pub log: Vec<(u64, Vec<u8>)>,
    /// The head after these entries.
    pub head: Head,
    /// Values to set (`Some`) or remove (`None`) in the other trees.
    pub writes: BTreeMap<(TreeId, Vec<u8>), Option<Vec<u8>>>,
    /// The seq the views are folded up to after this commit, when it moves.
    pub views_seq: Option<u64>,
}

impl Changes {
    /// True when committing would write nothing.
    pub fn is_empty(&self) -> bool {
        self.log.is_empty() && self.writes.is_empty() && self.views_seq.is_none()
    }
}

/// What opening a store found (or made).
pub struct Opened {
    /// The store.
    pub store: Store,
    /// The end of its log.
    pub head: Head,
    /// The secret that keys its pagination tokens.
    pub page_secret: [u8; 32],
    /// The region and account it serves.
    pub identity: Identity,
    /// Why the views cannot be trusted (they lag or lead the log), if they cannot.
    pub stale: Option<String>,
}

/// The sled database of one ledger.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    /// Indexed by [`TreeId::index`]; a slice so one transaction can span them all.
    trees: Vec<Tree>,
    /// sled's data file, kept open to fdatasync it: sled 0.34's flush stops at sync_file_range.
    data_file: Arc<File>,
    path: PathBuf,
}

/// A sled tree of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TreeId {
    /// seq → sealed envelope.
    Log,
    /// head, format version, page secret.
    Meta,
    /// (operation, clientToken) → token record.
    Tokens,
    /// (expiry, token key) → nothing: the token records in order of expiry.
    TokenExpiry,
    /// A view derived from the log.
    View(ViewTree),
}

impl TreeId {
    const FIXED: [(TreeId, &'static str); 4] = [
        (TreeId::Log, "log"),
        (TreeId::Meta, "meta"),
        (TreeId::Tokens, "tokens"),
        (TreeId::TokenExpiry, "token_expiry"),
    ];

    fn index(self) -> usize {
        match self {
            TreeId::Log => 0,
            TreeId::Meta => 1,
            TreeId::Tokens => 2,
            TreeId::TokenExpiry => 3,
            TreeId::View(v) => Self::FIXED.len() + v as usize,
        }
    }
}

impl Store {
    /// Opens (or creates) the database at `path` with a page cache of `cache_bytes`.
    ///
    /// A new database takes `region` and `account` (or the defaults); an existing one keeps
    /// its own, and refuses to open if given different ones.
    pub fn open(
        path: &Path,
        cache_bytes: u64,
        region: Option<&str>,
        account: Option<&str>,
    ) -> Result<Opened> {
        let db = open_sled(sled::Config::new().path(path).cache_capacity(cache_bytes))?;
        let names = TreeId::FIXED.iter().map(|(_, name)| *name).chain(ViewTree::ALL.map(ViewTree::name));
        let trees = names.map(|name| db.open_tree(name)).collect::<sled::Result<Vec<_>>>()?;
        let data_file = File::open(path.join("db"))
            .map_err(|e| Error::internal(format_args!("cannot open {}/db: {e}", path.display())))?;
        let store = Store { db, trees, data_file: Arc::new(data_file), path: path.to_owned() };
        let (head, page_secret) = store.init_meta()?;
        let identity = store.init_identity(region, account)?;
        let stale = store.consistency(&head)?;
        Ok(Opened { store, head, page_secret, identity, stale })
    }

    /// Compares the head in meta, the last log entry and the seq the views are folded up to.
    fn consistency(&self, head: &Head) -> Result<Option<String>> {
        let last = self.last_seq()?;
        let views = self.views_seq()?;
        Ok(if last != head.seq {
            Some(format!("the log ends at seq {last} but meta's head is at seq {}", head.seq))
        } else if views != head.seq {
            let how = if views < head.seq { "lag" } else { "lead" };
            Some(format!("the views {how} the log: folded up to seq {views}, the log ends at seq {last}"))
        } else {
            None
        })
    }

    /// The seq of the last log entry (0 for an empty log).
    pub fn last_seq(&self) -> Result<u64> {
        match self.tree(TreeId::Log).last()? {
            None => Ok(0),
            Some((key, _)) => codec::seq_of(&key)
                .ok_or_else(|| Error::internal(format_args!("corrupt log: key of {} bytes", key.len()))),
        }
    }

    fn views_seq(&self) -> Result<u64> {
        let meta = self.tree(TreeId::Meta);
        Ok(meta.get(META_VIEWS_SEQ)?.map(|v| codec::decode("meta views_seq", &v)).transpose()?.unwrap_or(0))
    }

    fn init_identity(&self, region: Option<&str>, account: Option<&str>) -> Result<Identity> {
        let meta = self.tree(TreeId::Meta);
        let Some(bytes) = meta.get(META_IDENTITY)? else {
            let default = Identity::default();
            let identity = Identity {
                region: region.map_or(default.region, str::to_owned),
                account: account.map_or(default.account, str::to_owned),
            };
            meta.insert(META_IDENTITY, codec::encode(&identity))?;
            self.sync()?;
            return Ok(identity);
        };
        let identity: Identity = codec::decode("meta identity", &bytes)?;
        for (what, stored, given) in
            [("region", &identity.region, region), ("account", &identity.account, account)]
        {
            if let Some(given) = given.filter(|g| g != stored) {
                return Err(Error::internal(format_args!(
                    "database at {} was created for {what} {stored}; it cannot be reopened for {what} {given}",
                    self.path.display()
                )));
            }
        }
        Ok(identity)
    }

    /// Checks the format of an existing database, or stamps a new one; returns head and page secret.
    fn init_meta(&self) -> Result<(Head, [u8; 32])> {
        let meta = self.tree(TreeId::Meta);
        match meta.get(META_FORMAT)?.as_deref() {
            Some([FORMAT_VERSION]) => {}
            Some(other) => {
                return Err(Error::internal(format_args!(
                    "database at {} is in format version {}, this build reads version {FORMAT_VERSION}",
                    self.path.display(),
                    other.first().map_or("(empty)".to_owned(), u8::to_string),
                )))
            }
            None if !self.tree(TreeId::Log).is_empty() => {
                return Err(Error::internal(format_args!(
                    "database at {} has a log but no format version in meta",
                    self.path.display()
                )))
            }
            None => {
                let mut secret = [0u8; 32];
                getrandom::fill(&mut secret)
                    .map_err(|e| Error::internal(format_args!("no randomness for the page secret: {e}")))?;
                meta.insert(META_PAGE_SECRET, codec::encode(&secret))?;
                meta.insert(META_FORMAT, &[FORMAT_VERSION])?;
                self.sync()?;
            }
        }
        let head = match meta.get(META_HEAD)? {
            Some(bytes) => codec::decode("meta head", &bytes)?,
            None => Head::default(),
        };
        let secret = match meta.get(META_PAGE_SECRET)? {
            Some(bytes) => codec::decode("meta page_secret", &bytes)?,
            None => return Err(Error::internal("corrupt meta: page_secret is missing")),
        };
        Ok((head, secret))
    }

    fn tree(&self, id: TreeId) -> &Tree {
        &self.trees[id.index()]
    }

    /// Writes `changes` in ONE sled transaction over every tree.
    pub fn commit(&self, changes: &Changes) -> Result<()> {
        let head = codec::encode(&changes.head);
        let views_seq = changes.views_seq.map(|seq| codec::encode(&seq));
        self.trees
            .as_slice()
            .transaction(|tx| {
                let log = &tx[TreeId::Log.index()];
                for (seq, bytes) in &changes.log {
                    log.insert(&codec::seq_key(*seq), bytes.as_slice())?;
                }
                // The head and the views' seq move together: appends and rebuilds set both.
                if let Some(views_seq) = &views_seq {
                    tx[TreeId::Meta.index()].insert(META_HEAD, head.as_slice())?;
                    tx[TreeId::Meta.index()].insert(META_VIEWS_SEQ, views_seq.as_slice())?;
                }
                for ((tree, key), value) in &changes.writes {
                    let tree = &tx[tree.index()];
                    match value {
                        Some(value) => tree.insert(key.as_slice(), value.as_slice())?,
                        None => tree.remove(key.as_slice())?,
                    };
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|e: TransactionError<()>| Error::internal(format_args!("commit failed: {e:?}")))
    }

    /// Makes every committed write durable: sled's flush, then an fdatasync of its data file.
    pub fn sync(&self) -> Result<()> {
        self.db.flush()?;
        self.data_file.sync_data()?;
        Ok(())
    }

    /// Users with ids after `after` (from the start if `None`), at most `limit`; and whether more follow.
    pub fn users_after(&self, after: Option<&[u8]>, limit: usize) -> Result<(Vec<User>, bool)> {
        self.page(ViewTree::Users, &[], after, limit, decode_user)
    }

    /// Kdb users of `environment_id` named after `after`, at most `limit`; and whether more follow.
    pub fn kx_users_after(
        &self,
        environment_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<KxUser>, bool)> {
        let prefix = kx_key(environment_id, "");
        let after = after.map(|name| kx_key(environment_id, name));
        self.page(ViewTree::KxUsers, &prefix, after.as_deref(), limit, decode_kx_user)
    }

    /// A keyset page of `view`: keys under `prefix`, after `after`, at most `limit`.
    fn page<T>(
        &self,
        view: ViewTree,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
        decode: fn(&[u8], &[u8]) -> Result<T>,
    ) -> Result<(Vec<T>, bool)> {
        let lower = after.map_or(Bound::Included(prefix), Bound::Excluded);
        let mut items = Vec::with_capacity(limit);
        for entry in self.tree(TreeId::View(view)).range::<&[u8], _>((lower, Bound::Unbounded)) {
            let (key, value) = entry?;
            if !key.starts_with(prefix) {
                break;
            }
            if items.len() == limit {
                return Ok((items, true));
            }
            items.push(decode(&key, &value)?);
        }
        Ok((items, false))
    }

    /// The log from `from_seq` on, decoded; a corrupt entry is an error naming its seq.
    pub fn log(&self, from_seq: u64) -> impl Iterator<Item = Result<Sealed>> + '_ {
        self.tree(TreeId::Log).range(codec::seq_key(from_seq)..).map(|entry| {
            let (key, value) = entry?;
            let seq = codec::seq_of(&key)
                .ok_or_else(|| Error::internal(format_args!("corrupt log: key of {} bytes", key.len())))?;
            codec::unseal(seq, &value)
        })
    }

    /// The log entry at `seq`, decoded.
    pub fn log_entry(&self, seq: u64) -> Result<Option<Sealed>> {
        self.tree(TreeId::Log).get(codec::seq_key(seq))?.map(|v| codec::unseal(seq, &v)).transpose()
    }

    /// The log as stored: (key, bytes) from `from_seq` on, undecoded, for verification.
    pub fn raw_log(&self, from_seq: u64) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + '_ {
        let entries = self.tree(TreeId::Log).range(codec::seq_key(from_seq)..);
        entries.map(|entry| entry.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(Error::from))
    }

    /// The seqs of the events about `subject`, in order, from the history index.
    pub fn history(&self, subject: Subject) -> Result<Vec<u64>> {
        let prefix = subject_prefix(subject);
        let index = self.tree(TreeId::View(ViewTree::History));
        index
            .scan_prefix(&prefix)
            .keys()
            .map(|key| {
                let key = key?;
                codec::seq_of(&key[prefix.len()..])
                    .ok_or_else(|| Error::internal("corrupt history: key without a seq"))
            })
            .collect()
    }

    /// Records the seq the views are folded up to (0 before a rebuild writes them).
    pub fn set_views_seq(&self, seq: u64) -> Result<()> {
        self.tree(TreeId::Meta).insert(META_VIEWS_SEQ, codec::encode(&seq))?;
        Ok(())
    }

    /// Sets meta's head, and the views as folded up to it (the end of a rebuild).
    pub fn set_head(&self, head: Head) -> Result<()> {
        let meta = self.tree(TreeId::Meta);
        meta.insert(META_HEAD, codec::encode(&head))?;
        self.set_views_seq(head.seq)
    }

    /// Makes `view` hold exactly `rows` (given in key order): a merge walk over the stored rows
    /// finds the rows to write and the keys to remove, which are then applied in batches.
    pub fn reconcile(&self, view: ViewTree, rows: impl Iterator<Item = (Vec<u8>, Vec<u8>)>) -> Result<()> {
        // Collected first: writing while iterating would show the iterator our own writes.
        let mut changes: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        let mut live = self.view_iter(view).peekable();
        let mut wanted = rows.peekable();
        loop {
            let stored = match live.peek() {
                Some(Err(e)) => return Err(e.clone()),
                Some(Ok(row)) => Some(row),
                None => None,
            };
            let order = match (stored, wanted.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((sk, _)), Some((wk, _))) => sk.cmp(wk),
            };
            match order {
                // A stored row the fold does not have: remove it.
                Ordering::Less => {
                    if let Some(Ok((key, _))) = live.next() {
                        changes.push((key, None));
                    }
                }
                // A row the store lacks: write it.
                Ordering::Greater => {
                    if let Some((key, value)) = wanted.next() {
                        changes.push((key, Some(value)));
                    }
                }
                // Both have the key: write only if the bytes differ.
                Ordering::Equal => {
                    if let (Some(Ok((_, stored))), Some((key, value))) = (live.next(), wanted.next()) {
                        if stored != value {
                            changes.push((key, Some(value)));
                        }
                    }
                }
            }
        }
        let tree = self.tree(TreeId::View(view));
        for chunk in changes.chunks(10_000) {
            let mut batch = sled::Batch::default();
            for (key, value) in chunk {
                match value {
                    Some(value) => batch.insert(key.as_slice(), value.as_slice()),
                    None => batch.remove(key.as_slice()),
                }
            }
            tree.apply_batch(batch)?;
        }
        Ok(())
    }

    /// How many records `view` holds.
    pub fn view_len(&self, view: ViewTree) -> usize {
        self.tree(TreeId::View(view)).len()
    }

    /// The rows of `view` as stored, in key order.
    pub fn view_iter(&self, view: ViewTree) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + '_ {
        let rows = self.tree(TreeId::View(view)).iter();
        rows.map(|entry| entry.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(Error::from))
    }

    /// Every stored view row, for comparison with a fold of the log.
    pub fn view_rows(&self) -> Result<Rows> {
        let mut rows = Rows::new();
        for view in ViewTree::ALL {
            for entry in self.tree(TreeId::View(view)).iter() {
                let (key, value) = entry?;
                rows.insert((view, key.to_vec()), value.to_vec());
            }
        }
        Ok(rows)
    }

    /// The record of a token key (see [`crate::idempotency::token_key`]), expired or not.
    pub fn token(&self, token_key: &[u8]) -> Result<Option<TokenRecord>> {
        self.tree(TreeId::Tokens)
            .get(token_key)?
            .map(|v| codec::decode(format_args!("tokens[{}]", String::from_utf8_lossy(token_key)), &v))
            .transpose()
    }

    /// Every token record with its key, in key order.
    pub fn tokens(&self) -> impl Iterator<Item = Result<(Vec<u8>, TokenRecord)>> + '_ {
        self.tree(TreeId::Tokens).iter().map(|entry| {
            let (key, value) = entry?;
            let what = format_args!("tokens[{}]", String::from_utf8_lossy(&key)).to_string();
            Ok((key.to_vec(), codec::decode(what, &value)?))
        })
    }

    /// Up to `limit` keys of the expiry index whose expiry is at or before `now_ms`, oldest first.
    pub fn expired_tokens(&self, now_ms: i64, limit: usize) -> Result<Vec<Vec<u8>>> {
        let end = idempotency::expiry_key(now_ms.saturating_add(1), &[]);
        let index = self.tree(TreeId::TokenExpiry);
        index.range(..end).keys().take(limit).map(|k| Ok(k?.to_vec())).collect()
    }

    /// How many token records the store holds, live or expired.
    pub fn token_count(&self) -> usize {
        self.tree(TreeId::Tokens).len()
    }

    /// Bytes sled uses on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }
}

/// How long opening waits for the database's file lock to be released.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Opens sled, waiting up to 5 s (`LOCK_WAIT`) for its file lock.
///
/// sled's background I/O threads can hold the lock for a moment after the last handle of a
/// database is dropped, so a close followed by a reopen in the same process would otherwise fail
/// at random. A lock still held after the wait belongs to another process.
pub fn open_sled(config: sled::Config) -> Result<sled::Db> {
    remove_unfinished_snapshots(&config.path)?;
    let started = Instant::now();
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            // sled reports a held lock only as an io::Error of kind Other with this message.
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                if started.elapsed() > LOCK_WAIT {
                    return Err(Error::internal(format_args!(
                        "database at {} is in use by another process",
                        config.path.display()
                    )));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                return Err(Error::internal(format_args!(
                    "cannot open database at {}: {e}",
                    config.path.display()
                )))
            }
        }
    }
}

/// Removes `snap.*.generating` files: snapshots sled was writing when its process died.
///
/// sled 0.34 writes a snapshot to `snap.<lsn>.generating` and renames it when complete, but on
/// open it reads the last snapshot file by name *including* unfinished ones, so a kill during a
/// snapshot write leaves a database that refuses to open ("Read corrupted data at file offset
/// None"; sled issues 1527 and 1533; our crash test hit it). An unfinished snapshot is never the
/// one to read: without it sled reads the last finished snapshot and replays its log from there.
fn remove_unfinished_snapshots(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) }; // a new database
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(&path).map_err(|e| {
                Error::internal(format_args!("cannot remove the unfinished snapshot {}: {e}", path.display()))
            })?;
        }
    }
    Ok(())
}

fn decode_user(key: &[u8], value: &[u8]) -> Result<User> {
    codec::decode(format_args!("users[{}]", String::from_utf8_lossy(key)), value)
}

fn decode_kx_user(key: &[u8], value: &[u8]) -> Result<KxUser> {
    let shown = String::from_utf8_lossy(key).replace('\0', "/");
    codec::decode(format_args!("kx_users[{shown}]"), value)
}

impl State for Store {
    fn user(&self, user_id: &str) -> Result<Option<User>> {
        let users = self.tree(TreeId::View(ViewTree::Users));
        users.get(user_id)?.map(|v| decode_user(user_id.as_bytes(), &v)).transpose()
    }

    fn email_owner(&self, email_key: &str) -> Result<Option<UserId>> {
        let emails = self.tree(TreeId::View(ViewTree::Emails));
        emails.get(email_key)?.map(|v| codec::decode(format_args!("emails[{email_key}]"), &v)).transpose()
    }

    fn enabled_users(&self) -> Result<u64> {
        self.counter(ENABLED_USERS)
    }

    fn kx_user(&self, environment_id: &str, user_name: &str) -> Result<Option<KxUser>> {
        let key = kx_key(environment_id, user_name);
        let users = self.tree(TreeId::View(ViewTree::KxUsers));
        users.get(&key)?.map(|v| decode_kx_user(&key, &v)).transpose()
    }

    fn kx_users_in(&self, environment_id: &str) -> Result<u64> {
        self.counter(&kx_count_key(environment_id))
    }
}

impl Store {
    fn counter(&self, key: &[u8]) -> Result<u64> {
        let counters = self.tree(TreeId::View(ViewTree::Counters));
        let what = || format!("counters[{}]", String::from_utf8_lossy(key));
        Ok(counters.get(key)?.map(|v| codec::decode(what(), &v)).transpose()?.unwrap_or(0))
    }
}
