//! Each view change as its canonical rows: the (view, key) and value bytes every row store keeps
//! and every fold is compared by. This is where a view's encoding is stated, once.

use crate::core::codec;
use crate::core::ViewChange;
use crate::views::{
    history_key, kx_count_key, kx_key, membership_keys, retired_key, ViewTree, CURRENT_DATA_KEY,
    ENABLED_USERS,
};

/// One stored row: ((view, key), value).
pub type Row = ((ViewTree, Vec<u8>), Vec<u8>);

/// A canonical row to set (`Some`) or remove (`None`): ((view, key), value).
pub type RowChange = ((ViewTree, Vec<u8>), Option<Vec<u8>>);

/// The canonical rows `change` sets or removes, in the order they apply.
pub fn rows(change: &ViewChange) -> Vec<RowChange> {
    use ViewTree as V;
    let put = |view: ViewTree, key: &[u8], value: Vec<u8>| vec![((view, key.to_vec()), Some(value))];
    let remove = |view: ViewTree, key: &[u8]| vec![((view, key.to_vec()), None)];
    match change {
        ViewChange::PutUser(user) => put(V::Users, user.user_id.as_bytes(), codec::encode(user)),
        ViewChange::RemoveUser(id) => remove(V::Users, id.as_bytes()),
        ViewChange::PutEmail(key, id) => put(V::Emails, key.as_bytes(), codec::encode(id)),
        ViewChange::RemoveEmail(key) => remove(V::Emails, key.as_bytes()),
        ViewChange::RemovePassword(user) => remove(V::Passwords, user.as_bytes()),
        ViewChange::EnabledUsers(count) => put(V::Counters, ENABLED_USERS, codec::encode(count)),
        ViewChange::PutKxUser(user) => {
            put(V::KxUsers, &kx_key(&user.environment_id, &user.user_name), codec::encode(user))
        }
        ViewChange::RemoveKxUser(env, name) => remove(V::KxUsers, &kx_key(env, name)),
        ViewChange::KxUsersIn(env, count) => put(V::Counters, &kx_count_key(env), codec::encode(count)),
        ViewChange::PutAccessKey(key) => put(V::AccessKeys, key.access_key_id.as_bytes(), codec::encode(key)),
        ViewChange::RemoveAccessKey(id) => remove(V::AccessKeys, id.as_bytes()),
        ViewChange::PutGroup(group) => {
            put(V::Groups, group.permission_group_id.as_bytes(), codec::encode(group))
        }
        ViewChange::RemoveGroup(id) => remove(V::Groups, id.as_bytes()),
        ViewChange::PutPassword(user, hash) => put(V::Passwords, user.as_bytes(), codec::encode(hash)),
        ViewChange::PutPrincipalKey(key) => {
            put(V::PrincipalKeys, key.access_key_id.as_bytes(), codec::encode(key))
        }
        ViewChange::RemovePrincipalKey(id) => remove(V::PrincipalKeys, id.as_bytes()),
        ViewChange::PutTemporaryCredential(c) => {
            put(V::TemporaryCredentials, c.access_key_id.as_bytes(), codec::encode(c))
        }
        ViewChange::RemoveTemporaryCredential(id) => remove(V::TemporaryCredentials, id.as_bytes()),
        ViewChange::Member(group, user, member) => membership_keys(group, user)
            .into_iter()
            .map(|key| ((V::Memberships, key), member.then(Vec::new)))
            .collect(),
        ViewChange::History(subject, seq) => {
            put(V::History, &history_key(subject.as_subject(), *seq), Vec::new())
        }
        ViewChange::MerkleNode(node, hash) => put(V::Merkle, &node.key(), hash.to_vec()),
        ViewChange::CurrentDataKey(id) => put(V::Counters, CURRENT_DATA_KEY, codec::encode(&u64::from(*id))),
        ViewChange::RetiredDataKey(id) => put(V::Counters, &retired_key(*id), codec::encode(&1u64)),
    }
}
