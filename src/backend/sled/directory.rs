//! The database directory: the lock that is taken before anything in it is touched, whether a
//! database is there at all, and the private copy a read-only open works on.
//!
//! sled 0.34 writes to its directory on every open (a snapshot, and the recovery of a torn
//! tail), and before its own lock is held callers used to remove unfinished snapshots, which
//! deleted the snapshot another process was writing. So the ledger holds its own lock,
//! `ledger.lock`, for as long as it has the database open, and a read-only open copies the
//! database (under a shared lock) and lets sled loose only on the copy.
//!
//! The directory holds the database's secret (in sled's data file), from which every access
//! key's secret derives, so it and everything in it are its owner's only: the directory 0700 and
//! its files 0600 whatever the umask, a looser existing database tightened on open (and said so,
//! in [`Directory::tightened`]), and the private copy of a read-only open the same.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::ErrorKind;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{files as sled_files, mark};
use crate::backend::OpenMode;
use crate::error::{Error, Failure, Result};

/// The lock file's name in the database directory.
pub const LOCK_FILE: &str = "ledger.lock";

/// The prefix of the private copies read-only opens make in the temporary directory.
const COPY_PREFIX: &str = "user-ledger-read-only.";
/// The file in a private copy that its process holds locked while it lives: a copy whose lock
/// can be taken was left by a process that is gone (killed), and is removed.
const COPY_OWNER: &str = "read-only-copy.owner";

/// How long opening waits for another holder of the database to let go.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// A database directory held by this process.
#[derive(Debug)]
pub struct Directory {
    /// Where sled's files are opened: the database itself, or the private copy of it.
    pub path: PathBuf,
    /// The database as the user named it, for messages.
    pub shown: PathBuf,
    /// Held exclusively for as long as the ledger is open: the database's lock file, or a
    /// private copy's owner file.
    _lock: Option<File>,
    /// The private copy, removed when the ledger is dropped.
    _copy: Option<tempfile::TempDir>,
    /// The directory and files whose modes opening narrowed to the owner's only.
    pub tightened: Vec<PathBuf>,
}

impl Directory {
    /// Takes the database at `path` as `mode` says: locked before anything in it is touched.
    pub fn acquire(named: &Path, mode: OpenMode) -> Result<Directory> {
        let resolved = resolve(named)?;
        let path = resolved.as_path();
        check_owner(path, named)?;
        let existed = holds_database(path);
        if !existed && mode != OpenMode::Create {
            return Err(Error::failed(
                Failure::NoDatabase,
                format_args!("there is no database at {}", path.display()),
            ));
        }
        if mode == OpenMode::ReadOnly {
            return Self::copy(path);
        }
        if !existed {
            std::fs::create_dir_all(path).map_err(|e| cannot(path, "create", &e))?;
        }
        let lock_path = path.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(PRIVATE_FILE)
            .open(&lock_path)
            .map_err(|e| cannot(path, "lock", &e))?;
        wait_for(path, || file.try_lock())?;
        let mut dir = Directory {
            path: path.to_owned(),
            shown: named.to_owned(),
            _lock: Some(file),
            _copy: None,
            tightened: vec![],
        };
        // A new database is tightened silently: only an existing one's looser modes are news.
        let tightened = dir.tighten()?;
        if existed {
            dir.tightened = tightened;
        }
        Ok(dir)
    }

    /// Narrows the directory to 0700 and every file in it to 0600 (sled creates its files under
    /// the process's umask); returns what it changed. Called again once sled has made its files.
    pub fn tighten(&self) -> Result<Vec<PathBuf>> {
        let mut changed = vec![];
        make_private(&self.path, &self.shown, true, &mut changed)
            .map_err(|e| cannot(&self.shown, "restrict the file modes of", &e))?;
        Ok(changed)
    }

    /// Copies the database at `path` into a private temporary directory, holding a shared lock
    /// meanwhile (where the lock file can be opened) so no writer changes it during the copy.
    fn copy(path: &Path) -> Result<Directory> {
        let lock = match File::open(path.join(LOCK_FILE)) {
            Ok(file) => Some(file),
            // A database of an older version has no lock file; read-only media cannot get one.
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(cannot(path, "lock", &e)),
        };
        if let Some(file) = &lock {
            wait_for(path, || file.try_lock_shared())?;
        }
        sweep_abandoned_copies();
        let cannot_copy = |e: std::io::Error| {
            Error::failed_by(Failure::Io, format!("cannot make a private copy of {}: {e}", path.display()), e)
        };
        let copy = tempfile::Builder::new().prefix(COPY_PREFIX).tempdir().map_err(cannot_copy)?;
        let owner = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(PRIVATE_FILE)
            .open(copy.path().join(COPY_OWNER))
            .map_err(cannot_copy)?;
        owner.try_lock().map_err(|e| cannot_copy(e.into()))?;
        copy_tree(path, copy.path()).map_err(|e| {
            Error::failed_by(Failure::Io, format!("cannot copy {} to read it: {e}", path.display()), e)
        })?;
        let copied = copy.path().to_owned();
        let dir = Directory {
            path: copied,
            shown: path.to_owned(),
            _lock: Some(owner),
            _copy: Some(copy),
            tightened: vec![],
        };
        // tempfile makes the directory 0700; the copied files keep the source's modes until here.
        dir.tighten()?;
        Ok(dir)
    }
}

