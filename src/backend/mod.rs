//! The storage seam: what the ledger needs from a database, in logical terms.
//!
//! The decider, the writer and its group commit, audit and rebuild work against [`Backend`];
//! nothing above it knows a tree, a key layout or a sled type. A commit is one [`Changeset`]:
//! sealed envelopes to append, view changes as values ([`ViewChange`]), token records, and the
//! new [`Tip`]. A backend must apply a changeset atomically (all or nothing) and must make
//! everything committed durable when asked to [`Backend::sync`].
//!
//! Three implementations: [`sled`] (format 2: one tree, one `apply_batch` per commit; one
//! process), `postgres` (feature `postgres`: one transaction per commit; any number of hosts) and,
//! for tests, [`memory`], which keeps the same canonical rows in a map, may be shared by several
//! ledgers in one process, and proves the layers above lean on no engine. [`rows`] holds the
//! paged listings every row store gets from its rows.
//! `tests/all/conformance.rs` runs one suite of the contract against all three.
//!
//! **Small by design.** [`Backend`] asks for twelve methods of its own (settings, the log, the
//! tip, commit and sync, checkpoints), five of upkeep (rebuild, audit, size) and the four reads of
//! [`Reads`] and [`RowStore`]; what only one engine can do is a capability it offers or not:
//! [`SharedWriters`] (PostgreSQL: writers' turns, shared sign-in counts, audit snapshots),
//! [`LocalDisk`] (sled: free space, the failed-write flag), [`Watch`] and [`Prefetch`].
//!
//! **Several writers.** Every [`Changeset`] names the head it was decided against
//! ([`Changeset::base`]); [`Backend::commit`] applies it only while the log still ends there, else
//! answers [`crate::Failure::Conflict`] and the writer decides the batch again on the new head.
//! Decisions read outside the commit; the compare-and-set validates them (a batch that wrote
//! nothing is checked against the head before it is answered). Settings are inserted if absent
//! ([`Backend::insert_meta`]), so every opener agrees; other writers' commits wake subscribers
//! through [`Watch::watch`].
//!
//! Invariant: a backend persists and indexes and decides nothing; a commit is all or nothing, and
//! nothing here names the layers above it (the handle, the write path, the host).

use serde::{Deserialize, Serialize};

use crate::core::domain::{AccessKey, KxUser, PermissionGroup, PrincipalKey, User, UserId};
use crate::core::event::Subject;
use crate::core::idempotency::{TokenKey, TokenRecord};
use crate::core::merkle::{Hash, Node};
pub use crate::core::ViewChange;
use crate::error::Result;
pub use crate::views::store::{Page, RowStore};
use crate::views::ViewTree;

pub mod guard;
#[cfg(feature = "whitebox")]
pub mod memory;
pub mod place;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod rows;
pub mod sled;

/// How opening treats the database directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenMode {
    /// Open the database, creating it if there is none (the default).
    #[default]
    Create,
    /// Open an existing database; if there is none, fail and create nothing.
    Existing,
    /// Open an existing database for reading and auditing without writing a byte to it: sled is
    /// opened on a private copy (so this works on read-only media), and writes are refused.
    ReadOnly,
}

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

impl Head {
    /// Whether `stored`, the log's entry at this head's seq, is this head's (an empty log's head
    /// has no entry and is held by every log): what a barrier checks its server holds.
    #[cfg(any(feature = "postgres", feature = "whitebox"))]
    pub fn is_entry(&self, stored: Option<&[u8]>) -> bool {
        self.seq == 0
            || stored.is_some_and(|bytes| {
                crate::core::codec::unseal(self.seq, bytes).is_ok_and(|entry| entry.hash == self.hash)
            })
    }
}

/// The head of the log and the seq the views are folded up to: equal, except while a rebuild
/// runs (or after one was cut short).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tip {
    /// The end of the log as committed.
    pub head: Head,
    /// The seq the views are folded up to.
    pub views_seq: u64,
}

