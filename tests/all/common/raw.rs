//! The sled files of a closed ledger, for tests that tamper with the bytes the way a disk or an
//! intruder would: through format 2's key layout, not the ledger's API.

use std::path::Path;

use user_ledger::backend::sled::{files, layout};
use user_ledger::backend::{Head, Tip};
use user_ledger::core::codec;
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

    /// The key of `view`'s first row whose value is `value` encoded (an email row by its user).
    pub fn view_key_of(&self, view: ViewTree, value: &str) -> Vec<u8> {
        let encoded = codec::encode(&value.to_owned());
        let prefix = layout::view_prefix(view);
        let found = self.tree.scan_prefix(prefix).map(|r| r.unwrap()).find(|(_, v)| v.as_ref() == encoded);
        found.map(|(k, _)| k[prefix.len()..].to_vec()).expect("a row with that value")
    }

    /// Stores a meta record.
    pub fn put_meta(&self, name: &str, value: &[u8]) {
        self.tree.insert(layout::meta_key(name), value).unwrap();
    }

    /// Removes a meta record.
    pub fn remove_meta(&self, name: &str) {
        self.tree.remove(layout::meta_key(name)).unwrap();
    }

    /// A meta record, if there is one.
    pub fn meta(&self, name: &str) -> Option<Vec<u8>> {
        self.tree.get(layout::meta_key(name)).unwrap().map(|v| v.to_vec())
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

/// Every tree of a database with its records, by name.
pub type Dump = std::collections::BTreeMap<String, Vec<(Vec<u8>, Vec<u8>)>>;

/// Every tree of the closed database at `path`, with its records, by name (sled's default tree
/// left out): for comparing databases byte for byte.
pub fn dump(path: &Path) -> Dump {
    let raw = Raw::open(path);
    let db = raw.db();
    db.tree_names()
        .into_iter()
        .filter(|name| name.as_ref() != b"__sled__default")
        .map(|name| {
            let tree = db.open_tree(&name).unwrap();
            let records = tree.iter().map(|r| r.unwrap()).map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            (String::from_utf8_lossy(&name).into_owned(), records)
        })
        .filter(|(_, records): &(String, Vec<_>)| !records.is_empty())
        .collect()
}

/// Rewrites the closed format-2 database at `path` the way format 1 (the code of 2026-11-23)
/// laid it out: a tree per space and per view, head and views seq under meta keys of their own,
/// and an expiry index beside the token records. For tests of the migration.
pub fn to_format_1(path: &Path) {
    let raw = Raw::open(path);
    let db = raw.db();
    let tree = |name: &str| db.open_tree(name).unwrap();
    for record in raw.tree.iter() {
        let (key, value) = record.unwrap();
        let (space, rest) = key.split_first().unwrap();
        match space {
            b'm' if rest == layout::TIP.as_bytes() => {
                let tip: Tip = codec::decode("tip", &value).unwrap();
                tree("meta").insert("head", codec::encode(&tip.head)).unwrap();
                tree("meta").insert("views_seq", codec::encode(&tip.views_seq)).unwrap();
            }
            b'm' if rest == layout::FORMAT.as_bytes() => {
                tree("meta").insert("format", &[1u8]).unwrap();
            }
            b'm' => drop(tree("meta").insert(rest, value).unwrap()),
            b'l' => drop(tree("log").insert(rest, value).unwrap()),
            b't' => {
                let record: user_ledger::core::idempotency::TokenRecord =
                    codec::decode("token", &value).unwrap();
                let expiry = [&(record.expires_ms.max(0) as u64).to_be_bytes()[..], rest].concat();
                tree("token_expiry").insert(expiry, &[]).unwrap();
                tree("tokens").insert(rest, value).unwrap();
            }
            b'v' => {
                let (tag, rest) = rest.split_first().unwrap();
                let view = ViewTree::ALL[(tag - b'a') as usize];
                tree(view.name()).insert(rest, value).unwrap();
            }
            // Format 1 predates person keys: a database of its time holds none (its users
            // read as erased), and a migration has none to carry.
            b'k' => {}
            other => panic!("a key in no space: {other}"),
        }
    }
    db.drop_tree(layout::TREE).unwrap();
    raw.flush();
}
