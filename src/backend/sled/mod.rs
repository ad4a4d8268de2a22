//! The sled backend (format 2): the whole ledger in one sled tree (see [`layout`]), one
//! `apply_batch` per commit, an fdatasync of sled's data file per sync (sled 0.34's flush stops
//! at sync_file_range), and an acknowledgement mark beside sled's files ([`mark`]) because sled
//! may silently drop acknowledged records on recovery.

pub mod directory;
pub mod files;
pub mod layout;
pub mod mark;
mod migrate;

use std::cmp::Ordering;
use std::fs::File;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ::sled::{Batch, Tree};

use self::directory::Directory;
use self::files as sled_files;
use self::mark::{Mark, MarkFile};
use super::{Backend, Changeset, Entries, Head, Page, Tip};
use crate::backend::guard::guard;
use crate::core::codec;
use crate::core::domain::{
    AccessKey, KxUser, PermissionGroup, PrincipalKey, TemporaryCredential, User, UserId,
};
use crate::core::event::Subject;
use crate::core::idempotency::TokenRecord;
use crate::core::State;
use crate::error::{Error, Failure, Result};
use crate::views::{
    groups_prefix, kx_count_key, kx_key, members_prefix, membership_keys, subject_prefix, ViewTree,
    ENABLED_USERS,
};

/// The format this build writes; format 1 is migrated on open.
pub const FORMAT_VERSION: u8 = 2;

/// What an operator can do when the log no longer holds what was acknowledged.
const RECOVERY: &str = "open it read-only (CLI --read-only) to export what is left, restore it from a \
    backup, or accept the log as it is (CLI accept-log, Ledger::accept_log)";

/// What opening found besides the backend.
pub struct Opened {
    /// The backend.
    pub backend: SledBackend,
    /// Why the log cannot be trusted to hold every acknowledged write, if it cannot, and the
    /// seq the mark acknowledged.
    pub lost: Option<(Error, u64)>,
    /// What opening narrowed to its owner's only (the database existed with looser modes).
    pub tightened: Vec<std::path::PathBuf>,
    /// Why the views cannot be trusted, when the mark records that a write failed after the seq
    /// it acknowledged (sled's files may hold part of that batch).
    pub failed_write: Option<String>,
}

/// A ledger stored in sled.
pub struct SledBackend {
    /// Dropped in `Drop`, so that after a failed write its last drop is on another thread.
    db: std::mem::ManuallyDrop<::sled::Db>,
    tree: std::mem::ManuallyDrop<Tree>,
    /// sled's data file, kept open to fdatasync it.
    data_file: File,
    /// The database as the user named it, for messages.
    path: PathBuf,
    /// The acknowledgement mark, advanced after every sync that made new log entries durable;
    /// `None` when it is missing from a database with a log, or not kept (a benchmark's choice).
    mark: Mutex<Option<MarkFile>>,
    /// How many view changes a rebuild writes (and flushes) at a time.
    rebuild_chunk: usize,
    /// The directory, locked; dropped after sled's handle (the fields above).
    dir: Arc<Directory>,
    /// Set when a commit or a sync failed: sled 0.34 may then never finish a flush (a failed
    /// blob write keeps its I/O buffer's writer slot), so nothing is flushed again, not even on drop.
    failed: std::sync::atomic::AtomicBool,
    /// The free space a write must leave ([`crate::Config::disk_reserve`]); 0 for no check.
    reserve: std::sync::atomic::AtomicU64,
}

impl Drop for SledBackend {
    fn drop(&mut self) {
        if self.failed.load(std::sync::atomic::Ordering::SeqCst) {
            // sled flushes when its last handle drops, and after a failed write that flush can
            // wait forever: let the last handle go on a thread of its own, so closing never
            // hangs. (If it does hang, sled's file lock stays held and a reopen needs a new
            // process; what was acknowledged is on disk already.)
            // SAFETY: neither field is used after this; each is taken once.
            let (db, tree) = unsafe {
                (std::mem::ManuallyDrop::take(&mut self.db), std::mem::ManuallyDrop::take(&mut self.tree))
            };
            let _ = std::thread::Builder::new().name("sled-close".into()).spawn(move || drop((tree, db)));
        } else {
            // SAFETY: neither field is used after this; each is dropped once.
            unsafe {
                std::mem::ManuallyDrop::drop(&mut self.tree);
                std::mem::ManuallyDrop::drop(&mut self.db);
            }
        }
    }
}