/// The typed key of a token record stored as `bytes`; other bytes are corrupt, named.
pub fn stored_token_key(bytes: &[u8]) -> Result<TokenKey> {
    TokenKey::from_bytes(bytes).ok_or_else(|| {
        crate::error::Error::corrupt(format_args!(
            "corrupt tokens: key {} is not an operation, a zero byte and a token",
            String::from_utf8_lossy(bytes)
        ))
    })
}

/// The conflict a commit answers when the log's head is no longer the one its batch was decided
/// against: another writer appended in between.
pub fn moved(head: Head, base: Head) -> crate::error::Error {
    crate::error::Error::failed(
        crate::error::Failure::Conflict,
        format_args!(
            "the log's head moved to seq {} after the batch was decided against seq {}",
            head.seq, base.seq
        ),
    )
}

/// Everything one commit writes, in logical terms.
#[derive(Debug, Default)]
pub struct Changeset {
    /// Appended log entries: (seq, sealed bytes), in seq order.
    pub log: Vec<(u64, Vec<u8>)>,
    /// View changes, in the order the fold made them (a later one wins).
    pub views: Vec<ViewChange>,
    /// Token records to store (`Some`) or remove (`None`), by token key.
    pub tokens: std::collections::BTreeMap<TokenKey, Option<TokenRecord>>,
    /// Person keys to store (wrapped) or destroy (`None`), by user id: outside the hash chain,
    /// so that destroying one erases what it sealed and changes no byte the chain hashes.
    pub person_keys: std::collections::BTreeMap<UserId, Option<Vec<u8>>>,
    /// The tip after this commit, when it moves (it moves with every appended entry).
    pub tip: Option<Tip>,
    /// The head of the log this changeset was decided against: the commit applies only while
    /// the log still ends there (a compare-and-set on the chain).
    pub base: Head,
}

impl Changeset {
    /// True when committing would write nothing.
    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
            && self.views.is_empty()
            && self.tokens.is_empty()
            && self.person_keys.is_empty()
            && self.tip.is_none()
    }
}

/// Raw entries in key order: for the log, (seq as 8 big-endian bytes, sealed bytes); for a
/// view, its canonical (key, value) rows.
pub type Entries<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + 'a>;

/// What a backend calls when another writer committed: the seq of the head it saw.
pub type Wake = std::sync::Arc<dyn Fn(u64) + Send + Sync>;

/// The paged listings of the views, which the handle's List operations read: keyset pages in
/// key order. Every row store (sled, PostgreSQL) has them through [`rows`].
pub trait Listings {
    /// Users with ids after `after`, at most `limit`.
    fn users_after(&self, after: Option<&str>, limit: usize) -> Result<Page<User>>;
    /// Kdb users of an environment named after `after`, at most `limit`.
    fn kx_users_after(&self, environment_id: &str, after: Option<&str>, limit: usize)
        -> Result<Page<KxUser>>;
    /// Permission groups with ids after `after`, at most `limit`.
    fn groups_after(&self, after: Option<&str>, limit: usize) -> Result<Page<PermissionGroup>>;
    /// Members of `group` after user `after`, at most `limit`.
    fn members_after(&self, group: &str, after: Option<&str>, limit: usize) -> Result<Page<UserId>>;
    /// Groups of `user` after group `after`, at most `limit`.
    fn groups_of_after(&self, user: &str, after: Option<&str>, limit: usize) -> Result<Page<String>>;
    /// Every access key, in id order.
    fn access_keys(&self) -> Result<Vec<AccessKey>>;
    /// Every principal's key, in id order.
    fn principal_keys(&self) -> Result<Vec<PrincipalKey>>;
}

