//! Opening a ledger: validating the config, reading (or making) its settings, starting the writer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{settings, Config, Inner, Ledger};
use crate::api::validate;
use crate::audit::refold::refold;
use crate::audit::{merkle, Digest, Fault, Problem};
use crate::backend::guard::guard;
use crate::backend::place::{place, Place};
use crate::backend::sled::directory::Directory;
use crate::backend::sled::{Opened, SledBackend};
use crate::backend::{Backend, Head, OpenMode};
use crate::core::checkpoint::NoteSigner;
use crate::core::merkle::Frontier;
use crate::credentials::password::SignInLimiter;
use crate::error::{Error, Failure, Result};
use crate::write::writer::Writer;
use crate::write::{Durability, Flusher, Hooks, Pipeline, WriteState};

impl Ledger {
    /// Opens (or creates) the ledger `config` describes.
    ///
    /// Refuses (InternalServerException, [`Failure::Lost`] or [`Failure::Missing`]) a database
    /// whose log no longer holds every write it acknowledged, unless opened read-only, when
    /// reads show what is left and [`Ledger::verify`] reports the loss.
    ///
    /// A `config.path` of `postgres://…` (feature `postgres`) opens the ledger in that
    /// PostgreSQL database instead, which any number of hosts may open at once.
    ///
    /// A ledger whose last write failed inside the engine (a full disk, say) repairs itself
    /// here: its views are rebuilt from the log, which holds every acknowledged write, and
    /// [`Ledger::repaired`] says why. Only a damaged log needs an operator.
    pub fn open(config: Config) -> Result<Ledger> {
        let store = Store::open(config)?;
        let repair = store.failed_write.clone().filter(|_| store.config.mode != OpenMode::ReadOnly);
        let ledger =
            Self::start(store.backend, store.config, store.lost, store.tightened, store.failed_write)?;
        if let Some(why) = repair {
            ledger.rebuild_views(&mut |_| {})?;
            let _ = ledger.inner.repaired.set(why);
        }
        // A database that lost what was signed takes no write; reads and proofs go on.
        let contradiction = ledger.contradiction()?;
        if contradiction.is_none() && store_mode_writes(&ledger) {
            // One that fails for I/O (a record not yet durable while a synchronous standby is
            // away, the mark's disk) is taken in before the next signature instead, which fails
            // until it succeeds: opening still serves reads.
            if let Err(e) = ledger.absorb_recorded() {
                if e.failure() != Some(Failure::Io) {
                    return Err(e);
                }
            }
        }
        ledger.inner.shared.set_contradicted(contradiction);
        Ok(ledger)
    }

    /// What is wrong with how this ledger keeps its secret, if anything: a ledger given no root
    /// key keeps it in the clear, inside the database.
    pub fn key_warning(&self) -> Option<&str> {
        self.inner.key_warning.as_deref()
    }

    /// Why this open rebuilt the views (the write before it failed inside the engine), if it did.
    pub fn repaired(&self) -> Option<&str> {
        self.inner.repaired.get().map(String::as_str)
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
        config.validate()?;
        let Place::Sled(path) = place(&config.path)? else {
            return Err(Error::failed(
                Failure::Config,
                "accept-log accepts a sled database's log as it stands; a PostgreSQL ledger's log is the \
                 server's own: restore it from the server's backups",
            ));
        };
        let dir = Directory::acquire(path, config.mode)?;
        let Opened { backend, .. } =
            SledBackend::open(dir, config.cache_capacity, config.record_mark, config.rebuild_chunk)?;
        let report = guard("while reading the log", || {
            refold(backend.log(1), None, config.fold_memory, crate::core::merkle::FLOOR, &mut |_| {})
        })?
        .report;
        if let Some(problem) = report.problem {
            return Err(Error::corrupt(format_args!("cannot accept the log: it is corrupt at {problem}")));
        }
        // The log's own end: the tip's head may still name an entry sled lost.
        let head = Head { seq: report.head.seq, hash: report.head.hash, time_ms: report.time_ms };
        backend.accept(head)?;
        Ok(report.head)
    }

