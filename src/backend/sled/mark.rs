//! The acknowledgement mark: the head of the log as last acknowledged, kept durably in a small
//! file of its own beside sled's, so a log that sled shortened or changed is caught on open.
//!
//! sled 0.34 cannot tell a torn tail from a corrupt, synced record: on recovery it drops the
//! record and everything after it in its segment, and a truncated or missing data file opens as a
//! new, empty database. Nothing inside sled's files can therefore prove what was acknowledged.
//! This file can: after sled's sync and before a write is acknowledged, the head `(seq, hash)`
//! is written here and synced; on open, sled's log must still hold that entry with that hash.
//!
//! Layout: a file of [`SLOTS`] fixed slots of [`SLOT_LEN`] bytes (4 KiB, preallocated, so a sync
//! never has to change the file's size), written round-robin. A slot is `magic(4) ‖ version(1) ‖
//! 0(3) ‖ write number(8, LE) ‖ seq(8, LE) ‖ hash(32) ‖ check(8)`, where check is the first 8
//! bytes of blake3 over the 56 before it. The slot with the highest write number is the mark.
//! A crash during a write can tear only the slot after it; damage anywhere else is an error.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Failure, Result};

/// The mark file's name in the database directory.
pub const FILE_NAME: &str = "ledger.mark";
/// How many slots the file has.
pub const SLOTS: usize = 64;
/// The bytes of one slot.
pub const SLOT_LEN: usize = 64;
const MAGIC: &[u8; 4] = b"ULMK";
const VERSION: u8 = 1;
const CHECKED_LEN: usize = SLOT_LEN - 8;

/// A point of the log that was acknowledged: its seq and the hash of the entry there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// The seq (0 for the empty log).
    pub seq: u64,
    /// The entry's hash (all zeros for the empty log).
    pub hash: [u8; 32],
}

/// The open mark file of a database, positioned after its newest slot.
#[derive(Debug)]
pub struct MarkFile {
    file: File,
    path: PathBuf,
    /// The write number of the newest slot.
    written: u64,
    mark: Mark,
    /// Whether the newest slot says a write failed after `mark` (see [`MarkFile::record_failure`]).
    failed: bool,
}

impl MarkFile {
    /// The path of the mark file of the database in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE_NAME)
    }

    /// Creates the mark file of a database whose log ends at `mark`, replacing any other, and
    /// makes its existence durable (written beside, synced, renamed, directory synced).
    pub fn create(dir: &Path, mark: Mark) -> Result<MarkFile> {
        let path = Self::path(dir);
        let fresh = dir.join(format!("{FILE_NAME}.new"));
        let failed = |what: &str, e: std::io::Error| {
            Error::failed(
                Failure::Io,
                format_args!("cannot {what} the acknowledgement mark {}: {e}", path.display()),
            )
        };
        let mut bytes = vec![0u8; SLOTS * SLOT_LEN];
        if let Some(first) = bytes.get_mut(..SLOT_LEN) {
            first.copy_from_slice(&encode_slot(0, mark, false));
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(super::directory::PRIVATE_FILE)
            .open(&fresh)
            .map_err(|e| failed("create", e))?;
        file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(|e| failed("write", e))?;
        std::fs::rename(&fresh, &path).map_err(|e| failed("rename into place", e))?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| failed("sync the directory of", e))?;
        let file = OpenOptions::new().read(true).write(true).open(&path).map_err(|e| failed("open", e))?;
        Ok(MarkFile { file, path, written: 0, mark, failed: false })
    }

    /// Opens the mark file of the database in `dir`; `None` if there is none. Messages name it
    /// in `shown`, the directory as the user named it (`dir` may be a private copy). A damaged
    /// file is an error naming the file and the slot.
    pub fn open(dir: &Path, shown: &Path) -> Result<Option<MarkFile>> {
        let path = Self::path(shown);
        let mut file = match OpenOptions::new().read(true).write(true).open(Self::path(dir)) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::failed(
                    Failure::Io,
                    format_args!("cannot open the acknowledgement mark {}: {e}", path.display()),
                ))
            }
        };
        let mut bytes = Vec::with_capacity(SLOTS * SLOT_LEN);
        file.read_to_end(&mut bytes).map_err(|e| {
            Error::failed(
                Failure::Io,
                format_args!("cannot read the acknowledgement mark {}: {e}", path.display()),
            )
        })?;
        let (written, mark, failed) = newest(&bytes).map_err(|why| {
            Error::corrupt(format_args!("the acknowledgement mark {} is damaged: {why}", path.display()))
        })?;
        Ok(Some(MarkFile { file, path, written, mark, failed }))
    }

    /// The newest mark.
    pub fn mark(&self) -> Mark {
        self.mark
    }

    /// The file's path, for messages.
    pub fn file_path(&self) -> &Path {
        &self.path
    }

    /// Whether a write failed after the newest mark, so that sled's files may hold part of a
    /// batch that was never acknowledged (until a sync records a mark again).
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Records `mark` durably if it is past the newest one, or clears a recorded failure (the
    /// write and an fdatasync). Call only once sled's log holding `mark` is itself on disk.
    pub fn record(&mut self, mark: Mark) -> Result<()> {
        if mark.seq <= self.mark.seq && !self.failed {
            return Ok(());
        }
        self.write(mark.max_by_seq(self.mark), false)
    }

    /// Records durably that a write after the newest mark failed: what sled's files hold past
    /// it is unknown, and the next open says so until the views are rebuilt. The slot overwrites
    /// bytes the file already has, so it needs no free space.
    pub fn record_failure(&mut self) -> Result<()> {
        self.write(self.mark, true)
    }

    fn write(&mut self, mark: Mark, failed: bool) -> Result<()> {
        let written = self.written + 1;
        self.file
            .write_all_at(&encode_slot(written, mark, failed), slot_offset(written))
            .and_then(|()| self.file.sync_data())
            .map_err(|e| {
                Error::failed(
                    Failure::Io,
                    format_args!("cannot write the acknowledgement mark {}: {e}", self.path.display()),
                )
            })?;
        self.written = written;
        self.mark = mark;
        self.failed = failed;
        Ok(())
    }
}

