//! The permission group operations of the ledger: groups, memberships, and the listings of both.

use super::Ledger;
use crate::api::request::{
    validate_permission_group_id, validate_user_id, CreatePermissionGroupRequest, DeleteKxUserResponse,
    GetPermissionGroupResponse, ListPermissionGroupsByUserResponse, ListPermissionGroupsResponse,
    ListUsersByPermissionGroupResponse, PermissionGroupByUser, PermissionGroupIdResponse,
    UpdatePermissionGroupRequest, UserByPermissionGroup,
};
use crate::api::validate;
use crate::api::write_op::{unexpected, Write, Written};
use crate::backend::Listings;
use crate::core::domain::{Caller, MembershipStatus};
use crate::core::State;
use crate::error::{Error, Result};

const GROUPS_SCOPE: &str = "groups";

impl Ledger {
    /// CreatePermissionGroup: a new group; returns its id.
    pub fn create_permission_group(
        &self,
        caller: &Caller,
        request: &CreatePermissionGroupRequest,
    ) -> Result<PermissionGroupIdResponse> {
        self.write(caller, Write::CreatePermissionGroup(request)).and_then(group_id_response)
    }

    /// UpdatePermissionGroup: sets the given fields; a request that changes nothing appends nothing.
    pub fn update_permission_group(
        &self,
        caller: &Caller,
        request: &UpdatePermissionGroupRequest,
    ) -> Result<PermissionGroupIdResponse> {
        self.write(caller, Write::UpdatePermissionGroup(request)).and_then(group_id_response)
    }

    /// DeletePermissionGroup: the group and its memberships end; its history stays in the log.
    pub fn delete_permission_group(
        &self,
        caller: &Caller,
        permission_group_id: &str,
        client_token: Option<&str>,
    ) -> Result<PermissionGroupIdResponse> {
        self.write(caller, Write::DeletePermissionGroup { permission_group_id, client_token })
            .and_then(group_id_response)
    }

    /// AssociateUserToPermissionGroup; adding a member already in appends nothing.
    pub fn associate_user_to_permission_group(
        &self,
        caller: &Caller,
        permission_group_id: &str,
        user_id: &str,
        client_token: Option<&str>,
    ) -> Result<DeleteKxUserResponse> {
        let write = Write::AssociateUserToPermissionGroup { permission_group_id, user_id, client_token };
        self.write(caller, write).and_then(empty_response)
    }

    /// DisassociateUserFromPermissionGroup; removing a user that is not a member appends nothing.
    pub fn disassociate_user_from_permission_group(
        &self,
        caller: &Caller,
        permission_group_id: &str,
        user_id: &str,
        client_token: Option<&str>,
    ) -> Result<DeleteKxUserResponse> {
        let write = Write::DisassociateUserFromPermissionGroup { permission_group_id, user_id, client_token };
        self.write(caller, write).and_then(empty_response)
    }

    /// GetPermissionGroup.
    pub fn get_permission_group(
        &self,
        caller: &Caller,
        permission_group_id: &str,
    ) -> Result<GetPermissionGroupResponse> {
        let id = validate_permission_group_id(Some(permission_group_id))?;
        let group = self.read(caller, |store| State::permission_group(store, &id))?;
        let permission_group = group.ok_or_else(|| not_found(&id))?;
        Ok(GetPermissionGroupResponse { permission_group })
    }

    /// ListPermissionGroups: up to `max_results` (required, 1..100) groups in id order.
    pub fn list_permission_groups(
        &self,
        caller: &Caller,
        max_results: Option<i64>,
        next_token: Option<&str>,
    ) -> Result<ListPermissionGroupsResponse> {
        let max = page_size(max_results)?;
        let after = self.page_after(GROUPS_SCOPE, next_token)?;
        let (groups, more) = self.read(caller, |store| store.groups_after(after.as_deref(), max))?;
        let next_token =
            self.next_page(GROUPS_SCOPE, groups.last().map(|g| g.permission_group_id.as_str()), more)?;
        Ok(ListPermissionGroupsResponse { permission_groups: groups, next_token })
    }

