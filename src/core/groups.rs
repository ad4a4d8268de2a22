//! The permission groups family: CreatePermissionGroup, UpdatePermissionGroup,
//! DeletePermissionGroup and the memberships; what each decides, and how its events fold into the
//! group and membership views.

use crate::core::apply::{contradiction, no_such_user};
use crate::core::domain::{GroupChanges, NewGroup, PermissionGroup, UserId};
use crate::core::event::Event;
use crate::core::{State, ViewChange, Views};
use crate::error::{Error, Result};

/// CreatePermissionGroup under an id no group has.
pub(super) fn create(
    state: &(impl State + ?Sized),
    permission_group_id: &str,
    group: &NewGroup,
) -> Result<Vec<Event>> {
    if state.permission_group(permission_group_id)?.is_some() {
        return Err(Error::Conflict {
            message: format!("A permission group with id {permission_group_id} already exists"),
            reason: Some("PERMISSION_GROUP_ID_ALREADY_EXISTS".into()),
        });
    }
    let permission_group_id = permission_group_id.to_owned();
    Ok(vec![Event::PermissionGroupCreated { permission_group_id, group: group.clone() }])
}

/// UpdatePermissionGroup: an event of only the fields that change; none is a no-op.
pub(super) fn update(
    state: &(impl State + ?Sized),
    permission_group_id: &str,
    changes: &GroupChanges,
) -> Result<Vec<Event>> {
    let current = existing_group(state, permission_group_id)?;
    let changes = changed_group_fields(&current, changes);
    let permission_group_id = permission_group_id.to_owned();
    Ok(if changes.is_empty() {
        vec![]
    } else {
        vec![Event::PermissionGroupUpdated { permission_group_id, changes }]
    })
}

/// DeletePermissionGroup: the event names every member, whose memberships end with it.
pub(super) fn delete(state: &(impl State + ?Sized), permission_group_id: &str) -> Result<Vec<Event>> {
    existing_group(state, permission_group_id)?;
    let members = state.members_of(permission_group_id)?;
    Ok(vec![Event::PermissionGroupDeleted { permission_group_id: permission_group_id.to_owned(), members }])
}

/// AssociateUserToPermissionGroup (`member`) or DisassociateUserFromPermissionGroup: an event
/// only when the membership changes.
pub(super) fn set_member(
    state: &(impl State + ?Sized),
    permission_group_id: &str,
    user_id: &UserId,
    member: bool,
) -> Result<Vec<Event>> {
    existing_group(state, permission_group_id)?;
    super::users::existing(state, user_id)?;
    if state.is_member(permission_group_id, user_id)? == member {
        return Ok(vec![]);
    }
    let (permission_group_id, user_id) = (permission_group_id.to_owned(), user_id.clone());
    Ok(vec![if member {
        Event::UserAddedToGroup { permission_group_id, user_id }
    } else {
        Event::UserRemovedFromGroup { permission_group_id, user_id }
    }])
}

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

/// Folds a group event into the group and membership views.
pub(super) fn apply(views: &mut impl Views, group: &str, event: &Event, time_ms: i64) -> Result<()> {
    let before = views.permission_group(group)?;
    let contradicts = |exists: bool| contradiction(event, format_args!("permission group {group}"), exists);
    match (before, event) {
        (None, Event::PermissionGroupCreated { group: new, .. }) => {
            views.change(ViewChange::PutGroup(PermissionGroup {
                permission_group_id: group.to_owned(),
                name: new.name.clone(),
                description: new.description.clone(),
                application_permissions: new.application_permissions.clone(),
                create_time: time_ms,
                last_modified_time: time_ms,
            }))
        }
        (Some(mut current), Event::PermissionGroupUpdated { changes, .. }) => {
            let c = changes.clone();
            current.name = c.name.unwrap_or(current.name);
            current.description = c.description.or(current.description);
            current.application_permissions =
                c.application_permissions.unwrap_or(current.application_permissions);
            current.last_modified_time = time_ms;
            views.change(ViewChange::PutGroup(current));
        }
        (Some(_), Event::PermissionGroupDeleted { members, .. }) => {
            // The event names every member; a log whose fold holds others is corrupt.
            if views.members_of(group)? != *members {
                return Err(Error::corrupt(format_args!(
                    "corrupt log: PermissionGroupDeleted event for permission group {group} names other members than it has"
                )));
            }
            for user in members {
                views.change(ViewChange::Member(group.to_owned(), user.clone(), false));
            }
            views.change(ViewChange::RemoveGroup(group.to_owned()));
        }
        (Some(_), Event::UserAddedToGroup { user_id, .. }) => {
            if !views.user_exists(user_id)? || views.is_member(group, user_id)? {
                return Err(no_such_user(event));
            }
            views.change(ViewChange::Member(group.to_owned(), user_id.clone(), true));
        }
        (Some(_), Event::UserRemovedFromGroup { user_id, .. }) => {
            if !views.is_member(group, user_id)? {
                return Err(contradiction(
                    event,
                    format_args!("membership of user {user_id} in group {group}"),
                    false,
                ));
            }
            views.change(ViewChange::Member(group.to_owned(), user_id.clone(), false));
        }
        (before, _) => return Err(contradicts(before.is_some())),
    }
    Ok(())
}
