//! The pure core: `decide(state, command) -> events` and `apply(views, event)`. No I/O, no clock.
//!
//! Every rule of the API about state lives here. The state is read through [`State`] so the same
//! code runs against the in-memory fold ([`crate::views::MemViews`]) and against a commit batch
//! layered over the store.

use crate::core::domain::{
    email_key, AccessKey, ApiAccess, ApplicationPermission, Caller, GroupChanges, KxUser, NewGroup, NewUser,
    PermissionGroup, PrincipalKey, Tags, TemporaryCredential, User, UserChanges, UserId, UserStatus,
    UserType,
};
use crate::core::event::{Event, Subject};
use crate::error::{Error, Result};

/// A validated request that may change state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// CreateUser; the id is chosen by the caller of `decide` so that `decide` stays pure.
    CreateUser {
        /// The id the new user gets.
        user_id: UserId,
        /// Its profile.
        user: NewUser,
    },
    /// UpdateUser.
    UpdateUser {
        /// The user.
        user_id: UserId,
        /// The fields to set.
        changes: UserChanges,
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
            Command::CreatePrincipalKey { .. } => "CreatePrincipalKey",
            Command::IssueCredentials { .. } => "GetProgrammaticAccessCredentials",
        }
    }

    /// What a caller needs to be allowed the command.
    pub fn access(&self) -> Access {
        match self {
            Command::IssueCredentials { .. } => Access::TemporaryCredentials,
            // Its own password any user may reset; another's only a SUPER_USER (check_escalation).
            Command::ResetUserPassword { .. } => Access::Read,
            _ => Access::Manage,
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

/// Read access to the views a decision needs.
pub trait State {
    /// The user with this id.
    fn user(&self, user_id: &str) -> Result<Option<User>>;
    /// Whether the user with this id exists: what [`apply`] asks of a user other than the
    /// event's subject, so a fold of one subject at a time can answer it later.
    fn user_exists(&self, user_id: &str) -> Result<bool> {
        Ok(self.user(user_id)?.is_some())
    }
    /// The id of the user holding this email key (see [`email_key`]).
    fn email_owner(&self, email_key: &str) -> Result<Option<UserId>>;
    /// How many users are ENABLED.
    fn enabled_users(&self) -> Result<u64>;
    /// The kdb user `user_name` of environment `environment_id`.
    fn kx_user(&self, environment_id: &str, user_name: &str) -> Result<Option<KxUser>>;
    /// How many kdb users environment `environment_id` has.
    fn kx_users_in(&self, environment_id: &str) -> Result<u64>;
    /// The access key with this id.
    fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>>;
    /// The permission group with this id.
    fn permission_group(&self, group: &str) -> Result<Option<PermissionGroup>>;
    /// Whether `user` is a member of `group`.
    fn is_member(&self, group: &str, user: &str) -> Result<bool>;
    /// The ids of the groups `user` is a member of, in id order.
    fn groups_of(&self, user: &str) -> Result<Vec<String>>;
    /// The ids of the members of `group`, in id order.
    fn members_of(&self, group: &str) -> Result<Vec<UserId>>;
    /// The argon2id hash of `user`'s password, if one was set.
    fn password_hash(&self, user: &str) -> Result<Option<String>>;
    /// The principal's key with this id.
    fn principal_key(&self, access_key_id: &str) -> Result<Option<PrincipalKey>>;
    /// The temporary credentials with this key id.
    fn temporary_credential(&self, access_key_id: &str) -> Result<Option<TemporaryCredential>>;
    /// The users whose apiAccessPrincipalArn is `principal_arn`, in id order.
    fn users_with_principal(&self, principal_arn: &str) -> Result<Vec<User>>;
}

/// Write access to the views, used by [`apply`].
pub trait Views: State {
    /// Stores a user record.
    fn put_user(&mut self, user: User);
    /// Points an email key at a user.
    fn put_email(&mut self, email_key: String, user_id: UserId);
    /// Sets the count of ENABLED users.
    fn set_enabled_users(&mut self, count: u64);
    /// Stores a kdb user record.
    fn put_kx_user(&mut self, user: KxUser);
    /// Removes a kdb user record.
    fn remove_kx_user(&mut self, environment_id: &str, user_name: &str);
    /// Sets the count of kdb users of an environment.
    fn set_kx_users_in(&mut self, environment_id: &str, count: u64);
    /// Stores an access key record.
    fn put_access_key(&mut self, key: AccessKey);
    /// Removes an access key record.
    fn remove_access_key(&mut self, access_key_id: &str);
    /// Stores a permission group record.
    fn put_group(&mut self, group: PermissionGroup);
    /// Removes a permission group record.
    fn remove_group(&mut self, group: &str);
    /// Stores the hash of `user`'s password.
    fn put_password(&mut self, user: &str, hash: String);
    /// Stores a principal's key.
    fn put_principal_key(&mut self, key: PrincipalKey);
    /// Removes a principal's key.
    fn remove_principal_key(&mut self, access_key_id: &str);
    /// Stores temporary credentials.
    fn put_temporary_credential(&mut self, credential: TemporaryCredential);
    /// Removes temporary credentials (revoked).
    fn remove_temporary_credential(&mut self, access_key_id: &str);
    /// Makes `user` a member of `group`, or not.
    fn set_member(&mut self, group: &str, user: &str, member: bool);
    /// Adds an entry to the per-subject history index (see [`crate::views::history_key`]).
    fn add_history(&mut self, key: Vec<u8>);
}

/// What a caller asks to do (see `Ledger::authorize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read users, permission groups and kdb users.
    Read,
    /// Change users, groups, memberships, kdb users and access keys (`ManageUsersAndGroups`).
    Manage,
    /// Read the audit trail: log, history, as-of, verify, digest (`ViewAuditData`).
    Audit,
    /// Obtain temporary credentials (`GetTemporaryCredentials`).
    TemporaryCredentials,
}

impl Access {
    /// The application permission that grants this access to an APP_USER; `None` for reads,
    /// which every user that may act at all may do.
    pub fn permission(self) -> Option<ApplicationPermission> {
        match self {
            Access::Read => None,
            Access::Manage => Some(ApplicationPermission::ManageUsersAndGroups),
            Access::Audit => Some(ApplicationPermission::ViewAuditData),
            Access::TemporaryCredentials => Some(ApplicationPermission::GetTemporaryCredentials),
        }
    }
}

/// Checks that `caller` may make a request of kind `access`.
///
/// `System` may do anything. A user caller must exist, be ENABLED and have apiAccess ENABLED; a
/// SUPER_USER may then do everything, an APP_USER what the union of its permission groups'
/// applicationPermissions grants (reads need none).
pub fn authorize(state: &(impl State + ?Sized), caller: &Caller, access: Access) -> Result<()> {
    let id = match caller {
        Caller::System => return Ok(()),
        // Which user a principal may act for is decided by the command (see IssueCredentials).
        Caller::Principal(_) if access == Access::TemporaryCredentials => return Ok(()),
        Caller::Principal(arn) => {
            return Err(Error::AccessDenied {
                message: format!("Principal {arn} may only get programmatic access credentials"),
            })
        }
        Caller::User(id) => id,
    };
    let denied = |why: &str| Err(Error::AccessDenied { message: format!("Caller {id} {why}") });
    let Some(user) = state.user(id)? else {
        return denied("is not a user of this ledger");
    };
    if user.status != UserStatus::Enabled {
        return denied("is not ENABLED");
    }
    if user.api_access != Some(ApiAccess::Enabled) {
        return denied("does not have apiAccess ENABLED");
    }
    let Some(needed) = access.permission() else { return Ok(()) };
    if user.user_type == UserType::SuperUser || held_permissions(state, id)?.contains(&needed) {
        return Ok(());
    }
    denied(&format!("is not a SUPER_USER and none of its permission groups grants {needed}"))
}

/// The union of the applicationPermissions of `user_id`'s permission groups.
fn held_permissions(state: &(impl State + ?Sized), user_id: &str) -> Result<Vec<ApplicationPermission>> {
    let mut held = vec![];
    for group in state.groups_of(user_id)? {
        for permission in
            state.permission_group(&group)?.map(|g| g.application_permissions).unwrap_or_default()
        {
            if !held.contains(&permission) {
                held.push(permission);
            }
        }
    }
    Ok(held)
}

/// The rule against escalation, once: an APP_USER, whatever its groups grant, never acts on a
/// SUPER_USER (creates one, makes a user one, changes, enables or disables one, issues its keys),
/// never grants (through a group it creates, updates or adds a user to, or a key it issues for
/// another user) a permission it does not hold itself, and resets only its own password. A
/// SUPER_USER and the system may do all of these. Called after [`authorize`] let the caller in.
fn check_escalation(state: &(impl State + ?Sized), caller: &Caller, command: &Command) -> Result<()> {
    let Caller::User(id) = caller else { return Ok(()) };
    if state.user(id)?.is_none_or(|me| me.user_type == UserType::SuperUser) {
        return Ok(());
    }
    let denied =
        |why: String| Err(Error::AccessDenied { message: format!("Caller {id} is an APP_USER: {why}") });
    let is_super = |user_id: &str| {
        Ok::<_, Error>(state.user(user_id)?.is_some_and(|u| u.user_type == UserType::SuperUser))
    };
    let beyond = |granted: &[ApplicationPermission]| -> Result<Option<ApplicationPermission>> {
        let held = held_permissions(state, id)?;
        Ok(granted.iter().find(|p| !held.contains(p)).copied())
    };
    let operation = command.operation();
    match command {
        Command::CreateUser { user, .. } if user.user_type == UserType::SuperUser => {
            denied("only a SUPER_USER creates a SUPER_USER".into())
        }
        Command::UpdateUser { changes, .. } if changes.user_type == Some(UserType::SuperUser) => {
            denied("only a SUPER_USER makes a user a SUPER_USER".into())
        }
        Command::UpdateUser { user_id, .. }
        | Command::EnableUser { user_id }
        | Command::DisableUser { user_id }
        | Command::CreateAccessKey { user_id, .. }
            if is_super(user_id)? =>
        {
            denied(format!("only a SUPER_USER may {operation} for SUPER_USER {user_id}"))
        }
        Command::ResetUserPassword { user_id, .. } if user_id != id => {
            denied("Only a superuser can reset password for other users".into())
        }
        Command::CreateAccessKey { user_id, .. } => match beyond(&held_permissions(state, user_id)?)? {
            Some(p) => {
                denied(format!("a key of user {user_id} would grant {p}, which the caller does not hold"))
            }
            None => Ok(()),
        },
        Command::CreatePermissionGroup {
            group: NewGroup { application_permissions: granted, .. }, ..
        }
        | Command::UpdatePermissionGroup {
            changes: GroupChanges { application_permissions: Some(granted), .. },
            ..
        } => match beyond(granted)? {
            Some(p) => denied(format!("it cannot grant {p}, which it does not hold itself")),
            None => Ok(()),
        },
        Command::AssociateUserToPermissionGroup { permission_group_id, .. } => {
            let granted = state.permission_group(permission_group_id)?.map(|g| g.application_permissions);
            match beyond(&granted.unwrap_or_default())? {
                Some(p) => denied(format!(
                    "permission group {permission_group_id} grants {p}, which the caller does not hold"
                )),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// Decides what events `command` by `caller` causes in `state`, or why it is refused.
///
/// An empty list means the request succeeds and changes nothing (a no-op).
pub fn decide(
    state: &(impl State + ?Sized),
    limits: &Limits,
    caller: &Caller,
    command: &Command,
) -> Result<Vec<Event>> {
    authorize(state, caller, command.access())?;
    check_escalation(state, caller, command)?;
    match command {
        Command::CreateUser { user_id, user } => {
            if let Some(owner) = state.email_owner(&email_key(&user.email_address))? {
                return Err(Error::Conflict {
                    message: format!(
                        "A user with email address {} already exists (userId {owner})",
                        user.email_address
                    ),
                    reason: Some("EMAIL_ALREADY_EXISTS".into()),
                });
            }
            if state.user(user_id)?.is_some() {
                return Err(Error::Conflict {
                    message: format!("A user with userId {user_id} already exists"),
                    reason: Some("USER_ID_ALREADY_EXISTS".into()),
                });
            }
            check_enabled_quota(state, limits)?;
            Ok(vec![Event::Created { user_id: user_id.clone(), user: user.clone() }])
        }
        Command::UpdateUser { user_id, changes } => {
            let current = existing(state, user_id)?;
            let changes = changed_fields(&current, changes);
            Ok(if changes.is_empty() {
                vec![]
            } else {
                vec![Event::Updated { user_id: user_id.clone(), changes }]
            })
        }
        Command::EnableUser { user_id } => match existing(state, user_id)?.status {
            UserStatus::Enabled => Ok(vec![]),
            UserStatus::Disabled | UserStatus::Creating => {
                check_enabled_quota(state, limits)?;
                Ok(vec![Event::Enabled { user_id: user_id.clone() }])
            }
        },
        Command::DisableUser { user_id } => match existing(state, user_id)?.status {
            UserStatus::Disabled => Ok(vec![]),
            UserStatus::Enabled | UserStatus::Creating => {
                Ok(vec![Event::Disabled { user_id: user_id.clone() }])
            }
        },
        Command::CreateKxUser { environment_id, user_name, iam_role, tags } => {
            if state.kx_user(environment_id, user_name)?.is_some() {
                return Err(Error::ResourceAlreadyExists {
                    message: format!("kdb user {user_name} already exists in environment {environment_id}"),
                });
            }
            match limits.max_kx_users_per_environment {
                Some(max) if state.kx_users_in(environment_id)? >= max => Err(Error::LimitExceeded {
                    message: format!(
                        "The limit of {max} kdb users in environment {environment_id} is reached"
                    ),
                }),
                _ => Ok(vec![Event::KxUserCreated {
                    environment_id: environment_id.clone(),
                    user_name: user_name.clone(),
                    iam_role: iam_role.clone(),
                    tags: tags.clone(),
                }]),
            }
        }
        Command::UpdateKxUser { environment_id, user_name, iam_role } => {
            let current = existing_kx(state, environment_id, user_name)?;
            Ok(if current.iam_role == *iam_role {
                vec![]
            } else {
                vec![Event::KxRoleChanged {
                    environment_id: environment_id.clone(),
                    user_name: user_name.clone(),
                    old_role: current.iam_role,
                    new_role: iam_role.clone(),
                }]
            })
        }
        Command::DeleteKxUser { environment_id, user_name } => {
            existing_kx(state, environment_id, user_name)?;
            Ok(vec![Event::KxUserDeleted {
                environment_id: environment_id.clone(),
                user_name: user_name.clone(),
            }])
        }
        Command::CreateAccessKey { access_key_id, user_id } => {
            existing(state, user_id)?;
            if state.access_key(access_key_id)?.is_some() {
                return Err(Error::Conflict {
                    message: format!("Access key {access_key_id} exists already"),
                    reason: Some("ACCESS_KEY_ALREADY_EXISTS".into()),
                });
            }
            Ok(vec![Event::AccessKeyCreated {
                access_key_id: access_key_id.clone(),
                user_id: user_id.clone(),
            }])
        }
        Command::DeleteAccessKey { access_key_id } => {
            if let Some(key) = state.access_key(access_key_id)? {
                return Ok(vec![Event::AccessKeyDeleted {
                    access_key_id: key.access_key_id,
                    user_id: key.user_id,
                }]);
            }
            if let Some(credential) = state.temporary_credential(access_key_id)? {
                return Ok(vec![Event::CredentialsRevoked {
                    access_key_id: credential.access_key_id,
                    user_id: credential.user_id,
                }]);
            }
            let key = state.principal_key(access_key_id)?.ok_or_else(|| Error::ResourceNotFound {
                message: format!("Access key {access_key_id} does not exist"),
            })?;
            Ok(vec![Event::PrincipalKeyDeleted {
                access_key_id: key.access_key_id,
                principal_arn: key.principal_arn,
            }])
        }
        Command::CreatePrincipalKey { access_key_id, principal_arn } => {
            if state.access_key(access_key_id)?.is_some() || state.principal_key(access_key_id)?.is_some() {
                return Err(Error::Conflict {
                    message: format!("Access key {access_key_id} exists already"),
                    reason: Some("ACCESS_KEY_ALREADY_EXISTS".into()),
                });
            }
            Ok(vec![Event::PrincipalKeyCreated {
                access_key_id: access_key_id.clone(),
                principal_arn: principal_arn.clone(),
            }])
        }
        Command::IssueCredentials { access_key_id, expires_ms } => {
            let Caller::Principal(principal_arn) = caller else {
                return Err(Error::AccessDenied {
                    message: "GetProgrammaticAccessCredentials takes the key of an IAM principal".into(),
                });
            };
            let user = credential_holder(state, principal_arn)?;
            Ok(vec![Event::CredentialsIssued {
                access_key_id: access_key_id.clone(),
                user_id: user.user_id,
                principal_arn: principal_arn.clone(),
                expires_ms: *expires_ms,
            }])
        }
        Command::CreatePermissionGroup { permission_group_id, group } => {
            if state.permission_group(permission_group_id)?.is_some() {
                return Err(Error::Conflict {
                    message: format!("A permission group with id {permission_group_id} already exists"),
                    reason: Some("PERMISSION_GROUP_ID_ALREADY_EXISTS".into()),
                });
            }
            let permission_group_id = permission_group_id.clone();
            Ok(vec![Event::PermissionGroupCreated { permission_group_id, group: group.clone() }])
        }
        Command::UpdatePermissionGroup { permission_group_id, changes } => {
            let current = existing_group(state, permission_group_id)?;
            let changes = changed_group_fields(&current, changes);
            let permission_group_id = permission_group_id.clone();
            Ok(if changes.is_empty() {
                vec![]
            } else {
                vec![Event::PermissionGroupUpdated { permission_group_id, changes }]
            })
        }
        Command::DeletePermissionGroup { permission_group_id } => {
            existing_group(state, permission_group_id)?;
            let members = state.members_of(permission_group_id)?;
            Ok(vec![Event::PermissionGroupDeleted {
                permission_group_id: permission_group_id.clone(),
                members,
            }])
        }
        Command::AssociateUserToPermissionGroup { permission_group_id, user_id } => {
            existing_group(state, permission_group_id)?;
            existing(state, user_id)?;
            Ok(if state.is_member(permission_group_id, user_id)? {
                vec![]
            } else {
                vec![Event::UserAddedToGroup {
                    permission_group_id: permission_group_id.clone(),
                    user_id: user_id.clone(),
                }]
            })
        }
        Command::ResetUserPassword { user_id, password_hash, .. } => {
            existing(state, user_id)?;
            Ok(vec![Event::PasswordReset { user_id: user_id.clone(), password_hash: password_hash.clone() }])
        }
        Command::SignIn { user_id } => match state.user(user_id)? {
            Some(user) if user.status == UserStatus::Enabled => {
                Ok(vec![Event::SignedIn { user_id: user_id.clone() }])
            }
            _ => Err(Error::AccessDenied { message: SIGN_IN_FAILED.into() }),
        },
        Command::DisassociateUserFromPermissionGroup { permission_group_id, user_id } => {
            existing_group(state, permission_group_id)?;
            existing(state, user_id)?;
            Ok(if state.is_member(permission_group_id, user_id)? {
                vec![Event::UserRemovedFromGroup {
                    permission_group_id: permission_group_id.clone(),
                    user_id: user_id.clone(),
                }]
            } else {
                vec![]
            })
        }
    }
}

/// The user a principal gets credentials for: the first, by id, of the users whose
/// apiAccessPrincipalArn it is that may act (ENABLED, apiAccess ENABLED) and may get temporary
/// credentials (a SUPER_USER, or GetTemporaryCredentials through a group).
fn credential_holder(state: &(impl State + ?Sized), principal_arn: &str) -> Result<User> {
    for user in state.users_with_principal(principal_arn)? {
        if authorize(state, &Caller::User(user.user_id.clone()), Access::TemporaryCredentials).is_ok() {
            return Ok(user);
        }
    }
    Err(Error::AccessDenied {
        message: format!(
            "No ENABLED user with apiAccess ENABLED and GetTemporaryCredentials has apiAccessPrincipalArn {principal_arn}"
        ),
    })
}

/// The one answer to a failed sign-in, whatever failed: it must not tell an attacker which.
pub const SIGN_IN_FAILED: &str =
    "Sign-in failed: the email address and password do not match an ENABLED user";

fn existing_group(state: &(impl State + ?Sized), group: &str) -> Result<PermissionGroup> {
    state.permission_group(group)?.ok_or_else(|| Error::ResourceNotFound {
        message: format!("Permission group {group} does not exist"),
    })
}

/// Keeps only the fields of `requested` that differ from `current`.
fn changed_group_fields(current: &PermissionGroup, requested: &GroupChanges) -> GroupChanges {
    GroupChanges {
        name: requested.name.clone().filter(|n| *n != current.name),
        description: requested.description.clone().filter(|d| Some(d) != current.description.as_ref()),
        application_permissions: requested
            .application_permissions
            .clone()
            .filter(|p| *p != current.application_permissions),
    }
}

fn existing_kx(state: &(impl State + ?Sized), environment_id: &str, user_name: &str) -> Result<KxUser> {
    state.kx_user(environment_id, user_name)?.ok_or_else(|| Error::ResourceNotFound {
        message: format!("kdb user {user_name} does not exist in environment {environment_id}"),
    })
}

fn existing(state: &(impl State + ?Sized), user_id: &str) -> Result<User> {
    state
        .user(user_id)?
        .ok_or_else(|| Error::ResourceNotFound { message: format!("User {user_id} does not exist") })
}

fn check_enabled_quota(state: &(impl State + ?Sized), limits: &Limits) -> Result<()> {
    match limits.max_enabled_users {
        Some(max) if state.enabled_users()? >= max => {
            Err(Error::LimitExceeded { message: format!("The limit of {max} enabled users is reached") })
        }
        _ => Ok(()),
    }
}

/// Keeps only the fields of `requested` that differ from `current`.
fn changed_fields(current: &User, requested: &UserChanges) -> UserChanges {
    fn differs<T: PartialEq + Clone>(new: &Option<T>, old: Option<&T>) -> Option<T> {
        new.as_ref().filter(|n| Some(*n) != old).cloned()
    }
    UserChanges {
        user_type: differs(&requested.user_type, Some(&current.user_type)),
        first_name: differs(&requested.first_name, current.first_name.as_ref()),
        last_name: differs(&requested.last_name, current.last_name.as_ref()),
        api_access: differs(&requested.api_access, current.api_access.as_ref()),
        api_access_principal_arn: differs(
            &requested.api_access_principal_arn,
            current.api_access_principal_arn.as_ref(),
        ),
    }
}

/// Folds one event, which happened at `time_ms`, into the views.
///
/// Errors only if the views cannot be read, or if the event contradicts them (a corrupt log).
pub fn apply(views: &mut impl Views, event: &Event, time_ms: i64) -> Result<()> {
    if let Event::AccessKeyCreated { access_key_id, .. } | Event::AccessKeyDeleted { access_key_id, .. } =
        event
    {
        return apply_access_key(views, access_key_id, event, time_ms);
    }
    match event {
        Event::PrincipalKeyCreated { access_key_id, principal_arn } => {
            if views.principal_key(access_key_id)?.is_some() || views.access_key(access_key_id)?.is_some() {
                return Err(contradiction(event, format_args!("access key {access_key_id}"), true));
            }
            let key = PrincipalKey {
                access_key_id: access_key_id.clone(),
                principal_arn: principal_arn.clone(),
                create_time: time_ms,
            };
            views.put_principal_key(key);
            return Ok(());
        }
        Event::PrincipalKeyDeleted { access_key_id, principal_arn } => {
            match views.principal_key(access_key_id)? {
                Some(key) if key.principal_arn == *principal_arn => views.remove_principal_key(access_key_id),
                before => {
                    return Err(contradiction(
                        event,
                        format_args!("access key {access_key_id}"),
                        before.is_some(),
                    ))
                }
            }
            return Ok(());
        }
        Event::CredentialsRevoked { access_key_id, user_id } => {
            match views.temporary_credential(access_key_id)? {
                Some(credential) if credential.user_id == *user_id => {
                    views.remove_temporary_credential(access_key_id)
                }
                before => {
                    return Err(contradiction(
                        event,
                        format_args!("temporary credentials {access_key_id}"),
                        before.is_some(),
                    ))
                }
            }
            return Ok(());
        }
        Event::CredentialsIssued { access_key_id, user_id, principal_arn, expires_ms } => {
            if views.temporary_credential(access_key_id)?.is_some() || !views.user_exists(user_id)? {
                return Err(no_such_user(event));
            }
            views.put_temporary_credential(TemporaryCredential {
                access_key_id: access_key_id.clone(),
                user_id: user_id.clone(),
                principal_arn: principal_arn.clone(),
                expires_ms: *expires_ms,
            });
            return Ok(());
        }
        _ => {}
    }
    match event.subject() {
        Subject::PermissionGroup(group) => apply_group(views, group, event, time_ms),
        Subject::Principal(arn) => Err(contradiction(event, format_args!("principal {arn}"), false)),
        Subject::User(user_id) => apply_user(views, user_id, event, time_ms),
        Subject::KxUser(environment_id, user_name) => {
            apply_kx(views, environment_id, user_name, event, time_ms)
        }
    }
}

fn contradiction(event: &Event, who: impl std::fmt::Display, exists: bool) -> Error {
    let state = if exists { "exists already" } else { "does not exist" };
    Error::corrupt(format_args!("corrupt log: {} event for {who}, which {state}", event.kind()))
}

/// What [`apply`] reports for an event naming a user who does not exist (for temporary
/// credentials and memberships, the same as for ones that exist already).
pub fn no_such_user(event: &Event) -> Error {
    match event {
        Event::CredentialsIssued { access_key_id, user_id, .. } => {
            contradiction(event, format_args!("temporary key {access_key_id} of user {user_id}"), true)
        }
        Event::UserAddedToGroup { permission_group_id, user_id } => {
            contradiction(event, format_args!("user {user_id} in group {permission_group_id}"), true)
        }
        Event::AccessKeyCreated { user_id, .. } => {
            contradiction(event, format_args!("user {user_id}"), false)
        }
        // No other event names a second user.
        _ => contradiction(event, "its user", false),
    }
}

/// What [`apply`] reports for a user created with an email another user has.
pub fn email_taken(user_id: &str, email_address: &str, owner: &str) -> Error {
    Error::corrupt(format_args!(
        "corrupt log: Created event for user {user_id} with email {email_address}, which user {owner} has already"
    ))
}

fn apply_user(views: &mut impl Views, user_id: &str, event: &Event, time_ms: i64) -> Result<()> {
    let before = views.user(user_id)?;
    let was_enabled = before.as_ref().is_some_and(|u| u.status == UserStatus::Enabled);
    let user = match (before, event) {
        (None, Event::Created { user_id, user }) => {
            let key = email_key(&user.email_address);
            // The decider refuses a taken email; a log that holds one anyway is corrupt.
            if let Some(owner) = views.email_owner(&key)? {
                return Err(email_taken(user_id, &user.email_address, &owner));
            }
            views.put_email(key, user_id.clone());
            User {
                user_id: user_id.clone(),
                status: UserStatus::Enabled,
                first_name: user.first_name.clone(),
                last_name: user.last_name.clone(),
                email_address: user.email_address.clone(),
                user_type: user.user_type,
                api_access: user.api_access,
                api_access_principal_arn: user.api_access_principal_arn.clone(),
                create_time: time_ms,
                last_enabled_time: Some(time_ms),
                last_disabled_time: None,
                last_modified_time: time_ms,
                last_login_time: None,
            }
        }
        (Some(mut user), Event::Updated { changes, .. }) => {
            let c = changes.clone();
            user.user_type = c.user_type.unwrap_or(user.user_type);
            user.first_name = c.first_name.or(user.first_name);
            user.last_name = c.last_name.or(user.last_name);
            user.api_access = c.api_access.or(user.api_access);
            user.api_access_principal_arn = c.api_access_principal_arn.or(user.api_access_principal_arn);
            user.last_modified_time = time_ms;
            user
        }
        (Some(mut user), Event::Enabled { .. }) => {
            user.status = UserStatus::Enabled;
            user.last_enabled_time = Some(time_ms);
            user.last_modified_time = time_ms;
            user
        }
        (Some(mut user), Event::PasswordReset { user_id, password_hash }) => {
            views.put_password(user_id, password_hash.clone());
            user.last_modified_time = time_ms;
            user
        }
        (Some(mut user), Event::SignedIn { .. }) => {
            user.last_login_time = Some(time_ms);
            user
        }
        (Some(mut user), Event::Disabled { .. }) => {
            user.status = UserStatus::Disabled;
            user.last_disabled_time = Some(time_ms);
            user.last_modified_time = time_ms;
            user
        }
        (before, event) => {
            return Err(contradiction(event, format_args!("user {user_id}"), before.is_some()))
        }
    };
    let is_enabled = user.status == UserStatus::Enabled;
    if was_enabled != is_enabled {
        let enabled = views.enabled_users()?;
        views.set_enabled_users(if is_enabled { enabled + 1 } else { enabled.saturating_sub(1) });
    }
    views.put_user(user);
    Ok(())
}

fn apply_access_key(views: &mut impl Views, access_key_id: &str, event: &Event, time_ms: i64) -> Result<()> {
    let before = views.access_key(access_key_id)?;
    match (before, event) {
        (None, Event::AccessKeyCreated { user_id, .. }) => {
            if !views.user_exists(user_id)? {
                return Err(no_such_user(event));
            }
            views.put_access_key(AccessKey {
                access_key_id: access_key_id.to_owned(),
                user_id: user_id.clone(),
                create_time: time_ms,
            });
        }
        (Some(key), Event::AccessKeyDeleted { user_id, .. }) if key.user_id == *user_id => {
            views.remove_access_key(access_key_id);
        }
        (before, event) => {
            return Err(contradiction(event, format_args!("access key {access_key_id}"), before.is_some()));
        }
    }
    Ok(())
}

fn apply_group(views: &mut impl Views, group: &str, event: &Event, time_ms: i64) -> Result<()> {
    let before = views.permission_group(group)?;
    let contradicts = |exists: bool| contradiction(event, format_args!("permission group {group}"), exists);
    match (before, event) {
        (None, Event::PermissionGroupCreated { group: new, .. }) => views.put_group(PermissionGroup {
            permission_group_id: group.to_owned(),
            name: new.name.clone(),
            description: new.description.clone(),
            application_permissions: new.application_permissions.clone(),
            create_time: time_ms,
            last_modified_time: time_ms,
        }),
        (Some(mut current), Event::PermissionGroupUpdated { changes, .. }) => {
            let c = changes.clone();
            current.name = c.name.unwrap_or(current.name);
            current.description = c.description.or(current.description);
            current.application_permissions =
                c.application_permissions.unwrap_or(current.application_permissions);
            current.last_modified_time = time_ms;
            views.put_group(current);
        }
        (Some(_), Event::PermissionGroupDeleted { members, .. }) => {
            // The event names every member; a log whose fold holds others is corrupt.
            if views.members_of(group)? != *members {
                return Err(Error::corrupt(format_args!(
                    "corrupt log: PermissionGroupDeleted event for permission group {group} names other members than it has"
                )));
            }
            for user in members {
                views.set_member(group, user, false);
            }
            views.remove_group(group);
        }
        (Some(_), Event::UserAddedToGroup { user_id, .. }) => {
            if !views.user_exists(user_id)? || views.is_member(group, user_id)? {
                return Err(no_such_user(event));
            }
            views.set_member(group, user_id, true);
        }
        (Some(_), Event::UserRemovedFromGroup { user_id, .. }) => {
            if !views.is_member(group, user_id)? {
                return Err(contradiction(
                    event,
                    format_args!("membership of user {user_id} in group {group}"),
                    false,
                ));
            }
            views.set_member(group, user_id, false);
        }
        (before, _) => return Err(contradicts(before.is_some())),
    }
    Ok(())
}

fn apply_kx(
    views: &mut impl Views,
    environment_id: &str,
    user_name: &str,
    event: &Event,
    time_ms: i64,
) -> Result<()> {
    let before = views.kx_user(environment_id, user_name)?;
    let count = views.kx_users_in(environment_id)?;
    match (before, event) {
        (None, Event::KxUserCreated { iam_role, tags, .. }) => {
            views.put_kx_user(KxUser {
                environment_id: environment_id.to_owned(),
                user_name: user_name.to_owned(),
                iam_role: iam_role.clone(),
                tags: tags.clone(),
                create_time: time_ms,
                update_time: time_ms,
            });
            views.set_kx_users_in(environment_id, count + 1);
        }
        (Some(mut user), Event::KxRoleChanged { new_role, .. }) => {
            user.iam_role = new_role.clone();
            user.update_time = time_ms;
            views.put_kx_user(user);
        }
        (Some(_), Event::KxUserDeleted { .. }) => {
            views.remove_kx_user(environment_id, user_name);
            views.set_kx_users_in(environment_id, count.saturating_sub(1));
        }
        (before, event) => {
            let who = format_args!("kdb user {user_name} of environment {environment_id}");
            return Err(contradiction(event, who, before.is_some()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Given events, when a command, then events or an error.
    use super::*;
    use crate::views::MemViews;

    const ADMIN: &str = "01ADMIN0000000000000000000";
    const ALICE: &str = "01ALICE0000000000000000000";
    const BOB: &str = "01BOB000000000000000000000";
    const CAROL: &str = "01CAROL0000000000000000000";

    fn new_user(email: &str, user_type: UserType, api: Option<ApiAccess>) -> NewUser {
        NewUser {
            email_address: email.into(),
            user_type,
            first_name: Some("First".into()),
            last_name: None,
            api_access: api,
            api_access_principal_arn: None,
        }
    }

    fn created(id: &str, email: &str) -> Event {
        Event::Created { user_id: id.into(), user: new_user(email, UserType::AppUser, None) }
    }

    fn admin_created() -> Event {
        Event::Created {
            user_id: ADMIN.into(),
            user: new_user("admin@example.com", UserType::SuperUser, Some(ApiAccess::Enabled)),
        }
    }

    /// Folds `events` at times 1000, 2000, …
    fn given(events: &[Event]) -> MemViews {
        let mut views = MemViews::default();
        for (i, e) in events.iter().enumerate() {
            apply(&mut views, e, 1000 * (i as i64 + 1)).unwrap();
        }
        views
    }

    fn when(state: &MemViews, command: Command) -> Result<Vec<Event>> {
        decide(state, &Limits::default(), &Caller::System, &command)
    }

    fn create(id: &str, email: &str) -> Command {
        Command::CreateUser { user_id: id.into(), user: new_user(email, UserType::AppUser, None) }
    }

    fn kind(r: Result<Vec<Event>>) -> &'static str {
        r.map_or_else(|e| e.wire_name(), |_| "ok")
    }

    #[test]
    fn create_on_empty_ledger_emits_created() {
        let then = when(&given(&[]), create(ALICE, "alice@example.com"));
        assert_eq!(then, Ok(vec![created(ALICE, "alice@example.com")]));
    }

    #[test]
    fn create_with_an_email_taken_in_any_case_is_a_conflict() {
        let state = given(&[created(ALICE, "alice@example.com")]);
        let then = when(&state, create(BOB, "ALICE@Example.COM"));
        assert_eq!(
            then,
            Err(Error::Conflict {
                message: format!(
                    "A user with email address ALICE@Example.COM already exists (userId {ALICE})"
                ),
                reason: Some("EMAIL_ALREADY_EXISTS".into()),
            })
        );
    }

    #[test]
    fn create_with_a_taken_id_is_a_conflict() {
        let state = given(&[created(ALICE, "alice@example.com")]);
        let then = when(&state, create(ALICE, "other@example.com"));
        assert!(
            matches!(then, Err(Error::Conflict { reason: Some(r), .. }) if r == "USER_ID_ALREADY_EXISTS")
        );
    }

    #[test]
    fn enabled_users_quota_limits_create_and_enable_but_not_noops() {
        let limits = Limits { max_enabled_users: Some(1), ..Limits::default() };
        let state = given(&[created(ALICE, "a@example.com"), created(BOB, "b@example.com")]);
        // Two enabled already (the quota binds decisions, not history).
        let err = decide(&state, &limits, &Caller::System, &create("01C", "c@example.com"));
        assert_eq!(
            err,
            Err(Error::LimitExceeded { message: "The limit of 1 enabled users is reached".into() })
        );
        let enable_enabled = Command::EnableUser { user_id: ALICE.into() };
        assert_eq!(decide(&state, &limits, &Caller::System, &enable_enabled), Ok(vec![]));

        let state = given(&[
            created(ALICE, "a@example.com"),
            Event::Disabled { user_id: ALICE.into() },
            created(BOB, "b@example.com"),
        ]);
        let enable_alice = Command::EnableUser { user_id: ALICE.into() };
        assert_eq!(kind(decide(&state, &limits, &Caller::System, &enable_alice)), "LimitExceededException");
        let state = given(&[
            created(ALICE, "a@example.com"),
            Event::Disabled { user_id: ALICE.into() },
            created(BOB, "b@example.com"),
            Event::Disabled { user_id: BOB.into() },
        ]);
        assert_eq!(
            decide(&state, &limits, &Caller::System, &enable_alice),
            Ok(vec![Event::Enabled { user_id: ALICE.into() }])
        );
    }

    #[test]
    fn commands_on_a_missing_user_are_not_found() {
        let state = given(&[]);
        for command in [
            Command::UpdateUser { user_id: ALICE.into(), changes: UserChanges::default() },
            Command::EnableUser { user_id: ALICE.into() },
            Command::DisableUser { user_id: ALICE.into() },
        ] {
            assert_eq!(
                when(&state, command),
                Err(Error::ResourceNotFound { message: format!("User {ALICE} does not exist") })
            );
        }
    }

    #[test]
    fn update_emits_only_the_fields_that_change() {
        let state = given(&[created(ALICE, "alice@example.com")]);
        let changes = UserChanges {
            user_type: Some(UserType::AppUser), // unchanged
            first_name: Some("First".into()),   // unchanged
            last_name: Some("Liddell".into()),
            api_access: Some(ApiAccess::Enabled),
            api_access_principal_arn: None,
        };
        let then = when(&state, Command::UpdateUser { user_id: ALICE.into(), changes });
        let expected = UserChanges {
            last_name: Some("Liddell".into()),
            api_access: Some(ApiAccess::Enabled),
            ..UserChanges::default()
        };
        assert_eq!(then, Ok(vec![Event::Updated { user_id: ALICE.into(), changes: expected }]));
    }

    #[test]
    fn update_to_identical_values_or_to_nothing_is_a_noop() {
        let state = given(&[created(ALICE, "alice@example.com")]);
        let same = UserChanges {
            user_type: Some(UserType::AppUser),
            first_name: Some("First".into()),
            ..UserChanges::default()
        };
        assert_eq!(when(&state, Command::UpdateUser { user_id: ALICE.into(), changes: same }), Ok(vec![]));
        let nothing = UserChanges::default();
        assert_eq!(when(&state, Command::UpdateUser { user_id: ALICE.into(), changes: nothing }), Ok(vec![]));
    }

    #[test]
    fn enable_and_disable_emit_only_on_a_change_of_status() {
        let enabled = given(&[created(ALICE, "a@example.com")]);
        let disabled = given(&[created(ALICE, "a@example.com"), Event::Disabled { user_id: ALICE.into() }]);
        let enable = || Command::EnableUser { user_id: ALICE.into() };
        let disable = || Command::DisableUser { user_id: ALICE.into() };
        assert_eq!(when(&enabled, enable()), Ok(vec![]));
        assert_eq!(when(&enabled, disable()), Ok(vec![Event::Disabled { user_id: ALICE.into() }]));
        assert_eq!(when(&disabled, disable()), Ok(vec![]));
        assert_eq!(when(&disabled, enable()), Ok(vec![Event::Enabled { user_id: ALICE.into() }]));
    }

    #[test]
    fn callers_are_authorized_by_status_api_access_and_type() {
        let app_with_api = Event::Created {
            user_id: BOB.into(),
            user: new_user("bob@example.com", UserType::AppUser, Some(ApiAccess::Enabled)),
        };
        let state = given(&[admin_created(), created(ALICE, "alice@example.com"), app_with_api]);
        let as_caller = |id: &str, access| authorize(&state, &Caller::User(id.into()), access);
        fn denied<T>(why: &str, id: &str) -> Result<T> {
            Err(Error::AccessDenied { message: format!("Caller {id} {why}") })
        }

        assert_eq!(authorize(&state, &Caller::System, Access::Manage), Ok(()));
        assert_eq!(as_caller(ADMIN, Access::Manage), Ok(()));
        assert_eq!(as_caller(BOB, Access::Read), Ok(()));
        assert_eq!(
            as_caller(BOB, Access::Manage),
            denied("is not a SUPER_USER and none of its permission groups grants ManageUsersAndGroups", BOB)
        );
        assert_eq!(as_caller(ALICE, Access::Read), denied("does not have apiAccess ENABLED", ALICE));
        assert_eq!(as_caller("01NOBODY", Access::Read), denied("is not a user of this ledger", "01NOBODY"));

        let state = given(&[admin_created(), Event::Disabled { user_id: ADMIN.into() }]);
        let admin = Caller::User(ADMIN.into());
        assert_eq!(
            decide(&state, &Limits::default(), &admin, &create(ALICE, "alice@example.com")),
            denied("is not ENABLED", ADMIN)
        );
    }

    #[test]
    fn apply_keeps_the_timestamps_and_the_enabled_count() {
        let state = given(&[
            created(ALICE, "Alice@Example.com"),       // t=1000
            Event::Disabled { user_id: ALICE.into() }, // t=2000
            Event::Updated {
                user_id: ALICE.into(),
                changes: UserChanges { last_name: Some("L".into()), ..UserChanges::default() },
            }, // t=3000
            Event::Enabled { user_id: ALICE.into() },  // t=4000
            created(BOB, "bob@example.com"),           // t=5000
            Event::Disabled { user_id: BOB.into() },   // t=6000
        ]);
        let alice = &state.users[ALICE];
        assert_eq!(alice.status, UserStatus::Enabled);
        assert_eq!(alice.create_time, 1000);
        assert_eq!(alice.last_disabled_time, Some(2000));
        assert_eq!(alice.last_enabled_time, Some(4000));
        assert_eq!(alice.last_modified_time, 4000);
        assert_eq!(alice.last_name.as_deref(), Some("L"));
        assert_eq!(alice.first_name.as_deref(), Some("First"));
        assert_eq!(alice.last_login_time, None);
        let bob = &state.users[BOB];
        assert_eq!(
            (bob.create_time, bob.last_enabled_time, bob.last_modified_time),
            (5000, Some(5000), 6000)
        );
        assert_eq!(state.emails.get("alice@example.com").map(String::as_str), Some(ALICE));
        assert_eq!(state.enabled_users, 1);
    }

    #[test]
    fn apply_refuses_events_that_contradict_the_views() {
        let mut state = given(&[created(ALICE, "a@example.com")]);
        let err = apply(&mut state, &created(ALICE, "a@example.com"), 9).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("corrupt log: Created event for user {ALICE}, which exists already")
        );
        let err = apply(&mut state, &Event::Enabled { user_id: BOB.into() }, 9).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("corrupt log: Enabled event for user {BOB}, which does not exist")
        );
        // An email is unique case-insensitively in the fold too, not only in `decide`.
        let before = state.clone();
        let err = apply(&mut state, &created(BOB, "A@Example.COM"), 9).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("corrupt log: Created event for user {BOB} with email A@Example.COM, which user {ALICE} has already")
        );
        assert_eq!(err.failure(), Some(crate::Failure::Corrupt));
        assert_eq!(state, before, "a refused event changes nothing");
    }

    const ROLE_A: &str = "arn:aws:iam::123456789012:role/A";
    const ROLE_B: &str = "arn:aws:iam::123456789012:role/B";

    fn kx_created(env: &str, name: &str) -> Event {
        Event::KxUserCreated {
            environment_id: env.into(),
            user_name: name.into(),
            iam_role: ROLE_A.into(),
            tags: Tags::new(),
        }
    }

    fn kx_create(env: &str, name: &str) -> Command {
        Command::CreateKxUser {
            environment_id: env.into(),
            user_name: name.into(),
            iam_role: ROLE_A.into(),
            tags: Tags::new(),
        }
    }

    #[test]
    fn kx_create_then_duplicate_is_already_exists_per_environment() {
        assert_eq!(when(&given(&[]), kx_create("env1", "bob")), Ok(vec![kx_created("env1", "bob")]));
        let state = given(&[kx_created("env1", "bob")]);
        let err = when(&state, kx_create("env1", "bob")).unwrap_err();
        assert_eq!(
            err,
            Error::ResourceAlreadyExists {
                message: "kdb user bob already exists in environment env1".into()
            }
        );
        assert_eq!(err.status(), 409);
        assert_eq!(when(&state, kx_create("env2", "bob")), Ok(vec![kx_created("env2", "bob")]));
    }

    #[test]
    fn kx_update_records_old_and_new_role_and_same_role_is_a_noop() {
        let state = given(&[kx_created("env1", "bob")]);
        let update = |role: &str| Command::UpdateKxUser {
            environment_id: "env1".into(),
            user_name: "bob".into(),
            iam_role: role.into(),
        };
        assert_eq!(when(&state, update(ROLE_A)), Ok(vec![]));
        assert_eq!(
            when(&state, update(ROLE_B)),
            Ok(vec![Event::KxRoleChanged {
                environment_id: "env1".into(),
                user_name: "bob".into(),
                old_role: ROLE_A.into(),
                new_role: ROLE_B.into(),
            }])
        );
    }

    #[test]
    fn kx_commands_on_a_missing_user_are_not_found() {
        let state = given(&[kx_created("env1", "bob")]);
        let not_found = Err(Error::ResourceNotFound {
            message: "kdb user bob does not exist in environment env2".into(),
        });
        let update = Command::UpdateKxUser {
            environment_id: "env2".into(),
            user_name: "bob".into(),
            iam_role: ROLE_B.into(),
        };
        assert_eq!(when(&state, update), not_found);
        let delete = Command::DeleteKxUser { environment_id: "env2".into(), user_name: "bob".into() };
        assert_eq!(when(&state, delete), not_found);
    }

    #[test]
    fn kx_delete_frees_the_name_and_the_quota() {
        let limits = Limits { max_kx_users_per_environment: Some(1), ..Limits::default() };
        let deleted = Event::KxUserDeleted { environment_id: "env1".into(), user_name: "bob".into() };
        let state = given(&[kx_created("env1", "bob")]);
        let err = decide(&state, &limits, &Caller::System, &kx_create("env1", "carol")).unwrap_err();
        assert_eq!(
            err,
            Error::LimitExceeded {
                message: "The limit of 1 kdb users in environment env1 is reached".into()
            }
        );
        assert_eq!(
            decide(&state, &limits, &Caller::System, &kx_create("env2", "carol")).map(|e| e.len()),
            Ok(1)
        );
        let state = given(&[kx_created("env1", "bob"), deleted.clone()]);
        assert_eq!(
            decide(&state, &limits, &Caller::System, &kx_create("env1", "bob")),
            Ok(vec![kx_created("env1", "bob")])
        );
        assert_eq!(state.kx_counts.get("env1"), Some(&0));
        assert!(state.kx_users.is_empty());
    }

    #[test]
    fn kx_apply_keeps_times_and_refuses_contradictions() {
        let mut state = given(&[
            kx_created("env1", "bob"), // t=1000
            Event::KxRoleChanged {
                environment_id: "env1".into(),
                user_name: "bob".into(),
                old_role: ROLE_A.into(),
                new_role: ROLE_B.into(),
            }, // t=2000
        ]);
        let bob = state.kx_user("env1", "bob").unwrap().unwrap();
        assert_eq!((bob.iam_role.as_str(), bob.create_time, bob.update_time), (ROLE_B, 1000, 2000));
        let err = apply(&mut state, &kx_created("env1", "bob"), 9).unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt log: KxUserCreated event for kdb user bob of environment env1, which exists already"
        );
    }

    #[test]
    fn only_a_super_user_manages_kdb_users() {
        let app = Event::Created {
            user_id: BOB.into(),
            user: new_user("bob@example.com", UserType::AppUser, Some(ApiAccess::Enabled)),
        };
        let state = given(&[admin_created(), app]);
        let by =
            |id: &str| decide(&state, &Limits::default(), &Caller::User(id.into()), &kx_create("env1", "x"));
        assert_eq!(by(ADMIN).map(|e| e.len()), Ok(1));
        assert_eq!(
            by(BOB),
            Err(Error::AccessDenied { message: format!("Caller {BOB} is not a SUPER_USER and none of its permission groups grants ManageUsersAndGroups") })
        );
    }

    // Permission groups: given/when/then.

    const GROUP: &str = "01GROUP0000000000000000000";

    fn group_created(permissions: &[ApplicationPermission]) -> Event {
        Event::PermissionGroupCreated {
            permission_group_id: GROUP.into(),
            group: NewGroup {
                name: "analysts".into(),
                description: None,
                application_permissions: permissions.to_vec(),
            },
        }
    }

    fn joined(user: &str) -> Event {
        Event::UserAddedToGroup { permission_group_id: GROUP.into(), user_id: user.into() }
    }

    fn app_user_created(id: &str, email: &str) -> Event {
        Event::Created {
            user_id: id.into(),
            user: new_user(email, UserType::AppUser, Some(ApiAccess::Enabled)),
        }
    }

    fn membership(command: fn(String, String) -> Command, user: &str) -> Command {
        command(GROUP.into(), user.into())
    }

    fn associate(group: String, user: String) -> Command {
        Command::AssociateUserToPermissionGroup { permission_group_id: group, user_id: user }
    }

    fn disassociate(group: String, user: String) -> Command {
        Command::DisassociateUserFromPermissionGroup { permission_group_id: group, user_id: user }
    }

    #[test]
    fn adding_a_member_twice_or_removing_a_non_member_appends_nothing() {
        let state = given(&[created(ALICE, "a@example.com"), group_created(&[])]);
        assert_eq!(when(&state, membership(associate, ALICE)).unwrap(), vec![joined(ALICE)]);
        let state = given(&[created(ALICE, "a@example.com"), group_created(&[]), joined(ALICE)]);
        assert_eq!(when(&state, membership(associate, ALICE)).unwrap(), vec![]);
        let removed =
            Event::UserRemovedFromGroup { permission_group_id: GROUP.into(), user_id: ALICE.into() };
        assert_eq!(when(&state, membership(disassociate, ALICE)).unwrap(), vec![removed.clone()]);
        let state = given(&[created(ALICE, "a@example.com"), group_created(&[]), joined(ALICE), removed]);
        assert_eq!(when(&state, membership(disassociate, ALICE)).unwrap(), vec![]);
    }

    #[test]
    fn memberships_need_an_existing_group_and_user() {
        let state = given(&[created(ALICE, "a@example.com")]);
        let e = when(&state, membership(associate, ALICE)).unwrap_err();
        assert_eq!(
            e,
            Error::ResourceNotFound { message: format!("Permission group {GROUP} does not exist") }
        );
        let state = given(&[group_created(&[])]);
        let e = when(&state, membership(associate, BOB)).unwrap_err();
        assert_eq!(e, Error::ResourceNotFound { message: format!("User {BOB} does not exist") });
        assert_eq!(kind(when(&state, membership(disassociate, BOB))), "ResourceNotFoundException");
    }

    #[test]
    fn deleting_a_group_names_and_ends_its_memberships() {
        let state = given(&[
            created(ALICE, "a@example.com"),
            created(BOB, "b@example.com"),
            group_created(&[]),
            joined(BOB),
            joined(ALICE),
        ]);
        let delete = Command::DeletePermissionGroup { permission_group_id: GROUP.into() };
        let events = when(&state, delete).unwrap();
        let deleted = Event::PermissionGroupDeleted {
            permission_group_id: GROUP.into(),
            members: vec![ALICE.into(), BOB.into()],
        };
        assert_eq!(events, vec![deleted.clone()]);
        let mut after = state.clone();
        apply(&mut after, &deleted, 9000).unwrap();
        assert!(after.groups.is_empty() && after.memberships.is_empty());
        // A log whose Deleted names other members than the fold has is corrupt.
        let wrong =
            Event::PermissionGroupDeleted { permission_group_id: GROUP.into(), members: vec![ALICE.into()] };
        let e = apply(&mut state.clone(), &wrong, 9000).unwrap_err();
        assert_eq!(e.failure(), Some(crate::error::Failure::Corrupt));
    }

    #[test]
    fn an_update_keeps_only_what_changes() {
        let state = given(&[group_created(&[ApplicationPermission::ViewAuditData])]);
        let same = GroupChanges {
            name: Some("analysts".into()),
            application_permissions: Some(vec![ApplicationPermission::ViewAuditData]),
            description: None,
        };
        let update = |changes| Command::UpdatePermissionGroup { permission_group_id: GROUP.into(), changes };
        assert_eq!(when(&state, update(same)).unwrap(), vec![]);
        let renamed = GroupChanges { name: Some("quants".into()), ..GroupChanges::default() };
        let events = when(&state, update(renamed.clone())).unwrap();
        assert_eq!(
            events,
            vec![Event::PermissionGroupUpdated { permission_group_id: GROUP.into(), changes: renamed }]
        );
        let missing = Command::UpdatePermissionGroup {
            permission_group_id: "nope".into(),
            changes: GroupChanges::default(),
        };
        assert_eq!(kind(when(&state, missing)), "ResourceNotFoundException");
    }

    /// Each permission × each access: only the matching permission grants it to an APP_USER.
    #[test]
    fn the_permission_matrix() {
        let accesses = [Access::Read, Access::Manage, Access::Audit, Access::TemporaryCredentials];
        for permission in
            ApplicationPermission::VALUES.iter().map(|p| ApplicationPermission::parse("p", p).unwrap())
        {
            let state = given(&[
                app_user_created(ALICE, "a@example.com"),
                group_created(&[permission]),
                joined(ALICE),
            ]);
            for access in accesses {
                let allowed = authorize(&state, &Caller::User(ALICE.into()), access).is_ok();
                let expected = access.permission().is_none_or(|needed| needed == permission);
                assert_eq!(allowed, expected, "{permission} → {access:?}");
            }
        }
        // Without a group, an APP_USER may only read; a SUPER_USER may do everything.
        let state = given(&[app_user_created(ALICE, "a@example.com"), admin_created()]);
        for access in accesses {
            assert_eq!(
                authorize(&state, &Caller::User(ALICE.into()), access).is_ok(),
                access == Access::Read
            );
            assert!(authorize(&state, &Caller::User(ADMIN.into()), access).is_ok());
        }
    }

    #[test]
    fn permissions_come_from_every_group_and_leave_with_the_membership() {
        let other = "01OTHER0000000000000000000";
        let state = given(&[
            app_user_created(ALICE, "a@example.com"),
            group_created(&[ApplicationPermission::ViewAuditData]),
            Event::PermissionGroupCreated {
                permission_group_id: other.into(),
                group: NewGroup {
                    name: "managers".into(),
                    description: None,
                    application_permissions: vec![ApplicationPermission::ManageUsersAndGroups],
                },
            },
            joined(ALICE),
            Event::UserAddedToGroup { permission_group_id: other.into(), user_id: ALICE.into() },
        ]);
        let alice = Caller::User(ALICE.into());
        assert!(authorize(&state, &alice, Access::Manage).is_ok());
        assert!(authorize(&state, &alice, Access::Audit).is_ok());
        let mut left = state.clone();
        let leave = Event::UserRemovedFromGroup { permission_group_id: other.into(), user_id: ALICE.into() };
        apply(&mut left, &leave, 9000).unwrap();
        assert_eq!(
            authorize(&left, &alice, Access::Manage),
            Err(Error::AccessDenied {
                message: format!(
                    "Caller {ALICE} is not a SUPER_USER and none of its permission groups grants ManageUsersAndGroups"
                )
            })
        );
        // A DISABLED member can still do nothing.
        let mut disabled = state.clone();
        apply(&mut disabled, &Event::Disabled { user_id: ALICE.into() }, 9000).unwrap();
        assert!(authorize(&disabled, &alice, Access::Read).is_err());
    }

    /// ManageUsersAndGroups lets an APP_USER manage users and groups, never past itself: given
    /// Alice, an APP_USER manager, Bob, an APP_USER, and a SUPER_USER, when each tries what would
    /// raise someone above what Alice holds, then only the SUPER_USER (and the system) may.
    #[test]
    fn a_manager_app_user_cannot_escalate_past_what_it_holds() {
        let audit_group = "01AUDIT0000000000000000000";
        let state = given(&[
            admin_created(),
            app_user_created(ALICE, "a@example.com"),
            app_user_created(BOB, "b@example.com"),
            group_created(&[ApplicationPermission::ManageUsersAndGroups]),
            joined(ALICE),
            Event::PermissionGroupCreated {
                permission_group_id: audit_group.into(),
                group: NewGroup {
                    name: "auditors".into(),
                    description: None,
                    application_permissions: vec![ApplicationPermission::ViewAuditData],
                },
            },
        ]);
        let super_user = |id: &str| Command::CreateUser {
            user_id: id.into(),
            user: new_user("s@example.com", UserType::SuperUser, None),
        };
        let change = |user_id: &str, user_type| Command::UpdateUser {
            user_id: user_id.into(),
            changes: UserChanges { user_type, first_name: Some("X".into()), ..UserChanges::default() },
        };
        let group = |permissions: &[ApplicationPermission]| Command::CreatePermissionGroup {
            permission_group_id: "01NEW00000000000000000000".into(),
            group: NewGroup {
                name: "new".into(),
                description: None,
                application_permissions: permissions.to_vec(),
            },
        };
        let reset = |user_id: &str| Command::ResetUserPassword {
            user_id: user_id.into(),
            password_hash: "h".into(),
            sealed_password: vec![],
        };
        let key = |user_id: &str| Command::CreateAccessKey {
            access_key_id: "ULAKX".into(),
            user_id: user_id.into(),
        };
        let denied =
            |why: &str| Err(Error::AccessDenied { message: format!("Caller {ALICE} is an APP_USER: {why}") });
        let refused = [
            (super_user("01S"), "only a SUPER_USER creates a SUPER_USER".to_owned()),
            (change(ALICE, Some(UserType::SuperUser)), "only a SUPER_USER makes a user a SUPER_USER".into()),
            (change(BOB, Some(UserType::SuperUser)), "only a SUPER_USER makes a user a SUPER_USER".into()),
            (change(ADMIN, None), format!("only a SUPER_USER may UpdateUser for SUPER_USER {ADMIN}")),
            (
                change(ADMIN, Some(UserType::AppUser)),
                format!("only a SUPER_USER may UpdateUser for SUPER_USER {ADMIN}"),
            ),
            (
                Command::DisableUser { user_id: ADMIN.into() },
                format!("only a SUPER_USER may DisableUser for SUPER_USER {ADMIN}"),
            ),
            (
                Command::EnableUser { user_id: ADMIN.into() },
                format!("only a SUPER_USER may EnableUser for SUPER_USER {ADMIN}"),
            ),
            (key(ADMIN), format!("only a SUPER_USER may CreateAccessKey for SUPER_USER {ADMIN}")),
            (reset(ADMIN), "Only a superuser can reset password for other users".into()),
            (reset(BOB), "Only a superuser can reset password for other users".into()),
            (
                group(&[ApplicationPermission::ManageUsersAndGroups, ApplicationPermission::ViewAuditData]),
                "it cannot grant ViewAuditData, which it does not hold itself".into(),
            ),
            (
                Command::UpdatePermissionGroup {
                    permission_group_id: GROUP.into(),
                    changes: GroupChanges {
                        application_permissions: Some(vec![ApplicationPermission::GetTemporaryCredentials]),
                        ..GroupChanges::default()
                    },
                },
                "it cannot grant GetTemporaryCredentials, which it does not hold itself".into(),
            ),
            (
                Command::AssociateUserToPermissionGroup {
                    permission_group_id: audit_group.into(),
                    user_id: ALICE.into(),
                },
                format!(
                    "permission group {audit_group} grants ViewAuditData, which the caller does not hold"
                ),
            ),
        ];
        let (alice, admin) = (Caller::User(ALICE.into()), Caller::User(ADMIN.into()));
        for (command, why) in &refused {
            let then = decide(&state, &Limits::default(), &alice, command);
            assert_eq!(then, denied(why), "{command:?}");
            for allowed in [&admin, &Caller::System] {
                assert!(
                    decide(&state, &Limits::default(), allowed, command).is_ok(),
                    "{allowed:?} {command:?}"
                );
            }
        }
        // What stays within Alice's own permissions she may do.
        for command in [
            create(CAROL, "c@example.com"),
            change(BOB, None),
            change(ALICE, Some(UserType::AppUser)),
            Command::DisableUser { user_id: BOB.into() },
            reset(ALICE),
            key(BOB),
            group(&[ApplicationPermission::ManageUsersAndGroups]),
            Command::AssociateUserToPermissionGroup {
                permission_group_id: GROUP.into(),
                user_id: BOB.into(),
            },
            Command::DisassociateUserFromPermissionGroup {
                permission_group_id: audit_group.into(),
                user_id: BOB.into(),
            },
        ] {
            assert!(decide(&state, &Limits::default(), &alice, &command).is_ok(), "{command:?}");
        }
        // Any ENABLED user with apiAccess resets its own password, with no group at all.
        let bob = Caller::User(BOB.into());
        assert!(decide(&state, &Limits::default(), &bob, &reset(BOB)).is_ok());
        assert_eq!(kind(decide(&state, &Limits::default(), &bob, &reset(ALICE))), "AccessDeniedException");
    }

    /// The other half of the permission matrix: which access each operation needs.
    #[test]
    fn every_command_needs_the_access_its_operation_belongs_to() {
        let id = || "x".to_string();
        let manage = [
            create(ALICE, "a@example.com"),
            Command::UpdateUser { user_id: id(), changes: UserChanges::default() },
            Command::EnableUser { user_id: id() },
            Command::DisableUser { user_id: id() },
            Command::CreateKxUser {
                environment_id: id(),
                user_name: id(),
                iam_role: id(),
                tags: Tags::new(),
            },
            Command::UpdateKxUser { environment_id: id(), user_name: id(), iam_role: id() },
            Command::DeleteKxUser { environment_id: id(), user_name: id() },
            Command::CreateAccessKey { access_key_id: id(), user_id: id() },
            Command::DeleteAccessKey { access_key_id: id() },
            Command::CreatePrincipalKey { access_key_id: id(), principal_arn: id() },
            Command::CreatePermissionGroup {
                permission_group_id: id(),
                group: NewGroup { name: id(), description: None, application_permissions: vec![] },
            },
            Command::UpdatePermissionGroup { permission_group_id: id(), changes: GroupChanges::default() },
            Command::DeletePermissionGroup { permission_group_id: id() },
            membership(associate, ALICE),
            membership(disassociate, ALICE),
            Command::SignIn { user_id: id() },
        ];
        let reset =
            Command::ResetUserPassword { user_id: id(), password_hash: id(), sealed_password: vec![] };
        assert_eq!(reset.access(), Access::Read, "whose password decides who may: check_escalation");
        for command in manage {
            assert_eq!(command.access(), Access::Manage, "{}", command.operation());
        }
        let issue = Command::IssueCredentials { access_key_id: id(), expires_ms: 0 };
        assert_eq!(issue.access(), Access::TemporaryCredentials);
        // An APP_USER holding every permission but ManageUsersAndGroups is refused every change.
        let others: Vec<ApplicationPermission> = ApplicationPermission::VALUES
            .iter()
            .map(|p| ApplicationPermission::parse("p", p).unwrap())
            .filter(|p| *p != ApplicationPermission::ManageUsersAndGroups)
            .collect();
        let state = given(&[app_user_created(ALICE, "a@example.com"), group_created(&others), joined(ALICE)]);
        let alice = Caller::User(ALICE.into());
        let update = Command::UpdateUser { user_id: ALICE.into(), changes: UserChanges::default() };
        assert_eq!(kind(decide(&state, &Limits::default(), &alice, &update)), "AccessDeniedException");
    }
}
