//! The FinSpace user operations' requests and responses, and the user members' validation.

use serde::{Deserialize, Serialize};

use crate::api::validate::{self, CLIENT_TOKEN, NAME, ROLE_ARN, USER_ID};
use crate::core::domain::{ApiAccess, NewUser, User, UserChanges, UserType};
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
