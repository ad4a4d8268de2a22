//! The command catalogue: every request that may change state, as the core decides it, with the
//! API operation it belongs to and the access it needs; and the quotas decisions respect.

use crate::core::authorize::Access;
use crate::core::domain::{GroupChanges, NewGroup, NewUser, Tags, UserChanges, UserId};
use crate::core::personal::SealedUser;

/// A validated request that may change state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// CreateUser; the id is chosen by the caller of `decide` so that `decide` stays pure.
    CreateUser {
        /// The id the new user gets.
        user_id: UserId,
        /// Its profile, in the clear (what the request asked; its fingerprint).
        user: NewUser,
        /// The same, its personal fields sealed: what the event records (`None`: the clear
        /// profile is recorded, as before personal data was sealed).
        sealed: Option<SealedUser>,
    },
    /// UpdateUser.
    UpdateUser {
        /// The user.
        user_id: UserId,
        /// The fields to set, in the clear (what the request asked; its fingerprint).
        changes: UserChanges,
        /// The same, the names sealed under the user's person key (`None` for a user created
        /// before personal data was sealed).
        sealed: Option<UserChanges>,
    },
    /// EnableUser.
    EnableUser {
        /// The user.
        user_id: UserId,
    },
    /// DisableUser.
    DisableUser {
        /// The user.
        user_id: UserId,
    },
    /// CreateKxUser.
    CreateKxUser {
        /// The environment.
        environment_id: String,
        /// The new user's name.
        user_name: String,
        /// Its IAM role.
        iam_role: String,
        /// Its tags.
        tags: Tags,
    },
    /// UpdateKxUser: only the IAM role changes.
    UpdateKxUser {
        /// The environment.
        environment_id: String,
        /// The user's name.
        user_name: String,
        /// The new IAM role.
        iam_role: String,
    },
    /// DeleteKxUser.
    DeleteKxUser {
        /// The environment.
        environment_id: String,
        /// The user's name.
        user_name: String,
    },
    /// Issue an access key to a user; the id is chosen by the caller of `decide`.
    CreateAccessKey {
        /// The new key's id.
        access_key_id: String,
        /// The user it signs for.
        user_id: UserId,
    },
    /// Delete an access key.
    DeleteAccessKey {
        /// The key's id.
        access_key_id: String,
    },
    /// CreatePermissionGroup; the id is chosen by the caller of `decide`.
    CreatePermissionGroup {
        /// The new group's id.
        permission_group_id: String,
        /// What it is created with.
        group: NewGroup,
    },
    /// UpdatePermissionGroup.
    UpdatePermissionGroup {
        /// The group.
        permission_group_id: String,
        /// The fields to set.
        changes: GroupChanges,
    },
    /// DeletePermissionGroup.
    DeletePermissionGroup {
        /// The group.
        permission_group_id: String,
    },
    /// AssociateUserToPermissionGroup.
    AssociateUserToPermissionGroup {
        /// The group.
        permission_group_id: String,
        /// The user.
        user_id: UserId,
    },
    /// DisassociateUserFromPermissionGroup.
    DisassociateUserFromPermissionGroup {
        /// The group.
        permission_group_id: String,
        /// The user.
        user_id: UserId,
    },
    /// ResetUserPassword; the temporary password is drawn, hashed and sealed by the caller of
    /// `decide`.
    ResetUserPassword {
        /// The user.
        user_id: UserId,
        /// The salted argon2id hash of the new temporary password, sealed (see `seal`): what the
        /// PasswordReset event records.
        password_hash: String,
        /// The temporary password itself, sealed: kept in the token record only, for a retry.
        sealed_password: Vec<u8>,
    },
    /// Record a sign-in whose password was checked (sets lastLoginTime).
    SignIn {
        /// The user.
        user_id: UserId,
    },
    /// Erase a user's personal data: its person key is destroyed in the same commit.
    EraseUser {
        /// The user.
        user_id: UserId,
        /// The access keys and temporary credentials the user was issued, as its history names
        /// them (read by the caller of `decide`, so that no decision scans every key): those
        /// still held end with the erasure.
        issued: Vec<String>,
    },
    /// Record that an operator cleared a user's failed sign-ins.
    ClearSignInLockout {
        /// The user.
        user_id: UserId,
    },
    /// Issue an access key standing for an IAM principal.
    CreatePrincipalKey {
        /// The new key's id.
        access_key_id: String,
        /// The principal's ARN.
        principal_arn: String,
    },
    /// GetProgrammaticAccessCredentials, by a principal (the caller).
    IssueCredentials {
        /// The temporary key's id, chosen by the caller of `decide`.
        access_key_id: String,
        /// Epoch ms after which they are refused.
        expires_ms: i64,
    },
    /// Make a data key the keyring holds already the current one.
    RotateDataKey {
        /// Its id.
        key_id: u32,
        /// The id of the root key that wraps it.
        root_key_id: String,
    },
    /// Retire a data key: credentials derived from it are refused from then on.
    RetireDataKey {
        /// Its id.
        key_id: u32,
    },
    /// Record that every data key was wrapped again under another root key.
    ChangeRootKey {
        /// The root key's id before.
        old_root_key_id: String,
        /// The root key's id after.
        new_root_key_id: String,
    },
    /// Record that another key signs checkpoints from now on.
    RotateCheckpointKey {
        /// The verifier key before.
        old_verifier_key: String,
        /// The verifier key after.
        new_verifier_key: String,
    },
    /// Record that a new epoch began, committing to the last checkpoint of the old one.
    StartEpoch {
        /// The origin before.
        previous_origin: String,
        /// The size of its last checkpoint.
        previous_size: u64,
        /// Its root, base64.
        previous_root: String,
        /// The origin from now on.
        origin: String,
    },
}

