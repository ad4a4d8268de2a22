//! A database holds the secret every access key derives from: its directory and files are their
//! owner's only, whatever the umask, and another local account cannot read them.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
#![cfg(all(feature = "cli", feature = "whitebox"))]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use user_ledger::backend::sled::directory::Directory;
use user_ledger::OpenMode;

/// The CLI run under umask 022, as a shell of a default account runs it.
fn cli_under_umask_022(db: &Path, args: &[&str]) -> Output {
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask 022; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_user-ledger"))
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Every path under `dir` (itself included) with its permission bits.
fn modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut found = vec![(dir.to_owned(), std::fs::metadata(dir).unwrap().permissions().mode() & 0o777)];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(modes(&path));
        } else {
            found.push((path.clone(), std::fs::metadata(&path).unwrap().permissions().mode() & 0o777));
        }
    }
    found
}

/// Gives everything under `dir` the modes umask 022 gives: directories 0755, files 0644.
fn loosen(dir: &Path) {
    for (path, _) in modes(dir) {
        let mode = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

fn assert_private(dir: &Path) {
    let found = modes(dir);
    assert!(found.len() >= 4, "the directory, db, conf, the mark and the lock: {found:?}");
    for (path, mode) in found {
        let wanted = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, wanted, "{} is {mode:o}", path.display());
    }
}

/// A parent any account can pass through, so that only the database's own modes keep others out
/// (tempfile makes its directories 0700, which would hide everything by itself).
fn open_parent() -> tempfile::TempDir {
    let parent = tempfile::tempdir().unwrap();
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    parent
}

/// Whether the unprivileged `nobody` can read `file` (only root can ask this of another account).
fn nobody_can_read(file: &Path) -> Option<bool> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(file)
        .output()
        .expect("setpriv (util-linux) runs a command as another account");
    Some(out.status.success())
}

#[test]
fn a_new_database_under_umask_022_is_its_owners_only() {
    let parent = open_parent();
    let db = parent.path().join("ledger.db");
    cli_under_umask_022(&db, &["create-user", "--email-address", "a@example.com", "--type", "SUPER_USER"]);
    assert_private(&db);
    let sibling = parent.path().join("readable");
    std::fs::write(&sibling, b"x").unwrap();
    std::fs::set_permissions(&sibling, std::fs::Permissions::from_mode(0o644)).unwrap();
    if let (Some(sibling_read), Some(db_read)) = (nobody_can_read(&sibling), nobody_can_read(&db.join("db")))
    {
        assert!(sibling_read, "the check itself works: nobody reads a 0644 file beside the database");
        assert!(!db_read, "nobody must not read the data file holding the secret");
    }
}

