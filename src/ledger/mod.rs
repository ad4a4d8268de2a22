//! The public handle: validates requests, commits them through the writer, serves reads.
//!
//! Invariant: every change goes through the write path as a validated command, every read through
//! the views, and every public method names only types a user can name.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod groups;
mod passwords;
mod settings;

use crate::api::page::PageTokens;
use crate::api::request::{
    validate_environment_id, validate_kx_user_path, validate_user_id, CreateKxUserRequest, CreateUserRequest,
    DeleteKxUserResponse, KxUserResponse, KxUserSummary, ListKxUsersResponse, ListUsersResponse,
    UpdateKxUserRequest, UpdateUserRequest, UserIdResponse,
};
use crate::api::request::{ProgrammaticCredentials, TemporaryCredentials};
use crate::api::validate;
use crate::api::write_op::{unexpected, written, Write, Written};
use crate::audit::refold::refold;
pub use crate::audit::refold::DEFAULT_FOLD_MEMORY;
use crate::audit::{self, AsOf, Digest, Fault, Problem, Report, VerifyMode};
use crate::backend::guard::guard;
use crate::backend::sled::directory::Directory;
use crate::backend::sled::{Opened, SledBackend};
use crate::backend::{Backend, Head, OpenMode};
use crate::core::clock::{Clock, SystemClock};
use crate::core::codec;
use crate::core::domain::{AccessKey, AccessKeyPair, Caller, Identity, KxUser, PrincipalKey, User};
use crate::core::event::{Sealed, Subject};
use crate::core::idempotency::{self, Response, TokenRecord};
use crate::core::{self, Access, Command, Limits};
use crate::credentials::access_key;
use crate::credentials::password::SignInLimiter;
use crate::error::{Error, Failure, Result, Rule};
use crate::views::{MemViews, Rows, ViewTree};
use crate::write::batch::{WriteRequest, Writer, PURGE_PER_COMMIT};
use crate::write::subscribe::Subscription;
use crate::write::{BatchReport, CommitHook, Durability, Flusher, Hooks, Pipeline, Shared, SyncHook};

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
    pub sync_hook: Option<SyncHook>,
    /// Called after every committed batch; for a host's metrics.
    pub commit_hook: Option<CommitHook>,
    /// Region of a new database (default `us-east-1`); an existing one must match.
    pub region: Option<String>,
    /// FinSpace environment id of a new database (default: a new ULID); an existing one must match.
    pub environment_id: Option<String>,
    /// Account of a new database (default `000000000000`); an existing one must match.
    pub account: Option<String>,
    /// Whether to create a missing database, insist on an existing one, or open read-only.
    pub mode: OpenMode,
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
            record_mark: true,
            rebuild_chunk: DEFAULT_REBUILD_CHUNK,
            fold_memory: DEFAULT_FOLD_MEMORY,
            disk_reserve: DEFAULT_DISK_RESERVE,
        }
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
        Ok(())
    }

    /// Calls `hook` after every committed batch with its size and sync time (for metrics).
    pub fn on_commit(mut self, hook: impl Fn(BatchReport) + Send + Sync + 'static) -> Self {
        self.commit_hook = Some(CommitHook(Arc::new(hook)));
        self
    }
}

/// Counts an operator wants to see.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Stats {
    /// The FinSpace environment id (GetProgrammaticAccessCredentials takes it).
    pub environment_id: String,
    /// Events in the log.
    pub events: u64,
    /// FinSpace users.
    pub users: u64,
    /// kdb users.
    pub kx_users: u64,
    /// clientToken records, live or expired but not yet purged.
    pub tokens: u64,
    /// Bytes sled uses on disk.
    pub bytes_on_disk: u64,
}

/// A ledger of users: `Send + Sync`, cheap to clone; clones share one database.
#[derive(Clone, Debug)]
pub struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    identity: Arc<Identity>,
    /// The FinSpace environment GetProgrammaticAccessCredentials answers for.
    environment_id: String,
    config: Config,
    pages: PageTokens,
    /// Failed sign-ins, to refuse guessing.
    sign_ins: SignInLimiter,
    /// Derives access key secrets; from the database's secret, never in the log.
    key_secret: [u8; 32],
    /// Seals password hashes and kept temporary passwords; from the database's secret.
    seal_key: [u8; 32],
    /// What the log lost of what was acknowledged (a read-only open goes on regardless).
    lost: Option<Problem>,
    /// What opening narrowed to its owner's only.
    tightened: Vec<PathBuf>,
    /// Dropped first: drains the queue and stops the writer.
    pipeline: Pipeline,
    /// Dropped after the writer: syncs one last time and stops.
    _flusher: Option<Flusher>,
}