impl Command {
    /// The API operation's name, e.g. `CreateUser`.
    pub fn operation(&self) -> &'static str {
        match self {
            Command::CreateUser { .. } => "CreateUser",
            Command::UpdateUser { .. } => "UpdateUser",
            Command::EnableUser { .. } => "EnableUser",
            Command::DisableUser { .. } => "DisableUser",
            Command::CreateKxUser { .. } => "CreateKxUser",
            Command::UpdateKxUser { .. } => "UpdateKxUser",
            Command::DeleteKxUser { .. } => "DeleteKxUser",
            Command::CreateAccessKey { .. } => "CreateAccessKey",
            Command::DeleteAccessKey { .. } => "DeleteAccessKey",
            Command::CreatePermissionGroup { .. } => "CreatePermissionGroup",
            Command::UpdatePermissionGroup { .. } => "UpdatePermissionGroup",
            Command::DeletePermissionGroup { .. } => "DeletePermissionGroup",
            Command::AssociateUserToPermissionGroup { .. } => "AssociateUserToPermissionGroup",
            Command::DisassociateUserFromPermissionGroup { .. } => "DisassociateUserFromPermissionGroup",
            Command::ResetUserPassword { .. } => "ResetUserPassword",
            Command::SignIn { .. } => "SignIn",
            Command::ClearSignInLockout { .. } => "ClearSignInLockout",
            Command::EraseUser { .. } => "EraseUser",
            Command::CreatePrincipalKey { .. } => "CreatePrincipalKey",
            Command::IssueCredentials { .. } => "GetProgrammaticAccessCredentials",
            Command::RotateDataKey { .. } => "RotateKeys",
            Command::RetireDataKey { .. } => "RetireKey",
            Command::ChangeRootKey { .. } => "Rekey",
            Command::RotateCheckpointKey { .. } => "RotateCheckpointKey",
            Command::StartEpoch { .. } => "NewEpoch",
        }
    }

    /// What a caller needs to be allowed the command.
    pub fn access(&self) -> Access {
        match self {
            Command::IssueCredentials { .. } => Access::TemporaryCredentials,
            Command::RotateDataKey { .. }
            | Command::RetireDataKey { .. }
            | Command::ChangeRootKey { .. }
            | Command::RotateCheckpointKey { .. }
            | Command::StartEpoch { .. }
            // Lifting a lockout is the operator's: the root only, like the keyring.
            | Command::ClearSignInLockout { .. }
            | Command::EraseUser { .. } => Access::Keys,
            // Its own password any user may reset; another's only a SUPER_USER (check_escalation).
            Command::ResetUserPassword { .. } => Access::Read,
            Command::CreateUser { .. }
            | Command::UpdateUser { .. }
            | Command::EnableUser { .. }
            | Command::DisableUser { .. }
            | Command::CreateKxUser { .. }
            | Command::UpdateKxUser { .. }
            | Command::DeleteKxUser { .. }
            | Command::CreateAccessKey { .. }
            | Command::DeleteAccessKey { .. }
            | Command::CreatePermissionGroup { .. }
            | Command::UpdatePermissionGroup { .. }
            | Command::DeletePermissionGroup { .. }
            | Command::AssociateUserToPermissionGroup { .. }
            | Command::DisassociateUserFromPermissionGroup { .. }
            | Command::SignIn { .. }
            | Command::CreatePrincipalKey { .. } => Access::Manage,
        }
    }
}

/// Configured quotas that decisions respect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// The most users that may be ENABLED at once; `None` for no limit.
    pub max_enabled_users: Option<u64>,
    /// The most kdb users one environment may have; `None` for no limit.
    pub max_kx_users_per_environment: Option<u64>,
}
