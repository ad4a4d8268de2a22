//! The users family: CreateUser, UpdateUser, EnableUser, DisableUser, ResetUserPassword and
//! sign-in; what each decides, and how its events fold into the user views.

use crate::core::apply::contradiction;
use crate::core::domain::{email_key, NewUser, User, UserChanges, UserId, UserStatus};
use crate::core::event::Event;
use crate::core::personal::{self, SealedUser};
use crate::core::{Limits, State, ViewChange, Views};
use crate::error::{Error, Result};

/// CreateUser: refused if the email (in any case) or the id is taken, or the quota is reached.
/// With a sealed profile (see [`personal`]) the event records it, and the address is checked
/// against the keyed index and the clear one users made before sealing hold.
pub(super) fn create(
    state: &(impl State + ?Sized),
    limits: &Limits,
    user_id: &UserId,
    user: &NewUser,
    sealed: Option<&SealedUser>,
) -> Result<Vec<Event>> {
    let indexed = sealed.map(|s| s.email_index.clone());
    for key in indexed.into_iter().chain([email_key(&user.email_address)]) {
        if let Some(owner) = state.email_owner(&key)? {
            return Err(Error::Conflict {
                message: format!(
                    "A user with email address {} already exists (userId {owner})",
                    user.email_address
                ),
                reason: Some("EMAIL_ALREADY_EXISTS".into()),
            });
        }
    }
    if state.user(user_id)?.is_some() {
        return Err(Error::Conflict {
            message: format!("A user with userId {user_id} already exists"),
            reason: Some("USER_ID_ALREADY_EXISTS".into()),
        });
    }
    check_enabled_quota(state, limits)?;
    let user = sealed.map_or_else(|| user.clone(), |s| s.user.clone());
    Ok(vec![Event::Created { user_id: user_id.clone(), user }])
}

/// UpdateUser: an event of only the fields that change; none is a no-op. A user made with a
/// person key takes its names sealed (sealing is a pure function, so an unchanged name seals to
/// the text the user holds).
pub(super) fn update(
    state: &(impl State + ?Sized),
    user_id: &UserId,
    changes: &UserChanges,
    sealed: Option<&UserChanges>,
) -> Result<Vec<Event>> {
    let current = existing(state, user_id)?;
    let changes = match sealed {
        Some(sealed) => sealed,
        None if personal::is_sealed(&current.email_address) => {
            return Err(Error::corrupt(format_args!("the person key of user {user_id} is missing")))
        }
        None => changes,
    };
    let changes = changed_fields(&current, changes);
    Ok(if changes.is_empty() { vec![] } else { vec![Event::Updated { user_id: user_id.clone(), changes }] })
}

/// Erasure: the user's memberships, and those of the access keys and temporary credentials it
/// was `issued` that it still holds, end (events of their own, folded as always), then the
/// erasure itself; the commit destroys the person key.
pub(super) fn erase(
    state: &(impl State + ?Sized),
    user_id: &UserId,
    issued: &[String],
) -> Result<Vec<Event>> {
    existing(state, user_id)?;
    let user = || user_id.clone();
    let mut events = Vec::new();
    for permission_group_id in state.groups_of(user_id)? {
        events.push(Event::UserRemovedFromGroup { permission_group_id, user_id: user() });
    }
    for id in issued {
        if state.access_key(id)?.is_some_and(|key| key.user_id == *user_id) {
            events.push(Event::AccessKeyDeleted { access_key_id: id.clone(), user_id: user() });
        } else if state.temporary_credential(id)?.is_some_and(|c| c.user_id == *user_id) {
            events.push(Event::CredentialsRevoked { access_key_id: id.clone(), user_id: user() });
        }
    }
    events.push(Event::PersonalDataErased { user_id: user() });
    Ok(events)
}

/// EnableUser: an event only when the status changes, within the quota.
pub(super) fn enable(state: &(impl State + ?Sized), limits: &Limits, user_id: &UserId) -> Result<Vec<Event>> {
    match existing(state, user_id)?.status {
        UserStatus::Enabled => Ok(vec![]),
        UserStatus::Disabled | UserStatus::Creating => {
            check_enabled_quota(state, limits)?;
            Ok(vec![Event::Enabled { user_id: user_id.clone() }])
        }
    }
}