/// Removes the private copies that read-only opens of processes now gone left in the
/// temporary directory (a killed process removes nothing): each is a whole copy of a database.
fn sweep_abandoned_copies() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(COPY_PREFIX) {
            continue;
        }
        // No owner file yet: a copy being made, or one of a version before owner files.
        let Ok(owner) = File::open(entry.path().join(COPY_OWNER)) else { continue };
        if owner.try_lock().is_ok() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The mode of the database directory (and of the directories inside it).
const PRIVATE_DIR: u32 = 0o700;
/// The mode of every file in the database directory.
pub const PRIVATE_FILE: u32 = 0o600;

/// The directory `named` names: the target of a symbolic link (whose files are the ones made
/// private), or `named` itself.
fn resolve(named: &Path) -> Result<PathBuf> {
    match std::fs::symlink_metadata(named) {
        Ok(meta) if meta.file_type().is_symlink() => std::fs::canonicalize(named).map_err(|e| {
            Error::failed(
                Failure::Io,
                format_args!(
                    "the database path {} is a symbolic link that leads nowhere: {e}",
                    named.display()
                ),
            )
        }),
        _ => Ok(named.to_owned()),
    }
}

/// Refuses a database directory another user owns: its owner could read the secret in it
/// whatever its modes, or loosen them again.
fn check_owner(path: &Path, named: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else { return Ok(()) };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() == me {
        return Ok(());
    }
    Err(Error::failed(
        Failure::Config,
        format_args!(
            "the database directory {} is owned by uid {}, not by this process's user (uid {me}): its owner \
             could read the database's secret; use a directory of your own",
            named.display(),
            meta.uid()
        ),
    ))
}

/// Takes group and other permissions from `path` and, recursively, from what is in it, pushing
/// what changed (named under `shown`) onto `changed` where others could reach it (`exposed`: no
/// directory above it within the database shut them out, so a file sled made under the umask
/// inside a private directory is narrowed without alarm). A symbolic link inside is refused:
/// sled would write the database through it, to a file whose modes are not the database's own.
fn make_private(path: &Path, shown: &Path, exposed: bool, changed: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    let (wanted, is_dir) = match meta.file_type() {
        t if t.is_dir() => (PRIVATE_DIR, true),
        t if t.is_file() => (PRIVATE_FILE, false),
        t if t.is_symlink() => {
            return Err(std::io::Error::other(format!(
                "{} is a symbolic link: a database's files must be its own",
                shown.display()
            )))
        }
        _ => return Ok(()),
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        // Keep the owner's own bits (a data file is never made executable, nor a directory
        // unsearchable); only group and other lose theirs.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode((mode & 0o700) | (wanted & 0o700)))?;
        if exposed {
            changed.push(shown.to_owned());
        }
    }
    if is_dir {
        // Others reach what is inside only through a directory they may search.
        let inside_exposed = exposed && mode & 0o011 != 0;
        for entry in std::fs::read_dir(path)? {
            let name = entry?.file_name();
            make_private(&path.join(&name), &shown.join(&name), inside_exposed, changed)?;
        }
    }
    Ok(())
}

/// Whether something other than a database is at `path`: a file, or a directory with entries
/// but no database in it (a copy must not write its files among them).
pub fn holds_something_else(path: &Path) -> bool {
    match std::fs::read_dir(path) {
        Ok(mut entries) => entries.next().is_some() && !holds_database(path),
        Err(_) => path.exists(),
    }
}

/// Whether `path` holds a database: sled's data file or the ledger's mark is there.
fn holds_database(path: &Path) -> bool {
    path.join(sled_files::DATA_FILE).exists() || path.join(mark::FILE_NAME).exists()
}

/// Retries `try_lock` until it succeeds or [`LOCK_WAIT`] has passed.
fn wait_for(path: &Path, try_lock: impl Fn() -> Result<(), TryLockError>) -> Result<()> {
    let started = Instant::now();
    loop {
        match try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Error::failed(
                    Failure::Locked,
                    format_args!("database at {} is in use by another process", path.display()),
                ))
            }
            Err(TryLockError::Error(e)) => return Err(cannot(path, "lock", &e)),
        }
    }
}

/// An error for a failed `what` on the directory, with what to do if it is read-only.
fn cannot(path: &Path, what: &str, e: &std::io::Error) -> Error {
    let read_only = matches!(e.kind(), ErrorKind::ReadOnlyFilesystem | ErrorKind::PermissionDenied);
    if read_only {
        Error::failed(
            Failure::ReadOnly,
            format_args!(
                "cannot {what} the database at {}: {e}; to read or audit it where it cannot be \
                 written, open it read-only (--read-only, OpenMode::ReadOnly), which works on a private copy",
                path.display()
            ),
        )
    } else {
        let kept = std::io::Error::new(e.kind(), e.to_string());
        Error::failed_by(Failure::Io, format!("cannot {what} the database at {}: {e}", path.display()), kept)
    }
}

/// Copies the files of a database (sled's, and the mark) from `from` into `to`, recursively;
/// the lock and any unfinished snapshot stay behind.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        if name_str == LOCK_FILE || name_str.ends_with(".generating") {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
