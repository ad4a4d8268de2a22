//! The sled files of a closed ledger, for tests that tamper with the bytes the way a disk or an
//! intruder would: through format 2's key layout, not the ledger's API.

use std::path::Path;

use user_ledger::backend::sled::{files, layout};
use user_ledger::backend::{Head, Tip};
use user_ledger::codec;
use user_ledger::views::ViewTree;

/// The tree of a closed ledger's database.
pub struct Raw {
    db: sled::Db,
    /// The one tree format 2 keeps everything in.
    pub tree: sled::Tree,
}

impl Raw {
    /// Opens the database at `path` through the ledger's own opener, which waits for sled to
    /// release the lock of a ledger just dropped.
    pub fn open(path: &Path) -> Raw {
        let db = files::open_sled(sled::Config::new().path(path)).unwrap();
        let tree = db.open_tree(layout::TREE).unwrap();
        Raw { db, tree }
    }

    /// The sealed bytes of the log entry at `seq`.
    pub fn log(&self, seq: u64) -> Option<Vec<u8>> {
        self.tree.get(layout::log_key(seq)).unwrap().map(|v| v.to_vec())
    }

    /// Stores `bytes` as the log entry at `seq`.
    pub fn put_log(&self, seq: u64, bytes: &[u8]) {
        self.tree.insert(layout::log_key(seq), bytes).unwrap();
    }

    /// Removes the log entry at `seq`.
    pub fn remove_log(&self, seq: u64) {
        self.tree.remove(layout::log_key(seq)).unwrap();
    }

    /// The recorded tip.
    pub fn tip(&self) -> Tip {
        codec::decode("tip", &self.tree.get(layout::meta_key(layout::TIP)).unwrap().unwrap()).unwrap()
    }

    /// Records `tip`.
    pub fn set_tip(&self, tip: Tip) {
        self.tree.insert(layout::meta_key(layout::TIP), codec::encode(&tip)).unwrap();
    }

    /// Records `head` as the head, with the views folded up to it.
    pub fn set_head(&self, head: Head) {
        self.set_tip(Tip { head, views_seq: head.seq });
    }

    /// Records the views as folded up to `seq`.
    pub fn set_views_seq(&self, views_seq: u64) {
        self.set_tip(Tip { views_seq, ..self.tip() });
    }

    /// Stores a view row.
    pub fn put_view(&self, view: ViewTree, key: &[u8], value: &[u8]) {
        self.tree.insert(layout::view_key(view, key), value).unwrap();
    }

    /// Removes a view row.
    pub fn remove_view(&self, view: ViewTree, key: &[u8]) {
        self.tree.remove(layout::view_key(view, key)).unwrap();
    }

    /// Stores a meta record.
    pub fn put_meta(&self, name: &str, value: &[u8]) {
        self.tree.insert(layout::meta_key(name), value).unwrap();
    }

    /// The underlying database.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Flushes, so a reopen sees the edits.
    pub fn flush(&self) {
        self.db.flush().unwrap();
    }
}
