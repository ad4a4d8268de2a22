//! Format 2's key layout: every record of a ledger in ONE sled tree, in key spaces told apart by
//! their first byte, so a commit is one `apply_batch` (atomic in sled) instead of a transaction
//! over a dozen trees.
//!
//! | space | key | value |
//! |---|---|---|
//! | meta | `m` ‖ name | a setting; `tip` holds head and views seq together |
//! | log | `l` ‖ seq (8, BE) | sealed envelope |
//! | tokens | `t` ‖ operation ‖ 0 ‖ token | token record (its expiry inside: no expiry index) |
//! | views | `v` ‖ view tag ‖ canonical key | canonical value (see [`crate::views`]) |
//! | checkpoints | `c` ‖ size (8, BE) | the signed checkpoint's record |
//! | person keys | `k` ‖ user id | the person's key, wrapped under a data key (outside the chain) |
//!
//! Format 1 (before 2026-11-24) kept each space in a tree of its own, the head and the views
//! seq under two meta keys, and an expiry index beside the tokens: see `migrate`.

use crate::core::codec;
use crate::views::ViewTree;

/// The tree that holds everything.
pub const TREE: &str = "ledger";

const META: u8 = b'm';
const LOG: u8 = b'l';
const TOKENS: u8 = b't';
const VIEWS: u8 = b'v';
const CHECKPOINTS: u8 = b'c';
const PERSON_KEYS: u8 = b'k';

/// The meta name of the format version.
pub const FORMAT: &str = "format";
/// The meta name of the tip (head and views seq).
pub const TIP: &str = "tip";

/// The key of the signed checkpoint of tree size `size`: sizes sort in key order.
pub fn checkpoint_key(size: u64) -> [u8; 9] {
    let mut key = [CHECKPOINTS; 9];
    if let Some(rest) = key.get_mut(1..) {
        rest.copy_from_slice(&size.to_be_bytes());
    }
    key
}

/// The prefix of every signed checkpoint's key.
pub const CHECKPOINTS_PREFIX: [u8; 1] = [CHECKPOINTS];

/// The key of `user_id`'s wrapped person key.
pub fn person_key(user_id: &str) -> Vec<u8> {
    [&[PERSON_KEYS], user_id.as_bytes()].concat()
}

/// The prefix of every person key's key.
pub const PERSON_KEYS_PREFIX: [u8; 1] = [PERSON_KEYS];

/// The key of a meta setting.
pub fn meta_key(name: &str) -> Vec<u8> {
    [&[META], name.as_bytes()].concat()
}

/// The key of the log entry at `seq`.
pub fn log_key(seq: u64) -> [u8; 9] {
    let mut key = [LOG; 9];
    if let Some(rest) = key.get_mut(1..) {
        rest.copy_from_slice(&codec::seq_key(seq));
    }
    key
}

/// The key of the log entry whose seq is the 8 bytes `seq_key` (copied as they are, even if
/// damaged, so a migration keeps what verify must find).
pub fn log_key_of(seq_key: &[u8]) -> Vec<u8> {
    [&[LOG], seq_key].concat()
}

/// The first key after the log.
pub fn log_end() -> [u8; 1] {
    [LOG + 1]
}

/// The seq of a log key; `None` if it is not one.
pub fn seq_of_log_key(key: &[u8]) -> Option<u64> {
    key.strip_prefix(&[LOG]).and_then(codec::seq_of)
}

/// The key of a token record.
pub fn token_key(token_key: &[u8]) -> Vec<u8> {
    [&[TOKENS], token_key].concat()
}

/// The prefix of every token record.
pub const TOKENS_PREFIX: [u8; 1] = [TOKENS];

/// The prefix of `view`'s rows.
pub fn view_prefix(view: ViewTree) -> [u8; 2] {
    [VIEWS, b'a' + view.tag()]
}

/// The key of `view`'s row `key`.
pub fn view_key(view: ViewTree, key: &[u8]) -> Vec<u8> {
    [&view_prefix(view)[..], key].concat()
}