impl SledBackend {
    /// Sets the free space a write must leave on the database's filesystem (0: no check).
    pub fn reserve(&self, bytes: u64) {
        self.reserve.store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Opens (or creates) the database in `dir` with a page cache of `cache_bytes`, migrating a
    /// format-1 database. A log that no longer holds what the acknowledgement mark recorded is
    /// reported in [`Opened::lost`], not refused: whether to go on is the caller's decision.
    /// Without `record_mark`, syncs leave the mark alone (only a benchmark asks for that).
    /// A rebuild writes `rebuild_chunk` view changes at a time.
    pub fn open(dir: Directory, cache_bytes: u64, record_mark: bool, rebuild_chunk: usize) -> Result<Opened> {
        let mark = MarkFile::open(&dir.path, &dir.shown)?;
        let db = sled_files::open(&dir.path, &dir.shown, cache_bytes, mark.is_some())?;
        // sled made its files (or a new snapshot) under the umask: what changes now is not news.
        dir.tighten()?;
        let tightened = dir.tightened.clone();
        let shown = dir.shown.clone();
        let backend = guard(format_args!("while opening the database at {}", shown.display()), || {
            let tree = db.open_tree(layout::TREE)?;
            let data_file = File::open(dir.path.join(sled_files::DATA_FILE)).map_err(|e| {
                Error::failed(
                    Failure::Io,
                    format_args!("cannot open {}: {e}", shown.join(sled_files::DATA_FILE).display()),
                )
            })?;
            let backend = SledBackend {
                db: std::mem::ManuallyDrop::new(db.clone()),
                tree: std::mem::ManuallyDrop::new(tree),
                data_file,
                path: shown.clone(),
                mark: Mutex::new(None),
                rebuild_chunk: rebuild_chunk.max(1),
                dir: Arc::new(dir),
                failed: std::sync::atomic::AtomicBool::new(false),
                reserve: std::sync::atomic::AtomicU64::new(0),
            };
            migrate::to_current(&backend)?;
            Ok(backend)
        })?;
        let failed_write = mark.as_ref().filter(|m| m.failed()).map(|m| {
            format!(
                "a write after seq {} failed (the disk was full, or an I/O error) and sled's files may hold \
                 part of it",
                m.mark().seq
            )
        });
        let lost = guard(format_args!("while reading the database at {}", shown.display()), || {
            // The mark is checked before anything is written, so a shortened log is never stamped.
            let lost = match &mark {
                Some(mark) => backend.lost_since(mark)?.map(|e| (e, mark.mark().seq)),
                None if backend.last_seq()? > 0 => Some((
                    Error::failed(
                        Failure::Missing,
                        format_args!(
                            "the acknowledgement mark {} is missing, so what this database acknowledged \
                             cannot be checked; {}",
                            MarkFile::path(&backend.path).display(),
                            RECOVERY
                        ),
                    ),
                    0,
                )),
                None => None,
            };
            let mark = match mark {
                Some(mark) => Some(mark),
                // A new database (or one whose creation a crash cut short): nothing acknowledged yet.
                None if lost.is_none() => {
                    Some(MarkFile::create(&backend.dir.path, Mark { seq: 0, hash: [0; 32] })?)
                }
                None => None,
            };
            *backend.mark.lock().unwrap_or_else(|p| p.into_inner()) = mark.filter(|_| record_mark);
            Ok(lost)
        })?;
        Ok(Opened { backend, lost, tightened, failed_write })
    }

    /// Whether the log still holds the entry `mark` recorded as acknowledged: `None` if it
    /// does, else the error naming where the log ends and what was acknowledged.
    fn lost_since(&self, mark: &MarkFile) -> Result<Option<Error>> {
        let acked = mark.mark();
        if acked.seq == 0 {
            return Ok(None);
        }
        let last = self.last_seq()?;
        let found = match self.log_entry(acked.seq)? {
            Some(bytes) => codec::unseal(acked.seq, &bytes).map(|sealed| sealed.hash),
            None => {
                return Ok(Some(Error::failed(
                    Failure::Lost,
                    format_args!(
                        "the database at {} has lost acknowledged writes: {}, but seq {seq} was acknowledged \
                         (acknowledgement mark {}); {}",
                        self.path.display(),
                        if last < acked.seq {
                            format!("sled's log ends at seq {last}")
                        } else {
                            format!("sled's log lacks seq {seq} (it ends at seq {last})", seq = acked.seq)
                        },
                        mark.file_path().display(),
                        RECOVERY,
                        seq = acked.seq,
                    ),
                )))
            }
        };
        Ok(match found {
            Ok(hash) if hash == acked.hash => None,
            found => Some(Error::failed(
                Failure::Lost,
                format_args!(
                    "the database at {} no longer holds what it acknowledged: seq {} of sled's log {} \
                     the hash the acknowledgement mark {} recorded; {}",
                    self.path.display(),
                    acked.seq,
                    match found {
                        Ok(_) => "has another hash than".to_owned(),
                        Err(e) => format!("does not decode ({e}), so it cannot have"),
                    },
                    mark.file_path().display(),
                    RECOVERY
                ),
            )),
        })
    }

    /// Flushes sled and fdatasyncs its data file.
    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        self.data_file.sync_data()?;
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<::sled::IVec>> {
        Ok(self.tree.get(key)?)
    }

    fn view_get<T: serde::de::DeserializeOwned>(&self, view: ViewTree, key: &[u8]) -> Result<Option<T>> {
        match self.get(&layout::view_key(view, key))? {
            Some(value) => Ok(Some(decode_row(view, key, &value)?)),
            None => Ok(None),
        }
    }

    /// A keyset page of `view`: rows under `prefix`, after `after`, at most `limit`, decoded.
    fn page<T>(
        &self,
        view: ViewTree,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
        decode: fn(&[u8], &[u8]) -> Result<T>,
    ) -> Result<Page<T>> {
        let start = layout::view_key(view, after.unwrap_or(prefix));
        let lower = if after.is_some() { Bound::Excluded(start) } else { Bound::Included(start) };
        let full_prefix = layout::view_key(view, prefix);
        let mut items = Vec::with_capacity(limit.min(128));
        for entry in self.tree.range::<Vec<u8>, _>((lower, Bound::Unbounded)) {
            let (key, value) = entry?;
            if !key.starts_with(&full_prefix) {
                break;
            }
            let key = key.get(2..).unwrap_or_default();
            if items.len() == limit {
                return Ok((items, true));
            }
            items.push(decode(key, &value)?);
        }
        Ok((items, false))
    }

    fn rows(&self, view: ViewTree) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + '_ {
        self.rows_after(view, None)
    }