impl Mark {
    fn max_by_seq(self, other: Mark) -> Mark {
        if self.seq >= other.seq {
            self
        } else {
            other
        }
    }
}

/// Where write number `written` goes: slots are used round-robin.
fn slot_offset(written: u64) -> u64 {
    (written % SLOTS as u64) * SLOT_LEN as u64
}

/// Byte 5 of a slot: its flags (slots written before flags existed hold 0 there).
const FLAGS_AT: usize = 5;
/// The flag of a slot recorded after a write failed.
const FAILED: u8 = 1;

fn encode_slot(written: u64, mark: Mark, failed: bool) -> [u8; SLOT_LEN] {
    let mut slot = [0u8; SLOT_LEN];
    slot[..4].copy_from_slice(MAGIC);
    slot[4] = VERSION;
    slot[FLAGS_AT] = if failed { FAILED } else { 0 };
    slot[8..16].copy_from_slice(&written.to_le_bytes());
    slot[16..24].copy_from_slice(&mark.seq.to_le_bytes());
    slot[24..56].copy_from_slice(&mark.hash);
    let check = blake3::hash(&slot[..CHECKED_LEN]);
    slot[CHECKED_LEN..].copy_from_slice(&check.as_bytes()[..8]);
    slot
}

/// A slot's (write number, mark, failed); `None` for a slot never written (all zeros); an error
/// for one whose check fails.
fn decode_slot(slot: &[u8]) -> Result<Option<(u64, Mark, bool)>, ()> {
    if slot.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    let (body, check) = slot.split_at(CHECKED_LEN);
    if body.get(..4) != Some(MAGIC.as_slice())
        || body.get(4) != Some(&VERSION)
        || blake3::hash(body).as_bytes().get(..8) != Some(check)
    {
        return Err(());
    }
    let u64_at = |at: usize| body.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    let hash = body.get(24..56).and_then(|b| b.try_into().ok());
    match (u64_at(8), u64_at(16), hash) {
        (Some(written), Some(seq), Some(hash)) => {
            let failed = body.get(FLAGS_AT).is_some_and(|flags| flags & FAILED != 0);
            Ok(Some((written, Mark { seq, hash }, failed)))
        }
        _ => Err(()),
    }
}

