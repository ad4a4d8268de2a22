//! The sled store: the log, the views and meta, one transaction per commit. Knows no API rule.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Transactional, Tree};

use crate::codec::{self, FORMAT_VERSION};
use crate::decider::State;
use crate::directory::Directory;
use crate::domain::{
    AccessKey, Identity, KxUser, PermissionGroup, PrincipalKey, TemporaryCredential, User, UserId,
};
use crate::error::{Error, Failure, Result};
use crate::event::{Sealed, Subject};
use crate::idempotency::{self, TokenRecord};
use crate::mark::{Mark, MarkFile};
use crate::sled_files;
use crate::views::{
    groups_prefix, kx_count_key, kx_key, members_prefix, membership_keys, subject_prefix, Rows, ViewTree,
    ENABLED_USERS,
};

const META_FORMAT: &[u8] = b"format";
const META_HEAD: &[u8] = b"head";
const META_PAGE_SECRET: &[u8] = b"page_secret";
const META_IDENTITY: &[u8] = b"identity";
const META_ENVIRONMENT: &[u8] = b"environment_id";
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

/// What an operator can do when the log no longer holds what was acknowledged.
const RECOVERY: &str = "open it read-only (CLI --read-only) to export what is left, restore it from a \
    backup, or accept the log as it is (CLI accept-log, Ledger::accept_log)";

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
    /// The acknowledgement mark; `None` only when it is missing from a database with a log.
    pub mark: Option<MarkFile>,
    /// Why the log cannot be trusted to hold every acknowledged write, if it cannot.
    pub lost: Option<Error>,
}