impl Drop for Inner {
    /// The last handle went away: commit what is queued, then let subscribers end.
    fn drop(&mut self) {
        self.pipeline.close();
        self.shared.published.close();
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("path", &self.config.path).finish_non_exhaustive()
    }
}

const USERS_SCOPE: &str = "users";

impl Ledger {
    /// Opens (or creates) the ledger `config` describes.
    ///
    /// Refuses (InternalServerException, [`Failure::Lost`] or [`Failure::Missing`]) a database
    /// whose log no longer holds every write it acknowledged, unless opened read-only, when
    /// reads show what is left and [`Ledger::verify`] reports the loss.
    pub fn open(config: Config) -> Result<Ledger> {
        Self::open_accepting(config, false)
    }

    /// Makes the log as it is now the acknowledged one, after a loss that [`Ledger::open`]
    /// refuses: the operator's last resort when no backup holds the lost writes. The log's chain
    /// must verify; returns the digest of the log accepted.
    pub fn accept_log(config: Config) -> Result<Digest> {
        if config.mode == OpenMode::ReadOnly {
            return Err(Error::failed(
                Failure::ReadOnly,
                "accepting the log writes a new mark; open it writable",
            ));
        }
        let ledger = Self::open_accepting(config, true)?;
        let shared = &ledger.inner.shared;
        let _writer = shared.lock_writer();
        let report =
            refold(shared.backend.log(1), None, ledger.inner.config.fold_memory, &mut |_| {})?.report;
        if let Some(problem) = report.problem {
            return Err(Error::corrupt(format_args!("cannot accept the log: it is corrupt at {problem}")));
        }
        // The log's own end: the tip's head may still name an entry sled lost.
        let head = Head { seq: report.head.seq, hash: report.head.hash, time_ms: report.time_ms };
        shared.backend.accept(head)?;
        Ok(report.head)
    }

    fn open_accepting(config: Config, accept_loss: bool) -> Result<Ledger> {
        config.validate()?;
        let dir = Directory::acquire(&config.path, config.mode)?;
        let Opened { backend, lost, tightened, failed_write } =
            SledBackend::open(dir, config.cache_capacity, config.record_mark, config.rebuild_chunk)?;
        backend.reserve(config.disk_reserve);
        let read_only = config.mode == OpenMode::ReadOnly;
        let lost = match lost {
            Some((e, _)) if !read_only && !accept_loss => return Err(e),
            lost => lost.map(|(e, seq)| Problem { seq, fault: Fault::Unacknowledged(e.to_string()) }),
        };
        Self::start(Arc::new(backend), config, lost, tightened, failed_write)
    }

    /// Opens a ledger on `backend` (for example the in-memory one of the tests); `config.path`
    /// only names it in messages.
    #[cfg(feature = "whitebox")]
    #[doc(hidden)]
    pub fn open_backend(backend: Arc<dyn Backend>, config: Config) -> Result<Ledger> {
        config.validate()?;
        Self::start(backend, config, None, vec![], None)
    }

    /// Reads (or makes) the settings, checks the views, and starts the writer.
    fn start(
        backend: Arc<dyn Backend>,
        config: Config,
        lost: Option<Problem>,
        tightened: Vec<PathBuf>,
        failed_write: Option<String>,
    ) -> Result<Ledger> {
        let region = validate::optional("region", &validate::REGION, config.region.as_deref())?;
        let account = validate::optional("account", &validate::ACCOUNT, config.account.as_deref())?;
        let environment_id =
            validate::optional("environmentId", &validate::ENVIRONMENT_ID, config.environment_id.as_deref())?;
        let shown = config.path.as_path();
        let (tip, stale, page_secret, identity, environment_id) = guard("while reading meta", || {
            let tip = backend.tip()?;
            let stale = settings::staleness(backend.as_ref(), &tip)?.or(failed_write);
            let page_secret = settings::page_secret(backend.as_ref())?;
            let identity =
                settings::identity(backend.as_ref(), shown, region.as_deref(), account.as_deref())?;
            let environment_id =
                settings::environment_id(backend.as_ref(), shown, environment_id.as_deref())?;
            Ok((tip, stale, page_secret, identity, environment_id))
        })?;
        let read_only = config.mode == OpenMode::ReadOnly;
        let shared = Arc::new(Shared::new(
            backend,
            Writer::new(tip.head, config.token_ttl_ms),
            config.limits,
            config.clock.clone(),
            config.durability,
            Hooks { sync: config.sync_hook.clone(), commit: config.commit_hook.clone() },
            stale,
            read_only,
        ));
        let flusher = match config.durability {
            Durability::Immediate => None,
            Durability::Periodic(period) => Some(Flusher::spawn(shared.clone(), period)),
        };
        let pipeline = Pipeline::start(shared.clone(), config.queue_capacity, config.max_batch)?;
        Ok(Ledger {
            inner: Arc::new(Inner {
                shared,
                identity: Arc::new(identity),
                environment_id,
                config,
                pages: PageTokens::new(page_secret),
                sign_ins: SignInLimiter::default(),
                key_secret: access_key::secret_key(&page_secret),
                seal_key: crate::core::seal::seal_key(&page_secret),
                lost,
                tightened,
                pipeline,
                _flusher: flusher,
            }),
        })
    }

