//! `decide(state, command) -> events`: authorization, the rule against escalation, then the
//! command's family decides.

use crate::core::authorize::{authorize, check_escalation};
use crate::core::command::{Command, Limits};
use crate::core::domain::Caller;
use crate::core::event::Event;
use crate::core::state::State;
use crate::core::{groups, keyring, keys, kx, users};
use crate::error::Result;

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
        Command::CreateUser { user_id, user, sealed } => {
            users::create(state, limits, user_id, user, sealed.as_ref())
        }
        Command::UpdateUser { user_id, changes, sealed } => {
            users::update(state, user_id, changes, sealed.as_ref())
        }
        Command::EraseUser { user_id, issued } => users::erase(state, user_id, issued),
        Command::EnableUser { user_id } => users::enable(state, limits, user_id),
        Command::DisableUser { user_id } => users::disable(state, user_id),
        Command::ResetUserPassword { user_id, password_hash, .. } => {
            users::reset_password(state, user_id, password_hash)
        }
        Command::SignIn { user_id } => users::sign_in(state, user_id),
        Command::ClearSignInLockout { user_id } => users::clear_sign_in_lockout(state, user_id),
        Command::CreateKxUser { environment_id, user_name, iam_role, tags } => {
            kx::create(state, limits, environment_id, user_name, iam_role, tags)
        }
        Command::UpdateKxUser { environment_id, user_name, iam_role } => {
            kx::update(state, environment_id, user_name, iam_role)
        }
        Command::DeleteKxUser { environment_id, user_name } => kx::delete(state, environment_id, user_name),
        Command::CreateAccessKey { access_key_id, user_id } => {
            keyring::check_issuable(state, access_key_id)?;
            keys::create_access_key(state, access_key_id, user_id)
        }
        Command::DeleteAccessKey { access_key_id } => keys::delete_access_key(state, access_key_id),
        Command::CreatePrincipalKey { access_key_id, principal_arn } => {
            keyring::check_issuable(state, access_key_id)?;
            keys::create_principal_key(state, access_key_id, principal_arn)
        }
        Command::IssueCredentials { access_key_id, expires_ms } => {
            keyring::check_issuable(state, access_key_id)?;
            keys::issue_credentials(state, caller, access_key_id, *expires_ms)
        }
        Command::RotateDataKey { key_id, root_key_id } => keyring::rotate(state, *key_id, root_key_id),
        Command::RetireDataKey { key_id } => keyring::retire(state, *key_id),
        Command::ChangeRootKey { old_root_key_id, new_root_key_id } => Ok(vec![Event::RootKeyChanged {
            old_root_key_id: old_root_key_id.clone(),
            new_root_key_id: new_root_key_id.clone(),
        }]),
        Command::StartEpoch { previous_origin, previous_size, previous_root, origin } => {
            Ok(vec![Event::EpochStarted {
                previous_origin: previous_origin.clone(),
                previous_size: *previous_size,
                previous_root: previous_root.clone(),
                origin: origin.clone(),
            }])
        }
        Command::RotateCheckpointKey { old_verifier_key, new_verifier_key } => {
            Ok(vec![Event::CheckpointKeyRotated {
                old_verifier_key: old_verifier_key.clone(),
                new_verifier_key: new_verifier_key.clone(),
            }])
        }
        Command::CreatePermissionGroup { permission_group_id, group } => {
            groups::create(state, permission_group_id, group)
        }
        Command::UpdatePermissionGroup { permission_group_id, changes } => {
            groups::update(state, permission_group_id, changes)
        }
        Command::DeletePermissionGroup { permission_group_id } => groups::delete(state, permission_group_id),
        Command::AssociateUserToPermissionGroup { permission_group_id, user_id } => {
            groups::set_member(state, permission_group_id, user_id, true)
        }
        Command::DisassociateUserFromPermissionGroup { permission_group_id, user_id } => {
            groups::set_member(state, permission_group_id, user_id, false)
        }
    }
}
