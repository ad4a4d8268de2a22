//! Files that hold a secret (a root key, a checkpoint key): read only while they are their
//! owner's only, and written new, their owner's only from their first byte.

use std::path::Path;

use crate::error::{Error, Failure, Result};

/// The text of `path`, refused unless only its owner may read it; `what` names the file in errors,
/// which never hold its content.
pub fn read(path: &Path, what: &str) -> Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = format!("the {what} file {}", path.display());
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::failed_by(Failure::Missing, format!("cannot read {shown}: {e}"), e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::failed(
            Failure::Config,
            format_args!(
                "{shown} is readable by others (mode {mode:o}): make it its owner's only (chmod 600)"
            ),
        ));
    }
    std::fs::read_to_string(path)
        .map_err(|e| Error::failed_by(Failure::Io, format!("cannot read {shown}: {e}"), e))
}

/// Writes `text` to a new file at `path`, its owner's only; refuses to overwrite one. The file
/// appears whole or not at all (written aside, then linked into place), so a process that finds
/// it, having lost a race to make it, reads all of it.
pub fn write_new(path: &Path, what: &str, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |e: std::io::Error| {
        Error::failed_by(Failure::Io, format!("cannot write the {what} file {}: {e}", path.display()), e)
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let aside = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&aside);
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&aside).map_err(failed)?;
    let written = file.write_all(format!("{text}\n").as_bytes()).and_then(|()| file.sync_all());
    let linked = written.and_then(|()| std::fs::hard_link(&aside, path));
    let _ = std::fs::remove_file(&aside);
    linked.map_err(failed)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(failed)
}