/// What the writer reads while it decides a batch: the views' rows (and through them
/// [`crate::core::State`]) and the token records.
pub trait Reads: RowStore {
    /// The token record under `key`, expired or not.
    fn token(&self, key: &TokenKey) -> Result<Option<TokenRecord>>;
    /// Up to `limit` token records with keys after `after`, ordered (the writer's sweep for
    /// expired ones).
    fn tokens_after(&self, after: Option<&TokenKey>, limit: usize) -> Result<Vec<(TokenKey, TokenRecord)>>;
    /// The hash of the Merkle tree's complete subtree `node`, if stored.
    fn merkle_node(&self, node: Node) -> Result<Option<Hash>> {
        crate::views::store::merkle_node(self, node)
    }
    /// The hashes of `nodes`, each if stored, in order: a backend whose reads cost a round
    /// trip each reads them at once.
    fn merkle_nodes(&self, nodes: &[Node]) -> Result<Vec<Option<Hash>>> {
        nodes.iter().map(|node| self.merkle_node(*node)).collect()
    }
}

/// Reads gathered for one batch attempt ([`Backend::prefetch`]): the writer decides the batch once
/// with reads noted instead of made, fetches them all at once, and decides it again through the
/// rows fetched. Only the writer thread holds one, so nobody else reads the rows it keeps.
pub trait Prefetch: Reads {
    /// While on, a read of a row or token record not fetched yet answers "absent" and is noted;
    /// while off, such a read is made on the backend (and kept).
    fn noting(&self, on: bool);
    /// Fetches every read noted since the last call, at once; whether there were any.
    fn fetch_noted(&self) -> Result<bool>;
}

/// What a backend several processes (hosts) write offers (PostgreSQL): then state every host
/// must share (root credentials, sign-in failures) lives in it, answers it did not write itself
/// are made durable by a barrier first, and a failed commit leaves nothing behind and no outcome
/// in doubt, so the ledger goes on writing after one.
pub trait SharedWriters: Send + Sync {
    /// Called by the writer before it decides a batch, and [`SharedWriters::end_batch`] after
    /// its commit: the hosts' writers take turns here, so that a batch decided is not refused
    /// for a head another host moved meanwhile (the compare-and-set stays the guarantee; this
    /// only spares the work). Waits a bounded time, then answers [`crate::Failure::Timeout`]
    /// naming who held the turn. Answers the log's head as of the turn when it read it on the
    /// way (the writer continues from there), else `None`. A commit made during the turn ends
    /// it on the backend's side; [`SharedWriters::end_batch`] ends it otherwise.
    fn begin_batch(&self) -> Result<Option<Head>>;
    /// Ends what [`SharedWriters::begin_batch`] began; called whatever the batch's outcome.
    fn end_batch(&self);
    /// How many sign-ins of `who` (an email key) failed after `since_ms`, as every host sees
    /// them.
    fn sign_in_failures(&self, who: &str, since_ms: i64) -> Result<u64>;
    /// Records a failed sign-in of `who` at `Some(at_ms)`, or forgets its failures after a
    /// success (`None`).
    fn note_sign_in(&self, who: &str, failed_at_ms: Option<i64>) -> Result<()>;
    /// This backend as of one moment, for an audit that reads the log and then the views and
    /// must see them agree while other hosts write. Reads only; dropped when the audit ends.
    fn pinned(&self) -> Result<Box<dyn Backend + '_>>;
}

/// What a backend on a local disk of its own offers (sled).
pub trait LocalDisk: Send + Sync {
    /// Called by the writer before it decides each batch: refuses (Failure::DiskFull) when a
    /// write could meet a full disk, so that the engine never does; nothing has been written
    /// and nothing is poisoned.
    fn check_space(&self) -> Result<()>;
    /// Called by the writer once, when a commit or a sync failed (or a read inside one): the
    /// ledger writes nothing more through this backend. A failed batch may have left part of
    /// itself behind, so this is recorded durably and reported on the next open until a
    /// rebuild syncs again.
    fn write_failed(&self);
}