    /// How many records have keys starting with `prefix`.
    fn count(&self, prefix: &[u8]) -> Result<u64> {
        let mut count = 0;
        for key in self.tree.scan_prefix(prefix).keys() {
            key?;
            count += 1;
        }
        Ok(count)
    }

    fn counter(&self, key: &[u8]) -> Result<u64> {
        Ok(self.view_get(ViewTree::Counters, key)?.unwrap_or(0))
    }

    /// Makes `view` hold exactly `wanted` (in key order): a merge walk over the stored rows
    /// finds the rows to write and the keys to remove, and applies them every `rebuild_chunk`
    /// changes, flushing after each chunk: sled holds every unflushed write
    /// in memory, and a rebuild from empty views writes millions of rows (a 1M-user rebuild
    /// grew to 8 GB before). The walk over the stored rows restarts after the last key it
    /// settled, so it never meets the rows it wrote itself.
    fn reconcile(
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
                self.tree.apply_batch(batch).inspect_err(|_| self.write_failed())?;
                self.flush()?;
            }
            if done {
                return Ok(());
            }
        }
    }

    /// The rows of `view` after key `after` (from the first if `None`), in key order.
    fn rows_after(
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
                let (key, value) = entry?;
                Ok((key.get(2..).unwrap_or_default().to_vec(), value.to_vec()))
            })
    }
}

/// Decodes a stored view row, naming the view and key if it does not decode.
fn decode_row<T: serde::de::DeserializeOwned>(view: ViewTree, key: &[u8], value: &[u8]) -> Result<T> {
    let shown = String::from_utf8_lossy(key).replace('\0', "/");
    codec::decode(format_args!("{}[{shown}]", view.name()), value)
}

fn decode_user(key: &[u8], value: &[u8]) -> Result<User> {
    decode_row(ViewTree::Users, key, value)
}

fn decode_kx_user(key: &[u8], value: &[u8]) -> Result<KxUser> {
    decode_row(ViewTree::KxUsers, key, value)
}

fn decode_group(key: &[u8], value: &[u8]) -> Result<PermissionGroup> {
    decode_row(ViewTree::Groups, key, value)
}