    /// The directory and files of an existing database whose modes this open narrowed to the
    /// owner's only (0700, 0600): they were readable by others, who may have read its secret.
    pub fn tightened(&self) -> &[PathBuf] {
        &self.inner.tightened
    }

    /// Opens the ledger at `path` with default configuration.
    pub fn open_path(path: impl AsRef<Path>) -> Result<Ledger> {
        Ledger::open(Config::new(path))
    }

    /// CreateUser: a new ENABLED user; returns its id.
    pub fn create_user(&self, caller: &Caller, request: &CreateUserRequest) -> Result<UserIdResponse> {
        self.write(caller, Write::CreateUser(request)).and_then(user_id_response)
    }

    /// UpdateUser: sets the given fields; a request that changes nothing appends nothing.
    pub fn update_user(&self, caller: &Caller, request: &UpdateUserRequest) -> Result<UserIdResponse> {
        self.write(caller, Write::UpdateUser(request)).and_then(user_id_response)
    }

    /// EnableUser; enabling an ENABLED user appends nothing.
    pub fn enable_user(
        &self,
        caller: &Caller,
        user_id: &str,
        client_token: Option<&str>,
    ) -> Result<UserIdResponse> {
        self.write(caller, Write::EnableUser { user_id, client_token }).and_then(user_id_response)
    }

    /// DisableUser; disabling a DISABLED user appends nothing.
    pub fn disable_user(
        &self,
        caller: &Caller,
        user_id: &str,
        client_token: Option<&str>,
    ) -> Result<UserIdResponse> {
        self.write(caller, Write::DisableUser { user_id, client_token }).and_then(user_id_response)
    }

    /// GetUser.
    pub fn get_user(&self, caller: &Caller, user_id: &str) -> Result<User> {
        let user_id = validate_user_id(Some(user_id))?;
        self.read(caller, |store| store.user(&user_id))?
            .ok_or_else(|| Error::ResourceNotFound { message: format!("User {user_id} does not exist") })
    }

    /// ListUsers: up to `max_results` (required, 1..100) users in userId order, resuming after
    /// `next_token`. Tokens stay valid while users are added: a page never repeats or skips one.
    pub fn list_users(
        &self,
        caller: &Caller,
        max_results: Option<i64>,
        next_token: Option<&str>,
    ) -> Result<ListUsersResponse> {
        let max = validate::in_range("maxResults", 1, 100, validate::present("maxResults", max_results)?)?;
        let pages = &self.inner.pages;
        let after = next_token.map(|t| pages.open(USERS_SCOPE, "nextToken", t)).transpose()?;
        let (users, more) = self.read(caller, |store| store.users_after(after.as_deref(), max as usize))?;
        let next_token = match users.last() {
            Some(last) if more => Some(pages.issue(USERS_SCOPE, last.user_id.as_bytes())),
            _ => None,
        };
        Ok(ListUsersResponse { users, next_token })
    }

    /// CreateKxUser: a new user of a kdb environment.
    pub fn create_kx_user(&self, caller: &Caller, request: &CreateKxUserRequest) -> Result<KxUserResponse> {
        self.write(caller, Write::CreateKxUser(request)).and_then(kx_user_response)
    }

    /// GetKxUser.
    pub fn get_kx_user(
        &self,
        caller: &Caller,
        environment_id: &str,
        user_name: &str,
    ) -> Result<KxUserResponse> {
        let (environment_id, user_name) = validate_kx_user_path(Some(environment_id), Some(user_name))?;
        let user =
            self.read(caller, |store| store.kx_user(&environment_id, &user_name))?.ok_or_else(|| {
                Error::ResourceNotFound {
                    message: format!("kdb user {user_name} does not exist in environment {environment_id}"),
                }
            })?;
        let KxUser { environment_id, user_name, iam_role, .. } = user;
        written(&self.inner.identity, Response::KxUser { environment_id, user_name, iam_role })
            .and_then(kx_user_response)
    }

    /// UpdateKxUser: changes the IAM role; the same role appends nothing.
    pub fn update_kx_user(&self, caller: &Caller, request: &UpdateKxUserRequest) -> Result<KxUserResponse> {
        self.write(caller, Write::UpdateKxUser(request)).and_then(kx_user_response)
    }