/// A backend that hears of commits other writers make (PostgreSQL's hosts, ledgers sharing one
/// memory backend in tests).
pub trait Watch {
    /// Asks to be told of commits other writers make: `wake(seq)` with the head's seq, from any
    /// thread, soon after each (a wake-up, not the truth: subscribers then read the log from
    /// the seq they reached). Called once, on open.
    fn watch(&self, wake: Wake) -> Result<()>;
}

/// A database that can hold a ledger: twelve methods of its own, the reads of [`Reads`], and
/// the capabilities only some engines have ([`SharedWriters`], [`LocalDisk`], [`Watch`],
/// [`Prefetch`]), each offered or not. Reads of the views come through [`RowStore`] (and so
/// [`crate::core::State`] and [`Listings`]).
///
/// **Who calls what.** One process may hold many handles on one backend, but within a process
/// only the writer thread (`write/`) calls [`Backend::commit`] and [`Backend::sync`], one call
/// at a time; opening calls the settings methods before the writer starts; rebuild calls
/// [`Backend::set_tip`] and [`Backend::replace_view`] holding the writer's lock; every other
/// method is a read and may be called from any thread at any time, concurrently with a commit.
/// Several processes (hosts) may share one backend when it offers [`SharedWriters`]; then
/// nothing may be assumed about what the others do between two calls.
///
/// **Atomic** means a reader, here or on another host, sees all of a commit or none of it, and a
/// crash leaves all or none of it. **Ordered** means in ascending key order (seq for the log,
/// canonical key bytes for views and tokens). Every error names what failed (file, table, key or
/// seq) and keeps its [`crate::Failure`].
pub trait Backend: Reads + Send + Sync {
    /// A setting (page secret, identity, environment id) by name; `None` if never stored.
    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Stores `value` under `name` unless a value is stored already, durably, and returns the
    /// value stored now: `value`, or the one another opener stored first. Two hosts opening a
    /// new ledger at once therefore agree on every setting.
    fn insert_meta(&self, name: &str, value: &[u8]) -> Result<Vec<u8>>;
    /// Removes the setting `name`, durably, if it is there (a clear secret once it is wrapped).
    fn remove_meta(&self, name: &str) -> Result<()>;
    /// Replaces setting `name` with `value` if it still holds `expected`, atomically and durably
    /// (the keyring's compare-and-set: two hosts rotating at once cannot both win); true if it
    /// did.
    fn swap_meta(&self, name: &str, expected: &[u8], value: &[u8]) -> Result<bool>;
    /// Records a signed checkpoint (its encoded record) under its tree size, durably; one
    /// recorded at that size already stays as it is.
    fn record_checkpoint(&self, size: u64, record: &[u8]) -> Result<()>;
    /// The recorded checkpoints, (size, record), in size order: those of sizes above `after`,
    /// at most `limit`.
    fn checkpoints_after(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>>;
    /// The recorded checkpoint of the largest size, if any.
    fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>>;
    /// The wrapped person key of `user_id`, as the last commit that stored it left it; `None`
    /// once a commit destroyed it (or for a user made before personal data was sealed).
    fn person_key(&self, user_id: &str) -> Result<Option<Vec<u8>>>;
    /// Stored person keys of users with ids after `after`, in id order, at most `limit`: what a
    /// copy carries.
    fn person_keys_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<(UserId, Vec<u8>)>>;
    /// The head of the log and the seq the views are folded up to, as last committed.
    fn tip(&self) -> Result<Tip>;
    /// Applies `changes` atomically, if the log's head is still `changes.base`: the log rows,
    /// view changes (in order, a later one winning), token records and the tip. When the head
    /// moved (another writer committed) it writes nothing and answers
    /// [`crate::Failure::Conflict`]; the writer then reloads the tip and decides the batch
    /// again. A seq is never written twice, whatever the callers do.
    fn commit(&self, changes: &Changeset) -> Result<()>;
    /// Makes every committed change durable, up to `head` (the log's end as committed now) at
    /// least, also what other hosts committed and a commit whose answer was lost. Called after a
    /// commit under `Durability::Immediate`, before a shared backend's answer that wrote nothing
    /// (a retry's stored answer may be another host's doubtful commit), and by the flusher. A
    /// backend whose commits are durable when they return does nothing for its own. A backend
    /// several hosts share refuses ([`crate::Failure::Io`]) a `head` it does not hold (another
    /// entry at its seq, or none): it was read on another server, before a failover, and a
    /// barrier here covers nothing of it.
    fn sync(&self, head: Head) -> Result<()>;
    /// The log from `from_seq` on, undecoded, ordered; a cursor, never the whole log in memory.
    fn log(&self, from_seq: u64) -> Entries<'_>;
    /// The sealed bytes of the log entry at `seq`.
    fn log_entry(&self, seq: u64) -> Result<Option<Vec<u8>>>;

    /// Records the tip, outside any commit: a rebuild's start and end, under the writer's lock.
    fn set_tip(&self, tip: Tip) -> Result<()>;
    /// The seq of the last log entry (0 for an empty log), read from the log itself.
    fn last_seq(&self) -> Result<u64>;
    /// The rows of `view` in canonical form and order, for comparison with a fold of the log;
    /// a cursor.
    fn view_rows(&self, view: ViewTree) -> Entries<'_>;
    /// Makes `view` hold exactly `rows` (canonical, in key order: a rebuild); writes as little
    /// as it can.
    fn replace_view(
        &self,
        view: ViewTree,
        rows: &mut dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
    ) -> Result<()>;
    /// Bytes the database uses on disk.
    fn size_on_disk(&self) -> Result<u64>;

    /// The seqs of the events about `subject`, ordered. An engine may answer it faster than
    /// this reading of the history rows.
    fn history(&self, subject: Subject) -> Result<Vec<u64>> {
        let prefix = crate::views::subject_prefix(subject);
        let rows = self.rows_under(ViewTree::History, &prefix, None, usize::MAX)?;
        rows.iter()
            .map(|(key, _)| {
                key.get(prefix.len()..).and_then(crate::core::codec::seq_of).ok_or_else(|| {
                    crate::error::Error::corrupt(format_args!(
                        "corrupt history: key {} holds no seq",
                        String::from_utf8_lossy(key).replace('\0', "/")
                    ))
                })
            })
            .collect()
    }
    /// How many records `view` holds. An engine may count faster than this reading of them.
    fn view_len(&self, view: ViewTree) -> Result<u64> {
        let mut count = 0;
        for row in self.view_rows(view) {
            row?;
            count += 1;
        }
        Ok(count)
    }
    /// How many token records are stored. An engine may count faster than this paging.
    fn token_count(&self) -> Result<u64> {
        let (mut count, mut after) = (0, None);
        loop {
            let page = self.tokens_after(after.as_ref(), 1024)?;
            count += page.len() as u64;
            match page.into_iter().last() {
                Some((key, _)) => after = Some(key),
                None => return Ok(count),
            }
        }
    }

    /// What this backend offers as one several hosts write; `None`: only this process writes it.
    fn shared(&self) -> Option<&dyn SharedWriters> {
        None
    }
    /// What this backend offers as one on a local disk of its own; `None`: it has none.
    fn local_disk(&self) -> Option<&dyn LocalDisk> {
        None
    }
    /// How this backend tells of other writers' commits; `None`: nobody else writes it (this
    /// process's writer wakes its subscribers itself).
    fn watcher(&self) -> Option<&dyn Watch> {
        None
    }
    /// Called by the writer before it decides each batch attempt: a backend whose reads cost a
    /// round trip each may answer a [`Prefetch`] through which the attempt reads, so that the
    /// batch's reads are made at once. Valid for that attempt only (the writer drops it before
    /// the next); `None`: the attempt reads the backend itself.
    fn prefetch(&self) -> Option<Box<dyn Prefetch + '_>> {
        None
    }
}
