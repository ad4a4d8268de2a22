//! The kdb users family: CreateKxUser, UpdateKxUser, DeleteKxUser; what each decides, and how
//! its events fold into the kdb user views and the per-environment counts.

use crate::core::apply::contradiction;
use crate::core::domain::{KxUser, Tags};
use crate::core::event::Event;
use crate::core::{Limits, State, ViewChange, Views};
use crate::error::{Error, Result};

/// CreateKxUser: refused if the name is taken in the environment or its quota is reached.
pub(super) fn create(
    state: &(impl State + ?Sized),
    limits: &Limits,
    environment_id: &str,
    user_name: &str,
    iam_role: &str,
    tags: &Tags,
) -> Result<Vec<Event>> {
    if state.kx_user(environment_id, user_name)?.is_some() {
        return Err(Error::ResourceAlreadyExists {
            message: format!("kdb user {user_name} already exists in environment {environment_id}"),
        });
    }
    match limits.max_kx_users_per_environment {
        Some(max) if state.kx_users_in(environment_id)? >= max => Err(Error::LimitExceeded {
            message: format!("The limit of {max} kdb users in environment {environment_id} is reached"),
        }),
        _ => Ok(vec![Event::KxUserCreated {
            environment_id: environment_id.to_owned(),
            user_name: user_name.to_owned(),
            iam_role: iam_role.to_owned(),
            tags: tags.clone(),
        }]),
    }
}

/// UpdateKxUser: the old and the new role; the same role is a no-op.
pub(super) fn update(
    state: &(impl State + ?Sized),
    environment_id: &str,
    user_name: &str,
    iam_role: &str,
) -> Result<Vec<Event>> {
    let current = existing_kx(state, environment_id, user_name)?;
    Ok(if current.iam_role == iam_role {
        vec![]
    } else {
        vec![Event::KxRoleChanged {
            environment_id: environment_id.to_owned(),
            user_name: user_name.to_owned(),
            old_role: current.iam_role,
            new_role: iam_role.to_owned(),
        }]
    })
}

/// DeleteKxUser: the user must exist.
pub(super) fn delete(
    state: &(impl State + ?Sized),
    environment_id: &str,
    user_name: &str,
) -> Result<Vec<Event>> {
    existing_kx(state, environment_id, user_name)?;
    Ok(vec![Event::KxUserDeleted {
        environment_id: environment_id.to_owned(),
        user_name: user_name.to_owned(),
    }])
}

fn existing_kx(state: &(impl State + ?Sized), environment_id: &str, user_name: &str) -> Result<KxUser> {
    state.kx_user(environment_id, user_name)?.ok_or_else(|| Error::ResourceNotFound {
        message: format!("kdb user {user_name} does not exist in environment {environment_id}"),
    })
}

/// Folds a kdb user event into the kdb user views and the environment's count.
pub(super) fn apply(
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
            views.change(ViewChange::PutKxUser(KxUser {
                environment_id: environment_id.to_owned(),
                user_name: user_name.to_owned(),
                iam_role: iam_role.clone(),
                tags: tags.clone(),
                create_time: time_ms,
                update_time: time_ms,
            }));
            views.change(ViewChange::KxUsersIn(environment_id.to_owned(), count + 1));
        }
        (Some(mut user), Event::KxRoleChanged { new_role, .. }) => {
            user.iam_role = new_role.clone();
            user.update_time = time_ms;
            views.change(ViewChange::PutKxUser(user));
        }
        (Some(_), Event::KxUserDeleted { .. }) => {
            views.change(ViewChange::RemoveKxUser(environment_id.to_owned(), user_name.to_owned()));
            views.change(ViewChange::KxUsersIn(environment_id.to_owned(), count.saturating_sub(1)));
        }
        (before, event) => {
            let who = format_args!("kdb user {user_name} of environment {environment_id}");
            return Err(contradiction(event, who, before.is_some()));
        }
    }
    Ok(())
}
