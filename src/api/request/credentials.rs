//! What ResetUserPassword and GetProgrammaticAccessCredentials answer.

use serde::{Deserialize, Serialize};

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
