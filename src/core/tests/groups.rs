//! Permission groups and memberships, and their fold.

use super::*;
use crate::core::domain::GroupChanges;
use crate::error::Failure;
use crate::views::ViewTree;

#[test]
fn adding_a_member_twice_or_removing_a_non_member_appends_nothing() {
    let removed = Event::UserRemovedFromGroup { permission_group_id: GROUP.into(), user_id: ALICE.into() };
    Scenario::given(&[created(ALICE, "a@example.com"), group_created(&[])])
        .when(associate(ALICE))
        .then_events(&[joined(ALICE)]);
    let member = Scenario::given(&[created(ALICE, "a@example.com"), group_created(&[]), joined(ALICE)]);
    member.when(associate(ALICE)).then_nothing();
    member.when(disassociate(ALICE)).then_events(std::slice::from_ref(&removed));
    Scenario::given(&[created(ALICE, "a@example.com"), group_created(&[]), joined(ALICE), removed])
        .when(disassociate(ALICE))
        .then_nothing();
}

#[test]
fn memberships_need_an_existing_group_and_user() {
    Scenario::given(&[created(ALICE, "a@example.com")])
        .when(associate(ALICE))
        .then_error(Error::ResourceNotFound { message: format!("Permission group {GROUP} does not exist") });
    let no_bob = Scenario::given(&[group_created(&[])]);
    no_bob
        .when(associate(BOB))
        .then_error(Error::ResourceNotFound { message: format!("User {BOB} does not exist") });
    no_bob.when(disassociate(BOB)).then_error_kind("ResourceNotFoundException");
}

#[test]
fn deleting_a_group_names_and_ends_its_memberships() {
    let given = Scenario::given(&[
        created(ALICE, "a@example.com"),
        created(BOB, "b@example.com"),
        group_created(&[]),
        joined(BOB),
        joined(ALICE),
    ]);
    let deleted = Event::PermissionGroupDeleted {
        permission_group_id: GROUP.into(),
        members: vec![ALICE.into(), BOB.into()],
    };
    given
        .when(Command::DeletePermissionGroup { permission_group_id: GROUP.into() })
        .then_events(std::slice::from_ref(&deleted));
    let mut after = given.views();
    apply(&mut after, &deleted, 9000).unwrap();
    assert!(after.is_empty(ViewTree::Groups) && after.is_empty(ViewTree::Memberships));
    // A log whose Deleted names other members than the fold has is corrupt.
    let wrong =
        Event::PermissionGroupDeleted { permission_group_id: GROUP.into(), members: vec![ALICE.into()] };
    let e = apply(&mut given.views(), &wrong, 9000).unwrap_err();
    assert_eq!(e.failure(), Some(Failure::Corrupt));
}

#[test]
fn an_update_keeps_only_what_changes() {
    let given = Scenario::given(&[group_created(&[ApplicationPermission::ViewAuditData])]);
    let update = |changes| Command::UpdatePermissionGroup { permission_group_id: GROUP.into(), changes };
    let same = GroupChanges {
        name: Some("analysts".into()),
        application_permissions: Some(vec![ApplicationPermission::ViewAuditData]),
        description: None,
    };
    given.when(update(same)).then_nothing();
    let renamed = GroupChanges { name: Some("quants".into()), ..GroupChanges::default() };
    given.when(update(renamed.clone())).then_events(&[Event::PermissionGroupUpdated {
        permission_group_id: GROUP.into(),
        changes: renamed,
    }]);
    given
        .when(Command::UpdatePermissionGroup {
            permission_group_id: "nope".into(),
            changes: GroupChanges::default(),
        })
        .then_error_kind("ResourceNotFoundException");
}
