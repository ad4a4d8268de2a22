//! Requests and responses of the operations, in their wire shapes, and their validation.
//!
//! Members arrive as raw strings so that a bad enum or a missing member becomes a
//! ValidationException naming the member, not a deserialization error.

use serde::{Deserialize, Serialize};

use crate::api::validate::{
    self, CLIENT_TOKEN, ENVIRONMENT_ID, GROUP_DESCRIPTION, GROUP_NAME, KX_CLIENT_TOKEN, KX_USER_NAME, NAME,
    PERMISSION_GROUP_ID, ROLE_ARN, USER_ID,
};
use crate::core::domain::{
    ApiAccess, ApplicationPermission, GroupChanges, KxUser, MembershipStatus, NewGroup, NewUser,
    PermissionGroup, Tags, User, UserChanges, UserStatus, UserType,
};
use crate::error::Result;

/// CreateUser (`POST /user`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CreateUserRequest {
    /// Required; unique case-insensitively.
    pub email_address: Option<String>,
    /// Required; SUPER_USER or APP_USER.
    #[serde(rename = "type")]
    pub user_type: Option<String>,
    /// Optional given name.
    pub first_name: Option<String>,
    /// Optional family name.
    pub last_name: Option<String>,
    /// Optional ENABLED or DISABLED; the older wire spelling `ApiAccess` is accepted too.
    #[serde(alias = "ApiAccess")]
    pub api_access: Option<String>,
    /// Optional IAM role ARN.
    pub api_access_principal_arn: Option<String>,
    /// Optional idempotency token.
    pub client_token: Option<String>,
}

impl CreateUserRequest {
    /// A request with the two required members set.
    pub fn new(email_address: impl Into<String>, user_type: impl Into<String>) -> Self {
        CreateUserRequest {
            email_address: Some(email_address.into()),
            user_type: Some(user_type.into()),
            ..Default::default()
        }
    }

    /// Checks every member and returns the profile to create.
    pub fn validate(&self) -> Result<NewUser> {
        let email_address = validate::email("emailAddress", self.email_address.as_deref())?;
        let user_type = UserType::parse("type", validate::present("type", self.user_type.as_deref())?)?;
        let profile = validate_profile(
            &self.first_name,
            &self.last_name,
            &self.api_access,
            &self.api_access_principal_arn,
            &self.client_token,
        )?;
        Ok(NewUser {
            email_address,
            user_type,
            first_name: profile.first_name,
            last_name: profile.last_name,
            api_access: profile.api_access,
            api_access_principal_arn: profile.api_access_principal_arn,
        })
    }
}

/// UpdateUser (`PUT /user/{userId}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UpdateUserRequest {
    /// Required; the path parameter.
    pub user_id: Option<String>,
    /// Optional new type.
    #[serde(rename = "type")]
    pub user_type: Option<String>,
    /// Optional new given name.
    pub first_name: Option<String>,
    /// Optional new family name.
    pub last_name: Option<String>,
    /// Optional new ENABLED or DISABLED.
    #[serde(alias = "ApiAccess")]
    pub api_access: Option<String>,
    /// Optional new IAM role ARN.
    pub api_access_principal_arn: Option<String>,
    /// Optional idempotency token.
    pub client_token: Option<String>,
}

impl UpdateUserRequest {
    /// A request for `user_id` that changes nothing yet.
    pub fn new(user_id: impl Into<String>) -> Self {
        UpdateUserRequest { user_id: Some(user_id.into()), ..Default::default() }
    }

    /// Checks every member and returns the user id and the fields to set.
    pub fn validate(&self) -> Result<(String, UserChanges)> {
        let user_id = validate_user_id(self.user_id.as_deref())?;
        let mut changes = validate_profile(
            &self.first_name,
            &self.last_name,
            &self.api_access,
            &self.api_access_principal_arn,
            &self.client_token,
        )?;
        changes.user_type = self.user_type.as_deref().map(|t| UserType::parse("type", t)).transpose()?;
        Ok((user_id, changes))
    }
}