    /// DeleteKxUser: the user's history stays in the log, and the name is free again.
    pub fn delete_kx_user(
        &self,
        caller: &Caller,
        environment_id: &str,
        user_name: &str,
        client_token: Option<&str>,
    ) -> Result<DeleteKxUserResponse> {
        match self.write(caller, Write::DeleteKxUser { environment_id, user_name, client_token })? {
            Written::Empty(deleted) => Ok(deleted),
            other => Err(unexpected(other)),
        }
    }

    /// Queues `write` and returns at once, without waiting for it: `done` is called with the
    /// answer on the writer thread once it is committed (and synced, under Immediate
    /// durability), so it must be quick, e.g. a channel send. A request that breaks a member
    /// rule, or finds the queue full, is refused here and `done` is not called.
    pub fn write_then(
        &self,
        caller: &Caller,
        write: Write<'_>,
        done: impl FnOnce(Result<Written>) + Send + 'static,
    ) -> Result<()> {
        let (client_token, command) = write.command()?;
        self.inner.shared.refuse_writes()?;
        let request = WriteRequest { caller: caller.clone(), client_token, command };
        // Not the Ledger: a reply holding the last handle would close the writer from itself.
        let identity = self.inner.identity.clone();
        let reply = move |response: Result<Response>| done(response.and_then(|r| written(&identity, r)));
        self.inner.pipeline.submit_then(request, Box::new(reply))
    }

    /// ListKxUsers: users of one environment in userName order; `max_results` 0..100, where
    /// absent or 0 means the most, 100.
    pub fn list_kx_users(
        &self,
        caller: &Caller,
        environment_id: &str,
        max_results: Option<i64>,
        next_token: Option<&str>,
    ) -> Result<ListKxUsersResponse> {
        let environment_id = validate_environment_id(Some(environment_id))?;
        let max = match max_results.map(|n| validate::in_range("maxResults", 0, 100, n)).transpose()? {
            None | Some(0) => 100,
            Some(n) => n as usize,
        };
        let scope = format!("kx/{environment_id}");
        let pages = &self.inner.pages;
        let after = match next_token {
            Some(token) => {
                validate::check("nextToken", &validate::KX_NEXT_TOKEN, token)?;
                let name = pages.open(&scope, "nextToken", token)?;
                Some(
                    String::from_utf8(name)
                        .map_err(|_| Error::validation("nextToken", Rule::InvalidToken))?,
                )
            }
            None => None,
        };
        let (users, more) =
            self.read(caller, |store| store.kx_users_after(&environment_id, after.as_deref(), max))?;
        let next_token = match users.last() {
            Some(last) if more => Some(pages.issue(&scope, last.user_name.as_bytes())),
            _ => None,
        };
        let identity = &self.inner.identity;
        let users = users
            .into_iter()
            .map(|u| {
                let arn = identity.kx_user_arn(&u.environment_id, &u.user_name);
                KxUserSummary::new(u, arn)
            })
            .collect();
        Ok(ListKxUsersResponse { users, next_token })
    }

    /// Issues an access key to user `user_id` (an AccessKeyCreated event holding the key id,
    /// never the secret); returns the key with its secret, which the ledger can derive again
    /// but never shows again.
    pub fn create_access_key(&self, caller: &Caller, user_id: &str) -> Result<AccessKeyPair> {
        let user_id = validate_user_id(Some(user_id))?;
        let access_key_id = access_key::new_key_id(access_key::USER_KEY_PREFIX)?;
        match self.command(caller, None, Command::CreateAccessKey { access_key_id, user_id })? {
            Response::AccessKey { access_key_id, .. } => {
                let secret_access_key = access_key::derive_secret(&self.inner.key_secret, &access_key_id);
                Ok(AccessKeyPair { access_key_id, secret_access_key })
            }
            other => Err(unexpected(other)),
        }
    }

    /// Deletes an access key: requests signed with it are refused from now on.
    pub fn delete_access_key(&self, caller: &Caller, access_key_id: &str) -> Result<()> {
        let access_key_id = validate::required("accessKeyId", &validate::ACCESS_KEY_ID, Some(access_key_id))?;
        self.command(caller, None, Command::DeleteAccessKey { access_key_id: access_key_id.to_owned() })?;
        Ok(())
    }

    /// The access keys of user `user_id`, or of every user, in key id order.
    pub fn list_access_keys(&self, caller: &Caller, user_id: Option<&str>) -> Result<Vec<AccessKey>> {
        let user_id = user_id.map(|id| validate_user_id(Some(id))).transpose()?;
        let keys = self.read(caller, |store| store.access_keys())?;
        Ok(keys.into_iter().filter(|k| user_id.as_ref().is_none_or(|id| k.user_id == *id)).collect())
    }

