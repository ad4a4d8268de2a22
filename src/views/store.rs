//! The views as canonical rows of a key-value store: whatever keeps them (sled, PostgreSQL, the
//! in-memory fold, a batch's overlay) gives [`RowStore::row`] and [`RowStore::rows_under`] and
//! gets [`State`] for them, written once. The functions here decode the rows, naming the view and
//! key of one that does not decode.

use crate::core::codec;
use crate::core::domain::{
    AccessKey, KxUser, PermissionGroup, PrincipalKey, TemporaryCredential, User, UserId,
};
use crate::core::State;
use crate::error::{Error, Result};
use crate::views::{
    groups_prefix, kx_count_key, kx_key, members_prefix, membership_keys, ViewTree, ENABLED_USERS,
};

/// A page of a listing: the items, and whether more follow.
pub type Page<T> = (Vec<T>, bool);

/// Canonical rows of the views, by key.
pub trait RowStore {
    /// The value of row `key` of `view`.
    fn row(&self, view: ViewTree, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Up to `limit` rows of `view` whose keys start with `prefix`, after `after` (a full key)
    /// or from the first, in key order.
    fn rows_under(
        &self,
        view: ViewTree,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
}

/// The rows of a map keyed by (view, key) that [`RowStore::rows_under`] names, in key order:
/// those of `view` under `prefix`, after `after` (a full key) or from the first.
pub fn under<'m, V>(
    rows: &'m std::collections::BTreeMap<(ViewTree, Vec<u8>), V>,
    view: ViewTree,
    prefix: &'m [u8],
    after: Option<&[u8]>,
) -> impl Iterator<Item = (&'m Vec<u8>, &'m V)> + 'm {
    use std::ops::Bound;
    let start = match after {
        Some(after) => Bound::Excluded((view, after.to_vec())),
        None => Bound::Included((view, prefix.to_vec())),
    };
    rows.range((start, Bound::Unbounded))
        .take_while(move |((v, key), _)| *v == view && key.starts_with(prefix))
        .map(|((_, key), value)| (key, value))
}

/// Decodes a stored view row, naming the view and key if it does not decode.
pub fn decode_row<T: serde::de::DeserializeOwned>(view: ViewTree, key: &[u8], value: &[u8]) -> Result<T> {
    let shown = String::from_utf8_lossy(key).replace('\0', "/");
    codec::decode(format_args!("{}[{shown}]", view.name()), value)
}

/// The last part of a membership key: the user of a (group, user) key, the group of a (user,
/// group) one.
pub fn decode_member(key: &[u8]) -> Result<String> {
    let last = key.rsplit(|&b| b == 0).next().unwrap_or_default();
    String::from_utf8(last.to_vec()).map_err(|_| {
        Error::corrupt(format_args!("corrupt memberships: key {} is not UTF-8", String::from_utf8_lossy(key)))
    })
}

/// Row `key` of `view`, decoded.
pub fn get<T: serde::de::DeserializeOwned>(
    store: &(impl RowStore + ?Sized),
    view: ViewTree,
    key: &[u8],
) -> Result<Option<T>> {
    match store.row(view, key)? {
        Some(value) => Ok(Some(decode_row(view, key, &value)?)),
        None => Ok(None),
    }
}

/// A keyset page of `view` under `prefix`, after `after`, at most `limit`, each row decoded.
pub fn page<T>(
    store: &(impl RowStore + ?Sized),
    view: ViewTree,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
    decode: impl Fn(&[u8], &[u8]) -> Result<T>,
) -> Result<Page<T>> {
    let mut rows = store.rows_under(view, prefix, after, limit.saturating_add(1))?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let items = rows.iter().map(|(k, v)| decode(k, v)).collect::<Result<_>>()?;
    Ok((items, more))
}

/// The hash of the Merkle tree's complete subtree `node`, if stored.
pub fn merkle_node(
    store: &(impl RowStore + ?Sized),
    node: crate::core::merkle::Node,
) -> Result<Option<[u8; 32]>> {
    store.row(ViewTree::Merkle, &node.key())?.map(|value| merkle_hash(node, value)).transpose()
}