#[test]
fn an_existing_database_readable_by_others_is_tightened_on_open_and_said_so() {
    let parent = open_parent();
    let db = parent.path().join("ledger.db");
    cli_under_umask_022(&db, &["create-user", "--email-address", "a@example.com", "--type", "APP_USER"]);
    // As a database made before this check, or copied with `cp -r` under umask 022, has it.
    loosen(&db);
    if let Some(read) = nobody_can_read(&db.join("db")) {
        assert!(read, "loosened, the data file is readable by nobody: the test would catch a leak");
    }

    let out = cli_under_umask_022(&db, &["list-users", "--max-results", "10"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for name in ["", "db", "conf", "ledger.mark"] {
        let shown = if name.is_empty() { db.clone() } else { db.join(name) };
        let line = format!("warning: {} was readable by other users", shown.display());
        assert!(stderr.lines().any(|l| l.starts_with(&line)), "{line:?} in {stderr}");
    }
    assert_private(&db);
    if let Some(read) = nobody_can_read(&db.join("db")) {
        assert!(!read);
    }

    let again = cli_under_umask_022(&db, &["list-users", "--max-results", "10"]);
    assert_eq!(String::from_utf8_lossy(&again.stderr), "", "a private database is not news");
}

#[test]
fn the_private_copy_of_a_read_only_open_is_its_owners_only() {
    let parent = open_parent();
    let db = parent.path().join("ledger.db");
    cli_under_umask_022(&db, &["create-user", "--email-address", "a@example.com", "--type", "APP_USER"]);
    loosen(&db);
    let copy = Directory::acquire(&db, OpenMode::ReadOnly).unwrap();
    assert_ne!(copy.path, db);
    assert_private(&copy.path);
    assert_eq!(modes(&db)[0].1, 0o755, "a read-only open leaves the source as it is");
}

/// The CLI under umask 022, expected to fail: its stderr.
fn cli_refused(db: &Path, args: &[&str]) -> String {
    let out =
        Command::new(env!("CARGO_BIN_EXE_user-ledger")).arg("--db").arg(db).args(args).output().unwrap();
    assert_ne!(out.status.code(), Some(0), "{args:?} must be refused");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_database_named_through_a_symbolic_link_is_made_private_where_it_lives() {
    let parent = open_parent();
    // An existing database, loosened, reached through a link.
    let real = parent.path().join("real.db");
    cli_under_umask_022(&real, &["create-user", "--email-address", "a@example.com", "--type", "SUPER_USER"]);
    loosen(&real);
    let link = parent.path().join("link.db");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    cli_under_umask_022(&link, &["list-users", "--max-results", "10"]);
    assert_private(&real);
    if let Some(read) = nobody_can_read(&real.join("db")) {
        assert!(!read, "nobody must not read the secret through the link");
    }
    // A new database in an empty directory a link names, and a copy's destination likewise.
    for (name, args) in [
        ("new", vec!["create-user", "--email-address", "b@example.com", "--type", "APP_USER"]),
        ("copied", vec!["copy", "--from", real.to_str().unwrap(), "--to"]),
    ] {
        let target = parent.path().join(format!("{name}-target"));
        std::fs::create_dir(&target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = parent.path().join(format!("{name}-link"));
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut args = args.clone();
        if name == "copied" {
            args.push(link.to_str().unwrap());
        }
        cli_under_umask_022(&link, &args);
        assert_private(&target);
    }
    // A link that leads nowhere is refused by name, and creates nothing.
    let dangling = parent.path().join("dangling");
    std::os::unix::fs::symlink(parent.path().join("nowhere"), &dangling).unwrap();
    let stderr =
        cli_refused(&dangling, &["create-user", "--email-address", "c@example.com", "--type", "APP_USER"]);
    assert!(stderr.contains("is a symbolic link that leads nowhere"), "{stderr}");
    assert!(!parent.path().join("nowhere").exists());
}

#[test]
fn a_symbolic_link_inside_a_database_is_refused_by_name() {
    let parent = open_parent();
    let db = parent.path().join("ledger.db");
    cli_under_umask_022(&db, &["create-user", "--email-address", "a@example.com", "--type", "APP_USER"]);
    let elsewhere = parent.path().join("conf-elsewhere");
    std::fs::rename(db.join("conf"), &elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, db.join("conf")).unwrap();
    let stderr = cli_refused(&db, &["list-users", "--max-results", "10"]);
    assert!(stderr.contains(&format!("{} is a symbolic link", db.join("conf").display())), "{stderr}");
}

#[test]
fn a_database_directory_another_user_owns_is_refused_and_left_untouched() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("this test makes a directory owned by `nobody`: run the suite as root (CI does)");
    }
    let parent = open_parent();
    let theirs = parent.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let stderr =
        cli_refused(&theirs, &["create-user", "--email-address", "a@example.com", "--type", "APP_USER"]);
    assert!(stderr.contains("is owned by uid 65534, not by this process's user (uid 0)"), "{stderr}");
    let source = parent.path().join("mine");
    cli_under_umask_022(&source, &["create-user", "--email-address", "a@example.com", "--type", "APP_USER"]);
    let stderr =
        cli_refused(&source, &["copy", "--from", source.to_str().unwrap(), "--to", theirs.to_str().unwrap()]);
    assert!(stderr.contains("is owned by uid 65534"), "{stderr}");
    assert_eq!(std::fs::read_dir(&theirs).unwrap().count(), 0, "nothing written in it");
}

#[test]
fn a_file_sled_made_under_the_umask_inside_the_private_directory_is_narrowed_without_alarm() {
    let parent = open_parent();
    let db = parent.path().join("ledger.db");
    cli_under_umask_022(&db, &["create-user", "--email-address", "a@example.com", "--type", "APP_USER"]);
    // As sled makes a blob file (or a snapshot) while the database is open: 0644 inside 0700.
    let blobs = db.join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::set_permissions(&blobs, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(blobs.join("1"), b"x").unwrap();
    std::fs::set_permissions(blobs.join("1"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = cli_under_umask_022(&db, &["list-users", "--max-results", "10"]);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "nobody could reach them: no warning");
    assert_private(&db);
}

#[test]
fn a_read_only_process_killed_leaves_its_private_copy_only_until_the_next_read_only_open() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let (db, tmp) = (dir.path().join("db"), dir.path().join("tmp"));
    std::fs::create_dir(&tmp).unwrap();
    cli_under_umask_022(&db, &["create-user", "--email-address", "a@example.com", "--type", "APP_USER"]);
    let copies = || {
        let names =
            std::fs::read_dir(&tmp).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned());
        names.filter(|n| n.starts_with("user-ledger-read-only.")).count()
    };
    let mut served = Command::new(env!("CARGO_BIN_EXE_user-ledger"))
        .args(["--db", db.to_str().unwrap(), "--read-only", "serve", "--listen", "127.0.0.1:0"])
        .env("TMPDIR", &tmp)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(served.stdout.take().unwrap());
    assert!(stdout.lines().map_while(Result::ok).any(|l| l.starts_with("listening on ")));
    assert_eq!(copies(), 1, "the host reads its private copy");
    served.kill().unwrap();
    served.wait().unwrap();
    assert_eq!(copies(), 1, "a killed process removes nothing");
    let stats = Command::new(env!("CARGO_BIN_EXE_user-ledger"))
        .args(["--db", db.to_str().unwrap(), "--read-only", "stats"])
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    assert!(stats.status.success(), "{}", String::from_utf8_lossy(&stats.stderr));
    assert_eq!(copies(), 0, "the next read-only open swept the abandoned copy, and removed its own");
}
