//! The keys family: users' access keys, IAM principals' keys and the temporary credentials
//! GetProgrammaticAccessCredentials issues; what each command decides, and how its events fold.

use crate::core::apply::{contradiction, no_such_user};
use crate::core::domain::{AccessKey, Caller, PrincipalKey, TemporaryCredential, User, UserId};
use crate::core::event::Event;
use crate::core::{authorize, Access, State, ViewChange, Views};
use crate::error::{Error, Result};

/// Issue an access key to an existing user under an id no key has.
pub(super) fn create_access_key(
    state: &(impl State + ?Sized),
    access_key_id: &str,
    user_id: &UserId,
) -> Result<Vec<Event>> {
    super::users::existing(state, user_id)?;
    if state.access_key(access_key_id)?.is_some() {
        return Err(key_exists(access_key_id));
    }
    Ok(vec![Event::AccessKeyCreated { access_key_id: access_key_id.to_owned(), user_id: user_id.clone() }])
}

/// Delete a key by id: a user's key, temporary credentials (revoked), or a principal's key.
pub(super) fn delete_access_key(state: &(impl State + ?Sized), access_key_id: &str) -> Result<Vec<Event>> {
    if let Some(key) = state.access_key(access_key_id)? {
        return Ok(vec![Event::AccessKeyDeleted { access_key_id: key.access_key_id, user_id: key.user_id }]);
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

/// Issue a key standing for an IAM principal under an id no key has.
pub(super) fn create_principal_key(
    state: &(impl State + ?Sized),
    access_key_id: &str,
    principal_arn: &str,
) -> Result<Vec<Event>> {
    if state.access_key(access_key_id)?.is_some() || state.principal_key(access_key_id)?.is_some() {
        return Err(key_exists(access_key_id));
    }
    Ok(vec![Event::PrincipalKeyCreated {
        access_key_id: access_key_id.to_owned(),
        principal_arn: principal_arn.to_owned(),
    }])
}

/// GetProgrammaticAccessCredentials: only a principal, for the user it may act for.
pub(super) fn issue_credentials(
    state: &(impl State + ?Sized),
    caller: &Caller,
    access_key_id: &str,
    expires_ms: i64,
) -> Result<Vec<Event>> {
    let Caller::Principal(principal_arn) = caller else {
        return Err(Error::AccessDenied {
            message: "GetProgrammaticAccessCredentials takes the key of an IAM principal".into(),
        });
    };
    let user = credential_holder(state, principal_arn)?;
    Ok(vec![Event::CredentialsIssued {
        access_key_id: access_key_id.to_owned(),
        user_id: user.user_id,
        principal_arn: principal_arn.clone(),
        expires_ms,
    }])
}

fn key_exists(access_key_id: &str) -> Error {
    Error::Conflict {
        message: format!("Access key {access_key_id} exists already"),
        reason: Some("ACCESS_KEY_ALREADY_EXISTS".into()),
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

/// Folds a key event into the key views; `None` for an event of another family.
pub(super) fn apply(views: &mut impl Views, event: &Event, time_ms: i64) -> Option<Result<()>> {
    Some(match event {
        Event::AccessKeyCreated { access_key_id, .. } | Event::AccessKeyDeleted { access_key_id, .. } => {
            apply_access_key(views, access_key_id, event, time_ms)
        }
        Event::PrincipalKeyCreated { access_key_id, .. }
        | Event::PrincipalKeyDeleted { access_key_id, .. } => {
            apply_principal_key(views, access_key_id, event, time_ms)
        }
        Event::CredentialsIssued { access_key_id, .. } | Event::CredentialsRevoked { access_key_id, .. } => {
            apply_credentials(views, access_key_id, event)
        }
        _ => return None,
    })
}

fn apply_principal_key(
    views: &mut impl Views,
    access_key_id: &str,
    event: &Event,
    time_ms: i64,
) -> Result<()> {
    let before = views.principal_key(access_key_id)?;
    match (before, event) {
        (None, Event::PrincipalKeyCreated { principal_arn, .. })
            if views.access_key(access_key_id)?.is_none() =>
        {
            views.change(ViewChange::PutPrincipalKey(PrincipalKey {
                access_key_id: access_key_id.to_owned(),
                principal_arn: principal_arn.clone(),
                create_time: time_ms,
            }));
        }
        (Some(key), Event::PrincipalKeyDeleted { principal_arn, .. })
            if key.principal_arn == *principal_arn =>
        {
            views.change(ViewChange::RemovePrincipalKey(access_key_id.to_owned()));
        }
        (before, event) => {
            let exists = before.is_some() || matches!(event, Event::PrincipalKeyCreated { .. });
            return Err(contradiction(event, format_args!("access key {access_key_id}"), exists));
        }
    }
    Ok(())
}

fn apply_credentials(views: &mut impl Views, access_key_id: &str, event: &Event) -> Result<()> {
    let before = views.temporary_credential(access_key_id)?;
    match (before, event) {
        (None, Event::CredentialsIssued { user_id, principal_arn, expires_ms, .. })
            if views.user_exists(user_id)? =>
        {
            views.change(ViewChange::PutTemporaryCredential(TemporaryCredential {
                access_key_id: access_key_id.to_owned(),
                user_id: user_id.clone(),
                principal_arn: principal_arn.clone(),
                expires_ms: *expires_ms,
            }));
        }
        (_, Event::CredentialsIssued { .. }) => return Err(no_such_user(event)),
        (Some(credential), Event::CredentialsRevoked { user_id, .. }) if credential.user_id == *user_id => {
            views.change(ViewChange::RemoveTemporaryCredential(access_key_id.to_owned()));
        }
        (before, event) => {
            let who = format_args!("temporary credentials {access_key_id}");
            return Err(contradiction(event, who, before.is_some()));
        }
    }
    Ok(())
}

fn apply_access_key(views: &mut impl Views, access_key_id: &str, event: &Event, time_ms: i64) -> Result<()> {
    let before = views.access_key(access_key_id)?;
    match (before, event) {
        (None, Event::AccessKeyCreated { user_id, .. }) => {
            if !views.user_exists(user_id)? {
                return Err(no_such_user(event));
            }
            views.change(ViewChange::PutAccessKey(AccessKey {
                access_key_id: access_key_id.to_owned(),
                user_id: user_id.clone(),
                create_time: time_ms,
            }));
        }
        (Some(key), Event::AccessKeyDeleted { user_id, .. }) if key.user_id == *user_id => {
            views.change(ViewChange::RemoveAccessKey(access_key_id.to_owned()));
        }
        (before, event) => {
            return Err(contradiction(event, format_args!("access key {access_key_id}"), before.is_some()));
        }
    }
    Ok(())
}
