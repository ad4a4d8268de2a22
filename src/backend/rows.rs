//! The paged listings of a row store (sled, PostgreSQL), written once for both: keyset pages of
//! the canonical rows [`crate::views::store`] reads.

use crate::backend::{Listings, Page};
use crate::core::domain::{AccessKey, KxUser, PermissionGroup, PrincipalKey, User, UserId};
use crate::error::Result;
use crate::views::store::{all, decode_row, memberships_after, page, RowStore};
use crate::views::{kx_key, ViewTree};

/// The paged listings, for every row store.
impl<S: RowStore + ?Sized> Listings for S {
    fn users_after(&self, after: Option<&str>, limit: usize) -> Result<Page<User>> {
        page(self, ViewTree::Users, &[], after.map(str::as_bytes), limit, |k, v| {
            decode_row(ViewTree::Users, k, v)
        })
    }

    fn kx_users_after(
        &self,
        environment_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<KxUser>> {
        let prefix = kx_key(environment_id, "");
        let after = after.map(|name| kx_key(environment_id, name));
        page(self, ViewTree::KxUsers, &prefix, after.as_deref(), limit, |k, v| {
            decode_row(ViewTree::KxUsers, k, v)
        })
    }

    fn groups_after(&self, after: Option<&str>, limit: usize) -> Result<Page<PermissionGroup>> {
        page(self, ViewTree::Groups, &[], after.map(str::as_bytes), limit, |k, v| {
            decode_row(ViewTree::Groups, k, v)
        })
    }

    fn members_after(&self, group: &str, after: Option<&str>, limit: usize) -> Result<Page<UserId>> {
        memberships_after(self, false, group, after, limit)
    }

    fn groups_of_after(&self, user: &str, after: Option<&str>, limit: usize) -> Result<Page<String>> {
        memberships_after(self, true, user, after, limit)
    }

    fn access_keys(&self) -> Result<Vec<AccessKey>> {
        all(self, ViewTree::AccessKeys)
    }

    fn principal_keys(&self) -> Result<Vec<PrincipalKey>> {
        all(self, ViewTree::PrincipalKeys)
    }
}
