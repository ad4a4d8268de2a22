//! Reading sled: one key, a view's rows, a page of a view, counters; the rows decoded, naming
//! the view and key of one that does not decode; and the [`State`] the decider asks of it.

use std::ops::Bound;

use super::{layout, storage, SledBackend};
use crate::backend::{Backend, Page};
use crate::core::codec;
use crate::core::domain::{
    AccessKey, KxUser, PermissionGroup, PrincipalKey, TemporaryCredential, User, UserId,
};
use crate::core::State;
use crate::error::{Error, Result};
use crate::views::{kx_count_key, kx_key, membership_keys, ViewTree, ENABLED_USERS};

impl SledBackend {
    /// Flushes sled and fdatasyncs its data file.
    pub(super) fn flush(&self) -> Result<()> {
        self.db.flush().map_err(storage)?;
        self.data_file.sync_data()?;
        Ok(())
    }

    pub(super) fn get(&self, key: &[u8]) -> Result<Option<::sled::IVec>> {
        self.tree.get(key).map_err(storage)
    }

    pub(super) fn view_get<T: serde::de::DeserializeOwned>(
        &self,
        view: ViewTree,
        key: &[u8],
    ) -> Result<Option<T>> {
        match self.get(&layout::view_key(view, key))? {
            Some(value) => Ok(Some(decode_row(view, key, &value)?)),
            None => Ok(None),
        }
    }

    /// A keyset page of `view`: rows under `prefix`, after `after`, at most `limit`, decoded.
    pub(super) fn page<T>(
        &self,
        view: ViewTree,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
        decode: fn(&[u8], &[u8]) -> Result<T>,
    ) -> Result<Page<T>> {
        let start = layout::view_key(view, after.unwrap_or(prefix));
        let lower = if after.is_some() { Bound::Excluded(start) } else { Bound::Included(start) };
        let full_prefix = layout::view_key(view, prefix);
        let mut items = Vec::with_capacity(limit.min(128));
        for entry in self.tree.range::<Vec<u8>, _>((lower, Bound::Unbounded)) {
            let (key, value) = entry.map_err(storage)?;
            if !key.starts_with(&full_prefix) {
                break;
            }
            let key = key.get(2..).unwrap_or_default();
            if items.len() == limit {
                return Ok((items, true));
            }
            items.push(decode(key, &value)?);
        }
        Ok((items, false))
    }

    pub(super) fn rows(&self, view: ViewTree) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + '_ {
        self.rows_after(view, None)
    }

    /// How many records have keys starting with `prefix`.
    pub(super) fn count(&self, prefix: &[u8]) -> Result<u64> {
        let mut count = 0;
        for key in self.tree.scan_prefix(prefix).keys() {
            key.map_err(storage)?;
            count += 1;
        }
        Ok(count)
    }

    pub(super) fn counter(&self, key: &[u8]) -> Result<u64> {
        Ok(self.view_get(ViewTree::Counters, key)?.unwrap_or(0))
    }
}

/// Decodes a stored view row, naming the view and key if it does not decode.
pub(super) fn decode_row<T: serde::de::DeserializeOwned>(
    view: ViewTree,
    key: &[u8],
    value: &[u8],
) -> Result<T> {
    let shown = String::from_utf8_lossy(key).replace('\0', "/");
    codec::decode(format_args!("{}[{shown}]", view.name()), value)
}

pub(super) fn decode_user(key: &[u8], value: &[u8]) -> Result<User> {
    decode_row(ViewTree::Users, key, value)
}

pub(super) fn decode_kx_user(key: &[u8], value: &[u8]) -> Result<KxUser> {
    decode_row(ViewTree::KxUsers, key, value)
}

pub(super) fn decode_group(key: &[u8], value: &[u8]) -> Result<PermissionGroup> {
    decode_row(ViewTree::Groups, key, value)
}

/// The last part of a membership key: the user of a (group, user) key, the group of a (user,
/// group) one.
pub(super) fn decode_member(key: &[u8], _: &[u8]) -> Result<String> {
    let last = key.rsplit(|&b| b == 0).next().unwrap_or_default();
    String::from_utf8(last.to_vec()).map_err(|_| {
        Error::corrupt(format_args!("corrupt memberships: key {} is not UTF-8", String::from_utf8_lossy(key)))
    })
}

/// The seq of a log key, or the error naming the bad key.
pub(super) fn log_seq(key: &[u8]) -> Result<u64> {
    layout::seq_of_log_key(key)
        .ok_or_else(|| Error::corrupt(format_args!("corrupt log: key of {} bytes", key.len())))
}

impl State for SledBackend {
    fn user(&self, user_id: &str) -> Result<Option<User>> {
        self.view_get(ViewTree::Users, user_id.as_bytes())
    }

    fn email_owner(&self, email_key: &str) -> Result<Option<UserId>> {
        self.view_get(ViewTree::Emails, email_key.as_bytes())
    }

    fn enabled_users(&self) -> Result<u64> {
        self.counter(ENABLED_USERS)
    }

    fn kx_user(&self, environment_id: &str, user_name: &str) -> Result<Option<KxUser>> {
        self.view_get(ViewTree::KxUsers, &kx_key(environment_id, user_name))
    }

    fn kx_users_in(&self, environment_id: &str) -> Result<u64> {
        self.counter(&kx_count_key(environment_id))
    }

    fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>> {
        self.view_get(ViewTree::AccessKeys, access_key_id.as_bytes())
    }

    fn permission_group(&self, group: &str) -> Result<Option<PermissionGroup>> {
        self.view_get(ViewTree::Groups, group.as_bytes())
    }

    fn is_member(&self, group: &str, user: &str) -> Result<bool> {
        let [key, _] = membership_keys(group, user);
        self.tree.contains_key(layout::view_key(ViewTree::Memberships, &key)).map_err(storage)
    }

    fn groups_of(&self, user: &str) -> Result<Vec<String>> {
        Ok(self.groups_of_after(user, None, usize::MAX)?.0)
    }

    fn members_of(&self, group: &str) -> Result<Vec<UserId>> {
        Ok(self.members_after(group, None, usize::MAX)?.0)
    }

    fn password_hash(&self, user: &str) -> Result<Option<String>> {
        self.view_get(ViewTree::Passwords, user.as_bytes())
    }

    fn principal_key(&self, access_key_id: &str) -> Result<Option<PrincipalKey>> {
        self.view_get(ViewTree::PrincipalKeys, access_key_id.as_bytes())
    }

    fn temporary_credential(&self, access_key_id: &str) -> Result<Option<TemporaryCredential>> {
        self.view_get(ViewTree::TemporaryCredentials, access_key_id.as_bytes())
    }

    /// A scan of every user: the principal is rarely asked for, and kept in no index.
    fn users_with_principal(&self, principal_arn: &str) -> Result<Vec<User>> {
        let mut users = Vec::new();
        for row in self.rows(ViewTree::Users) {
            let (key, value) = row?;
            let user = decode_user(&key, &value)?;
            if user.api_access_principal_arn.as_deref() == Some(principal_arn) {
                users.push(user);
            }
        }
        Ok(users)
    }
}