    /// What key `access_key_id` stands for and its secret, for checking a signature; `None`
    /// for a key that is not (or no longer) issued. Expired temporary credentials are returned:
    /// the host tells them apart (ExpiredTokenException).
    pub fn credential(&self, access_key_id: &str) -> Result<Option<Credential>> {
        let secret_key = &self.inner.key_secret;
        let secret = || access_key::derive_secret(secret_key, access_key_id);
        self.read(&Caller::System, |store| {
            if let Some(key) = store.access_key(access_key_id)? {
                return Ok(Some(Credential {
                    caller: Caller::User(key.user_id),
                    secret: secret(),
                    temporary: None,
                }));
            }
            if let Some(key) = store.principal_key(access_key_id)? {
                return Ok(Some(Credential {
                    caller: Caller::Principal(key.principal_arn),
                    secret: secret(),
                    temporary: None,
                }));
            }
            Ok(store.temporary_credential(access_key_id)?.map(|c| Credential {
                caller: Caller::User(c.user_id),
                secret: secret(),
                temporary: Some(Temporary {
                    session_token: access_key::derive_session_token(secret_key, access_key_id),
                    expires_ms: c.expires_ms,
                }),
            }))
        })
    }

    /// Issues an access key that stands for IAM principal `principal_arn` (a PrincipalKeyCreated
    /// event): it may only call GetProgrammaticAccessCredentials.
    pub fn create_principal_key(&self, caller: &Caller, principal_arn: &str) -> Result<AccessKeyPair> {
        let principal_arn = validate::required("principalArn", &validate::ROLE_ARN, Some(principal_arn))?;
        let access_key_id = access_key::new_key_id(access_key::PRINCIPAL_KEY_PREFIX)?;
        let command = Command::CreatePrincipalKey { access_key_id, principal_arn: principal_arn.to_owned() };
        match self.command(caller, None, command)? {
            Response::PrincipalKey { access_key_id } => {
                let secret_access_key = access_key::derive_secret(&self.inner.key_secret, &access_key_id);
                Ok(AccessKeyPair { access_key_id, secret_access_key })
            }
            other => Err(unexpected(other)),
        }
    }

    /// The principals' keys, in key id order.
    pub fn list_principal_keys(&self, caller: &Caller) -> Result<Vec<PrincipalKey>> {
        self.read(caller, |store| store.principal_keys())
    }

    /// GetProgrammaticAccessCredentials, by a principal's key: temporary credentials, valid for
    /// `duration_in_minutes` (1..60, default 60), acting as the user whose apiAccessPrincipalArn
    /// is the principal (the lowest userId that qualifies). Issuing is a CredentialsIssued event; the
    /// secret and session token are derived, never kept.
    pub fn get_programmatic_access_credentials(
        &self,
        caller: &Caller,
        environment_id: Option<&str>,
        duration_in_minutes: Option<i64>,
    ) -> Result<ProgrammaticCredentials> {
        let environment_id = validate::present("environmentId", environment_id)?;
        if environment_id != self.inner.environment_id {
            let expected = format!("this ledger's environment id, {}", self.inner.environment_id);
            return Err(Error::validation("environmentId", Rule::Type(expected)));
        }
        let minutes = validate::in_range("durationInMinutes", 1, 60, duration_in_minutes.unwrap_or(60))?;
        let access_key_id = access_key::new_key_id(access_key::TEMPORARY_KEY_PREFIX)?;
        let expires_ms = self.inner.shared.now_ms() + minutes * 60_000;
        match self.command(caller, None, Command::IssueCredentials { access_key_id, expires_ms })? {
            Response::Credentials { access_key_id, .. } => {
                let secret_key = &self.inner.key_secret;
                Ok(ProgrammaticCredentials {
                    credentials: TemporaryCredentials {
                        secret_access_key: access_key::derive_secret(secret_key, &access_key_id),
                        session_token: access_key::derive_session_token(secret_key, &access_key_id),
                        access_key_id,
                    },
                    duration_in_minutes: minutes,
                })
            }
            other => Err(unexpected(other)),
        }
    }

    /// Checks that `caller` may make a request of kind `access` (the rules are in README.md):
    /// for hosts that serve the audit reads, which take no caller themselves.
    pub fn authorize(&self, caller: &Caller, access: Access) -> Result<()> {
        let shared = &self.inner.shared;
        guarded(|| core::authorize(shared.backend.as_ref(), caller, access))
    }

    /// The directory of the database.
    pub fn path(&self) -> &Path {
        &self.inner.config.path
    }

