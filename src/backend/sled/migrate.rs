//! Format 1 → format 2, on open (a read-only open migrates its private copy, never the original).
//!
//! Format 1 kept the log, meta, tokens, an expiry index of the tokens and each view in trees of
//! their own. The migration copies every record into format 2's single tree, byte for byte (the
//! log entries and view rows keep their bytes; head and views seq become one tip; the expiry
//! index is dropped, the token records hold their expiry), then makes the copy durable, and only
//! then stamps format 2, the commit point, and syncs again. Format 1's trees are dropped after.
//!
//! A crash before the stamp is durable leaves format 1 untouched beside a partial copy that the
//! next open clears and redoes; a crash after it leaves format 2, whose next open finishes
//! dropping format 1's trees. Never a mix: the API only ever reads one format.

use ::sled::{Batch, Db, Tree};

use super::{layout, storage, SledBackend, FORMAT_VERSION};
use crate::backend::{Head, Tip};
use crate::core::codec;
use crate::error::{Error, Failure, Result};
use crate::views::ViewTree;

/// Format 1's trees, besides one per view; `meta` last, so its presence marks a format-1
/// database until the very end of a migration.
const FORMAT_1_TREES: [&str; 4] = ["log", "tokens", "token_expiry", "meta"];
/// Format 1's meta records that format 2 keeps under the same name.
const KEPT_META: [&str; 3] = ["page_secret", "identity", "environment_id"];
/// Records per `apply_batch` while copying.
const CHUNK: usize = 2_048;

/// Brings the database to [`FORMAT_VERSION`]: stamps a new one, migrates format 1, finishes a
/// migration cut short after its commit point, refuses any other format. Unless `migrate`, a
/// database that needs either is refused, naming the change, and nothing is written.
pub fn to_current(backend: &SledBackend, migrate: bool) -> Result<()> {
    let refuse = |change: &str| Err(crate::error::needs_migration(backend.path.display(), change));
    let db = &backend.db;
    let names = db.tree_names();
    let has_format_1 = names.iter().any(|name| name.as_ref() == b"meta");
    // After the stamp, a crash while dropping may have left any of format 1's trees.
    let leftover = names.iter().any(|name| format_1_trees().any(|old| name.as_ref() == old.as_bytes()));
    match backend.tree.get(layout::meta_key(layout::FORMAT)).map_err(storage)?.as_deref() {
        Some([FORMAT_VERSION]) if leftover && !migrate => refuse("finish dropping format 1's trees"),
        Some([FORMAT_VERSION]) if leftover => drop_format_1(backend),
        Some([FORMAT_VERSION]) => Ok(()),
        other => {
            let old_meta = if has_format_1 { Some(db.open_tree("meta").map_err(storage)?) } else { None };
            let old_format = match &old_meta {
                Some(meta) => meta.get("format").map_err(storage)?,
                None => None,
            };
            match (other, old_format.as_deref()) {
                (None, Some([1])) if !migrate => {
                    refuse("lift format 1 to format 2 (its records copied into one tree)")
                }
                (None, Some([1])) => from_format_1(backend),
                (Some(found), _) | (None, Some(found)) => Err(unknown_format(backend, found)),
                (None, None) if !backend.tree.is_empty() || has_records(db)? => Err(Error::corrupt(
                    format_args!("database at {} has records but no format version", backend.path.display()),
                )),
                (None, None) => {
                    backend
                        .tree
                        .insert(layout::meta_key(layout::FORMAT), &[FORMAT_VERSION])
                        .map_err(storage)?;
                    backend.flush()
                }
            }
        }
    }
}

fn unknown_format(backend: &SledBackend, found: &[u8]) -> Error {
    Error::failed(
        Failure::FormatVersion,
        format_args!(
            "database at {} is in format version {}, this build reads versions 1 and {FORMAT_VERSION}",
            backend.path.display(),
            found.first().map_or("(empty)".to_owned(), u8::to_string),
        ),
    )
}

