//! Who may do what: the access a request needs, the check that a caller has it, and the rule
//! against escalation.

use crate::core::command::Command;
use crate::core::domain::{
    ApiAccess, ApplicationPermission, Caller, GroupChanges, NewGroup, UserStatus, UserType,
};
use crate::core::state::State;
use crate::error::{Error, Result};

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
    /// Rotate, retire or re-wrap the keyring's keys: the system (the root) only.
    Keys,
}

impl Access {
    /// The application permission that grants this access to an APP_USER; `None` for reads,
    /// which every user that may act at all may do.
    pub fn permission(self) -> Option<ApplicationPermission> {
        match self {
            Access::Read | Access::Keys => None,
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
        Caller::User(id) if access == Access::Keys => {
            return Err(Error::AccessDenied {
                message: format!("Caller {id} is not the root: only it manages keys"),
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
pub(super) fn held_permissions(
    state: &(impl State + ?Sized),
    user_id: &str,
) -> Result<Vec<ApplicationPermission>> {
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
pub(super) fn check_escalation(
    state: &(impl State + ?Sized),
    caller: &Caller,
    command: &Command,
) -> Result<()> {
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