/// DisableUser: an event only when the status changes.
pub(super) fn disable(state: &(impl State + ?Sized), user_id: &UserId) -> Result<Vec<Event>> {
    match existing(state, user_id)?.status {
        UserStatus::Disabled => Ok(vec![]),
        UserStatus::Enabled | UserStatus::Creating => Ok(vec![Event::Disabled { user_id: user_id.clone() }]),
    }
}

/// ResetUserPassword: the (sealed) hash the caller of `decide` drew.
pub(super) fn reset_password(
    state: &(impl State + ?Sized),
    user_id: &UserId,
    password_hash: &str,
) -> Result<Vec<Event>> {
    existing(state, user_id)?;
    Ok(vec![Event::PasswordReset { user_id: user_id.clone(), password_hash: password_hash.to_owned() }])
}

/// A sign-in whose password was checked: only an ENABLED user signs in.
pub(super) fn sign_in(state: &(impl State + ?Sized), user_id: &UserId) -> Result<Vec<Event>> {
    match state.user(user_id)? {
        Some(user) if user.status == UserStatus::Enabled => {
            Ok(vec![Event::SignedIn { user_id: user_id.clone() }])
        }
        _ => Err(Error::AccessDenied { message: SIGN_IN_FAILED.into() }),
    }
}

/// An operator lifting a user's lockout: the user must exist.
pub(super) fn clear_sign_in_lockout(state: &(impl State + ?Sized), user_id: &UserId) -> Result<Vec<Event>> {
    existing(state, user_id)?;
    Ok(vec![Event::SignInLockoutCleared { user_id: user_id.clone() }])
}

/// The one answer to a failed sign-in, whatever failed: it must not tell an attacker which.
pub const SIGN_IN_FAILED: &str =
    "Sign-in failed: the email address and password do not match an ENABLED user";

pub(super) fn existing(state: &(impl State + ?Sized), user_id: &str) -> Result<User> {
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

/// What `apply` reports for a user created with an email another user has (the address is
/// not named: an error may be logged, and the address is personal data).
pub fn email_taken(user_id: &str, owner: &str) -> Error {
    Error::corrupt(format_args!(
        "corrupt log: Created event for user {user_id} with an email address user {owner} has already"
    ))
}

/// Folds a user event into the user, email and enabled-count views.
pub(super) fn apply(views: &mut impl Views, user_id: &str, event: &Event, time_ms: i64) -> Result<()> {
    let before = views.user(user_id)?;
    let was_enabled = before.as_ref().is_some_and(|u| u.status == UserStatus::Enabled);
    let user = match (before, event) {
        (Some(user), Event::PersonalDataErased { user_id }) => {
            views.change(ViewChange::RemoveEmail(email_key(&user.email_address)));
            views.change(ViewChange::RemovePassword(user_id.clone()));
            views.change(ViewChange::RemoveUser(user_id.clone()));
            return count_enabled(views, was_enabled, false);
        }
        (None, Event::Created { user_id, user }) => {
            let key = email_key(&user.email_address);
            // The decider refuses a taken email; a log that holds one anyway is corrupt.
            if let Some(owner) = views.email_owner(&key)? {
                return Err(email_taken(user_id, &owner));
            }
            views.change(ViewChange::PutEmail(key, user_id.clone()));
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
            views.change(ViewChange::PutPassword(user_id.clone(), password_hash.clone()));
            user.last_modified_time = time_ms;
            user
        }
        (Some(mut user), Event::SignedIn { .. }) => {
            user.last_login_time = Some(time_ms);
            user
        }
        // Only history: the failures it cleared are counted outside the log.
        (Some(user), Event::SignInLockoutCleared { .. }) => user,
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
    views.change(ViewChange::PutUser(user));
    count_enabled(views, was_enabled, is_enabled)
}

/// Keeps the count of ENABLED users when a user's status moves.
fn count_enabled(views: &mut impl Views, was_enabled: bool, is_enabled: bool) -> Result<()> {
    if was_enabled != is_enabled {
        let enabled = views.enabled_users()?;
        views.change(ViewChange::EnabledUsers(if is_enabled {
            enabled + 1
        } else {
            enabled.saturating_sub(1)
        }));
    }
    Ok(())
}