/// Whether format 1's log holds anything (a database whose meta lost its format).
fn has_records(db: &Db) -> Result<bool> {
    Ok(db.tree_names().iter().any(|name| name.as_ref() == b"log")
        && !db.open_tree("log").map_err(storage)?.is_empty())
}

fn from_format_1(backend: &SledBackend) -> Result<()> {
    let (db, tree) = (&backend.db, &backend.tree);
    // What a migration cut short before its commit point copied.
    tree.clear().map_err(storage)?;
    crash_point("cleared");
    copy(tree, &db.open_tree("log").map_err(storage)?, layout::log_key_of)?;
    copy(tree, &db.open_tree("tokens").map_err(storage)?, layout::token_key)?;
    for view in ViewTree::ALL {
        copy(tree, &db.open_tree(view.name()).map_err(storage)?, |key| layout::view_key(view, key))?;
    }
    let meta = db.open_tree("meta").map_err(storage)?;
    for name in KEPT_META {
        if let Some(value) = meta.get(name).map_err(storage)? {
            tree.insert(layout::meta_key(name), value).map_err(storage)?;
        }
    }
    let head: Head = meta
        .get("head")
        .map_err(storage)?
        .map(|v| codec::decode("meta head", &v))
        .transpose()?
        .unwrap_or_default();
    let views_seq: u64 = meta
        .get("views_seq")
        .map_err(storage)?
        .map(|v| codec::decode("meta views_seq", &v))
        .transpose()?
        .unwrap_or(0);
    tree.insert(layout::meta_key(layout::TIP), codec::encode(&Tip { head, views_seq })).map_err(storage)?;
    backend.flush()?;
    crash_point("copied");
    tree.insert(layout::meta_key(layout::FORMAT), &[FORMAT_VERSION]).map_err(storage)?;
    backend.flush()?;
    crash_point("stamped");
    drop_format_1(backend)
}

/// Copies every record of `from` into `to` under `key(old key)`, in batches.
fn copy(to: &Tree, from: &Tree, key: impl Fn(&[u8]) -> Vec<u8>) -> Result<()> {
    let mut batch = Batch::default();
    let mut pending = 0;
    for entry in from.iter() {
        let (old, value) = entry.map_err(storage)?;
        batch.insert(key(&old), value);
        pending += 1;
        if pending == CHUNK {
            to.apply_batch(std::mem::take(&mut batch)).map_err(storage)?;
            pending = 0;
            crash_point("chunk");
        }
    }
    to.apply_batch(batch).map_err(storage)?;
    Ok(())
}

/// Every tree of format 1, in the order they are dropped.
fn format_1_trees() -> impl Iterator<Item = &'static str> {
    ViewTree::ALL.into_iter().map(ViewTree::name).chain(FORMAT_1_TREES)
}

fn drop_format_1(backend: &SledBackend) -> Result<()> {
    for name in format_1_trees() {
        backend.db.drop_tree(name).map_err(storage)?;
        crash_point("dropped");
    }
    backend.flush()
}

/// A test hook: with the `whitebox` feature, `USER_LEDGER_MIGRATION_CRASH=<point>:<n>` aborts
/// the process the n-th time the migration passes `point` (cleared, chunk, copied, stamped,
/// dropped), so the crash tests can stop it at each step as well as at random moments.
fn crash_point(point: &str) {
    #[cfg(feature = "whitebox")]
    {
        use std::sync::atomic::{AtomicU64, Ordering};
        static PASSED: AtomicU64 = AtomicU64::new(0);
        let Ok(wanted) = std::env::var("USER_LEDGER_MIGRATION_CRASH") else { return };
        let Some((at, n)) = wanted.split_once(':').filter(|(at, _)| *at == point) else { return };
        if at == point && n.parse::<u64>().ok() == Some(PASSED.fetch_add(1, Ordering::SeqCst) + 1) {
            std::process::abort();
        }
    }
    #[cfg(not(feature = "whitebox"))]
    let _ = point;
}
