//! `apply(views, event)`: the fold of one event, dispatched to its family, and what a fold
//! reports for an event that contradicts the views (a corrupt log).

use crate::core::event::{Event, Subject};
use crate::core::state::Views;
use crate::core::{groups, keyring, keys, kx, users};
use crate::error::{Error, Result};

/// Folds one event, which happened at `time_ms`, into the views.
///
/// Errors only if the views cannot be read, or if the event contradicts them (a corrupt log).
pub fn apply(views: &mut impl Views, event: &Event, time_ms: i64) -> Result<()> {
    if let Some(applied) = keys::apply(views, event, time_ms) {
        return applied;
    }
    if let Some(applied) = keyring::apply(views, event) {
        return applied;
    }
    match event.subject() {
        Subject::PermissionGroup(group) => groups::apply(views, group, event, time_ms),
        Subject::Principal(arn) => Err(contradiction(event, format_args!("principal {arn}"), false)),
        Subject::Keyring => Err(contradiction(event, "the keyring", false)),
        Subject::User(user_id) => users::apply(views, user_id, event, time_ms),
        Subject::KxUser(environment_id, user_name) => {
            kx::apply(views, environment_id, user_name, event, time_ms)
        }
    }
}

pub(super) fn contradiction(event: &Event, who: impl std::fmt::Display, exists: bool) -> Error {
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
