//! The keys of the views' rows: how ids and names are laid out so that prefixes select a
//! subject's history, a group's members or a user's groups.

use crate::core::codec;
use crate::core::event::Subject;

/// The key of a kdb user: environmentId, a zero byte, userName (neither can hold a zero byte).
pub fn kx_key(environment_id: &str, user_name: &str) -> Vec<u8> {
    [environment_id.as_bytes(), &[0], user_name.as_bytes()].concat()
}

/// The key of the kdb-user counter of an environment in [`crate::views::ViewTree::Counters`].
pub fn kx_count_key(environment_id: &str) -> Vec<u8> {
    [b"kx_users/", environment_id.as_bytes()].concat()
}

/// The prefix of the keyring's counters in [`crate::views::ViewTree::Counters`].
pub const DATA_KEYS: &[u8] = b"data_keys/";

/// The key of the current data key's id in [`crate::views::ViewTree::Counters`].
pub const CURRENT_DATA_KEY: &[u8] = b"data_keys/current";

/// The key in [`crate::views::ViewTree::Counters`] marking data key `key_id` retired.
pub fn retired_key(key_id: u32) -> Vec<u8> {
    format!("data_keys/retired/{key_id}").into_bytes()
}

/// The prefix of a subject's entries in [`crate::views::ViewTree::History`]. Ids and names hold no zero byte,
/// so the zero-terminated parts cannot run into each other.
pub fn subject_prefix(subject: Subject) -> Vec<u8> {
    match subject {
        Subject::User(user_id) => [b"u\0", user_id.as_bytes(), b"\0"].concat(),
        Subject::KxUser(env, name) => [b"k\0", env.as_bytes(), b"\0", name.as_bytes(), b"\0"].concat(),
        Subject::PermissionGroup(id) => [b"g\0", id.as_bytes(), b"\0"].concat(),
        Subject::Principal(arn) => [b"p\0", arn.as_bytes(), b"\0"].concat(),
        Subject::Keyring => b"r\0".to_vec(),
    }
}

/// The prefix of the members of `group` in [`crate::views::ViewTree::Memberships`].
pub fn members_prefix(group: &str) -> Vec<u8> {
    [b"g\0", group.as_bytes(), b"\0"].concat()
}

/// The prefix of the groups of `user` in [`crate::views::ViewTree::Memberships`].
pub fn groups_prefix(user: &str) -> Vec<u8> {
    [b"u\0", user.as_bytes(), b"\0"].concat()
}

/// The two index keys of one membership: (group, user) and (user, group).
pub fn membership_keys(group: &str, user: &str) -> [Vec<u8>; 2] {
    [
        [members_prefix(group), user.as_bytes().to_vec()].concat(),
        [groups_prefix(user), group.as_bytes().to_vec()].concat(),
    ]
}

/// The history index key of event `seq` about `subject`.
pub fn history_key(subject: Subject, seq: u64) -> Vec<u8> {
    [subject_prefix(subject), codec::seq_key(seq).to_vec()].concat()
}
