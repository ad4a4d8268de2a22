//! The sled backend (format 2): the whole ledger in one sled tree (see [`layout`]), one
//! `apply_batch` per commit, an fdatasync of sled's data file per sync (sled 0.34's flush stops
//! at sync_file_range), and an acknowledgement mark beside sled's files ([`mark`]) because sled
//! may silently drop acknowledged records on recovery.
//!
//! This file opens it; `contract` keeps the [`Backend`] contract, `reads` reads and decodes
//! rows, `reconcile` replaces a view, `migrate` lifts format 1, [`files`] and [`directory`]
//! own sled's files and the locked directory.
//!
//! Invariant: a row that does not decode is an error naming its view and key, never skipped; a
//! sled panic on damaged pages is an error naming the file; nothing is written after a failed
//! commit or sync.

mod contract;
pub mod directory;
pub mod files;
pub mod layout;
pub mod mark;
mod migrate;
mod reads;
mod reconcile;

use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ::sled::Tree;

use self::directory::Directory;
use self::files as sled_files;
use self::mark::{Mark, MarkFile};
use super::{Backend, Head};
use crate::backend::guard::guard;
use crate::core::codec;
use crate::error::{Error, Failure, Result};

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
    /// Takes the log as it is now, ending at `head`, as the acknowledged one (after a loss):
    /// a new acknowledgement mark. Only sled has a mark, so only sled has this.
    pub fn accept(&self, head: Head) -> Result<()> {
        let fresh = MarkFile::create(&self.dir.path, Mark { seq: head.seq, hash: head.hash })?;
        *self.mark.lock().unwrap_or_else(|p| p.into_inner()) = Some(fresh);
        Ok(())
    }

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
        Self::open_migrating(dir, cache_bytes, record_mark, rebuild_chunk, true)
    }

    /// [`SledBackend::open`]; unless `migrate`, a database in an older format is refused
    /// ([`Failure::NeedsMigration`]) instead of lifted.
    pub fn open_migrating(
        dir: Directory,
        cache_bytes: u64,
        record_mark: bool,
        rebuild_chunk: usize,
        migrate: bool,
    ) -> Result<Opened> {
        let mark = MarkFile::open(&dir.path, &dir.shown)?;
        let db = sled_files::open(&dir.path, &dir.shown, cache_bytes, mark.is_some())?;
        // sled made its files (or a new snapshot) under the umask: what changes now is not news.
        dir.tighten()?;
        let tightened = dir.tightened.clone();
        let shown = dir.shown.clone();
        let backend = guard(format_args!("while opening the database at {}", shown.display()), || {
            let tree = db.open_tree(layout::TREE).map_err(storage)?;
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
            migrate::to_current(&backend, migrate)?;
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
}

/// A sled error as the engine's: its I/O and corruption kept as [`Failure::Io`] and
/// [`Failure::Corrupt`], sled's own bugs and unsupported calls as [`Failure::Other`]. A function,
/// not a `From`, so that sled's error type stays out of the public API.
pub(super) fn storage(e: ::sled::Error) -> Error {
    let cause = match e {
        ::sled::Error::Io(_) => Failure::Io,
        ::sled::Error::Corruption { .. } => Failure::Corrupt,
        _ => Failure::Other,
    };
    Error::failed_by(cause, format!("storage error: {e}"), e)
}
