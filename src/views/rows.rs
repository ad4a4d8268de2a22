//! Each record as its canonical row: the (view, key) and value bytes every backend stores.

use crate::core::codec;
use crate::core::domain::{
    AccessKey, KxUser, PermissionGroup, PrincipalKey, TemporaryCredential, User, UserId,
};
use crate::views::{kx_count_key, kx_key, retired_key, ViewTree, CURRENT_DATA_KEY, ENABLED_USERS};

/// One stored row: ((tree, key), value).
pub type Row = ((ViewTree, Vec<u8>), Vec<u8>);

/// The row of a user record.
pub fn user_row(user: &User) -> Row {
    ((ViewTree::Users, user.user_id.as_bytes().to_vec()), codec::encode(user))
}

/// The row of an email index entry.
pub fn email_row(email_key: &str, user_id: &UserId) -> Row {
    ((ViewTree::Emails, email_key.as_bytes().to_vec()), codec::encode(user_id))
}

/// The row of the enabled-users counter.
pub fn enabled_users_row(count: u64) -> Row {
    ((ViewTree::Counters, ENABLED_USERS.to_vec()), codec::encode(&count))
}

/// The row of a kdb user record.
pub fn kx_user_row(user: &KxUser) -> Row {
    ((ViewTree::KxUsers, kx_key(&user.environment_id, &user.user_name)), codec::encode(user))
}

/// The row of the kdb-user counter of an environment.
pub fn kx_count_row(environment_id: &str, count: u64) -> Row {
    ((ViewTree::Counters, kx_count_key(environment_id)), codec::encode(&count))
}

/// The row naming the current data key.
pub fn current_data_key_row(key_id: u32) -> Row {
    ((ViewTree::Counters, CURRENT_DATA_KEY.to_vec()), codec::encode(&u64::from(key_id)))
}

/// The row marking data key `key_id` retired.
pub fn retired_data_key_row(key_id: u32) -> Row {
    ((ViewTree::Counters, retired_key(key_id)), codec::encode(&1u64))
}

/// The row of an access key record.
pub fn access_key_row(key: &AccessKey) -> Row {
    ((ViewTree::AccessKeys, key.access_key_id.as_bytes().to_vec()), codec::encode(key))
}

/// The row of a permission group record.
pub fn group_row(group: &PermissionGroup) -> Row {
    ((ViewTree::Groups, group.permission_group_id.as_bytes().to_vec()), codec::encode(group))
}

/// The row of a user's password hash.
pub fn password_row(user_id: &str, hash: &String) -> Row {
    ((ViewTree::Passwords, user_id.as_bytes().to_vec()), codec::encode(hash))
}

/// The row of a principal's key.
pub fn principal_key_row(key: &PrincipalKey) -> Row {
    ((ViewTree::PrincipalKeys, key.access_key_id.as_bytes().to_vec()), codec::encode(key))
}

/// The row of temporary credentials.
pub fn temporary_credential_row(credential: &TemporaryCredential) -> Row {
    (
        (ViewTree::TemporaryCredentials, credential.access_key_id.as_bytes().to_vec()),
        codec::encode(credential),
    )
}

/// The row of a history index entry.
pub fn history_row(key: Vec<u8>) -> Row {
    ((ViewTree::History, key), Vec::new())
}

/// The row of a complete subtree of the Merkle tree: its hash under its key.
pub fn merkle_row(node: crate::core::merkle::Node, hash: &crate::core::merkle::Hash) -> Row {
    ((ViewTree::Merkle, node.key().to_vec()), hash.to_vec())
}