/// The optional profile members CreateUser and UpdateUser share, and the clientToken.
fn validate_profile(
    first_name: &Option<String>,
    last_name: &Option<String>,
    api_access: &Option<String>,
    api_access_principal_arn: &Option<String>,
    client_token: &Option<String>,
) -> Result<UserChanges> {
    validate_client_token(client_token.as_deref())?;
    Ok(UserChanges {
        user_type: None,
        first_name: validate::optional("firstName", &NAME, first_name.as_deref())?,
        last_name: validate::optional("lastName", &NAME, last_name.as_deref())?,
        api_access: api_access.as_deref().map(|a| ApiAccess::parse("apiAccess", a)).transpose()?,
        api_access_principal_arn: validate::optional(
            "apiAccessPrincipalArn",
            &ROLE_ARN,
            api_access_principal_arn.as_deref(),
        )?,
    })
}

/// Checks the `userId` member (path parameter of Get/Update/Enable/Disable).
pub fn validate_user_id(user_id: Option<&str>) -> Result<String> {
    validate::required("userId", &USER_ID, user_id).map(str::to_owned)
}

/// Checks an optional finspace-data `clientToken` member.
pub fn validate_client_token(token: Option<&str>) -> Result<Option<String>> {
    validate::optional("clientToken", &CLIENT_TOKEN, token)
}

/// The response of CreateUser, UpdateUser, EnableUser and DisableUser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdResponse {
    /// The user the request was about.
    pub user_id: String,
}

/// The response of ListUsers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListUsersResponse {
    /// Up to maxResults users, in userId order.
    pub users: Vec<User>,
    /// Present when more users follow; pass it back to get them.
    pub next_token: Option<String>,
}

/// CreateKxUser (`POST /kx/environments/{environmentId}/users`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CreateKxUserRequest {
    /// Required; the path parameter.
    pub environment_id: Option<String>,
    /// Required; unique within the environment.
    pub user_name: Option<String>,
    /// Required; the IAM role the user assumes.
    pub iam_role: Option<String>,
    /// Optional; 1..50 entries.
    pub tags: Option<Tags>,
    /// Optional idempotency token (1..36).
    pub client_token: Option<String>,
}

impl CreateKxUserRequest {
    /// A request with the three required members set.
    pub fn new(
        environment_id: impl Into<String>,
        user_name: impl Into<String>,
        iam_role: impl Into<String>,
    ) -> Self {
        CreateKxUserRequest {
            environment_id: Some(environment_id.into()),
            user_name: Some(user_name.into()),
            iam_role: Some(iam_role.into()),
            ..Default::default()
        }
    }

    /// Checks every member; returns (environmentId, userName, iamRole, tags).
    pub fn validate(&self) -> Result<(String, String, String, Tags)> {
        let (environment_id, user_name) =
            validate_kx_user_path(self.environment_id.as_deref(), self.user_name.as_deref())?;
        let iam_role = validate::required("iamRole", &ROLE_ARN, self.iam_role.as_deref())?.to_owned();
        if let Some(tags) = &self.tags {
            validate::tags("tags", tags)?;
        }
        validate_kx_client_token(self.client_token.as_deref())?;
        Ok((environment_id, user_name, iam_role, self.tags.clone().unwrap_or_default()))
    }
}

/// UpdateKxUser (`PUT /kx/environments/{environmentId}/users/{userName}`): changes the IAM role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UpdateKxUserRequest {
    /// Required; the path parameter.
    pub environment_id: Option<String>,
    /// Required; the path parameter.
    pub user_name: Option<String>,
    /// Required; the new IAM role.
    pub iam_role: Option<String>,
    /// Optional idempotency token (1..36).
    pub client_token: Option<String>,
}

impl UpdateKxUserRequest {
    /// A request with the three required members set.
    pub fn new(
        environment_id: impl Into<String>,
        user_name: impl Into<String>,
        iam_role: impl Into<String>,
    ) -> Self {
        UpdateKxUserRequest {
            environment_id: Some(environment_id.into()),
            user_name: Some(user_name.into()),
            iam_role: Some(iam_role.into()),
            client_token: None,
        }
    }