    /// Why the views cannot be trusted (they lag or lead the log), or `None` if they can.
    pub fn views_status(&self) -> Option<String> {
        self.inner.shared.stale()
    }

    /// Drops every view and index and refolds them from the log; returns the events folded.
    /// `progress` is told the seq reached now and then. Repairs views that lag or lead the log.
    pub fn rebuild_views(&self, progress: &mut dyn FnMut(u64)) -> Result<u64> {
        let shared = &self.inner.shared;
        let fold_memory = self.inner.config.fold_memory;
        shared.refuse_if_poisoned()?;
        let head = shared.lock_writer().rebuild(shared.backend.as_ref(), fold_memory, progress)?;
        shared.sync(head)?;
        shared.set_fresh();
        Ok(head.seq)
    }

    /// Runs the verification `mode` names: [`Ledger::verify`], [`Ledger::verify_chain`] or
    /// [`Ledger::verify_since`].
    pub fn verify_by(&self, mode: VerifyMode, progress: &mut dyn FnMut(u64)) -> Result<Report> {
        match mode {
            VerifyMode::Full(digest) => self.verify(digest, progress),
            VerifyMode::Chain(digest) => self.verify_chain(digest, progress),
            VerifyMode::Since(digest) => self.verify_since(digest, progress),
        }
    }

    /// Verifies every link of the hash chain, that the log is dense and its times never
    /// decrease, that the tip's head names its end, that it extends `digest` (if given), and that
    /// the views equal a fresh fold of the log. Writes wait meanwhile; reads do not.
    pub fn verify(&self, digest: Option<Digest>, progress: &mut dyn FnMut(u64)) -> Result<Report> {
        guarded(|| self.verify_unguarded(digest, progress))
    }

    fn verify_unguarded(&self, digest: Option<Digest>, progress: &mut dyn FnMut(u64)) -> Result<Report> {
        let shared = &self.inner.shared;
        let writer = shared.lock_writer();
        let backend = &shared.backend;
        let mut folded = refold(backend.log(1), digest, self.inner.config.fold_memory, progress)?;
        let mut report = folded.report.clone();
        self.check_end(&mut report, writer.head());
        if report.problem.is_none() {
            let head = writer.head();
            if let Some(why) = shared.stale() {
                report.problem = Some(Problem { seq: head.seq, fault: Fault::ViewsStale(why) });
            } else {
                for view in ViewTree::ALL {
                    let live = backend.view_rows(view);
                    if let Some(fault) = audit::first_difference(view, live, folded.rows_of(view))? {
                        report.problem = Some(Problem { seq: head.seq, fault });
                        break;
                    }
                }
            }
        }
        Ok(report)
    }

    /// Verifies the log alone: every link of the chain, density, times, that the tip's head names
    /// its end and that it extends `digest` (if given); not the views. Writes wait meanwhile.
    pub fn verify_chain(&self, digest: Option<Digest>, progress: &mut dyn FnMut(u64)) -> Result<Report> {
        guarded(|| {
            let writer = self.inner.shared.lock_writer();
            let mut report = audit::verify_chain(self.inner.shared.backend.log(1), digest, progress)?;
            self.check_end(&mut report, writer.head());
            Ok(report)
        })
    }

    /// Verifies only what was appended since `digest`, a point an auditor verified and kept: the
    /// entry there is unchanged and every later one chains onto it, up to the tip's head. Takes
    /// time in proportion to what is new; `report.events` counts the entries checked.
    pub fn verify_since(&self, digest: Digest, progress: &mut dyn FnMut(u64)) -> Result<Report> {
        guarded(|| {
            let writer = self.inner.shared.lock_writer();
            let backend = &self.inner.shared.backend;
            let at_digest = backend.log_entry(digest.seq)?;
            let head = writer.head();
            let from = digest.seq.saturating_add(1);
            let mut report = audit::verify_since(digest, at_digest, head.seq, backend.log(from), progress)?;
            self.check_end(&mut report, head);
            Ok(report)
        })
    }

    /// Adds to a sound chain's report what its end must also be: what the acknowledgement mark
    /// recorded, and the tip's head.
    fn check_end(&self, report: &mut Report, head: Head) {
        if report.problem.is_some() {
            return;
        }
        if let Some(lost) = &self.inner.lost {
            report.problem = Some(lost.clone());
        } else if report.head != (Digest { seq: head.seq, hash: head.hash }) {
            let seq = report.head.seq.max(head.seq);
            report.problem = Some(Problem { seq, fault: Fault::HeadMismatch { head_seq: head.seq } });
        }
    }

    /// The digest of the log as it is now, for an auditor to keep.
    pub fn digest(&self) -> Result<Digest> {
        let head = self.inner.shared.lock_writer().head();
        Ok(Digest { seq: head.seq, hash: head.hash })
    }