    /// ListPermissionGroupsByUser: the groups `user_id` is a member of, in id order.
    pub fn list_permission_groups_by_user(
        &self,
        caller: &Caller,
        user_id: &str,
        max_results: Option<i64>,
        next_token: Option<&str>,
    ) -> Result<ListPermissionGroupsByUserResponse> {
        let user_id = validate_user_id(Some(user_id))?;
        let max = page_size(max_results)?;
        let scope = format!("groups-of/{user_id}");
        let after = self.page_after(&scope, next_token)?;
        let (groups, more) = self.read(caller, |store| {
            if State::user(store, &user_id)?.is_none() {
                return Err(Error::ResourceNotFound { message: format!("User {user_id} does not exist") });
            }
            let (ids, more) = store.groups_of_after(&user_id, after.as_deref(), max)?;
            let mut groups = Vec::with_capacity(ids.len());
            for id in ids {
                let group = State::permission_group(store, &id)?.ok_or_else(|| {
                    Error::corrupt(format_args!(
                        "corrupt memberships: user {user_id} is in group {id}, which does not exist"
                    ))
                })?;
                groups.push(PermissionGroupByUser {
                    permission_group_id: group.permission_group_id,
                    name: group.name,
                    membership_status: MembershipStatus::AdditionSuccess,
                });
            }
            Ok((groups, more))
        })?;
        let next_token =
            self.next_page(&scope, groups.last().map(|g| g.permission_group_id.as_str()), more)?;
        Ok(ListPermissionGroupsByUserResponse { permission_groups: groups, next_token })
    }

    /// ListUsersByPermissionGroup: the members of a group, in userId order.
    pub fn list_users_by_permission_group(
        &self,
        caller: &Caller,
        permission_group_id: &str,
        max_results: Option<i64>,
        next_token: Option<&str>,
    ) -> Result<ListUsersByPermissionGroupResponse> {
        let id = validate_permission_group_id(Some(permission_group_id))?;
        let max = page_size(max_results)?;
        let scope = format!("members/{id}");
        let after = self.page_after(&scope, next_token)?;
        let (users, more) = self.read(caller, |store| {
            if State::permission_group(store, &id)?.is_none() {
                return Err(not_found(&id));
            }
            let (ids, more) = store.members_after(&id, after.as_deref(), max)?;
            let mut users = Vec::with_capacity(ids.len());
            for user_id in ids {
                let user = State::user(store, &user_id)?.ok_or_else(|| {
                    Error::corrupt(format_args!(
                        "corrupt memberships: group {id} has user {user_id}, who does not exist"
                    ))
                })?;
                users.push(UserByPermissionGroup::from(self.open_user(store, user)?));
            }
            Ok((users, more))
        })?;
        let next_token = self.next_page(&scope, users.last().map(|u| u.user_id.as_str()), more)?;
        Ok(ListUsersByPermissionGroupResponse { users, next_token })
    }

    /// The key a page token of `scope` resumes after.
    fn page_after(&self, scope: &str, next_token: Option<&str>) -> Result<Option<String>> {
        let Some(token) = next_token else { return Ok(None) };
        self.open_page(scope, "nextToken", token).map(Some)
    }

    /// A token for the page after `last`, when more follow.
    fn next_page(&self, scope: &str, last: Option<&str>, more: bool) -> Result<Option<String>> {
        last.filter(|_| more).map(|last| self.issue_page(scope, last.as_bytes())).transpose()
    }
}

fn page_size(max_results: Option<i64>) -> Result<usize> {
    let max = validate::in_range("maxResults", 1, 100, validate::present("maxResults", max_results)?)?;
    Ok(max as usize)
}

fn not_found(group: &str) -> Error {
    Error::ResourceNotFound { message: format!("Permission group {group} does not exist") }
}

fn group_id_response(written: Written) -> Result<PermissionGroupIdResponse> {
    match written {
        Written::PermissionGroupId(response) => Ok(response),
        other => Err(unexpected(other)),
    }
}

fn empty_response(written: Written) -> Result<DeleteKxUserResponse> {
    match written {
        Written::Empty(response) => Ok(response),
        other => Err(unexpected(other)),
    }
}