/// The newest slot of a whole file: its write number and mark, or why the file is damaged.
fn newest(bytes: &[u8]) -> Result<(u64, Mark, bool), String> {
    if bytes.len() != SLOTS * SLOT_LEN {
        return Err(format!("it holds {} bytes, not {}", bytes.len(), SLOTS * SLOT_LEN));
    }
    let mut newest: Option<(u64, Mark, bool)> = None;
    let mut bad = Vec::new();
    for (index, slot) in bytes.chunks_exact(SLOT_LEN).enumerate() {
        match decode_slot(slot) {
            Ok(Some((written, mark, failed))) => {
                if (written % SLOTS as u64) as usize != index {
                    return Err(format!("slot {index} holds write {written}, which belongs in another slot"));
                }
                if newest.is_none_or(|(w, _, _)| written > w) {
                    newest = Some((written, mark, failed));
                }
            }
            Ok(None) => {}
            Err(()) => bad.push(index),
        }
    }
    let Some((written, mark, failed)) = newest else {
        return Err("no slot holds a valid mark".into());
    };
    // A crash while writing tears only the slot the next write goes to.
    let torn = ((written + 1) % SLOTS as u64) as usize;
    match bad.iter().find(|&&index| index != torn) {
        Some(index) => Err(format!("slot {index} fails its checksum")),
        None => Ok((written, mark, failed)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(seq: u64) -> Mark {
        Mark { seq, hash: [seq as u8; 32] }
    }

    #[test]
    fn records_survive_reopen_and_wrap_around_the_ring() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = MarkFile::create(dir.path(), mark(0)).unwrap();
        for seq in 1..=(3 * SLOTS as u64) {
            file.record(mark(seq)).unwrap();
            file.record(mark(seq - 1)).unwrap(); // an older head changes nothing
        }
        let reopened = MarkFile::open(dir.path(), dir.path()).unwrap().unwrap();
        assert_eq!(reopened.mark(), mark(3 * SLOTS as u64));
        assert_eq!(std::fs::metadata(MarkFile::path(dir.path())).unwrap().len(), 4096);
    }

    #[test]
    fn a_torn_next_slot_is_tolerated_and_any_other_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = MarkFile::create(dir.path(), mark(0)).unwrap();
        for seq in 1..=10 {
            file.record(mark(seq)).unwrap();
        }
        let path = MarkFile::path(dir.path());
        let clean = std::fs::read(&path).unwrap();
        // Write 11 goes to slot 11: a torn write there leaves mark 10 in force.
        let mut torn = clean.clone();
        torn[11 * SLOT_LEN + 20] ^= 0xff;
        std::fs::write(&path, &torn).unwrap();
        assert_eq!(MarkFile::open(dir.path(), dir.path()).unwrap().unwrap().mark(), mark(10));
        // Damage to the newest slot looks like a torn write of it: the mark before is in force.
        let mut newest = clean.clone();
        newest[10 * SLOT_LEN + 63] ^= 0x01;
        std::fs::write(&path, &newest).unwrap();
        assert_eq!(MarkFile::open(dir.path(), dir.path()).unwrap().unwrap().mark(), mark(9));
        // Damage to any other written slot is an error naming the file and the slot.
        for (slot, byte) in [(3, 30), (9, 0), (0, 63)] {
            let mut damaged = clean.clone();
            damaged[slot * SLOT_LEN + byte] ^= 0x01;
            std::fs::write(&path, &damaged).unwrap();
            let err = MarkFile::open(dir.path(), dir.path()).unwrap_err();
            assert_eq!(err.failure(), Some(Failure::Corrupt));
            let message = err.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            if slot == 3 {
                assert!(message.contains("slot 3 fails its checksum"), "{message}");
            }
        }
        // A file of another size, and one with no valid slot, are damaged too.
        std::fs::write(&path, &clean[..100]).unwrap();
        assert!(MarkFile::open(dir.path(), dir.path())
            .unwrap_err()
            .to_string()
            .contains("holds 100 bytes, not 4096"));
        std::fs::write(&path, vec![0u8; 4096]).unwrap();
        assert!(MarkFile::open(dir.path(), dir.path())
            .unwrap_err()
            .to_string()
            .contains("no slot holds a valid mark"));
        std::fs::remove_file(&path).unwrap();
        assert!(MarkFile::open(dir.path(), dir.path()).unwrap().is_none());
    }
}