    /// Checks every member; returns (environmentId, userName, iamRole).
    pub fn validate(&self) -> Result<(String, String, String)> {
        let (environment_id, user_name) =
            validate_kx_user_path(self.environment_id.as_deref(), self.user_name.as_deref())?;
        let iam_role = validate::required("iamRole", &ROLE_ARN, self.iam_role.as_deref())?.to_owned();
        validate_kx_client_token(self.client_token.as_deref())?;
        Ok((environment_id, user_name, iam_role))
    }
}

/// Checks the `environmentId` member of the kdb operations.
pub fn validate_environment_id(environment_id: Option<&str>) -> Result<String> {
    validate::required("environmentId", &ENVIRONMENT_ID, environment_id).map(str::to_owned)
}

/// Checks the `environmentId` and `userName` members that name a kdb user.
pub fn validate_kx_user_path(
    environment_id: Option<&str>,
    user_name: Option<&str>,
) -> Result<(String, String)> {
    let environment_id = validate_environment_id(environment_id)?;
    let user_name = validate::required("userName", &KX_USER_NAME, user_name)?.to_owned();
    Ok((environment_id, user_name))
}

/// Checks an optional finspace (kdb) `clientToken` member: 1..36, not blank.
pub fn validate_kx_client_token(token: Option<&str>) -> Result<Option<String>> {
    validate::optional("clientToken", &KX_CLIENT_TOKEN, token)
}

/// The response of CreateKxUser, GetKxUser and UpdateKxUser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KxUserResponse {
    /// The environment.
    pub environment_id: String,
    /// The user's name.
    pub user_name: String,
    /// `arn:aws:finspace:{region}:{account}:kxEnvironment/{environmentId}/kxUser/{userName}`.
    pub user_arn: String,
    /// The IAM role.
    pub iam_role: String,
}

/// The (empty) response of DeleteKxUser.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteKxUserResponse {}

/// One user in a ListKxUsers response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KxUserSummary {
    /// The user's ARN.
    pub user_arn: String,
    /// The user's name.
    pub user_name: String,
    /// The IAM role.
    pub iam_role: String,
    /// Creation time, epoch seconds (with fraction), as the `finspace` model's timestamps.
    pub create_timestamp: f64,
    /// Time of the latest change, epoch seconds (with fraction).
    pub update_timestamp: f64,
}

impl KxUserSummary {
    /// The summary of `user`, whose ARN is `user_arn`.
    pub fn new(user: KxUser, user_arn: String) -> Self {
        KxUserSummary {
            user_arn,
            user_name: user.user_name,
            iam_role: user.iam_role,
            create_timestamp: user.create_time as f64 / 1000.0,
            update_timestamp: user.update_time as f64 / 1000.0,
        }
    }
}

/// The response of ListKxUsers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListKxUsersResponse {
    /// Up to maxResults users of the environment, in userName order.
    pub users: Vec<KxUserSummary>,
    /// Present when more users follow.
    pub next_token: Option<String>,
}

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

/// The response of ResetUserPassword.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResetUserPasswordResponse {
    /// The user.
    pub user_id: String,
    /// The new temporary password: shown only in this response.
    pub temporary_password: String,
}

impl std::fmt::Debug for ResetUserPasswordResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetUserPasswordResponse").field("user_id", &self.user_id).finish_non_exhaustive()
    }
}

/// Temporary credentials in a GetProgrammaticAccessCredentials response.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemporaryCredentials {
    /// The temporary key's id.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
    /// The session token to send as `x-amz-security-token`.
    pub session_token: String,
}

impl std::fmt::Debug for TemporaryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemporaryCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The response of GetProgrammaticAccessCredentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgrammaticCredentials {
    /// The credentials.
    pub credentials: TemporaryCredentials,
    /// How long they are valid.
    pub duration_in_minutes: i64,
}