    /// Every event about `subject`, in log order, through the history index.
    pub fn history(&self, subject: Subject) -> Result<Vec<Sealed>> {
        self.inner.shared.refuse_if_stale()?;
        let backend = &self.inner.shared.backend;
        guarded(|| backend.history(subject)?.into_iter().map(|seq| self.entry(seq)).collect())
    }

    /// The user `user_id` as it was at `as_of`; `None` if it did not exist yet.
    pub fn user_as_of(&self, user_id: &str, as_of: AsOf) -> Result<Option<User>> {
        let views = self.subject_as_of(Subject::User(user_id), as_of)?;
        Ok(views.users.get(user_id).cloned())
    }

    /// The kdb user as it was at `as_of`; `None` if it did not exist then.
    pub fn kx_user_as_of(
        &self,
        environment_id: &str,
        user_name: &str,
        as_of: AsOf,
    ) -> Result<Option<KxUser>> {
        let views = self.subject_as_of(Subject::KxUser(environment_id, user_name), as_of)?;
        Ok(views.kx_users.get(&(environment_id.to_owned(), user_name.to_owned())).cloned())
    }

    fn subject_as_of(&self, subject: Subject, as_of: AsOf) -> Result<MemViews> {
        self.inner.shared.refuse_if_stale()?;
        guarded(|| {
            let seqs = self.inner.shared.backend.history(subject)?;
            audit::fold_subject_as_of(subject, seqs.into_iter().map(|seq| self.entry(seq)), as_of)
        })
    }

    fn entry(&self, seq: u64) -> Result<Sealed> {
        let bytes = self.inner.shared.backend.log_entry(seq)?;
        bytes.map(|bytes| codec::unseal(seq, &bytes)).transpose()?.ok_or_else(|| {
            Error::corrupt(format_args!("corrupt history: it names seq {seq}, which the log does not hold"))
        })
    }

    /// Counts for operators: events, users, kdb users, token records, bytes on disk.
    pub fn stats(&self) -> Result<Stats> {
        let backend = &self.inner.shared.backend;
        guarded(|| {
            Ok(Stats {
                environment_id: self.inner.environment_id.clone(),
                events: self.inner.shared.lock_writer().head().seq,
                users: backend.view_len(ViewTree::Users)?,
                kx_users: backend.view_len(ViewTree::KxUsers)?,
                tokens: backend.token_count()?,
                bytes_on_disk: backend.size_on_disk()?,
            })
        })
    }

    /// The FinSpace environment id this database answers for.
    pub fn environment_id(&self) -> &str {
        &self.inner.environment_id
    }

