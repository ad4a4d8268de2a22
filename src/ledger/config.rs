//! How to open a ledger: the [`Config`] builder and the defaults and bounds of its settings.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::api::validate;
use crate::audit::refold::DEFAULT_FOLD_MEMORY;
use crate::backend::OpenMode;
use crate::core::clock::{Clock, SystemClock};
use crate::core::idempotency;
use crate::core::Limits;
use crate::error::Result;
use crate::write::{BatchReport, CommitHook, Durability, SyncHook};

/// How to open a ledger.
#[derive(Debug, Clone)]
pub struct Config {
    /// The database directory.
    pub path: PathBuf,
    /// When writes are acknowledged.
    pub durability: Durability,
    /// sled's page cache, in bytes.
    pub cache_capacity: u64,
    /// Quotas.
    pub limits: Limits,
    /// Where time comes from.
    pub clock: Arc<dyn Clock>,
    /// How long a clientToken is remembered, in ms.
    pub token_ttl_ms: i64,
    /// The most write requests that may wait; one more gets ThrottlingException.
    pub queue_capacity: usize,
    /// The most requests committed in one batch (one transaction, one flush).
    pub max_batch: usize,
    /// Called before every sync; for tests of failure handling.
    pub(crate) sync_hook: Option<SyncHook>,
    /// Called after every committed batch; for a host's metrics.
    pub(crate) commit_hook: Option<CommitHook>,
    /// Region of a new database (default `us-east-1`); an existing one must match.
    pub region: Option<String>,
    /// FinSpace environment id of a new database (default: a new ULID); an existing one must match.
    pub environment_id: Option<String>,
    /// Account of a new database (default `000000000000`); an existing one must match.
    pub account: Option<String>,
    /// Whether to create a missing database, insist on an existing one, or open read-only.
    pub mode: OpenMode,
    /// When failed sign-ins lock a user out ([`Ledger::sign_in`](crate::Ledger::sign_in)): 5
    /// within 15 minutes by default; the window at most 24 hours.
    pub sign_in_lockout: crate::Lockout,
    /// Whether opening may change the database to what this build writes (lift sled format 1,
    /// make PostgreSQL tables this build adds, wrap a clear secret under the root key given);
    /// off, such a database is refused with [`crate::Failure::NeedsMigration`] naming the change,
    /// and nothing is written. Default on.
    pub migrate: bool,
    /// Whether syncs record the acknowledgement mark. Only the benchmark turns this off, to
    /// measure what the mark costs; a ledger without it cannot detect lost acknowledged writes.
    #[doc(hidden)]
    pub record_mark: bool,
    /// How many view changes a rebuild writes (and syncs) at a time, which bounds its write
    /// buffer; default [`DEFAULT_REBUILD_CHUNK`].
    pub rebuild_chunk: usize,
    /// About how many bytes full verify and rebuild may hold while they fold the log; past it
    /// they spill sorted runs to temporary files. Default [`DEFAULT_FOLD_MEMORY`].
    pub fold_memory: usize,
    /// The free space a write must leave on the database's filesystem: below it, writes are
    /// refused (Failure::DiskFull) before the storage engine is touched, and work again once
    /// there is space. 0 turns the check off. Default [`DEFAULT_DISK_RESERVE`].
    pub disk_reserve: u64,
    /// The root key that wraps the ledger's data keys, held outside the data. Given one, a new
    /// ledger stores its data key wrapped, never in the clear, and an older ledger's clear secret
    /// is wrapped at open and its clear copy removed; a ledger whose keyring it does not open is
    /// refused. Default none.
    pub root_key: Option<crate::credentials::keyring::RootKey>,
    /// The key that signs checkpoints, held outside the database: a note signer key named as
    /// the ledger's checkpoints are (`user-ledger/<account>/<environmentId>`), or a key in a
    /// PKCS#11 token. Default: one derived from data key 0.
    pub checkpoint_key: Option<std::sync::Arc<dyn crate::core::checkpoint::NoteSigner>>,
    /// The checkpoint mark: a small file outside the database where this host keeps the
    /// largest checkpoint it signed, so that a database replaced by an older one (a restore, a
    /// standby promoted while behind) is refused before it signs a second root for a size.
    /// Default none (the CLI puts one beside a sled database).
    pub checkpoint_mark: Option<PathBuf>,
    /// What cosigns every checkpoint before it is served (witnesses); a checkpoint it refuses
    /// is not served. Default none.
    pub cosigner: Option<Arc<dyn super::Cosigner>>,
    /// Whether writes extend the Merkle tree (default true). Off only for a benchmark's A/B of
    /// what the tree costs: a ledger written without it signs and proves nothing it wrote.
    #[cfg(feature = "whitebox")]
    #[doc(hidden)]
    pub keep_tree: bool,
    /// Whether new users' personal data is sealed under person keys (default true). Off only
    /// for a benchmark's A/B of what sealing costs: such a ledger writes personal data in the
    /// clear, as before erasure existed, and cannot erase it.
    #[cfg(feature = "whitebox")]
    #[doc(hidden)]
    pub seal_personal_data: bool,
}

