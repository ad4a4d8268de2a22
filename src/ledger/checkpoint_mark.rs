//! The checkpoint mark: a small checksummed file outside the database that holds the largest
//! checkpoint this host signed, so that a database replaced by an older copy, or a standby
//! promoted while it was behind, cannot make the host sign a second root for a size it signed.
//!
//! Invariant: the mark only grows (a larger size replaces it), and is replaced whole (a temporary
//! file renamed over it, then the directory synced): a torn mark is never read as a smaller one.

use std::fs;
use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::error::{Error, Failure, Result};

const HEADER: &str = "user-ledger checkpoint mark 1";

/// What a mark holds: the largest checkpoint signed, by origin, size and root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The log's name.
    pub origin: String,
    /// The tree size.
    pub size: u64,
    /// The root at that size.
    pub root: [u8; 32],
}

fn body(mark: &Mark) -> String {
    format!("{HEADER}\n{}\n{}\n{}\n", mark.origin, mark.size, STANDARD.encode(mark.root))
}

/// The mark at `path`; `None` if there is none yet. A damaged one is an error naming the file.
pub fn read(path: &Path) -> Result<Option<Mark>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::failed(
                Failure::Io,
                format_args!("cannot read the checkpoint mark {}: {e}", path.display()),
            ))
        }
    };
    let damaged = || Error::corrupt(format_args!("the checkpoint mark {} is damaged", path.display()));
    let (content, sum) = text.rsplit_once("crc32 ").ok_or_else(damaged)?;
    if u32::from_str_radix(sum.trim(), 16).ok() != Some(crc32fast::hash(content.as_bytes())) {
        return Err(damaged());
    }
    let mut lines = content.lines();
    if lines.next() != Some(HEADER) {
        return Err(damaged());
    }
    let origin = lines.next().ok_or_else(damaged)?.to_owned();
    let size = lines.next().and_then(|s| s.parse().ok()).ok_or_else(damaged)?;
    let root = lines
        .next()
        .and_then(|r| STANDARD.decode(r).ok())
        .and_then(|r| r.try_into().ok())
        .ok_or_else(damaged)?;
    Ok(Some(Mark { origin, size, root }))
}

/// Replaces the mark at `path` with `mark`, durably, its owner's only.
pub fn write(path: &Path, mark: &Mark) -> Result<()> {
    let io = |e: std::io::Error| {
        Error::failed_by(Failure::Io, format!("cannot write the checkpoint mark {}: {e}", path.display()), e)
    };
    let content = body(mark);
    let text = format!("{content}crc32 {:08x}\n", crc32fast::hash(content.as_bytes()));
    let temp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temp).map_err(io)?;
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(io)?;
    fs::rename(&temp, path).map_err(io)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_reads_back_as_written_and_a_damaged_one_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.checkpoint-mark");
        assert_eq!(read(&path).unwrap(), None);
        let mark = Mark { origin: "user-ledger/0/env".into(), size: 12, root: [7; 32] };
        write(&path, &mark).unwrap();
        assert_eq!(read(&path).unwrap(), Some(mark));
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replacen("\n12\n", "\n11\n", 1)).unwrap();
        let refused = read(&path).unwrap_err().to_string();
        assert!(refused.contains("db.checkpoint-mark is damaged"), "{refused}");
    }
}