    /// The region and account this database serves.
    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// The log from `from_seq` on, decoded.
    pub fn log(&self, from_seq: u64) -> impl Iterator<Item = Result<Sealed>> + '_ {
        let mut entries = self.inner.shared.backend.log(from_seq).map(|entry| codec::unseal_entry(entry?));
        let mut failed = false;
        // After an error (a caught panic among them) the walk ends: sled's iterator may be broken.
        std::iter::from_fn(move || {
            if failed {
                return None;
            }
            let next = guarded(|| entries.next().transpose()).transpose();
            failed = matches!(next, Some(Err(_)));
            next
        })
    }

    /// The log as stored, (key, bytes) per entry, for verification outside (e.g. export).
    pub fn raw_log(&self) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + '_ {
        self.inner.shared.backend.log(1)
    }

    /// Every stored view row, as bytes: what a fold of the log must reproduce.
    pub fn view_rows(&self) -> Result<Rows> {
        let backend = &self.inner.shared.backend;
        let mut rows = Rows::new();
        for view in ViewTree::ALL {
            for row in backend.view_rows(view) {
                let (key, value) = row?;
                rows.insert((view, key), value);
            }
        }
        Ok(rows)
    }

    /// Makes every acknowledged write durable now (useful with Periodic durability).
    pub fn sync(&self) -> Result<()> {
        let shared = &self.inner.shared;
        shared.sync(shared.lock_writer().head())
    }

    /// How many write requests wait in the queue right now.
    pub fn queued_writes(&self) -> usize {
        self.inner.pipeline.queued()
    }

    /// Stops taking writes (they get InternalServerException), commits every queued one, and
    /// waits for the writer to finish. Reads keep working. Dropping the last handle does this too.
    pub fn close(&self) {
        self.inner.pipeline.close();
        self.inner.shared.published.close();
    }

    /// Ends every subscription once it has delivered what is committed now (they return `None`
    /// instead of waiting): for a host that is shutting down while writes still drain.
    pub fn end_subscriptions(&self) {
        self.inner.shared.published.close();
    }

    /// The log's envelopes from `from_seq` on (0 and 1 both mean the first), then each new one
    /// as it commits (under Immediate durability, once it is on disk), in seq order: a blocking
    /// iterator for a host's own projections and side effects. It ends when the ledger is closed
    /// and it has delivered every committed entry. A slow subscriber never holds the writer
    /// back: it reads the log at its own pace.
    pub fn subscribe(&self, from_seq: u64) -> Subscription {
        let shared = &self.inner.shared;
        Subscription::new(shared.clone(), shared.published.clone(), from_seq)
    }

    /// Purges every expired clientToken record; returns how many were removed.
    pub fn purge_expired_tokens(&self) -> Result<usize> {
        let shared = &self.inner.shared;
        let mut writer = shared.lock_writer();
        shared.refuse_writes()?;
        let now = shared.now_ms();
        let total = writer.purge_expired_tokens(shared.backend.as_ref(), now, 64 * PURGE_PER_COMMIT)?;
        if total > 0 && shared.immediate() {
            shared.sync(writer.head())?;
        }
        Ok(total)
    }

    /// The stored record of `client_token` for `operation` (e.g. `CreateUser`), live or expired.
    pub fn token(&self, operation: &str, client_token: &str) -> Result<Option<TokenRecord>> {
        self.inner.shared.backend.token(&idempotency::token_key(operation, client_token))
    }

    /// Every stored clientToken record as (operation, token, record), live or expired.
    pub fn tokens(&self) -> Result<Vec<(String, String, TokenRecord)>> {
        let corrupt = || Error::corrupt("corrupt tokens: a key is not operation, zero byte, token");
        let records = self.inner.shared.backend.tokens_after(None, usize::MAX)?;
        records
            .into_iter()
            .map(|(key, record)| {
                let (operation, token) = idempotency::split_token_key(&key).ok_or_else(corrupt)?;
                Ok((operation.to_owned(), token.to_owned(), record))
            })
            .collect()
    }

    /// How many clientToken records are stored, live or expired but not yet purged.
    pub fn token_count(&self) -> Result<u64> {
        self.inner.shared.backend.token_count()
    }

    /// Runs `read` on the store for `caller`, once the views are trusted and the caller allowed.
    fn read<T>(&self, caller: &Caller, read: impl FnOnce(&dyn Backend) -> Result<T>) -> Result<T> {
        let shared = &self.inner.shared;
        shared.refuse_if_stale()?;
        guarded(|| {
            core::authorize(shared.backend.as_ref(), caller, Access::Read)?;
            read(shared.backend.as_ref())
        })
    }

    /// Queues one command for the writer (which commits it with whatever else waits) and
    /// returns its response once it is as durable as configured.
    /// Runs `write` and waits for its answer.
    fn write(&self, caller: &Caller, write: Write<'_>) -> Result<Written> {
        let (sender, answer) = std::sync::mpsc::channel();
        self.write_then(caller, write, move |written| {
            // A caller that went away does not need its answer.
            let _ = sender.send(written);
        })?;
        answer.recv().unwrap_or_else(|_| {
            Err(Error::failed(Failure::Closed, "the ledger's writer stopped before answering"))
        })
    }

    /// Runs a command that is not one of the API's writes (access keys) and waits for it.
    fn command(&self, caller: &Caller, client_token: Option<&str>, command: Command) -> Result<Response> {
        self.inner.shared.refuse_writes()?;
        let request =
            WriteRequest { caller: caller.clone(), client_token: client_token.map(str::to_owned), command };
        self.inner.pipeline.submit(request)
    }
}

/// Runs a read of sled's files; a panic inside sled (on damaged pages) becomes an error.
fn guarded<T>(read: impl FnOnce() -> Result<T>) -> Result<T> {
    guard("while reading the database", read)
}

fn user_id_response(written: Written) -> Result<UserIdResponse> {
    match written {
        Written::UserId(response) => Ok(response),
        other => Err(unexpected(other)),
    }
}

fn kx_user_response(written: Written) -> Result<KxUserResponse> {
    match written {
        Written::KxUser(response) => Ok(response),
        other => Err(unexpected(other)),
    }
}

/// What an access key stands for, for checking a request's signature.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Credential {
    /// Who a request signed with it acts as.
    pub caller: Caller,
    /// The secret it signs with.
    pub secret: String,
    /// For temporary credentials: the session token a request must carry, and the expiry.
    pub temporary: Option<Temporary>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential").field("caller", &self.caller).finish_non_exhaustive()
    }
}

/// What temporary credentials add to a key.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Temporary {
    /// The session token (`x-amz-security-token`).
    pub session_token: String,
    /// Epoch ms after which they are refused.
    pub expires_ms: i64,
}