/// The default [`Config::disk_reserve`]: 64 MiB, room for sled 0.34's 8 MiB I/O buffers and its
/// segment rewrites, so that the engine itself never meets a full disk.
pub const DEFAULT_DISK_RESERVE: u64 = 64 * 1024 * 1024;

/// The default number of view changes a rebuild writes at a time.
pub const DEFAULT_REBUILD_CHUNK: usize = 10_000;

/// The largest write queue a config may ask for.
pub const MAX_QUEUE_CAPACITY: i64 = 1 << 20;
/// The largest batch a config may ask for.
pub const MAX_BATCH: i64 = 1 << 16;
/// The longest a clientToken may be remembered: a year (longer would only grow the token records,
/// and far longer overflows the expiry's arithmetic).
pub const MAX_TOKEN_TTL_MS: i64 = 366 * 24 * 60 * 60 * 1000;

/// The default bound of the write queue.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;
/// The default most requests per batch.
pub const DEFAULT_MAX_BATCH: usize = 512;

/// The default page cache: 64 MiB, not sled's 1 GiB, since the ledger is embedded in a host.
pub const DEFAULT_CACHE_CAPACITY: u64 = 64 * 1024 * 1024;

impl Config {
    /// Defaults for the database at `path`: Immediate durability, 64 MiB cache, no quota, system
    /// clock, tokens remembered 10 minutes.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Config {
            path: path.as_ref().to_owned(),
            durability: Durability::Immediate,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            limits: Limits::default(),
            clock: Arc::new(SystemClock),
            token_ttl_ms: idempotency::DEFAULT_TTL_MS,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            max_batch: DEFAULT_MAX_BATCH,
            sync_hook: None,
            commit_hook: None,
            region: None,
            environment_id: None,
            account: None,
            mode: OpenMode::Create,
            migrate: true,
            sign_in_lockout: Default::default(),
            record_mark: true,
            rebuild_chunk: DEFAULT_REBUILD_CHUNK,
            fold_memory: DEFAULT_FOLD_MEMORY,
            disk_reserve: DEFAULT_DISK_RESERVE,
            root_key: None,
            checkpoint_key: None,
            checkpoint_mark: None,
            cosigner: None,
            #[cfg(feature = "whitebox")]
            keep_tree: true,
            #[cfg(feature = "whitebox")]
            seal_personal_data: true,
        }
    }

    /// Sets the key that signs checkpoints (see [`Config::checkpoint_key`]).
    pub fn checkpoint_key(mut self, key: impl crate::core::checkpoint::NoteSigner + 'static) -> Self {
        self.checkpoint_key = Some(std::sync::Arc::new(key));
        self
    }

    /// Sets the root key that wraps the ledger's data keys (see [`Config::root_key`]).
    pub fn root_key(mut self, key: crate::credentials::keyring::RootKey) -> Self {
        self.root_key = Some(key);
        self
    }

    /// Sets how the database directory is opened (default: created if missing).
    pub fn mode(mut self, mode: OpenMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the region kdb user ARNs name (fixed when the database is created).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sets the account kdb user ARNs name (fixed when the database is created).
    pub fn account(mut self, account: impl Into<String>) -> Self {
        self.account = Some(account.into());
        self
    }

    /// Limits how many kdb users one environment may have.
    pub fn max_kx_users_per_environment(mut self, max: u64) -> Self {
        self.limits.max_kx_users_per_environment = Some(max);
        self
    }

    /// Sets how long clientTokens are remembered (default 10 minutes).
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        // Saturated; `Ledger::open` refuses anything over MAX_TOKEN_TTL_MS.
        self.token_ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// Sets the durability.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets the free space writes must leave on the database's filesystem (0: no check).
    pub fn disk_reserve(mut self, bytes: u64) -> Self {
        self.disk_reserve = bytes;
        self
    }

    /// Sets how many view changes a rebuild writes at a time (at least 1).
    pub fn rebuild_chunk(mut self, changes: usize) -> Self {
        self.rebuild_chunk = changes;
        self
    }

    /// Sets about how many bytes verify and rebuild may hold while folding the log (at least 1;
    /// tiny values make them spill nearly every record, which tests use).
    pub fn fold_memory(mut self, bytes: usize) -> Self {
        self.fold_memory = bytes;
        self
    }

    /// Sets sled's cache size in bytes.
    pub fn cache_capacity(mut self, bytes: u64) -> Self {
        self.cache_capacity = bytes;
        self
    }

    /// Limits how many users may be ENABLED at once.
    pub fn max_enabled_users(mut self, max: u64) -> Self {
        self.limits.max_enabled_users = Some(max);
        self
    }

    /// Sets the clock.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Bounds the write queue (default 4096).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// Bounds a batch (default 512).
    pub fn max_batch(mut self, max: usize) -> Self {
        self.max_batch = max;
        self
    }

    /// Calls `hook` before every sync; an error fails the sync. For tests of failure handling.
    pub fn sync_hook(mut self, hook: impl Fn() -> std::io::Result<()> + Send + Sync + 'static) -> Self {
        self.sync_hook = Some(SyncHook(Arc::new(hook)));
        self
    }

    /// Checks the bounds a ledger can work within; `Ledger::open` refuses a config outside them
    /// with a ValidationException naming the setting.
    pub fn validate(&self) -> Result<()> {
        validate::in_range("queueCapacity", 1, MAX_QUEUE_CAPACITY, self.queue_capacity as i64)?;
        validate::in_range("maxBatch", 1, MAX_BATCH, self.max_batch as i64)?;
        validate::in_range("tokenTtl", 1, MAX_TOKEN_TTL_MS, self.token_ttl_ms)?;
        validate::in_range("rebuildChunk", 1, MAX_QUEUE_CAPACITY, self.rebuild_chunk as i64)?;
        validate::in_range("foldMemory", 1, i64::MAX, i64::try_from(self.fold_memory).unwrap_or(i64::MAX))?;
        validate::in_range("signInMaxFailures", 1, 1000, i64::from(self.sign_in_lockout.max_failures))?;
        let longest = crate::credentials::password::MAX_FAILURE_WINDOW_MS;
        validate::in_range("signInWindow", 1000, longest, self.sign_in_lockout.window_ms)?;
        Ok(())
    }

    /// Calls `hook` after every committed batch with its size and sync time (for metrics).
    pub fn on_commit(mut self, hook: impl Fn(BatchReport) + Send + Sync + 'static) -> Self {
        self.commit_hook = Some(CommitHook(Arc::new(hook)));
        self
    }
}