    /// Opens a ledger on a backend the caller opened (an engine of its own, or the in-memory one
    /// of the tests): `config.path` only names it in messages, and the settings that open an
    /// engine (mode, cache, marks) are the caller's to have applied. Public with the `whitebox`
    /// feature, which makes the seam ([`crate::backend`]) public.
    #[cfg(feature = "whitebox")]
    pub fn open_with(backend: Arc<dyn Backend>, config: Config) -> Result<Ledger> {
        config.validate()?;
        Self::start(backend, config, None, vec![], None)
    }

    /// Reads (or makes) the settings, checks the views, and starts the writer.
    pub(super) fn start(
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
        let root_key = config.root_key.as_ref();
        let now_ms = config.clock.now_ms();
        let (tip, stale, (data_keys, key_warning), identity, environment_id, epoch) =
            guard("while reading meta", || {
                let tip = backend.tip()?;
                // A failed write says more than what it left behind (an entry past the tip, say).
                let stale = match failed_write {
                    Some(why) => Some(why),
                    None => settings::staleness(backend.as_ref(), &tip)?,
                };
                let secret = settings::data_keys(backend.as_ref(), root_key, now_ms, config.migrate, shown)?;
                let identity =
                    settings::identity(backend.as_ref(), shown, region.as_deref(), account.as_deref())?;
                let environment_id =
                    settings::environment_id(backend.as_ref(), shown, environment_id.as_deref())?;
                let epoch = settings::epoch(backend.as_ref())?;
                Ok((tip, stale, secret, identity, environment_id, epoch))
            })?;
        // A checkpoint key of its own, held outside the database, must name this ledger.
        let origin = super::proofs::origin_of(&identity, &environment_id, epoch);
        let checkpoint_key: Arc<dyn NoteSigner> = match &config.checkpoint_key {
            Some(key) => match key.name() {
                Some(name) if name != origin => {
                    return Err(Error::failed(
                        Failure::Config,
                        format_args!(
                            "the checkpoint key is named {name}, but this ledger's checkpoints are named {origin}"
                        ),
                    ))
                }
                _ => key.clone(),
            },
            None => match data_keys.get(&0) {
                Some(first) => Arc::new(super::checkpoints::derived_signer(first, epoch)),
                None => return Err(Error::corrupt("corrupt meta: the keyring has no data key 0")),
            },
        };
        guard("while reading meta", || {
            super::checkpoint_keys::check_current(backend.as_ref(), &origin, checkpoint_key.as_ref())
        })?;
        let read_only = config.mode == OpenMode::ReadOnly;
        // A database written before the Merkle tree existed gets it now, and is marked as keeping
        // it; one marked so that lacks the tree's frontier was damaged: only audits work (verify
        // names what is missing) until rebuild-views. Views that cannot be trusted get the tree
        // with the rest from rebuild-views, which writes wait for.
        let floor = guard("while reading the settings", || settings::tree_floor(backend.as_ref()))?;
        let (tree, stale) = match stale {
            Some(why) => (Frontier::empty(floor), Some(why)),
            None => match guard("while reading the Merkle tree", || {
                match (settings::keeps_tree(backend.as_ref())?, read_only) {
                    (false, _) if !config.migrate && tip.head.seq > 0 => {
                        return Err(crate::error::needs_migration(
                            shown.display(),
                            "build the Merkle tree over its log (a ledger made before the tree)",
                        ))
                    }
                    // Audits of a read-only ledger go on without it; verify names what it lacks.
                    (false, true) => return Ok(None),
                    (false, false) => {
                        let floor = settings::settle_tree_floor(backend.as_ref())?;
                        merkle::ensure(backend.as_ref(), tip.head.seq, floor)?;
                        settings::mark_tree_kept(backend.as_ref())?;
                    }
                    (true, _) => {}
                }
                merkle::frontier(backend.as_ref(), tip.head.seq, floor).map(Some)
            }) {
                Ok(tree) => (tree.unwrap_or_else(|| Frontier::empty(floor)), None),
                Err(e) if e.failure() == Some(Failure::Corrupt) => {
                    (Frontier::empty(floor), Some(e.to_string()))
                }
                Err(e) => return Err(e),
            },
        };
        let shared = Arc::new(WriteState::new(
            backend,
            writer(tip.head, tree, &config),
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
        // Commits of other writers (other hosts on a shared backend) wake subscribers too.
        let published = shared.published.clone();
        if let Some(watcher) = shared.backend.watcher() {
            watcher.watch(Arc::new(move |seq| published.publish(seq)))?;
        }
        let pipeline = Pipeline::start(shared.clone(), config.queue_capacity, config.max_batch)?;
        Ok(Ledger {
            inner: Arc::new(Inner {
                shared,
                identity: Arc::new(identity),
                environment_id,
                keys: super::data_keys::DataKeys::new(config.root_key.clone(), &data_keys),
                config,
                sign_ins: SignInLimiter::default(),
                checkpoint_key: std::sync::RwLock::new(checkpoint_key),
                epoch: std::sync::atomic::AtomicU32::new(epoch),
                remembering: std::sync::Mutex::new(()),
                key_warning,
                lost,
                tightened,
                repaired: std::sync::OnceLock::new(),
                probing: Default::default(),
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
}

/// Whether this open may write files of its own (the checkpoint mark): not a read-only one.
fn store_mode_writes(ledger: &Ledger) -> bool {
    ledger.inner.config.mode != OpenMode::ReadOnly
}

/// A ledger's database, opened as its config says, before any setting is read or made.
pub(super) struct Store {
    /// The database.
    pub backend: Arc<dyn Backend>,
    /// The config, its path as messages show it (never a password).
    pub config: Config,
    /// What the log lost of what was acknowledged (only a read-only open goes on with a loss).
    pub lost: Option<Problem>,
    /// What opening narrowed to its owner's only.
    pub tightened: Vec<PathBuf>,
    /// Why an earlier write failed, if one did and no rebuild followed.
    pub failed_write: Option<String>,
}

/// The error for a postgres:// location in a build without the backend.
#[cfg(not(feature = "postgres"))]
fn no_postgres() -> Error {
    Error::failed(Failure::Config, "this build has no PostgreSQL backend (cargo feature `postgres`)")
}

impl Store {
    /// Opens the database `config` names: a sled directory, or (feature `postgres`) a
    /// `postgres://` location.
    pub(super) fn open(config: Config) -> Result<Store> {
        config.validate()?;
        let dir = match place(&config.path)? {
            Place::Sled(path) => path.to_owned(),
            #[cfg(feature = "postgres")]
            Place::Postgres(location) => {
                let synchronous = config.durability == Durability::Immediate;
                let backend = crate::backend::postgres::PgBackend::open(
                    &location,
                    config.mode,
                    synchronous,
                    config.migrate,
                )?;
                // Messages name the server, never the password the location may hold.
                let config = Config { path: PathBuf::from(&backend.location().shown), ..config };
                return Ok(Store {
                    backend: Arc::new(backend),
                    config,
                    lost: None,
                    tightened: vec![],
                    failed_write: None,
                });
            }
            #[cfg(not(feature = "postgres"))]
            Place::Postgres(_) => return Err(no_postgres()),
        };
        let dir = Directory::acquire(&dir, config.mode)?;
        let Opened { backend, lost, tightened, failed_write } = SledBackend::open_migrating(
            dir,
            config.cache_capacity,
            config.record_mark,
            config.rebuild_chunk,
            config.migrate,
        )?;
        backend.reserve(config.disk_reserve);
        let lost = match lost {
            Some((e, _)) if config.mode != OpenMode::ReadOnly => return Err(e),
            lost => lost.map(|(e, seq)| Problem { seq, fault: Fault::Unacknowledged(e.to_string()) }),
        };
        Ok(Store { backend: Arc::new(backend), config, lost, tightened, failed_write })
    }
}

/// The writer `config` asks for.
fn writer(head: crate::backend::Head, tree: crate::core::merkle::Frontier, config: &Config) -> Writer {
    let writer = Writer::new(head, tree, config.token_ttl_ms);
    #[cfg(feature = "whitebox")]
    if !config.keep_tree {
        return writer.without_tree();
    }
    writer
}