/// The last part of a membership key: the user of a (group, user) key, the group of a (user,
/// group) one.
fn decode_member(key: &[u8], _: &[u8]) -> Result<String> {
    let last = key.rsplit(|&b| b == 0).next().unwrap_or_default();
    String::from_utf8(last.to_vec()).map_err(|_| {
        Error::corrupt(format_args!("corrupt memberships: key {} is not UTF-8", String::from_utf8_lossy(key)))
    })
}

impl Backend for SledBackend {
    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get(&layout::meta_key(name))?.map(|v| v.to_vec()))
    }

    fn put_meta(&self, name: &str, value: &[u8]) -> Result<()> {
        self.tree.insert(layout::meta_key(name), value)?;
        self.flush()
    }

    fn tip(&self) -> Result<Tip> {
        match self.get(&layout::meta_key(layout::TIP))? {
            Some(bytes) => codec::decode("meta tip", &bytes),
            None => Ok(Tip::default()),
        }
    }

    fn set_tip(&self, tip: Tip) -> Result<()> {
        self.tree.insert(layout::meta_key(layout::TIP), codec::encode(&tip))?;
        Ok(())
    }

    fn last_seq(&self) -> Result<u64> {
        let log = layout::log_key(0).to_vec()..layout::log_end().to_vec();
        match self.tree.range(log).next_back().transpose()? {
            None => Ok(0),
            Some((key, _)) => log_seq(&key),
        }
    }

    fn commit(&self, changes: &Changeset) -> Result<()> {
        let mut batch = Batch::default();
        for (seq, bytes) in &changes.log {
            batch.insert(&layout::log_key(*seq)[..], bytes.as_slice());
        }
        // A later change of the same row replaces an earlier one: sled's batch keeps the last.
        for change in &changes.views {
            for ((view, key), value) in change.rows() {
                let key = layout::view_key(view, &key);
                match value {
                    Some(value) => batch.insert(key, value),
                    None => batch.remove(key),
                }
            }
        }
        for (key, record) in &changes.tokens {
            let key = layout::token_key(key);
            match record {
                Some(record) => batch.insert(key, codec::encode(record)),
                None => batch.remove(key),
            }
        }
        if let Some(tip) = &changes.tip {
            batch.insert(layout::meta_key(layout::TIP), codec::encode(tip));
        }
        self.tree.apply_batch(batch)?;
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

    fn accept(&self, head: Head) -> Result<()> {
        let fresh = MarkFile::create(&self.dir.path, Mark { seq: head.seq, hash: head.hash })?;
        *self.mark.lock().unwrap_or_else(|p| p.into_inner()) = Some(fresh);
        Ok(())
    }

    fn log(&self, from_seq: u64) -> Entries<'_> {
        let log = layout::log_key(from_seq).to_vec()..layout::log_end().to_vec();
        Box::new(self.tree.range(log).map(|entry| {
            let (key, value) = entry?;
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
                let key = key?;
                key.get(2 + prefix.len()..)
                    .and_then(codec::seq_of)
                    .ok_or_else(|| Error::corrupt("corrupt history: key without a seq"))
            })
            .collect()
    }

    fn token(&self, key: &[u8]) -> Result<Option<TokenRecord>> {
        self.get(&layout::token_key(key))?
            .map(|v| codec::decode(format_args!("tokens[{}]", String::from_utf8_lossy(key)), &v))
            .transpose()
    }

    fn tokens_after(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, TokenRecord)>> {
        let lower = match after {
            Some(after) => Bound::Excluded(layout::token_key(after)),
            None => Bound::Included(layout::TOKENS_PREFIX.to_vec()),
        };
        let mut records = Vec::new();
        for entry in self.tree.range::<Vec<u8>, _>((lower, Bound::Unbounded)) {
            let (key, value) = entry?;
            let Some(key) = key.strip_prefix(&layout::TOKENS_PREFIX) else { break };
            if records.len() == limit {
                break;
            }
            let what = format_args!("tokens[{}]", String::from_utf8_lossy(key)).to_string();
            records.push((key.to_vec(), codec::decode(what, &value)?));
        }
        Ok(records)
    }

    fn token_count(&self) -> Result<u64> {
        self.count(&layout::TOKENS_PREFIX)
    }

    fn users_after(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<User>> {
        self.page(ViewTree::Users, &[], after, limit, decode_user)
    }

    fn kx_users_after(
        &self,
        environment_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<KxUser>> {
        let prefix = kx_key(environment_id, "");
        let after = after.map(|name| kx_key(environment_id, name));
        self.page(ViewTree::KxUsers, &prefix, after.as_deref(), limit, decode_kx_user)
    }

    fn groups_after(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<PermissionGroup>> {
        self.page(ViewTree::Groups, &[], after, limit, decode_group)
    }

    fn members_after(&self, group: &str, after: Option<&str>, limit: usize) -> Result<Page<UserId>> {
        let prefix = members_prefix(group);
        let after = after.map(|user| [prefix.as_slice(), user.as_bytes()].concat());
        self.page(ViewTree::Memberships, &prefix, after.as_deref(), limit, decode_member)
    }

    fn groups_of_after(&self, user: &str, after: Option<&str>, limit: usize) -> Result<Page<String>> {
        let prefix = groups_prefix(user);
        let after = after.map(|group| [prefix.as_slice(), group.as_bytes()].concat());
        self.page(ViewTree::Memberships, &prefix, after.as_deref(), limit, decode_member)
    }

    fn access_keys(&self) -> Result<Vec<AccessKey>> {
        self.rows(ViewTree::AccessKeys)
            .map(|row| row.and_then(|(k, v)| decode_row(ViewTree::AccessKeys, &k, &v)))
            .collect()
    }

    fn principal_keys(&self) -> Result<Vec<PrincipalKey>> {
        self.rows(ViewTree::PrincipalKeys)
            .map(|row| row.and_then(|(k, v)| decode_row(ViewTree::PrincipalKeys, &k, &v)))
            .collect()
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
        Ok(self.db.size_on_disk()?)
    }
}

/// The seq of a log key, or the error naming the bad key.
fn log_seq(key: &[u8]) -> Result<u64> {
    layout::seq_of_log_key(key)
        .ok_or_else(|| Error::corrupt(format_args!("corrupt log: key of {} bytes", key.len())))
}

impl State for SledBackend {
    fn user(&self, user_id: &str) -> Result<Option<User>> {
        self.view_get(ViewTree::Users, user_id.as_bytes())
    }

    fn email_owner(&self, email_key: &str) -> Result<Option<UserId>> {
        self.view_get(ViewTree::Emails, email_key.as_bytes())
    }

    fn enabled_users(&self) -> Result<u64> {
        self.counter(ENABLED_USERS)
    }

    fn kx_user(&self, environment_id: &str, user_name: &str) -> Result<Option<KxUser>> {
        self.view_get(ViewTree::KxUsers, &kx_key(environment_id, user_name))
    }

    fn kx_users_in(&self, environment_id: &str) -> Result<u64> {
        self.counter(&kx_count_key(environment_id))
    }

    fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>> {
        self.view_get(ViewTree::AccessKeys, access_key_id.as_bytes())
    }

    fn permission_group(&self, group: &str) -> Result<Option<PermissionGroup>> {
        self.view_get(ViewTree::Groups, group.as_bytes())
    }

    fn is_member(&self, group: &str, user: &str) -> Result<bool> {
        let [key, _] = membership_keys(group, user);
        Ok(self.tree.contains_key(layout::view_key(ViewTree::Memberships, &key))?)
    }

    fn groups_of(&self, user: &str) -> Result<Vec<String>> {
        Ok(self.groups_of_after(user, None, usize::MAX)?.0)
    }

    fn members_of(&self, group: &str) -> Result<Vec<UserId>> {
        Ok(self.members_after(group, None, usize::MAX)?.0)
    }

    fn password_hash(&self, user: &str) -> Result<Option<String>> {
        self.view_get(ViewTree::Passwords, user.as_bytes())
    }

    fn principal_key(&self, access_key_id: &str) -> Result<Option<PrincipalKey>> {
        self.view_get(ViewTree::PrincipalKeys, access_key_id.as_bytes())
    }

    fn temporary_credential(&self, access_key_id: &str) -> Result<Option<TemporaryCredential>> {
        self.view_get(ViewTree::TemporaryCredentials, access_key_id.as_bytes())
    }

    /// A scan of every user: the principal is rarely asked for, and kept in no index.
    fn users_with_principal(&self, principal_arn: &str) -> Result<Vec<User>> {
        let mut users = Vec::new();
        for row in self.rows(ViewTree::Users) {
            let (key, value) = row?;
            let user = decode_user(&key, &value)?;
            if user.api_access_principal_arn.as_deref() == Some(principal_arn) {
                users.push(user);
            }
        }
        Ok(users)
    }
}