/// A stored Merkle row's value as the hash it holds; any other bytes are corrupt, named by node.
pub fn merkle_hash(node: crate::core::merkle::Node, value: Vec<u8>) -> Result<[u8; 32]> {
    value.try_into().map_err(|v: Vec<u8>| {
        Error::corrupt(format_args!(
            "corrupt merkle: the node of level {} at index {} holds {} bytes, not a hash",
            node.level,
            node.index,
            v.len()
        ))
    })
}

/// Every row of `view`, decoded.
pub fn all<T: serde::de::DeserializeOwned>(
    store: &(impl RowStore + ?Sized),
    view: ViewTree,
) -> Result<Vec<T>> {
    Ok(page(store, view, &[], None, usize::MAX - 1, |k, v| decode_row(view, k, v))?.0)
}

/// A counter of [`ViewTree::Counters`]; 0 when absent.
pub fn counter(store: &(impl RowStore + ?Sized), key: &[u8]) -> Result<u64> {
    Ok(get(store, ViewTree::Counters, key)?.unwrap_or(0))
}

/// The decider's reads, for every row store.
impl<S: RowStore + ?Sized> State for S {
    fn user(&self, user_id: &str) -> Result<Option<User>> {
        get(self, ViewTree::Users, user_id.as_bytes())
    }

    fn email_owner(&self, email_key: &str) -> Result<Option<UserId>> {
        get(self, ViewTree::Emails, email_key.as_bytes())
    }

    fn enabled_users(&self) -> Result<u64> {
        counter(self, ENABLED_USERS)
    }

    fn kx_user(&self, environment_id: &str, user_name: &str) -> Result<Option<KxUser>> {
        get(self, ViewTree::KxUsers, &kx_key(environment_id, user_name))
    }

    fn kx_users_in(&self, environment_id: &str) -> Result<u64> {
        counter(self, &kx_count_key(environment_id))
    }

    fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>> {
        get(self, ViewTree::AccessKeys, access_key_id.as_bytes())
    }

    fn permission_group(&self, group: &str) -> Result<Option<PermissionGroup>> {
        get(self, ViewTree::Groups, group.as_bytes())
    }

    fn is_member(&self, group: &str, user: &str) -> Result<bool> {
        let [key, _] = membership_keys(group, user);
        Ok(self.row(ViewTree::Memberships, &key)?.is_some())
    }

    fn groups_of(&self, user: &str) -> Result<Vec<String>> {
        Ok(memberships_after(self, true, user, None, usize::MAX - 1)?.0)
    }

    fn members_of(&self, group: &str) -> Result<Vec<UserId>> {
        Ok(memberships_after(self, false, group, None, usize::MAX - 1)?.0)
    }

    fn password_hash(&self, user: &str) -> Result<Option<String>> {
        get(self, ViewTree::Passwords, user.as_bytes())
    }

    fn principal_key(&self, access_key_id: &str) -> Result<Option<PrincipalKey>> {
        get(self, ViewTree::PrincipalKeys, access_key_id.as_bytes())
    }

    fn temporary_credential(&self, access_key_id: &str) -> Result<Option<TemporaryCredential>> {
        get(self, ViewTree::TemporaryCredentials, access_key_id.as_bytes())
    }

    /// A scan of every user: the principal is rarely asked for, and kept in no index.
    fn users_with_principal(&self, principal_arn: &str) -> Result<Vec<User>> {
        let users: Vec<User> = all(self, ViewTree::Users)?;
        Ok(users
            .into_iter()
            .filter(|u| u.api_access_principal_arn.as_deref() == Some(principal_arn))
            .collect())
    }

    fn current_data_key(&self) -> Result<u32> {
        let id = counter(self, crate::views::CURRENT_DATA_KEY)?;
        u32::try_from(id).map_err(|_| Error::corrupt(format_args!("corrupt views: current data key {id}")))
    }

    fn data_key_retired(&self, key_id: u32) -> Result<bool> {
        Ok(counter(self, &crate::views::retired_key(key_id))? != 0)
    }
}

/// The members of a group (`of_user` false) or the groups of a user (`of_user` true) after
/// `after`, at most `limit`: one membership index read from either side.
pub fn memberships_after(
    store: &(impl RowStore + ?Sized),
    of_user: bool,
    id: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<String>> {
    let prefix = if of_user { groups_prefix(id) } else { members_prefix(id) };
    let after = after.map(|other| [prefix.as_slice(), other.as_bytes()].concat());
    page(store, ViewTree::Memberships, &prefix, after.as_deref(), limit, |k, _| decode_member(k))
}
