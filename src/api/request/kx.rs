//! The kdb user operations' requests and responses, and the kdb members' validation.

use serde::{Deserialize, Serialize};

use crate::api::validate::{self, ENVIRONMENT_ID, KX_CLIENT_TOKEN, KX_USER_NAME, ROLE_ARN};
use crate::core::domain::{KxUser, Tags};
use crate::error::Result;

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
