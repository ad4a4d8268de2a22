//! sled's files, and the ways sled 0.34 must not be trusted with them: opening never panics into
//! the caller, unfinished snapshots are removed, and a failure names the file and what is wrong
//! with it instead of sled's `Read corrupted data at file offset None`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::backend::guard::guard;
use crate::error::{Error, Failure, Result};

/// sled's data file in the database directory.
pub const DATA_FILE: &str = "db";
/// sled's configuration file.
pub const CONF_FILE: &str = "conf";

/// How long opening waits for sled's own lock (see [`open_sled`]).
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Opens sled in `dir` (held by this process). An `established` database (one whose creation
/// finished: it has its acknowledgement mark) must still have its files, unharmed. Errors and
/// panics name the file and what is wrong with it.
/// Messages name `shown`, the database as the user named it (`dir` may be a private copy).
pub fn open(dir: &Path, shown: &Path, cache_bytes: u64, established: bool) -> Result<::sled::Db> {
    if established {
        // Before a creation finished, a kill may have left a torn conf or no data file; sled
        // repairs those itself, and nothing was acknowledged that they could lose.
        check_files(dir, shown)?;
    }
    remove_unfinished_snapshots(dir)?;
    // No background flusher: the ledger flushes (and fdatasyncs) itself when it syncs, and after
    // a failed write nothing may flush again (see `SledBackend::failed_write`).
    let config = ::sled::Config::new().path(dir).cache_capacity(cache_bytes).flush_every_ms(None);
    let opened = guard("while opening it", || open_sled(config));
    opened.map_err(|e| match (diagnose(dir, shown), e.failure()) {
        (Some(found), _) => found,
        (None, Some(Failure::Locked | Failure::Io)) => e,
        // conf and the snapshot are sound, so what sled could not recover is its data file.
        (None, cause) => Error::failed(
            cause.unwrap_or(Failure::Corrupt),
            format_args!(
                "sled cannot recover the database at {}: its data file {} is damaged ({}); restore the \
                 database from a backup",
                shown.display(),
                shown.join(DATA_FILE).display(),
                e
            ),
        ),
    })
}

/// Opens sled, waiting up to 5 s (`LOCK_WAIT`) for its file lock.
///
/// sled's background I/O threads can hold its lock for a moment after the last handle of a
/// database is dropped, so a close followed by a reopen in the same process would otherwise fail
/// at random. Other processes are kept out earlier, by the ledger's own lock.
pub fn open_sled(config: ::sled::Config) -> Result<::sled::Db> {
    let started = Instant::now();
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            // sled reports a held lock only as an io::Error of kind Other with this message.
            Err(::sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                if started.elapsed() > LOCK_WAIT {
                    return Err(Error::failed(
                        Failure::Locked,
                        format_args!("database at {} is in use by another process", config.path.display()),
                    ));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                let cause = super::storage(e.clone()).failure().unwrap_or(Failure::Other);
                return Err(Error::failed(
                    cause,
                    format_args!("cannot open the database at {}: {e}", config.path.display()),
                ));
            }
        }
    }
}

/// The files an existing database cannot do without: sled would silently make a new, empty
/// data file, and a damaged `conf` that still parses would make it misread every segment.
fn check_files(dir: &Path, shown: &Path) -> Result<()> {
    if !dir.join(DATA_FILE).exists() {
        return Err(Error::failed(
            Failure::Missing,
            format_args!(
                "sled's data file {} is missing; restore the database from a backup",
                shown.join(DATA_FILE).display()
            ),
        ));
    }
    match std::fs::read(dir.join(CONF_FILE)) {
        Ok(bytes) => check_crc(&shown.join(CONF_FILE), "config file", &bytes, 4),
        // sled writes a missing conf anew, with the same settings the ledger always uses.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::from(e)),
    }
}

/// sled's files end in a little-endian crc32 of what comes `trailer` bytes before the end.
fn check_crc(path: &Path, what: &str, bytes: &[u8], trailer: usize) -> Result<()> {
    let corrupt = |why: &str| {
        Err(Error::corrupt(format_args!(
            "sled's {what} {} is corrupt: {why}; restore the database from a backup",
            path.display()
        )))
    };
    let Some(body_len) = bytes.len().checked_sub(trailer).filter(|&n| n > 0) else {
        return corrupt(&format!("{} bytes is too short", bytes.len()));
    };
    let (body, tail) = bytes.split_at(body_len);
    let stored = tail.get(tail.len() - 4..).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
    if stored != Some(crc32fast::hash(body)) {
        return corrupt("its checksum does not match");
    }
    Ok(())
}

/// After sled failed to open `dir`: which of its files is to blame, if one can be named.
fn diagnose(dir: &Path, shown: &Path) -> Option<Error> {
    if let Err(e) = check_files(dir, shown) {
        return Some(e);
    }
    let mut snapshots: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("snap.")))
        .collect();
    snapshots.sort();
    // sled reads the last snapshot: a length (8 bytes) and a crc32 follow its body.
    let last = snapshots.pop()?;
    let name = shown.join(last.file_name()?);
    match std::fs::read(&last) {
        Ok(bytes) => check_crc(&name, "snapshot", &bytes, 12).err(),
        Err(e) => Some(Error::from(e)),
    }
}

/// Removes `snap.*.generating` files: snapshots sled was writing when its process died.
///
/// sled 0.34 writes a snapshot to `snap.<lsn>.generating` and renames it when complete, but on
/// open it reads the last snapshot file by name *including* unfinished ones, so a kill during a
/// snapshot write leaves a database that refuses to open ("Read corrupted data at file offset
/// None"; sled issues 1527 and 1533; our crash test hit it). An unfinished snapshot is never the
/// one to read: without it sled reads the last finished snapshot and replays its log from there.
/// Called only with the directory locked, so it never removes a snapshot another process writes.
fn remove_unfinished_snapshots(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) }; // a new database
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(&path).map_err(|e| {
                Error::failed(
                    Failure::Io,
                    format_args!("cannot remove the unfinished snapshot {}: {e}", path.display()),
                )
            })?;
        }
    }
    Ok(())
}