/// The sled database of one ledger.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    /// Indexed by [`TreeId::index`]; a slice so one transaction can span them all.
    trees: Vec<Tree>,
    /// sled's data file, kept open to fdatasync it: sled 0.34's flush stops at sync_file_range.
    data_file: Arc<File>,
    /// The database as the user named it, for messages.
    path: PathBuf,
    /// The directory, locked; dropped after sled's handle (the fields above).
    dir: Arc<Directory>,
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
    /// Opens (or creates) the database in `dir` with a page cache of `cache_bytes`.
    ///
    /// A new database takes `region` and `account` (or the defaults); an existing one keeps
    /// its own, and refuses to open if given different ones. A log that no longer holds what
    /// the acknowledgement mark recorded is reported in [`Opened::lost`], not refused: whether
    /// to go on (read-only, to see what is left) is the caller's decision.
    pub fn open(
        dir: Directory,
        cache_bytes: u64,
        region: Option<&str>,
        account: Option<&str>,
    ) -> Result<Opened> {
        let mark = MarkFile::open(&dir.path, &dir.shown)?;
        let db = sled_files::open(&dir.path, &dir.shown, cache_bytes, mark.is_some())?;
        let shown = dir.shown.clone();
        let store =
            sled_files::guard(format_args!("while opening the database at {}", shown.display()), || {
                let names =
                    TreeId::FIXED.iter().map(|(_, name)| *name).chain(ViewTree::ALL.map(ViewTree::name));
                let trees = names.map(|name| db.open_tree(name)).collect::<sled::Result<Vec<_>>>()?;
                let data_path = dir.path.join(sled_files::DATA_FILE);
                let data_file = File::open(&data_path).map_err(|e| {
                    Error::failed(
                        Failure::Io,
                        format_args!("cannot open {}: {e}", dir.shown.join(sled_files::DATA_FILE).display()),
                    )
                })?;
                Ok(Store {
                    db: db.clone(),
                    trees,
                    data_file: Arc::new(data_file),
                    path: dir.shown.clone(),
                    dir: Arc::new(dir),
                })
            })?;
        sled_files::guard(format_args!("while reading the database at {}", store.path.display()), || {
            // The mark is checked before anything is written, so a shortened log is never stamped.
            let lost = match &mark {
                Some(mark) => store.lost_since(mark)?,
                None if store.last_seq()? > 0 => Some(Error::failed(
                    Failure::Missing,
                    format_args!(
                        "the acknowledgement mark {} is missing, so what this database acknowledged \
                         cannot be checked; {}",
                        MarkFile::path(&store.path).display(),
                        RECOVERY
                    ),
                )),
                None => None,
            };
            let (head, page_secret) = store.init_meta()?;
            let identity = store.init_identity(region, account)?;
            let stale = store.consistency(&head)?;
            let mark = match mark {
                Some(mark) => Some(mark),
                // A new database (or one whose creation a crash cut short): nothing acknowledged yet.
                None if lost.is_none() => {
                    Some(MarkFile::create(&store.dir.path, Mark { seq: 0, hash: [0; 32] })?)
                }
                None => None,
            };
            Ok(Opened { store: store.clone(), head, page_secret, identity, stale, mark, lost })
        })
    }

    /// Whether the log still holds the entry `mark` recorded as acknowledged: `None` if it
    /// does, else the error naming where the log ends and what was acknowledged.
    fn lost_since(&self, mark: &MarkFile) -> Result<Option<Error>> {
        let acked = mark.mark();
        if acked.seq == 0 {
            return Ok(None);
        }
        let last = self.last_seq()?;
        let found = match self.tree(TreeId::Log).get(codec::seq_key(acked.seq))? {
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
                .ok_or_else(|| Error::corrupt(format_args!("corrupt log: key of {} bytes", key.len()))),
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

    /// The FinSpace environment id this database answers GetProgrammaticAccessCredentials for:
    /// `given` (or a new ULID) when first asked, and the same ever after; another `given` later
    /// is an error.
    pub fn environment_id(&self, given: Option<&str>) -> Result<String> {
        let meta = self.tree(TreeId::Meta);
        let Some(bytes) = meta.get(META_ENVIRONMENT)? else {
            let id = given.map_or_else(|| ulid::Ulid::generate().to_string(), str::to_owned);
            meta.insert(META_ENVIRONMENT, codec::encode(&id))?;
            self.sync()?;
            return Ok(id);
        };
        let stored: String = codec::decode("meta environment_id", &bytes)?;
        match given {
            Some(given) if given != stored => Err(Error::internal(format_args!(
                "database at {} has environment id {stored}; it cannot be reopened as environment {given}",
                self.path.display()
            ))),
            _ => Ok(stored),
        }
    }

    /// Checks the format of an existing database, or stamps a new one; returns head and page secret.
    fn init_meta(&self) -> Result<(Head, [u8; 32])> {
        let meta = self.tree(TreeId::Meta);
        match meta.get(META_FORMAT)?.as_deref() {
            Some([FORMAT_VERSION]) => {}
            Some(other) => {
                return Err(Error::failed(
                    Failure::FormatVersion,
                    format_args!(
                        "database at {} is in format version {}, this build reads version {FORMAT_VERSION}",
                        self.path.display(),
                        other.first().map_or("(empty)".to_owned(), u8::to_string),
                    ),
                ))
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
            None => return Err(Error::corrupt("corrupt meta: page_secret is missing")),
        };
        Ok((head, secret))
    }

    // TreeId::index is an index into the fixed tree list the store opens: always in range.
    #[allow(clippy::indexing_slicing)]
    fn tree(&self, id: TreeId) -> &Tree {
        &self.trees[id.index()]
    }

    /// Writes `changes` in ONE sled transaction over every tree.
    // TreeId::index is an index into the fixed tree list the store opens: always in range.
    #[allow(clippy::indexing_slicing)]
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

    /// Replaces the acknowledgement mark with a new one at `mark`.
    pub fn create_mark(&self, mark: Mark) -> Result<MarkFile> {
        MarkFile::create(&self.dir.path, mark)
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
        let mut items = Vec::with_capacity(limit.min(128));
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
                .ok_or_else(|| Error::corrupt(format_args!("corrupt log: key of {} bytes", key.len())))?;
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
                key.get(prefix.len()..)
                    .and_then(codec::seq_of)
                    .ok_or_else(|| Error::corrupt("corrupt history: key without a seq"))
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

    fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>> {
        let keys = self.tree(TreeId::View(ViewTree::AccessKeys));
        let what = || format!("access_keys[{access_key_id}]");
        keys.get(access_key_id)?.map(|v| codec::decode(what(), &v)).transpose()
    }

    fn permission_group(&self, group: &str) -> Result<Option<PermissionGroup>> {
        let groups = self.tree(TreeId::View(ViewTree::Groups));
        groups.get(group)?.map(|v| decode_group(group.as_bytes(), &v)).transpose()
    }

    fn is_member(&self, group: &str, user: &str) -> Result<bool> {
        let [key, _] = membership_keys(group, user);
        Ok(self.tree(TreeId::View(ViewTree::Memberships)).contains_key(key)?)
    }

    fn groups_of(&self, user: &str) -> Result<Vec<String>> {
        Ok(self.page(ViewTree::Memberships, &groups_prefix(user), None, usize::MAX, decode_member)?.0)
    }

    fn members_of(&self, group: &str) -> Result<Vec<UserId>> {
        Ok(self.page(ViewTree::Memberships, &members_prefix(group), None, usize::MAX, decode_member)?.0)
    }

    fn password_hash(&self, user: &str) -> Result<Option<String>> {
        let passwords = self.tree(TreeId::View(ViewTree::Passwords));
        passwords.get(user)?.map(|v| codec::decode(format_args!("passwords[{user}]"), &v)).transpose()
    }

    fn principal_key(&self, access_key_id: &str) -> Result<Option<PrincipalKey>> {
        let keys = self.tree(TreeId::View(ViewTree::PrincipalKeys));
        let what = || format!("principal_keys[{access_key_id}]");
        keys.get(access_key_id)?.map(|v| codec::decode(what(), &v)).transpose()
    }

    fn temporary_credential(&self, access_key_id: &str) -> Result<Option<TemporaryCredential>> {
        let credentials = self.tree(TreeId::View(ViewTree::TemporaryCredentials));
        let what = || format!("temporary_credentials[{access_key_id}]");
        credentials.get(access_key_id)?.map(|v| codec::decode(what(), &v)).transpose()
    }

    /// A scan of every user: the principal is rarely asked for, and kept in no index.
    fn users_with_principal(&self, principal_arn: &str) -> Result<Vec<User>> {
        let mut users = Vec::new();
        for row in self.view_iter(ViewTree::Users) {
            let (key, value) = row?;
            let user = decode_user(&key, &value)?;
            if user.api_access_principal_arn.as_deref() == Some(principal_arn) {
                users.push(user);
            }
        }
        Ok(users)
    }
}

fn decode_group(key: &[u8], value: &[u8]) -> Result<PermissionGroup> {
    codec::decode(format_args!("permission_groups[{}]", String::from_utf8_lossy(key)), value)
}

impl Store {
    /// Every principal's key, in id order.
    pub fn principal_keys(&self) -> Result<Vec<PrincipalKey>> {
        self.view_iter(ViewTree::PrincipalKeys)
            .map(|row| {
                let (key, value) = row?;
                codec::decode(format_args!("principal_keys[{}]", String::from_utf8_lossy(&key)), &value)
            })
            .collect()
    }
}

/// The last part of a membership key: the user of a (group, user) key, the group of a (user,
/// group) one.
fn decode_member(key: &[u8], _: &[u8]) -> Result<String> {
    let last = key.rsplit(|&b| b == 0).next().unwrap_or_default();
    String::from_utf8(last.to_vec()).map_err(|_| {
        Error::corrupt(format_args!("corrupt memberships: key {} is not UTF-8", String::from_utf8_lossy(key)))
    })
}

impl Store {
    /// Permission groups after id `after`, at most `limit`; and whether more follow.
    pub fn groups_after(&self, after: Option<&[u8]>, limit: usize) -> Result<(Vec<PermissionGroup>, bool)> {
        self.page(ViewTree::Groups, &[], after, limit, decode_group)
    }

    /// The ids of the members of `group` after user `after`, at most `limit`; and whether more
    /// follow.
    pub fn members_after(
        &self,
        group: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<UserId>, bool)> {
        let prefix = members_prefix(group);
        let after = after.map(|user| [prefix.as_slice(), user.as_bytes()].concat());
        self.page(ViewTree::Memberships, &prefix, after.as_deref(), limit, decode_member)
    }

    /// The ids of the groups of `user` after group `after`, at most `limit`; and whether more
    /// follow.
    pub fn groups_of_after(
        &self,
        user: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, bool)> {
        let prefix = groups_prefix(user);
        let after = after.map(|group| [prefix.as_slice(), group.as_bytes()].concat());
        self.page(ViewTree::Memberships, &prefix, after.as_deref(), limit, decode_member)
    }
}

impl Store {
    /// Every access key, in id order.
    pub fn access_keys(&self) -> Result<Vec<AccessKey>> {
        self.view_iter(ViewTree::AccessKeys)
            .map(|row| {
                let (key, value) = row?;
                codec::decode(format_args!("access_keys[{}]", String::from_utf8_lossy(&key)), &value)
            })
            .collect()
    }
}

impl Store {
    fn counter(&self, key: &[u8]) -> Result<u64> {
        let counters = self.tree(TreeId::View(ViewTree::Counters));
        let what = || format!("counters[{}]", String::from_utf8_lossy(key));
        Ok(counters.get(key)?.map(|v| codec::decode(what(), &v)).transpose()?.unwrap_or(0))
    }
}
