//! The API's write operations as one type: what a host hands the ledger without waiting
//! ([`crate::Ledger::write_then`]), and the answer it gets back.

use serde::Serialize;

use crate::api::request::{
    validate_client_token, validate_kx_client_token, validate_kx_user_path, validate_permission_group_id,
    validate_user_id, CreateKxUserRequest, CreatePermissionGroupRequest, CreateUserRequest,
    DeleteKxUserResponse, KxUserResponse, PermissionGroupIdResponse, UpdateKxUserRequest,
    UpdatePermissionGroupRequest, UpdateUserRequest, UserIdResponse,
};
use crate::core::domain::Identity;
use crate::core::idempotency::Response;
use crate::core::Command;
use crate::error::{Error, Result};

/// A write operation with its request.
#[derive(Debug, Clone, Copy)]
pub enum Write<'a> {
    /// CreateUser.
    CreateUser(&'a CreateUserRequest),
    /// UpdateUser.
    UpdateUser(&'a UpdateUserRequest),
    /// EnableUser.
    EnableUser {
        /// The user.
        user_id: &'a str,
        /// Optional idempotency token.
        client_token: Option<&'a str>,
    },
    /// DisableUser.
    DisableUser {
        /// The user.
        user_id: &'a str,
        /// Optional idempotency token.
        client_token: Option<&'a str>,
    },
    /// CreateKxUser.
    CreateKxUser(&'a CreateKxUserRequest),
    /// UpdateKxUser.
    UpdateKxUser(&'a UpdateKxUserRequest),
    /// DeleteKxUser.
    DeleteKxUser {
        /// The environment.
        environment_id: &'a str,
        /// The user's name.
        user_name: &'a str,
        /// Optional idempotency token.
        client_token: Option<&'a str>,
    },
    /// CreatePermissionGroup.
    CreatePermissionGroup(&'a CreatePermissionGroupRequest),
    /// UpdatePermissionGroup.
    UpdatePermissionGroup(&'a UpdatePermissionGroupRequest),
    /// DeletePermissionGroup.
    DeletePermissionGroup {
        /// The group.
        permission_group_id: &'a str,
        /// Optional idempotency token.
        client_token: Option<&'a str>,
    },
    /// AssociateUserToPermissionGroup.
    AssociateUserToPermissionGroup {
        /// The group.
        permission_group_id: &'a str,
        /// The user.
        user_id: &'a str,
        /// Optional idempotency token.
        client_token: Option<&'a str>,
    },
    /// DisassociateUserFromPermissionGroup.
    DisassociateUserFromPermissionGroup {
        /// The group.
        permission_group_id: &'a str,
        /// The user.
        user_id: &'a str,
        /// Optional idempotency token.
        client_token: Option<&'a str>,
    },
}

/// The answer of a [`Write`], in the operation's response shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Written {
    /// CreateUser, UpdateUser, EnableUser, DisableUser.
    UserId(UserIdResponse),
    /// CreateKxUser, UpdateKxUser.
    KxUser(KxUserResponse),
    /// `{}`: DeleteKxUser, AssociateUserToPermissionGroup, DisassociateUserFromPermissionGroup.
    Empty(DeleteKxUserResponse),
    /// CreatePermissionGroup, UpdatePermissionGroup, DeletePermissionGroup.
    PermissionGroupId(PermissionGroupIdResponse),
}

impl Write<'_> {
    /// Checks every member; returns the clientToken and the command to decide.
    pub(crate) fn command(&self) -> Result<(Option<String>, Command)> {
        let owned = |token: Option<&str>| token.map(str::to_owned);
        Ok(match *self {
            Write::CreateUser(request) => {
                let user = request.validate()?;
                let user_id = ulid::Ulid::generate().to_string();
                (request.client_token.clone(), Command::CreateUser { user_id, user, sealed: None })
            }
            Write::UpdateUser(request) => {
                let (user_id, changes) = request.validate()?;
                (request.client_token.clone(), Command::UpdateUser { user_id, changes, sealed: None })
            }
            Write::EnableUser { user_id, client_token } => {
                let user_id = validate_user_id(Some(user_id))?;
                validate_client_token(client_token)?;
                (owned(client_token), Command::EnableUser { user_id })
            }
            Write::DisableUser { user_id, client_token } => {
                let user_id = validate_user_id(Some(user_id))?;
                validate_client_token(client_token)?;
                (owned(client_token), Command::DisableUser { user_id })
            }
            Write::CreateKxUser(request) => {
                let (environment_id, user_name, iam_role, tags) = request.validate()?;
                (
                    request.client_token.clone(),
                    Command::CreateKxUser { environment_id, user_name, iam_role, tags },
                )
            }
            Write::UpdateKxUser(request) => {
                let (environment_id, user_name, iam_role) = request.validate()?;
                (request.client_token.clone(), Command::UpdateKxUser { environment_id, user_name, iam_role })
            }
            Write::DeleteKxUser { environment_id, user_name, client_token } => {
                let (environment_id, user_name) =
                    validate_kx_user_path(Some(environment_id), Some(user_name))?;
                validate_kx_client_token(client_token)?;
                (owned(client_token), Command::DeleteKxUser { environment_id, user_name })
            }
            Write::CreatePermissionGroup(request) => {
                let group = request.validate()?;
                let permission_group_id = ulid::Ulid::generate().to_string();
                (request.client_token.clone(), Command::CreatePermissionGroup { permission_group_id, group })
            }
            Write::UpdatePermissionGroup(request) => {
                let (permission_group_id, changes) = request.validate()?;
                (
                    request.client_token.clone(),
                    Command::UpdatePermissionGroup { permission_group_id, changes },
                )
            }
            Write::DeletePermissionGroup { permission_group_id, client_token } => {
                let permission_group_id = validate_permission_group_id(Some(permission_group_id))?;
                validate_client_token(client_token)?;
                (owned(client_token), Command::DeletePermissionGroup { permission_group_id })
            }
            Write::AssociateUserToPermissionGroup { permission_group_id, user_id, client_token } => {
                let (permission_group_id, user_id) =
                    validate_membership(permission_group_id, user_id, client_token)?;
                (
                    owned(client_token),
                    Command::AssociateUserToPermissionGroup { permission_group_id, user_id },
                )
            }
            Write::DisassociateUserFromPermissionGroup { permission_group_id, user_id, client_token } => {
                let (permission_group_id, user_id) =
                    validate_membership(permission_group_id, user_id, client_token)?;
                (
                    owned(client_token),
                    Command::DisassociateUserFromPermissionGroup { permission_group_id, user_id },
                )
            }
        })
    }
}

/// Checks the members of a membership change.
fn validate_membership(group: &str, user: &str, client_token: Option<&str>) -> Result<(String, String)> {
    let group = validate_permission_group_id(Some(group))?;
    let user = validate_user_id(Some(user))?;
    validate_client_token(client_token)?;
    Ok((group, user))
}

/// The answer for a stored or new `response`; kdb users get their ARN from `identity`.
pub fn written(identity: &Identity, response: Response) -> Result<Written> {
    match response {
        Response::UserId(user_id) => Ok(Written::UserId(UserIdResponse { user_id })),
        Response::KxUser { environment_id, user_name, iam_role } => Ok(Written::KxUser(KxUserResponse {
            user_arn: identity.kx_user_arn(&environment_id, &user_name),
            environment_id,
            user_name,
            iam_role,
        })),
        Response::Empty => Ok(Written::Empty(DeleteKxUserResponse {})),
        Response::PermissionGroupId(permission_group_id) => {
            Ok(Written::PermissionGroupId(PermissionGroupIdResponse { permission_group_id }))
        }
        other => Err(unexpected(other)),
    }
}

/// A stored response of another operation's shape: only a corrupt token record can cause it.
pub fn unexpected(response: impl std::fmt::Debug) -> Error {
    Error::corrupt(format_args!("corrupt tokens: a stored response {response:?} does not fit the operation"))
}
