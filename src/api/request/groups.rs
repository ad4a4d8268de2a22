//! The permission group operations' requests and responses, and the group members' validation.

use serde::{Deserialize, Serialize};

use crate::api::validate::{self, GROUP_DESCRIPTION, GROUP_NAME, PERMISSION_GROUP_ID};
use crate::core::domain::{
    ApiAccess, ApplicationPermission, GroupChanges, MembershipStatus, NewGroup, PermissionGroup, User,
    UserStatus, UserType,
};
use crate::error::Result;

use super::users::validate_client_token;

/// CreatePermissionGroup (`POST /permission-group`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CreatePermissionGroupRequest {
    /// Required; 1..255, not blank.
    pub name: Option<String>,
    /// Optional; 1..4000.
    pub description: Option<String>,
    /// Required; values of ApplicationPermission.
    pub application_permissions: Option<Vec<String>>,
    /// Optional idempotency token.
    pub client_token: Option<String>,
}

impl CreatePermissionGroupRequest {
    /// A request with the two required members set.
    pub fn new(name: impl Into<String>, application_permissions: &[&str]) -> Self {
        CreatePermissionGroupRequest {
            name: Some(name.into()),
            application_permissions: Some(application_permissions.iter().map(|p| (*p).to_owned()).collect()),
            ..Default::default()
        }
    }

    /// Checks every member and returns the group to create.
    pub fn validate(&self) -> Result<NewGroup> {
        let name = validate::required("name", &GROUP_NAME, self.name.as_deref())?.to_owned();
        let description = validate::optional("description", &GROUP_DESCRIPTION, self.description.as_deref())?;
        let permissions =
            validate::present("applicationPermissions", self.application_permissions.as_deref())?;
        let application_permissions = validate_permissions(permissions)?;
        validate_client_token(self.client_token.as_deref())?;
        Ok(NewGroup { name, description, application_permissions })
    }
}

/// UpdatePermissionGroup (`PUT /permission-group/{permissionGroupId}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UpdatePermissionGroupRequest {
    /// Required; the path parameter.
    pub permission_group_id: Option<String>,
    /// Optional new name.
    pub name: Option<String>,
    /// Optional new description.
    pub description: Option<String>,
    /// Optional new permissions (the whole list).
    pub application_permissions: Option<Vec<String>>,
    /// Optional idempotency token.
    pub client_token: Option<String>,
}

impl UpdatePermissionGroupRequest {
    /// A request for group `permission_group_id` that changes nothing yet.
    pub fn new(permission_group_id: impl Into<String>) -> Self {
        UpdatePermissionGroupRequest {
            permission_group_id: Some(permission_group_id.into()),
            ..Default::default()
        }
    }

    /// Checks every member; returns the group's id and the fields to set.
    pub fn validate(&self) -> Result<(String, GroupChanges)> {
        let id = validate_permission_group_id(self.permission_group_id.as_deref())?;
        let changes = GroupChanges {
            name: validate::optional("name", &GROUP_NAME, self.name.as_deref())?,
            description: validate::optional("description", &GROUP_DESCRIPTION, self.description.as_deref())?,
            application_permissions: self
                .application_permissions
                .as_deref()
                .map(validate_permissions)
                .transpose()?,
        };
        validate_client_token(self.client_token.as_deref())?;
        Ok((id, changes))
    }
}

/// Parses `applicationPermissions`; a value given twice counts once, in first-given order.
fn validate_permissions(values: &[String]) -> Result<Vec<ApplicationPermission>> {
    let mut permissions = Vec::with_capacity(values.len());
    for value in values {
        let permission = ApplicationPermission::parse("applicationPermissions", value)?;
        if !permissions.contains(&permission) {
            permissions.push(permission);
        }
    }
    Ok(permissions)
}

/// Checks the `permissionGroupId` member.
pub fn validate_permission_group_id(id: Option<&str>) -> Result<String> {
    validate::required("permissionGroupId", &PERMISSION_GROUP_ID, id).map(str::to_owned)
}

/// The response of Create, Update and DeletePermissionGroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionGroupIdResponse {
    /// The group the request was about.
    pub permission_group_id: String,
}

/// The response of GetPermissionGroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetPermissionGroupResponse {
    /// The group.
    pub permission_group: PermissionGroup,
}

/// The response of ListPermissionGroups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPermissionGroupsResponse {
    /// Up to maxResults groups, in id order.
    pub permission_groups: Vec<PermissionGroup>,
    /// Present when more groups follow.
    pub next_token: Option<String>,
}

/// One group in a ListPermissionGroupsByUser response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionGroupByUser {
    /// The group's id.
    pub permission_group_id: String,
    /// Its name.
    pub name: String,
    /// Always ADDITION_SUCCESS: memberships are synchronous.
    pub membership_status: MembershipStatus,
}

/// The response of ListPermissionGroupsByUser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPermissionGroupsByUserResponse {
    /// Up to maxResults groups of the user, in id order.
    pub permission_groups: Vec<PermissionGroupByUser>,
    /// Present when more groups follow.
    pub next_token: Option<String>,
}

/// One user in a ListUsersByPermissionGroup response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserByPermissionGroup {
    /// The user's id.
    pub user_id: String,
    /// ENABLED or DISABLED.
    pub status: UserStatus,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Email address.
    pub email_address: String,
    /// SUPER_USER or APP_USER.
    #[serde(rename = "type")]
    pub user_type: UserType,
    /// Programmatic access.
    pub api_access: Option<ApiAccess>,
    /// IAM role allowed to obtain credentials for the user.
    pub api_access_principal_arn: Option<String>,
    /// Always ADDITION_SUCCESS: memberships are synchronous.
    pub membership_status: MembershipStatus,
}

impl From<User> for UserByPermissionGroup {
    fn from(user: User) -> Self {
        UserByPermissionGroup {
            user_id: user.user_id,
            status: user.status,
            first_name: user.first_name,
            last_name: user.last_name,
            email_address: user.email_address,
            user_type: user.user_type,
            api_access: user.api_access,
            api_access_principal_arn: user.api_access_principal_arn,
            membership_status: MembershipStatus::AdditionSuccess,
        }
    }
}

/// The response of ListUsersByPermissionGroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListUsersByPermissionGroupResponse {
    /// Up to maxResults members, in userId order.
    pub users: Vec<UserByPermissionGroup>,
    /// Present when more members follow.
    pub next_token: Option<String>,
}
